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

use crate::tensor::{Blocks, ErrorStats, FloatType, Weight, round_f16_slice, round_ties_even};

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

    /// The byte stored for quantized value `v` (already in range): its low byte, two's
    /// complement for signed types.
    #[inline]
    pub fn byte(self, v: i32) -> u8 {
        v as u8
    }

    /// The value of a stored byte.
    #[inline]
    pub fn value(self, b: u8) -> i32 {
        if self.signed() {
            i32::from(b as i8)
        } else {
            i32::from(b)
        }
    }

    /// Encode quantized values (already in range) as the little-endian bytes of this type
    /// (4-bit ones packed LSB-first).
    pub fn encode(self, q: &[i32]) -> Vec<u8> {
        let b: Vec<u8> = q.iter().map(|&v| self.byte(v)).collect();
        self.pack(&b)
    }

    /// Pack stored bytes (see [`Self::byte`]) as the data of this type.
    pub fn pack(self, b: &[u8]) -> Vec<u8> {
        match self {
            Self::Int8 | Self::Uint8 => b.to_vec(),
            Self::Int4 | Self::Uint4 => {
                let nibbles: Vec<u8> = b.iter().map(|&v| v & 0x0f).collect();
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
    /// Quantized values, row-major, in the weight's shape, one byte each (see
    /// [`QuantDtype::byte`]).
    pub data: Vec<u8>,
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
    /// Reconstruction error against the quantized weight (what [`Self::dequantize`] gives).
    pub error: ErrorStats,
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
            let q = r.round(self.dtype.value(self.data[e]) as f32);
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
#[derive(Debug, Clone, Copy)]
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

/// Elements per inner step of the quantization loop.
const STEP: usize = 256;

/// What every run of one quantization shares.
struct Kernel {
    r: FloatType,
    dtype: QuantDtype,
    qmin: f32,
    qmax: f32,
}

impl Kernel {
    /// Quantize `vals` (one block's elements) into `out` and add the reconstruction error
    /// to `stats`. numpy's steps, in the weight's float type: `t = w / scale` (rounded),
    /// `q = round(t)` (half to even), `q += zp` (exact: both are integers and |q + zp| ≤
    /// 2048 whenever the sum can survive the clip), `clip`, NaN → 0; then the decompressor's
    /// `scale · (q − zp)` (rounded) for the error.
    fn run(&self, vals: &[f32], out: &mut [u8], p: &BlockParams, stats: &mut ErrorStats) {
        let zf = p.zp.unwrap_or(0.0);
        // The stored zero point: NaN (an all-zero block) is stored as 0.
        let zs = if zf.is_nan() { 0.0 } else { zf };
        let mut t = [0f32; STEP];
        for (v, o) in vals.chunks(STEP).zip(out.chunks_mut(STEP)) {
            let t = &mut t[..v.len()];
            for (ti, &vi) in t.iter_mut().zip(v) {
                *ti = vi / p.scale;
            }
            if self.r == FloatType::F16 {
                round_f16_slice(t);
            }
            for (ti, oi) in t.iter_mut().zip(o.iter_mut()) {
                let q = round_ties_even(*ti) + zf;
                let q = if q.is_nan() {
                    0.0
                } else {
                    q.clamp(self.qmin, self.qmax)
                };
                *oi = self.dtype.byte(q as i32);
                // Dequantized: scale · (q − zp), exact before the final rounding.
                *ti = p.scale * (q - zs);
            }
            if self.r == FloatType::F16 {
                round_f16_slice(t);
            }
            stats.add(v, t);
        }
    }
}

/// The tensor as runs of consecutive elements that share one block.
struct Runs {
    /// Elements per run.
    len: usize,
    /// Each block is exactly one run (block index = run index).
    one_per_block: bool,
    /// Element strides, block strides.
    es: Vec<usize>,
    bs: Vec<usize>,
}

impl Runs {
    fn new(b: &Blocks) -> Self {
        let rank = b.shape.len();
        let inner = |a: usize| -> usize { b.shape[a + 1..].iter().product() };
        let a = (0..rank).rev().find(|&d| b.counts[d] > 1);
        let len = match a {
            None => b.shape.iter().product(),
            Some(a) => b.block[a] * inner(a),
        };
        Self {
            len,
            one_per_block: a.is_none_or(|a| b.block[..a].iter().all(|&x| x == 1)),
            es: crate::tensor::strides(&b.shape),
            bs: crate::tensor::strides(&b.counts),
        }
    }

    /// The block of run `r`.
    fn block_of(&self, b: &Blocks, r: usize) -> usize {
        if self.one_per_block {
            return r;
        }
        let e = r * self.len;
        (0..b.shape.len())
            .map(|d| (e / self.es[d]) % b.shape[d].max(1) / b.block[d] * self.bs[d])
            .sum()
    }

    /// Element ranges for parallel work: whole runs grouped to about `CHUNK` elements, or
    /// pieces of one run when runs are longer.
    fn items(&self, total: usize) -> Vec<std::ops::Range<usize>> {
        const CHUNK: usize = 1 << 16;
        let step = if self.len >= CHUNK || self.len == 0 {
            CHUNK
        } else {
            (CHUNK / self.len) * self.len
        };
        let mut out = Vec::with_capacity(total.div_ceil(step.max(1)));
        let mut s = 0;
        while s < total {
            let mut e = (s + step).min(total);
            if self.len >= CHUNK {
                // Never cross a run boundary.
                e = e.min((s / self.len + 1) * self.len);
            }
            out.push(s..e);
            s = e;
        }
        out
    }

    /// Call `f(run, sub-range)` for each run's part inside `range`.
    fn each(
        &self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(usize, std::ops::Range<usize>),
    ) {
        let len = self.len.max(1);
        let mut s = range.start;
        while s < range.end {
            let r = s / len;
            let e = ((r + 1) * len).min(range.end);
            f(r, s..e);
            s = e;
        }
    }
}

/// Min and max of a slice (weights with NaN never get here).
fn min_max(v: &[f32]) -> (f32, f32) {
    let (mut mn, mut mx) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
    let mut c = v.chunks_exact(8);
    for x in &mut c {
        for l in 0..8 {
            mn[l] = if x[l] < mn[l] { x[l] } else { mn[l] };
            mx[l] = if x[l] > mx[l] { x[l] } else { mx[l] };
        }
    }
    let (mut a, mut b) = (f32::INFINITY, f32::NEG_INFINITY);
    for &x in c.remainder().iter().chain(&mn) {
        a = a.min(x);
    }
    for &x in c.remainder().iter().chain(&mx) {
        b = b.max(x);
    }
    (a, b)
}

/// Quantize `w` with coremltools `block_sizes` (0 = whole axis). `None` if a block size
/// does not divide its dimension (coremltools skips the weight) or the weight is empty.
///
/// One pass over contiguous memory where every block is one run of consecutive elements
/// (per-channel on the first axis, per-block along the last): min/max, parameters, quantized
/// bytes and the reconstruction error per run; otherwise a min/max pass, then the same
/// quantization pass. Large tensors are split across threads in runs of about 64 Ki
/// elements.
pub fn quantize(
    w: &Weight,
    dtype: QuantDtype,
    mode: QuantMode,
    block_sizes: &[usize],
) -> Option<Quantized> {
    let blocks = Blocks::new(&w.shape, block_sizes)?;
    let nb = blocks.num_blocks();
    let total = w.len();
    if total == 0 {
        return None;
    }
    let r = w.dtype;
    let (qmin, qmax) = dtype.range(mode);
    let kernel = Kernel {
        r,
        dtype,
        qmin: qmin as f32,
        qmax: qmax as f32,
    };
    let runs = Runs::new(&blocks);
    let items = runs.items(total);
    let parallel = total >= PARALLEL_ELEMENTS && items.len() > 1;
    let mut data = vec![0u8; total];
    let mut outs: Vec<(std::ops::Range<usize>, &mut [u8])> = Vec::with_capacity(items.len());
    let mut rest: &mut [u8] = &mut data;
    for it in &items {
        let (head, tail) = rest.split_at_mut(it.len());
        outs.push((it.clone(), head));
        rest = tail;
    }
    let (params, error) = if runs.one_per_block && runs.len < (1 << 16) {
        // Fused: each item holds whole runs = whole blocks.
        let job = |(range, out): (std::ops::Range<usize>, &mut [u8])| {
            let mut ps = Vec::new();
            let mut st = ErrorStats::default();
            let base = range.start;
            runs.each(range, |_, sub| {
                let v = &w.values[sub.clone()];
                let (mn, mx) = min_max(v);
                let p = block_params(r, mn, mx, dtype, mode);
                kernel.run(v, &mut out[sub.start - base..sub.end - base], &p, &mut st);
                ps.push(p);
            });
            (ps, st)
        };
        let parts: Vec<(Vec<BlockParams>, ErrorStats)> = if parallel {
            outs.into_par_iter().map(job).collect()
        } else {
            outs.into_iter().map(job).collect()
        };
        let mut params = Vec::with_capacity(nb);
        let mut error = ErrorStats::default();
        for (p, e) in parts {
            params.extend(p);
            error = error.merge(e);
        }
        (params, error)
    } else {
        // Pass 1: min/max per block.
        let minmax = |range: &std::ops::Range<usize>| {
            let mut mn = vec![f32::INFINITY; nb];
            let mut mx = vec![f32::NEG_INFINITY; nb];
            runs.each(range.clone(), |run, sub| {
                let b = runs.block_of(&blocks, run);
                let (a, c) = min_max(&w.values[sub]);
                mn[b] = mn[b].min(a);
                mx[b] = mx[b].max(c);
            });
            (mn, mx)
        };
        let merge = |(mut a0, mut a1): (Vec<f32>, Vec<f32>), (b0, b1): (Vec<f32>, Vec<f32>)| {
            for i in 0..nb {
                a0[i] = a0[i].min(b0[i]);
                a1[i] = a1[i].max(b1[i]);
            }
            (a0, a1)
        };
        let empty = || (vec![f32::INFINITY; nb], vec![f32::NEG_INFINITY; nb]);
        let (mn, mx) = if parallel && nb <= 4096 {
            items.par_iter().map(minmax).reduce(empty, merge)
        } else {
            items.iter().map(minmax).fold(empty(), merge)
        };
        let params: Vec<BlockParams> = mn
            .iter()
            .zip(&mx)
            .map(|(&a, &b)| block_params(r, a, b, dtype, mode))
            .collect();
        // Pass 2: quantize.
        let job = |(range, out): (std::ops::Range<usize>, &mut [u8])| {
            let mut st = ErrorStats::default();
            let base = range.start;
            runs.each(range, |run, sub| {
                let p = &params[runs.block_of(&blocks, run)];
                let v = &w.values[sub.clone()];
                kernel.run(v, &mut out[sub.start - base..sub.end - base], p, &mut st);
            });
            st
        };
        let error = if parallel {
            outs.into_par_iter()
                .map(job)
                .reduce(ErrorStats::default, ErrorStats::merge)
        } else {
            outs.into_iter()
                .map(job)
                .fold(ErrorStats::default(), ErrorStats::merge)
        };
        (params, error)
    };
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
        error,
    })
}

/// Elements above which one tensor is split across threads.
const PARALLEL_ELEMENTS: usize = 1 << 18;

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
        assert_eq!(q.dtype.value(q.data[0]), 127);
        assert_eq!(q.dtype.value(q.data[1]), -64); // -0.5/0.007874 = -63.5 → ties to even → -64
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
        assert_eq!(q.dtype.value(q.data[1]), z);
        assert_eq!(q.dtype.value(q.data[3]), 255);
    }
}
