//! Weights as the algorithms see them: float values with a shape and the storage dtype whose
//! arithmetic is reproduced, and block layouts (per-tensor, per-channel, per-block).

use anekit_mil::{DataType, Value};
use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use rayon::prelude::*;

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
    /// types or data that does not match the declared type). fp16 data is widened with
    /// the slice conversion of `half` (F16C when the CPU has it), in parallel for large
    /// tensors.
    pub fn from_value(v: &Value) -> Option<Self> {
        let t = v.tensor_type()?;
        let dtype = FloatType::from_data_type(t.dtype)?;
        let shape: Vec<usize> = t
            .fixed_shape()?
            .into_iter()
            .map(usize::try_from)
            .collect::<Result<_, _>>()
            .ok()?;
        let n = element_count(&shape)?;
        let bytes = v.bytes()?;
        if bytes.len() != n.checked_mul(dtype.size())? {
            return None;
        }
        let mut values = vec![0f32; n];
        let chunk = CONVERT_CHUNK;
        let job = |(dst, src): (&mut [f32], &[u8])| match dtype {
            FloatType::F16 => {
                let mut bits = [0u16; CONVERT_CHUNK];
                let bits = &mut bits[..dst.len()];
                for (b, c) in bits.iter_mut().zip(src.chunks_exact(2)) {
                    *b = u16::from_le_bytes([c[0], c[1]]);
                }
                let h: &[f16] = bits.reinterpret_cast();
                h.convert_to_f32_slice(dst);
            }
            FloatType::F32 => {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        };
        let src: &[u8] = bytes;
        if n >= PARALLEL_CONVERT {
            values
                .par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk * dtype.size()))
                .for_each(job);
        } else {
            values
                .chunks_mut(chunk)
                .zip(src.chunks(chunk * dtype.size()))
                .for_each(job);
        }
        Some(Self {
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

/// Elements converted per call of the slice conversions.
const CONVERT_CHUNK: usize = 1024;

/// Elements above which a conversion is split across threads.
const PARALLEL_CONVERT: usize = 1 << 18;

/// Round every value of `buf` to fp16 precision in place (round half to even, overflow to
/// ±inf, subnormals as IEEE), through `half`'s slice conversions: F16C, 8 lanes at a time,
/// when the CPU has it (detected at run time), else its exact software path.
pub fn round_f16_slice(buf: &mut [f32]) {
    let mut h = [f16::ZERO; CONVERT_CHUNK];
    for c in buf.chunks_mut(CONVERT_CHUNK) {
        let h = &mut h[..c.len()];
        h.convert_from_f32_slice(c);
        h.convert_to_f32_slice(c);
    }
}

/// Round half to even to an integer without a libm call (`f32::round_ties_even` is a call
/// to `rintf` on x86-64 targets without SSE4.1): adding and subtracting 2²³ leaves the
/// integer nearest to |x| (ties to even) for |x| < 2²³; larger values are integers already.
/// NaN stays NaN; the sign is kept (−0.4 → −0).
#[inline(always)]
pub fn round_ties_even(x: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    let a = x.abs();
    if a < TWO_23 {
        ((a + TWO_23) - TWO_23).copysign(x)
    } else {
        x
    }
}

/// Reconstruction error of a weight: Σw², Σ(w − ŵ)², max |w − ŵ|.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorStats {
    /// Sum of squared original values.
    pub sum_sq: f64,
    /// Sum of squared errors.
    pub sse: f64,
    /// Largest absolute error.
    pub max_abs: f64,
}

impl ErrorStats {
    /// Add the errors of `recon` against `orig` (same length).
    pub fn add(&mut self, orig: &[f32], recon: &[f32]) {
        // Four partial sums so that the loop vectorizes.
        let (mut s, mut e, mut m) = ([0f64; 4], [0f64; 4], [0f64; 4]);
        let mut oc = orig.chunks_exact(4);
        let mut rc = recon.chunks_exact(4);
        for (o, r) in (&mut oc).zip(&mut rc) {
            for l in 0..4 {
                let (a, b) = (f64::from(o[l]), f64::from(r[l]));
                let d = a - b;
                s[l] += a * a;
                e[l] += d * d;
                m[l] = if d.abs() > m[l] { d.abs() } else { m[l] };
            }
        }
        for (&o, &r) in oc.remainder().iter().zip(rc.remainder()) {
            let (a, b) = (f64::from(o), f64::from(r));
            s[0] += a * a;
            e[0] += (a - b) * (a - b);
            m[0] = m[0].max((a - b).abs());
        }
        self.sum_sq += s.iter().sum::<f64>();
        self.sse += e.iter().sum::<f64>();
        self.max_abs = m.iter().fold(self.max_abs, |a, &b| a.max(b));
    }

    /// Combine two partial results.
    pub fn merge(mut self, o: Self) -> Self {
        self.sum_sq += o.sum_sq;
        self.sse += o.sse;
        self.max_abs = self.max_abs.max(o.max_abs);
        self
    }

    /// Signal-to-noise ratio in dB (`None` when the reconstruction is exact).
    pub fn snr_db(&self) -> Option<f64> {
        (self.sse > 0.0).then(|| 10.0 * (self.sum_sq / self.sse).log10())
    }
}

/// Product of dimensions, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    anekit_mil::types::element_count(shape)
}

/// Row-major strides ([`anekit_mil::types::row_major_strides`]).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    anekit_mil::types::row_major_strides(shape)
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
    fn fast_rounding_matches_std() {
        let mut v: Vec<f32> = vec![
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            0.49999997,
            -0.49999997,
            3.0,
            1e-30,
            -1e-30,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            1e10,
            -1e10,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            126.5,
            127.5,
            -127.5,
        ];
        let mut x = 0x1234_5678u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(f32::from_bits(x));
        }
        for &a in &v {
            let (got, want) = (round_ties_even(a), a.round_ties_even());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{a}: {got} vs {want}"
            );
        }
        let mut r = v.clone();
        round_f16_slice(&mut r);
        for (&a, &b) in v.iter().zip(&r) {
            let want = f16::from_f32(a).to_f32();
            assert!(b.to_bits() == want.to_bits() || (b.is_nan() && want.is_nan()));
        }
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
