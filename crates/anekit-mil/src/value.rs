//! Constant values: immediates and weights.
//!
//! Tensor data is held as raw little-endian bytes in the element type's own encoding
//! (sub-byte types packed LSB-first, bools one byte each), inside a [`Bytes`] that is either
//! owned or a view into a memory-mapped weight file — a weight is never copied until
//! something computes with it.

use bytes::Bytes;
use half::f16;

use crate::types::{DataType, TensorType, ValueType};

/// Where a tensor constant lives in a serialized model.
///
/// Kept so that a model round-trips with the same placement; equality ignores the blob's
/// file and offset (they change whenever a weight file is rewritten).
#[derive(Debug, Clone)]
pub enum Placement {
    /// Written inline in the protobuf / MIL text.
    Inline,
    /// Stored in a weight-blob file; `source` says where it was read from, if anywhere.
    Blob {
        /// The `BlobFileValue` it was read from (file name as written in the model, metadata
        /// offset).
        source: Option<BlobRef>,
    },
    /// Not decided: the writer applies coremltools' rule (≥ 10 elements of a blob-able type
    /// go to the weight file).
    Auto,
}

impl PartialEq for Placement {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// A reference to a blob in a weight file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// The file name as the model writes it (e.g. `@model_path/weights/weight.bin`).
    pub file: String,
    /// Offset of the blob's metadata record.
    pub offset: u64,
}

/// The elements of a tensor constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// Raw little-endian elements in the dtype's encoding.
    Bytes(Bytes),
    /// UTF-8 strings (dtype `string`).
    Strings(Vec<String>),
}

/// A tensor constant: its elements and where they are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    /// The elements.
    pub storage: Storage,
    /// Where the elements live in a serialized model.
    pub placement: Placement,
}

/// The content of a [`Value`].
#[derive(Debug, Clone, PartialEq)]
pub enum ValueData {
    /// No content (MIL.proto allows a `Value` that only carries a type).
    None,
    /// A tensor (scalars included).
    Tensor(TensorData),
    /// A tuple of values.
    Tuple(Vec<Value>),
    /// A list of values.
    List(Vec<Value>),
    /// A dictionary, in its serialized order.
    Dict(Vec<(Value, Value)>),
}

/// A constant value with its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The type.
    pub ty: ValueType,
    /// The content.
    pub data: ValueData,
    /// Optional human-readable text (MIL.proto `docString`).
    pub doc: String,
}

impl Value {
    /// A tensor value from raw little-endian bytes (checked by [`Value::validate`], not here).
    pub fn tensor_bytes(ty: TensorType, bytes: impl Into<Bytes>, placement: Placement) -> Self {
        Value {
            ty: ValueType::Tensor(ty),
            data: ValueData::Tensor(TensorData {
                storage: Storage::Bytes(bytes.into()),
                placement,
            }),
            doc: String::new(),
        }
    }

    /// A string scalar (what every op's `name` attribute is).
    pub fn string(s: impl Into<String>) -> Self {
        Value {
            ty: ValueType::scalar(DataType::String),
            data: ValueData::Tensor(TensorData {
                storage: Storage::Strings(vec![s.into()]),
                placement: Placement::Inline,
            }),
            doc: String::new(),
        }
    }

    /// An int32 scalar.
    pub fn int32(v: i32) -> Self {
        Self::tensor_bytes(
            TensorType::scalar(DataType::Int32),
            v.to_le_bytes().to_vec(),
            Placement::Inline,
        )
    }

    /// A bool scalar.
    pub fn bool(v: bool) -> Self {
        Self::tensor_bytes(
            TensorType::scalar(DataType::Bool),
            vec![u8::from(v)],
            Placement::Inline,
        )
    }

    /// An fp32 scalar.
    pub fn fp32(v: f32) -> Self {
        Self::tensor_bytes(
            TensorType::scalar(DataType::Fp32),
            v.to_le_bytes().to_vec(),
            Placement::Inline,
        )
    }

    /// An fp32 tensor.
    pub fn fp32_tensor(shape: &[u64], values: &[f32]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::tensor_bytes(
            TensorType::new(DataType::Fp32, shape),
            bytes,
            Placement::Auto,
        )
    }

    /// An int32 tensor.
    pub fn int32_tensor(shape: &[u64], values: &[i32]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::tensor_bytes(
            TensorType::new(DataType::Int32, shape),
            bytes,
            Placement::Auto,
        )
    }

    /// The tensor type, if this is a tensor.
    pub fn tensor_type(&self) -> Option<&TensorType> {
        self.ty.as_tensor()
    }

    /// The tensor data, if this is a tensor.
    pub fn tensor_data(&self) -> Option<&TensorData> {
        match &self.data {
            ValueData::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The raw bytes of a non-string tensor.
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.tensor_data()?.storage {
            Storage::Bytes(b) => Some(b),
            Storage::Strings(_) => None,
        }
    }

    /// The strings of a string tensor.
    pub fn strings(&self) -> Option<&[String]> {
        match &self.tensor_data()?.storage {
            Storage::Strings(s) => Some(s),
            Storage::Bytes(_) => None,
        }
    }

    /// The single string of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self.strings()? {
            [s] if self.tensor_type()?.is_scalar() => Some(s),
            _ => None,
        }
    }

    /// Elements as `i64`, for integer and bool tensors (sub-byte ones unpacked and
    /// sign-extended). `None` for other types or inconsistent data.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        let t = self.tensor_type()?;
        let n = usize::try_from(t.element_count()?).ok()?;
        let b = self.bytes()?;
        let out: Vec<i64> = match t.dtype {
            DataType::Bool | DataType::Uint8 => b.iter().map(|&v| i64::from(v)).collect(),
            DataType::Int8 => b.iter().map(|&v| i64::from(v as i8)).collect(),
            DataType::Int16 => le_chunks::<2>(b)
                .map(|c| i64::from(i16::from_le_bytes(c)))
                .collect(),
            DataType::Uint16 => le_chunks::<2>(b)
                .map(|c| i64::from(u16::from_le_bytes(c)))
                .collect(),
            DataType::Int32 => le_chunks::<4>(b)
                .map(|c| i64::from(i32::from_le_bytes(c)))
                .collect(),
            DataType::Uint32 => le_chunks::<4>(b)
                .map(|c| i64::from(u32::from_le_bytes(c)))
                .collect(),
            DataType::Int64 => le_chunks::<8>(b).map(i64::from_le_bytes).collect(),
            DataType::Uint64 => le_chunks::<8>(b)
                .map(|c| u64::from_le_bytes(c) as i64)
                .collect(),
            d if d.is_sub_byte() => {
                let bits = d.bits()?;
                let raw = anekit_format::subbyte::unpack(b, bits, n)?;
                if d == DataType::Int4 {
                    raw.iter()
                        .map(|&v| i64::from(anekit_format::subbyte::sign_extend(v, 4)))
                        .collect()
                } else {
                    raw.iter().map(|&v| i64::from(v)).collect()
                }
            }
            _ => return None,
        };
        (out.len() == n).then_some(out)
    }

    /// Elements as `f32`, for float tensors (fp16/bf16/fp32/fp64) and integer/bool tensors.
    /// `None` for strings, fp8 or inconsistent data.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        let t = self.tensor_type()?;
        let n = usize::try_from(t.element_count()?).ok()?;
        let b = self.bytes()?;
        let out: Vec<f32> = match t.dtype {
            DataType::Fp32 => le_chunks::<4>(b).map(f32::from_le_bytes).collect(),
            DataType::Fp16 => le_chunks::<2>(b)
                .map(|c| f16::from_le_bytes(c).to_f32())
                .collect(),
            DataType::Bf16 => le_chunks::<2>(b)
                .map(|c| half::bf16::from_le_bytes(c).to_f32())
                .collect(),
            DataType::Fp64 => le_chunks::<8>(b)
                .map(|c| f64::from_le_bytes(c) as f32)
                .collect(),
            d if d.is_int() || d == DataType::Bool => {
                return self
                    .to_i64_vec()
                    .map(|v| v.into_iter().map(|x| x as f32).collect());
            }
            _ => return None,
        };
        (out.len() == n).then_some(out)
    }

    /// The single element of a scalar (or one-element tensor) as `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self.to_i64_vec()?.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }

    /// The single element of a scalar (or one-element tensor) as `f32`.
    pub fn as_f32(&self) -> Option<f32> {
        match self.to_f32_vec()?.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }

    /// The single element of a bool scalar.
    pub fn as_bool(&self) -> Option<bool> {
        (self.tensor_type()?.dtype == DataType::Bool).then_some(())?;
        self.as_i64().map(|v| v != 0)
    }

    /// Check that a tensor value's data matches its type: the byte length equals what the
    /// shape and dtype need, string count equals the element count. Returns a description
    /// of the mismatch.
    pub fn validate(&self) -> Result<(), String> {
        match &self.data {
            ValueData::None => Ok(()),
            ValueData::Tensor(d) => {
                let t = self
                    .tensor_type()
                    .ok_or("tensor data with a non-tensor type")?;
                let n = t
                    .element_count()
                    .ok_or_else(|| format!("constant of type {t} has no fixed element count"))?;
                match (&d.storage, t.dtype) {
                    (Storage::Strings(s), DataType::String) => {
                        if s.len() as u64 != n {
                            return Err(format!("{} strings for type {t}", s.len()));
                        }
                    }
                    (Storage::Strings(_), _) => return Err(format!("strings for type {t}")),
                    (Storage::Bytes(_), DataType::String) => {
                        return Err("bytes for a string tensor".into());
                    }
                    (Storage::Bytes(b), dtype) => {
                        let bits = u64::from(dtype.bits().unwrap_or(8));
                        let need = n
                            .checked_mul(bits)
                            .map(|x| x.div_ceil(8))
                            .ok_or("size overflows")?;
                        if b.len() as u64 != need {
                            return Err(format!(
                                "{} bytes of data for type {t}, which needs {need}",
                                b.len()
                            ));
                        }
                    }
                }
                Ok(())
            }
            ValueData::Tuple(vs) | ValueData::List(vs) => vs.iter().try_for_each(Value::validate),
            ValueData::Dict(kv) => kv.iter().try_for_each(|(k, v)| {
                k.validate()?;
                v.validate()
            }),
        }
    }
}

fn le_chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}
