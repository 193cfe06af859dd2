//! Depthwise convolution (`groups == C_in`, one input channel per group, any channel
//! multiplier) in a channel-blocked layout.
//!
//! MobileNet-style networks spend most of their convolution time in depthwise 3×3 layers
//! whose planes get small (14×14, 7×7) while the channels grow (576, 960): a kernel that
//! vectorises along the W rows of one plane then runs mostly in scalar tails and pays its
//! per-plane setup hundreds of times. This kernel vectorises along **channels** instead, as
//! ONNX Runtime's MLAS does with its NCHWc layout (onnxruntime
//! `onnxruntime/core/mlas/lib/sconv_kernel_*.cpp`, "NCHWc" depthwise kernels): a block of
//! [`CB`] output channels is copied into a zero-padded `[D][H][W][CB]` buffer, so that every
//! kernel tap of every output pixel is one aligned run of `CB` values, valid without bounds
//! tests (no border cases, any stride or dilation); each output pixel's `CB` channels are
//! one vector accumulator (`acc += w[tap] · x[pixel + tap]` as a fused multiply-add, taps
//! in order from the bias); each finished output row is transposed back to the NCHW
//! planes and the fused epilogue ([`Epilogue`]) runs on each plane's piece while it is in
//! cache.
//!
//! Work is split into tasks of one channel block × one band of output rows (bands only for
//! 1-D/2-D convolutions, when there are fewer blocks than ~4 per thread), each with its own
//! padded buffer in the thread's scratch.

use rayon::prelude::*;

use super::conv::ConvGeom;
use super::linalg::with_scratch;
use super::simd;
use crate::cpu::fuse::Epilogue;

/// Channels per block: one AVX2 vector (two NEON vectors, half an AVX-512 one).
pub const CB: usize = 8;

type Lanes = [f32; CB];

/// One task: batch `b`, channel block `blk`, output rows `oy0..oy0 + rows` of every depth
/// slice, and the matching pieces of the block's output planes.
struct Task<'a> {
    b: usize,
    blk: usize,
    oy0: usize,
    rows: usize,
    planes: Vec<&'a mut [f32]>,
}

/// `out` (`[N, C_out, *out]`, row-major) = the depthwise convolution of `x` (`[N, C_in,
/// *in]`) with `w` (`[C_out, 1, *k]`) plus `bias`, followed by `epi`. `g` must describe a
/// convolution with one input channel per group.
pub fn forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    epi: &Epilogue<'_>,
    out: &mut [f32],
    par: bool,
) {
    let [od, oh, ow] = g.out;
    let p = od * oh * ow;
    let kl: usize = g.k.iter().product();
    let c_out = g.c_out;
    if p == 0 || c_out == 0 || g.n == 0 {
        return;
    }
    if uses_rows(g) {
        rows::forward(x, w, bias, g, epi, out, par);
        return;
    }
    if grid::applies(g) {
        grid::forward(x, w, bias, g, epi, out, par);
        return;
    }
    let nblk = c_out.div_ceil(CB);
    // Weights as [block][tap][lane], bias as [block][lane] (zero past C_out).
    let mut wp = vec![[0.0f32; CB]; nblk * kl];
    let mut bp = vec![[0.0f32; CB]; nblk];
    for oc in 0..c_out {
        let (bl, c) = (oc / CB, oc % CB);
        for (t, &v) in w[oc * kl..(oc + 1) * kl].iter().enumerate() {
            wp[bl * kl + t][c] = v;
        }
        bp[bl][c] = bias.map_or(0.0, |b| b[oc]);
    }
    // Bands of output rows: enough tasks for the threads (1-D/2-D only).
    let threads = if par { super::threads() } else { 1 };
    let nb = g.n * nblk;
    let bands = if od == 1 && nb < 4 * threads {
        (4 * threads).div_ceil(nb).min(oh)
    } else {
        1
    };
    let band_rows = oh.div_ceil(bands);
    let bands = oh.div_ceil(band_rows);
    let piece = if bands == 1 { p } else { band_rows * ow };
    let mut tasks: Vec<Task<'_>> = Vec::with_capacity(nb * bands);
    for (b, batch) in out.chunks_mut(c_out * p).enumerate().take(g.n) {
        for (blk, region) in batch.chunks_mut(CB * p).enumerate() {
            let first = tasks.len();
            for band in 0..bands {
                let oy0 = band * band_rows;
                tasks.push(Task {
                    b,
                    blk,
                    oy0,
                    rows: if bands == 1 {
                        oh
                    } else {
                        band_rows.min(oh - oy0)
                    },
                    planes: Vec::with_capacity(CB),
                });
            }
            for plane in region.chunks_mut(p) {
                for (band, pc) in plane.chunks_mut(piece).enumerate() {
                    tasks[first + band].planes.push(pc);
                }
            }
        }
    }
    let zeros = vec![0.0f32; g.inp[2]];
    let run = |t: Task<'_>| run_task(t, x, &wp, &bp, g, epi, &zeros);
    if par && tasks.len() > 1 {
        tasks.into_par_iter().for_each(run);
    } else {
        tasks.into_iter().for_each(run);
    }
}

/// Small stride-1 planes (MobileNet's 7×7 to 28×28 layers) computed per plane on the
/// flattened zero-padded plane: with `wp` the padded width, output `(y, x)` sits at
/// `q = y·wp + x` of a grid whose every kernel tap is the same grid shifted by a constant
/// (`a·wp + e`), so one run of whole vectors over `oh·wp` positions computes every output
/// (and `wp − ow` throw-away columns per row), with no border cases and no channel
/// interleaving; the valid columns are then copied out. All planes of a task share one
/// instruction-set dispatch and one scratch buffer.
mod grid {
    use pulp::{Arch, Simd, WithSimd};
    use rayon::prelude::*;

    use super::super::conv::ConvGeom;
    use super::super::linalg::with_scratch;
    use crate::cpu::fuse::Epilogue;

    /// Kernel taps handled (2-D kernels up to 5×5).
    const MAX_TAPS: usize = 25;

    /// Planes per task.
    const PLANES: usize = 16;

    /// Whether `g` runs here: 1-D or 2-D, stride 1, no dilation, output rows narrower than
    /// the row-vectorised path's, at most [`MAX_TAPS`] taps.
    pub(super) fn applies(g: &ConvGeom) -> bool {
        let [_, kh, kw] = g.k;
        g.inp[0] == 1
            && g.k[0] == 1
            && g.s == [1, 1, 1]
            && g.d == [1, 1, 1]
            && g.out[2] < super::ROWS_MIN_WIDTH
            && kh * kw <= MAX_TAPS
    }

    pub(super) fn forward(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        epi: &Epilogue<'_>,
        out: &mut [f32],
        par: bool,
    ) {
        let [_, ih, iw] = g.inp;
        let [_, kh, kw] = g.k;
        let [_, ph, pw] = g.pad;
        let [_, oh, ow] = g.out;
        let kl = kh * kw;
        let p = oh * ow;
        let in_plane = ih * iw;
        let cog = g.c_out / g.groups;
        // Padded plane: `hp` rows of `wp`, enough for every tap of every computed position.
        let wp = (ow + kw - 1).max(iw + pw);
        let hp = (oh + kh - 1).max(ih + ph);
        let lanes = 16;
        let grid_len = (oh * wp).next_multiple_of(lanes);
        let max_off = (kh - 1) * wp + (kw - 1);
        let pad_len = (hp * wp).max(max_off + grid_len);
        let mut offs = [0usize; MAX_TAPS];
        for (t, o) in offs.iter_mut().enumerate().take(kl) {
            *o = (t / kw) * wp + t % kw;
        }
        let run = |(task, chunk): (usize, &mut [f32])| {
            with_scratch(pad_len + grid_len, |buf| {
                let (pad, grid) = buf.split_at_mut(pad_len);
                for (i, o) in chunk.chunks_mut(p).enumerate() {
                    let plane = task * PLANES + i;
                    let (b, oc) = (plane / g.c_out, plane % g.c_out);
                    let ic = oc / cog;
                    let xs = &x[(b * g.c_in + ic) * in_plane..][..in_plane];
                    pad.fill(0.0);
                    for (y, row) in xs.chunks_exact(iw).enumerate() {
                        pad[(y + ph) * wp + pw..][..iw].copy_from_slice(row);
                    }
                    let mut wt = [0.0f32; MAX_TAPS];
                    wt[..kl].copy_from_slice(&w[oc * kl..(oc + 1) * kl]);
                    Arch::new().dispatch(Grid {
                        pad,
                        grid: &mut grid[..grid_len],
                        offs: &offs[..kl],
                        w: &wt[..kl],
                        bias: bias.map_or(0.0, |bv| bv[oc]),
                    });
                    for (y, orow) in o.chunks_exact_mut(ow).enumerate() {
                        orow.copy_from_slice(&grid[y * wp..][..ow]);
                    }
                    epi.apply(o, plane * p);
                }
            });
        };
        if par {
            out.par_chunks_mut(PLANES * p).enumerate().for_each(run);
        } else {
            out.chunks_mut(PLANES * p).enumerate().for_each(run);
        }
    }

    struct Grid<'a> {
        pad: &'a [f32],
        grid: &'a mut [f32],
        offs: &'a [usize],
        w: &'a [f32],
        bias: f32,
    }

    impl WithSimd for Grid<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, s: S) {
            let n = S::F32_LANES;
            let bias = s.splat_f32s(self.bias);
            let mut wv = [bias; MAX_TAPS];
            for (v, &c) in wv.iter_mut().zip(self.w) {
                *v = s.splat_f32s(c);
            }
            for (j, o) in self.grid.chunks_exact_mut(n).enumerate() {
                let q = j * n;
                let mut acc = bias;
                for (&off, &wt) in self.offs.iter().zip(&wv) {
                    let (v, _) = S::as_simd_f32s(&self.pad[q + off..][..n]);
                    acc = s.mul_add_f32s(wt, v[0], acc);
                }
                let (ov, _) = S::as_mut_simd_f32s(o);
                ov[0] = acc;
            }
        }
    }
}

/// Output rows from which [`rows`] (vectorised along W) beats the channel-blocked layout,
/// whose transposes in and out cost about as much as the taps.
const ROWS_MIN_WIDTH: usize = 32;

/// Whether `g` runs on [`rows`]: a 1-D/2-D convolution without dilation, stride 1 along W
/// and wide output rows (with stride 2 the phase split costs what the transposes save).
fn uses_rows(g: &ConvGeom) -> bool {
    g.inp[0] == 1 && g.k[0] == 1 && g.d == [1, 1, 1] && g.s[2] == 1 && g.out[2] >= ROWS_MIN_WIDTH
}

/// Depthwise convolution of wide planes, vectorised along the output rows: each input plane
/// is copied once into the zero-padded, phase-split layout of [`super::window`] (the W
/// stride's phases as separate rows), so that every tap of an output row is one contiguous
/// run; each output vector is `bias + Σ w[tap]·x[tap run]` in tap order with fused
/// multiply-adds (the same operations, in the same order, as the channel-blocked path),
/// the last partial vector through masked loads and stores.
mod rows {
    use pulp::{Arch, Simd, WithSimd};
    use rayon::prelude::*;

    use super::super::conv::ConvGeom;
    use super::super::linalg::with_scratch;
    use super::super::window::{self, Window};
    use crate::cpu::fuse::Epilogue;

    pub(super) fn forward(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        epi: &Epilogue<'_>,
        out: &mut [f32],
        par: bool,
    ) {
        let win = Window {
            inp: g.inp,
            k: g.k,
            s: g.s,
            d: g.d,
            pad: g.pad,
            out: g.out,
        };
        let [_, hp, wp] = win.padded();
        let sw = g.s[2];
        let rl = wp.div_ceil(sw);
        let [_, kh, kw] = g.k;
        let kl = kh * kw;
        let p = g.out[1] * g.out[2];
        let in_plane = g.inp[1] * g.inp[2];
        let cog = g.c_out / g.groups;
        // Where each tap's run starts, relative to the output row's first padded row.
        let offs: Vec<usize> = (0..kl)
            .map(|t| {
                let (b, e) = (t / kw, t % kw);
                (b * sw + e % sw) * rl + e / sw
            })
            .collect();
        let _ = hp;
        let run = |(plane, o): (usize, &mut [f32])| {
            let (b, oc) = (plane / g.c_out, plane % g.c_out);
            let ic = oc / cog;
            let xs = &x[(b * g.c_in + ic) * in_plane..][..in_plane];
            with_scratch(win.scratch_len(), |buf| {
                window::pad_split(xs, &win, 0.0, buf);
                Arch::new().dispatch(Plane {
                    buf,
                    offs: &offs,
                    w: &w[oc * kl..(oc + 1) * kl],
                    bias: bias.map_or(0.0, |bv| bv[oc]),
                    out: o,
                    ow: g.out[2],
                    row_step: g.s[1] * sw * rl,
                });
            });
            epi.apply(o, plane * p);
        };
        if par {
            out.par_chunks_mut(p).enumerate().for_each(run);
        } else {
            out.chunks_mut(p).enumerate().for_each(run);
        }
    }

    struct Plane<'a> {
        buf: &'a [f32],
        offs: &'a [usize],
        w: &'a [f32],
        bias: f32,
        out: &'a mut [f32],
        ow: usize,
        row_step: usize,
    }

    impl WithSimd for Plane<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, s: S) {
            let ow = self.ow;
            let full = ow / S::F32_LANES;
            let bias = s.splat_f32s(self.bias);
            let wv: Vec<S::f32s> = self.w.iter().map(|&v| s.splat_f32s(v)).collect();
            // Each tap's run for the current row, as whole vectors and a tail.
            let mut taps: Vec<(&[S::f32s], &[f32])> = Vec::with_capacity(self.offs.len());
            for (oy, orow) in self.out.chunks_exact_mut(ow).enumerate() {
                let base = oy * self.row_step;
                taps.clear();
                taps.extend(
                    self.offs
                        .iter()
                        .map(|off| S::as_simd_f32s(&self.buf[base + off..][..ow])),
                );
                let (ov, otail) = S::as_mut_simd_f32s(orow);
                for (j, o) in ov.iter_mut().enumerate().take(full) {
                    let mut acc = bias;
                    for ((tv, _), wt) in taps.iter().zip(&wv) {
                        acc = s.mul_add_f32s(*wt, tv[j], acc);
                    }
                    *o = acc;
                }
                if !otail.is_empty() {
                    let mut acc = bias;
                    for ((_, tt), wt) in taps.iter().zip(&wv) {
                        acc = s.mul_add_f32s(*wt, s.partial_load_f32s(tt), acc);
                    }
                    s.partial_store_f32s(otail, acc);
                }
            }
        }
    }
}

fn run_task(
    mut t: Task<'_>,
    x: &[f32],
    wp: &[Lanes],
    bp: &[Lanes],
    g: &ConvGeom,
    epi: &Epilogue<'_>,
    zeros: &[f32],
) {
    let [id, ih, iw] = g.inp;
    let [kd, kh, kw] = g.k;
    let [sd, sh, sw] = g.s;
    let [dd, dh, dw] = g.d;
    let [pd, ph, pw] = g.pad;
    let [od, oh, ow] = g.out;
    let kl = kd * kh * kw;
    let in_plane = id * ih * iw;
    let cog = g.c_out / g.groups;
    let lanes = t.planes.len();
    // Padded extents this task reads.
    let dp = (od - 1) * sd + (kd - 1) * dd + 1;
    let hb = (t.rows - 1) * sh + (kh - 1) * dh + 1;
    let wpd = (ow - 1) * sw + (kw - 1) * dw + 1;
    let y_first = t.oy0 * sh;
    // The input plane of each lane (a zero row past C_out).
    let srcs: Vec<&[f32]> = (0..CB)
        .map(|c| {
            let oc = t.blk * CB + c;
            if c < lanes {
                let ic = oc / cog;
                &x[(t.b * g.c_in + ic) * in_plane..][..in_plane]
            } else {
                &x[..0]
            }
        })
        .collect();
    let wts = &wp[t.blk * kl..(t.blk + 1) * kl];
    let bias = bp[t.blk];
    // Tap offsets in the padded buffer (in units of CB lanes).
    let offs: Vec<usize> = (0..kl)
        .map(|i| {
            let (a, b, e) = (i / (kh * kw), (i / kw) % kh, i % kw);
            (a * dd * hb + b * dh) * wpd + e * dw
        })
        .collect();
    with_scratch((dp * hb * wpd + ow) * CB, |scratch| {
        let (lanes_buf, _) = scratch.as_chunks_mut::<CB>();
        let (buf, obuf) = lanes_buf.split_at_mut(dp * hb * wpd);
        simd::vectorize(
            #[inline(always)]
            || {
                // Fill the padded, channel-interleaved input.
                for zp in 0..dp {
                    for yr in 0..hb {
                        let row = &mut buf[(zp * hb + yr) * wpd..][..wpd];
                        let z = zp as isize - pd as isize;
                        let y = (y_first + yr) as isize - ph as isize;
                        if z < 0 || z >= id as isize || y < 0 || y >= ih as isize {
                            row.fill([0.0; CB]);
                            continue;
                        }
                        let r0 = (z as usize * ih + y as usize) * iw;
                        let lead = pw.min(wpd);
                        row[..lead].fill([0.0; CB]);
                        let n = iw.min(wpd - lead);
                        let rs: [&[f32]; CB] = std::array::from_fn(|c| {
                            if c < lanes {
                                &srcs[c][r0..r0 + n]
                            } else {
                                &zeros[..n]
                            }
                        });
                        interleave(&mut row[lead..lead + n], &rs);
                        row[lead + n..].fill([0.0; CB]);
                    }
                }
                // Output rows.
                for oz in 0..od {
                    for yl in 0..t.rows {
                        let base = (oz * sd * hb + yl * sh) * wpd;
                        let orow = &mut obuf[..ow];
                        if kl == 9 {
                            let o9: [usize; 9] = std::array::from_fn(|i| offs[i]);
                            let w9: [Lanes; 9] = std::array::from_fn(|i| wts[i]);
                            row_fixed::<9>(buf, base, sw, &o9, &w9, bias, orow);
                        } else {
                            row_any(buf, base, sw, &offs, wts, bias, orow);
                        }
                        let o0 = (oz * t.rows + yl) * ow;
                        for (c, plane) in t.planes.iter_mut().enumerate() {
                            for (d, a) in plane[o0..o0 + ow].iter_mut().zip(orow.iter()) {
                                *d = a[c];
                            }
                        }
                    }
                }
            },
        );
    });
    if !epi.is_empty() {
        let p = od * oh * ow;
        for (c, plane) in t.planes.iter_mut().enumerate() {
            let oc = t.blk * CB + c;
            epi.apply(plane, (t.b * g.c_out + oc) * p + t.oy0 * ow);
        }
    }
}

/// `dst[i][c] = rs[c][i]`.
#[inline(always)]
fn interleave(dst: &mut [Lanes], rs: &[&[f32]; CB]) {
    let n = dst.len();
    let rs: [&[f32]; CB] = std::array::from_fn(|c| &rs[c][..n]);
    for (i, d) in dst.iter_mut().enumerate() {
        *d = std::array::from_fn(|c| rs[c][i]);
    }
}

/// One output row with `T` taps known at compile time (3×3: 9).
#[inline(always)]
fn row_fixed<const T: usize>(
    buf: &[Lanes],
    base: usize,
    sw: usize,
    offs: &[usize; T],
    w: &[Lanes; T],
    bias: Lanes,
    out: &mut [Lanes],
) {
    for (ox, o) in out.iter_mut().enumerate() {
        let p = base + ox * sw;
        let mut acc = bias;
        for t in 0..T {
            let xv = &buf[p + offs[t]];
            for c in 0..CB {
                acc[c] = w[t][c].mul_add(xv[c], acc[c]);
            }
        }
        *o = acc;
    }
}

/// One output row, any number of taps.
#[inline(always)]
fn row_any(
    buf: &[Lanes],
    base: usize,
    sw: usize,
    offs: &[usize],
    w: &[Lanes],
    bias: Lanes,
    out: &mut [Lanes],
) {
    for (ox, o) in out.iter_mut().enumerate() {
        let p = base + ox * sw;
        let mut acc = bias;
        for (off, wt) in offs.iter().zip(w) {
            let xv = &buf[p + off];
            for c in 0..CB {
                acc[c] = wt[c].mul_add(xv[c], acc[c]);
            }
        }
        *o = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::fuse::{self, EwOp, Unary};
    use crate::cpu::kernels::conv::reference::data;
    use crate::cpu::kernels::conv::{ConvParams, PadType, geometry};

    /// The definition, taps summed in the same order (bias first).
    fn naive(x: &[f32], w: &[f32], bias: &[f32], g: &ConvGeom) -> Vec<f32> {
        let [id, ih, iw] = g.inp;
        let [kd, kh, kw] = g.k;
        let [od, oh, ow] = g.out;
        let cog = g.c_out / g.groups;
        let mut out = Vec::new();
        for b in 0..g.n {
            for oc in 0..g.c_out {
                let ic = oc / cog;
                let xp = &x[(b * g.c_in + ic) * id * ih * iw..];
                for oz in 0..od {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = bias[oc];
                            for a in 0..kd {
                                for bb in 0..kh {
                                    for e in 0..kw {
                                        let z =
                                            (oz * g.s[0] + a * g.d[0]) as isize - g.pad[0] as isize;
                                        let y = (oy * g.s[1] + bb * g.d[1]) as isize
                                            - g.pad[1] as isize;
                                        let xx =
                                            (ox * g.s[2] + e * g.d[2]) as isize - g.pad[2] as isize;
                                        if (0..id as isize).contains(&z)
                                            && (0..ih as isize).contains(&y)
                                            && (0..iw as isize).contains(&xx)
                                        {
                                            let v = xp
                                                [(z as usize * ih + y as usize) * iw + xx as usize];
                                            acc += w[(oc * kd + a) * kh * kw + bb * kw + e] * v;
                                        }
                                    }
                                }
                            }
                            out.push(acc);
                        }
                    }
                }
            }
        }
        out
    }

    /// Equal up to the rounding of fused multiply-adds (the definition rounds each product).
    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{what} at {i}: {a} vs {b}"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        n: usize,
        c_in: usize,
        mult: usize,
        inp: &[usize],
        k: &[usize],
        s: &[i64],
        d: &[i64],
        pad: &[i64],
    ) {
        let c_out = c_in * mult;
        let mut xs = vec![n, c_in];
        xs.extend_from_slice(inp);
        let mut ws = vec![c_out, 1];
        ws.extend_from_slice(k);
        let params = ConvParams {
            strides: Some(s.to_vec()),
            dilations: Some(d.to_vec()),
            pad: Some(pad.to_vec()),
            pad_type: PadType::Custom,
            groups: c_in as i64,
            output_shape: None,
        };
        let g = geometry(&xs, &ws, &params, false).unwrap();
        let x = data(xs.iter().product(), 1);
        let w = data(ws.iter().product(), 2);
        let bias = data(c_out, 3);
        let want = naive(&x, &w, &bias, &g);
        for par in [false, true] {
            let mut got = vec![f32::NAN; want.len()];
            forward(&x, &w, Some(&bias), &g, &Epilogue::none(), &mut got, par);
            close(
                &got,
                &want,
                &format!("{xs:?} k {k:?} s {s:?} d {d:?} pad {pad:?} par {par}"),
            );
            // With a fused relu6.
            let ops = [EwOp::Unary(Unary::Relu6)];
            let epi = fuse::prepare(&ops, &g.out_shape(), &|_| None).unwrap();
            let mut got = vec![f32::NAN; want.len()];
            forward(&x, &w, Some(&bias), &g, &epi, &mut got, par);
            let w6: Vec<f32> = want.iter().map(|v| v.clamp(0.0, 6.0)).collect();
            close(&got, &w6, "relu6");
        }
    }

    #[test]
    fn matches_the_definition() {
        // 3×3, stride 1 and 2, channel counts around the block size.
        check(1, 8, 1, &[7, 7], &[3, 3], &[1, 1], &[1, 1], &[1, 1, 1, 1]);
        check(2, 13, 1, &[9, 11], &[3, 3], &[2, 2], &[1, 1], &[1, 1, 1, 1]);
        check(1, 3, 1, &[5, 6], &[3, 3], &[2, 2], &[1, 1], &[0, 1, 1, 0]);
        // Channel multiplier, dilation, asymmetric and large padding, odd kernels.
        check(1, 5, 2, &[10, 9], &[3, 3], &[1, 2], &[2, 1], &[2, 0, 3, 1]);
        check(
            1,
            17,
            1,
            &[12, 12],
            &[5, 5],
            &[2, 1],
            &[1, 1],
            &[2, 2, 2, 2],
        );
        check(1, 9, 3, &[6, 13], &[2, 4], &[1, 3], &[1, 2], &[0, 0, 0, 0]);
        check(1, 4, 1, &[3, 3], &[3, 3], &[1, 1], &[1, 1], &[4, 4, 4, 4]);
        // Tall planes split into row bands (or, stride 1, the flattened padded grid).
        check(1, 2, 1, &[40, 5], &[3, 3], &[1, 1], &[1, 1], &[1, 1, 1, 1]);
        // The flattened grid: channel multiplier, asymmetric padding, 1-D, 5×5, > 16 planes.
        check(2, 6, 2, &[9, 11], &[3, 3], &[1, 1], &[1, 1], &[0, 2, 1, 0]);
        check(1, 5, 1, &[20], &[3], &[1], &[1], &[1, 1]);
        check(1, 37, 1, &[7, 7], &[5, 5], &[1, 1], &[1, 1], &[2, 2, 2, 2]);
        // Wide rows (vectorised along W): stride 1 and 2, odd widths, 1-D.
        check(1, 3, 1, &[9, 45], &[3, 3], &[1, 1], &[1, 1], &[1, 1, 1, 1]);
        check(2, 2, 2, &[8, 83], &[3, 3], &[2, 2], &[1, 1], &[1, 1, 1, 1]);
        check(1, 2, 1, &[5, 70], &[5, 3], &[1, 3], &[1, 1], &[2, 0, 2, 1]);
        check(1, 3, 1, &[131], &[7], &[1], &[1], &[3, 3]);
        // 1-D and 3-D.
        check(2, 11, 1, &[37], &[5], &[2], &[2], &[3, 1]);
        check(
            1,
            10,
            1,
            &[4, 5, 6],
            &[3, 3, 3],
            &[1, 2, 1],
            &[1, 1, 2],
            &[1, 1, 1, 1, 1, 1],
        );
    }
}
