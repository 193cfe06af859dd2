//! The channel-blocked ("NCHWc") activation layout and the convolution kernels that work in
//! it.
//!
//! A 4-D activation `[N, C, H, W]` is stored as `[N, ⌈C/CB⌉, H, W, CB]`: the [`CB`] channels
//! of one block sit next to each other for every pixel, so one pixel's block is one vector
//! (one AVX-512 register, two AVX2 ones, four NEON ones). Channels past `C` in the last block
//! ("pad lanes") hold zeros. This is ONNX Runtime's layout for convolutional networks (its
//! NCHWc graph transformer, `onnxruntime/core/optimizer/nchwc_transformer.cc`, and the MLAS
//! kernels `onnxruntime/core/mlas/lib/snchwc.cpp`), and the reason it runs MobileNet and
//! ResNet fast: kept from one convolution to the next, the layout needs no im2col, no
//! packing of the activations before a product and no transposition around depthwise layers.
//!
//! - [`Dense`]: a convolution with one group, computed directly. A tile of `R` output pixels
//!   × `OB` output blocks lives in vector accumulators (on AVX-512, 7 pixels of a row × 3
//!   blocks or 12 grid positions × 2 blocks; 6 × 1 with 16 registers); for every input
//!   channel of every input block and kernel tap, the `CB` weights of each output block for
//!   that channel are one vector and each pixel's input value is broadcast against them
//!   (`acc[o][r] += x[r][i] · w[o][i]`, fused multiply-adds). The input is read as a grid:
//!   zero-padded and split into phases for strides, so every tap is a constant offset. The input may also be NCHW ([`Dense::nchw_input`]: an image's few channels).
//! - [`Depthwise`]: one input channel per group; a pixel's block of channels is multiplied
//!   lane by lane with the tap's weights. Border pixels check their taps; the others run in
//!   tiles of 8 without checks.
//! - [`to_blocked`] / [`to_nchw`]: the conversions at the edges of a blocked region.
//!
//! Fused epilogues: activations, affine maps and residual or scalar operands ([`RegOp`])
//! are applied to each output vector in registers before it is stored; any other fused op
//! ([`Epilogue`]) runs on each finished band of ≤ 64 KiB of output while it is in cache.
//! Operands are blocked tensors of the output's own shape (the plan makes sure of it,
//! [`crate::cpu::layout`]). The pad lanes of an output are zeroed after its epilogue, so they
//! stay zero whatever the epilogue computes.
//!
//! The tiles are written with `pulp`'s explicit vectors, generic over the vector width
//! (`S::F32_LANES` of 16, 8 or 4 gives 1, 2 or 4 vectors per block): left to the
//! auto-vectoriser, one tile shape compiled into gathers across pixels. Tests run the 8-,
//! 4- and 1-lane paths on any machine through [`emulate_lanes`].

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use ndarray::{ArrayD, IxDyn};

use super::conv::ConvGeom;
use super::linalg::parallel;
use super::{Args, Kernel, RunCtx};
use crate::cpu::buffers;
use crate::cpu::fuse::{self, Bin, Epilogue, EwOp, Unary};
use crate::cpu::value::Value;

/// Channels per block.
pub const CB: usize = 16;

/// One pixel's block of channels.
pub type Lanes = [f32; CB];

/// Blocks needed for `c` channels.
pub fn blocks(c: usize) -> usize {
    c.div_ceil(CB)
}

/// The blocked shape `[N, ⌈C/CB⌉, H, W, CB]` of the NCHW shape `[N, C, H, W]`.
pub fn blocked_dims([n, c, h, w]: [usize; 4]) -> Vec<usize> {
    vec![n, blocks(c), h, w, CB]
}

/// Vector lanes the kernels are made to use instead of the CPU's (0: the CPU's). Tests set
/// it ([`emulate_lanes`]) to run the 8-lane (AVX2), 4-lane (NEON) and scalar code paths and
/// the narrow tiles on any machine, through `pulp`'s portable implementations.
static EMULATED_LANES: AtomicUsize = AtomicUsize::new(0);

/// Run the kernels as on a CPU with `lanes`-wide f32 vectors (8, 4 or 1; 0 restores the
/// CPU's own), for tests of the code paths this machine would not take.
pub fn emulate_lanes(lanes: usize) {
    EMULATED_LANES.store(lanes, Ordering::Relaxed);
}

/// Run `op` with the CPU's vector instructions (or the emulated width).
#[inline(always)]
fn dispatch<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    match EMULATED_LANES.load(Ordering::Relaxed) {
        8 => op.with_simd(pulp::Scalar256b),
        4 => op.with_simd(pulp::Scalar128b),
        1 => op.with_simd(pulp::Scalar),
        _ => pulp::Arch::new().dispatch(op),
    }
}

/// Copies of at least this many floats are split over the threads.
const PAR_COPY: usize = 1 << 16;

/// `out` (blocked, `n · ⌈c/CB⌉ · plane · CB` floats) = `x` (NCHW, `[n, c, plane]`), with
/// zero pad lanes.
pub fn to_blocked(x: &[f32], n: usize, c: usize, plane: usize, out: &mut [f32]) {
    let nb = blocks(c);
    if plane == 0 || nb == 0 {
        return;
    }
    let work = |(i, o): (usize, &mut [f32])| {
        let (b, blk) = (i / nb, i % nb);
        let c0 = blk * CB;
        let lanes = (c - c0).min(CB);
        let src = &x[(b * c + c0) * plane..][..lanes * plane];
        if lanes < CB {
            o.fill(0.0);
        }
        // Pieces of pixels small enough that the CB source rows stay in L1.
        const T: usize = 64;
        let mut p0 = 0;
        while p0 < plane {
            let t = T.min(plane - p0);
            let dst = &mut o[p0 * CB..(p0 + t) * CB];
            for l in 0..lanes {
                let row = &src[l * plane + p0..][..t];
                for (px, &v) in dst.chunks_exact_mut(CB).zip(row) {
                    px[l] = v;
                }
            }
            p0 += t;
        }
    };
    let out = &mut out[..n * nb * plane * CB];
    if split_copy(out.len()) {
        out.par_chunks_mut(plane * CB).enumerate().for_each(work);
    } else {
        out.chunks_mut(plane * CB).enumerate().for_each(work);
    }
}

/// `out` (NCHW, `[n, c, plane]`) = `x` (blocked), dropping the pad lanes.
pub fn to_nchw(x: &[f32], n: usize, c: usize, plane: usize, out: &mut [f32]) {
    let nb = blocks(c);
    if plane == 0 || c == 0 {
        return;
    }
    let work = |(i, o): (usize, &mut [f32])| {
        let (b, blk) = (i / nb, i % nb);
        let src = &x[(b * nb + blk) * plane * CB..][..plane * CB];
        const T: usize = 64;
        let mut p0 = 0;
        while p0 < plane {
            let t = T.min(plane - p0);
            let s = &src[p0 * CB..(p0 + t) * CB];
            for (l, row) in o.chunks_mut(plane).enumerate() {
                for (d, px) in row[p0..p0 + t].iter_mut().zip(s.chunks_exact(CB)) {
                    *d = px[l];
                }
            }
            p0 += t;
        }
    };
    // One task per (batch, block): the block's up to CB channel planes of the output.
    let out = &mut out[..n * c * plane];
    let par = split_copy(out.len());
    let tasks = out
        .chunks_mut(c * plane)
        .flat_map(|batch| batch.chunks_mut(CB * plane));
    if par {
        tasks
            .enumerate()
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(work);
    } else {
        tasks.enumerate().for_each(work);
    }
}

/// Whether a copy writing `len` floats is split over the threads.
fn split_copy(len: usize) -> bool {
    len >= PAR_COPY && super::threads() > 1
}

/// Weights `w` (`[C_out, C_in, taps]`) as vectors of `CB` output channels, zero past the
/// real channels: `[⌈C_out/CB⌉][⌈C_in/lanes⌉][taps][lanes]`, where `lanes` is the input's
/// channels per block: CB for a blocked input, 1 for an NCHW one ([`Dense`]), 1 with
/// `C_in` = 1 for [`Depthwise`] (`[⌈C/CB⌉][taps]`).
fn pack(w: &[f32], c_out: usize, c_in: usize, taps: usize, lanes: usize) -> Vec<Lanes> {
    let cbo = blocks(c_out);
    let cbi = c_in.div_ceil(lanes);
    let mut p = vec![[0.0f32; CB]; cbo * cbi * taps * lanes];
    for oc in 0..c_out {
        for ic in 0..c_in {
            for t in 0..taps {
                let v = w[(oc * c_in + ic) * taps + t];
                p[(((oc / CB) * cbi + ic / lanes) * taps + t) * lanes + ic % lanes][oc % CB] = v;
            }
        }
    }
    p
}

fn pack_bias(bias: Option<&[f32]>, c_out: usize) -> Vec<Lanes> {
    let mut b = vec![[0.0f32; CB]; blocks(c_out)];
    if let Some(bias) = bias {
        for (oc, &v) in bias.iter().enumerate().take(c_out) {
            b[oc / CB][oc % CB] = v;
        }
    }
    b
}

/// Output floats of one band of rows (all its blocks) at most: 64 KiB, so that the fused
/// epilogue runs on output still in L2.
const BAND_FLOATS: usize = 16 * 1024;

/// Bands of output rows so that there are about 4 tasks per thread.
fn bands(planes: usize, rows: usize, par: bool) -> usize {
    let threads = if par { super::threads() } else { 1 };
    if planes >= 4 * threads {
        1
    } else {
        (4 * threads).div_ceil(planes.max(1)).min(rows).max(1)
    }
}

/// One task of [`for_bands`]: batch `b`, output blocks `blk..blk + pieces.len()`, output rows
/// `y0..y1`, and each block's piece of output for those rows (`(y1 − y0) · ow · CB` floats).
struct Band<'a> {
    b: usize,
    blk: usize,
    y0: usize,
    y1: usize,
    pieces: Vec<&'a mut [f32]>,
}

/// Run `f` on every band of output rows of every batch and group of up to `group` output
/// blocks, then each piece's epilogue and the zeroing of its pad lanes.
#[allow(clippy::too_many_arguments)]
fn for_bands(
    out: &mut [f32],
    n: usize,
    c_out: usize,
    oh: usize,
    ow: usize,
    group: usize,
    epi: &Epilogue<'_>,
    par: bool,
    f: &(dyn Fn(&mut Band<'_>) + Sync),
) {
    let cbo = blocks(c_out);
    let plane = oh * ow * CB;
    if plane == 0 || cbo == 0 {
        return;
    }
    let groups = cbo.div_ceil(group);
    // Bands small enough for the epilogue to find them in cache, and enough of them for the
    // threads.
    let cache_rows = (BAND_FLOATS / (ow * CB * group)).max(1);
    let band_rows = oh.div_ceil(bands(n * groups, oh, par)).min(cache_rows);
    let pad_lanes = cbo * CB - c_out;
    let mut tasks: Vec<Band<'_>> = Vec::new();
    for (b, batch) in out[..n * cbo * plane].chunks_mut(cbo * plane).enumerate() {
        for (gi, planes) in batch.chunks_mut(group * plane).enumerate() {
            let first = tasks.len();
            for y0 in (0..oh).step_by(band_rows) {
                tasks.push(Band {
                    b,
                    blk: gi * group,
                    y0,
                    y1: (y0 + band_rows).min(oh),
                    pieces: Vec::with_capacity(group),
                });
            }
            for p in planes.chunks_mut(plane) {
                for (k, piece) in p.chunks_mut(band_rows * ow * CB).enumerate() {
                    tasks[first + k].pieces.push(piece);
                }
            }
        }
    }
    let run = |mut t: Band<'_>| {
        f(&mut t);
        for (k, piece) in t.pieces.iter_mut().enumerate() {
            let blk = t.blk + k;
            epi.apply(piece, ((t.b * cbo + blk) * oh + t.y0) * ow * CB);
            if pad_lanes > 0 && blk + 1 == cbo {
                for px in piece.chunks_exact_mut(CB) {
                    px[CB - pad_lanes..].fill(0.0);
                }
            }
        }
    };
    if par && tasks.len() > 1 {
        tasks.into_par_iter().for_each(run);
    } else {
        tasks.into_iter().for_each(run);
    }
}

/// A convolution with one group writing blocked activations, weights packed at load. Its
/// input is blocked too ([`Dense::new`]), or NCHW for the few channels of an image
/// ([`Dense::nchw_input`]: each channel plane is a "block" of one lane, so the same tiles
/// broadcast from it and no conversion runs before the network's first convolution).
#[derive(Debug, Clone)]
pub struct Dense {
    w: Vec<Lanes>,
    bias: Vec<Lanes>,
    c_in: usize,
    c_out: usize,
    taps: usize,
    /// Input channels per input block: CB, or 1 (NCHW).
    lanes: usize,
}

/// Pixels of slack after each grid plane, so that a tile never reads past it.
const SLACK: usize = 16;

/// How the input is laid out for the tiles of [`Dense::forward`]: output pixel `(oy, ox)`
/// is grid position `q = oy·gw + ox`, and kernel tap `t` of it reads input pixel `q` shifted
/// by a constant (in floats: `q·lanes + taps[t]`) of the block's grid planes, a pixel being
/// `lanes` floats (CB, or 1 for an NCHW input). For a stride-1 convolution the grid is the
/// zero-padded input (columns `ox ≥ ow` are computed and dropped, unless tiles follow rows);
/// for stride `s` the padded input is split into its `s × s` phases (the pixels
/// `(y·s + a, x·s + b)`), each its own grid plane, so every tap is again a constant offset.
struct Grid {
    gh: usize,
    gw: usize,
    lanes: usize,
    /// The phases `(a, b)` the taps read, in plane order.
    phases: Vec<(usize, usize)>,
    /// Float offset of each tap.
    taps: Vec<usize>,
    /// Floats per input block: every phase plane plus [`SLACK`] pixels.
    block: usize,
    /// The input can be read as it is (stride 1, no padding, nothing past its end).
    direct: bool,
}

impl Grid {
    fn of(g: &ConvGeom, tile: usize, lanes: usize) -> Self {
        let (h, w) = (g.inp[1], g.inp[2]);
        let (oh, ow) = (g.out[1], g.out[2]);
        let (kh, kw) = (g.k[1], g.k[2]);
        let (sy, sx) = (g.s[1], g.s[2]);
        let (dy, dx) = (g.d[1], g.d[2]);
        // Row / column reach of the taps within a phase.
        let gh = oh + (kh - 1) * dy / sy;
        let gw = ow + (kw - 1) * dx / sx;
        let mut phases: Vec<(usize, usize)> = Vec::new();
        let mut taps = Vec::with_capacity(kh * kw);
        for ky in 0..kh {
            for kx in 0..kw {
                let ph = ((ky * dy) % sy, (kx * dx) % sx);
                let pi = match phases.iter().position(|&p| p == ph) {
                    Some(i) => i,
                    None => {
                        phases.push(ph);
                        phases.len() - 1
                    }
                };
                let within = (ky * dy / sy) * gw + kx * dx / sx;
                taps.push((pi * gh * gw + within) * lanes);
            }
        }
        let direct = sy == 1
            && sx == 1
            && g.pad[1] == 0
            && g.pad[2] == 0
            && gw == w
            && gh <= h
            && h * w >= tile;
        let block = if direct {
            h * w * lanes
        } else {
            (phases.len() * gh * gw + SLACK) * lanes
        };
        Grid {
            gh,
            gw,
            lanes,
            phases,
            taps,
            block,
            direct,
        }
    }

    /// Write the grid planes of `planes` input planes (`h × w` pixels) into `out`.
    fn fill(&self, x: &[f32], planes: usize, g: &ConvGeom, out: &mut [f32]) {
        let (h, w) = (g.inp[1], g.inp[2]);
        let (sy, sx) = (g.s[1], g.s[2]);
        let (pt, pl) = (g.pad[1], g.pad[2]);
        let (gh, gw, l) = (self.gh, self.gw, self.lanes);
        let work = |(i, o): (usize, &mut [f32])| {
            let src = &x[i * h * w * l..][..h * w * l];
            let (grids, slack) = o.split_at_mut(self.phases.len() * gh * gw * l);
            slack.fill(0.0);
            for (&(a, b), plane) in self.phases.iter().zip(grids.chunks_exact_mut(gh * gw * l)) {
                for (qy, row) in plane.chunks_exact_mut(gw * l).enumerate() {
                    let Some(y) = (qy * sy + a).checked_sub(pt).filter(|&y| y < h) else {
                        row.fill(0.0);
                        continue;
                    };
                    let srow = &src[y * w * l..][..w * l];
                    // Columns qx with 0 ≤ qx·sx + b − pl < w: from lo to hi.
                    let lo = pl.saturating_sub(b).div_ceil(sx).min(gw);
                    let hi = (w + pl).saturating_sub(b).div_ceil(sx).min(gw).max(lo);
                    row[..lo * l].fill(0.0);
                    row[hi * l..].fill(0.0);
                    let x0 = lo * sx + b - pl;
                    let dst = &mut row[lo * l..hi * l];
                    if sx == 1 {
                        dst.copy_from_slice(&srow[x0 * l..(x0 + hi - lo) * l]);
                    } else if l == 1 {
                        for (d, v) in dst.iter_mut().zip(srow[x0..].iter().step_by(sx)) {
                            *d = *v;
                        }
                    } else {
                        for (d, v) in dst
                            .chunks_exact_mut(l)
                            .zip(srow[x0 * l..].chunks(l).step_by(sx))
                        {
                            d.copy_from_slice(v);
                        }
                    }
                }
            }
        };
        let out = &mut out[..planes * self.block];
        if split_copy(out.len()) {
            out.par_chunks_mut(self.block).enumerate().for_each(work);
        } else {
            out.chunks_mut(self.block).enumerate().for_each(work);
        }
    }
}

/// How [`Dense`] tiles its output on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tiling {
    /// AVX-512 (32 registers of a whole block), output rows a multiple of 7 wide (every
    /// plane of 224-pixel networks): tiles of 7 pixels of one row × 3 blocks, 21
    /// accumulators, no grid column and no pixel computed twice.
    Rows7,
    /// AVX-512: tiles of 12 grid positions × 2 blocks, 24 accumulators.
    Wide,
    /// 16 registers (AVX2; NEON's 32 hold a quarter block each): 6 positions × 1 block.
    Narrow,
}

impl Tiling {
    fn of(ow: usize) -> Self {
        if EMULATED_LANES.load(Ordering::Relaxed) != 0 {
            return Tiling::Narrow;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return if ow.is_multiple_of(7) {
                    Tiling::Rows7
                } else {
                    Tiling::Wide
                };
            }
        }
        let _ = ow;
        Tiling::Narrow
    }

    /// Grid positions per tile.
    fn pixels(self) -> usize {
        match self {
            Tiling::Rows7 => 7,
            Tiling::Wide => 12,
            Tiling::Narrow => 6,
        }
    }

    /// Output blocks per task.
    fn group(self) -> usize {
        match self {
            Tiling::Rows7 => 3,
            Tiling::Wide => 2,
            Tiling::Narrow => 2,
        }
    }
}

impl Dense {
    /// Pack `w` (`[C_out, C_in, kH, kW]`, row-major) and `bias`, for a blocked input.
    pub fn new(w: &[f32], bias: Option<&[f32]>, c_out: usize, c_in: usize, taps: usize) -> Self {
        Self::with_lanes(w, bias, c_out, c_in, taps, CB)
    }

    /// As [`Dense::new`], for an NCHW input.
    pub fn nchw_input(
        w: &[f32],
        bias: Option<&[f32]>,
        c_out: usize,
        c_in: usize,
        taps: usize,
    ) -> Self {
        Self::with_lanes(w, bias, c_out, c_in, taps, 1)
    }

    fn with_lanes(
        w: &[f32],
        bias: Option<&[f32]>,
        c_out: usize,
        c_in: usize,
        taps: usize,
        lanes: usize,
    ) -> Self {
        Self {
            w: pack(w, c_out, c_in, taps, lanes),
            bias: pack_bias(bias, c_out),
            c_in,
            c_out,
            taps,
            lanes,
        }
    }

    /// Whether the input is NCHW ([`Dense::nchw_input`]).
    pub fn reads_nchw(&self) -> bool {
        self.lanes == 1
    }

    /// `out` (blocked `[N, ⌈C_out/CB⌉, oH, oW, CB]`) = the convolution described by `g` (a
    /// 2-D convolution with one group, `g.c_in`/`g.c_out` as given to [`Dense::new`]) of `x`
    /// (blocked `[N, ⌈C_in/CB⌉, H, W, CB]`, or NCHW for [`Dense::nchw_input`]), then `epi`.
    ///
    /// `reg` are fused ops applied to each output vector in registers before it is stored
    /// ([`RegOp`]); `epi` runs after, on each band.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        g: &ConvGeom,
        reg: &[RegOp<'_>],
        epi: &Epilogue<'_>,
        out: &mut [f32],
        par: bool,
    ) {
        let (oh, ow) = (g.out[1], g.out[2]);
        let lanes = self.lanes;
        let cbi = self.c_in.div_ceil(lanes);
        let cbo = blocks(self.c_out);
        if oh == 0 || ow == 0 || g.n == 0 {
            return;
        }
        let tiling = Tiling::of(ow);
        let grid = Grid::of(g, tiling.pixels(), lanes);
        debug_assert_eq!(grid.taps.len(), self.taps);
        let mut scratch = Vec::new();
        let xg: &[f32] = if grid.direct {
            x
        } else {
            scratch = buffers::take(g.n * cbi * grid.block);
            grid.fill(x, g.n * cbi, g, &mut scratch);
            &scratch
        };
        let wlen = cbi * self.taps * lanes;
        let f = |t: &mut Band<'_>| {
            let job = DenseJob {
                lanes,
                xb: &xg[t.b * cbi * grid.block..][..cbi * grid.block],
                block: grid.block,
                taps: &grid.taps,
                w: &self.w[t.blk * wlen..],
                wlen,
                bias: &self.bias[t.blk..],
                cbi,
                ow,
                gw: grid.gw,
            };
            let (y0, y1) = (t.y0, t.y1);
            // Float offset of each piece in the whole output (and in a fused operand).
            let base = |k: usize| ((t.b * cbo + t.blk + k) * oh + y0) * ow * CB;
            let (b0, b1) = (base(0), base(1));
            let b2 = base(2);
            match (tiling, &mut t.pieces[..]) {
                (Tiling::Rows7, [p0, p1, p2]) => {
                    job.dispatch::<7, 3>(y0, y1, [p0, p1, p2], [b0, b1, b2], reg)
                }
                (Tiling::Rows7, [p0, p1]) => job.dispatch::<7, 2>(y0, y1, [p0, p1], [b0, b1], reg),
                (Tiling::Rows7, [p0]) => job.dispatch::<7, 1>(y0, y1, [p0], [b0], reg),
                (Tiling::Wide, [p0, p1]) => job.dispatch::<12, 2>(y0, y1, [p0, p1], [b0, b1], reg),
                (Tiling::Wide, [p0]) => job.dispatch::<12, 1>(y0, y1, [p0], [b0], reg),
                (_, [p0, p1]) => {
                    job.dispatch::<6, 1>(y0, y1, [p0], [b0], reg);
                    DenseJob {
                        w: &job.w[wlen..],
                        bias: &job.bias[1..],
                        ..job
                    }
                    .dispatch::<6, 1>(y0, y1, [p1], [b1], reg);
                }
                (_, [p0]) => job.dispatch::<6, 1>(y0, y1, [p0], [b0], reg),
                _ => {}
            }
        };
        for_bands(out, g.n, self.c_out, oh, ow, tiling.group(), epi, par, &f);
        if !grid.direct {
            buffers::recycle_vec(scratch);
        }
    }
}

/// One task of [`Dense::forward`]: one batch, output blocks from the first of `w`/`bias`.
#[derive(Clone, Copy)]
struct DenseJob<'a> {
    /// Input channels per input block: CB or 1.
    lanes: usize,
    /// The batch's grid planes, `[cbi][block]`.
    xb: &'a [f32],
    block: usize,
    /// Float offsets of the kernel taps in a block's grid planes.
    taps: &'a [usize],
    /// Weights from the first output block on, `wlen` floats (as [`Lanes`]) per block:
    /// `[cbi][taps][lanes]`.
    w: &'a [Lanes],
    wlen: usize,
    bias: &'a [Lanes],
    cbi: usize,
    ow: usize,
    gw: usize,
}

impl<'a> DenseJob<'a> {
    /// Output rows `y0..y1` of `OB` blocks into `pieces`, in tiles of `R` grid positions,
    /// compiled for this CPU's vector instructions.
    /// `bases`: each piece's float offset in the whole output; `reg`: ops applied to each
    /// vector before it is stored.
    fn dispatch<const R: usize, const OB: usize>(
        &self,
        y0: usize,
        y1: usize,
        pieces: [&mut [f32]; OB],
        bases: [usize; OB],
        reg: &[RegOp<'_>],
    ) {
        if self.lanes == CB {
            dispatch(Tiles::<R, OB, CB> {
                job: *self,
                y0,
                y1,
                pieces,
                bases,
                reg,
            });
        } else {
            dispatch(Tiles::<R, OB, 1> {
                job: *self,
                y0,
                y1,
                pieces,
                bases,
                reg,
            });
        }
    }
}

/// [`DenseJob::dispatch`]'s work.
struct Tiles<'a, 'p, 'r, const R: usize, const OB: usize, const LI: usize> {
    job: DenseJob<'a>,
    y0: usize,
    y1: usize,
    pieces: [&'p mut [f32]; OB],
    bases: [usize; OB],
    reg: &'r [RegOp<'r>],
}

/// Work written once for any number `V` of vectors per block.
trait PerBlockVectors {
    /// Run with `V` = `CB / S::F32_LANES`.
    fn run<S: pulp::Simd, const V: usize>(self, s: S);
}

/// `work` with `V` chosen for `S`: 1 (AVX-512), 2 (AVX2), 4 (NEON, SSE), CB (scalar).
#[inline(always)]
fn per_block<W: PerBlockVectors, S: pulp::Simd>(work: W, s: S) {
    match S::F32_LANES {
        16 => work.run::<S, 1>(s),
        8 => work.run::<S, 2>(s),
        4 => work.run::<S, 4>(s),
        _ => work.run::<S, { CB }>(s),
    }
}

impl<const R: usize, const OB: usize, const LI: usize> pulp::WithSimd
    for Tiles<'_, '_, '_, R, OB, LI>
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, s: S) {
        per_block(self, s)
    }
}

impl<const R: usize, const OB: usize, const LI: usize> PerBlockVectors
    for Tiles<'_, '_, '_, R, OB, LI>
{
    /// A tile that would run past the rows' last position is moved back to end there (its
    /// first pixels are computed twice and stored once).
    #[inline(always)]
    fn run<S: pulp::Simd, const V: usize>(mut self, s: S) {
        let job = self.job;
        let (gw, ow, y0) = (job.gw, job.ow, self.y0);
        if ow.is_multiple_of(R) {
            // Tiles within rows: exactly the output pixels.
            for oy in y0..self.y1 {
                for x0 in (0..ow).step_by(R) {
                    let acc = job.tile::<S, R, OB, V, LI>(s, oy * gw + x0);
                    for r in 0..R {
                        let at = ((oy - y0) * ow + x0 + r) * CB;
                        self.store(s, &acc, r, at);
                    }
                }
            }
            return;
        }
        let q0 = y0 * gw;
        let q1 = (self.y1 - 1) * gw + ow;
        let mut q = q0;
        while q < q1 {
            let start = if q + R > q1 { q1.saturating_sub(R) } else { q };
            let acc = job.tile::<S, R, OB, V, LI>(s, start);
            let (mut oy, mut ox) = (start / gw, start % gw);
            for r in 0..R {
                let p = start + r;
                if p >= q && p < q1 && ox < ow {
                    self.store(s, &acc, r, ((oy - y0) * ow + ox) * CB);
                }
                ox += 1;
                if ox == gw {
                    (oy, ox) = (oy + 1, 0);
                }
            }
            q = start + R;
        }
    }
}

impl<const R: usize, const OB: usize, const LI: usize> Tiles<'_, '_, '_, R, OB, LI> {
    /// Store pixel `r` of the tile `acc` at float `at` of each piece, through the register
    /// epilogue.
    #[inline(always)]
    fn store<S: pulp::Simd, const V: usize>(
        &mut self,
        s: S,
        acc: &[[[S::f32s; V]; R]; OB],
        r: usize,
        at: usize,
    ) {
        for ((piece, a), base) in self.pieces.iter_mut().zip(acc).zip(self.bases) {
            let (dst, _) = S::as_mut_simd_f32s(&mut piece[at..at + CB]);
            for (vi, (d, v)) in dst.iter_mut().zip(&a[r]).enumerate() {
                *d = if self.reg.is_empty() {
                    *v
                } else {
                    apply_reg(s, self.reg, *v, base + at + vi * S::F32_LANES)
                };
            }
        }
    }
}

impl DenseJob<'_> {
    /// The accumulators (`V` vectors per block) of `R` grid positions from `q` on, for `OB`
    /// output blocks.
    #[inline(always)]
    fn tile<S: pulp::Simd, const R: usize, const OB: usize, const V: usize, const LI: usize>(
        &self,
        s: S,
        q: usize,
    ) -> [[[S::f32s; V]; R]; OB] {
        let (bias, _) = S::as_simd_f32s(self.bias.as_flattened());
        let (w_all, _) = S::as_simd_f32s(self.w.as_flattened());
        let mut acc = [[[s.splat_f32s(0.0); V]; R]; OB];
        for (o, a) in acc.iter_mut().enumerate() {
            for a in a.iter_mut() {
                for (v, a) in a.iter_mut().enumerate() {
                    *a = bias[o * V + v];
                }
            }
        }
        let nt = self.taps.len();
        for ib in 0..self.cbi {
            let xi = &self.xb[ib * self.block..][..self.block];
            for (t, &to) in self.taps.iter().enumerate() {
                let xs = &xi[q * LI + to..][..R * LI];
                let at = (ib * nt + t) * LI;
                let mut ws: [&[S::f32s]; OB] = [&[]; OB];
                for (o, w) in ws.iter_mut().enumerate() {
                    *w = &w_all[(o * self.wlen + at) * V..][..LI * V];
                }
                for il in 0..LI {
                    let mut wv = [[s.splat_f32s(0.0); V]; OB];
                    for (wv, w) in wv.iter_mut().zip(&ws) {
                        for (v, wv) in wv.iter_mut().enumerate() {
                            *wv = w[il * V + v];
                        }
                    }
                    for r in 0..R {
                        let xv = s.splat_f32s(xs[r * LI + il]);
                        for o in 0..OB {
                            for v in 0..V {
                                acc[o][r][v] = s.mul_add_f32s(xv, wv[o][v], acc[o][r][v]);
                            }
                        }
                    }
                }
            }
        }
        acc
    }
}

/// A fused elementwise op that [`Dense`] applies to each output vector in registers, before
/// storing it: no second pass over the output (ONNX Runtime's MLAS kernels apply bias,
/// activation and the residual sum the same way).
#[derive(Debug, Clone, Copy)]
pub enum RegOp<'a> {
    /// `relu`: `max(0, v)`.
    Relu,
    /// `clip`, `relu6`: `min(max(v, lo), hi)`.
    Clamp(f32, f32),
    /// `a·v + b`.
    Affine(f32, f32),
    /// `v ∘ y` (`y ∘ v` unless `v_first`) with `y` the same element of a blocked operand of
    /// the output's shape.
    Operand {
        /// The op.
        op: Bin,
        /// The operand, whole.
        data: &'a [f32],
        /// Whether the chain value is the left operand.
        v_first: bool,
    },
    /// `v ∘ y` with a scalar `y`.
    Scalar {
        /// The op.
        op: Bin,
        /// The scalar.
        y: f32,
        /// Whether the chain value is the left operand.
        v_first: bool,
    },
}

/// The register form of a fused epilogue for an output of `len` floats, when every op has
/// one (the others: the transcendental activations, division).
pub fn reg_ops<'a>(
    ops: &[EwOp],
    get: &dyn Fn(&str) -> Option<&'a Value>,
    len: usize,
) -> Option<Vec<RegOp<'a>>> {
    ops.iter()
        .map(|op| {
            Some(match op {
                EwOp::Unary(Unary::Relu) => RegOp::Relu,
                EwOp::Unary(Unary::Relu6) => RegOp::Clamp(0.0, 6.0),
                EwOp::Unary(Unary::Clip(lo, hi)) => RegOp::Clamp(*lo, *hi),
                EwOp::Unary(Unary::Affine(a, b)) => RegOp::Affine(*a, *b),
                EwOp::Unary(_) | EwOp::Channel { .. } => return None,
                EwOp::Binary { op, param, v_first } => {
                    if *op == Bin::Div {
                        return None;
                    }
                    let Value::F32(o) = get(param)? else {
                        return None;
                    };
                    let data = o.as_slice()?;
                    match data {
                        [y] => RegOp::Scalar {
                            op: *op,
                            y: *y,
                            v_first: *v_first,
                        },
                        _ if data.len() == len => RegOp::Operand {
                            op: *op,
                            data,
                            v_first: *v_first,
                        },
                        _ => return None,
                    }
                }
            })
        })
        .collect()
}

#[inline(always)]
fn bin<S: pulp::Simd>(s: S, op: Bin, v: S::f32s, y: S::f32s, v_first: bool) -> S::f32s {
    let (a, b) = if v_first { (v, y) } else { (y, v) };
    match op {
        Bin::Add => s.add_f32s(a, b),
        Bin::Sub => s.sub_f32s(a, b),
        Bin::Mul => s.mul_f32s(a, b),
        Bin::Div => s.div_f32s(a, b),
        Bin::Max => s.max_f32s(a, b),
        Bin::Min => s.min_f32s(a, b),
    }
}

/// `ops` applied to `v`, the output vector at float offset `at`.
#[inline(always)]
fn apply_reg<S: pulp::Simd>(s: S, ops: &[RegOp<'_>], mut v: S::f32s, at: usize) -> S::f32s {
    for op in ops {
        v = match *op {
            // (the second operand wins when one is NaN: a NaN stays NaN)
            RegOp::Relu => s.max_f32s(s.splat_f32s(0.0), v),
            RegOp::Clamp(lo, hi) => s.min_f32s(s.max_f32s(v, s.splat_f32s(lo)), s.splat_f32s(hi)),
            RegOp::Affine(a, b) => s.add_f32s(s.mul_f32s(s.splat_f32s(a), v), s.splat_f32s(b)),
            RegOp::Operand { op, data, v_first } => {
                let (y, _) = S::as_simd_f32s(&data[at..at + S::F32_LANES]);
                bin(s, op, v, y[0], v_first)
            }
            RegOp::Scalar { op, y, v_first } => bin(s, op, v, s.splat_f32s(y), v_first),
        };
    }
    v
}

/// A depthwise convolution (one input channel per group, channel multiplier 1) over blocked
/// activations.
#[derive(Debug, Clone)]
pub struct Depthwise {
    w: Vec<Lanes>,
    bias: Vec<Lanes>,
    c: usize,
    taps: usize,
}

impl Depthwise {
    /// Pack `w` (`[C, 1, kH, kW]`) and `bias`.
    pub fn new(w: &[f32], bias: Option<&[f32]>, c: usize, taps: usize) -> Self {
        Self {
            w: pack(w, c, 1, taps, 1),
            bias: pack_bias(bias, c),
            c,
            taps,
        }
    }

    /// `out` (blocked) = the depthwise convolution `g` of `x` (blocked), then `reg` on each
    /// vector before it is stored ([`RegOp`]), then `epi` on each band.
    pub fn forward(
        &self,
        x: &[f32],
        g: &ConvGeom,
        reg: &[RegOp<'_>],
        epi: &Epilogue<'_>,
        out: &mut [f32],
        par: bool,
    ) {
        let geo = Geo::of(g);
        let cb = blocks(self.c);
        if geo.oh == 0 || geo.ow == 0 || g.n == 0 {
            return;
        }
        let in_plane = geo.h * geo.w * CB;
        let f = |t: &mut Band<'_>| {
            let xi = &x[(t.b * cb + t.blk) * in_plane..][..in_plane];
            let w = &self.w[t.blk * self.taps..][..self.taps];
            let bias = &self.bias[t.blk];
            let (y0, y1) = (t.y0, t.y1);
            let base = ((t.b * cb + t.blk) * geo.oh + y0) * geo.ow * CB;
            if let [piece] = &mut t.pieces[..] {
                dispatch(DwRows {
                    geo,
                    xi,
                    w,
                    bias,
                    y0,
                    y1,
                    piece,
                    base,
                    reg,
                });
            }
        };
        for_bands(out, g.n, self.c, geo.oh, geo.ow, 1, epi, par, &f);
    }
}

/// The 2-D geometry of a depthwise convolution.
#[derive(Debug, Clone, Copy)]
struct Geo {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sy: usize,
    sx: usize,
    dy: usize,
    dx: usize,
    pt: usize,
    pl: usize,
}

impl Geo {
    fn of(g: &ConvGeom) -> Self {
        Self {
            h: g.inp[1],
            w: g.inp[2],
            oh: g.out[1],
            ow: g.out[2],
            kh: g.k[1],
            kw: g.k[2],
            sy: g.s[1],
            sx: g.s[2],
            dy: g.d[1],
            dx: g.d[2],
            pt: g.pad[1],
            pl: g.pad[2],
        }
    }

    /// The output columns whose every tap column lies inside the input.
    fn interior(&self) -> (usize, usize) {
        let lo = self.pl.div_ceil(self.sx).min(self.ow);
        // ox·sx − pl + (kw − 1)·dx ≤ w − 1
        let reach = (self.kw - 1) * self.dx;
        let hi = if self.w + self.pl > reach {
            ((self.w + self.pl - reach - 1) / self.sx + 1).min(self.ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
}

/// Output rows `y0..y1` of one block plane of a [`Depthwise`] convolution (`piece`, whose
/// first float is at `base` of the whole output).
struct DwRows<'a, 'p, 'r> {
    geo: Geo,
    xi: &'a [f32],
    w: &'a [Lanes],
    bias: &'a Lanes,
    y0: usize,
    y1: usize,
    piece: &'p mut [f32],
    base: usize,
    reg: &'r [RegOp<'r>],
}

impl pulp::WithSimd for DwRows<'_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, s: S) {
        per_block(self, s)
    }
}

impl PerBlockVectors for DwRows<'_, '_, '_> {
    /// Every output pixel is the bias plus, for each kernel tap inside the input, the tap's
    /// weights times the input pixel, lane by lane. Border columns check their taps; the
    /// others run in tiles of 8 pixels.
    #[inline(always)]
    fn run<S: pulp::Simd, const V: usize>(self, s: S) {
        const R: usize = 8;
        let DwRows {
            geo,
            xi,
            w,
            bias,
            y0,
            y1,
            piece,
            base,
            reg,
        } = self;
        let (w, _) = S::as_simd_f32s(w.as_flattened());
        let (bias, _) = S::as_simd_f32s(bias);
        let mut b = [s.splat_f32s(0.0); V];
        for (b, v) in b.iter_mut().zip(bias) {
            *b = *v;
        }
        let (lo, hi) = geo.interior();
        for oy in y0..y1 {
            let row_at = (oy - y0) * geo.ow * CB;
            // Border columns (and interior ones past the last whole tile): taps checked.
            let mut tail = hi;
            while tail > lo && !(tail - lo).is_multiple_of(R) {
                tail -= 1;
            }
            for ox in (0..lo).chain(tail..geo.ow) {
                let mut acc = b;
                for ky in 0..geo.kh {
                    let Some(xr) = geo.input_row(xi, oy, ky) else {
                        continue;
                    };
                    for kx in 0..geo.kw {
                        let Some(ix) = (ox * geo.sx + kx * geo.dx)
                            .checked_sub(geo.pl)
                            .filter(|&ix| ix < geo.w)
                        else {
                            continue;
                        };
                        let t = ky * geo.kw + kx;
                        for (v, a) in acc.iter_mut().enumerate() {
                            *a = s.mul_add_f32s(load::<S>(xr, ix, v), w[t * V + v], *a);
                        }
                    }
                }
                store::<S, V>(s, piece, row_at + ox * CB, &acc, reg, base);
            }
            // Interior columns in tiles of R pixels.
            for ox in (lo..tail).step_by(R) {
                let mut acc = [b; R];
                for ky in 0..geo.kh {
                    let Some(xr) = geo.input_row(xi, oy, ky) else {
                        continue;
                    };
                    for kx in 0..geo.kw {
                        let t = ky * geo.kw + kx;
                        let ix0 = ox * geo.sx + kx * geo.dx - geo.pl;
                        for (r, acc) in acc.iter_mut().enumerate() {
                            for (v, a) in acc.iter_mut().enumerate() {
                                let x = load::<S>(xr, ix0 + r * geo.sx, v);
                                *a = s.mul_add_f32s(x, w[t * V + v], *a);
                            }
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    store::<S, V>(s, piece, row_at + (ox + r) * CB, acc, reg, base);
                }
            }
        }
    }
}

impl Geo {
    /// The row of the blocked plane `xi` that kernel row `ky` of output row `oy` reads, if
    /// inside the input.
    #[inline(always)]
    fn input_row<'x>(&self, xi: &'x [f32], oy: usize, ky: usize) -> Option<&'x [f32]> {
        let row_len = self.w * CB;
        (oy * self.sy + ky * self.dy)
            .checked_sub(self.pt)
            .filter(|&iy| iy < self.h)
            .map(|iy| &xi[iy * row_len..][..row_len])
    }
}

/// Vector `v` of pixel `ix` of a blocked row.
#[inline(always)]
fn load<S: pulp::Simd>(row: &[f32], ix: usize, v: usize) -> S::f32s {
    let (x, _) = S::as_simd_f32s(&row[ix * CB..][..CB]);
    x[v]
}

/// Store a pixel's vectors at float `at` of `piece` (float `base + at` of the whole output)
/// through the register epilogue.
#[inline(always)]
fn store<S: pulp::Simd, const V: usize>(
    s: S,
    piece: &mut [f32],
    at: usize,
    acc: &[S::f32s; V],
    reg: &[RegOp<'_>],
    base: usize,
) {
    let (dst, _) = S::as_mut_simd_f32s(&mut piece[at..at + CB]);
    for (vi, (d, a)) in dst.iter_mut().zip(acc).enumerate() {
        *d = if reg.is_empty() {
            *a
        } else {
            apply_reg(s, reg, *a, base + at + vi * S::F32_LANES)
        };
    }
}

/// The kernel of a blocked convolution step.
pub enum Kind {
    /// One group.
    Dense(Dense),
    /// One channel per group.
    Depthwise(Depthwise),
}

/// A `conv` step in the blocked layout ([`crate::cpu::layout`]): reads its `x` (and any
/// fused operand) blocked — `x` NCHW for [`Dense::nchw_input`] — and writes its output
/// blocked.
pub struct BlockedConv {
    g: ConvGeom,
    kind: Kind,
    x: Vec<usize>,
    out: Vec<usize>,
    macs: usize,
}

impl BlockedConv {
    /// The step of the 2-D convolution `g` (shapes fixed at load).
    pub fn new(g: ConvGeom, kind: Kind) -> Self {
        let x = match &kind {
            Kind::Dense(d) if d.reads_nchw() => vec![g.n, g.c_in, g.inp[1], g.inp[2]],
            _ => blocked_dims([g.n, g.c_in, g.inp[1], g.inp[2]]),
        };
        let out = blocked_dims([g.n, g.c_out, g.out[1], g.out[2]]);
        let per_out = match kind {
            Kind::Dense(_) => g.c_in * g.k[1] * g.k[2],
            Kind::Depthwise(_) => g.k[1] * g.k[2],
        };
        let macs = (g.n * g.c_out * g.out[1] * g.out[2]).saturating_mul(per_out);
        Self {
            g,
            kind,
            x,
            out,
            macs,
        }
    }

    /// The output's NCHW shape.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.g.n, self.g.c_out, self.g.out[1], self.g.out[2]]
    }
}

impl Kernel for BlockedConv {
    fn run(&self, args: &Args<'_>, ctx: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
        self.run_fused(args, ctx, &[])
    }

    fn run_fused(
        &self,
        args: &Args<'_>,
        _: &mut RunCtx<'_>,
        epilogue: &[EwOp],
    ) -> Result<Vec<Value>, String> {
        let x = args.f32("x")?;
        if x.shape() != self.x.as_slice() {
            return Err(format!(
                "blocked input has shape {:?}, the plan expects {:?}",
                x.shape(),
                self.x
            ));
        }
        let xd = x.as_slice().ok_or("blocked input is not contiguous")?;
        let len: usize = self.out.iter().product();
        let get = |p: &str| args.get(p);
        let reg = reg_ops(epilogue, &get, len);
        let epi = match reg {
            Some(_) => Epilogue::none(),
            None => fuse::prepare(epilogue, &self.out, &get)
                .ok_or("a fused operand does not have the output's blocked shape")?,
        };
        let mut out = buffers::take(len);
        let par = parallel(self.macs);
        match &self.kind {
            Kind::Dense(d) => d.forward(
                xd,
                &self.g,
                reg.as_deref().unwrap_or(&[]),
                &epi,
                &mut out,
                par,
            ),
            Kind::Depthwise(d) => d.forward(
                xd,
                &self.g,
                reg.as_deref().unwrap_or(&[]),
                &epi,
                &mut out,
                par,
            ),
        }
        let a = ArrayD::from_shape_vec(IxDyn(&self.out), out).map_err(|e| e.to_string())?;
        Ok(vec![Value::F32(a)])
    }
}

/// The kernel of a conversion step between NCHW (`nchw`) and the blocked layout.
pub fn reorder_kernel(nchw: [usize; 4], into_blocked: bool) -> Box<dyn Kernel> {
    let [n, c, h, w] = nchw;
    let blocked = blocked_dims(nchw);
    super::kernel(move |args, _| {
        let x = args.f32("x")?;
        let (from, to): (&[usize], &[usize]) = if into_blocked {
            (&nchw, &blocked)
        } else {
            (&blocked, &nchw)
        };
        if x.shape() != from {
            return Err(format!(
                "input has shape {:?}, the plan expects {from:?}",
                x.shape()
            ));
        }
        let xd = x.as_slice().ok_or("input is not contiguous")?;
        let mut out = buffers::take(to.iter().product());
        if into_blocked {
            to_blocked(xd, n, c, h * w, &mut out);
        } else {
            to_nchw(xd, n, c, h * w, &mut out);
        }
        let a = ArrayD::from_shape_vec(IxDyn(to), out).map_err(|e| e.to_string())?;
        Ok(vec![Value::F32(a)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::conv::reference::{data, naive};
    use crate::cpu::kernels::conv::{self, ConvParams, PadType};

    fn geom(
        x: [usize; 4],
        w: [usize; 4],
        s: usize,
        d: usize,
        pad: [i64; 4],
        groups: usize,
    ) -> ConvGeom {
        let p = ConvParams {
            strides: Some(vec![s as i64; 2]),
            dilations: Some(vec![d as i64; 2]),
            pad: Some(pad.to_vec()),
            pad_type: PadType::Custom,
            groups: groups as i64,
            output_shape: None,
        };
        conv::geometry(&x, &w, &p, false).unwrap()
    }

    fn blocked(x: &[f32], s: [usize; 4]) -> Vec<f32> {
        let [n, c, h, w] = s;
        let mut b = vec![f32::NAN; n * blocks(c) * h * w * CB];
        to_blocked(x, n, c, h * w, &mut b);
        b
    }

    fn unblocked(x: &[f32], n: usize, c: usize, plane: usize) -> Vec<f32> {
        let mut o = vec![f32::NAN; n * c * plane];
        to_nchw(x, n, c, plane, &mut o);
        o
    }

    #[test]
    fn conversions_round_trip_and_zero_the_pad_lanes() {
        for &(n, c, plane) in &[(1, 3, 5), (2, 16, 7), (1, 37, 70), (3, 40, 129)] {
            let x = data(n * c * plane, 7);
            let b = blocked(&x, [n, c, plane, 1]);
            for blk in 0..n * blocks(c) {
                for p in 0..plane {
                    for l in 0..CB {
                        let c0 = (blk % blocks(c)) * CB + l;
                        let v = b[(blk * plane + p) * CB + l];
                        if c0 >= c {
                            assert_eq!(v, 0.0);
                        } else {
                            let bn = blk / blocks(c);
                            assert_eq!(v, x[(bn * c + c0) * plane + p]);
                        }
                    }
                }
            }
            assert_eq!(unblocked(&b, n, c, plane), x);
        }
    }

    /// Run a blocked kernel on 1 and 3 threads and compare with the definition in f64.
    fn check(
        x_shape: [usize; 4],
        w_shape: [usize; 4],
        s: usize,
        d: usize,
        pad: [i64; 4],
        dw: bool,
    ) {
        let groups = if dw { x_shape[1] } else { 1 };
        let g = geom(x_shape, w_shape, s, d, pad, groups);
        let x = data(x_shape.iter().product(), 1);
        let w = data(w_shape.iter().product(), 2);
        let bias = data(w_shape[0], 3);
        let want = naive(&x, &w, &bias, &g);
        let xb = blocked(&x, x_shape);
        let taps = w_shape[2] * w_shape[3];
        let (oh, ow) = (g.out[1], g.out[2]);
        let cbo = blocks(g.c_out);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; g.n * cbo * oh * ow * CB];
            pool.install(|| {
                if dw {
                    Depthwise::new(&w, Some(&bias), g.c_out, taps).forward(
                        &xb,
                        &g,
                        &[],
                        &Epilogue::none(),
                        &mut out,
                        true,
                    );
                } else {
                    Dense::new(&w, Some(&bias), g.c_out, g.c_in, taps).forward(
                        &xb,
                        &g,
                        &[],
                        &Epilogue::none(),
                        &mut out,
                        true,
                    );
                }
            });
            // Pad lanes are zero.
            for (i, px) in out.chunks_exact(CB).enumerate() {
                let blk = (i / (oh * ow)) % cbo;
                for (l, v) in px.iter().enumerate() {
                    if blk * CB + l >= g.c_out {
                        assert_eq!(*v, 0.0, "pad lane");
                    }
                }
            }
            let got = unblocked(&out, g.n, g.c_out, oh * ow);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                let tol = 1e-4 * (1.0 + b.abs());
                assert!(
                    (*a as f64 - b).abs() <= tol,
                    "{x_shape:?} {w_shape:?} s{s} d{d} pad{pad:?} dw={dw} threads={threads}: \
                     element {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn dense_matches_the_definition() {
        // 1×1, odd channel counts (pad lanes on both sides), strides.
        check([1, 16, 5, 7], [16, 16, 1, 1], 1, 1, [0; 4], false);
        check([2, 37, 9, 6], [21, 37, 1, 1], 1, 1, [0; 4], false);
        check([1, 24, 11, 11], [40, 24, 1, 1], 2, 1, [0; 4], false);
        // 3×3 with padding, stride 2, dilation, asymmetric padding.
        check([1, 32, 14, 14], [48, 32, 3, 3], 1, 1, [1, 1, 1, 1], false);
        check([1, 20, 15, 13], [17, 20, 3, 3], 2, 1, [1, 1, 1, 1], false);
        check([2, 16, 10, 12], [16, 16, 3, 3], 1, 2, [2, 2, 2, 2], false);
        check([1, 18, 9, 8], [33, 18, 3, 5], 1, 1, [0, 2, 1, 0], false);
        // One-row planes (a `linear` rewritten as a 1×1 convolution over [C, 1, T]).
        check([1, 64, 1, 9], [96, 64, 1, 1], 1, 1, [0; 4], false);
        check([2, 37, 1, 5], [21, 37, 1, 1], 1, 1, [0; 4], false);
        check([1, 32, 1, 14], [48, 32, 1, 3], 1, 1, [0, 0, 1, 1], false);
        // 7×7 with every tile width's remainder.
        check([1, 16, 23, 29], [16, 16, 7, 7], 2, 1, [3, 3, 3, 3], false);
    }

    #[test]
    fn nchw_input_matches_the_definition() {
        // An image's few channels, read without conversion (stem convolutions).
        check_nchw([1, 3, 23, 29], [32, 3, 3, 3], 2, [1, 1, 1, 1]);
        check_nchw([2, 3, 20, 20], [20, 3, 7, 7], 2, [3, 3, 3, 3]);
        check_nchw([1, 1, 9, 14], [16, 1, 3, 3], 1, [1, 1, 1, 1]);
        check_nchw([1, 5, 8, 9], [40, 5, 1, 1], 1, [0, 0, 0, 0]);
    }

    fn check_nchw(x_shape: [usize; 4], w_shape: [usize; 4], s: usize, pad: [i64; 4]) {
        let g = geom(x_shape, w_shape, s, 1, pad, 1);
        let x = data(x_shape.iter().product(), 4);
        let w = data(w_shape.iter().product(), 5);
        let bias = data(w_shape[0], 6);
        let want = naive(&x, &w, &bias, &g);
        let (oh, ow) = (g.out[1], g.out[2]);
        let d = Dense::nchw_input(&w, Some(&bias), g.c_out, g.c_in, w_shape[2] * w_shape[3]);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; g.n * blocks(g.c_out) * oh * ow * CB];
            pool.install(|| d.forward(&x, &g, &[], &Epilogue::none(), &mut out, true));
            let got = unblocked(&out, g.n, g.c_out, oh * ow);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{x_shape:?} {w_shape:?} s{s}: element {i}: {a} vs {b}"
                );
            }
        }
    }

    /// The 8-lane (AVX2), 4-lane (NEON) and 1-lane paths with the narrow tiles, through
    /// `pulp`'s portable vectors.
    #[test]
    fn narrower_vectors_match_the_definition() {
        for lanes in [8, 4, 1] {
            emulate_lanes(lanes);
            check([2, 37, 9, 6], [21, 37, 1, 1], 1, 1, [0; 4], false);
            check([1, 20, 15, 14], [33, 20, 3, 3], 2, 1, [1, 1, 1, 1], false);
            check([1, 37, 13, 17], [37, 1, 3, 3], 1, 1, [1, 1, 1, 1], true);
            check([1, 24, 20, 21], [24, 1, 3, 3], 2, 1, [1, 1, 1, 1], true);
            check_nchw([1, 3, 23, 29], [32, 3, 3, 3], 2, [1, 1, 1, 1]);
        }
        emulate_lanes(0);
    }

    #[test]
    fn depthwise_matches_the_definition() {
        check([1, 16, 7, 7], [16, 1, 3, 3], 1, 1, [1, 1, 1, 1], true);
        check([2, 37, 13, 17], [37, 1, 3, 3], 1, 1, [1, 1, 1, 1], true);
        check([1, 24, 20, 21], [24, 1, 3, 3], 2, 1, [1, 1, 1, 1], true);
        check([1, 40, 12, 31], [40, 1, 5, 5], 1, 1, [2, 2, 2, 2], true);
        check([1, 16, 9, 9], [16, 1, 3, 3], 1, 2, [2, 2, 2, 2], true);
        check([1, 21, 6, 40], [21, 1, 3, 5], 2, 1, [0, 1, 2, 0], true);
        check([1, 16, 3, 3], [16, 1, 3, 3], 1, 1, [0; 4], true);
    }
}
