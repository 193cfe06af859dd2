//! anekit: read, check, analyze, compress and run Core ML models, with Apple's Neural
//! Engine in mind.
//!
//! This crate is the front door to the anekit workspace. [`Model::open`] reads a
//! `.mlpackage`, `.mlmodel` or compiled `.mlmodelc` (weights memory-mapped); a [`Model`]
//! can then be [inspected](Model::inspect), [analyzed](Model::analyze) for a chip (where Core
//! ML will place each op — Neural Engine, GPU or CPU — and what it will cost),
//! [compressed](Model::compress) the way `coremltools.optimize.coreml` does, and
//! [run](Model::run) — on anekit's CPU backend on any OS, on Core ML (and, with the
//! `private-ane` feature, directly on the Neural Engine) on a Mac.
//!
//! ```
//! use anekit::Model;
//!
//! # fn main() -> anekit::Result<()> {
//! // Any .mlpackage, .mlmodel or .mlmodelc; this one (a small transformer decoder that
//! // coremltools converted from PyTorch) is bundled with anekit.
//! let model = Model::open(anekit::bundled::path()?)?;
//! let inputs = anekit::bundled::sample_inputs()?; // or anekit::npy::read("x.npy")
//! let outputs = model.run(&inputs)?;
//! for (name, t) in &outputs {
//!     println!("{name}: {} {:?}", t.dtype(), t.shape());
//! }
//! # assert!(!outputs.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! Analyze for a chip and compress, with the accuracy the compression costs:
//!
//! ```
//! # fn main() -> anekit::Result<()> {
//! let model = anekit::Model::open(anekit::bundled::path()?)?;
//! let report = model.analyze("M1")?;
//! println!(
//!     "{:.0}% of the ops on the Neural Engine, {:.2} ms estimated",
//!     report.coverage.ane_fraction_ops * 100.0,
//!     report.estimate.latency_ms
//! );
//! let flags = anekit::compress::Flags {
//!     quantize: Some(anekit::compress::QuantDtype::Int8),
//!     ..Default::default()
//! };
//! let compressed = model.compress(&flags.resolve()?)?;
//! let accuracy = compressed.accuracy(&model, &anekit::bundled::sample_inputs()?)?;
//! for o in &accuracy {
//!     println!("{}: SNR {:?} dB vs the original", o.name, o.snr_db);
//! }
//! # assert!(compressed.report.bytes_after() < compressed.report.bytes_before());
//! # Ok(())
//! # }
//! ```
//!
//! The crates underneath are re-exported for everything this API does not cover:
//! [`format`] (files), [`mil`] (the IR), [`plan`] (compute-plan prediction), [`compress`]
//! (the quantization engine), [`runtime`] (the inference-engine interface and CPU
//! backend), [`apple`] (Core ML, Metal, IOKit; empty off Apple platforms) and [`metrics`]
//! (hardware metrics). New model kinds and backends plug in there: a frontend that yields a
//! [`mil::model::Model`] gets every method of [`Model`] through [`Model::from_mil`], and a
//! backend registered with [`Model::engine`]'s [`runtime::Engine::register`] is selected
//! by [`Model::load`].

pub mod bundled;
pub mod inputs;

/// The library example of the repository's README, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

use std::path::Path;
use std::sync::Arc;

pub use anekit_apple as apple;
pub use anekit_compress as compress;
pub use anekit_format as format;
pub use anekit_metrics as metrics;
pub use anekit_mil as mil;
pub use anekit_plan as plan;
pub use anekit_runtime as runtime;
pub use anekit_runtime::{
    ComputeUnits, ElementType, LoadOptions, LoadedModel, NamedTensors, Precision, Tensor, npy,
};

/// What can go wrong, by the layer it comes from; every message names the file, op or field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a model file.
    #[error(transparent)]
    Format(#[from] anekit_format::FormatError),
    /// The model's program (IR conversion, validation).
    #[error(transparent)]
    Mil(#[from] anekit_mil::MilError),
    /// Compute-plan prediction.
    #[error(transparent)]
    Plan(#[from] anekit_plan::PlanError),
    /// Compression.
    #[error(transparent)]
    Compress(#[from] anekit_compress::CompressError),
    /// Loading or running.
    #[error(transparent)]
    Runtime(#[from] anekit_runtime::RuntimeError),
    /// A file or folder of anekit's own (the bundled model's cache copy).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Open a model (`.mlpackage`, `.mlmodel` or `.mlmodelc`); see [`Model::open`].
pub fn open(path: impl AsRef<Path>) -> Result<Model> {
    Model::open(path)
}

/// A Core ML model.
#[derive(Debug, Clone)]
pub struct Model {
    inner: Arc<anekit_mil::model::Model>,
}

impl Model {
    /// Open a `.mlpackage`, `.mlmodel` or compiled `.mlmodelc` (the kind is told by the
    /// content). Weights are memory-mapped, not read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::from_mil(anekit_mil::model::Model::open(path)?))
    }

    /// A model held by the IR crate (from another frontend, or built in memory).
    pub fn from_mil(model: anekit_mil::model::Model) -> Self {
        Self {
            inner: Arc::new(model),
        }
    }

    /// The model as the IR crate holds it: specification, program, weights.
    pub fn mil(&self) -> &anekit_mil::model::Model {
        &self.inner
    }

    /// What `anekit inspect` shows: format, version, functions, inputs and outputs,
    /// metadata, op histogram, parameters and weight bytes, compression ops.
    pub fn inspect(&self) -> anekit_mil::summary::ModelSummary {
        anekit_mil::summary::ModelSummary::of(&self.inner)
    }

    /// Where Core ML will place every op on `chip` (a name, alias or device: `M1`,
    /// `A17 Pro`, `iPhone 15 Pro`) with all compute units, and what it will cost; see
    /// [`Model::analyze_with`].
    pub fn analyze(&self, chip: &str) -> Result<anekit_plan::Report> {
        self.analyze_with(&anekit_plan::Options {
            chip: chip.into(),
            compare: false,
            ..Default::default()
        })
    }

    /// [`Model::analyze`] with every option (compute units, function, the comparison with
    /// every chip of the catalog).
    pub fn analyze_with(&self, options: &anekit_plan::Options) -> Result<anekit_plan::Report> {
        Ok(anekit_plan::analyze_model(&self.inner, options)?)
    }

    /// A compressed copy of the model (this one is left as it was); build the configuration
    /// from a [`compress::Flags`], a TOML file ([`compress::Config::from_toml`]) or by hand.
    pub fn compress(&self, config: &anekit_compress::Config) -> Result<Compressed> {
        self.compress_with_progress(config, &anekit_compress::NoProgress)
    }

    /// [`Model::compress`], reporting each weight to `progress` as it is done.
    pub fn compress_with_progress(
        &self,
        config: &anekit_compress::Config,
        progress: &dyn anekit_compress::Progress,
    ) -> Result<Compressed> {
        let mut copy = (*self.inner).clone();
        copy.source = None;
        let report = anekit_compress::compress_model(&mut copy, config, progress)?;
        Ok(Compressed {
            model: Self::from_mil(copy),
            report,
            fp16: config.fp16,
        })
    }

    /// Write the model as an `.mlpackage` (through a temporary sibling renamed into
    /// place; never over the package it was read from).
    pub fn save(&self, dest: impl AsRef<Path>) -> Result<std::path::PathBuf> {
        Ok(self.inner.save_mlpackage(dest)?)
    }

    /// The engine [`Model::load`] uses: the CPU backend, plus Core ML (and the direct
    /// Neural Engine backend with the `private-ane` feature) on Apple platforms.
    pub fn engine() -> anekit_runtime::Engine {
        let mut engine = anekit_runtime::Engine::new();
        anekit_apple::register(&mut engine);
        engine
    }

    /// Load the model for predictions: the engine picks the backend for
    /// `options.compute_units` and says which and why
    /// ([`LoadedModel::selection`]).
    pub fn load(&self, options: &LoadOptions) -> Result<LoadedModel> {
        Ok(Self::engine().load(self.inner.clone(), options)?)
    }

    /// One prediction with the default options (every compute unit: Core ML on a Mac, the
    /// CPU backend elsewhere); a stateful model runs on a fresh state.
    pub fn run(&self, inputs: &NamedTensors) -> Result<NamedTensors> {
        let loaded = self.load(&LoadOptions::default())?;
        run_loaded(&loaded, inputs)
    }
}

/// One prediction on a loaded model (on a fresh state if the model is stateful).
pub fn run_loaded(loaded: &LoadedModel, inputs: &NamedTensors) -> Result<NamedTensors> {
    Ok(if loaded.instance().states().is_empty() {
        loaded.predict(inputs)?
    } else {
        let mut state = loaded.new_state();
        loaded.predict_with_state(inputs, &mut state)?
    })
}

/// A compressed model and what the compression did.
#[derive(Debug, Clone)]
pub struct Compressed {
    /// The compressed model.
    pub model: Model,
    /// What was compressed, how, and the weight error it introduced.
    pub report: anekit_compress::Report,
    /// Whether the fp16 compute-precision stage ran (the model is then evaluated at fp16).
    pub fp16: bool,
}

/// How far one output of a compressed model is from the original's.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutputError {
    /// The output.
    pub name: String,
    /// Signal-to-noise ratio against the original, dB (`None`: identical).
    pub snr_db: Option<f64>,
    /// Largest absolute difference.
    pub max_abs_error: f64,
}

impl Compressed {
    /// Run the original and the compressed model on the same inputs with the CPU backend
    /// (the compressed one at fp16 precision if its compute precision was converted, as the
    /// Neural Engine computes) and measure each output's SNR and largest error.
    pub fn accuracy(&self, original: &Model, inputs: &NamedTensors) -> Result<Vec<OutputError>> {
        let cpu = |m: &Model, precision| -> Result<LoadedModel> {
            let mut engine = anekit_runtime::Engine::new();
            engine.register(Arc::new(anekit_runtime::cpu::CpuBackend));
            let options = LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                precision,
                ..LoadOptions::default()
            };
            Ok(engine.load(m.inner.clone(), &options)?)
        };
        let precision = if self.fp16 {
            Precision::Fp16
        } else {
            Precision::Fp32
        };
        let a = run_loaded(&cpu(original, Precision::Fp32)?, inputs)?;
        let b = run_loaded(&cpu(&self.model, precision)?, inputs)?;
        let mut out = Vec::new();
        for (name, ta) in &a {
            let Some(tb) = b.get(name) else { continue };
            let d = tb.deviation(ta).ok_or_else(|| {
                Error::Other(format!(
                    "output {name}: the compressed model gives shape {:?}, the original {:?}",
                    tb.shape(),
                    ta.shape()
                ))
            })?;
            out.push(OutputError {
                name: name.clone(),
                snr_db: (d.noise > 0.0).then(|| d.snr_db()),
                max_abs_error: d.max_abs,
            });
        }
        Ok(out)
    }
}
