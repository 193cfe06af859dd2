//! The cost model: FLOPs and bytes of every op, and its time on each compute unit.
//!
//! Per op: FLOPs from the analysed shapes (2 per multiply-accumulate); bytes of the run-time
//! inputs and outputs; weight bytes as stored (compressed weights at their stored size when
//! the generation streams that encoding natively, else expanded to dense fp16). On the
//! Neural Engine every activation's last axis is padded to the generation's alignment
//! (64 bytes; `APPLE-ART` Principle 1), so a `[…, 1]` tensor costs 32× its size in fp16.
//!
//! Time on a unit is a roofline: `max(flops / peak, bytes / bandwidth)` plus a per-op
//! overhead (GPU, CPU). On the Neural Engine, weights always stream from DRAM; activations
//! stay in the on-chip buffer when an op's working set fits (`TG`, `ANEINFER`) and are then
//! charged at a multiple of the DRAM bandwidth (catalog constant
//! `ane_onchip_bandwidth_factor`, an assumption), otherwise at DRAM bandwidth.

use anekit_mil::{DataType, TensorType};
use serde::Serialize;

use crate::catalog::{ChipPerf, Constants, Generation};
use crate::graph::{Graph, Node};

/// A compute unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// The Neural Engine.
    Ane,
    /// The GPU.
    Gpu,
    /// The CPU.
    Cpu,
    /// Nothing runs (constants, folded at compile time).
    None,
}

impl Unit {
    /// Lower-case name (`ane`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Ane => "ane",
            Unit::Gpu => "gpu",
            Unit::Cpu => "cpu",
            Unit::None => "none",
        }
    }
}

/// Cost facts of one op, independent of the chip.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpCost {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes of the run-time inputs, unpadded.
    pub input_bytes: f64,
    /// Bytes of the outputs, unpadded.
    pub output_bytes: f64,
    /// Shapes and element sizes of run-time inputs and outputs, for the padded layout.
    #[serde(skip)]
    pub activations: Vec<(Vec<u64>, f64)>,
    /// Weight bytes as stored in the model.
    pub weight_bytes: f64,
    /// Weight bytes once expanded to dense fp16.
    pub weight_dense_bytes: f64,
    /// Compression encoding of the weights (`int4`, `int8`, `sparse`, `blockwise`), if any.
    pub weight_encoding: Option<String>,
    /// A pure data-movement op (reshape, transpose, concat, slice, …).
    pub data_movement: bool,
    /// A unary activation applied to the only use of a conv/linear/matmul output: the Neural
    /// Engine applies it on the way out of the producer, with no activation traffic of its own.
    pub fused: bool,
}

/// Bytes per element on the Neural Engine (fp16, or 1 for 8-bit types).
fn ane_elem(dtype: DataType) -> f64 {
    match dtype.bits() {
        Some(b) if b <= 8 => 1.0,
        _ => 2.0,
    }
}

fn elem_bytes(dtype: DataType) -> f64 {
    f64::from(dtype.bits().unwrap_or(8)) / 8.0
}

fn count(t: &TensorType) -> f64 {
    t.element_count().map_or(0.0, |n| n as f64)
}

/// Bytes of a tensor in the Neural Engine layout: the last axis padded to `align` bytes.
pub fn padded_bytes(shape: &[u64], elem: f64, align: u64) -> f64 {
    let Some((last, rest)) = shape.split_last() else {
        return align as f64;
    };
    let row = (*last as f64 * elem).max(1.0);
    let a = align.max(1) as f64;
    let padded_row = (row / a).ceil() * a;
    rest.iter().map(|d| *d as f64).product::<f64>() * padded_row
}

const DATA_MOVEMENT: &[&str] = &[
    "reshape",
    "transpose",
    "concat",
    "split",
    "slice_by_index",
    "slice_by_size",
    "squeeze",
    "expand_dims",
    "pad",
    "tile",
    "gather",
    "gather_along_axis",
    "gather_nd",
    "identity",
    "stack",
    "reverse",
    "depth_to_space",
    "space_to_depth",
    "pixel_shuffle",
    "pixel_unshuffle",
    "flatten2d",
    "cast",
    "read_state",
    "write_state",
    "coreml_update_state",
    "slice_update",
    "scatter",
    "scatter_along_axis",
    "scatter_nd",
    "band_part",
    "fill",
    "fill_like",
    "shape",
    "crop",
    "space_to_batch",
    "batch_to_space",
    "sliding_windows",
];

/// Activations the Neural Engine applies to a producer's output (`EILN-DOCS`: each core is a
/// MADD array with an accumulator and post-processing).
const FUSABLE: &[&str] = &[
    "relu",
    "relu6",
    "gelu",
    "sigmoid",
    "sigmoid_hard",
    "tanh",
    "silu",
    "leaky_relu",
    "clip",
    "elu",
    "softplus",
    "linear_activation",
];

/// FLOPs per output element of element-wise ops (transcendentals count more).
fn elementwise_flops(op: &str) -> Option<f64> {
    Some(match op {
        "add" | "sub" | "mul" | "real_div" | "maximum" | "minimum" | "relu" | "relu6" | "abs"
        | "clip" | "floor" | "ceil" | "round" | "sign" | "square" | "equal" | "not_equal"
        | "less" | "less_equal" | "greater" | "greater_equal" | "logical_not" | "select"
        | "leaky_relu" | "threshold" | "thresholded_relu" | "clamped_relu" | "prelu"
        | "linear_activation" | "floor_div" | "mod" | "inverse" | "logical_and" | "logical_or"
        | "logical_xor" => 1.0,
        "sqrt"
        | "rsqrt"
        | "pow"
        | "exp"
        | "exp2"
        | "log"
        | "sigmoid"
        | "sigmoid_hard"
        | "tanh"
        | "scaled_tanh"
        | "silu"
        | "softplus"
        | "softplus_parametric"
        | "softsign"
        | "elu"
        | "erf"
        | "sin"
        | "cos"
        | "tan"
        | "asin"
        | "acos"
        | "atan"
        | "sinh"
        | "cosh"
        | "atanh" => 4.0,
        "gelu" => 8.0,
        "softmax" => 5.0,
        "layer_norm" | "batch_norm" | "instance_norm" | "l2_norm" | "local_response_norm" => 8.0,
        _ => return None,
    })
}

/// The cost facts of node `n`.
pub fn op_cost(g: &Graph<'_>, n: &Node<'_>) -> OpCost {
    let mut c = OpCost::default();
    if n.constant {
        return c;
    }
    let op = n.op.op_type.as_str();
    let ins = g.runtime_inputs(n);
    let outs = g.output_tensors(n);
    for (_, t) in &ins {
        c.input_bytes += count(t) * elem_bytes(t.dtype);
        if let Some(s) = t.fixed_shape() {
            c.activations.push((s, ane_elem(t.dtype)));
        }
    }
    for t in &outs {
        c.output_bytes += count(t) * elem_bytes(t.dtype);
        if let Some(s) = t.fixed_shape() {
            c.activations.push((s, ane_elem(t.dtype)));
        }
    }
    weights(g, n, &mut c);
    c.data_movement = DATA_MOVEMENT.contains(&op);
    c.fused = FUSABLE.contains(&op)
        && ins.len() == 1
        && n.inputs.iter().any(|(_, v)| {
            g.values
                .get(v)
                .and_then(|v| v.producer)
                .and_then(|p| g.nodes.get(p))
                .is_some_and(|p| {
                    p.consumers.len() == 1
                        && matches!(
                            p.op.op_type.as_str(),
                            "conv"
                                | "conv_transpose"
                                | "linear"
                                | "matmul"
                                | "einsum"
                                | "batch_norm"
                        )
                })
        });
    let out_elems: f64 = outs.first().map_or(0.0, |t| count(t));
    let shape = |p: &str| g.input_tensor(n, p).and_then(|t| t.fixed_shape());
    c.flops = match op {
        "conv" => {
            let k: f64 = shape("weight")
                .map(|w| w.iter().skip(1).map(|d| *d as f64).product())
                .unwrap_or(0.0);
            2.0 * out_elems * k
        }
        "conv_transpose" => {
            let k: f64 = shape("weight")
                .map(|w| w.iter().skip(1).map(|d| *d as f64).product())
                .unwrap_or(0.0);
            let in_elems = shape("x").map_or(0.0, |s| s.iter().map(|d| *d as f64).product());
            2.0 * in_elems * k
        }
        "linear" => {
            let k = shape("weight").and_then(|w| w.last().copied()).unwrap_or(0) as f64;
            2.0 * out_elems * k
        }
        "matmul" => {
            let x = shape("x").unwrap_or_default();
            let tx = g
                .param_value(n, "transpose_x")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let k = if x.len() >= 2 && tx {
                x.get(x.len() - 2).copied()
            } else {
                x.last().copied()
            }
            .unwrap_or(0) as f64;
            2.0 * out_elems * k
        }
        "einsum" => einsum_flops(g, n).unwrap_or(2.0 * out_elems),
        "scaled_dot_product_attention" => {
            let q = shape("query").unwrap_or_default();
            let k = shape("key").unwrap_or_default();
            let l_e: f64 = q.iter().map(|d| *d as f64).product();
            let s = k
                .len()
                .checked_sub(2)
                .and_then(|i| k.get(i))
                .copied()
                .unwrap_or(0) as f64;
            // QK^T and AV: 2·L·S·E each; softmax 5·L·S per batch-head.
            let e = q.last().copied().unwrap_or(1).max(1) as f64;
            4.0 * l_e * s + 5.0 * (l_e / e) * s
        }
        "lstm" | "gru" | "rnn" => {
            let gates = match op {
                "lstm" => 4.0,
                "gru" => 3.0,
                _ => 1.0,
            };
            let x = shape("x").unwrap_or_default();
            let (t, b, i) = match x.as_slice() {
                [t, b, i] => (*t as f64, *b as f64, *i as f64),
                _ => (0.0, 0.0, 0.0),
            };
            let h = shape("weight_hh")
                .and_then(|w| w.last().copied())
                .unwrap_or(0) as f64;
            let dirs = if g.param_str(n, "direction").as_deref() == Some("bidirectional") {
                2.0
            } else {
                1.0
            };
            dirs * 2.0 * t * b * gates * h * (i + h) + dirs * t * b * h * gates * 4.0
        }
        "max_pool" | "avg_pool" | "l2_pool" => {
            let k: f64 = g
                .param_ints(n, "kernel_sizes")
                .map(|k| k.iter().map(|v| *v as f64).product())
                .unwrap_or(1.0);
            out_elems * k
        }
        o if o.starts_with("reduce_") => ins.first().map_or(0.0, |(_, t)| count(t)),
        o if o.starts_with("upsample") || o.starts_with("resize") || o == "crop_resize" => {
            out_elems * 4.0
        }
        o => match elementwise_flops(o) {
            Some(f) => {
                let in_max = ins.iter().map(|(_, t)| count(t)).fold(0.0, f64::max);
                f * out_elems.max(in_max)
            }
            None => 0.0,
        },
    };
    c
}

fn einsum_flops(g: &Graph<'_>, n: &Node<'_>) -> Option<f64> {
    let eq = g.param_str(n, "equation")?;
    let (lhs, _) = eq.split_once("->")?;
    let names: Vec<&str> = n
        .inputs
        .iter()
        .filter(|(p, _)| p == "values")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut dims: std::collections::BTreeMap<char, u64> = Default::default();
    for (term, name) in lhs.split(',').zip(names) {
        let shape = g.values.get(name)?.ty.as_tensor()?.fixed_shape()?;
        let letters: Vec<char> = term
            .trim()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect();
        if letters.len() != shape.len() {
            return None;
        }
        for (l, d) in letters.into_iter().zip(shape) {
            dims.insert(l, d);
        }
    }
    Some(2.0 * dims.values().map(|d| *d as f64).product::<f64>())
}

/// The compression encoding of a `constexpr_*` op type.
pub fn encoding_of(op_type: &str) -> Option<&'static str> {
    Some(match op_type {
        "constexpr_lut_to_dense" | "constexpr_lut_to_sparse" => "int4",
        "constexpr_affine_dequantize" => "int8",
        "constexpr_sparse_to_dense" | "constexpr_sparse_blockwise_shift_scale" => "sparse",
        "constexpr_blockwise_shift_scale" => "blockwise",
        _ => return None,
    })
}

/// Stored bytes of a constant value and of its constant ancestors (through `constexpr_*`
/// chains, at most 4 levels), and the first encoding met.
fn stored(g: &Graph<'_>, name: &str, depth: u32) -> (f64, Option<&'static str>) {
    let Some(v) = g.values.get(name) else {
        return (0.0, None);
    };
    if let Some(val) = &v.value {
        return (val.bytes().map_or(0.0, |b| b.len() as f64), None);
    }
    let Some(p) = v.producer.and_then(|p| g.nodes.get(p)) else {
        return (0.0, None);
    };
    if depth > 4 {
        return (0.0, None);
    }
    let mut total = 0.0;
    let mut enc = encoding_of(&p.op.op_type);
    for (_, input) in &p.inputs {
        let (b, e) = stored(g, input, depth + 1);
        total += b;
        enc = enc.or(e);
    }
    // iOS16/17 constexpr ops carry their data as attributes.
    for (k, a) in &p.op.attributes {
        if k != "name" {
            total += a.bytes().map_or(0.0, |b| b.len() as f64);
        }
    }
    (total, enc)
}

fn weights(g: &Graph<'_>, n: &Node<'_>, c: &mut OpCost) {
    for (_, name) in &n.inputs {
        let Some(v) = g.values.get(name) else {
            continue;
        };
        if !v.constant {
            continue;
        }
        let Some(t) = v.ty.as_tensor() else {
            continue;
        };
        // Shape-like (integer, bool, string) parameters are not weights.
        if !t.dtype.is_float() {
            continue;
        }
        let (bytes, enc) = stored(g, name, 0);
        c.weight_bytes += bytes;
        c.weight_dense_bytes += count(t) * 2.0;
        if let Some(e) = enc {
            c.weight_encoding = Some(e.to_string());
        }
    }
}

/// Time of an op on one unit, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OpTime {
    /// Total.
    pub us: f64,
    /// The compute part.
    pub compute_us: f64,
    /// The memory part.
    pub memory_us: f64,
}

/// Bytes the Neural Engine moves for `c` on `generation`: (weights, activations, whether
/// the activations fit on chip).
pub fn ane_bytes(c: &OpCost, generation: &Generation) -> (f64, f64, bool) {
    let native = c.weight_encoding.as_ref().is_none_or(|e| {
        generation
            .native_weight_streams
            .value
            .iter()
            .any(|s| s == e)
    });
    let w = if native {
        c.weight_bytes
    } else {
        c.weight_dense_bytes
    };
    let align = generation.last_axis_alignment_bytes.value;
    let act: f64 = if c.fused {
        0.0
    } else {
        c.activations
            .iter()
            .map(|(s, e)| padded_bytes(s, *e, align))
            .sum()
    };
    (w, act, act <= generation.sram_bytes.value as f64)
}

/// Time of `c` on `unit`.
pub fn op_time(
    c: &OpCost,
    unit: Unit,
    perf: &ChipPerf,
    generation: &Generation,
    k: &Constants,
) -> OpTime {
    let roof = |flops: f64, bytes: f64, flop_per_us: f64, bytes_per_us: f64, overhead: f64| {
        let compute_us = if flop_per_us > 0.0 {
            flops / flop_per_us
        } else {
            0.0
        };
        let memory_us = if bytes_per_us > 0.0 {
            bytes / bytes_per_us
        } else {
            0.0
        };
        OpTime {
            us: compute_us.max(memory_us) + overhead,
            compute_us,
            memory_us,
        }
    };
    match unit {
        Unit::None => OpTime::default(),
        Unit::Ane => {
            let (w, act, on_chip) = ane_bytes(c, generation);
            let bw = perf.ane_bandwidth_gbs * 1e3;
            let act_bw = if on_chip {
                bw * k.ane_onchip_bandwidth_factor.value
            } else {
                bw
            };
            let compute_us = c.flops / (perf.ane_tflops * 1e6);
            let memory_us = w / bw + act / act_bw;
            OpTime {
                us: compute_us.max(memory_us),
                compute_us,
                memory_us,
            }
        }
        Unit::Gpu => roof(
            c.flops,
            c.input_bytes + c.output_bytes + c.weight_bytes,
            perf.gpu_tflops * 1e6,
            perf.gpu_bandwidth_gbs * 1e3,
            k.gpu_op_overhead_us.value,
        ),
        Unit::Cpu => {
            // Core ML's CPU path computes fp16 models in fp32: weights are read as stored.
            let bytes = if c.data_movement {
                c.output_bytes
            } else {
                c.input_bytes + c.output_bytes + c.weight_bytes
            };
            roof(
                c.flops,
                bytes,
                perf.cpu_gflops * 1e3,
                perf.cpu_bandwidth_gbs * 1e3,
                k.cpu_op_overhead_us.value,
            )
        }
    }
}
