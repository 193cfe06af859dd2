//! Core Foundation and Foundation helpers (Apple platforms): CF values to
//! [`PropertyValue`], `NSError` to [`SysError`], small constructors.

// The CF → plain-data conversions serve the macOS-only IOKit and IOReport readers.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::collections::BTreeMap;

use objc2::rc::Retained;
use objc2_core_foundation::{
    CFArray, CFBoolean, CFData, CFDictionary, CFNumber, CFRetained, CFString, CFType,
};
use objc2_foundation::{NSArray, NSError, NSNumber, NSString};

use crate::error::SysError;
use crate::value::PropertyValue;

/// Converts a Core Foundation value (and everything inside it) to plain data. Nesting is
/// limited to 32 levels (deeper values become [`PropertyValue::Other`]).
pub fn to_value(v: &CFType) -> PropertyValue {
    to_value_depth(v, 0)
}

fn to_value_depth(v: &CFType, depth: usize) -> PropertyValue {
    if depth > 32 {
        return PropertyValue::Other("nested too deeply".into());
    }
    if let Some(s) = v.downcast_ref::<CFString>() {
        return PropertyValue::String(s.to_string());
    }
    if let Some(n) = v.downcast_ref::<CFNumber>() {
        return if n.is_float_type() {
            n.as_f64().map_or(
                PropertyValue::Other("CFNumber".into()),
                PropertyValue::Float,
            )
        } else {
            n.as_i64().map_or(
                PropertyValue::Other("CFNumber".into()),
                PropertyValue::Integer,
            )
        };
    }
    if let Some(b) = v.downcast_ref::<CFBoolean>() {
        return PropertyValue::Bool(b.as_bool());
    }
    if let Some(d) = v.downcast_ref::<CFData>() {
        return PropertyValue::Data(d.to_vec());
    }
    if let Some(a) = v.downcast_ref::<CFArray>() {
        // SAFETY: every element of a CFArray is a CF object.
        let a: &CFArray<CFType> = unsafe { a.cast_unchecked() };
        return PropertyValue::Array(a.iter().map(|e| to_value_depth(&e, depth + 1)).collect());
    }
    if let Some(d) = v.downcast_ref::<CFDictionary>() {
        // SAFETY: keys and values of a property-list dictionary are CF objects.
        let d: &CFDictionary<CFType, CFType> = unsafe { d.cast_unchecked() };
        let (keys, values) = d.to_vecs();
        let mut out = BTreeMap::new();
        for (k, val) in keys.iter().zip(&values) {
            match k.downcast_ref::<CFString>() {
                Some(k) => {
                    out.insert(k.to_string(), to_value_depth(val, depth + 1));
                }
                None => return PropertyValue::Other("dictionary with non-string keys".into()),
            }
        }
        return PropertyValue::Dictionary(out);
    }
    PropertyValue::Other(format!(
        "CF type id {}",
        objc2_core_foundation::CFGetTypeID(Some(v))
    ))
}

/// The value for `key` in a dictionary of string keys.
pub fn dict_get(dict: &CFDictionary, key: &str) -> Option<CFRetained<CFType>> {
    // SAFETY: dictionaries passed here have CFString keys and CF object values (IOReport
    // samples, IORegistry properties); a key of another type simply does not match.
    let d: &CFDictionary<CFString, CFType> = unsafe { dict.cast_unchecked() };
    d.get(&CFString::from_str(key))
}

/// An [`SysError::Framework`] from an `NSError`.
pub fn ns_error(call: &'static str, e: &NSError) -> SysError {
    SysError::Framework {
        call,
        domain: e.domain().to_string(),
        code: e.code() as i64,
        description: e.localizedDescription().to_string(),
    }
}

/// An `NSArray<NSNumber>` of unsigned integers (shapes, strides).
pub fn ns_usizes(values: &[usize]) -> Retained<NSArray<NSNumber>> {
    let numbers: Vec<Retained<NSNumber>> = values.iter().map(|&v| NSNumber::new_usize(v)).collect();
    NSArray::from_retained_slice(&numbers)
}

/// The integers of an `NSArray<NSNumber>` (shapes, strides), negative values as errors.
pub fn usizes(array: &NSArray<NSNumber>, what: &str) -> Result<Vec<usize>, SysError> {
    array
        .iter()
        .map(|n| {
            let v = n.as_isize();
            usize::try_from(v)
                .map_err(|_| SysError::invalid(what.to_string(), format!("negative value {v}")))
        })
        .collect()
}

/// Any object as `AnyObject` (for heterogeneous dictionaries).
pub fn any_object<T: objc2::Message>(r: Retained<T>) -> Retained<objc2::runtime::AnyObject> {
    // SAFETY: every Objective-C object is an `AnyObject`; this only forgets the static type.
    unsafe { Retained::cast_unchecked(r) }
}

/// An `NSString`.
pub fn ns_string(s: &str) -> Retained<NSString> {
    NSString::from_str(s)
}
