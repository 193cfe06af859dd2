//! Value types of the IR: element data types, dimensions, tensor/list/tuple/dict/state types.

use std::collections::BTreeMap;
use std::fmt;

use anekit_format::BlobDataType;
use anekit_format::proto::mil_spec;

use crate::value::Value;

/// Element type of a tensor (MIL.proto `DataType`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum DataType {
    Bool,
    String,
    Fp16,
    Fp32,
    Fp64,
    Bf16,
    #[serde(rename = "fp8e4m3fn")]
    Fp8E4M3Fn,
    #[serde(rename = "fp8e5m2")]
    Fp8E5M2,
    Int4,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint1,
    Uint2,
    Uint3,
    Uint4,
    Uint6,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
}

impl DataType {
    /// Every data type.
    pub const ALL: [DataType; 22] = [
        Self::Bool,
        Self::String,
        Self::Fp16,
        Self::Fp32,
        Self::Fp64,
        Self::Bf16,
        Self::Fp8E4M3Fn,
        Self::Fp8E5M2,
        Self::Int4,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Uint1,
        Self::Uint2,
        Self::Uint3,
        Self::Uint4,
        Self::Uint6,
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
    ];

    /// The MIL.proto enum value.
    pub fn to_proto(self) -> mil_spec::DataType {
        use mil_spec::DataType as P;
        match self {
            Self::Bool => P::Bool,
            Self::String => P::String,
            Self::Fp16 => P::Float16,
            Self::Fp32 => P::Float32,
            Self::Fp64 => P::Float64,
            Self::Bf16 => P::Bfloat16,
            Self::Fp8E4M3Fn => P::Float8e4m3fn,
            Self::Fp8E5M2 => P::Float8e5m2,
            Self::Int4 => P::Int4,
            Self::Int8 => P::Int8,
            Self::Int16 => P::Int16,
            Self::Int32 => P::Int32,
            Self::Int64 => P::Int64,
            Self::Uint1 => P::Uint1,
            Self::Uint2 => P::Uint2,
            Self::Uint3 => P::Uint3,
            Self::Uint4 => P::Uint4,
            Self::Uint6 => P::Uint6,
            Self::Uint8 => P::Uint8,
            Self::Uint16 => P::Uint16,
            Self::Uint32 => P::Uint32,
            Self::Uint64 => P::Uint64,
        }
    }

    /// The type for a MIL.proto enum value (`None` for `UNUSED_TYPE` and unknown numbers).
    pub fn from_proto(v: i32) -> Option<Self> {
        let p = mil_spec::DataType::try_from(v).ok()?;
        Self::ALL.iter().copied().find(|t| t.to_proto() == p)
    }

    /// The spelling in MIL text and coremltools (`fp16`, `int32`, `uint4`, `bool`, `string`).
    /// bf16 and the fp8 types have no pymil spelling; `bf16`, `fp8e4m3fn` and `fp8e5m2` are
    /// used for them.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::String => "string",
            Self::Fp16 => "fp16",
            Self::Fp32 => "fp32",
            Self::Fp64 => "fp64",
            Self::Bf16 => "bf16",
            Self::Fp8E4M3Fn => "fp8e4m3fn",
            Self::Fp8E5M2 => "fp8e5m2",
            Self::Int4 => "int4",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Uint1 => "uint1",
            Self::Uint2 => "uint2",
            Self::Uint3 => "uint3",
            Self::Uint4 => "uint4",
            Self::Uint6 => "uint6",
            Self::Uint8 => "uint8",
            Self::Uint16 => "uint16",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
        }
    }

    /// The type spelled `name` (see [`DataType::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Width of one element in bits (`None` for strings).
    pub fn bits(self) -> Option<u32> {
        Some(match self {
            Self::String => return None,
            Self::Uint1 => 1,
            Self::Uint2 => 2,
            Self::Uint3 => 3,
            Self::Int4 | Self::Uint4 => 4,
            Self::Uint6 => 6,
            Self::Bool | Self::Int8 | Self::Uint8 | Self::Fp8E4M3Fn | Self::Fp8E5M2 => 8,
            Self::Fp16 | Self::Bf16 | Self::Int16 | Self::Uint16 => 16,
            Self::Fp32 | Self::Int32 | Self::Uint32 => 32,
            Self::Fp64 | Self::Int64 | Self::Uint64 => 64,
        })
    }

    /// Whether elements are narrower than a byte (stored packed LSB-first).
    pub fn is_sub_byte(self) -> bool {
        self.bits().is_some_and(|b| b < 8)
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Self::Fp16 | Self::Fp32 | Self::Fp64 | Self::Bf16 | Self::Fp8E4M3Fn | Self::Fp8E5M2
        )
    }

    /// Whether this is an integer type (signed or unsigned, any width).
    pub fn is_int(self) -> bool {
        !self.is_float() && !matches!(self, Self::Bool | Self::String)
    }

    /// Whether this is a signed integer type.
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            Self::Int4 | Self::Int8 | Self::Int16 | Self::Int32 | Self::Int64
        )
    }

    /// The weight-blob element type with the same encoding, if blobs can hold this type.
    pub fn blob_type(self) -> Option<BlobDataType> {
        use BlobDataType as B;
        Some(match self {
            Self::Fp16 => B::Float16,
            Self::Fp32 => B::Float32,
            Self::Bf16 => B::BFloat16,
            Self::Fp8E4M3Fn => B::Float8E4M3FN,
            Self::Fp8E5M2 => B::Float8E5M2,
            Self::Int4 => B::Int4,
            Self::Int8 => B::Int8,
            Self::Int16 => B::Int16,
            Self::Int32 => B::Int32,
            Self::Uint1 => B::UInt1,
            Self::Uint2 => B::UInt2,
            Self::Uint3 => B::UInt3,
            Self::Uint4 => B::UInt4,
            Self::Uint6 => B::UInt6,
            Self::Uint8 => B::UInt8,
            Self::Uint16 => B::UInt16,
            Self::Uint32 => B::UInt32,
            _ => return None,
        })
    }

    /// The IR type of a weight-blob element type.
    pub fn from_blob_type(t: BlobDataType) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|d| d.blob_type() == Some(t))
            .unwrap_or(Self::Uint8)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of a tensor shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// A known extent.
    Fixed(u64),
    /// An extent known only at run time (flexible shapes). `variadic` marks a dimension that
    /// stands for any number of dimensions (MIL.proto `UnknownDimension.variadic`).
    Unknown {
        /// Whether this stands for zero or more dimensions.
        variadic: bool,
    },
}

impl Dim {
    /// The extent, if known.
    pub fn fixed(self) -> Option<u64> {
        match self {
            Dim::Fixed(n) => Some(n),
            Dim::Unknown { .. } => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Unknown { variadic: false } => f.write_str("?"),
            Dim::Unknown { variadic: true } => f.write_str("?*"),
        }
    }
}

/// A tensor type. Scalars are rank-0 tensors (`shape == Some(vec![])`).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorType {
    /// Element type.
    pub dtype: DataType,
    /// Dimensions; `None` when even the rank is unknown (MIL.proto `rank == -1`).
    pub shape: Option<Vec<Dim>>,
    /// Type attributes (rare; kept for lossless conversion).
    pub attributes: BTreeMap<String, Value>,
}

impl TensorType {
    /// A tensor of fixed shape.
    pub fn new(dtype: DataType, shape: &[u64]) -> Self {
        Self {
            dtype,
            shape: Some(shape.iter().map(|&d| Dim::Fixed(d)).collect()),
            attributes: BTreeMap::new(),
        }
    }

    /// A scalar (rank-0 tensor).
    pub fn scalar(dtype: DataType) -> Self {
        Self {
            dtype,
            shape: Some(Vec::new()),
            attributes: BTreeMap::new(),
        }
    }

    /// The rank, if known.
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len)
    }

    /// Whether this is a scalar.
    pub fn is_scalar(&self) -> bool {
        self.shape.as_ref().is_some_and(Vec::is_empty)
    }

    /// The shape if every dimension is known.
    pub fn fixed_shape(&self) -> Option<Vec<u64>> {
        self.shape.as_ref()?.iter().map(|d| d.fixed()).collect()
    }

    /// The number of elements if the shape is fixed and the count fits in `u64`.
    pub fn element_count(&self) -> Option<u64> {
        self.fixed_shape()?
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }
}

/// The most elements one tensor may have wherever anekit allocates one (2^31, 8 GiB of f32).
/// A shape from a file or from a model's arithmetic that asks for more is refused with an
/// error naming the tensor, instead of aborting on allocation failure. Core ML documents no
/// such limit; this is anekit's own bound, far above the tensors of real models.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The element count of `shape`, or `None` when the product overflows `usize`.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The element count of `shape` if it is at most [`MAX_ELEMENTS`].
pub fn bounded_element_count(shape: &[usize]) -> Option<usize> {
    element_count(shape).filter(|n| *n <= MAX_ELEMENTS)
}

/// Row-major (C-order) strides of `shape`, in elements: the last axis has stride 1. Products
/// saturate instead of overflowing (a shape that large is refused before it is indexed).
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        let (Some(next), Some(extent)) = (s.get(d + 1).copied(), shape.get(d + 1).copied()) else {
            continue;
        };
        if let Some(slot) = s.get_mut(d) {
            *slot = next.saturating_mul(extent);
        }
    }
    s
}

impl fmt::Display for TensorType {
    /// MIL text form: `tensor<fp16, [1, 3, ?]>`, `tensor<int32, []>`, `tensor<fp32, *>` for
    /// unknown rank.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tensor<{}, ", self.dtype)?;
        match &self.shape {
            None => f.write_str("*")?,
            Some(dims) => {
                f.write_str("[")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")?;
            }
        }
        f.write_str(">")
    }
}

/// The type of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    /// A tensor (including scalars).
    Tensor(TensorType),
    /// A list of values of one type, of a possibly unknown length.
    List {
        /// Element type.
        element: Box<ValueType>,
        /// Length.
        length: Dim,
    },
    /// A fixed sequence of typed values.
    Tuple(Vec<ValueType>),
    /// A dictionary.
    Dict {
        /// Key type.
        key: Box<ValueType>,
        /// Value type.
        value: Box<ValueType>,
    },
    /// A state (iOS18+ function inputs such as KV caches) wrapping a tensor type.
    State(Box<ValueType>),
}

impl ValueType {
    /// The tensor type, if this is a tensor.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            ValueType::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// A scalar of `dtype`.
    pub fn scalar(dtype: DataType) -> Self {
        ValueType::Tensor(TensorType::scalar(dtype))
    }

    /// A fixed-shape tensor.
    pub fn tensor(dtype: DataType, shape: &[u64]) -> Self {
        ValueType::Tensor(TensorType::new(dtype, shape))
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Tensor(t) => write!(f, "{t}"),
            ValueType::List { element, length } => write!(f, "list<{element}, {length}>"),
            ValueType::Tuple(ts) => {
                f.write_str("tuple<")?;
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(">")
            }
            ValueType::Dict { key, value } => write!(f, "dict<{key}, {value}>"),
            ValueType::State(t) => write!(f, "state<{t}>"),
        }
    }
}

/// A name with its type: a function or block input, or an op output.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedValueType {
    /// The variable name.
    pub name: String,
    /// Its type.
    pub ty: ValueType,
}

impl NamedValueType {
    /// A named type.
    pub fn new(name: impl Into<String>, ty: ValueType) -> Self {
        Self {
            name: name.into(),
            ty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_counts_and_strides() {
        assert_eq!(element_count(&[2, 3, 4]), Some(24));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[usize::MAX, 2]), None);
        assert_eq!(
            bounded_element_count(&[1 << 16, 1 << 15]),
            Some(MAX_ELEMENTS)
        );
        assert_eq!(bounded_element_count(&[1 << 16, (1 << 15) + 1]), None);
        assert_eq!(row_major_strides(&[2, 3, 4]), [12, 4, 1]);
        assert_eq!(row_major_strides(&[5]), [1]);
        assert!(row_major_strides(&[]).is_empty());
        assert_eq!(row_major_strides(&[2, usize::MAX, 2])[0], usize::MAX);
    }
}
