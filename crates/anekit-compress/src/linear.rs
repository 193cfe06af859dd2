//! Linear (affine) quantization with coremltools' exact arithmetic.
//!
//! `coremltools/optimize/_utils.py` (`compute_qparams_by_dtype`, `quantize_weight_by_dtype`,
//! `get_quant_range`), reproduced operation by operation in the weight's own float type
//! (numpy keeps float16 arrays in float16, rounding every step):
//!
//! - range: unsigned `[0, 2ⁿ−1]`, signed `[−2ⁿ⁻¹, 2ⁿ⁻¹−1]`; `linear_symmetric` narrows it
//!   (unsigned max −1, signed min +1: int8 → [−127, 127]);
//! - per block: symmetric uses `[−m, m]` with `m = max(|min|, |max|)`; `linear` uses
//!   `[min(0, min), max(0, max)]`;
//! - `scale = (hi − lo) / (qmax − qmin)`, `q = round(w / scale)` with round-half-to-even;
//! - zero point: none for symmetric signed; `qmax // 2` for symmetric unsigned;
//!   `round((qmin·hi − qmax·lo) / (hi − lo))` clipped for `linear`;
//! - `q = clip(q + zp, qmin, qmax)`; NaN (an all-zero block: 0/0) becomes 0, as numpy's
//!   float → int cast gives on x86; the scale is stored in the weight's dtype.

use rayon::prelude::*;

use crate::tensor::{Blocks, FloatType, Weight};

/// Element type of quantized data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantDtype {
    /// Signed 8-bit.
    Int8,
    /// Unsigned 8-bit.
    Uint8,
    /// Signed 4-bit (iOS18).
    Int4,
    /// Unsigned 4-bit (iOS18).
    Uint4,
}

impl QuantDtype {
    /// Bits per element.
    pub fn bits(self) -> u32 {
        match self {
            Self::Int8 | Self::Uint8 => 8,
            Self::Int4 | Self::Uint4 => 4,
        }
    }

    /// Whether values are signed.
    pub fn signed(self) -> bool {
        matches!(self, Self::Int8 | Self::Int4)
    }

    /// The MIL data type.
    pub fn data_type(self) -> anekit_mil::DataType {
        use anekit_mil::DataType as D;
        match self {
            Self::Int8 => D::Int8,
            Self::Uint8 => D::Uint8,
            Self::Int4 => D::Int4,
            Self::Uint4 => D::Uint4,
        }
    }

    /// The name (`int8`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::Uint8 => "uint8",
            Self::Int4 => "int4",
            Self::Uint4 => "uint4",
        }
    }

    /// Parse `int8`, `uint8`, `int4`, `uint4`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Int8, Self::Uint8, Self::Int4, Self::Uint4]
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
    }

    /// `(qmin, qmax)` for `mode` (coremltools `get_quant_range`).
    pub fn range(self, mode: QuantMode) -> (i32, i32) {
        let max_q = 1i32 << self.bits();
        if self.signed() {
            let lo = -max_q / 2 + i32::from(mode == QuantMode::LinearSymmetric);
            (lo, max_q / 2 - 1)
        } else {
            (0, max_q - 1 - i32::from(mode == QuantMode::LinearSymmetric))
        }
    }

    /// Encode quantized values (already in range) as the little-endian bytes of this type
    /// (4-bit ones packed LSB-first).
    pub fn encode(self, q: &[i32]) -> Vec<u8> {
        match self {
            Self::Int8 | Self::Uint8 => q.iter().map(|&v| v as u8).collect(),
            Self::Int4 | Self::Uint4 => {
                let nibbles: Vec<u8> = q.iter().map(|&v| (v as u8) & 0x0f).collect();
                anekit_format::subbyte::pack(&nibbles, 4)
            }
        }
    }
}

/// Quantization mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantMode {
    /// Range `[min(0, min), max(0, max)]` with a zero point.
    Linear,
    /// Range `[−m, m]`; zero point only for unsigned types.
    LinearSymmetric,
}

/// The result of quantizing one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// The element type of `data`.
    pub dtype: QuantDtype,
    /// Quantized values, row-major, in the weight's shape.
    pub data: Vec<i32>,
    /// Shape of the data (the weight's shape).
    pub shape: Vec<usize>,
    /// One scale per block (values representable in `scale_dtype`).
    pub scale: Vec<f32>,
    /// Shape of `scale` and `zero_point`: number of blocks per axis.
    pub scale_shape: Vec<usize>,
    /// The float type of the scale (the weight's).
    pub scale_dtype: FloatType,
    /// Zero points per block (absent for symmetric signed quantization).
    pub zero_point: Option<Vec<i32>>,
}

impl Quantized {
    /// The dequantized values, as `constexpr_blockwise_shift_scale` computes them (in the
    /// scale's dtype: `scale * (data − offset)` with every step rounded).
    pub fn dequantize(&self) -> Vec<f32> {
        let Some(blocks) =
            Blocks::new(&self.shape, &block_sizes_of(&self.shape, &self.scale_shape))
        else {
            return Vec::new();
        };
        let r = self.scale_dtype;
        let mut out = vec![0f32; self.data.len()];
        blocks.visit(0..self.shape.first().copied().unwrap_or(1), |e, b| {
            let q = r.round(self.data[e] as f32);
            let t = match &self.zero_point {
                Some(z) => r.round(q - z[b] as f32),
                None => q,
            };
            out[e] = r.round(self.scale[b] * t);
        });
        out
    }

    /// Size in bytes of data, scale and zero point as stored.
    pub fn nbytes(&self) -> usize {
        let data = (self.data.len() * self.dtype.bits() as usize).div_ceil(8);
        let scale = self.scale.len() * self.scale_dtype.size();
        let zp = self
            .zero_point
            .as_ref()
            .map_or(0, |z| (z.len() * self.dtype.bits() as usize).div_ceil(8));
        data + scale + zp
    }
}

/// Block sizes (coremltools form) that give `counts` blocks per axis of `shape`.
pub(crate) fn block_sizes_of(shape: &[usize], counts: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .zip(counts)
        .map(|(&d, &c)| d.checked_div(c).unwrap_or(0))
        .collect()
}

/// Per-block parameters (scale in the weight dtype, zero point as float, NaN allowed).
struct BlockParams {
    scale: f32,
    zp: Option<f32>,
}

fn block_params(
    r: FloatType,
    vmin: f32,
    vmax: f32,
    dtype: QuantDtype,
    mode: QuantMode,
) -> BlockParams {
    let (qmin, qmax) = dtype.range(mode);
    let (lo, hi) = match mode {
        QuantMode::LinearSymmetric => {
            let m = vmin.abs().max(vmax.abs());
            (-m, m)
        }
        QuantMode::Linear => (vmin.min(0.0), vmax.max(0.0)),
    };
    let span = r.round(hi - lo);
    let scale = r.round(span / (qmax - qmin) as f32);
    let zp = match mode {
        QuantMode::LinearSymmetric if !dtype.signed() => Some((qmax / 2) as f32),
        QuantMode::LinearSymmetric => None,
        QuantMode::Linear => {
            let a = r.round(qmin as f32 * hi);
            let b = r.round(qmax as f32 * lo);
            let z = r.round(r.round(a - b) / span).round_ties_even();
            // np.clip keeps NaN.
            Some(if z.is_nan() {
                z
            } else {
                z.clamp(qmin as f32, qmax as f32)
            })
        }
    };
    BlockParams { scale, zp }
}

/// Quantize one element with the block's parameters (numpy: `round(w / scale)`, `+= zp`,
/// `clip`, cast to int with NaN → 0).
#[inline]
fn quantize_one(r: FloatType, w: f32, p: &BlockParams, qmin: f32, qmax: f32) -> i32 {
    let mut q = r.round(w / p.scale).round_ties_even();
    if let Some(z) = p.zp {
        q = r.round(q + z);
    }
    if q.is_nan() {
        0
    } else {
        q.clamp(qmin, qmax) as i32
    }
}

/// Elements above which one tensor is split across threads.
const PARALLEL_ELEMENTS: usize = 1 << 20;

/// Quantize `w` with coremltools `block_sizes` (0 = whole axis). `None` if a block size
/// does not divide its dimension (coremltools skips the weight).
pub fn quantize(
    w: &Weight,
    dtype: QuantDtype,
    mode: QuantMode,
    block_sizes: &[usize],
) -> Option<Quantized> {
    let blocks = Blocks::new(&w.shape, block_sizes)?;
    let nb = blocks.num_blocks();
    let rows = w.shape.first().copied().unwrap_or(1);
    let r = w.dtype;
    // Pass 1: min/max per block (row chunks in parallel for large tensors).
    let minmax = |range: std::ops::Range<usize>| {
        let mut mn = vec![f32::INFINITY; nb];
        let mut mx = vec![f32::NEG_INFINITY; nb];
        blocks.visit(range, |e, b| {
            let v = w.values[e];
            mn[b] = mn[b].min(v);
            mx[b] = mx[b].max(v);
        });
        (mn, mx)
    };
    let (mn, mx) = if w.len() >= PARALLEL_ELEMENTS && rows > 1 {
        row_chunks(rows)
            .into_par_iter()
            .map(minmax)
            .reduce_with(|(mut a0, mut a1), (b0, b1)| {
                for i in 0..nb {
                    a0[i] = a0[i].min(b0[i]);
                    a1[i] = a1[i].max(b1[i]);
                }
                (a0, a1)
            })
            .unwrap_or_else(|| minmax(0..rows))
    } else {
        minmax(0..rows)
    };
    let params: Vec<BlockParams> = mn
        .iter()
        .zip(&mx)
        .map(|(&a, &b)| block_params(r, a, b, dtype, mode))
        .collect();
    // Pass 2: quantize.
    let (qmin, qmax) = dtype.range(mode);
    let (qminf, qmaxf) = (qmin as f32, qmax as f32);
    let mut data = vec![0i32; w.len()];
    let row_len = w.len() / rows.max(1);
    if w.len() >= PARALLEL_ELEMENTS && rows > 1 {
        let chunks = row_chunks(rows);
        let mut slices: Vec<(std::ops::Range<usize>, &mut [i32])> = Vec::new();
        let mut rest: &mut [i32] = &mut data;
        for c in chunks {
            let (head, tail) = rest.split_at_mut(c.len() * row_len);
            slices.push((c, head));
            rest = tail;
        }
        slices.into_par_iter().for_each(|(range, out)| {
            let base = range.start * row_len;
            blocks.visit(range, |e, b| {
                out[e - base] = quantize_one(r, w.values[e], &params[b], qminf, qmaxf);
            });
        });
    } else {
        blocks.visit(0..rows, |e, b| {
            data[e] = quantize_one(r, w.values[e], &params[b], qminf, qmaxf);
        });
    }
    let scale = params.iter().map(|p| r.round(p.scale)).collect();
    let zero_point = match mode {
        QuantMode::LinearSymmetric if dtype.signed() => None,
        _ => Some(
            params
                .iter()
                .map(|p| match p.zp {
                    Some(z) if !z.is_nan() => z as i32,
                    _ => 0,
                })
                .collect(),
        ),
    };
    Some(Quantized {
        dtype,
        data,
        shape: w.shape.clone(),
        scale,
        scale_shape: blocks.counts,
        scale_dtype: r,
        zero_point,
    })
}

/// Split `0..rows` into about eight chunks per thread.
pub(crate) fn row_chunks(rows: usize) -> Vec<std::ops::Range<usize>> {
    let parts = (rayon::current_num_threads() * 8).clamp(1, rows.max(1));
    let step = rows.div_ceil(parts).max(1);
    (0..rows)
        .step_by(step)
        .map(|s| s..(s + step).min(rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w16(shape: &[usize], v: &[f32]) -> Weight {
        Weight::new(FloatType::F16, shape.to_vec(), v.to_vec()).unwrap()
    }

    #[test]
    fn ranges_match_coremltools() {
        use QuantDtype::*;
        use QuantMode::*;
        assert_eq!(Int8.range(LinearSymmetric), (-127, 127));
        assert_eq!(Int8.range(Linear), (-128, 127));
        assert_eq!(Uint8.range(LinearSymmetric), (0, 254));
        assert_eq!(Uint8.range(Linear), (0, 255));
        assert_eq!(Int4.range(LinearSymmetric), (-7, 7));
        assert_eq!(Uint4.range(Linear), (0, 15));
    }

    #[test]
    fn symmetric_int8_per_channel() {
        let w = w16(&[2, 3], &[1.0, -0.5, 0.25, 0.0, 0.0, 0.0]);
        let q = quantize(&w, QuantDtype::Int8, QuantMode::LinearSymmetric, &[1, 0]).unwrap();
        assert_eq!(q.scale_shape, vec![2, 1]);
        // scale = fp16(2/254); data = round(w/scale); the zero row → scale 0, data 0.
        assert_eq!(q.data[0], 127);
        assert_eq!(q.data[1], -64); // -0.5/0.007874 = -63.5 → ties to even → -64
        assert_eq!(&q.data[3..], &[0, 0, 0]);
        assert_eq!(q.scale[1], 0.0);
        assert!(q.zero_point.is_none());
        let d = q.dequantize();
        assert!((d[0] - 1.0).abs() < 1e-3);
        assert_eq!(&d[3..], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn linear_uint8_has_zero_point() {
        let w = w16(&[1, 4], &[-1.0, 0.0, 1.0, 3.0]);
        let q = quantize(&w, QuantDtype::Uint8, QuantMode::Linear, &[0, 0]).unwrap();
        let z = q.zero_point.as_ref().unwrap()[0];
        assert_eq!(z, 64); // round((0*3 - 255*-1)/4) = round(63.75)
        assert_eq!(q.data[1], z);
        assert_eq!(q.data[3], 255);
    }
}
