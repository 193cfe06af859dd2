//! Core Foundation and Foundation helpers of anekit-apple-sys, with `NSError`s and
//! conversion failures as [`AppleError`].

use objc2_foundation::{NSArray, NSError, NSNumber};

pub use anekit_apple_sys::cf::{any_object, ns_string, ns_usizes};

use crate::error::AppleError;

/// An [`AppleError::Framework`] from an `NSError`.
pub fn ns_error(call: &'static str, e: &NSError) -> AppleError {
    anekit_apple_sys::cf::ns_error(call, e).into()
}

/// The integers of an `NSArray<NSNumber>` (shapes, strides), negative values as errors.
pub fn usizes(array: &NSArray<NSNumber>, what: &str) -> Result<Vec<usize>, AppleError> {
    anekit_apple_sys::cf::usizes(array, what).map_err(Into::into)
}
