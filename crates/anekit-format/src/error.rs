//! The error type of the format crate.
//!
//! Every error says which file it concerns and, for content errors, which field or record
//! was wrong, so a user can tell a truncated download from a hostile file from a bug.

use std::path::PathBuf;

/// An error reading or writing a Core ML file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The operating system refused an operation on a file.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What was being done ("opening", "reading", "renaming into place", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content of a file is malformed or violates a limit.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// The field, record or key that was wrong (e.g. `blob_metadata@128.sentinel`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A protobuf message could not be decoded.
    #[error("{path}: protobuf {message_type}: {source}")]
    Protobuf {
        /// The file concerned.
        path: PathBuf,
        /// The message type being decoded.
        message_type: &'static str,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// A file or folder is not a Core ML model this crate knows.
    #[error("{path}: {message}")]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Why it was not recognised.
        message: String,
    },
}

impl FormatError {
    /// An [`FormatError::Invalid`] for `path`, naming `field`.
    pub fn invalid(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FormatError::Invalid {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`FormatError::Io`] for `path` while doing `action`.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
