//! The error type of the OS readers.

/// An error from an Apple OS interface or from the checks around it.
///
/// Framework errors keep Apple's own words (`NSError` domain, code and description, IOKit
/// return codes, an exception's name and reason) so that a failure on a Mac can be looked
/// up; the variant says which step failed.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// The interface does not exist on this OS, this machine or in this build (the reason
    /// says which and why).
    #[error("{feature} is unavailable: {reason}")]
    Unavailable {
        /// The feature (`IOReport`, `SMC`, ...).
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
    /// An Objective-C exception was thrown inside a framework call (caught, not aborted).
    #[error("{call} threw {}: {}", .name.as_deref().unwrap_or("an exception"), .reason.as_deref().unwrap_or("no reason given"))]
    Exception {
        /// The call that threw.
        call: &'static str,
        /// `NSException.name` (`NSInvalidArgumentException`, ...), when the thrown object is
        /// an `NSException`.
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
    /// A private class or selector is missing (or changed its signature) on this OS version.
    #[error("private API {class}{} is missing on this OS version", selector.as_deref().map(|s| format!(" -{s}")).unwrap_or_default())]
    MissingPrivateApi {
        /// The class.
        class: String,
        /// The selector, when the class exists but lacks it.
        selector: Option<String>,
    },
    /// Data handed to or returned by the OS did not have the expected form.
    #[error("{what}: {detail}")]
    Invalid {
        /// What was being converted.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// A status as hexadecimal 32-bit value when it is one (IOKit and Core Video statuses are
/// written that way: `0xe00002c2`), else in decimal.
pub fn status_text(status: i64) -> String {
    if let Ok(v) = i32::try_from(status) {
        format!("{:#x}", v as u32)
    } else if let Ok(v) = u32::try_from(status) {
        format!("{v:#x}")
    } else {
        status.to_string()
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl SysError {
    /// A [`SysError::Invalid`].
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// A [`SysError::Status`].
    pub fn status(call: &'static str, status: impl Into<i64>, detail: impl Into<String>) -> Self {
        Self::Status {
            call,
            status: status.into(),
            detail: detail.into(),
        }
    }

    /// A [`SysError::Null`].
    pub fn null(call: &'static str, detail: impl Into<String>) -> Self {
        Self::Null {
            call,
            detail: detail.into(),
        }
    }

    /// A [`SysError::Unavailable`].
    pub fn unavailable(feature: &'static str, reason: impl Into<String>) -> Self {
        Self::Unavailable {
            feature,
            reason: reason.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = SysError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_and_keep_apples_words() {
        let s = SysError::status(
            "IOServiceOpen",
            0xe00002c2u32 as i32,
            "AppleSMCKeysEndpoint",
        );
        assert_eq!(
            s.to_string(),
            "IOServiceOpen failed with status 0xe00002c2 (AppleSMCKeysEndpoint)"
        );
        let m = SysError::MissingPrivateApi {
            class: "_ANEInMemoryModel".into(),
            selector: Some("compileWithQoS:options:error:".into()),
        };
        assert!(
            m.to_string()
                .contains("_ANEInMemoryModel -compileWithQoS:options:error:")
        );
        let e = SysError::Exception {
            call: "placeholderWithShape:dataType:name:",
            name: Some("NSInvalidArgumentException".into()),
            reason: Some("shape must not be empty".into()),
        };
        assert_eq!(
            e.to_string(),
            "placeholderWithShape:dataType:name: threw NSInvalidArgumentException: shape must not be empty"
        );
        let anonymous = SysError::Exception {
            call: "x",
            name: None,
            reason: None,
        };
        assert_eq!(
            anonymous.to_string(),
            "x threw an exception: no reason given"
        );
    }
}
