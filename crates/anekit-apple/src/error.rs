//! The error type of the Apple layer.

/// An error from an Apple framework or from the checks around it.
///
/// Framework errors keep Apple's own words (`NSError` domain, code and description, IOKit
/// return codes) so that a failure on a Mac can be looked up; the variant says which step
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum AppleError {
    /// The feature does not exist on this OS or in this build (the reason says which and why).
    #[error("{feature} is unavailable: {reason}")]
    Unavailable {
        /// The feature (`Core ML`, `IOReport`, ...).
        feature: &'static str,
        /// Why.
        reason: String,
    },
    /// An Objective-C API returned an `NSError`.
    #[error("{call}: {description} ({domain} code {code})")]
    Framework {
        /// The call that failed (selector or function).
        call: &'static str,
        /// `NSError.domain`.
        domain: String,
        /// `NSError.code`.
        code: i64,
        /// `NSError.localizedDescription`.
        description: String,
    },
    /// An Objective-C exception was thrown inside a framework call (caught by
    /// `anekit_apple_sys::exception::guard`, not aborted).
    #[error("{call} threw {}: {}", .name.as_deref().unwrap_or("an exception"), .reason.as_deref().unwrap_or("no reason given"))]
    Exception {
        /// The call that threw.
        call: &'static str,
        /// `NSException.name`.
        name: Option<String>,
        /// `NSException.reason`.
        reason: Option<String>,
    },
    /// A C API returned a failure status (IOKit `kern_return_t`, `CVReturn`, `sysctl`).
    #[error("{call} failed with status {}{}", status_text(*.status), detail_suffix(.detail))]
    Status {
        /// The call that failed.
        call: &'static str,
        /// The status it returned.
        status: i64,
        /// What was being done, if useful.
        detail: String,
    },
    /// A call returned nothing where something was expected.
    #[error("{call} returned nothing: {detail}")]
    Null {
        /// The call.
        call: &'static str,
        /// What was expected.
        detail: String,
    },
    /// A private class or selector is missing on this OS version.
    #[error("private API {class}{} is missing on this OS version", selector.as_deref().map(|s| format!(" -{s}")).unwrap_or_default())]
    MissingPrivateApi {
        /// The class.
        class: String,
        /// The selector, when the class exists but lacks it.
        selector: Option<String>,
    },
    /// The per-process ANE compile budget is spent.
    #[error(
        "the per-process Neural Engine compile budget is spent ({used} of {limit} compiles): \
         AppleNeuralEngine leaks per compile and fails after ~119; restart the process or \
         reuse compiled models (the compile cache)"
    )]
    CompileBudget {
        /// Compiles made so far in this process.
        used: u32,
        /// The limit.
        limit: u32,
    },
    /// A stage of the private Neural Engine path failed.
    #[error("Neural Engine {stage} failed: {description} ({domain} code {code}){}", hint_suffix(*.hint))]
    Ane {
        /// The stage.
        stage: crate::ane::AneStage,
        /// `NSError.domain` (empty when the call failed without an error).
        domain: String,
        /// `NSError.code`.
        code: i64,
        /// `NSError.localizedDescription`.
        description: String,
        /// What usually causes this failure, when known.
        hint: Option<&'static str>,
    },
    /// Data handed to or returned by a framework did not have the expected form.
    #[error("{what}: {detail}")]
    Invalid {
        /// What was being converted.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A file operation (compile cache, staging folders) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

use anekit_apple_sys::error::status_text;

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!("; likely cause: {h}"))
        .unwrap_or_default()
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl AppleError {
    /// An [`AppleError::Invalid`].
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// An [`AppleError::Io`].
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`AppleError::Status`].
    pub fn status(call: &'static str, status: impl Into<i64>, detail: impl Into<String>) -> Self {
        Self::Status {
            call,
            status: status.into(),
            detail: detail.into(),
        }
    }

    /// An [`AppleError::Null`].
    pub fn null(call: &'static str, detail: impl Into<String>) -> Self {
        Self::Null {
            call,
            detail: detail.into(),
        }
    }
}

impl From<anekit_apple_sys::SysError> for AppleError {
    /// The readers' errors, variant for variant (the same words).
    fn from(e: anekit_apple_sys::SysError) -> Self {
        use anekit_apple_sys::SysError as S;
        match e {
            S::Unavailable { feature, reason } => Self::Unavailable { feature, reason },
            S::Framework {
                call,
                domain,
                code,
                description,
            } => Self::Framework {
                call,
                domain,
                code,
                description,
            },
            S::Exception { call, name, reason } => Self::Exception { call, name, reason },
            S::Status {
                call,
                status,
                detail,
            } => Self::Status {
                call,
                status,
                detail,
            },
            S::Null { call, detail } => Self::Null { call, detail },
            S::MissingPrivateApi { class, selector } => Self::MissingPrivateApi { class, selector },
            S::Invalid { what, detail } => Self::Invalid { what, detail },
        }
    }
}

impl From<AppleError> for anekit_runtime::RuntimeError {
    fn from(e: AppleError) -> Self {
        anekit_runtime::RuntimeError::Load(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = AppleError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_and_keep_apples_words() {
        let e = AppleError::Framework {
            call: "compileModelAtURL:completionHandler:",
            domain: "com.apple.CoreML".into(),
            code: 3,
            description: "Failed to read model package".into(),
        };
        assert_eq!(
            e.to_string(),
            "compileModelAtURL:completionHandler:: Failed to read model package (com.apple.CoreML code 3)"
        );
        let s = AppleError::status(
            "IOServiceOpen",
            0xe00002c2u32 as i32,
            "AppleSMCKeysEndpoint",
        );
        assert_eq!(
            s.to_string(),
            "IOServiceOpen failed with status 0xe00002c2 (AppleSMCKeysEndpoint)"
        );
        let m = AppleError::MissingPrivateApi {
            class: "_ANEInMemoryModel".into(),
            selector: Some("compileWithQoS:options:error:".into()),
        };
        assert!(
            m.to_string()
                .contains("_ANEInMemoryModel -compileWithQoS:options:error:")
        );
        let from_sys: AppleError = anekit_apple_sys::SysError::Exception {
            call: "evaluateWithQoS:options:request:error:",
            name: Some("NSInvalidArgumentException".into()),
            reason: Some("request has no inputs".into()),
        }
        .into();
        assert_eq!(
            from_sys.to_string(),
            "evaluateWithQoS:options:request:error: threw NSInvalidArgumentException: request has no inputs"
        );
        let b = AppleError::CompileBudget {
            used: 100,
            limit: 100,
        };
        assert!(b.to_string().contains("100 of 100"));
    }
}
