use std::path::PathBuf;

/// Errors of the metrics crate. File errors name the file; parse errors also name the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content did not have the expected form.
    #[error("{path}: field `{field}`: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The field (line key, column name or file name) that was wrong.
        field: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A sample from a platform provider (NVML, the Apple layer) was unusable.
    #[error("{source_name}: {detail}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        detail: String,
    },
    /// The sampler thread could not be started or has stopped.
    #[error("sampler: {0}")]
    Sampler(String),
    /// The HTTP endpoint could not be started.
    #[error("cannot serve metrics on {addr}: {detail}")]
    Serve {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        detail: String,
    },
}

// The constructors serve the Linux sources (files under /proc and /sys).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Parse {
            path: path.into(),
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn source(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Source {
            source_name: name.into(),
            detail: detail.into(),
        }
    }
}
