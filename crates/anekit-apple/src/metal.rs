//! Metal: device enumeration and selection, buffers, command queues and command buffers, and
//! the MPSGraph path that runs matmul, conv and elementwise ops of our IR on the GPU.
//!
//! The graph to run is planned from a MIL function by the portable
//! [`gpu_graph`](crate::gpu_graph) planner; [`GraphRunner`] (Apple platforms) builds the
//! MPSGraph once and runs it with inputs uploaded into shared-storage `MTLBuffer`s, timing
//! each phase ([`GraphTiming`]).

use serde::Serialize;

/// How long the phases of a GPU graph run took, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GraphTiming {
    /// Copying inputs into Metal buffers.
    pub upload_ms: f64,
    /// `runWithMTLCommandQueue:…` (encode, commit, wait; the first run also compiles the
    /// graph).
    pub run_ms: f64,
    /// Reading outputs back.
    pub download_ms: f64,
}

/// The GPU time of a command buffer (`GPUEndTime - GPUStartTime`), milliseconds, from the
/// two timestamps in seconds; `None` when the buffer did not run (both zero) or the clock
/// went backwards.
pub fn gpu_ms(start_s: f64, end_s: f64) -> Option<f64> {
    (end_s > 0.0 && end_s >= start_s).then_some((end_s - start_s) * 1e3)
}

/// The GPU family names this crate probes, newest first within each line (`apple10` …
/// `apple7`, `mac2`, `metal4`, `metal3`, `common3` …).
pub const FAMILY_NAMES: [&str; 10] = [
    "apple10", "apple9", "apple8", "apple7", "mac2", "metal4", "metal3", "common3", "common2",
    "common1",
];

/// `MPSDataType` raw values of the types the GPU path exchanges (Apple's `MPSDataType`:
/// `MPSDataTypeFloatBit` 0x10000000 or `MPSDataTypeSignedBit` 0x20000000, plus the width).
pub mod mps_type {
    /// `MPSDataTypeFloat32`.
    pub const FLOAT32: u32 = 0x1000_0000 | 32;
    /// `MPSDataTypeFloat16`.
    pub const FLOAT16: u32 = 0x1000_0000 | 16;
    /// `MPSDataTypeInt32`.
    pub const INT32: u32 = 0x2000_0000 | 32;
}

/// The element size and IR type of an MPSGraph result of data type `raw`, `None` for a type
/// the GPU path does not read (checked before any byte is read).
pub fn result_element(raw: u32) -> Option<(usize, anekit_mil::types::DataType)> {
    use anekit_mil::types::DataType;
    match raw {
        mps_type::FLOAT32 => Some((4, DataType::Fp32)),
        mps_type::FLOAT16 => Some((2, DataType::Fp16)),
        mps_type::INT32 => Some((4, DataType::Int32)),
        _ => None,
    }
}

/// The bytes to read for an MPSGraph result of data type `raw` and `shape`, checked: the
/// type must be one the path reads and the product must not overflow.
pub fn result_byte_len(raw: u32, shape: &[usize]) -> Result<usize, String> {
    let (elem, _) = result_element(raw)
        .ok_or_else(|| format!("data type {raw:#x} is not read by the GPU path"))?;
    shape
        .iter()
        .try_fold(elem, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))
}

#[cfg(target_vendor = "apple")]
pub use imp::*;

#[cfg(target_vendor = "apple")]
mod imp {
    use std::collections::BTreeMap;
    use std::ffi::c_void;
    use std::ptr::NonNull;
    use std::time::Instant;

    use anekit_mil::types::DataType;
    use anekit_runtime::{NamedTensors, Tensor};
    use objc2::AnyThread;
    use objc2::rc::{Retained, autoreleasepool};
    use objc2::runtime::ProtocolObject;
    use objc2_foundation::{NSArray, NSData, NSDictionary, NSNumber};
    use objc2_metal::{
        MTLBuffer, MTLCommandBuffer, MTLCommandBufferStatus, MTLCommandQueue, MTLCopyAllDevices,
        MTLCreateSystemDefaultDevice, MTLDevice, MTLGPUFamily, MTLResourceOptions,
    };
    use objc2_metal_performance_shaders::MPSDataType;
    use objc2_metal_performance_shaders_graph::{
        MPSGraph, MPSGraphConvolution2DOpDescriptor, MPSGraphPaddingStyle, MPSGraphTensor,
        MPSGraphTensorData, MPSGraphTensorNamedDataLayout,
    };

    use super::*;
    use crate::cf;
    use crate::device::{MetalDeviceInfo, newest_families};
    use crate::error::{AppleError, Result};
    use crate::exception::guard;
    use crate::gpu_graph::{BinaryOp, ConstTensor, GraphOp, GraphPlan, Operand, UnaryOp};

    /// A Metal device.
    pub type Device = Retained<ProtocolObject<dyn MTLDevice>>;

    fn family(name: &str) -> Option<MTLGPUFamily> {
        Some(match name {
            "apple10" => MTLGPUFamily::Apple10,
            "apple9" => MTLGPUFamily::Apple9,
            "apple8" => MTLGPUFamily::Apple8,
            "apple7" => MTLGPUFamily::Apple7,
            "mac2" => MTLGPUFamily::Mac2,
            "metal4" => MTLGPUFamily::Metal4,
            "metal3" => MTLGPUFamily::Metal3,
            "common3" => MTLGPUFamily::Common3,
            "common2" => MTLGPUFamily::Common2,
            "common1" => MTLGPUFamily::Common1,
            _ => return None,
        })
    }

    /// Every Metal device (`MTLCopyAllDevices` on macOS; the system default elsewhere).
    pub fn devices() -> Vec<Device> {
        MTLCopyAllDevices().to_vec()
    }

    /// The system default device.
    pub fn default_device() -> Option<Device> {
        MTLCreateSystemDefaultDevice()
    }

    /// The device whose name contains `query` (case-insensitive) or whose registry id is
    /// `query`; the default device for `None`.
    pub fn select(query: Option<&str>) -> Result<Device> {
        let Some(q) = query else {
            return default_device().ok_or_else(|| {
                AppleError::null("MTLCreateSystemDefaultDevice", "no Metal device")
            });
        };
        let ql = q.to_lowercase();
        devices()
            .into_iter()
            .find(|d| {
                d.name().to_string().to_lowercase().contains(&ql) || d.registryID().to_string() == q
            })
            .ok_or_else(|| AppleError::invalid("Metal device", format!("no device matches {q:?}")))
    }

    /// What a device says about itself.
    pub fn info(d: &ProtocolObject<dyn MTLDevice>, default_id: Option<u64>) -> MetalDeviceInfo {
        let supported: Vec<&str> = FAMILY_NAMES
            .iter()
            .copied()
            .filter(|n| family(n).is_some_and(|f| d.supportsFamily(f)))
            .collect();
        #[cfg(target_os = "macos")]
        let (low_power, headless) = (d.isLowPower(), d.isHeadless());
        #[cfg(not(target_os = "macos"))]
        let (low_power, headless) = (false, false);
        MetalDeviceInfo {
            name: d.name().to_string(),
            registry_id: d.registryID(),
            unified_memory: d.hasUnifiedMemory(),
            recommended_working_set_bytes: d.recommendedMaxWorkingSetSize(),
            current_allocated_bytes: d.currentAllocatedSize() as u64,
            max_buffer_bytes: d.maxBufferLength() as u64,
            low_power,
            headless,
            families: newest_families(&supported),
            is_default: default_id == Some(d.registryID()),
        }
    }

    /// Information on every device.
    pub fn device_infos() -> Vec<MetalDeviceInfo> {
        autoreleasepool(|_| {
            let default_id = default_device().map(|d| d.registryID());
            devices().iter().map(|d| info(d, default_id)).collect()
        })
    }

    /// A shared-storage buffer (CPU and GPU see the same memory on Apple silicon).
    pub struct Buffer {
        buffer: Retained<ProtocolObject<dyn MTLBuffer>>,
    }

    impl std::fmt::Debug for Buffer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Buffer").field("len", &self.len()).finish()
        }
    }

    impl Buffer {
        /// A zeroed buffer of `len` bytes.
        pub fn new(device: &ProtocolObject<dyn MTLDevice>, len: usize) -> Result<Self> {
            let buffer = device
                .newBufferWithLength_options(len.max(1), MTLResourceOptions::StorageModeShared)
                .ok_or_else(|| {
                    AppleError::null("newBufferWithLength:options:", format!("{len} bytes"))
                })?;
            Ok(Self { buffer })
        }

        /// A buffer holding a copy of `bytes`.
        pub fn with_bytes(device: &ProtocolObject<dyn MTLDevice>, bytes: &[u8]) -> Result<Self> {
            let b = Self::new(device, bytes.len())?;
            b.write(0, bytes)?;
            Ok(b)
        }

        /// Its length in bytes.
        pub fn len(&self) -> usize {
            self.buffer.length()
        }

        /// Whether it is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Copies `bytes` in at `offset`.
        pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<()> {
            let end = offset
                .checked_add(bytes.len())
                .filter(|&e| e <= self.len())
                .ok_or_else(|| AppleError::invalid("Metal buffer write", "past the end"))?;
            let _ = end;
            let base = self.buffer.contents().as_ptr().cast::<u8>();
            // SAFETY: `contents` of a shared-storage buffer points at `len()` bytes the CPU
            // may write; the range was checked above; `bytes` does not overlap GPU memory
            // owned by Rust.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(offset), bytes.len()) };
            Ok(())
        }

        /// Copies `out.len()` bytes out from `offset`.
        pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<()> {
            offset
                .checked_add(out.len())
                .filter(|&e| e <= self.len())
                .ok_or_else(|| AppleError::invalid("Metal buffer read", "past the end"))?;
            let base = self.buffer.contents().as_ptr().cast::<u8>();
            // SAFETY: as in `write`; the range was checked; no GPU work writes the buffer
            // while the caller holds `&self` (callers wait for command buffers first).
            unsafe { std::ptr::copy_nonoverlapping(base.add(offset), out.as_mut_ptr(), out.len()) };
            Ok(())
        }

        /// The Metal buffer.
        pub fn raw(&self) -> &ProtocolObject<dyn MTLBuffer> {
            &self.buffer
        }
    }

    /// A command queue.
    pub struct Queue {
        queue: Retained<ProtocolObject<dyn MTLCommandQueue>>,
    }

    impl Queue {
        /// A new queue on `device`.
        pub fn new(device: &ProtocolObject<dyn MTLDevice>) -> Result<Self> {
            let queue = device
                .newCommandQueue()
                .ok_or_else(|| AppleError::null("newCommandQueue", "no queue"))?;
            Ok(Self { queue })
        }

        /// Commits an empty command buffer and waits for it; returns its GPU time in
        /// milliseconds (the queue's round-trip floor).
        pub fn round_trip_ms(&self) -> Result<Option<f64>> {
            let cb = self
                .queue
                .commandBuffer()
                .ok_or_else(|| AppleError::null("commandBuffer", "no command buffer"))?;
            cb.commit();
            cb.waitUntilCompleted();
            if cb.status() == MTLCommandBufferStatus::Error {
                return Err(match cb.error() {
                    Some(e) => cf::ns_error("MTLCommandBuffer", &e),
                    None => AppleError::null("MTLCommandBuffer", "failed without an error"),
                });
            }
            let (s, e) = (cb.GPUStartTime(), cb.GPUEndTime());
            Ok(gpu_ms(s, e))
        }

        /// The Metal queue.
        pub fn raw(&self) -> &ProtocolObject<dyn MTLCommandQueue> {
            &self.queue
        }
    }

    fn mps_type(t: DataType) -> Result<MPSDataType> {
        Ok(match t {
            DataType::Fp32 => MPSDataType::Float32,
            DataType::Fp16 => MPSDataType::Float16,
            DataType::Int32 => MPSDataType::Int32,
            other => {
                return Err(AppleError::invalid(
                    "MPSGraph",
                    format!("{other} tensors are not on the GPU path"),
                ));
            }
        })
    }

    fn tensor_bytes(t: &Tensor) -> Result<(DataType, Vec<u8>)> {
        Ok(match t {
            Tensor::F32(a) => (
                DataType::Fp32,
                a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Tensor::F16(a) => (
                DataType::Fp16,
                a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Tensor::I32(a) => (
                DataType::Int32,
                a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            other => {
                return Err(AppleError::invalid(
                    "MPSGraph input",
                    format!("{} tensors are not on the GPU path", other.dtype()),
                ));
            }
        })
    }

    /// An MPSGraph built from a [`GraphPlan`], ready to run on one device.
    pub struct GraphRunner {
        device: Device,
        queue: Queue,
        graph: Retained<MPSGraph>,
        placeholders: Vec<(String, DataType, Vec<usize>, Retained<MPSGraphTensor>)>,
        outputs: Vec<(String, Retained<MPSGraphTensor>, DataType, Vec<usize>)>,
    }

    impl std::fmt::Debug for GraphRunner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("GraphRunner")
                .field("device", &self.device.name().to_string())
                .field("inputs", &self.placeholders.len())
                .field("outputs", &self.outputs.len())
                .finish()
        }
    }

    impl GraphRunner {
        /// Builds the graph of `plan` for `device`.
        pub fn new(device: Device, plan: &GraphPlan) -> Result<Self> {
            let queue = Queue::new(&device)?;
            // SAFETY: creating an empty graph.
            let graph = unsafe { MPSGraph::new() };
            let mut placeholders = Vec::new();
            for inp in &plan.inputs {
                let shape = cf::ns_usizes(&inp.shape);
                let name = cf::ns_string(&inp.name);
                let dtype = mps_type(inp.dtype)?;
                let t = guard("-[MPSGraph placeholderWithShape:dataType:name:]", || {
                    // SAFETY: a placeholder of a fixed shape and a supported type.
                    unsafe {
                        graph.placeholderWithShape_dataType_name(Some(&shape), dtype, Some(&name))
                    }
                })?;
                placeholders.push((inp.name.clone(), inp.dtype, inp.shape.clone(), t));
            }
            let mut nodes: Vec<Retained<MPSGraphTensor>> = Vec::with_capacity(plan.nodes.len());
            for node in &plan.nodes {
                let operand = |o: &Operand| -> Result<Retained<MPSGraphTensor>> {
                    match o {
                        Operand::Input(i) => placeholders
                            .get(*i)
                            .map(|p| p.3.clone())
                            .ok_or_else(|| AppleError::invalid("MPSGraph plan", "bad input index")),
                        Operand::Node(i) => nodes
                            .get(*i)
                            .cloned()
                            .ok_or_else(|| AppleError::invalid("MPSGraph plan", "bad node index")),
                        Operand::Const(c) => constant(&graph, c),
                    }
                };
                let ops: Vec<Retained<MPSGraphTensor>> =
                    node.operands.iter().map(operand).collect::<Result<_>>()?;
                let out = guard("MPSGraph (building a node)", || {
                    build_node(&graph, &node.op, &ops)
                })
                .map_err(AppleError::from)
                .and_then(|r| r)
                .map_err(|e| {
                    AppleError::invalid(format!("MPSGraph node {:?}", node.name), e.to_string())
                })?;
                nodes.push(out);
            }
            let outputs = plan
                .outputs
                .iter()
                .map(|(name, i)| {
                    let node = plan.nodes.get(*i);
                    nodes
                        .get(*i)
                        .cloned()
                        .zip(node)
                        .map(|(t, n)| (name.clone(), t, n.dtype, n.shape.clone()))
                        .ok_or_else(|| AppleError::invalid("MPSGraph plan", "bad output index"))
                })
                .collect::<Result<_>>()?;
            Ok(Self {
                device,
                queue,
                graph,
                placeholders,
                outputs,
            })
        }

        /// Runs the graph on `inputs` (by name) and returns its outputs with the timing.
        pub fn run(&self, inputs: &NamedTensors) -> Result<(NamedTensors, GraphTiming)> {
            autoreleasepool(|_| {
                let mut timing = GraphTiming::default();
                let t0 = Instant::now();
                let mut keys: Vec<&MPSGraphTensor> = Vec::new();
                let mut values: Vec<Retained<MPSGraphTensorData>> = Vec::new();
                for (name, dtype, shape, ph) in &self.placeholders {
                    let t = inputs
                        .get(name)
                        .ok_or_else(|| AppleError::invalid(format!("input {name:?}"), "missing"))?;
                    if t.shape() != shape.as_slice() {
                        return Err(AppleError::invalid(
                            format!("input {name:?}"),
                            format!("shape {:?} given, the graph takes {shape:?}", t.shape()),
                        ));
                    }
                    let (dt, bytes) = tensor_bytes(t)?;
                    if dt != *dtype {
                        return Err(AppleError::invalid(
                            format!("input {name:?}"),
                            format!("is {dt}, the graph takes {dtype}"),
                        ));
                    }
                    let buffer = Buffer::with_bytes(&self.device, &bytes)?;
                    // SAFETY: the buffer holds exactly shape × element-size bytes of `dtype`;
                    // it is retained by the tensor data.
                    let data = unsafe {
                        MPSGraphTensorData::initWithMTLBuffer_shape_dataType(
                            MPSGraphTensorData::alloc(),
                            buffer.raw(),
                            &cf::ns_usizes(shape),
                            mps_type(*dtype)?,
                        )
                    };
                    keys.push(ph);
                    values.push(data);
                }
                let feeds: Retained<NSDictionary<MPSGraphTensor, MPSGraphTensorData>> =
                    NSDictionary::from_retained_objects(&keys, &values);
                let targets: Vec<&MPSGraphTensor> =
                    self.outputs.iter().map(|(_, t, _, _)| &**t).collect();
                let targets = NSArray::from_slice(&targets);
                timing.upload_ms = t0.elapsed().as_secs_f64() * 1e3;
                let t1 = Instant::now();
                let results = guard(
                    "-[MPSGraph runWithMTLCommandQueue:feeds:targetTensors:targetOperations:]",
                    || {
                        // SAFETY: feeds cover every placeholder with data of its shape and
                        // type (checked above); targets are tensors of this graph, whose
                        // nodes were shape-checked by the planner; the call is synchronous.
                        unsafe {
                            self.graph
                                .runWithMTLCommandQueue_feeds_targetTensors_targetOperations(
                                    self.queue.raw(),
                                    &feeds,
                                    &targets,
                                    None,
                                )
                        }
                    },
                )?;
                timing.run_ms = t1.elapsed().as_secs_f64() * 1e3;
                let t2 = Instant::now();
                let mut out = NamedTensors::new();
                for (name, t, dtype, shape) in &self.outputs {
                    let data = results.objectForKey(t).ok_or_else(|| {
                        AppleError::null("runWithMTLCommandQueue", format!("no output {name:?}"))
                    })?;
                    out.insert(name.clone(), read_tensor(&data, (*dtype, shape))?);
                }
                timing.download_ms = t2.elapsed().as_secs_f64() * 1e3;
                Ok((out, timing))
            })
        }
    }

    fn constant(graph: &MPSGraph, c: &ConstTensor) -> Result<Retained<MPSGraphTensor>> {
        let data = NSData::with_bytes(&c.bytes);
        let shape = if c.shape.is_empty() {
            cf::ns_usizes(&[1])
        } else {
            cf::ns_usizes(&c.shape)
        };
        // SAFETY: `data` holds exactly shape × element-size bytes of the type (checked by the
        // planner).
        Ok(unsafe { graph.constantWithData_shape_dataType(&data, &shape, mps_type(c.dtype)?) })
    }

    fn rank(t: &MPSGraphTensor) -> Option<usize> {
        // SAFETY: reading the static shape of a graph tensor.
        unsafe { t.shape() }.map(|s| s.count())
    }

    fn build_node(
        g: &MPSGraph,
        op: &GraphOp,
        x: &[Retained<MPSGraphTensor>],
    ) -> Result<Retained<MPSGraphTensor>> {
        let need = |n: usize| {
            if x.len() < n {
                Err(AppleError::invalid(
                    "MPSGraph node",
                    format!("needs {n} operands"),
                ))
            } else {
                Ok(())
            }
        };
        let transpose_last = |t: &MPSGraphTensor| -> Result<Retained<MPSGraphTensor>> {
            let r = rank(t).filter(|&r| r >= 2).ok_or_else(|| {
                AppleError::invalid("MPSGraph transpose", "needs a tensor of known rank ≥ 2")
            })?;
            // SAFETY: swapping the last two axes of a tensor of rank `r` ≥ 2.
            Ok(unsafe { g.transposeTensor_dimension_withDimension_name(t, r - 2, r - 1, None) })
        };
        // SAFETY (each graph call below): the operands are tensors of this graph and the
        // call only adds a node; shapes are checked by MPSGraph when the graph compiles.
        match op {
            GraphOp::MatMul {
                transpose_x,
                transpose_y,
            } => {
                need(2)?;
                let a = if *transpose_x {
                    transpose_last(&x[0])?
                } else {
                    x[0].clone()
                };
                let b = if *transpose_y {
                    transpose_last(&x[1])?
                } else {
                    x[1].clone()
                };
                // SAFETY: see above.
                Ok(unsafe {
                    g.matrixMultiplicationWithPrimaryTensor_secondaryTensor_name(&a, &b, None)
                })
            }
            GraphOp::Linear => {
                need(2)?;
                let wt = transpose_last(&x[1])?;
                // SAFETY: see above.
                let y = unsafe {
                    g.matrixMultiplicationWithPrimaryTensor_secondaryTensor_name(&x[0], &wt, None)
                };
                match x.get(2) {
                    // SAFETY: see above (the bias broadcasts along the last axis).
                    Some(b) => {
                        Ok(
                            unsafe {
                                g.additionWithPrimaryTensor_secondaryTensor_name(&y, b, None)
                            },
                        )
                    }
                    None => Ok(y),
                }
            }
            GraphOp::Conv2d {
                strides,
                dilations,
                pad,
                same,
                groups,
            } => {
                need(2)?;
                let style = if *same {
                    MPSGraphPaddingStyle::TF_SAME
                } else {
                    MPSGraphPaddingStyle::Explicit
                };
                // SAFETY: creating a descriptor from plain values.
                let desc = unsafe {
                    MPSGraphConvolution2DOpDescriptor::descriptorWithStrideInX_strideInY_dilationRateInX_dilationRateInY_groups_paddingLeft_paddingRight_paddingTop_paddingBottom_paddingStyle_dataLayout_weightsLayout(
                        strides[1],
                        strides[0],
                        dilations[1],
                        dilations[0],
                        *groups,
                        pad[2],
                        pad[3],
                        pad[0],
                        pad[1],
                        style,
                        MPSGraphTensorNamedDataLayout::NCHW,
                        MPSGraphTensorNamedDataLayout::OIHW,
                    )
                }
                .ok_or_else(|| AppleError::null("MPSGraphConvolution2DOpDescriptor", "invalid descriptor"))?;
                // SAFETY: see above.
                let y = unsafe {
                    g.convolution2DWithSourceTensor_weightsTensor_descriptor_name(
                        &x[0], &x[1], &desc, None,
                    )
                };
                match x.get(2) {
                    Some(b) => {
                        // The bias [C] is added per channel: reshape to [1, C, 1, 1].
                        let shape: Retained<NSArray<NSNumber>> = NSArray::from_retained_slice(&[
                            NSNumber::new_isize(1),
                            NSNumber::new_isize(-1),
                            NSNumber::new_isize(1),
                            NSNumber::new_isize(1),
                        ]);
                        // SAFETY: see above.
                        let b4 = unsafe { g.reshapeTensor_withShape_name(b, &shape, None) };
                        // SAFETY: see above.
                        Ok(unsafe {
                            g.additionWithPrimaryTensor_secondaryTensor_name(&y, &b4, None)
                        })
                    }
                    None => Ok(y),
                }
            }
            GraphOp::Binary(b) => {
                need(2)?;
                let (p, s) = (&x[0], &x[1]);
                // SAFETY: see above.
                Ok(unsafe {
                    match b {
                        BinaryOp::Add => {
                            g.additionWithPrimaryTensor_secondaryTensor_name(p, s, None)
                        }
                        BinaryOp::Sub => {
                            g.subtractionWithPrimaryTensor_secondaryTensor_name(p, s, None)
                        }
                        BinaryOp::Mul => {
                            g.multiplicationWithPrimaryTensor_secondaryTensor_name(p, s, None)
                        }
                        BinaryOp::Div => {
                            g.divisionWithPrimaryTensor_secondaryTensor_name(p, s, None)
                        }
                        BinaryOp::Maximum => {
                            g.maximumWithPrimaryTensor_secondaryTensor_name(p, s, None)
                        }
                        BinaryOp::Minimum => {
                            g.minimumWithPrimaryTensor_secondaryTensor_name(p, s, None)
                        }
                    }
                })
            }
            GraphOp::Unary(u) => {
                need(1)?;
                let t = &x[0];
                // SAFETY: see above.
                Ok(unsafe {
                    match u {
                        UnaryOp::Relu => g.reLUWithTensor_name(t, None),
                        UnaryOp::Sigmoid => g.sigmoidWithTensor_name(t, None),
                        UnaryOp::Tanh => g.tanhWithTensor_name(t, None),
                        UnaryOp::Exp => g.exponentWithTensor_name(t, None),
                        UnaryOp::Sqrt => g.squareRootWithTensor_name(t, None),
                        UnaryOp::Abs => g.absoluteWithTensor_name(t, None),
                    }
                })
            }
            GraphOp::Softmax { axis } => {
                need(1)?;
                let r = rank(&x[0]).unwrap_or(1) as i64;
                let a = if *axis < 0 { axis + r } else { *axis };
                // SAFETY: see above.
                Ok(unsafe { g.softMaxWithTensor_axis_name(&x[0], a as isize, None) })
            }
        }
    }

    /// A result as a tensor: its data type is checked before `readBytes` (an unexpected
    /// type would make the copy overrun the buffer), its size computed with overflow checks,
    /// and its shape and type compared with what the plan inferred for the node.
    fn read_tensor(data: &MPSGraphTensorData, expected: (DataType, &[usize])) -> Result<Tensor> {
        // SAFETY: reading the shape and type of a result.
        let (shape, dtype) = unsafe { (data.shape(), data.dataType()) };
        let shape = cf::usizes(&shape, "MPSGraph result shape")?;
        let len = result_byte_len(dtype.0, &shape)
            .map_err(|e| AppleError::invalid("MPSGraph result", e))?;
        let (_, ir) = result_element(dtype.0)
            .ok_or_else(|| AppleError::invalid("MPSGraph result", "unknown type"))?;
        if ir != expected.0 || shape != expected.1 {
            return Err(AppleError::invalid(
                "MPSGraph result",
                format!(
                    "{ir} {shape:?} returned where the plan computed {} {:?}",
                    expected.0, expected.1
                ),
            ));
        }
        let mut bytes = vec![0u8; len];
        if len > 0 {
            let dst = NonNull::new(bytes.as_mut_ptr().cast::<c_void>())
                .ok_or_else(|| AppleError::null("readBytes", "buffer"))?;
            guard("-[MPSNDArray readBytes:strideBytes:]", || {
                // SAFETY: `bytes` has room for every element of the result in its type (size
                // from the checked type and shape); null strides mean a dense row-major copy.
                unsafe {
                    data.mpsndarray()
                        .readBytes_strideBytes(dst, std::ptr::null_mut())
                }
            })?;
        }
        let t = match ir {
            DataType::Fp32 => Tensor::f32(
                &shape,
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DataType::Fp16 => ndarray::ArrayD::from_shape_vec(
                shape.clone(),
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
            .map(Tensor::F16)
            .map_err(|e| anekit_runtime::RuntimeError::Predict(e.to_string())),
            _ => Tensor::i32(
                &shape,
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        };
        t.map_err(|e| AppleError::invalid("MPSGraph result", e.to_string()))
    }

    /// Plans `function` of `program` and runs it once on `device` (the default device for
    /// `None`): the GPU path end to end, with timing.
    pub fn run_function(
        program: &anekit_mil::program::Program,
        function: &str,
        inputs: &NamedTensors,
        device: Option<&str>,
    ) -> Result<(NamedTensors, GraphTiming, BTreeMap<String, usize>)> {
        let f = program
            .functions
            .get(function)
            .ok_or_else(|| AppleError::invalid("function", format!("no function {function:?}")))?;
        let plan = crate::gpu_graph::plan_function(f)
            .map_err(|e| AppleError::invalid("MPSGraph plan", e.to_string()))?;
        let runner = GraphRunner::new(select(device)?, &plan)?;
        let (out, timing) = runner.run(inputs)?;
        Ok((out, timing, crate::gpu_graph::op_summary(&plan)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_sized_from_a_checked_type() {
        assert_eq!(result_byte_len(mps_type::FLOAT16, &[2, 3]), Ok(12));
        assert_eq!(result_byte_len(mps_type::INT32, &[]), Ok(4));
        assert!(
            result_byte_len(0x2000_0000 | 64, &[2])
                .unwrap_err()
                .contains("not read")
        );
        assert!(result_byte_len(mps_type::FLOAT32, &[usize::MAX, 2]).is_err());
        assert_eq!(
            result_element(mps_type::FLOAT32).map(|e| e.1),
            Some(anekit_mil::types::DataType::Fp32)
        );
    }

    #[test]
    fn gpu_time_from_timestamps() {
        assert_eq!(
            gpu_ms(1.0, 1.0025).map(|v| (v * 1e4).round() / 1e4),
            Some(2.5)
        );
        assert_eq!(gpu_ms(0.0, 0.0), None);
        assert_eq!(gpu_ms(2.0, 1.0), None);
    }
}
