//! Direct convolution of small stride-1 1-D/2-D convolutions with register-blocked output
//! channels.
//!
//! On small layers (a few thousand output pixels, tens of channels) im2col + GEMM spends
//! more on the GEMM's fixed costs (packing, blocking decisions) and the patch matrix than on
//! arithmetic. Here the input of each group is copied once into a zero-padded plane whose
//! rows are `Wp = W_out + (kW − 1)·dW` wide; the output is computed on the same `Wp`-wide
//! grid (the last `Wp − W_out` columns of each row are computed and dropped), so that every
//! kernel tap is one constant offset into the padded plane and a vector of consecutive
//! outputs reads one vector of consecutive inputs — the "padded grid" form of direct
//! convolution. The micro-kernel keeps [`MR`] output channels × one vector of pixels in
//! registers and, per input channel and tap, broadcasts `MR` weights against one input
//! vector (fused multiply-adds), starting from the bias. The pixel rows are then compacted
//! into the NCHW output and the fused epilogue runs on them.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::conv::ConvGeom;
use super::linalg::{parallel, with_scratch};
use crate::cpu::fuse::Epilogue;

/// Output channels per register block.
const MR: usize = 8;

/// Padded-grid outputs are computed in runs of this many (a multiple of every
/// `lanes × vectors` step of [`Block`]: 16 × 3, 8 × 1, 4 × 3), so that every load and store
/// of the micro-kernel is a whole vector.
const RUN: usize = 48;

/// Largest multiply-add count computed here (larger convolutions amortise im2col + GEMM).
const MAX_MACS: usize = 1 << 22;

/// Whether `g` (not depthwise, not 1×1) runs here.
pub fn applies(g: &ConvGeom) -> bool {
    let cig = g.c_in / g.groups;
    let kl: usize = g.k.iter().product();
    let p: usize = g.out.iter().product();
    g.inp[0] == 1
        && g.k[0] == 1
        && g.s == [1, 1, 1]
        && kl > 1
        && g.n * g.c_out * p * cig * kl <= MAX_MACS
}

/// The weights `w` (`[C_out, C_in/groups, *k]`) in the micro-kernel's order:
/// `[group][block of MR output channels][ci][tap][MR]`, zero rows past a group's channels.
/// Depends only on the weight's shape and the groups, so a constant weight is packed once.
pub fn pack(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let kl: usize = g.k.iter().product();
    let nblk = cog.div_ceil(MR);
    let mut wpk = vec![0.0f32; g.groups * nblk * cig * kl * MR];
    for co in 0..g.c_out {
        let (grp, c) = (co / cog, co % cog);
        let (blk, r) = (c / MR, c % MR);
        for ci in 0..cig {
            for t in 0..kl {
                wpk[((((grp * nblk + blk) * cig + ci) * kl + t) * MR) + r] =
                    w[(co * cig + ci) * kl + t];
            }
        }
    }
    wpk
}

/// `out` (`[N, C_out, *out]`) = the convolution of `x` with `w` (`[C_out, C_in/groups, *k]`,
/// or already [`pack`]ed in `packed`) plus `bias`, then `epi`; `g` must satisfy
/// [`applies`]. Split over the pool's threads by (block of output channels, band of output
/// rows) when the work is large enough.
pub fn forward(
    x: &[f32],
    w: &[f32],
    packed: Option<&[f32]>,
    bias: Option<&[f32]>,
    g: &ConvGeom,
    epi: &Epilogue<'_>,
    out: &mut [f32],
) {
    let [_, ih, iw] = g.inp;
    let [_, kh, kw] = g.k;
    let [_, dh, dw] = g.d;
    let [_, ph, pw] = g.pad;
    let [_, oh, ow] = g.out;
    let cig = g.c_in / g.groups;
    let cog = g.c_out / g.groups;
    let kl = kh * kw;
    let p = oh * ow;
    if p == 0 || cog == 0 {
        return;
    }
    let wp = ow + (kw - 1) * dw;
    let hp = oh + (kh - 1) * dh;
    let nblk = cog.div_ceil(MR);
    // Bands of output rows: enough (block, band) tasks for the threads when parallel.
    let threads = super::threads();
    let par = parallel(g.n * g.c_out * p * cig * kl);
    let bands = if par {
        (2 * threads).div_ceil(nblk).clamp(1, oh)
    } else {
        1
    };
    let band_rows = oh.div_ceil(bands);
    let bands = oh.div_ceil(band_rows);
    // Padded-grid outputs of one band (whole runs), and of the whole plane.
    let bq = (band_rows * wp).next_multiple_of(RUN);
    let q = (bands - 1) * band_rows * wp + bq;
    let max_off = (kh - 1) * dh * wp + (kw - 1) * dw;
    let plane = (q + max_off).max(hp * wp);
    let offs: Vec<usize> = (0..kl)
        .map(|t| (t / kw) * dh * wp + (t % kw) * dw)
        .collect();
    let made;
    let wpk = match packed {
        Some(p) => p,
        None => {
            made = pack(w, g);
            &made
        }
    };
    let tasks = nblk * bands;
    with_scratch(cig * plane + tasks * MR * bq, |buf| {
        let (xpad, tmps) = buf.split_at_mut(cig * plane);
        for b in 0..g.n {
            for grp in 0..g.groups {
                // The padded input of this group.
                xpad.fill(0.0);
                let n = iw.min(wp.saturating_sub(pw));
                for ci in 0..cig {
                    let src = &x[((b * g.c_in + grp * cig + ci) * ih) * iw..][..ih * iw];
                    let dst = &mut xpad[ci * plane..(ci + 1) * plane];
                    if n == 0 {
                        continue;
                    }
                    for y in 0..ih {
                        let yp = y + ph;
                        if yp >= hp {
                            break;
                        }
                        dst[yp * wp + pw..][..n].copy_from_slice(&src[y * iw..][..n]);
                    }
                }
                let xpad = &*xpad;
                let base = (b * g.c_out + grp * cog) * p;
                // Each task's output rows: per channel of its block, the band's rows.
                let mut parts: Vec<Vec<&mut [f32]>> = (0..tasks).map(|_| Vec::new()).collect();
                for (c, chan) in out[base..base + cog * p].chunks_mut(p).enumerate() {
                    for (band, rows) in chan.chunks_mut(band_rows * ow).enumerate() {
                        if let Some(v) = parts.get_mut((c / MR) * bands + band) {
                            v.push(rows);
                        }
                    }
                }
                let task = |(t, (rows, tmp)): (usize, (Vec<&mut [f32]>, &mut [f32]))| {
                    let (blk, band) = (t / bands, t % bands);
                    let mut init = [0.0f32; MR];
                    for (r, v) in init.iter_mut().enumerate().take(rows.len()) {
                        *v = bias.map_or(0.0, |bv| bv[grp * cog + blk * MR + r]);
                    }
                    let q0 = band * band_rows * wp;
                    Arch::new().dispatch(Block {
                        xpad: &xpad[q0..],
                        plane,
                        cig,
                        offs: &offs,
                        w: &wpk[(grp * nblk + blk) * cig * kl * MR..][..cig * kl * MR],
                        init,
                        tmp,
                        q: bq,
                    });
                    for (r, o) in rows.into_iter().enumerate() {
                        let t = &tmp[r * bq..(r + 1) * bq];
                        for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
                            orow.copy_from_slice(&t[oy * wp..oy * wp + ow]);
                        }
                        epi.apply(o, base + (blk * MR + r) * p + band * band_rows * ow);
                    }
                };
                let work = parts.into_iter().zip(tmps.chunks_mut(MR * bq)).enumerate();
                if par {
                    work.collect::<Vec<_>>().into_par_iter().for_each(task);
                } else {
                    work.for_each(task);
                }
            }
        }
    });
}

/// One task of the micro-kernel: `tmp[r][i]` (rows of `q` padded-grid outputs) = `init[r]`
/// + the taps of output channel `r` of the block at grid position `i`.
struct Block<'a> {
    /// The padded input planes, starting at the task's first grid position.
    xpad: &'a [f32],
    plane: usize,
    cig: usize,
    offs: &'a [usize],
    w: &'a [f32],
    init: [f32; MR],
    tmp: &'a mut [f32],
    q: usize,
}

impl Block<'_> {
    /// `NV` vectors of consecutive outputs × [`MR`] channels held in registers.
    #[inline(always)]
    fn run<S: Simd, const NV: usize>(self, s: S) {
        let lanes = S::F32_LANES;
        let step = lanes * NV;
        let kl = self.offs.len();
        let init: [S::f32s; MR] = std::array::from_fn(|r| s.splat_f32s(self.init[r]));
        let mut i = 0;
        while i + step <= self.q {
            let mut acc = [[s.splat_f32s(0.0); NV]; MR];
            for r in 0..MR {
                acc[r] = [init[r]; NV];
            }
            for ci in 0..self.cig {
                let xc = &self.xpad[ci * self.plane + i..];
                let wc = &self.w[ci * kl * MR..(ci + 1) * kl * MR];
                for (&off, wt) in self.offs.iter().zip(wc.chunks_exact(MR)) {
                    let (xv, _) = S::as_simd_f32s(&xc[off..off + step]);
                    let xv: [S::f32s; NV] = std::array::from_fn(|v| xv[v]);
                    for r in 0..MR {
                        let wv = s.splat_f32s(wt[r]);
                        for v in 0..NV {
                            acc[r][v] = s.mul_add_f32s(wv, xv[v], acc[r][v]);
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let (dst, _) = S::as_mut_simd_f32s(&mut self.tmp[r * self.q + i..][..step]);
                dst[..NV].copy_from_slice(a);
            }
            i += step;
        }
    }
}

impl WithSimd for Block<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        // 8 × 3 accumulators + 3 inputs + 1 weight fit AVX-512's and NEON's 32 registers;
        // AVX2 has 16.
        if S::F32_LANES == 16 || (cfg!(target_arch = "aarch64") && S::F32_LANES == 4) {
            self.run::<S, 3>(s);
        } else {
            self.run::<S, 1>(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::conv::reference::{check_on_threads, data};
    use crate::cpu::kernels::conv::{ConvParams, PadType, geometry};

    #[test]
    fn matches_the_definition() {
        #[allow(clippy::type_complexity)]
        let cases: &[(
            usize,
            usize,
            usize,
            usize,
            &[usize],
            &[usize],
            &[i64],
            &[i64],
        )] = &[
            // (n, c_in, c_out, groups, spatial, kernel, dilations, pad)
            (1, 16, 32, 1, &[16, 16], &[3, 3], &[1, 1], &[1, 1, 1, 1]),
            (1, 3, 16, 1, &[32, 32], &[3, 3], &[1, 1], &[1, 1, 1, 1]),
            (2, 5, 11, 1, &[9, 13], &[3, 2], &[2, 1], &[2, 0, 1, 1]),
            (1, 6, 9, 3, &[7, 7], &[5, 5], &[1, 1], &[2, 2, 2, 2]),
            (1, 4, 3, 1, &[5, 6], &[2, 2], &[1, 1], &[0, 0, 0, 0]),
            (1, 7, 13, 1, &[29], &[5], &[2], &[3, 1]),
            // large enough to be split over threads: blocks × bands of rows
            (1, 10, 21, 1, &[23, 19], &[3, 3], &[1, 1], &[1, 0, 2, 1]),
            (2, 8, 12, 2, &[31, 7], &[3, 2], &[1, 2], &[1, 1, 0, 1]),
        ];
        for &(n, c_in, c_out, groups, sp, k, d, pad) in cases {
            let mut xs = vec![n, c_in];
            xs.extend_from_slice(sp);
            let mut ws = vec![c_out, c_in / groups];
            ws.extend_from_slice(k);
            let params = ConvParams {
                strides: None,
                dilations: Some(d.to_vec()),
                pad: Some(pad.to_vec()),
                pad_type: PadType::Custom,
                groups: groups as i64,
                output_shape: None,
            };
            let g = geometry(&xs, &ws, &params, false).unwrap();
            assert!(applies(&g), "{xs:?} {ws:?}");
            let x = data(xs.iter().product(), 1);
            let w = data(ws.iter().product(), 2);
            let bias = data(c_out, 3);
            // 1, 2 and 7 threads: the task split must not change the result
            let got = check_on_threads(&x, &w, &bias, &g, &[1, 2, 7], 1e-5);
            for r in &got[1..] {
                assert_eq!(*r, got[0], "{xs:?} {ws:?}: bit for bit on any thread count");
            }
        }
    }
}
