//! Vector primitives for the dense kernels, with run-time instruction-set dispatch.
//!
//! The crate has no `unsafe` and is not built with `-C target-cpu=native`, so plain loops
//! compile to SSE2 only. [`pulp::Arch::dispatch`] detects AVX2+FMA (x86-64-v3) or NEON once
//! and runs a closure in a function compiled for that instruction set; everything inlined
//! into it (the loops below, [`exp`], [`erf`]) is vectorised for it.
//!
//! Reductions (sums, maxima, dot products) use explicit SIMD registers with several
//! independent accumulators: the order of additions is fixed per vector width, and the
//! lane-parallel partial sums are more accurate than one running f32 sum (the error grows
//! with `n / lanes` instead of `n`).

use pulp::{Arch, Simd, WithSimd};

/// `Σ a[i]·b[i]` (the shorter length counts).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    Arch::new().dispatch(Dot {
        a: &a[..n],
        b: &b[..n],
    })
}

struct Dot<'a> {
    a: &'a [f32],
    b: &'a [f32],
}

impl WithSimd for Dot<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f32 {
        let (a, at) = S::as_simd_f32s(self.a);
        let (b, bt) = S::as_simd_f32s(self.b);
        let z = s.splat_f32s(0.0);
        let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
        let (a4, a1) = a.split_at(a.len() / 4 * 4);
        let (b4, b1) = b.split_at(b.len() / 4 * 4);
        for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
            c0 = s.mul_add_e_f32s(x[0], y[0], c0);
            c1 = s.mul_add_e_f32s(x[1], y[1], c1);
            c2 = s.mul_add_e_f32s(x[2], y[2], c2);
            c3 = s.mul_add_e_f32s(x[3], y[3], c3);
        }
        for (x, y) in a1.iter().zip(b1) {
            c0 = s.mul_add_e_f32s(*x, *y, c0);
        }
        let c = s.add_f32s(s.add_f32s(c0, c1), s.add_f32s(c2, c3));
        let mut r = s.reduce_sum_f32s(c);
        for (x, y) in at.iter().zip(bt) {
            r += x * y;
        }
        r
    }
}

/// `out[j] (+)= Σ_i x[i]·w[j·k + i]` for every `j < out.len()`: one [`dot`] per row of the
/// row-major `w`, all in one instruction-set dispatch (a matrix–vector product of small
/// rows, as a recurrent step makes, would otherwise pay a dispatch per row). Each result is
/// exactly [`dot`]'s.
pub fn dots(x: &[f32], w: &[f32], k: usize, out: &mut [f32], accumulate: bool) {
    let x = &x[..k.min(x.len())];
    Arch::new().dispatch(Dots {
        x,
        w,
        k,
        out,
        accumulate,
    })
}

struct Dots<'a> {
    x: &'a [f32],
    w: &'a [f32],
    k: usize,
    out: &'a mut [f32],
    accumulate: bool,
}

impl WithSimd for Dots<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let k = self.k;
        for (j, o) in self.out.iter_mut().enumerate() {
            let row = &self.w[j * k..(j + 1) * k];
            let n = self.x.len().min(row.len());
            let d = Dot {
                a: &self.x[..n],
                b: &row[..n],
            }
            .with_simd(s);
            *o = if self.accumulate { *o + d } else { d };
        }
    }
}

/// The f32 value of the fp16 bit pattern `h` (exact for every pattern; NaNs stay NaN):
/// integer operations and one subtraction, which the compiler vectorises inside a
/// [`pulp`] dispatch, where `half`'s conversion calls out per 8 values (it measured
/// ~0.17 ns per value into a cached buffer here, most of an fp16 GEMV's time).
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let em = (h & 0x7fff) << 13;
    let exp = em & 0x0f80_0000;
    // Rebias the exponent (15 → 127); infinities and NaNs get the all-ones exponent;
    // subnormals are normalised by one float subtraction.
    let normal = em + ((127 - 15) << 23);
    let bits = if exp == 0x0f80_0000 {
        normal + ((128 - 16) << 23)
    } else if exp == 0 {
        (f32::from_bits(normal + (1 << 23)) - f32::from_bits(113 << 23)).to_bits()
    } else {
        normal
    };
    f32::from_bits(bits | sign)
}

/// [`dots`] with `w` given as fp16 bit patterns (`k` per row): each weight is converted as
/// it is read, so the weight streams once at 2 bytes a value. The sums are [`dot`]'s, in
/// its order, bit for bit: the same result as [`dots`] over the decoded rows.
pub fn dots_f16(x: &[f32], w: &[u16], k: usize, out: &mut [f32], accumulate: bool) {
    let x = &x[..k.min(x.len())];
    Arch::new().dispatch(DotsF16 {
        x,
        w,
        k,
        out,
        accumulate,
    })
}

struct DotsF16<'a> {
    x: &'a [f32],
    w: &'a [u16],
    k: usize,
    out: &'a mut [f32],
    accumulate: bool,
}

/// Most f32 lanes of a vector (AVX-512).
const MAX_LANES: usize = 16;

impl WithSimd for DotsF16<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let lanes = S::F32_LANES;
        let k = self.k;
        let n = self.x.len().min(k);
        let (xv, xt) = S::as_simd_f32s(&self.x[..n]);
        let (x4, x1) = xv.split_at(xv.len() / 4 * 4);
        // Weights converted in groups of up to 4 vectors into this buffer.
        let mut buf = [0.0f32; 4 * MAX_LANES];
        for (j, o) in self.out.iter_mut().enumerate() {
            let Some(row) = self.w.get(j * k..j * k + n) else {
                break;
            };
            let z = s.splat_f32s(0.0);
            let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
            let mut at = 0;
            for xs in x4.chunks_exact(4) {
                let dst = &mut buf[..4 * lanes];
                for (d, &h) in dst.iter_mut().zip(&row[at..at + 4 * lanes]) {
                    *d = f16_bits_to_f32(h);
                }
                at += 4 * lanes;
                let (wv, _) = S::as_simd_f32s(dst);
                c0 = s.mul_add_e_f32s(xs[0], wv[0], c0);
                c1 = s.mul_add_e_f32s(xs[1], wv[1], c1);
                c2 = s.mul_add_e_f32s(xs[2], wv[2], c2);
                c3 = s.mul_add_e_f32s(xs[3], wv[3], c3);
            }
            for xs in x1 {
                let dst = &mut buf[..lanes];
                for (d, &h) in dst.iter_mut().zip(&row[at..at + lanes]) {
                    *d = f16_bits_to_f32(h);
                }
                at += lanes;
                let (wv, _) = S::as_simd_f32s(dst);
                c0 = s.mul_add_e_f32s(*xs, wv[0], c0);
            }
            let c = s.add_f32s(s.add_f32s(c0, c1), s.add_f32s(c2, c3));
            let mut d = s.reduce_sum_f32s(c);
            for (xv, &h) in xt.iter().zip(&row[at..]) {
                d += xv * f16_bits_to_f32(h);
            }
            *o = if self.accumulate { *o + d } else { d };
        }
    }
}

/// `Σ a[i]`.
pub fn sum(a: &[f32]) -> f32 {
    Arch::new().dispatch(Sum { a, center: None })
}

/// `Σ (a[i] − c)²`.
pub fn sum_sq_dev(a: &[f32], c: f32) -> f32 {
    Arch::new().dispatch(Sum { a, center: Some(c) })
}

struct Sum<'a> {
    a: &'a [f32],
    center: Option<f32>,
}

impl WithSimd for Sum<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f32 {
        let (a, at) = S::as_simd_f32s(self.a);
        let z = s.splat_f32s(0.0);
        let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
        let (a4, a1) = a.split_at(a.len() / 4 * 4);
        match self.center {
            None => {
                for x in a4.chunks_exact(4) {
                    c0 = s.add_f32s(c0, x[0]);
                    c1 = s.add_f32s(c1, x[1]);
                    c2 = s.add_f32s(c2, x[2]);
                    c3 = s.add_f32s(c3, x[3]);
                }
                for x in a1 {
                    c0 = s.add_f32s(c0, *x);
                }
                let c = s.add_f32s(s.add_f32s(c0, c1), s.add_f32s(c2, c3));
                s.reduce_sum_f32s(c) + at.iter().sum::<f32>()
            }
            Some(m) => {
                let mv = s.splat_f32s(m);
                for x in a4.chunks_exact(4) {
                    let d0 = s.sub_f32s(x[0], mv);
                    let d1 = s.sub_f32s(x[1], mv);
                    let d2 = s.sub_f32s(x[2], mv);
                    let d3 = s.sub_f32s(x[3], mv);
                    c0 = s.mul_add_e_f32s(d0, d0, c0);
                    c1 = s.mul_add_e_f32s(d1, d1, c1);
                    c2 = s.mul_add_e_f32s(d2, d2, c2);
                    c3 = s.mul_add_e_f32s(d3, d3, c3);
                }
                for x in a1 {
                    let d = s.sub_f32s(*x, mv);
                    c0 = s.mul_add_e_f32s(d, d, c0);
                }
                let c = s.add_f32s(s.add_f32s(c0, c1), s.add_f32s(c2, c3));
                s.reduce_sum_f32s(c) + at.iter().map(|x| (x - m) * (x - m)).sum::<f32>()
            }
        }
    }
}

/// `max a[i]` (−∞ for an empty slice; NaN elements are skipped, as `f32::max` does).
pub fn max(a: &[f32]) -> f32 {
    Arch::new().dispatch(Max { a })
}

struct Max<'a> {
    a: &'a [f32],
}

impl WithSimd for Max<'_> {
    type Output = f32;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> f32 {
        let (a, at) = S::as_simd_f32s(self.a);
        let z = s.splat_f32s(f32::NEG_INFINITY);
        let (mut c0, mut c1) = (z, z);
        let (a2, a1) = a.split_at(a.len() / 2 * 2);
        for x in a2.chunks_exact(2) {
            c0 = s.max_f32s(c0, x[0]);
            c1 = s.max_f32s(c1, x[1]);
        }
        for x in a1 {
            c0 = s.max_f32s(c0, *x);
        }
        let m = s.reduce_max_f32s(s.max_f32s(c0, c1));
        at.iter().fold(m, |m, &x| m.max(x))
    }
}

/// Run `f` compiled for the best instruction set of this CPU (see the module docs): loops
/// inside it, and `#[inline(always)]` helpers such as [`exp`], are vectorised for it.
#[inline(always)]
pub fn vectorize<R>(f: impl FnOnce() -> R) -> R {
    Arch::new().dispatch(f)
}

/// `y[i] += a · x[i]`.
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    vectorize(
        #[inline(always)]
        || {
            for (y, x) in y.iter_mut().zip(x) {
                *y += a * x;
            }
        },
    );
}

/// `x[i] = exp(x[i] − m)`, returning `Σ x[i]` after (the softmax numerator and denominator).
pub fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    vectorize(
        #[inline(always)]
        || {
            for v in x.iter_mut() {
                *v = exp(*v - m);
            }
        },
    );
    sum(x)
}

/// `x[i] *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    vectorize(
        #[inline(always)]
        || {
            for v in x.iter_mut() {
                *v *= s;
            }
        },
    );
}

/// `x[i] = x[i] · s + t`.
pub fn scale_shift(x: &mut [f32], s: f32, t: f32) {
    vectorize(
        #[inline(always)]
        || {
            for v in x.iter_mut() {
                *v = *v * s + t;
            }
        },
    );
}

/// `exp(x)` in f32, branch-free so that loops over it vectorise: Cody–Waite range reduction
/// `x = n·ln2 + r`, |r| ≤ ln2/2, and the Cephes `expf` minimax polynomial for `e^r` (about
/// 1 ulp on the reduced range, ≤ 2e-7 relative overall); `exp(x) = 0` below −87.3 (where f32
/// results would be subnormal) and `+∞` above 88.72; NaN stays NaN. `n` is rounded with the
/// 1.5·2²³ magic constant and `2ⁿ` assembled from its bits, so there is no float→int
/// conversion or `floor` call in the loop.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const HI: f32 = 88.722_84;
    const LO: f32 = -87.336_54;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the bits
    let xc = x.clamp(LO, HI);
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    // n ∈ [−126, 128] sits in the low mantissa bits of t; 2ⁿ = 2^h · 2^(n−h) keeps both
    // exponent fields in range.
    let ni = t.to_bits().wrapping_sub(0x4B40_0000) as i32;
    let h = ni >> 1;
    let s1 = f32::from_bits(((h + 127) as u32) << 23);
    let s2 = f32::from_bits(((ni - h + 127) as u32) << 23);
    let v = y * s1 * s2;
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// `erf(x)` in f32: the rational minimax approximation of Eigen/XLA (`generic_fast_erf_float`;
/// odd degree-13 numerator over even degree-8 denominator on [−4, 4], ±1 outside); absolute
/// error ≤ 5e-7 (checked against f64 `erf` in the tests). Branch-free, so it vectorises.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ((((((-2.726_142_3e-10 * x2 + 2.770_681_4e-8) * x2 - 2.101_024e-6) * x2
        - 5.692_506_4e-5)
        * x2
        - 7.349_906_3e-4)
        * x2
        - 2.954_6e-3)
        * x2
        - 1.609_603_3e-2)
        * x;
    let q = (((-1.456_607_2e-5 * x2 - 2.133_740_6e-4) * x2 - 1.682_827e-3) * x2 - 7.373_329e-3)
        * x2
        - 1.426_474e-2;
    p / q
}

/// `tanh(x)` in f32: `sign(x)·(1 − e)/(1 + e)` with `e = exp(−2|x|)` for |x| ≥ 0.4, and the
/// odd Taylor polynomial to degree 13 below, where that form would lose digits (relative
/// error ≤ 5e-7 overall). Branch-free, so it vectorises.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let e = exp(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    let a2 = a * a;
    let poly = ((((((21_844.0 / 6_081_075.0) * a2 - 1_382.0 / 155_925.0) * a2 + 62.0 / 2_835.0)
        * a2
        - 17.0 / 315.0)
        * a2
        + 2.0 / 15.0)
        * a2
        - 1.0 / 3.0)
        * a2
        * a
        + a;
    let r = if a < 0.4 { poly } else { t };
    if x.is_nan() {
        x
    } else if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16_conversion_is_exact_for_every_pattern() {
        for b in 0..=u16::MAX {
            let want = half::f16::from_bits(b).to_f32();
            let got = f16_bits_to_f32(b);
            assert!(
                want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                "{b:#06x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn fp16_dots_match_dots_of_the_decoded_rows() {
        for (k, rows) in [(1usize, 3usize), (15, 2), (16, 4), (37, 5), (1280, 7)] {
            let x: Vec<f32> = (0..k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let w: Vec<half::f16> = (0..k * rows)
                .map(|i| half::f16::from_f32(((i * 53 % 97) as f32 - 48.0) / 13.0))
                .collect();
            let bits: Vec<u16> = w.iter().map(|h| h.to_bits()).collect();
            let wf: Vec<f32> = w.iter().map(|h| h.to_f32()).collect();
            let mut want = vec![0.0f32; rows];
            dots(&x, &wf, k, &mut want, false);
            let mut got = vec![0.0f32; rows];
            dots_f16(&x, &bits, k, &mut got, false);
            assert_eq!(got, want, "k={k}: bit for bit");
            dots_f16(&x, &bits, k, &mut got, true);
            let twice: Vec<f32> = want.iter().map(|v| v + v).collect();
            assert_eq!(got, twice, "k={k}: accumulated");
        }
    }

    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.5 {
            let got = f64::from(exp(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_7;
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_and_tanh_are_accurate() {
        let mut x = -6.0f32;
        while x < 6.0 {
            let e = f64::from(erf(x));
            // Reference: the f64 series/continued fraction of the elementwise family.
            let want = f64::from(crate::cpu::kernels::elementwise::erf(x));
            assert!((e - want).abs() < 5e-7, "erf({x}) = {e}, want {want}");
            let t = f64::from(tanh(x));
            let tw = f64::from(x).tanh();
            assert!(
                (t - tw).abs() <= 5e-7 * tw.abs() + 1e-12,
                "tanh({x}) = {t}, want {tw}"
            );
            x += 0.000_37;
        }
    }

    #[test]
    fn reductions() {
        let a: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.11).cos()).collect();
        let d: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        assert!((f64::from(dot(&a, &b)) - d).abs() < 1e-4);
        let s: f64 = a.iter().map(|&x| f64::from(x)).sum();
        assert!((f64::from(sum(&a)) - s).abs() < 1e-4);
        let m = a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        assert_eq!(max(&a), m);
        let mean = (s / 1003.0) as f32;
        let v: f64 = a
            .iter()
            .map(|&x| (f64::from(x) - f64::from(mean)).powi(2))
            .sum();
        assert!((f64::from(sum_sq_dev(&a, mean)) - v).abs() < 1e-3);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }
}
