//! The error type of the IR crate.

use anekit_format::FormatError;

/// An error building, converting, parsing or checking a MIL program.
#[derive(Debug, thiserror::Error)]
pub enum MilError {
    /// Reading or writing a file failed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The program (or a model's protobuf) is malformed. `context` locates the problem
    /// (`function main / op conv_0 / input weight`).
    #[error("{context}: {message}")]
    Invalid {
        /// Where the problem is.
        context: String,
        /// What is wrong.
        message: String,
    },
    /// MIL text could not be parsed.
    #[error("{source_name}:{line}:{column}: {message}")]
    Parse {
        /// The file or label of the text.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected or found.
        message: String,
    },
}

impl MilError {
    /// An [`MilError::Invalid`].
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        MilError::Invalid {
            context: context.into(),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = MilError> = std::result::Result<T, E>;
