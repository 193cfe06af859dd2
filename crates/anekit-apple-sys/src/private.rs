//! The private AppleNeuralEngine framework (macOS, cargo feature `private`): loaded once,
//! every class and selector probed before use.
//!
//! The framework lives in the dyld shared cache at
//! `/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine`; it is
//! `dlopen`ed once per process (never closed) and its classes are found with
//! `objc_getClass`, as maderix/ANE (`training/ane_runtime.h`) and the `ane` crate
//! (computer-graphics-tools/ane, `crates/ane/src/client.rs`) do. Before any message is sent,
//! the method is looked up and its type encoding compared with what the caller passes, so
//! that an OS where a selector is missing or changed its signature gives
//! [`SysError::MissingPrivateApi`] instead of undefined behaviour. Without the `private`
//! feature (anekit-apple's `private-ane`) nothing here is compiled but the plain
//! [`AneDeviceInfo`] record, and the framework is never loaded. docs/apple.md lists the
//! classes and selectors and where each is documented.

use serde::Serialize;

/// What the private `_ANEDeviceInfo` class reports (every field optional: each selector is
/// probed before it is called).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AneDeviceInfo {
    /// `+hasANE`.
    pub has_ane: Option<bool>,
    /// `+numANEs`.
    pub num_anes: Option<u64>,
    /// `+numANECores`.
    pub num_ane_cores: Option<u64>,
    /// `+aneArchitectureType` (`h15g`).
    pub architecture: Option<String>,
    /// `+aneSubType` (`h15`).
    pub sub_type: Option<String>,
    /// `+aneSubTypeVariant`.
    pub sub_type_variant: Option<String>,
    /// `+aneBoardType` (192 on M3 Pro).
    pub board_type: Option<i64>,
    /// `+productName` (`macOS`).
    pub product_name: Option<String>,
    /// `+buildVersion`.
    pub build_version: Option<String>,
    /// `+isVirtualMachine`.
    pub is_virtual_machine: Option<bool>,
}

/// The framework binary.
pub const FRAMEWORK_PATH: &std::ffi::CStr =
    c"/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine";

#[cfg(all(target_os = "macos", feature = "private"))]
pub use imp::*;

#[cfg(all(target_os = "macos", feature = "private"))]
mod imp {
    use std::ffi::CStr;
    use std::sync::OnceLock;

    use objc2::msg_send;
    use objc2::rc::Retained;
    use objc2::runtime::{AnyClass, AnyObject, Sel};
    use objc2_foundation::NSString;

    use super::{AneDeviceInfo, FRAMEWORK_PATH};
    use crate::error::{Result, SysError};

    use crate::probe::{BOOL, INT64, OBJ, Signature, UINT, encoding_matches};

    /// Loads the framework once; later calls return the first result.
    pub fn load() -> Result<()> {
        static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        LOADED
            .get_or_init(|| {
                // SAFETY: `FRAMEWORK_PATH` is a NUL-terminated path; the handle is kept for the
                // life of the process (never `dlclose`d), so classes it registers stay valid.
                let handle = unsafe { libc::dlopen(FRAMEWORK_PATH.as_ptr(), libc::RTLD_NOW) };
                if handle.is_null() {
                    // SAFETY: dlerror returns null or a NUL-terminated message owned by libc.
                    let msg = unsafe {
                        let e = libc::dlerror();
                        if e.is_null() {
                            "unknown dlopen error".to_string()
                        } else {
                            CStr::from_ptr(e).to_string_lossy().into_owned()
                        }
                    };
                    tracing::debug!(error = %msg, "AppleNeuralEngine.framework did not load");
                    Err(msg)
                } else {
                    tracing::debug!("AppleNeuralEngine.framework loaded");
                    Ok(())
                }
            })
            .clone()
            .map_err(|reason| SysError::Unavailable {
                feature: "AppleNeuralEngine.framework",
                reason,
            })
    }

    /// A private class, after loading the framework.
    pub fn class(name: &CStr) -> Result<&'static AnyClass> {
        load()?;
        AnyClass::get(name).ok_or_else(|| SysError::MissingPrivateApi {
            class: name.to_string_lossy().into_owned(),
            selector: None,
        })
    }

    /// Checks that `cls` has `sel` with `sig`, so that the message can be sent.
    pub fn require(cls: &AnyClass, sel: Sel, sig: &Signature) -> Result<()> {
        let missing = || SysError::MissingPrivateApi {
            class: cls.name().to_string_lossy().into_owned(),
            selector: Some(sel.name().to_string_lossy().into_owned()),
        };
        let method = if sig.class_method {
            cls.class_method(sel)
        } else {
            cls.instance_method(sel)
        }
        .ok_or_else(missing)?;
        let ret = method.return_type();
        let ret = ret.to_string_lossy();
        if !encoding_matches(&ret, sig.returns) {
            tracing::warn!(selector = ?sel, returns = %ret, "private method changed its return type");
            return Err(missing());
        }
        // Arguments 0 and 1 are `self` and `_cmd`.
        if method.arguments_count() != sig.args.len() + 2 {
            tracing::warn!(selector = ?sel, count = method.arguments_count(), "private method changed its arguments");
            return Err(missing());
        }
        for (i, accepted) in sig.args.iter().enumerate() {
            let ok = method
                .argument_type(i + 2)
                .is_some_and(|t| encoding_matches(&t.to_string_lossy(), accepted));
            if !ok {
                tracing::warn!(selector = ?sel, argument = i, "private method changed an argument type");
                return Err(missing());
            }
        }
        Ok(())
    }

    fn getter(returns: &'static [&'static str]) -> Signature {
        Signature {
            class_method: true,
            returns,
            args: &[],
        }
    }

    /// What `_ANEDeviceInfo` reports; each selector is probed and a missing one leaves its field
    /// empty.
    pub fn device_info() -> Result<AneDeviceInfo> {
        let cls = class(c"_ANEDeviceInfo")?;
        let has =
            |name: &CStr, returns| require(cls, Sel::register(name), &getter(returns)).is_ok();
        let string = |v: Option<Retained<AnyObject>>| {
            v.and_then(|v| v.downcast::<NSString>().ok())
                .map(|s| s.to_string())
        };
        let mut info = AneDeviceInfo::default();
        // Each message below is sent only after `has` found the selector as a class method of
        // `_ANEDeviceInfo` with no arguments and the return type the message declares; object
        // results are NSString or nil (the class dump of tmc/apple
        // `private/appleneuralengine/ane_device_info.gen.go`).
        if has(c"hasANE", BOOL) {
            // SAFETY: selector and signature checked by `has` just above.
            info.has_ane = Some(unsafe { msg_send![cls, hasANE] });
        }
        if has(c"numANEs", UINT) {
            // SAFETY: selector and signature checked by `has` just above.
            let n: u32 = unsafe { msg_send![cls, numANEs] };
            info.num_anes = Some(u64::from(n));
        }
        if has(c"numANECores", UINT) {
            // SAFETY: selector and signature checked by `has` just above.
            let n: u32 = unsafe { msg_send![cls, numANECores] };
            info.num_ane_cores = Some(u64::from(n));
        }
        if has(c"aneArchitectureType", OBJ) {
            // SAFETY: selector and signature checked by `has` just above.
            info.architecture = string(unsafe { msg_send![cls, aneArchitectureType] });
        }
        if has(c"aneSubType", OBJ) {
            // SAFETY: selector and signature checked by `has` just above.
            info.sub_type = string(unsafe { msg_send![cls, aneSubType] });
        }
        if has(c"aneSubTypeVariant", OBJ) {
            // SAFETY: selector and signature checked by `has` just above.
            info.sub_type_variant = string(unsafe { msg_send![cls, aneSubTypeVariant] });
        }
        if has(c"aneBoardType", INT64) {
            // SAFETY: selector and signature checked by `has` just above.
            info.board_type = Some(unsafe { msg_send![cls, aneBoardType] });
        }
        if has(c"productName", OBJ) {
            // SAFETY: selector and signature checked by `has` just above.
            info.product_name = string(unsafe { msg_send![cls, productName] });
        }
        if has(c"buildVersion", OBJ) {
            // SAFETY: selector and signature checked by `has` just above.
            info.build_version = string(unsafe { msg_send![cls, buildVersion] });
        }
        if has(c"isVirtualMachine", BOOL) {
            // SAFETY: selector and signature checked by `has` just above.
            info.is_virtual_machine = Some(unsafe { msg_send![cls, isVirtualMachine] });
        }
        Ok(info)
    }
}
