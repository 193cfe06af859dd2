//! Weights as the algorithms see them: float values with a shape and the storage dtype whose
//! arithmetic is reproduced, and block layouts (per-tensor, per-channel, per-block).

use anekit_mil::{DataType, Value};
use half::f16;

use crate::error::{CompressError, Result};

/// The float type of a weight; coremltools computes in it (numpy float16 arithmetic rounds
/// every intermediate result to fp16), so the algorithms do too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatType {
    /// IEEE half precision.
    F16,
    /// IEEE single precision.
    F32,
}

impl FloatType {
    /// Round an `f32` to this type (identity for `F32`). Computing an fp16 operation in
    /// f32 and rounding once gives the correctly rounded fp16 result for `+ − × ÷ √`
    /// (f32 has more than 2·11+2 significand bits), which is what numpy's float16 loops do.
    #[inline]
    pub fn round(self, x: f32) -> f32 {
        match self {
            Self::F16 => f16::from_f32(x).to_f32(),
            Self::F32 => x,
        }
    }

    /// Round an `f64` to this type in one step (numpy's float64 → float16/32 cast).
    #[inline]
    pub fn round64(self, x: f64) -> f32 {
        match self {
            Self::F16 => f16::from_f64(x).to_f32(),
            Self::F32 => x as f32,
        }
    }

    /// The MIL data type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::F16 => DataType::Fp16,
            Self::F32 => DataType::Fp32,
        }
    }

    /// The float type of a MIL data type, if it is fp16 or fp32.
    pub fn from_data_type(d: DataType) -> Option<Self> {
        match d {
            DataType::Fp16 => Some(Self::F16),
            DataType::Fp32 => Some(Self::F32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F16 => 2,
            Self::F32 => 4,
        }
    }

    /// Little-endian bytes of `values` in this type (values must already be representable).
    pub fn to_bytes(self, values: &[f32]) -> Vec<u8> {
        match self {
            Self::F16 => values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect(),
            Self::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// A float weight: row-major values (exactly representable in `dtype`) and a shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// Storage type.
    pub dtype: FloatType,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl Weight {
    /// A weight from values, rounding them to `dtype`. Errors if the shape does not match.
    pub fn new(dtype: FloatType, shape: Vec<usize>, values: Vec<f32>) -> Result<Self> {
        let n = element_count(&shape)
            .ok_or_else(|| CompressError::Config(format!("shape {shape:?} overflows")))?;
        if n != values.len() {
            return Err(CompressError::Config(format!(
                "{} values for shape {shape:?}",
                values.len()
            )));
        }
        let values = if dtype == FloatType::F16 {
            values.into_iter().map(|v| dtype.round(v)).collect()
        } else {
            values
        };
        Ok(Self {
            dtype,
            shape,
            values,
        })
    }

    /// The weight held by a MIL tensor constant of dtype fp16 or fp32 (`None` for other
    /// types or data that does not match the declared type).
    pub fn from_value(v: &Value) -> Option<Self> {
        let t = v.tensor_type()?;
        let dtype = FloatType::from_data_type(t.dtype)?;
        let shape: Vec<usize> = t
            .fixed_shape()?
            .into_iter()
            .map(usize::try_from)
            .collect::<Result<_, _>>()
            .ok()?;
        let values = v.to_f32_vec()?;
        (element_count(&shape)? == values.len()).then_some(Self {
            dtype,
            shape,
            values,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the weight has no elements.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Size in bytes as stored uncompressed.
    pub fn nbytes(&self) -> usize {
        self.values.len() * self.dtype.size()
    }
}

/// Product of dimensions, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1].saturating_mul(shape[d + 1]);
    }
    s
}

/// A block layout: `block[d]` consecutive indices along axis `d` share one parameter set
/// (coremltools' `block_sizes`, with 0 meaning the whole axis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocks {
    /// The tensor shape.
    pub shape: Vec<usize>,
    /// Effective block size per axis (≥ 1; the whole axis where coremltools says 0).
    pub block: Vec<usize>,
    /// Number of blocks per axis: the shape of the scale tensor.
    pub counts: Vec<usize>,
}

impl Blocks {
    /// The layout for coremltools `block_sizes` (0 = whole axis). `None` when a block size
    /// does not divide its dimension (coremltools skips such weights).
    pub fn new(shape: &[usize], block_sizes: &[usize]) -> Option<Self> {
        if block_sizes.len() != shape.len() {
            return None;
        }
        let mut block = Vec::with_capacity(shape.len());
        let mut counts = Vec::with_capacity(shape.len());
        for (&d, &b) in shape.iter().zip(block_sizes) {
            if b == 0 || d == 0 {
                block.push(d.max(1));
                counts.push(1);
            } else {
                if d % b != 0 {
                    return None;
                }
                block.push(b);
                counts.push(d / b);
            }
        }
        Some(Self {
            shape: shape.to_vec(),
            block,
            counts,
        })
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.counts.iter().product()
    }

    /// Call `f(element index, block index)` for every element whose first coordinate is in
    /// `rows` (all elements for `0..shape[0]`), in row-major order.
    pub fn visit(&self, rows: std::ops::Range<usize>, mut f: impl FnMut(usize, usize)) {
        let rank = self.shape.len();
        if rank == 0 {
            f(0, 0);
            return;
        }
        let es = strides(&self.shape);
        let bs = strides(&self.counts);
        // Recursive descent with an explicit stack of (axis, element base, block base).
        #[allow(clippy::too_many_arguments)]
        fn rec(
            b: &Blocks,
            es: &[usize],
            bs: &[usize],
            axis: usize,
            range: std::ops::Range<usize>,
            ebase: usize,
            bbase: usize,
            f: &mut impl FnMut(usize, usize),
        ) {
            let last = axis + 1 == b.shape.len();
            let blk = b.block[axis];
            if last {
                let mut c = range.start;
                while c < range.end {
                    let bi = bbase + (c / blk) * bs[axis];
                    let stop = ((c / blk + 1) * blk).min(range.end);
                    for j in c..stop {
                        f(ebase + j, bi);
                    }
                    c = stop;
                }
            } else {
                let next = 0..b.shape[axis + 1];
                for c in range {
                    rec(
                        b,
                        es,
                        bs,
                        axis + 1,
                        next.clone(),
                        ebase + c * es[axis],
                        bbase + (c / blk) * bs[axis],
                        f,
                    );
                }
            }
        }
        rec(self, &es, &bs, 0, rows, 0, 0, &mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_visit_maps_elements_to_blocks() {
        let b = Blocks::new(&[4, 6], &[1, 3]).unwrap();
        assert_eq!(b.counts, vec![4, 2]);
        let mut seen = Vec::new();
        b.visit(0..4, |e, k| seen.push((e, k)));
        assert_eq!(seen.len(), 24);
        assert_eq!(seen[0], (0, 0));
        assert_eq!(seen[3], (3, 1));
        assert_eq!(seen[6], (6, 2));
        assert_eq!(seen[23], (23, 7));
        let mut part = Vec::new();
        b.visit(2..3, |e, k| part.push((e, k)));
        assert_eq!(part.first(), Some(&(12, 4)));
        assert!(Blocks::new(&[4, 6], &[0, 4]).is_none());
        let whole = Blocks::new(&[4, 6], &[0, 0]).unwrap();
        assert_eq!(whole.num_blocks(), 1);
    }

    #[test]
    fn fp16_rounding_is_ties_to_even() {
        // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
        assert_eq!(FloatType::F16.round(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(
            FloatType::F16.round64(1.0 + 3.0 * 2f64.powi(-11)),
            1.0 + 2f32.powi(-9)
        );
    }
}
