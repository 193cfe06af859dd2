//! The CPU backend: a MIL interpreter with fast kernels, on every OS.
//!
//! Loading compiles the function into a [`plan::Plan`] (constant ops folded, slot lifetimes
//! planned, elementwise ops fused into their producers by [`fuse`], large fp16 / quantized /
//! palettized weights kept in their stored form for the kernels that decode them by
//! [`packed`], the other compressed constants decompressed once); predicting runs the plan
//! on a rayon pool of the requested size. Matrix products go through `faer` (a pure-Rust GEMM
//! that parallelises on rayon) and, for one-row products, the backend's own GEMV
//! ([`kernels::linalg`]; why: docs/references.md#cpu-matrix-products).

pub mod buffers;
pub mod constexpr;
pub mod exec;
pub mod fuse;
pub mod kernels;
pub mod layout;
pub mod packed;
pub mod plan;
pub mod value;

use std::sync::{Arc, Mutex};

use anekit_mil::model::Model;
use anekit_mil::summary::ModelSummary;
use anekit_mil::types::{DataType, TensorType, ValueType};
use half::f16;
use ndarray::{Array1, ArrayD};

use crate::engine::{
    Availability, Backend, BackendKind, FeatureSpec, LoadOptions, ModelInstance, NamedTensors,
    Precision, ShapeSpec, State,
};
use crate::error::{Result, RuntimeError};
use crate::tensor::{DictKeys, Dictionary, ElementType, Tensor};
use kernels::RunCtx;
use value::Value;

/// The CPU backend.
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn load(&self, model: Arc<Model>, options: &LoadOptions) -> Result<Box<dyn ModelInstance>> {
        Ok(Box::new(CpuModel::load(&model, options)?))
    }
}

/// A model compiled for the CPU backend.
pub struct CpuModel {
    plan: plan::Plan,
    inputs: Vec<FeatureSpec>,
    outputs: Vec<FeatureSpec>,
    states: Vec<FeatureSpec>,
    precision: Precision,
    numerics: Option<crate::engine::AneNumerics>,
    numerics_warnings: Mutex<Vec<String>>,
    pool: rayon::ThreadPool,
    threads: usize,
    /// Predictions run on the caller's thread, not the pool (one thread, or
    /// [`runs_inline`]).
    inline: bool,
    /// The recycled-buffer pool may hold this model's activation peak.
    buffers: buffers::Grant<'static>,
    peak: Mutex<Option<usize>>,
}

/// Bytes of data (activations written, constants read, inputs) below which a prediction
/// runs on the caller's thread instead of the pool.
///
/// Handing a prediction to the pool and waiting for it costs two thread wake-ups, 5–10 µs
/// on the development machine, as long as the whole prediction of a small network; and a
/// plan that moves less than this cannot give two threads enough work to win it back: the
/// benchmark's convnet (~150 KB, its largest plan below the line) took about the same time
/// on 1 and 2 threads of the pool there.
pub const INLINE_MAX_BYTES: usize = 256 << 10;

/// Whether predictions of `plan` run inline: every value of a fixed size, no control flow
/// (a loop body may run any number of times), no weights kept packed (those are large),
/// and less than [`INLINE_MAX_BYTES`] of data in all.
pub fn runs_inline(plan: &plan::Plan) -> bool {
    let main = &plan.main;
    if plan.packed > 0 || main.slot_bytes.iter().any(Option::is_none) {
        return false;
    }
    let mut bytes: usize = main
        .inputs
        .iter()
        .filter_map(|&s| main.slot_bytes.get(s).copied().flatten())
        .sum();
    let mut consts = std::collections::BTreeSet::new();
    for step in &main.steps {
        if kernels::control::OPS.contains(&step.op_type.as_str()) {
            return false;
        }
        for &(slot, _) in &step.outputs {
            bytes += main.slot_bytes.get(slot).copied().flatten().unwrap_or(0);
        }
        for src in step.params.iter().flat_map(|(_, srcs)| srcs) {
            if let plan::Src::Const(i) = *src
                && consts.insert(i)
            {
                bytes += plan.consts.get(i).map_or(0, Value::nbytes);
            }
        }
    }
    bytes < INLINE_MAX_BYTES
}

fn spec_from_type(name: &str, ty: &TensorType) -> Option<FeatureSpec> {
    let dtype = ElementType::from_mil(ty.dtype)?;
    let shape = ty.shape.as_ref()?;
    let fixed: Option<Vec<usize>> = shape
        .iter()
        .map(|d| d.fixed().map(|v| v as usize))
        .collect();
    Some(FeatureSpec {
        name: name.to_string(),
        dtype,
        shape: match fixed {
            Some(shape) => ShapeSpec::Fixed { shape },
            None => ShapeSpec::Range {
                ranges: shape
                    .iter()
                    .map(|d| {
                        d.fixed()
                            .map_or((1, None), |v| (v as usize, Some(v as usize)))
                    })
                    .collect(),
                default: shape
                    .iter()
                    .map(|d| d.fixed().unwrap_or(1) as usize)
                    .collect(),
            },
        },
    })
}

impl CpuModel {
    /// Compile `model` for `options`.
    pub fn load(model: &Model, options: &LoadOptions) -> Result<Self> {
        let program = model.require_program()?;
        let summary = ModelSummary::of(model);
        let function = match &options.function {
            Some(f) => f.clone(),
            None => summary.default_function.clone().ok_or_else(|| {
                RuntimeError::Load("the model has no default function; choose one".into())
            })?,
        };
        let f = program.functions.get(&function).ok_or_else(|| {
            let names: Vec<&str> = program.functions.keys().map(String::as_str).collect();
            RuntimeError::Load(format!(
                "the model has no function {function:?} (its functions: {})",
                names.join(", ")
            ))
        })?;
        let plan = plan::compile_with(
            &function,
            f,
            plan::CompileOptions {
                fuse: options.precision != Precision::Fp16,
                ..plan::CompileOptions::default()
            },
        )?;
        // I/O specs: the description's (flexible shapes) where it covers this function, else
        // the program's declared types.
        let described = if summary.default_function.as_deref() == Some(function.as_str()) {
            Some((&summary.inputs, &summary.outputs, &summary.states))
        } else {
            None
        };
        let mut inputs = Vec::new();
        let mut states = Vec::new();
        for (name, ty) in &plan.inputs {
            match ty {
                ValueType::State(inner) => {
                    let t = inner.as_tensor().ok_or_else(|| {
                        RuntimeError::Load(format!("state {name:?} is not a tensor"))
                    })?;
                    let spec = spec_from_type(name, t).ok_or_else(|| {
                        RuntimeError::Load(format!(
                            "state {name:?} has type {t}, which the CPU backend cannot hold"
                        ))
                    })?;
                    states.push(spec);
                }
                ValueType::Tensor(t) => {
                    let from_desc = described
                        .and_then(|(i, _, _)| i.iter().find(|f| &f.name == name))
                        .and_then(FeatureSpec::from_summary);
                    let spec = from_desc
                        .or_else(|| spec_from_type(name, t))
                        .ok_or_else(|| {
                            RuntimeError::Load(format!(
                                "input {name:?} has type {t}, which cannot be passed in"
                            ))
                        })?;
                    inputs.push(spec);
                }
                other => {
                    return Err(RuntimeError::Load(format!(
                        "input {name:?} of type {other} is not supported"
                    )));
                }
            }
        }
        let outputs = plan
            .outputs
            .iter()
            .map(|(name, t)| {
                let d = described.and_then(|(_, o, _)| o.iter().find(|f| &f.name == name));
                // Classifier outputs: the description says string / int64 / dictionary.
                if let Some(spec) = d
                    .filter(|d| matches!(d.kind.as_str(), "string" | "int64" | "dictionary"))
                    .and_then(FeatureSpec::from_summary)
                {
                    return spec;
                }
                let dtype = d
                    .and_then(|d| DataType::from_name(&d.dtype))
                    .or(t.as_ref().map(|t| t.dtype))
                    .and_then(ElementType::from_mil)
                    .unwrap_or(ElementType::F32);
                let shape = t
                    .as_ref()
                    .and_then(|t| spec_from_type(name, t))
                    .map(|s| s.shape)
                    .unwrap_or(ShapeSpec::Fixed { shape: Vec::new() });
                FeatureSpec {
                    name: name.clone(),
                    dtype,
                    shape,
                }
            })
            .collect();
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("anekit-cpu-{i}"))
            .build()
            .map_err(|e| {
                RuntimeError::Load(format!("cannot start {threads} worker threads: {e}"))
            })?;
        let (planned_peak, total) = plan.main.planned_memory();
        tracing::debug!(
            steps = plan.main.steps.len(),
            planned_peak,
            total,
            threads,
            "CPU plan ready"
        );
        // One thread: the caller's own (a one-worker pool only adds the hop, and its worker,
        // once asleep, took ~60 µs to wake on the development machine).
        let inline = threads == 1 || runs_inline(&plan);
        let buffers = buffers::grant(planned_peak);
        tracing::debug!(inline, "predictions run on the caller's thread when inline");
        Ok(Self {
            inline,
            buffers,
            plan,
            inputs,
            outputs,
            states,
            precision: options.precision,
            numerics: options
                .ane_numerics
                .clone()
                .filter(|_| options.precision == Precision::Fp16),
            numerics_warnings: Mutex::new(Vec::new()),
            pool,
            threads,
            peak: Mutex::new(None),
        })
    }

    /// The compiled plan.
    pub fn plan(&self) -> &plan::Plan {
        &self.plan
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether predictions run on the caller's thread (a plan too small for the pool).
    pub fn runs_inline(&self) -> bool {
        self.inline
    }

    fn run(&self, inputs: &NamedTensors, state: Option<&mut State>) -> Result<NamedTensors> {
        let args = self.args(state.is_some(), |name| {
            inputs.get(name).map(tensor_to_value)
        })?;
        self.run_values(args, state)
    }

    /// The plan's arguments: states by name, inputs from `input` (which converts or moves
    /// the caller's tensor), in the plan's order.
    fn args(
        &self,
        with_state: bool,
        mut input: impl FnMut(&str) -> Option<Value>,
    ) -> Result<Vec<Value>> {
        let mut args = Vec::with_capacity(self.plan.inputs.len());
        for (name, ty) in &self.plan.inputs {
            args.push(match ty {
                ValueType::State(_) => {
                    if !with_state {
                        return Err(RuntimeError::State {
                            name: name.clone(),
                            message: "the model is stateful: pass a state (new_state) to predict_with_state".into(),
                        });
                    }
                    Value::State(name.clone())
                }
                _ => input(name).ok_or_else(|| RuntimeError::Input {
                    name: name.clone(),
                    message: "missing".into(),
                })?,
            });
        }
        Ok(args)
    }

    fn run_values(&self, args: Vec<Value>, state: Option<&mut State>) -> Result<NamedTensors> {
        let mut meter = exec::Meter::default();
        let body = || {
            let mut ctx = RunCtx {
                precision: self.precision,
                numerics: self.numerics.as_ref(),
                numerics_warnings: Vec::new(),
                state,
                consts: &self.plan.consts,
                state_types: &self.plan.state_types,
            };
            let outs = exec::run(&self.plan.main, args, Vec::new(), &mut ctx, &mut meter);
            (outs, std::mem::take(&mut ctx.numerics_warnings))
        };
        let (outs, warnings) = if self.inline {
            kernels::inline(body)
        } else {
            self.pool.install(body)
        };
        if let Ok(mut w) = self.numerics_warnings.lock() {
            *w = warnings;
        }
        let outs = outs?;
        exec::profile::after_prediction();
        if let Ok(mut p) = self.peak.lock() {
            *p = Some(meter.peak);
        }
        // Shapes only known at run time are missing from the planned peak.
        self.buffers.raise(meter.peak);
        let mut result = NamedTensors::new();
        for ((name, _), (v, spec)) in self
            .plan
            .outputs
            .iter()
            .zip(outs.into_iter().zip(&self.outputs))
        {
            result.insert(
                name.clone(),
                value_to_tensor(v, spec.dtype)
                    .map_err(|m| RuntimeError::Predict(format!("output {name:?}: {m}")))?,
            );
        }
        Ok(result)
    }
}

/// A tensor as a CPU value, moved: fp32, int32, bool and string tensors keep their buffer.
pub fn tensor_into_value(t: Tensor) -> Value {
    match t {
        Tensor::F32(a) => Value::F32(a),
        Tensor::I32(a) => Value::I32(a),
        Tensor::Bool(a) => Value::Bool(a),
        Tensor::Str(a) => Value::Str(a),
        t => tensor_to_value(&t),
    }
}

/// A tensor as a CPU value.
pub fn tensor_to_value(t: &Tensor) -> Value {
    match t {
        Tensor::F32(a) => Value::F32(a.clone()),
        Tensor::F16(a) => Value::F32(a.mapv(f16::to_f32)),
        Tensor::I32(a) => Value::I32(a.clone()),
        Tensor::I8(a) => Value::I32(a.mapv(i32::from)),
        Tensor::U8(a) => Value::I32(a.mapv(i32::from)),
        Tensor::Bool(a) => Value::Bool(a.clone()),
        Tensor::Str(a) => Value::Str(a.clone()),
        Tensor::Dict(d) => Value::List(vec![
            match d.keys() {
                DictKeys::Str(k) => Value::Str(Array1::from(k.clone()).into_dyn()),
                DictKeys::Int(k) => Value::I32(
                    k.iter()
                        .map(|&v| v as i32)
                        .collect::<Array1<_>>()
                        .into_dyn(),
                ),
            },
            Value::F32(
                d.values()
                    .iter()
                    .map(|&v| v as f32)
                    .collect::<Array1<_>>()
                    .into_dyn(),
            ),
        ]),
    }
}

/// A CPU value as a tensor of `dtype`.
pub fn value_to_tensor(v: Value, dtype: ElementType) -> std::result::Result<Tensor, String> {
    Ok(match (v, dtype) {
        (Value::F32(a), ElementType::F32) => Tensor::F32(a),
        (Value::F32(a), ElementType::F16) => Tensor::F16(a.mapv(f16::from_f32)),
        (Value::I32(a), ElementType::I32) => Tensor::I32(a),
        (Value::Bool(a), ElementType::Bool) => Tensor::Bool(a),
        (Value::I32(a), ElementType::I8) => Tensor::I8(a.mapv(|v| v as i8)),
        (Value::I32(a), ElementType::U8) => Tensor::U8(a.mapv(|v| v as u8)),
        (Value::F32(a), ElementType::I32) => Tensor::I32(a.mapv(|v| v as i32)),
        (Value::I32(a), ElementType::F32) => Tensor::F32(a.mapv(|v| v as f32)),
        (Value::I32(a), ElementType::F16) => Tensor::F16(a.mapv(|v| f16::from_f32(v as f32))),
        (Value::Bool(a), t) => Tensor::Bool(a).cast(t),
        (Value::Str(a), ElementType::Str) => Tensor::Str(a),
        // `classify`'s dictionary: [labels, probabilities] (see kernels/classify.rs).
        (Value::List(items), ElementType::Dict) => {
            let [keys, values] = <[Value; 2]>::try_from(items).map_err(|i| {
                format!(
                    "a dictionary is a list of keys and values, got {} items",
                    i.len()
                )
            })?;
            let keys = match keys {
                Value::Str(a) => DictKeys::Str(a.into_iter().collect()),
                Value::I32(a) => DictKeys::Int(a.iter().map(|&v| i64::from(v)).collect()),
                v => {
                    return Err(format!(
                        "dictionary keys must be strings or integers, got {}",
                        v.describe()
                    ));
                }
            };
            let values = match values {
                Value::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
                v => {
                    return Err(format!(
                        "dictionary values must be floats, got {}",
                        v.describe()
                    ));
                }
            };
            Tensor::Dict(Dictionary::new(keys, values).map_err(|e| e.to_string())?)
        }
        (v, t) => return Err(format!("cannot convert {} to {t}", v.describe())),
    })
}

/// A state tensor as a CPU value, checked against its declared type.
pub fn state_value(t: &Tensor) -> Value {
    tensor_to_value(t)
}

impl ModelInstance for CpuModel {
    fn function(&self) -> &str {
        &self.plan.function
    }
    fn inputs(&self) -> &[FeatureSpec] {
        &self.inputs
    }
    fn outputs(&self) -> &[FeatureSpec] {
        &self.outputs
    }
    fn states(&self) -> &[FeatureSpec] {
        &self.states
    }
    fn predict(&self, inputs: &NamedTensors) -> Result<NamedTensors> {
        self.run(inputs, None)
    }
    fn predict_with_state(&self, inputs: &NamedTensors, state: &mut State) -> Result<NamedTensors> {
        self.run(inputs, Some(state))
    }
    fn predict_owned(&self, mut inputs: NamedTensors) -> Result<NamedTensors> {
        let args = self.args(false, |name| inputs.remove(name).map(tensor_into_value))?;
        self.run_values(args, None)
    }
    fn numerics_warnings(&self) -> Vec<String> {
        self.numerics_warnings
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    fn peak_activation_bytes(&self) -> Option<usize> {
        self.peak.lock().ok().and_then(|p| *p)
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<CpuModel>();
    let _ = ArrayD::<f32>::zeros(ndarray::IxDyn(&[]));
}
