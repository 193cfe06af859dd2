//! Convolutions: `conv` (1-D/2-D/3-D, groups, depthwise, strides, dilations, every pad type,
//! bias) and `conv_transpose`.
//!
//! Layout is MIL's NC(D)HW, row-major. Every convolution is treated as 3-D (a 1-D one has
//! D = H = 1). Strategies:
//! - **1×1, stride 1, no padding**: the input plane already is the GEMM operand,
//!   `out[g] = W[g] · X[g]` (faer GEMM, no copy).
//! - **depthwise** (`groups == C_in`, one input channel per group): [`super::depthwise`],
//!   vectorised along blocks of channels.
//! - **small stride-1 1-D/2-D** (≤ 4M multiply-adds): [`super::conv_direct`], a direct
//!   convolution on a padded grid with register-blocked output channels.
//! - **everything else**: im2col by column blocks. The output positions are cut into blocks
//!   of [`block_cols`] columns; each block's patch matrix (C_in/groups·kernel rows) is
//!   written into a per-thread buffer small enough to stay in L2, then multiplied by the
//!   group's weight matrix straight into the output. Blocks (and batches and groups) are
//!   independent tasks, so large convolutions use every thread with sequential GEMMs and no
//!   synchronisation; small ones run on the calling thread.
//!
//! `conv_transpose` is a GEMM (`Wᵀ · X` per group) followed by col2im: each column is
//! scatter-added into the output, cropped by the padding.

use faer::{MatMut, MatRef};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::linalg::{checked_len, contiguous, matmul_views, parallel, with_scratch};
use super::simd;
use super::{Args, Kernel, OpCtx, RunCtx};
use super::{conv_direct, depthwise};
use crate::cpu::fuse::{self, Epilogue, EwOp};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["conv", "conv_transpose"];

/// How padding is decided (`pad_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadType {
    /// No padding.
    Valid,
    /// Output = ceil(input / stride); the odd extra row/column goes after (TensorFlow `SAME`).
    Same,
    /// As `Same`, with the odd extra row/column before.
    SameLower,
    /// The `pad` parameter.
    Custom,
}

impl PadType {
    /// Parse MIL's `pad_type` string.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "valid" => Ok(PadType::Valid),
            "same" => Ok(PadType::Same),
            "same_lower" => Ok(PadType::SameLower),
            "custom" => Ok(PadType::Custom),
            other => Err(format!("unknown pad_type {other:?}")),
        }
    }
}

/// Constant parameters of a convolution op (spatial lists may be absent: defaults depend on
/// the input's rank, known at run time).
#[derive(Debug, Clone)]
pub struct ConvParams {
    /// Strides per spatial dimension.
    pub strides: Option<Vec<i64>>,
    /// Dilations per spatial dimension.
    pub dilations: Option<Vec<i64>>,
    /// Explicit padding, before/after per spatial dimension.
    pub pad: Option<Vec<i64>>,
    /// The pad type.
    pub pad_type: PadType,
    /// Number of groups.
    pub groups: i64,
    /// `conv_transpose`: the requested output shape.
    pub output_shape: Option<Vec<i64>>,
}

/// The shape arithmetic of one convolution call, every convolution seen as 3-D.
#[derive(Debug, Clone)]
pub struct ConvGeom {
    /// Batch.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Groups.
    pub groups: usize,
    /// Number of spatial dimensions of the op (1..=3).
    pub spatial: usize,
    /// Input D, H, W.
    pub inp: [usize; 3],
    /// Kernel D, H, W.
    pub k: [usize; 3],
    /// Strides.
    pub s: [usize; 3],
    /// Dilations.
    pub d: [usize; 3],
    /// Padding before each spatial dimension.
    pub pad: [usize; 3],
    /// Output D, H, W.
    pub out: [usize; 3],
    /// A 2-D convolution over `[H, 1]` planes with a `(kH, 1)` kernel, computed as the 1-D
    /// convolution it is (H moved to the W position): the output keeps its `[.., H, 1]`
    /// shape.
    pub squeezed: bool,
}

impl ConvGeom {
    fn in_len(&self) -> usize {
        self.inp.iter().product()
    }
    fn out_len(&self) -> usize {
        self.out.iter().product()
    }
    fn k_len(&self) -> usize {
        self.k.iter().product()
    }
    /// The output tensor's shape.
    pub fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.n, self.c_out];
        if self.squeezed {
            s.extend_from_slice(&[self.out[2], 1]);
            return s;
        }
        s.extend_from_slice(&self.out[3 - self.spatial..]);
        s
    }

    /// Whether this is a 1-D convolution (D = H = 1 everywhere).
    fn is_1d(&self) -> bool {
        self.inp[0] == 1 && self.inp[1] == 1 && self.k[0] == 1 && self.k[1] == 1
    }
}

fn get_list(v: &Option<Vec<i64>>, n: usize, default: i64, what: &str) -> Result<Vec<i64>, String> {
    match v {
        None => Ok(vec![default; n]),
        Some(v) if v.len() == n => Ok(v.clone()),
        Some(v) => Err(format!(
            "{what} has {} values for {n} spatial dimensions",
            v.len()
        )),
    }
}

fn pos(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|v| (1..=1 << 24).contains(v))
        .ok_or_else(|| format!("{what} must be a positive integer, got {v}"))
}

fn nonneg(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= 1 << 24)
        .ok_or_else(|| format!("{what} must be a non-negative integer, got {v}"))
}

/// Lift spatial lists to three dimensions (leading 1s / 0s).
fn lift(v: &[usize], fill: usize) -> [usize; 3] {
    let mut o = [fill; 3];
    o[3 - v.len()..].copy_from_slice(v);
    o
}

/// Check shapes and derive the geometry of a `conv` (or, with `transpose`, a
/// `conv_transpose`) of input `xs` with weight `ws`.
pub fn geometry(
    xs: &[usize],
    ws: &[usize],
    p: &ConvParams,
    transpose: bool,
) -> Result<ConvGeom, String> {
    let rank = xs.len();
    if !(3..=5).contains(&rank) {
        return Err(format!(
            "x must be [N, C, *spatial] with 1 to 3 spatial dimensions, got shape {xs:?}"
        ));
    }
    if ws.len() != rank {
        return Err(format!(
            "weight has shape {ws:?}, expected rank {rank} like x {xs:?}"
        ));
    }
    let sp = rank - 2;
    let groups = pos(p.groups, "groups")?;
    let (n, c_in) = (xs[0], xs[1]);
    let strides = get_list(&p.strides, sp, 1, "strides")?
        .into_iter()
        .map(|v| pos(v, "stride"))
        .collect::<Result<Vec<_>, _>>()?;
    let dil = get_list(&p.dilations, sp, 1, "dilations")?
        .into_iter()
        .map(|v| pos(v, "dilation"))
        .collect::<Result<Vec<_>, _>>()?;
    let ksz: Vec<usize> = ws[2..].to_vec();
    if ksz.contains(&0) {
        return Err(format!("weight has an empty kernel dimension: {ws:?}"));
    }
    let inp: Vec<usize> = xs[2..].to_vec();
    let keff: Vec<usize> = ksz
        .iter()
        .zip(&dil)
        .map(|(&k, &d)| (k - 1).saturating_mul(d).saturating_add(1))
        .collect();
    if c_in % groups != 0 {
        return Err(format!(
            "{c_in} input channels are not divisible by groups = {groups}"
        ));
    }
    let c_out;
    if transpose {
        // weight: [C_in, C_out / groups, *K]
        if ws[0] != c_in {
            return Err(format!(
                "weight {ws:?} must have C_in = {c_in} as its first dimension"
            ));
        }
        c_out = ws[1]
            .checked_mul(groups)
            .ok_or("output channels overflow")?;
    } else {
        // weight: [C_out, C_in / groups, *K]
        if ws[1] != c_in / groups {
            return Err(format!(
                "weight {ws:?} must have C_in / groups = {} as its second dimension",
                c_in / groups
            ));
        }
        c_out = ws[0];
        if c_out % groups != 0 {
            return Err(format!(
                "{c_out} output channels are not divisible by groups = {groups}"
            ));
        }
    }
    let mut pad_before = vec![0usize; sp];
    let mut out = vec![0usize; sp];
    let custom = match p.pad_type {
        PadType::Custom => {
            let v = get_list(&p.pad, 2 * sp, 0, "pad")?;
            v.into_iter()
                .map(|v| nonneg(v, "pad"))
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => vec![0; 2 * sp],
    };
    for i in 0..sp {
        let (inn, ke, s) = (inp[i], keff[i], strides[i]);
        if transpose {
            let full = inn.saturating_sub(1).saturating_mul(s).saturating_add(ke);
            let (o, before) = match &p.output_shape {
                Some(os) => {
                    let want = os
                        .get(2 + i)
                        .copied()
                        .ok_or_else(|| format!("output_shape {os:?} must have rank {rank}"))?;
                    let o = pos(want, "output_shape entry")?;
                    let before = match p.pad_type {
                        PadType::Custom => custom[2 * i],
                        PadType::Valid => 0,
                        PadType::Same => full.saturating_sub(o) / 2,
                        PadType::SameLower => full.saturating_sub(o).div_ceil(2),
                    };
                    (o, before)
                }
                None => match p.pad_type {
                    PadType::Valid => (full, 0),
                    PadType::Custom => {
                        let (a, b) = (custom[2 * i], custom[2 * i + 1]);
                        let o = full.checked_sub(a + b).filter(|&o| o > 0).ok_or_else(|| {
                            format!("padding {a}+{b} leaves no output of spatial dimension {i}")
                        })?;
                        (o, a)
                    }
                    PadType::Same | PadType::SameLower => {
                        let o = inn.saturating_mul(s);
                        let total = full.saturating_sub(o);
                        let before = if p.pad_type == PadType::Same {
                            total / 2
                        } else {
                            total.div_ceil(2)
                        };
                        (o, before)
                    }
                },
            };
            out[i] = o;
            pad_before[i] = before;
        } else {
            let (before, after) = match p.pad_type {
                PadType::Valid => (0, 0),
                PadType::Custom => (custom[2 * i], custom[2 * i + 1]),
                PadType::Same | PadType::SameLower => {
                    let o = inn.div_ceil(s);
                    let total = (o.saturating_sub(1) * s + ke).saturating_sub(inn);
                    if p.pad_type == PadType::Same {
                        (total / 2, total - total / 2)
                    } else {
                        (total.div_ceil(2), total / 2)
                    }
                }
            };
            let padded = inn + before + after;
            if padded < ke {
                return Err(format!(
                    "spatial dimension {i}: the input ({inn} + padding {before}+{after}) is \
                     smaller than the dilated kernel ({ke})"
                ));
            }
            out[i] = (padded - ke) / s + 1;
            pad_before[i] = before;
        }
    }
    if let (true, Some(os)) = (transpose, &p.output_shape)
        && os.len() != rank
    {
        return Err(format!("output_shape {os:?} must have rank {rank}"));
    }
    let mut g = ConvGeom {
        n,
        c_in,
        c_out,
        groups,
        spatial: sp,
        inp: lift(&inp, 1),
        k: lift(&ksz, 1),
        s: lift(&strides, 1),
        d: lift(&dil, 1),
        pad: lift(&pad_before, 0),
        out: lift(&out, 1),
        squeezed: false,
    };
    // A (kH, 1) kernel over [H, 1] planes (how 1-D audio networks such as CREPE are often
    // written) is a 1-D convolution along H: move H to the W position, so that im2col copies
    // contiguous runs instead of one element per output row. The data layout is the same.
    if !transpose && sp == 2 && g.inp[2] == 1 && g.k[2] == 1 && g.pad[2] == 0 && g.out[2] == 1 {
        g.inp = [1, 1, g.inp[1]];
        g.k = [1, 1, g.k[1]];
        g.s = [1, 1, g.s[1]];
        g.d = [1, 1, g.d[1]];
        g.pad = [0, 0, g.pad[1]];
        g.out = [1, 1, g.out[1]];
        g.squeezed = true;
    }
    checked_len(&g.out_shape(), "output")?;
    // The patch matrix of one group for one column is C_in/groups · kernel values.
    checked_len(&[c_in / groups, g.k_len()], "kernel")?;
    Ok(g)
}

/// Columns per im2col block: about 64K floats (256 KiB) of patch matrix, fewer when that
/// would leave fewer than ~4 tasks per thread over all `planes` (batch × group) outputs, but
/// at least 64 (narrower GEMMs lose efficiency) and at most `p`.
fn block_cols(k_rows: usize, p: usize, planes: usize, threads: usize) -> usize {
    // (16K–256K floats measured within noise of each other on the 3×3 ResNet shapes.)
    let l2 = 65_536 / k_rows.max(1);
    let per_plane = (4 * threads).div_ceil(planes.max(1));
    let balanced = p.div_ceil(per_plane);
    l2.min(balanced).max(64).min(p.max(1))
}

/// The input as im2col reads it: per channel, `phases` copies of the D·H rows, copy `q`
/// holding columns `q, q + s, q + 2s, …` (s = the W stride), so that a strided tap is a
/// contiguous run; with stride 1 this is the input itself.
struct Phased<'a> {
    data: &'a [f32],
    phases: usize,
    rows: usize,
    row_len: usize,
}

impl Phased<'_> {
    fn channel_len(&self) -> usize {
        self.phases * self.rows * self.row_len
    }
}

/// Split every W row of `x` (`planes` planes of `rows` rows of `w` values) by phase `s`.
fn split_phases(x: &[f32], planes: usize, rows: usize, w: usize, s: usize) -> Vec<f32> {
    let rl = w.div_ceil(s);
    let mut out = vec![0.0f32; planes * s * rows * rl];
    for (src, dst) in x
        .chunks_exact(rows * w)
        .zip(out.chunks_exact_mut(s * rows * rl))
        .take(planes)
    {
        for r in 0..rows {
            let row = &src[r * w..(r + 1) * w];
            for q in 0..s {
                let d = &mut dst[(q * rows + r) * rl..][..rl];
                for (o, c) in d.iter_mut().zip(row[q..].chunks(s)) {
                    *o = c[0];
                }
            }
        }
    }
    out
}

/// One output row segment of an im2col block: output (z, y), first output column, length,
/// and where it starts in the block.
type Segment = (usize, usize, usize, usize, usize);

fn segments(g: &ConvGeom, p0: usize, len: usize) -> Vec<Segment> {
    let [_, oh, ow] = g.out;
    let mut v = Vec::with_capacity(len / ow.max(1) + 2);
    let (mut ox, rest) = (p0 % ow, p0 / ow);
    let (mut oy, mut oz) = (rest % oh, rest / oh);
    let mut j = 0;
    while j < len {
        let seg = (ow - ox).min(len - j);
        v.push((oz, oy, ox, seg, j));
        j += seg;
        ox = 0;
        oy += 1;
        if oy == oh {
            oy = 0;
            oz += 1;
        }
    }
    v
}

/// Write the im2col patch matrix of `c` input channels for output columns `p0..p0 + len`
/// into `buf` ([c·kD·kH·kW, len] row-major).
/// The input samples a 1×1 convolution with strides and no padding reads:
/// `[N, C_in, out D, out H, out W]`, in parallel over planes with `par`.
fn subsample(x: &[f32], g: &ConvGeom, par: bool) -> Vec<f32> {
    let [_, ih, iw] = g.inp;
    let [sd, sh, sw] = g.s;
    let [od, oh, ow] = g.out;
    let (in_plane, out_plane) = (g.in_len(), g.out_len());
    let mut out = crate::cpu::buffers::take(g.n * g.c_in * out_plane);
    let run = |(c, o): (usize, &mut [f32])| {
        let src = &x[c * in_plane..(c + 1) * in_plane];
        for oz in 0..od {
            for oy in 0..oh {
                let row = &src[(oz * sd * ih + oy * sh) * iw..];
                let dst = &mut o[(oz * oh + oy) * ow..][..ow];
                for (ox, d) in dst.iter_mut().enumerate() {
                    *d = row[ox * sw];
                }
            }
        }
    };
    if par {
        out.par_chunks_mut(out_plane).enumerate().for_each(run);
    } else {
        out.chunks_mut(out_plane).enumerate().for_each(run);
    }
    out
}

/// [`im2col`] split over the pool's threads by input channels (for a block that one GEMM
/// then runs on all threads: a serial copy there would leave them waiting).
fn im2col_par(x: &Phased<'_>, c: usize, g: &ConvGeom, p0: usize, len: usize, buf: &mut [f32]) {
    let kl = g.k_len();
    let chan = x.channel_len();
    let per = c.div_ceil(2 * super::threads()).max(1);
    if kl * len == 0 {
        return;
    }
    buf[..c * kl * len]
        .par_chunks_mut(per * kl * len)
        .enumerate()
        .for_each(|(i, b)| {
            let c0 = i * per;
            let n = per.min(c - c0);
            let xs = Phased {
                data: &x.data[c0 * chan..][..n * chan],
                ..*x
            };
            im2col(&xs, n, g, p0, len, b);
        });
}

fn im2col(x: &Phased<'_>, c: usize, g: &ConvGeom, p0: usize, len: usize, buf: &mut [f32]) {
    let [id, ih, iw] = g.inp;
    let [kd, kh, kw] = g.k;
    let [sd, sh, sw] = g.s;
    let [dd, dh, dw] = g.d;
    let [pd, ph, pw] = g.pad;
    let [_, _, ow] = g.out;
    let segs = segments(g, p0, len);
    let chan = x.channel_len();
    let mut row = 0;
    for ci in 0..c {
        let xc = &x.data[ci * chan..(ci + 1) * chan];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let dst = &mut buf[row * len..(row + 1) * len];
                    row += 1;
                    // Valid output-column range along W for this tap: iw = ow·sw − pw + e·dw.
                    let off = (e * dw) as isize - pw as isize;
                    let lo = if off >= 0 {
                        0
                    } else {
                        ((-off) as usize).div_ceil(sw)
                    };
                    let hi = if (iw as isize) > off {
                        ((iw as isize - off - 1) as usize / sw + 1).min(ow)
                    } else {
                        0
                    };
                    for &(oz, oy, ox, seg, j) in &segs {
                        let out_seg = &mut dst[j..j + seg];
                        let zi = (oz * sd + a * dd) as isize - pd as isize;
                        let yi = (oy * sh + b * dh) as isize - ph as isize;
                        if zi < 0 || zi >= id as isize || yi < 0 || yi >= ih as isize {
                            out_seg.fill(0.0);
                            continue;
                        }
                        let r = zi as usize * ih + yi as usize;
                        let (s0, s1) = (ox, ox + seg);
                        let v0 = lo.clamp(s0, s1);
                        let v1 = hi.clamp(s0, s1).max(v0);
                        out_seg[..v0 - s0].fill(0.0);
                        out_seg[v1 - s0..].fill(0.0);
                        if v1 > v0 {
                            let first = (v0 as isize * sw as isize + off) as usize;
                            let (q, j0) = (first % x.phases, first / x.phases);
                            let src = &xc[(q * x.rows + r) * x.row_len..][..x.row_len];
                            out_seg[v0 - s0..v1 - s0].copy_from_slice(&src[j0..j0 + (v1 - v0)]);
                        }
                    }
                }
            }
        }
    }
}

/// Input channels per group from which a 1-D convolution is computed as one GEMM per
/// kernel tap ([`conv1d_taps`]) instead of through im2col.
const TAPS_MIN_CHANNELS: usize = 32;

/// Whether [`conv_forward`] computes `g` tap by tap (then it wants the weight in
/// [`taps_layout`]).
pub fn uses_taps(g: &ConvGeom) -> bool {
    // Short outputs (a few positions per row) make each tap's GEMM too narrow: im2col's one
    // GEMM with K = channels × taps is faster there.
    g.is_1d() && g.k_len() > 1 && g.c_in / g.groups >= TAPS_MIN_CHANNELS && g.out[2] >= TAPS_MIN_OUT
}

/// Output positions from which [`uses_taps`] computes tap by tap.
const TAPS_MIN_OUT: usize = 32;

/// A `[C_out, C_in/groups, K]` 1-D weight as `[K, C_out, C_in/groups]`: one row-major
/// `C_out × C_in/groups` matrix per tap.
pub fn taps_layout(w: &[f32], c_out: usize, cig: usize, k: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for co in 0..c_out {
        for ci in 0..cig {
            let src = &w[(co * cig + ci) * k..][..k];
            for (j, &v) in src.iter().enumerate() {
                t[(j * c_out + co) * cig + ci] = v;
            }
        }
    }
    t
}

/// A 1-D convolution of one (batch, group) as `Σ_j W_j · X_j`: for each kernel tap `j`, the
/// `cog × cig` weight matrix of that tap times the input rows shifted by `j·dilation` (a
/// strided view of the zero-padded input, no copy per tap). Wide kernels (64–512 taps in
/// audio networks) thus never build an im2col matrix K times the size of the input.
/// `wt` is the group's weights in [`taps_layout`] (rows of all `C_out` channels per tap,
/// the group's `cog` rows from `row0`); `out` is `[cog, W_out]`, holding the bias or zeros.
#[allow(clippy::too_many_arguments)]
fn conv1d_taps(
    x: &[f32],
    wt: &[f32],
    row0: usize,
    g: &ConvGeom,
    out: &mut [f32],
    accumulate: bool,
    par: bool,
) {
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let (w_in, k, s, d, pad) = (g.inp[2], g.k[2], g.s[2], g.d[2], g.pad[2]);
    let wo = g.out[2];
    // Padded length that every tap of every output reads, split by phase (stride).
    let need = (wo - 1) * s + (k - 1) * d + 1;
    let rl = need.div_ceil(s);
    with_scratch(s * cig * rl, |buf| {
        buf.fill(0.0);
        for ci in 0..cig {
            let src = &x[ci * w_in..][..w_in];
            for (i, &v) in src.iter().enumerate() {
                let p = i + pad;
                if p < need {
                    buf[((p % s) * cig + ci) * rl + p / s] = v;
                }
            }
        }
        let mut dst = MatMut::from_row_major_slice_mut(&mut out[..cog * wo], cog, wo);
        for j in 0..k {
            let off = j * d;
            let (q, j0) = (off % s, off / s);
            let base = q * cig * rl + j0;
            let rhs = MatRef::from_row_major_slice_with_stride(
                &buf[base..base + (cig - 1) * rl + wo],
                cig,
                wo,
                rl,
            );
            let lhs = MatRef::from_row_major_slice(
                &wt[(j * g.c_out + row0) * cig..][..cog * cig],
                cog,
                cig,
            );
            matmul_views(dst.as_mut(), lhs, rhs, accumulate || j > 0, par);
        }
    });
}

/// `conv` on row-major data: `x` [N, C_in, *in], `w` [C_out, C_in/groups, *k], optional
/// bias [C_out]; returns the output data (shape [`ConvGeom::out_shape`]).
pub fn conv_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    conv_forward_fused(x, w, bias, g, None, &Epilogue::none())
}

/// [`conv_forward`] with fused elementwise ops applied to each output block right after it
/// is computed, and the weight already in the layout of the path `g` takes when that path
/// has one ([`Packing::of`]`(g)`; made here when `None`).
pub fn conv_forward_fused(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    packed: Option<&[f32]>,
    epi: &Epilogue<'_>,
) -> Vec<f32> {
    let (p, kl) = (g.out_len(), g.k_len());
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let in_plane = g.in_len();
    // A strided 1×1 convolution (ResNet's downsampling shortcuts): gather the input samples
    // it reads (a quarter of the input at stride 2), then the stride-1 product on them —
    // not a phase split of the whole input and an im2col.
    if kl == 1 && g.pad == [0, 0, 0] && g.s != [1, 1, 1] && p > 0 && Packing::of(g).is_none() {
        let sub = subsample(x, g, parallel(g.n * g.c_in * p));
        let g1 = ConvGeom {
            inp: g.out,
            s: [1, 1, 1],
            ..g.clone()
        };
        return conv_forward_fused(&sub, w, bias, &g1, None, epi);
    }
    // Every path below writes each output element (debug builds fill `take`'s buffer with
    // NaN, so the kernel tests would see one left out).
    let mut out = crate::cpu::buffers::take(g.n * g.c_out * p);
    if p == 0 || g.c_out == 0 {
        return out;
    }
    let flops = g.n * g.c_out * p * cig * kl;
    let par = parallel(flops);
    // Depthwise: one input channel per group.
    if cig == 1 && g.groups > 1 {
        depthwise::forward(x, w, bias, g, epi, &mut out, par);
        return out;
    }
    if uses_taps(g) {
        if let Some(bv) = bias {
            for (i, o) in out.chunks_mut(p).enumerate() {
                o.fill(bv[i % g.c_out]);
            }
        }
        let acc = bias.is_some();
        let made;
        let wt = match packed {
            Some(t) => t,
            None => {
                made = taps_layout(w, g.c_out, cig, kl);
                &made
            }
        };
        let planes = g.n * g.groups;
        let threads = super::threads();
        let run = |(bg, o): (usize, &mut [f32]), par: bool| {
            let (b, grp) = (bg / g.groups, bg % g.groups);
            let xs = &x[(b * g.c_in + grp * cig) * in_plane..][..cig * in_plane];
            conv1d_taps(xs, wt, grp * cog, g, o, acc, par);
            epi.apply(o, bg * cog * p);
        };
        if par && planes >= threads {
            out.par_chunks_mut(cog * p)
                .enumerate()
                .for_each(|t| run(t, false));
        } else {
            out.chunks_mut(cog * p)
                .enumerate()
                .for_each(|t| run(t, par));
        }
        return out;
    }
    if conv_direct::applies(g) {
        conv_direct::forward(x, w, packed, bias, g, epi, &mut out);
        return out;
    }
    let pointwise = kl == 1 && g.s == [1, 1, 1] && g.pad == [0, 0, 0] && g.out == g.inp;
    let k_rows = cig * kl;
    let threads = super::threads();
    let bc = block_cols(k_rows, p, g.n * g.groups, if par { threads } else { 1 });
    // Strided W: split the input by phase once, so that im2col copies contiguous runs.
    let rows = g.inp[0] * g.inp[1];
    let split;
    let phased = if g.s[2] > 1 && !pointwise {
        split = split_phases(x, g.n * g.c_in, rows, g.inp[2], g.s[2]);
        Phased {
            data: &split,
            phases: g.s[2],
            rows,
            row_len: g.inp[2].div_ceil(g.s[2]),
        }
    } else {
        Phased {
            data: x,
            phases: 1,
            rows,
            row_len: g.inp[2],
        }
    };
    let chan = phased.channel_len();
    // One task per (batch, group, column block).
    let task = |bg: usize, c0: usize, mut dst: MatMut<'_, f32>, par: bool| {
        let (b, grp) = (bg / g.groups, bg % g.groups);
        let wg =
            MatRef::from_row_major_slice(&w[grp * cog * k_rows..][..cog * k_rows], cog, k_rows);
        let len = dst.ncols();
        if pointwise {
            let xs = &x[(b * g.c_in + grp * cig) * in_plane..][..cig * in_plane];
            let rhs = MatRef::from_row_major_slice(xs, cig, p).subcols(c0, len);
            matmul_views(dst.as_mut(), wg, rhs, false, par);
        } else {
            let xs = Phased {
                data: &phased.data[(b * g.c_in + grp * cig) * chan..][..cig * chan],
                ..phased
            };
            with_scratch(k_rows * len, |buf| {
                if par {
                    im2col_par(&xs, cig, g, c0, len, buf);
                } else {
                    im2col(&xs, cig, g, c0, len, buf);
                }
                let rhs = MatRef::from_row_major_slice(buf, k_rows, len);
                matmul_views(dst.as_mut(), wg, rhs, false, par);
            });
        }
        // The bias and the fused epilogue, on this block's rows while they are in cache
        // (adding the bias here rather than filling the output with it first saves a pass
        // over the output).
        if bias.is_some() || !epi.is_empty() {
            for r in 0..cog {
                if let Some(row) = dst.as_mut().row_mut(r).try_as_row_major_mut() {
                    let row = row.as_slice_mut();
                    if let Some(bv) = bias {
                        simd::scale_shift(row, 1.0, bv[grp * cog + r]);
                    }
                    epi.apply(row, (bg * cog + r) * p + c0);
                }
            }
        }
    };
    let groups_total = g.n * g.groups;
    if par && groups_total * p.div_ceil(bc) >= 2 * threads {
        // Many independent blocks: one sequential GEMM per task.
        out.par_chunks_mut(cog * p)
            .enumerate()
            .for_each(|(bg, chunk)| {
                let m = MatMut::from_row_major_slice_mut(chunk, cog, p);
                m.par_col_chunks_mut(bc)
                    .enumerate()
                    .for_each(|(i, dst)| task(bg, i * bc, dst, false));
            });
    } else {
        // Few blocks (small outputs, e.g. late layers with 7×7 planes): whole planes, each
        // GEMM split over the threads by faer when large.
        let bc = if par { p } else { bc };
        for (bg, chunk) in out.chunks_mut(cog * p).enumerate().take(groups_total) {
            let mut m = MatMut::from_row_major_slice_mut(chunk, cog, p);
            let mut c0 = 0;
            while c0 < p {
                let len = bc.min(p - c0);
                let dst = m.as_mut().subcols_mut(c0, len);
                task(bg, c0, dst, par);
                c0 += len;
            }
        }
    }
    out
}

/// A path of [`conv_forward_fused`] that computes with the weight in a layout of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// The 1-D tap-by-tap path: [`taps_layout`].
    Taps,
    /// The direct path: [`conv_direct::pack`].
    Direct,
}

impl Packing {
    /// The packing of the path a convolution of geometry `g` takes, if it has one.
    pub fn of(g: &ConvGeom) -> Option<Packing> {
        if g.c_in / g.groups == 1 && g.groups > 1 {
            None
        } else if uses_taps(g) {
            Some(Packing::Taps)
        } else if conv_direct::applies(g) {
            Some(Packing::Direct)
        } else {
            None
        }
    }

    /// The weight `w` (`[C_out, C_in/groups, *k]`) of `g` packed for this path (a constant
    /// weight is packed once; [`conv_forward_fused`] packs it on every call otherwise).
    pub fn pack(self, w: &[f32], g: &ConvGeom) -> Vec<f32> {
        match self {
            Packing::Taps => taps_layout(w, g.c_out, g.c_in / g.groups, g.k_len()),
            Packing::Direct => conv_direct::pack(w, g),
        }
    }
}

/// `conv_transpose` on row-major data: `x` [N, C_in, *in], `w` [C_in, C_out/groups, *k],
/// optional bias [C_out].
pub fn conv_transpose_forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
) -> Vec<f32> {
    let (p_in, kl) = (g.in_len(), g.k_len());
    let p_out = g.out_len();
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let rows = cog * kl;
    let mut out = vec![0.0f32; g.n * g.c_out * p_out];
    if let Some(bv) = bias {
        for (i, o) in out.chunks_mut(p_out.max(1)).enumerate() {
            o.fill(bv[i % g.c_out.max(1)]);
        }
    }
    if p_out == 0 || p_in == 0 || rows == 0 {
        return out;
    }
    // Columns per block, so that the column buffer stays near 4M floats.
    let bc = (4_194_304 / rows).clamp(1, p_in);
    let [_, ih, iw] = g.inp;
    let [_, kh, kw] = g.k;
    let [sd, sh, sw] = g.s;
    let [dd, dh, dw] = g.d;
    let [pd, ph, pw] = g.pad;
    let [od, oh, ow] = g.out;
    let par = parallel(g.n * g.c_out * p_in * cig * kl);
    let run = |(bg, o): (usize, &mut [f32])| {
        let (b, grp) = (bg / g.groups, bg % g.groups);
        let xs = &x[(b * g.c_in + grp * cig) * p_in..][..cig * p_in];
        // W_g is [cig, cog·k] row-major; cols = W_gᵀ · X_g.
        let wg = &w[grp * cig * rows..][..cig * rows];
        let mut cols = vec![0.0f32; rows * bc];
        let mut c0 = 0;
        while c0 < p_in {
            let len = bc.min(p_in - c0);
            {
                let lhs = MatRef::from_row_major_slice(wg, cig, rows).transpose();
                let rhs = MatRef::from_row_major_slice(xs, cig, p_in).subcols(c0, len);
                let dst = MatMut::from_row_major_slice_mut(&mut cols[..rows * len], rows, len);
                matmul_views(dst, lhs, rhs, false, false);
            }
            // col2im: row (oc, a, b, e), column p = (z, y, x) of the input.
            for r in 0..rows {
                let oc = r / kl;
                let t = r % kl;
                let (a, bb, e) = (t / (kh * kw), (t / kw) % kh, t % kw);
                let oplane = &mut o[oc * p_out..(oc + 1) * p_out];
                let crow = &cols[r * len..(r + 1) * len];
                for (j, &v) in crow.iter().enumerate() {
                    let pidx = c0 + j;
                    let xx = pidx % iw;
                    let yy = (pidx / iw) % ih;
                    let zz = pidx / (iw * ih);
                    let z = (zz * sd + a * dd) as isize - pd as isize;
                    let y = (yy * sh + bb * dh) as isize - ph as isize;
                    let xo = (xx * sw + e * dw) as isize - pw as isize;
                    if z >= 0
                        && (z as usize) < od
                        && y >= 0
                        && (y as usize) < oh
                        && xo >= 0
                        && (xo as usize) < ow
                    {
                        oplane[(z as usize * oh + y as usize) * ow + xo as usize] += v;
                    }
                }
            }
            c0 += len;
        }
    };
    if par {
        out.par_chunks_mut(cog * p_out).enumerate().for_each(run);
    } else {
        out.chunks_mut(cog * p_out).enumerate().for_each(run);
    }
    out
}

fn read_params(ctx: &OpCtx<'_>, transpose: bool) -> Result<ConvParams, String> {
    let list = |name: &str| -> Result<Option<Vec<i64>>, String> {
        match ctx.constant(name) {
            Some(v) => Ok(Some(v.to_i64s().map_err(|e| format!("{name}: {e}"))?)),
            None if ctx.has(name) => Err(format!("{name} must be a constant")),
            None => Ok(None),
        }
    };
    let pad_type = match ctx.constant("pad_type") {
        Some(v) => PadType::parse(v.as_str()?)?,
        None if ctx.has("pad_type") => return Err("pad_type must be a constant".into()),
        None => PadType::Valid,
    };
    let groups = match list("groups")? {
        None => 1,
        Some(v) => match v[..] {
            [g] => g,
            _ => return Err(format!("groups must be one integer, got {v:?}")),
        },
    };
    Ok(ConvParams {
        strides: list("strides")?,
        dilations: list("dilations")?,
        pad: list("pad")?,
        pad_type,
        groups,
        output_shape: if transpose {
            list("output_shape")?
        } else {
            None
        },
    })
}

/// A `conv` / `conv_transpose` op.
struct ConvKernel {
    params: ConvParams,
    transpose: bool,
    /// The weight is a load-time constant: its packed layouts ([`Packing`], by path) are
    /// made once, on first use.
    const_weight: bool,
    packed: [std::sync::OnceLock<Vec<f32>>; 2],
}

impl Kernel for ConvKernel {
    fn run(&self, args: &Args<'_>, _: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
        self.forward(args, &[])
    }

    fn run_fused(
        &self,
        args: &Args<'_>,
        _: &mut RunCtx<'_>,
        epilogue: &[EwOp],
    ) -> Result<Vec<Value>, String> {
        self.forward(args, epilogue)
    }
}

impl ConvKernel {
    fn forward(&self, args: &Args<'_>, epilogue: &[EwOp]) -> Result<Vec<Value>, String> {
        let (params, transpose) = (&self.params, self.transpose);
        let x = args.f32("x")?;
        let w = args.f32("weight")?;
        let g = geometry(x.shape(), w.shape(), params, transpose)?;
        let bias = match args.get("bias") {
            Some(b) => {
                let b = b.f32().map_err(|e| format!("bias: {e}"))?;
                if b.len() != g.c_out {
                    return Err(format!(
                        "bias has {} values for {} output channels",
                        b.len(),
                        g.c_out
                    ));
                }
                Some(contiguous(b))
            }
            None => None,
        };
        let (xd, wd) = (contiguous(x), contiguous(w));
        let shape = g.out_shape();
        let epi = match fuse::prepare(epilogue, &shape, &|p| args.get(p)) {
            Some(e) if !transpose => Some(e),
            _ => None,
        };
        let out = if transpose {
            conv_transpose_forward(&xd, &wd, bias.as_deref(), &g)
        } else {
            // (the path, hence the layout, may change with a flexible input's shape)
            let packed = match Packing::of(&g) {
                Some(k) if self.const_weight => Some(
                    self.packed[k as usize]
                        .get_or_init(|| k.pack(&wd, &g))
                        .as_slice(),
                ),
                _ => None,
            };
            conv_forward_fused(
                &xd,
                &wd,
                bias.as_deref(),
                &g,
                packed,
                epi.as_ref().unwrap_or(&Epilogue::none()),
            )
        };
        let v = Value::F32(ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?);
        if epilogue.is_empty() || epi.is_some() {
            return Ok(vec![v]);
        }
        Ok(vec![fuse::apply_epilogue(epilogue, v, &|p| args.get(p))?])
    }
}

fn conv_kernel(ctx: &OpCtx<'_>, transpose: bool) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(ConvKernel {
        params: read_params(ctx, transpose)?,
        transpose,
        const_weight: ctx.constant("weight").is_some(),
        packed: Default::default(),
    }))
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    match ctx.op_type() {
        "conv" => Some(conv_kernel(ctx, false)),
        "conv_transpose" => Some(conv_kernel(ctx, true)),
        _ => None,
    }
}

/// The definition of a 2-D convolution in f64, and test data (for the kernels' tests).
#[cfg(test)]
pub(crate) mod reference {
    use super::ConvGeom;

    /// Deterministic pseudo-random values in [-1, 1).
    pub(crate) fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// [`super::conv_forward`] of `x`, `w`, `bias` on a pool of each of `threads`, each
    /// result checked against the definition ([`naive`]) within `tol` relative; returns the
    /// results.
    pub(crate) fn check_on_threads(
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        g: &ConvGeom,
        threads: &[usize],
        tol: f64,
    ) -> Vec<Vec<f32>> {
        let want = naive(x, w, bias, g);
        threads
            .iter()
            .map(|&t| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap();
                let got = pool.install(|| super::conv_forward(x, w, Some(bias), g));
                assert_eq!(got.len(), want.len());
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*a) - b).abs() <= tol * (1.0 + b.abs()),
                        "{g:?}, {t} threads, at {i}: {a} vs {b}"
                    );
                }
                got
            })
            .collect()
    }

    /// `conv` of a 1-D or 2-D geometry by its definition, in f64.
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn naive(x: &[f32], w: &[f32], bias: &[f32], g: &ConvGeom) -> Vec<f64> {
        let [_, ih, iw] = g.inp;
        let [_, kh, kw] = g.k;
        let [_, oh, ow] = g.out;
        let cig = g.c_in / g.groups;
        let cog = g.c_out / g.groups;
        let mut out = Vec::new();
        for b in 0..g.n {
            for co in 0..g.c_out {
                let grp = co / cog;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = f64::from(bias[co]);
                        for ci in 0..cig {
                            for a in 0..kh {
                                for e in 0..kw {
                                    let y = (oy * g.s[1] + a * g.d[1]) as isize - g.pad[1] as isize;
                                    let xx =
                                        (ox * g.s[2] + e * g.d[2]) as isize - g.pad[2] as isize;
                                    if (0..ih as isize).contains(&y)
                                        && (0..iw as isize).contains(&xx)
                                    {
                                        let xi = ((b * g.c_in + grp * cig + ci) * ih + y as usize)
                                            * iw
                                            + xx as usize;
                                        let wi = ((co * cig + ci) * kh + a) * kw + e;
                                        acc += f64::from(w[wi]) * f64::from(x[xi]);
                                    }
                                }
                            }
                        }
                        out.push(acc);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::reference::{check_on_threads, data};
    use super::*;

    /// The im2col and 1×1 paths (strided ones through their input samples) on shapes that
    /// split into column blocks, or (with more threads than blocks) run whole planes with a
    /// parallel im2col and faer's parallel GEMM: the definition's result on 1, 2, 5 and 16
    /// threads.
    #[test]
    fn im2col_paths_match_the_definition_on_any_thread_count() {
        #[allow(clippy::type_complexity)]
        let cases: &[(
            usize,
            usize,
            usize,
            usize,
            [usize; 2],
            [usize; 2],
            [i64; 2],
            [i64; 4],
        )] = &[
            // (n, c_in, c_out, groups, spatial, kernel, strides, pad)
            (1, 24, 40, 1, [30, 30], [3, 3], [2, 2], [1, 1, 1, 1]),
            (1, 3, 16, 1, [64, 64], [7, 7], [2, 2], [3, 3, 3, 3]),
            (2, 12, 18, 2, [20, 17], [3, 3], [1, 2], [1, 0, 2, 1]),
            (1, 40, 72, 1, [24, 24], [1, 1], [1, 1], [0, 0, 0, 0]),
            (1, 64, 130, 1, [14, 13], [3, 3], [2, 2], [1, 1, 1, 1]),
            (1, 96, 40, 1, [14, 14], [1, 1], [2, 2], [0, 0, 0, 0]),
            (2, 20, 33, 1, [13, 11], [1, 1], [3, 2], [0, 0, 0, 0]),
            (1, 6, 8, 2, [9, 9], [1, 1], [2, 1], [0, 0, 0, 0]),
        ];
        for &(n, c_in, c_out, groups, sp, k, st, pad) in cases {
            let xs = [n, c_in, sp[0], sp[1]];
            let ws = [c_out, c_in / groups, k[0], k[1]];
            let params = ConvParams {
                strides: Some(st.to_vec()),
                dilations: None,
                pad: Some(pad.to_vec()),
                pad_type: PadType::Custom,
                groups: groups as i64,
                output_shape: None,
            };
            let g = geometry(&xs, &ws, &params, false).unwrap();
            assert!(!uses_taps(&g) && !conv_direct::applies(&g), "{xs:?} {ws:?}");
            let x = data(xs.iter().product(), 1);
            let w = data(ws.iter().product(), 2);
            let bias = data(c_out, 3);
            check_on_threads(&x, &w, &bias, &g, &[1, 2, 5, 16], 1e-4);
        }
    }
}
