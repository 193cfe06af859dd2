//! Plain Rust copies of Core Foundation property values (IORegistry properties, plist-like
//! dictionaries), so that what the registry says can be handed upward and tested anywhere.

use std::collections::BTreeMap;

use serde::Serialize;

/// A Core Foundation property value: `CFNumber`, `CFBoolean`, `CFString`, `CFData`,
/// `CFArray` or `CFDictionary` (string keys), converted to plain data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// An integer `CFNumber`.
    Integer(i64),
    /// A floating-point `CFNumber`.
    Float(f64),
    /// A `CFBoolean`.
    Bool(bool),
    /// A `CFString`.
    String(String),
    /// A `CFData` (bytes).
    Data(Vec<u8>),
    /// A `CFArray`.
    Array(Vec<PropertyValue>),
    /// A `CFDictionary` with string keys.
    Dictionary(BTreeMap<String, PropertyValue>),
    /// Anything else (dates, URLs, dictionaries with non-string keys), by type name.
    Other(String),
}

impl PropertyValue {
    /// The value as a float, for numbers (and booleans as 0/1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PropertyValue::Integer(v) => Some(*v as f64),
            PropertyValue::Float(v) => Some(*v),
            PropertyValue::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    /// The value as a non-negative integer, for integers ≥ 0 and integral floats.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            PropertyValue::Integer(v) => u64::try_from(*v).ok(),
            PropertyValue::Float(v) if *v >= 0.0 && v.fract() == 0.0 && *v < 1.8e19 => {
                Some(*v as u64)
            }
            _ => None,
        }
    }

    /// The string, for strings; for data, the bytes up to the first NUL as UTF-8 (the
    /// IORegistry stores many names as NUL-terminated `CFData`, e.g. `compatible`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PropertyValue::String(s) => Some(s),
            PropertyValue::Data(d) => {
                let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
                std::str::from_utf8(&d[..end]).ok()
            }
            _ => None,
        }
    }

    /// The dictionary, for dictionaries.
    pub fn as_dict(&self) -> Option<&BTreeMap<String, PropertyValue>> {
        match self {
            PropertyValue::Dictionary(d) => Some(d),
            _ => None,
        }
    }

    /// The bytes, for data.
    pub fn as_data(&self) -> Option<&[u8]> {
        match self {
            PropertyValue::Data(d) => Some(d),
            _ => None,
        }
    }
}

/// The NUL-separated strings of an IORegistry `CFData` string list (`compatible =
/// <"J313AP","MacBookAir10,1","AppleARM">` is stored as `J313AP\0MacBookAir10,1\0AppleARM\0`).
pub fn string_list(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_convert() {
        assert_eq!(PropertyValue::Integer(42).as_u64(), Some(42));
        assert_eq!(PropertyValue::Integer(-1).as_u64(), None);
        assert_eq!(PropertyValue::Float(3.0).as_u64(), Some(3));
        assert_eq!(PropertyValue::Float(3.5).as_u64(), None);
        assert_eq!(PropertyValue::Bool(true).as_f64(), Some(1.0));
        assert_eq!(PropertyValue::String("x".into()).as_f64(), None);
        assert_eq!(
            PropertyValue::Data(b"t8103\0\0".to_vec()).as_str(),
            Some("t8103")
        );
        assert_eq!(PropertyValue::Data(vec![0xff, 0]).as_str(), None);
    }

    #[test]
    fn string_lists_split_on_nul() {
        assert_eq!(
            string_list(b"J313AP\0MacBookAir10,1\0AppleARM\0"),
            ["J313AP", "MacBookAir10,1", "AppleARM"]
        );
        assert!(string_list(b"").is_empty());
        assert!(string_list(b"\0\0").is_empty());
    }

    #[test]
    fn serializes_as_plain_json() {
        let mut d = BTreeMap::new();
        d.insert(
            "Device Utilization %".to_string(),
            PropertyValue::Integer(12),
        );
        d.insert(
            "model".to_string(),
            PropertyValue::String("Apple M1".into()),
        );
        let v = PropertyValue::Dictionary(d);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"Device Utilization %":12,"model":"Apple M1"}"#
        );
    }
}
