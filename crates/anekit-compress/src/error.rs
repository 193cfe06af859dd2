//! Errors of the quantization engine.

use anekit_mil::Opset;

/// What went wrong while compressing a model.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The configuration is invalid (bad value, impossible combination).
    #[error("invalid compression config: {0}")]
    Config(String),
    /// The configuration file could not be parsed.
    #[error("cannot parse compression config {path}: {message}")]
    ConfigFile {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The model's opset cannot express what the configuration asks for.
    #[error(
        "{what} needs iOS18 (specification 9) or later, but function {function} uses opset {opset}; \
         re-convert the model with minimum_deployment_target iOS18"
    )]
    Opset {
        /// What needs a later opset (`per_block quantization`, `4-bit quantization`, ...).
        what: String,
        /// The function.
        function: String,
        /// Its opset.
        opset: Opset,
    },
    /// The model is not something this crate can compress (not an ML Program, unknown opset).
    #[error("cannot compress this model: {0}")]
    Unsupported(String),
    /// A const op of the model is inconsistent (data does not match its type).
    #[error("weight {name}: {message}")]
    Weight {
        /// The const's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Two consumers of one weight ask for different configurations (coremltools' rule).
    #[error("compression config conflict for weight {weight}: {message}")]
    Conflict {
        /// The weight.
        weight: String,
        /// The conflicting consumers.
        message: String,
    },
    /// The fp16 conversion cannot handle a function or op ([`anekit_mil::passes::fp16`];
    /// the message names both: `fp16 conversion of function main, op frob: ...`).
    #[error(transparent)]
    Fp16(anekit_mil::MilError),
}

impl CompressError {
    pub(crate) fn weight(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Weight {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = CompressError> = std::result::Result<T, E>;
