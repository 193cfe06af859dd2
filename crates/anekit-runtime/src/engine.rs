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

pub use anekit_mil::ComputeUnits;

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

/// Which backend `Engine::load` should use (`--backend` on the command line).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// Core ML when this build and machine have it (it honours every compute-units setting
    /// and falls back per op), else the CPU backend. The direct Neural Engine backend is
    /// never chosen automatically: it drives a private framework that can change with any
    /// macOS update, runs only whole programs the Neural Engine accepts, and must be asked
    /// for by name.
    #[default]
    Auto,
    /// Core ML, or an error saying why it cannot run here.
    CoreMl,
    /// The direct Neural Engine backend (private AppleNeuralEngine framework, macOS, cargo
    /// feature `private-ane`), or an error saying why it cannot run here.
    Ane,
    /// anekit's portable CPU backend.
    Cpu,
}

impl BackendChoice {
    /// Every choice, in `--backend` order.
    pub const ALL: [BackendChoice; 4] = [Self::Auto, Self::CoreMl, Self::Ane, Self::Cpu];

    /// The command-line spelling (`auto`, `coreml`, `ane`, `cpu`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::CoreMl => "coreml",
            Self::Ane => "ane",
            Self::Cpu => "cpu",
        }
    }

    /// Parse the command-line spelling (`core-ml`, `direct-ane` are accepted too).
    pub fn parse(s: &str) -> Option<Self> {
        let n: String = s
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        Some(match n.as_str() {
            "auto" => Self::Auto,
            "coreml" => Self::CoreMl,
            "ane" | "directane" => Self::Ane,
            "cpu" => Self::Cpu,
            _ => return None,
        })
    }

    /// The backend this choice names (`None` for `Auto`).
    pub fn kind(self) -> Option<BackendKind> {
        match self {
            Self::Auto => None,
            Self::CoreMl => Some(BackendKind::CoreMl),
            Self::Ane => Some(BackendKind::Ane),
            Self::Cpu => Some(BackendKind::Cpu),
        }
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("unknown backend `{s}` (auto, coreml, ane, cpu)"))
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
    /// Which backend runs it ([`BackendChoice::Auto`]: Core ML when present, else the CPU).
    pub backend: BackendChoice,
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
    /// The backend asked for.
    pub choice: BackendChoice,
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
        // An image input is passed as the program's fp32 pixel tensor (see the CLI's image
        // decoding), not as the description's 8-bit image.
        if f.kind == "image" {
            return None;
        }
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
    /// Run one prediction on inputs the caller gives up: a backend that computes on the
    /// inputs' own buffers (the CPU backend) moves them in instead of copying them. The
    /// default borrows them ([`ModelInstance::predict`]).
    fn predict_owned(&self, inputs: NamedTensors) -> Result<NamedTensors> {
        self.predict(&inputs)
    }
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

/// A backend's own copy of a [`State`] (Core ML keeps one `MLState` per caller state, so
/// that predictions neither copy the state in nor out): the state's tensors are read from
/// it lazily, and writes are handed to it before the next prediction.
pub trait BackendState: Send + Sync {
    /// Which loaded model owns it (a backend uses its own address or id); a state used with
    /// another model is re-created there from the tensors.
    fn owner(&self) -> usize;
    /// The current value of state `name`.
    fn read(&self, name: &str) -> Result<Tensor>;
    /// Replaces state `name`.
    fn write(&mut self, name: &str, value: &Tensor) -> Result<()>;
    /// For a backend to recover its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// The state of a stateful model (Core ML's `MLState`): one tensor per state, zero when
/// created, read by `read_state` and replaced by `write_state` (`coreml_update_state`).
///
/// A backend may attach its own copy ([`BackendState`], [`State::attach`]); the tensors are
/// then read from it when asked for, and tensors written through [`State::write`] are
/// handed to it before the next prediction ([`State::take_pending`]).
pub struct State {
    values: BTreeMap<String, std::sync::OnceLock<Tensor>>,
    /// Shape and type of each state (what `write` checks against).
    specs: BTreeMap<String, (ElementType, Vec<usize>)>,
    backend: Option<Box<dyn BackendState>>,
    /// States written since the backend copy was last synchronised.
    pending: Vec<String>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("names", &self.specs.keys().collect::<Vec<_>>())
            .field("backend", &self.backend.is_some())
            .finish_non_exhaustive()
    }
}

impl Clone for State {
    /// A detached copy: every tensor read out (from the backend copy where attached).
    fn clone(&self) -> Self {
        let values = self
            .specs
            .iter()
            .map(|(name, (dtype, shape))| {
                let t = self
                    .read(name)
                    .cloned()
                    .unwrap_or_else(|_| Tensor::zeros(*dtype, shape));
                (name.clone(), std::sync::OnceLock::from(t))
            })
            .collect();
        Self {
            values,
            specs: self.specs.clone(),
            backend: None,
            pending: Vec::new(),
        }
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs
            && self
                .specs
                .keys()
                .all(|n| match (self.read(n), other.read(n)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                })
    }
}

impl State {
    /// A state with every tensor of `specs` zero.
    pub fn new(specs: &[FeatureSpec]) -> Self {
        let mut values = BTreeMap::new();
        let mut shapes = BTreeMap::new();
        for s in specs {
            let shape = s.shape.default_shape().to_vec();
            values.insert(
                s.name.clone(),
                std::sync::OnceLock::from(Tensor::zeros(s.dtype, &shape)),
            );
            shapes.insert(s.name.clone(), (s.dtype, shape));
        }
        Self {
            values,
            specs: shapes,
            backend: None,
            pending: Vec::new(),
        }
    }

    fn missing(name: &str) -> RuntimeError {
        RuntimeError::State {
            name: name.into(),
            message: "no such state".into(),
        }
    }

    /// The current value of state `name` (read from the backend copy when one is attached
    /// and the tensor has not been read since the last prediction).
    pub fn read(&self, name: &str) -> Result<&Tensor> {
        let cell = self.values.get(name).ok_or_else(|| Self::missing(name))?;
        if let Some(t) = cell.get() {
            return Ok(t);
        }
        let backend = self.backend.as_ref().ok_or_else(|| RuntimeError::State {
            name: name.into(),
            message: "no value and no backend copy (internal error)".into(),
        })?;
        let t = backend.read(name)?;
        Ok(cell.get_or_init(|| t))
    }

    /// Replace state `name` (same element type and shape).
    pub fn write(&mut self, name: &str, value: Tensor) -> Result<()> {
        let (dtype, shape) = self.specs.get(name).ok_or_else(|| Self::missing(name))?;
        if *dtype != value.dtype() || shape.as_slice() != value.shape() {
            return Err(RuntimeError::State {
                name: name.into(),
                message: format!(
                    "is {} {:?}; cannot write {} {:?}",
                    dtype,
                    shape,
                    value.dtype(),
                    value.shape()
                ),
            });
        }
        let cell = self
            .values
            .get_mut(name)
            .ok_or_else(|| Self::missing(name))?;
        *cell = std::sync::OnceLock::from(value);
        if self.backend.is_some() && !self.pending.iter().any(|p| p == name) {
            self.pending.push(name.to_string());
        }
        Ok(())
    }

    /// Names of the states.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.keys().map(String::as_str)
    }

    /// The attached backend copy, when it belongs to `owner`.
    pub fn backend_mut(&mut self, owner: usize) -> Option<&mut (dyn BackendState + 'static)> {
        match &mut self.backend {
            Some(b) if b.owner() == owner => Some(b.as_mut()),
            _ => None,
        }
    }

    /// Attaches a backend copy made from the current tensors (replacing another one, whose
    /// values are read out first).
    pub fn attach(&mut self, backend: Box<dyn BackendState>) -> Result<()> {
        self.detach()?;
        self.backend = Some(backend);
        self.pending.clear();
        Ok(())
    }

    /// Reads every tensor out of the backend copy and drops it.
    pub fn detach(&mut self) -> Result<()> {
        let names: Vec<String> = self.specs.keys().cloned().collect();
        for n in &names {
            self.read(n)?;
        }
        self.backend = None;
        self.pending.clear();
        Ok(())
    }

    /// The states written through [`State::write`] since the last call, with their
    /// values, for the backend copy to take over before a prediction.
    pub fn take_pending(&mut self) -> Vec<(String, Tensor)> {
        let names = std::mem::take(&mut self.pending);
        names
            .into_iter()
            .filter_map(|n| {
                let t = self.values.get(&n)?.get()?.clone();
                Some((n, t))
            })
            .collect()
    }

    /// After a prediction that updated the backend copy: forget the tensors held here, so
    /// that the next [`State::read`] fetches the new values.
    pub fn backend_updated(&mut self) {
        if self.backend.is_some() {
            for cell in self.values.values_mut() {
                *cell = std::sync::OnceLock::new();
            }
            self.pending.clear();
        }
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
            return Err(RuntimeError::Predict(format!(
                "function {:?} is stateful: create a state with new_state() and call predict_with_state",
                self.instance.function()
            )));
        }
        self.instance.predict(inputs)
    }

    /// [`LoadedModel::predict`] on inputs the caller gives up: the CPU backend then runs on
    /// the input tensors' own buffers instead of copying them (fp32 and int32 tensors).
    pub fn predict_owned(&self, inputs: NamedTensors) -> Result<NamedTensors> {
        self.check_inputs(&inputs)?;
        if !self.instance.states().is_empty() {
            return Err(RuntimeError::Predict(format!(
                "function {:?} is stateful: create a state with new_state() and call predict_with_state",
                self.instance.function()
            )));
        }
        self.instance.predict_owned(inputs)
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

    /// Choose a backend for `units` and `choice`. `Auto`: Core ML when present (it honours
    /// every setting), else the CPU backend; a named backend or an error saying why it
    /// cannot run here. Every backend passed over is named with its reason.
    pub fn select(
        &self,
        units: ComputeUnits,
        choice: BackendChoice,
    ) -> Result<(Arc<dyn Backend>, Selection)> {
        let mut reasons = Vec::new();
        let find = |k: BackendKind| self.backends.iter().find(|b| b.kind() == k);
        let preference: &[BackendKind] = match choice {
            BackendChoice::Auto => {
                reasons.push(auto_reason(units).to_string());
                match units {
                    ComputeUnits::CpuOnly => &[BackendKind::Cpu],
                    _ => &[BackendKind::CoreMl, BackendKind::Cpu],
                }
            }
            BackendChoice::CoreMl => &[BackendKind::CoreMl],
            BackendChoice::Cpu => &[BackendKind::Cpu],
            BackendChoice::Ane => {
                if !units.neural_engine() {
                    return Err(RuntimeError::Load(format!(
                        "--backend ane runs the whole program on the Neural Engine, but compute \
                         units `{}` exclude it (use --compute-units all or cpu-and-ne)",
                        units.name()
                    )));
                }
                &[BackendKind::Ane]
            }
        };
        for &kind in preference {
            match find(kind).map(|b| (b, b.availability())) {
                Some((b, Availability::Available)) => {
                    reasons.push(chosen_reason(kind, units, choice));
                    return Ok((
                        b.clone(),
                        Selection {
                            backend: kind,
                            requested: units,
                            choice,
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
            "no backend can run {} with --backend {choice}: {}",
            units.coreml_name(),
            reasons.join("; ")
        )))
    }

    /// Load `model` with `options`. Its ML Program is validated first ([`RuntimeError::Invalid`]
    /// names every problem).
    pub fn load(&self, model: Arc<Model>, options: &LoadOptions) -> Result<LoadedModel> {
        // Validation is part of loading: an invalid program is refused with every problem
        // named, whichever backend would have run it (Core ML would refuse to compile it).
        if let Some(program) = &model.program {
            anekit_mil::validate::require_valid(program)?;
        }
        let (backend, selection) = self.select(options.compute_units, options.backend)?;
        tracing::info!(backend = %selection.backend, reasons = ?selection.reasons, "selected backend");
        let instance = backend.load(model, options)?;
        Ok(LoadedModel {
            instance,
            selection,
        })
    }
}

/// Why `auto` prefers what it prefers (stated in every automatic selection).
fn auto_reason(units: ComputeUnits) -> &'static str {
    match units {
        ComputeUnits::CpuOnly => "auto: cpu-only runs on anekit's CPU backend",
        _ => {
            "auto: Core ML first (it honours every compute-units setting and falls back per \
             op), then the CPU backend; the direct ANE backend is used only when asked for \
             (--backend ane)"
        }
    }
}

/// Why the backend that runs was chosen.
fn chosen_reason(kind: BackendKind, units: ComputeUnits, choice: BackendChoice) -> String {
    match (kind, units) {
        (BackendKind::Cpu, ComputeUnits::CpuOnly) => format!("{kind} runs cpuOnly"),
        (BackendKind::Cpu, _) => {
            let wanted = match units {
                ComputeUnits::CpuAndGpu => "the GPU",
                ComputeUnits::CpuAndNe => "the Neural Engine",
                _ => "the GPU and the Neural Engine",
            };
            if choice == BackendChoice::Cpu {
                format!(
                    "{} asked for {wanted}; --backend cpu runs every op on the CPU",
                    units.coreml_name()
                )
            } else {
                format!(
                    "{} asked for {wanted}, which only Core ML reaches; running on the CPU instead",
                    units.coreml_name()
                )
            }
        }
        (BackendKind::Ane, _) => {
            format!("{kind} runs the whole program on the Neural Engine (no CPU or GPU fallback)")
        }
        (BackendKind::CoreMl, _) => format!("{kind} runs {}", units.coreml_name()),
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
