//! Constants of a Core AI graph as host data: the elements of `constant_v1` ops (inline
//! `dense_elements` or a `dense_resource` blob, never copied), read as numbers where a
//! translation needs them (shapes, axes, permutations) and turned into MIL values.

use bytes::Bytes;

use anekit_mil::value::Placement;
use anekit_mil::{DataType, TensorType, Value as MilValue};

use crate::ir::Scalar;

/// A constant tensor: element type, shape and raw little-endian elements (all of them;
/// splats are expanded when read).
#[derive(Debug, Clone, PartialEq)]
pub struct Konst {
    /// Element type.
    pub scalar: Scalar,
    /// Shape.
    pub shape: Vec<u64>,
    /// The elements as stored (sub-byte types packed, least significant bits first).
    pub data: Bytes,
    /// All elements equal the first (the data holds one element).
    pub splat: bool,
}

/// What went wrong reading a constant.
pub type KonstError = String;

impl Konst {
    /// A constant from a dense payload (`splat`: one element for all).
    pub fn new(
        scalar: Scalar,
        shape: Vec<u64>,
        data: Bytes,
        splat: bool,
    ) -> Result<Self, KonstError> {
        let k = Self {
            scalar,
            shape,
            data,
            splat,
        };
        let n = k.count().ok_or("element count overflows")?;
        let need_bits = if splat {
            u64::from(scalar.bits())
        } else {
            n.checked_mul(u64::from(scalar.bits()))
                .ok_or("size overflows")?
        };
        let need = need_bits.div_ceil(8);
        if (k.data.len() as u64) < need {
            return Err(format!(
                "{} bytes of data for {n} {} elements ({need} needed)",
                k.data.len(),
                scalar.name()
            ));
        }
        Ok(k)
    }

    /// A constant of 64-bit signed integers.
    pub fn i64s(shape: Vec<u64>, values: &[i64]) -> Self {
        let mut data = Vec::with_capacity(values.len() * 8);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        Self {
            scalar: Scalar::SInt(64),
            shape,
            data: Bytes::from(data),
            splat: false,
        }
    }

    /// Element count.
    pub fn count(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }

    fn raw(&self, i: usize) -> u64 {
        let i = if self.splat { 0 } else { i };
        let bits = self.scalar.bits() as usize;
        if bits < 8 {
            let bit = i * bits;
            let byte = self.data.get(bit / 8).copied().unwrap_or(0);
            let next = self.data.get(bit / 8 + 1).copied().unwrap_or(0);
            let word = u16::from(byte) | (u16::from(next) << 8);
            return u64::from((word >> (bit % 8)) & ((1u16 << bits) - 1));
        }
        let size = bits / 8;
        let mut le = [0u8; 8];
        if let Some(b) = self.data.get(i * size..(i + 1) * size) {
            le[..size].copy_from_slice(b);
        }
        u64::from_le_bytes(le)
    }

    /// Element `i` as an integer (floats truncated).
    pub fn i64_at(&self, i: usize) -> i64 {
        let r = self.raw(i);
        match self.scalar {
            Scalar::SInt(b) => {
                let shift = 64 - u32::from(b);
                ((r << shift) as i64) >> shift
            }
            Scalar::UInt(_) | Scalar::Bool => r as i64,
            _ => self.f64_at(i) as i64,
        }
    }

    /// Element `i` as a float.
    pub fn f64_at(&self, i: usize) -> f64 {
        let r = self.raw(i);
        match self.scalar {
            Scalar::F32 => f64::from(f32::from_bits(r as u32)),
            Scalar::F64 => f64::from_bits(r),
            Scalar::F16 => half::f16::from_bits(r as u16).to_f64(),
            Scalar::BF16 => half::bf16::from_bits(r as u16).to_f64(),
            _ => self.i64_at(i) as f64,
        }
    }

    /// All elements as integers (up to `limit` of them).
    pub fn to_i64s(&self, limit: usize) -> Result<Vec<i64>, KonstError> {
        let n = self
            .count()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("too many elements")?;
        if n > limit {
            return Err(format!("{n} elements where at most {limit} are expected"));
        }
        Ok((0..n).map(|i| self.i64_at(i)).collect())
    }

    /// The single element of a one-element constant, as an integer.
    pub fn scalar_i64(&self) -> Result<i64, KonstError> {
        match self.count() {
            Some(1) => Ok(self.i64_at(0)),
            n => Err(format!("expected one element, found {n:?}")),
        }
    }

    /// The single element, as a float.
    pub fn scalar_f64(&self) -> Result<f64, KonstError> {
        match self.count() {
            Some(1) => Ok(self.f64_at(0)),
            n => Err(format!("expected one element, found {n:?}")),
        }
    }

    /// Whether every element equals `v`.
    pub fn all_equal(&self, v: f64) -> bool {
        match self.count().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if self.splat || n <= 1 => n == 0 || self.f64_at(0) == v,
            Some(n) => (0..n).all(|i| self.f64_at(i) == v),
            None => false,
        }
    }

    /// The MIL element type the translation uses for this constant: integers become
    /// int32 except 8-bit and sub-byte ones (kept for compression ops), floats fp32 or
    /// fp16.
    pub fn mil_dtype(&self) -> DataType {
        mil_dtype(self.scalar)
    }

    /// The constant as a MIL value of `dtype` (elements converted; splats expanded).
    pub fn to_mil(&self, dtype: DataType) -> Result<MilValue, KonstError> {
        let n = self
            .count()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("too many elements")?;
        let ty = TensorType::new(dtype, &self.shape);
        // Same encoding, not a splat: no copy.
        if !self.splat && native(self.scalar) == Some(dtype) {
            let bits = dtype.bits().unwrap_or(8) as usize;
            let len = (n * bits).div_ceil(8);
            return Ok(MilValue::tensor_bytes(
                ty,
                self.data.slice(..len),
                Placement::Auto,
            ));
        }
        let mut out: Vec<u8> = Vec::new();
        match dtype {
            DataType::Fp32 => {
                (0..n).for_each(|i| out.extend_from_slice(&(self.f64_at(i) as f32).to_le_bytes()))
            }
            DataType::Fp16 => (0..n).for_each(|i| {
                out.extend_from_slice(&half::f16::from_f64(self.f64_at(i)).to_le_bytes())
            }),
            DataType::Int32 => (0..n).for_each(|i| {
                let v = self
                    .i64_at(i)
                    .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                out.extend_from_slice(&v.to_le_bytes())
            }),
            DataType::Int16 => {
                (0..n).for_each(|i| out.extend_from_slice(&(self.i64_at(i) as i16).to_le_bytes()))
            }
            DataType::Uint16 => {
                (0..n).for_each(|i| out.extend_from_slice(&(self.i64_at(i) as u16).to_le_bytes()))
            }
            DataType::Int8 => (0..n).for_each(|i| out.push(self.i64_at(i) as i8 as u8)),
            DataType::Uint8 => (0..n).for_each(|i| out.push(self.i64_at(i) as u8)),
            DataType::Bool => (0..n).for_each(|i| out.push(u8::from(self.raw(i) != 0))),
            d if d.is_sub_byte() => {
                let bits = d.bits().unwrap_or(4) as usize;
                out = vec![0u8; (n * bits).div_ceil(8)];
                for i in 0..n {
                    let v = (self.raw(i) & ((1 << bits) - 1)) as u16;
                    let bit = i * bits;
                    let word = v << (bit % 8);
                    out[bit / 8] |= word as u8;
                    if bit % 8 + bits > 8 {
                        out[bit / 8 + 1] |= (word >> 8) as u8;
                    }
                }
            }
            d => return Err(format!("constants of type {d} are not supported")),
        }
        Ok(MilValue::tensor_bytes(ty, out, Placement::Auto))
    }
}

/// The MIL type with the same encoding as `s`, if there is one.
fn native(s: Scalar) -> Option<DataType> {
    Some(match s {
        Scalar::Bool => DataType::Bool,
        Scalar::F32 => DataType::Fp32,
        Scalar::F16 => DataType::Fp16,
        Scalar::BF16 => DataType::Bf16,
        Scalar::F64 => DataType::Fp64,
        Scalar::SInt(64) => DataType::Int64,
        Scalar::SInt(32) => DataType::Int32,
        Scalar::SInt(16) => DataType::Int16,
        Scalar::SInt(8) => DataType::Int8,
        Scalar::SInt(4) => DataType::Int4,
        Scalar::UInt(64) => DataType::Uint64,
        Scalar::UInt(32) => DataType::Uint32,
        Scalar::UInt(16) => DataType::Uint16,
        Scalar::UInt(8) => DataType::Uint8,
        Scalar::UInt(6) => DataType::Uint6,
        Scalar::UInt(4) => DataType::Uint4,
        Scalar::UInt(3) => DataType::Uint3,
        Scalar::UInt(2) => DataType::Uint2,
        Scalar::UInt(1) => DataType::Uint1,
        _ => return None,
    })
}

/// The MIL type a Core AI element type is computed in: floats stay fp32/fp16 (fp64 and
/// bf16 become fp32), bool stays bool, integers become int32.
pub fn mil_dtype(s: Scalar) -> DataType {
    match s {
        Scalar::Bool => DataType::Bool,
        Scalar::F16 => DataType::Fp16,
        Scalar::F32 | Scalar::F64 | Scalar::BF16 => DataType::Fp32,
        Scalar::SInt(_) | Scalar::UInt(_) => DataType::Int32,
    }
}

/// The MIL type that stores `s` exactly (for compressed weights), if there is one.
pub fn storage_dtype(s: Scalar) -> Option<DataType> {
    native(s)
}
