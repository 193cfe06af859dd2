//! The inference-engine interface and the portable CPU backend.
//!
//! - [`engine`]: compute units, backend selection with stated reasons, loaded models,
//!   prediction (single, batch, stateful), flexible-shape checks.
//! - [`cpu`]: the CPU backend — compiles a MIL function into a plan (elementwise ops fused,
//!   big weights kept compressed and decoded inside the matrix kernels, slots freed by
//!   lifetime), runs it with multithreaded kernels.
//! - [`tensor`], [`npy`]: tensors and NumPy files.
//!
//! The Apple backends (Core ML, the direct Neural Engine path) implement the same
//! [`engine::Backend`] trait in `anekit-apple`.

#![forbid(unsafe_code)]

pub mod coverage;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod npy;
pub mod tensor;

pub use engine::{
    AneNumerics, Backend, BackendChoice, BackendKind, ComputeUnits, Engine, FeatureSpec,
    LoadOptions, LoadedModel, ModelInstance, NamedTensors, Precision, Selection, ShapeSpec, State,
};
pub use error::{Result, RuntimeError};
pub use tensor::{Deviation, DictKeys, Dictionary, ElementType, Tensor};
