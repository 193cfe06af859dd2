//! The error type of the runtime.

use anekit_mil::MilError;

/// An error loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Reading or converting the model failed.
    #[error(transparent)]
    Mil(#[from] MilError),
    /// An input tensor is missing, unknown, or of the wrong type or shape.
    #[error("input {name:?}: {message}")]
    Input {
        /// The input's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The model uses an op the CPU backend cannot run.
    #[error("op {op:?} ({op_type}): not supported by the CPU backend: {message}")]
    Unsupported {
        /// The op's name.
        op: String,
        /// The op's type.
        op_type: String,
        /// Why.
        message: String,
    },
    /// An op failed while running (bad parameter, shape mismatch found at run time, ...).
    #[error("op {op:?} ({op_type}): {message}")]
    Op {
        /// The op's name.
        op: String,
        /// The op's type.
        op_type: String,
        /// What went wrong.
        message: String,
    },
    /// An op produced inf or NaN (fp16 precision checking).
    #[error(
        "op {op:?} ({op_type}) produced {what} with {precision} precision: the first non-finite value \
         appears here (largest finite magnitude in its inputs: {max_input}){cause}"
    )]
    NonFinite {
        /// The op's name.
        op: String,
        /// The op's type.
        op_type: String,
        /// `inf` or `NaN`.
        what: &'static str,
        /// The precision being emulated.
        precision: &'static str,
        /// The largest finite absolute value among its floating-point inputs.
        max_input: f32,
        /// Why, when a chip's Neural Engine cliff (not plain fp16 overflow) made it non-finite:
        /// `"; on M1 the Neural Engine writes inf for matmul outputs above 32752 …"`; empty
        /// otherwise.
        cause: String,
    },
    /// The model's ML Program is invalid (Core ML would refuse to compile it): every problem,
    /// each naming its function, op and parameter. Checked when a model is loaded.
    #[error(transparent)]
    Invalid(#[from] anekit_mil::validate::InvalidProgram),
    /// The model cannot be loaded with the requested options.
    #[error("{0}")]
    Load(String),
    /// A prediction failed for a reason that is neither an input, an op nor a state (an
    /// output that cannot be converted to its declared type, a stateful function called
    /// without a state, a backend failing while it predicts).
    #[error("prediction failed: {0}")]
    Predict(String),
    /// A state is missing or of the wrong shape.
    #[error("state {name:?}: {message}")]
    State {
        /// The state's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A `.npy` file could not be read or written.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
