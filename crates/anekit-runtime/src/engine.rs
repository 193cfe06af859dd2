//! The inference-engine interface: compute units, backends, selection with reasons, loaded
//! models, prediction, states.
//!
//! A model is loaded by an [`Engine`] with [`LoadOptions`]; the engine picks a backend for
//! the requested [`ComputeUnits`] among those present on this machine and says which one
//! runs and why ([`Selection`]). Every backend — the portable CPU backend here, Core ML and
//! the direct Neural Engine path on Apple platforms — implements [`Backend`] and returns a
//! [`ModelInstance`].

use std::collections::BTreeMap;
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_mil::summary::{FeatureSummary, Flexibility};

use crate::error::{Result, RuntimeError};
use crate::tensor::{ElementType, Tensor};

/// Which compute units a model may use — Core ML's `MLComputeUnits`, with its meaning.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ComputeUnits {
    /// The CPU only.
    CpuOnly,
    /// The CPU and the GPU.
    CpuAndGpu,
    /// The CPU and the Neural Engine.
    CpuAndNeuralEngine,
    /// Any unit (Core ML decides per op).
    #[default]
    All,
}

impl ComputeUnits {
    /// Whether these units include the Neural Engine.
    pub fn includes_neural_engine(self) -> bool {
        matches!(self, Self::CpuAndNeuralEngine | Self::All)
    }

    /// Whether these units include the GPU.
    pub fn includes_gpu(self) -> bool {
        matches!(self, Self::CpuAndGpu | Self::All)
    }

    /// The name as Core ML spells it (`cpuOnly`, `cpuAndGPU`, `cpuAndNeuralEngine`, `all`).
    pub fn coreml_name(self) -> &'static str {
        match self {
            Self::CpuOnly => "cpuOnly",
            Self::CpuAndGpu => "cpuAndGPU",
            Self::CpuAndNeuralEngine => "cpuAndNeuralEngine",
            Self::All => "all",
        }
    }
}

/// A backend kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// anekit's portable CPU backend (a MIL interpreter with fast kernels).
    Cpu,
    /// Apple's Core ML framework (macOS/iOS): CPU, GPU and Neural Engine.
    CoreMl,
    /// The private AppleNeuralEngine framework, driven directly (macOS, opt-in).
    Ane,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "anekit CPU",
            Self::CoreMl => "Core ML",
            Self::Ane => "direct ANE",
        })
    }
}

/// Arithmetic precision of the CPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Compute in f32 (fp16-typed ops too).
    #[default]
    Fp32,
    /// Round the output of every fp16-typed op to fp16, as the Neural Engine computes, and
    /// stop at the first op that produces inf or NaN.
    Fp16,
}

/// The measured fp16 cliffs of one chip's Neural Engine, emulated by the CPU backend in
/// [`Precision::Fp16`]: magnitudes beyond which the engine returns a wrong answer without an
/// error. Filled from the chip catalog (`anekit_plan::catalog::Numerics`; ANEForge
/// `bench/numeric_cliffs.py` measured them on 11 machines).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AneNumerics {
    /// The chip (for messages).
    pub chip: String,
    /// Largest finite magnitude of a `matmul` or `linear` output; beyond it the engine
    /// writes inf (32752, about half the fp16 maximum, on every chip measured).
    pub matmul_max_finite: f32,
    /// Largest magnitude a slice with a non-zero begin on the last axis passes through
    /// (4094 on chips before the A16 tier, whose crop DMA clamps it to inf); `None`: exact.
    pub slice_max_finite: Option<f32>,
    /// Largest integer row sum a `reduce_sum` still returns exactly (2048: the fp16 grid
    /// coarsens beyond it).
    pub exact_integer_sum_max: f32,
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compute units the model may use.
    pub compute_units: ComputeUnits,
    /// The function to run (multifunction models); default: the model's default function.
    pub function: Option<String>,
    /// CPU-backend precision.
    pub precision: Precision,
    /// With [`Precision::Fp16`]: also emulate this chip's Neural Engine cliffs and name the
    /// first op where the engine would silently go wrong.
    pub ane_numerics: Option<AneNumerics>,
    /// Worker threads for the CPU backend (default: the number of cores).
    pub threads: Option<usize>,
}

/// Whether a backend can run on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Availability {
    /// It can.
    Available,
    /// It cannot, and why.
    Unavailable(String),
}

/// Which backend runs a loaded model, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Selection {
    /// The backend that runs the model.
    pub backend: BackendKind,
    /// The compute units asked for.
    pub requested: ComputeUnits,
    /// Why this backend, including why preferred backends were not used.
    pub reasons: Vec<String>,
}

/// Named tensors (inputs or outputs of a prediction).
pub type NamedTensors = BTreeMap<String, Tensor>;

/// The shape a feature accepts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShapeSpec {
    /// Exactly this shape.
    Fixed {
        /// The shape.
        shape: Vec<usize>,
    },
    /// Each dimension in `[lower, upper]` (`upper` `None` = unbounded).
    Range {
        /// Per-dimension bounds.
        ranges: Vec<(usize, Option<usize>)>,
        /// The default shape.
        default: Vec<usize>,
    },
    /// One of these shapes.
    Enumerated {
        /// The allowed shapes (the first is the default).
        shapes: Vec<Vec<usize>>,
    },
}

impl ShapeSpec {
    /// The default shape (what `--random` inputs use).
    pub fn default_shape(&self) -> &[usize] {
        match self {
            ShapeSpec::Fixed { shape } => shape,
            ShapeSpec::Range { default, .. } => default,
            ShapeSpec::Enumerated { shapes } => shapes.first().map_or(&[], Vec::as_slice),
        }
    }

    /// Check `shape` against the spec; the error says what is allowed.
    pub fn check(&self, shape: &[usize]) -> std::result::Result<(), String> {
        match self {
            ShapeSpec::Fixed { shape: s } if s.as_slice() == shape => Ok(()),
            ShapeSpec::Fixed { shape: s } => {
                Err(format!("shape {shape:?} given, the model takes {s:?}"))
            }
            ShapeSpec::Range { ranges, .. } => {
                if ranges.len() != shape.len() {
                    return Err(format!(
                        "rank {} given, the model takes rank {}",
                        shape.len(),
                        ranges.len()
                    ));
                }
                for (i, (&d, &(lo, hi))) in shape.iter().zip(ranges).enumerate() {
                    if d < lo || hi.is_some_and(|hi| d > hi) {
                        let hi = hi.map_or("unbounded".to_string(), |h| h.to_string());
                        return Err(format!(
                            "dimension {i} is {d}, the model allows {lo}..={hi}"
                        ));
                    }
                }
                Ok(())
            }
            ShapeSpec::Enumerated { shapes } => {
                if shapes.iter().any(|s| s.as_slice() == shape) {
                    Ok(())
                } else {
                    Err(format!(
                        "shape {shape:?} given, the model takes one of {shapes:?}"
                    ))
                }
            }
        }
    }
}

/// An input, output or state of a loaded model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureSpec {
    /// Name.
    pub name: String,
    /// Element type exchanged (`Str` / `Dict` for a classifier's label / probabilities).
    pub dtype: ElementType,
    /// Accepted shapes (outputs: the declared shape, unknown dimensions as 0 in a range;
    /// string, int64 and dictionary features: `[]`).
    pub shape: ShapeSpec,
}

impl FeatureSpec {
    /// A spec from a model-description feature: tensors, and the classifier features —
    /// strings ([`ElementType::Str`]), int64 scalars (exchanged as [`ElementType::I32`]) and
    /// dictionaries ([`ElementType::Dict`]), each with shape `[]`. `None` for images,
    /// doubles and sequences.
    pub fn from_summary(f: &FeatureSummary) -> Option<Self> {
        let scalar = match f.kind.as_str() {
            "string" => Some(ElementType::Str),
            "int64" => Some(ElementType::I32),
            "dictionary" => Some(ElementType::Dict),
            _ => None,
        };
        if let Some(dtype) = scalar {
            return Some(Self {
                name: f.name.clone(),
                dtype,
                shape: ShapeSpec::Fixed { shape: Vec::new() },
            });
        }
        let dtype = anekit_mil::DataType::from_name(&f.dtype).and_then(ElementType::from_mil)?;
        let dims = |v: &[i64]| {
            v.iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect::<Vec<_>>()
        };
        let shape = match &f.flexible {
            None => ShapeSpec::Fixed {
                shape: dims(&f.shape),
            },
            Some(Flexibility::Range { ranges }) => ShapeSpec::Range {
                ranges: ranges
                    .iter()
                    .map(|&(lo, hi)| (lo as usize, hi.map(|h| h as usize)))
                    .collect(),
                default: dims(&f.shape),
            },
            Some(Flexibility::Enumerated { shapes }) => ShapeSpec::Enumerated {
                shapes: shapes.iter().map(|s| dims(s)).collect(),
            },
        };
        Some(Self {
            name: f.name.clone(),
            dtype,
            shape,
        })
    }
}

/// The interface of a loaded model (each backend implements it).
pub trait ModelInstance: Send + Sync {
    /// The function being run.
    fn function(&self) -> &str;
    /// Inputs.
    fn inputs(&self) -> &[FeatureSpec];
    /// Outputs.
    fn outputs(&self) -> &[FeatureSpec];
    /// States (stateful models).
    fn states(&self) -> &[FeatureSpec];
    /// Run one prediction. Stateful models need [`ModelInstance::predict_with_state`].
    fn predict(&self, inputs: &NamedTensors) -> Result<NamedTensors>;
    /// Run one prediction that reads and updates `state`.
    fn predict_with_state(&self, inputs: &NamedTensors, state: &mut State) -> Result<NamedTensors>;
    /// Peak bytes of activation memory the last prediction held (CPU backend), if known.
    fn peak_activation_bytes(&self) -> Option<usize> {
        None
    }
    /// Where the last prediction crossed a Neural Engine numerics cliff that does not stop it
    /// (a row sum beyond the exact-integer range), first op first; empty unless the model was
    /// loaded with [`LoadOptions::ane_numerics`].
    fn numerics_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The state of a stateful model (Core ML's `MLState`): one tensor per state, zero when
/// created, read by `read_state` and replaced by `write_state` (`coreml_update_state`).
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    values: BTreeMap<String, Tensor>,
}

impl State {
    /// A state with every tensor of `specs` zero.
    pub fn new(specs: &[FeatureSpec]) -> Self {
        Self {
            values: specs
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        Tensor::zeros(s.dtype, s.shape.default_shape()),
                    )
                })
                .collect(),
        }
    }

    /// The current value of state `name`.
    pub fn read(&self, name: &str) -> Result<&Tensor> {
        self.values.get(name).ok_or_else(|| RuntimeError::State {
            name: name.into(),
            message: "no such state".into(),
        })
    }

    /// Replace state `name` (same element type and shape).
    pub fn write(&mut self, name: &str, value: Tensor) -> Result<()> {
        let cur = self
            .values
            .get_mut(name)
            .ok_or_else(|| RuntimeError::State {
                name: name.into(),
                message: "no such state".into(),
            })?;
        if cur.dtype() != value.dtype() || cur.shape() != value.shape() {
            return Err(RuntimeError::State {
                name: name.into(),
                message: format!(
                    "is {} {:?}; cannot write {} {:?}",
                    cur.dtype(),
                    cur.shape(),
                    value.dtype(),
                    value.shape()
                ),
            });
        }
        *cur = value;
        Ok(())
    }

    /// Names of the states.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// A backend.
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Whether it can run on this machine.
    fn availability(&self) -> Availability;
    /// Load `model` for `options`.
    fn load(&self, model: Arc<Model>, options: &LoadOptions) -> Result<Box<dyn ModelInstance>>;
}

/// A model loaded by an [`Engine`]: the instance and the selection that made it.
pub struct LoadedModel {
    instance: Box<dyn ModelInstance>,
    selection: Selection,
}

impl LoadedModel {
    /// Which backend runs the model and why.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// A new state for a stateful model (every state zero).
    pub fn new_state(&self) -> State {
        State::new(self.instance.states())
    }

    /// Check inputs against the model and run one prediction.
    pub fn predict(&self, inputs: &NamedTensors) -> Result<NamedTensors> {
        self.check_inputs(inputs)?;
        if !self.instance.states().is_empty() {
            return Err(RuntimeError::Load(format!(
                "function {:?} is stateful: create a state with new_state() and call predict_with_state",
                self.instance.function()
            )));
        }
        self.instance.predict(inputs)
    }

    /// Check inputs and run one prediction that reads and updates `state`.
    pub fn predict_with_state(
        &self,
        inputs: &NamedTensors,
        state: &mut State,
    ) -> Result<NamedTensors> {
        self.check_inputs(inputs)?;
        self.instance.predict_with_state(inputs, state)
    }

    /// Run a batch of predictions (in order), as Core ML's batch prediction does.
    pub fn predict_batch(&self, batch: &[NamedTensors]) -> Result<Vec<NamedTensors>> {
        batch.iter().map(|inputs| self.predict(inputs)).collect()
    }

    /// The loaded instance.
    pub fn instance(&self) -> &dyn ModelInstance {
        self.instance.as_ref()
    }

    /// Inputs of the model.
    pub fn inputs(&self) -> &[FeatureSpec] {
        self.instance.inputs()
    }

    /// Outputs of the model.
    pub fn outputs(&self) -> &[FeatureSpec] {
        self.instance.outputs()
    }

    fn check_inputs(&self, inputs: &NamedTensors) -> Result<()> {
        let specs = self.instance.inputs();
        for name in inputs.keys() {
            if !specs.iter().any(|s| &s.name == name) {
                let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(RuntimeError::Input {
                    name: name.clone(),
                    message: format!(
                        "the model has no such input (its inputs: {})",
                        known.join(", ")
                    ),
                });
            }
        }
        for s in specs {
            let t = inputs.get(&s.name).ok_or_else(|| RuntimeError::Input {
                name: s.name.clone(),
                message: format!(
                    "missing (expected {} {:?})",
                    s.dtype,
                    s.shape.default_shape()
                ),
            })?;
            if t.dtype() != s.dtype {
                return Err(RuntimeError::Input {
                    name: s.name.clone(),
                    message: format!("is {}, the model takes {}", t.dtype(), s.dtype),
                });
            }
            s.shape
                .check(t.shape())
                .map_err(|message| RuntimeError::Input {
                    name: s.name.clone(),
                    message,
                })?;
        }
        Ok(())
    }
}

/// The engine: the backends present on this machine.
pub struct Engine {
    backends: Vec<Arc<dyn Backend>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An engine with every backend built into this binary (the CPU backend everywhere;
    /// Core ML and the direct ANE path are registered on Apple platforms by
    /// [`Engine::register`]).
    pub fn new() -> Self {
        Self {
            backends: vec![Arc::new(crate::cpu::CpuBackend)],
        }
    }

    /// Add a backend (Apple backends register themselves here).
    pub fn register(&mut self, backend: Arc<dyn Backend>) {
        self.backends.retain(|b| b.kind() != backend.kind());
        self.backends.push(backend);
    }

    /// Each backend with its availability.
    pub fn backends(&self) -> Vec<(BackendKind, Availability)> {
        self.backends
            .iter()
            .map(|b| (b.kind(), b.availability()))
            .collect()
    }

    /// Choose a backend for `units`: Core ML when present (it honours every setting), else
    /// the CPU backend; every preferred backend that is missing is named with its reason.
    pub fn select(&self, units: ComputeUnits) -> Result<(Arc<dyn Backend>, Selection)> {
        let mut reasons = Vec::new();
        let find = |k: BackendKind| self.backends.iter().find(|b| b.kind() == k);
        let preference: &[BackendKind] = match units {
            ComputeUnits::CpuOnly => &[BackendKind::Cpu],
            _ => &[BackendKind::CoreMl, BackendKind::Cpu],
        };
        for &kind in preference {
            match find(kind).map(|b| (b, b.availability())) {
                Some((b, Availability::Available)) => {
                    if kind == BackendKind::Cpu && units != ComputeUnits::CpuOnly {
                        let wanted = match units {
                            ComputeUnits::CpuAndGpu => "the GPU",
                            ComputeUnits::CpuAndNeuralEngine => "the Neural Engine",
                            _ => "the GPU and the Neural Engine",
                        };
                        reasons.push(format!(
                            "{} asked for {wanted}, which only Core ML reaches; running on the CPU instead",
                            units.coreml_name()
                        ));
                    } else {
                        reasons.push(format!("{} runs {}", kind, units.coreml_name()));
                    }
                    return Ok((
                        b.clone(),
                        Selection {
                            backend: kind,
                            requested: units,
                            reasons,
                        },
                    ));
                }
                Some((_, Availability::Unavailable(why))) => {
                    reasons.push(format!("{kind} is unavailable: {why}"))
                }
                None => reasons.push(format!("{kind} is unavailable: {}", not_built_reason(kind))),
            }
        }
        Err(RuntimeError::Load(format!(
            "no backend can run {}: {}",
            units.coreml_name(),
            reasons.join("; ")
        )))
    }

    /// Load `model` with `options`.
    pub fn load(&self, model: Arc<Model>, options: &LoadOptions) -> Result<LoadedModel> {
        let (backend, selection) = self.select(options.compute_units)?;
        tracing::info!(backend = %selection.backend, reasons = ?selection.reasons, "selected backend");
        let instance = backend.load(model, options)?;
        Ok(LoadedModel {
            instance,
            selection,
        })
    }
}

fn not_built_reason(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Cpu => "not registered",
        BackendKind::CoreMl | BackendKind::Ane if !cfg!(target_vendor = "apple") => {
            "Core ML and the Neural Engine exist only on Apple platforms (macOS, iOS)"
        }
        BackendKind::CoreMl => "not registered in this engine",
        BackendKind::Ane => "the direct ANE backend is an opt-in feature of anekit-apple",
    }
}
