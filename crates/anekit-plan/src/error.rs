//! Errors of the planner.

use thiserror::Error;

/// A planner error.
#[derive(Debug, Error)]
pub enum PlanError {
    /// The chip catalog is malformed.
    #[error("chip catalog: {0}")]
    Catalog(String),
    /// No chip matches the name asked for.
    #[error("unknown chip `{query}` (known: {known})")]
    UnknownChip {
        /// What was asked for.
        query: String,
        /// The known chip names.
        known: String,
    },
    /// The model cannot be analysed.
    #[error("{0}")]
    Model(String),
    /// The program is invalid: Core ML will refuse to compile it, so there is no placement
    /// to predict (`Options::allow_invalid` analyses it anyway).
    #[error(transparent)]
    Invalid(#[from] anekit_mil::validate::InvalidProgram),
    /// An error of the IR layer.
    #[error(transparent)]
    Mil(#[from] anekit_mil::MilError),
    /// A rewrite failed.
    #[error("rewrite {pass}: {message}")]
    Rewrite {
        /// The pass.
        pass: String,
        /// What went wrong.
        message: String,
    },
}

/// Result with [`PlanError`].
pub type Result<T, E = PlanError> = std::result::Result<T, E>;
