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

use super::conv::ConvGeom;
use super::linalg::with_scratch;
use crate::cpu::fuse::Epilogue;

/// Output channels per register block.
const MR: usize = 8;

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

/// `out` (`[N, C_out, *out]`) = the convolution of `x` with `w` (`[C_out, C_in/groups, *k]`)
/// plus `bias`, then `epi`; `g` must satisfy [`applies`].
pub fn forward(
    x: &[f32],
    w: &[f32],
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
    let wp = ow + (kw - 1) * dw;
    let hp = oh + (kh - 1) * dh;
    // Outputs on the padded grid, rounded up to whole vectors (of at most 16 lanes).
    let q = (oh * wp).next_multiple_of(16);
    let max_off = (kh - 1) * dh * wp + (kw - 1) * dw;
    let plane = (q + max_off).max(hp * wp);
    let offs: Vec<usize> = (0..kl)
        .map(|t| (t / kw) * dh * wp + (t % kw) * dw)
        .collect();
    let nblk = cog.div_ceil(MR);
    // Weights as [group][block][ci][tap][MR] (zero rows past the group's channels).
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
    with_scratch(cig * plane + MR * q, |buf| {
        let (xpad, tmp) = buf.split_at_mut(cig * plane);
        for b in 0..g.n {
            for grp in 0..g.groups {
                // The padded input of this group.
                xpad.fill(0.0);
                for ci in 0..cig {
                    let src = &x[((b * g.c_in + grp * cig + ci) * ih) * iw..][..ih * iw];
                    let dst = &mut xpad[ci * plane..(ci + 1) * plane];
                    let n = iw.min(wp.saturating_sub(pw));
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
                for blk in 0..nblk {
                    let rows = MR.min(cog - blk * MR);
                    let mut init = [0.0f32; MR];
                    for (r, v) in init.iter_mut().enumerate().take(rows) {
                        *v = bias.map_or(0.0, |bv| bv[grp * cog + blk * MR + r]);
                    }
                    let wb = &wpk[(grp * nblk + blk) * cig * kl * MR..][..cig * kl * MR];
                    Arch::new().dispatch(Block {
                        xpad,
                        plane,
                        cig,
                        offs: &offs,
                        w: wb,
                        init,
                        tmp,
                        q,
                    });
                    for r in 0..rows {
                        let co = grp * cog + blk * MR + r;
                        let o = &mut out[(b * g.c_out + co) * p..][..p];
                        let t = &tmp[r * q..(r + 1) * q];
                        for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
                            orow.copy_from_slice(&t[oy * wp..oy * wp + ow]);
                        }
                        epi.apply(o, (b * g.c_out + co) * p);
                    }
                }
            }
        }
    });
}

struct Block<'a> {
    xpad: &'a [f32],
    plane: usize,
    cig: usize,
    offs: &'a [usize],
    w: &'a [f32],
    init: [f32; MR],
    tmp: &'a mut [f32],
    q: usize,
}

impl WithSimd for Block<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let lanes = S::F32_LANES;
        let kl = self.offs.len();
        let init: [S::f32s; MR] = std::array::from_fn(|r| s.splat_f32s(self.init[r]));
        let mut i = 0;
        while i < self.q {
            let n = lanes.min(self.q - i);
            let mut acc = init;
            for ci in 0..self.cig {
                let xc = &self.xpad[ci * self.plane..(ci + 1) * self.plane];
                let wc = &self.w[ci * kl * MR..(ci + 1) * kl * MR];
                for (off, wt) in self.offs.iter().zip(wc.chunks_exact(MR)) {
                    let xv = s.partial_load_f32s(&xc[i + off..][..n]);
                    for r in 0..MR {
                        acc[r] = s.mul_add_f32s(s.splat_f32s(wt[r]), xv, acc[r]);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                s.partial_store_f32s(&mut self.tmp[r * self.q + i..][..n], *a);
            }
            i += lanes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::conv::{ConvParams, PadType, conv_forward, geometry};

    fn data(n: usize, seed: u32) -> Vec<f32> {
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

    /// The definition in f64.
    #[allow(clippy::needless_range_loop)]
    fn naive(x: &[f32], w: &[f32], bias: &[f32], g: &ConvGeom) -> Vec<f64> {
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
                                    let y = (oy + a * g.d[1]) as isize - g.pad[1] as isize;
                                    let xx = (ox + e * g.d[2]) as isize - g.pad[2] as isize;
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
            let want = naive(&x, &w, &bias, &g);
            let got = conv_forward(&x, &w, Some(&bias), &g);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{xs:?} {ws:?} at {i}: {a} vs {b}"
                );
            }
        }
    }
}
