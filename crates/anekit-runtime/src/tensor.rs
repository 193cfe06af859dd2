//! Tensors exchanged with a model: named, typed, n-dimensional arrays.

use half::f16;
use ndarray::{Array1, ArrayD, IxDyn};

use crate::error::{Result, RuntimeError};

/// Element type of a [`Tensor`] (the types Core ML exchanges, plus `u8`). `Str` and `Dict`
/// are Core ML's string and dictionary features (a classifier's label and probabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 32-bit signed integer.
    I32,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean.
    Bool,
    /// UTF-8 string (Core ML's StringFeatureType; a classifier's string label).
    Str,
    /// Dictionary label → probability (Core ML's DictionaryFeatureType; a classifier's
    /// probabilities): a [`Dictionary`].
    Dict,
}

impl ElementType {
    /// Size of one element in bytes (strings: 0, their size varies; dictionaries: 8, one
    /// fp64 value per entry, keys not counted).
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
            Self::Str => 0,
            Self::Dict => 8,
        }
    }

    /// Whether tensors of this type hold numbers (not strings or dictionaries).
    pub fn is_numeric(self) -> bool {
        !matches!(self, Self::Str | Self::Dict)
    }

    /// The MIL spelling (`fp32`, `fp16`, `int32`, `int8`, `uint8`, `bool`, `string`; `dict`
    /// for dictionaries).
    pub fn mil_name(self) -> &'static str {
        match self {
            Self::F32 => "fp32",
            Self::F16 => "fp16",
            Self::I32 => "int32",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
            Self::Str => "string",
            Self::Dict => "dict",
        }
    }

    /// The element type for a MIL data type, if tensors of it can be exchanged.
    pub fn from_mil(t: anekit_mil::DataType) -> Option<Self> {
        use anekit_mil::DataType as D;
        Some(match t {
            D::Fp32 => Self::F32,
            D::Fp16 => Self::F16,
            D::Int32 => Self::I32,
            D::Int8 => Self::I8,
            D::Uint8 => Self::U8,
            D::Bool => Self::Bool,
            D::String => Self::Str,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mil_name())
    }
}

/// The keys of a [`Dictionary`]: a classifier's labels, strings or integers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum DictKeys {
    /// String labels.
    Str(Vec<String>),
    /// Integer labels (Core ML's int64 keys).
    Int(Vec<i64>),
}

impl DictKeys {
    /// Number of keys.
    pub fn len(&self) -> usize {
        match self {
            DictKeys::Str(k) => k.len(),
            DictKeys::Int(k) => k.len(),
        }
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Key `i` as text.
    pub fn label(&self, i: usize) -> Option<String> {
        match self {
            DictKeys::Str(k) => k.get(i).cloned(),
            DictKeys::Int(k) => k.get(i).map(i64::to_string),
        }
    }
}

/// A dictionary feature: Core ML's `dict<label, fp64>`, what a classifier's probabilities
/// output (`classLabel_probs` by coremltools' default name) holds. Keys are in the model's
/// class order, each with its value; keys are unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Dictionary {
    keys: DictKeys,
    values: Array1<f64>,
}

impl Dictionary {
    /// A dictionary of `keys` with `values` (one per key, in order).
    pub fn new(keys: DictKeys, values: Vec<f64>) -> Result<Self> {
        if keys.len() != values.len() {
            return Err(RuntimeError::Input {
                name: String::new(),
                message: format!(
                    "a dictionary of {} keys given {} values",
                    keys.len(),
                    values.len()
                ),
            });
        }
        Ok(Self {
            keys,
            values: Array1::from(values),
        })
    }

    /// The keys, in class order.
    pub fn keys(&self) -> &DictKeys {
        &self.keys
    }

    /// The values, one per key, in key order.
    pub fn values(&self) -> &[f64] {
        self.values.as_slice().unwrap_or(&[])
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of string key `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        match &self.keys {
            DictKeys::Str(k) => k.iter().position(|k| k == key),
            DictKeys::Int(_) => None,
        }
        .map(|i| self.values[i])
    }

    /// The value of integer key `key`.
    pub fn get_int(&self, key: i64) -> Option<f64> {
        match &self.keys {
            DictKeys::Int(k) => k.iter().position(|&k| k == key),
            DictKeys::Str(_) => None,
        }
        .map(|i| self.values[i])
    }

    /// `(label as text, value)` pairs in key order.
    pub fn entries(&self) -> Vec<(String, f64)> {
        (0..self.len())
            .map(|i| (self.keys.label(i).unwrap_or_default(), self.values[i]))
            .collect()
    }

    /// The values as a 1-D tensor shape.
    fn shape(&self) -> &[usize] {
        self.values.shape()
    }
}

/// A tensor: an n-dimensional array of one element type, a string array, or a dictionary.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 16-bit floats.
    F16(ArrayD<f16>),
    /// 32-bit signed integers.
    I32(ArrayD<i32>),
    /// 8-bit signed integers.
    I8(ArrayD<i8>),
    /// 8-bit unsigned integers.
    U8(ArrayD<u8>),
    /// Booleans.
    Bool(ArrayD<bool>),
    /// Strings (a string feature is a scalar: shape `[]`).
    Str(ArrayD<String>),
    /// A dictionary (shape `[len]`; `to_f32` gives its values in key order).
    Dict(Dictionary),
}

macro_rules! each {
    ($t:expr, $a:ident => $e:expr, $d:ident => $de:expr) => {
        match $t {
            Tensor::F32($a) => $e,
            Tensor::F16($a) => $e,
            Tensor::I32($a) => $e,
            Tensor::I8($a) => $e,
            Tensor::U8($a) => $e,
            Tensor::Bool($a) => $e,
            Tensor::Str($a) => $e,
            Tensor::Dict($d) => $de,
        }
    };
}

impl Tensor {
    /// The element type.
    pub fn dtype(&self) -> ElementType {
        match self {
            Tensor::F32(_) => ElementType::F32,
            Tensor::F16(_) => ElementType::F16,
            Tensor::I32(_) => ElementType::I32,
            Tensor::I8(_) => ElementType::I8,
            Tensor::U8(_) => ElementType::U8,
            Tensor::Bool(_) => ElementType::Bool,
            Tensor::Str(_) => ElementType::Str,
            Tensor::Dict(_) => ElementType::Dict,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        each!(self, a => a.shape(), d => d.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each!(self, a => a.len(), d => d.len())
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An f32 tensor from a shape and row-major values.
    pub fn f32(shape: &[usize], values: Vec<f32>) -> Result<Self> {
        Ok(Tensor::F32(from_vec(shape, values)?))
    }

    /// An i32 tensor from a shape and row-major values.
    pub fn i32(shape: &[usize], values: Vec<i32>) -> Result<Self> {
        Ok(Tensor::I32(from_vec(shape, values)?))
    }

    /// A string tensor from a shape and row-major values.
    pub fn str(shape: &[usize], values: Vec<String>) -> Result<Self> {
        Ok(Tensor::Str(from_vec(shape, values)?))
    }

    /// The string of a string tensor with one element (a string feature).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Tensor::Str(a) if a.len() == 1 => a.iter().next().map(String::as_str),
            _ => None,
        }
    }

    /// The dictionary of a dictionary tensor.
    pub fn as_dict(&self) -> Option<&Dictionary> {
        match self {
            Tensor::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A tensor of zeros (strings: empty; a dictionary: keys `0..n` for the `n` elements of
    /// `shape`, values 0).
    pub fn zeros(dtype: ElementType, shape: &[usize]) -> Self {
        let s = IxDyn(shape);
        match dtype {
            ElementType::F32 => Tensor::F32(ArrayD::zeros(s)),
            ElementType::F16 => Tensor::F16(ArrayD::from_elem(s, f16::ZERO)),
            ElementType::I32 => Tensor::I32(ArrayD::zeros(s)),
            ElementType::I8 => Tensor::I8(ArrayD::zeros(s)),
            ElementType::U8 => Tensor::U8(ArrayD::zeros(s)),
            ElementType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
            ElementType::Str => Tensor::Str(ArrayD::from_elem(s, String::new())),
            ElementType::Dict => Tensor::F32(ArrayD::zeros(s)).cast(ElementType::Dict),
        }
    }

    /// The elements converted to f32 (bools as 0/1; strings parsed as numbers, NaN where
    /// they are not; a dictionary's values in key order), in row-major order.
    pub fn to_f32(&self) -> ArrayD<f32> {
        match self {
            Tensor::F32(a) => a.clone(),
            Tensor::F16(a) => a.mapv(f16::to_f32),
            Tensor::I32(a) => a.mapv(|v| v as f32),
            Tensor::I8(a) => a.mapv(f32::from),
            Tensor::U8(a) => a.mapv(f32::from),
            Tensor::Bool(a) => a.mapv(|v| if v { 1.0 } else { 0.0 }),
            Tensor::Str(a) => a.map(|v| v.trim().parse().unwrap_or(f32::NAN)),
            Tensor::Dict(d) => d.values.mapv(|v| v as f32).into_dyn(),
        }
    }

    /// The tensor converted to `dtype` (floats to integers round toward zero and saturate,
    /// as numpy's `astype` does for in-range values; numbers to strings as decimal text; to a
    /// dictionary: the elements in row-major order keyed `0..n`).
    pub fn cast(&self, dtype: ElementType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        let f = self.to_f32();
        match dtype {
            ElementType::Str => Tensor::Str(match self {
                Tensor::I32(a) => a.map(i32::to_string),
                Tensor::I8(a) => a.map(i8::to_string),
                Tensor::U8(a) => a.map(u8::to_string),
                Tensor::Bool(a) => a.map(bool::to_string),
                _ => f.map(f32::to_string),
            }),
            ElementType::Dict => {
                let n = f.len() as i64;
                Tensor::Dict(Dictionary {
                    keys: DictKeys::Int((0..n).collect()),
                    values: f.iter().map(|&v| f64::from(v)).collect(),
                })
            }
            ElementType::F32 => Tensor::F32(f),
            ElementType::F16 => Tensor::F16(f.mapv(f16::from_f32)),
            ElementType::I32 => match self {
                Tensor::I8(a) => Tensor::I32(a.mapv(i32::from)),
                Tensor::U8(a) => Tensor::I32(a.mapv(i32::from)),
                Tensor::Bool(a) => Tensor::I32(a.mapv(i32::from)),
                _ => Tensor::I32(f.mapv(|v| v as i32)),
            },
            ElementType::I8 => Tensor::I8(f.mapv(|v| v as i8)),
            ElementType::U8 => Tensor::U8(f.mapv(|v| v as u8)),
            ElementType::Bool => Tensor::Bool(f.mapv(|v| v != 0.0)),
        }
    }

    /// Bytes the elements occupy (strings: their UTF-8 bytes; a dictionary: its keys and
    /// fp64 values).
    pub fn nbytes(&self) -> usize {
        match self {
            Tensor::Str(a) => a.iter().map(String::len).sum(),
            Tensor::Dict(d) => {
                let keys = match &d.keys {
                    DictKeys::Str(k) => k.iter().map(String::len).sum(),
                    DictKeys::Int(k) => k.len() * 8,
                };
                keys + d.len() * 8
            }
            _ => self.len() * self.dtype().size(),
        }
    }

    /// How far this tensor is from `reference` (both read as numbers, see
    /// [`Tensor::to_f32`]). `None` when the shapes differ.
    pub fn deviation(&self, reference: &Tensor) -> Option<Deviation> {
        let (a, r) = (self.to_f32(), reference.to_f32());
        if a.shape() != r.shape() {
            return None;
        }
        let mut d = Deviation {
            max_abs: 0.0,
            max_abs_reference: 0.0,
            signal: 0.0,
            noise: 0.0,
        };
        for (&x, &y) in a.iter().zip(r.iter()) {
            let (x, y) = (f64::from(x), f64::from(y));
            d.max_abs = d.max_abs.max((x - y).abs());
            d.max_abs_reference = d.max_abs_reference.max(y.abs());
            d.signal += y * y;
            d.noise += (x - y) * (x - y);
        }
        Some(d)
    }
}

/// The difference between a tensor and a reference of the same shape
/// ([`Tensor::deviation`]): the metrics the fixture tests, `anekit compress` and the docs use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// max |x − r|.
    pub max_abs: f64,
    /// max |r|.
    pub max_abs_reference: f64,
    /// Σ r².
    pub signal: f64,
    /// Σ (x − r)².
    pub noise: f64,
}

impl Deviation {
    /// max |x − r| / max |r| (0 for an all-zero reference that is matched exactly).
    pub fn relative(&self) -> f64 {
        self.max_abs / self.max_abs_reference.max(f64::MIN_POSITIVE)
    }

    /// Signal-to-noise ratio in dB, 10·log10(Σ r² / Σ (x − r)²); +∞ for an exact match.
    pub fn snr_db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
}

/// An array of `shape` from row-major `values`, or an error saying why not.
pub(crate) fn from_vec<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>> {
    let n = values.len();
    ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|_| RuntimeError::Input {
        name: String::new(),
        message: format!("{n} values do not fill shape {shape:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviation_by_hand() {
        let x = Tensor::f32(&[2], vec![1.0, 2.0]).unwrap();
        let r = Tensor::f32(&[2], vec![1.0, 4.0]).unwrap();
        let d = x.deviation(&r).unwrap();
        assert_eq!((d.max_abs, d.max_abs_reference), (2.0, 4.0));
        assert_eq!(d.relative(), 0.5);
        // 10·log10((1 + 16) / 4)
        assert!((d.snr_db() - 6.283_889_300_503_116).abs() < 1e-12);
        assert_eq!(r.deviation(&r).unwrap().snr_db(), f64::INFINITY);
        assert!(
            x.deviation(&Tensor::f32(&[1, 2], vec![1.0, 4.0]).unwrap())
                .is_none()
        );
    }
}
