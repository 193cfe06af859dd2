//! Tensors exchanged with a model: named, typed, n-dimensional arrays.

use half::f16;
use ndarray::{ArrayD, IxDyn};

use crate::error::{Result, RuntimeError};

/// Element type of a [`Tensor`] (the types Core ML exchanges, plus `u8`).
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
}

impl ElementType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// The MIL spelling (`fp32`, `fp16`, `int32`, `int8`, `uint8`, `bool`).
    pub fn mil_name(self) -> &'static str {
        match self {
            Self::F32 => "fp32",
            Self::F16 => "fp16",
            Self::I32 => "int32",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
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
            _ => return None,
        })
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mil_name())
    }
}

/// A tensor: an n-dimensional array of one element type.
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
}

macro_rules! each {
    ($t:expr, $a:ident => $e:expr) => {
        match $t {
            Tensor::F32($a) => $e,
            Tensor::F16($a) => $e,
            Tensor::I32($a) => $e,
            Tensor::I8($a) => $e,
            Tensor::U8($a) => $e,
            Tensor::Bool($a) => $e,
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
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        each!(self, a => a.shape())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each!(self, a => a.len())
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

    /// A tensor of zeros.
    pub fn zeros(dtype: ElementType, shape: &[usize]) -> Self {
        let s = IxDyn(shape);
        match dtype {
            ElementType::F32 => Tensor::F32(ArrayD::zeros(s)),
            ElementType::F16 => Tensor::F16(ArrayD::from_elem(s, f16::ZERO)),
            ElementType::I32 => Tensor::I32(ArrayD::zeros(s)),
            ElementType::I8 => Tensor::I8(ArrayD::zeros(s)),
            ElementType::U8 => Tensor::U8(ArrayD::zeros(s)),
            ElementType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
        }
    }

    /// The elements converted to f32 (bools as 0/1), in row-major order.
    pub fn to_f32(&self) -> ArrayD<f32> {
        match self {
            Tensor::F32(a) => a.clone(),
            Tensor::F16(a) => a.mapv(f16::to_f32),
            Tensor::I32(a) => a.mapv(|v| v as f32),
            Tensor::I8(a) => a.mapv(f32::from),
            Tensor::U8(a) => a.mapv(f32::from),
            Tensor::Bool(a) => a.mapv(|v| if v { 1.0 } else { 0.0 }),
        }
    }

    /// The tensor converted to `dtype` (floats to integers round toward zero and saturate,
    /// as numpy's `astype` does for in-range values).
    pub fn cast(&self, dtype: ElementType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        let f = self.to_f32();
        match dtype {
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

    /// Bytes the elements occupy.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
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
