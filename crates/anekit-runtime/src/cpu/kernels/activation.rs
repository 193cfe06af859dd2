//! Activations and softmax.
//!
//! Element-wise activations write a fresh output in one pass, vectorised for the CPU's
//! instruction set ([`simd::vectorize`]) and split over the threads for large tensors;
//! `exp`, `erf` and `tanh` are the branch-free f32 approximations of [`simd`] (≤ 3e-7
//! relative error for `exp`/`tanh`, ≤ 5e-7 absolute for `erf`), not libm calls, so GELU and
//! sigmoid run at memory speed.
//!
//! # Softmax numerics
//!
//! `softmax(x)ᵢ = exp(xᵢ − m) / Σⱼ exp(xⱼ − m)` with `m = max x`: subtracting the maximum
//! makes every exponent ≤ 0, so nothing overflows (logits of 1e4 are fine) and the largest
//! term is exactly 1, so the denominator is ≥ 1 and never underflows to 0. The sum is a
//! SIMD reduction with several accumulators in f32 (each partial sum covers `n / lanes`
//! terms, all positive, so there is no cancellation), then one multiply by its reciprocal.
//! A row of all −∞ (fully masked) gives NaN, as the reference definitions do.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::linalg::contiguous;
use super::normalization::par_elems;
use super::shape::norm_axis;
use super::simd;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "relu",
    "relu6",
    "gelu",
    "sigmoid",
    "silu",
    "softmax",
    "elu",
    "leaky_relu",
    "softplus",
    "softsign",
    "sigmoid_hard",
    "clamped_relu",
    "linear_activation",
    "scaled_tanh",
    "thresholded_relu",
    "prelu",
    "softplus_parametric",
];

/// `out[i] = f(x[i])`, vectorised, in parallel when large.
pub fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync + Send + Copy) -> Vec<f32> {
    let mut out = crate::cpu::buffers::take(x.len());
    let run = |o: &mut [f32], i: &[f32]| {
        simd::vectorize(
            #[inline(always)]
            || {
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = f(v);
                }
            },
        );
    };
    if par_elems(x.len()) {
        let chunk = 16_384;
        out.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .for_each(|(o, i)| run(o, i));
    } else {
        run(&mut out, x);
    }
    out
}

fn unary(
    args: &Args<'_>,
    f: impl Fn(f32) -> f32 + Sync + Send + Copy,
) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let out = map(&contiguous(x), f);
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(x.shape()), out).map_err(|e| e.to_string())?,
    )])
}

/// The logistic function.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + simd::exp(-x))
}

/// GELU, exact form `x·Φ(x) = ½x(1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu_exact(x: f32) -> f32 {
    0.5 * x * (1.0 + simd::erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU, tanh approximation.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/π)
    0.5 * x * (1.0 + simd::tanh(C * (x + 0.044_715 * x * x * x)))
}

/// Softmax along the middle axis of a row-major `[outer, len, inner]` tensor.
pub fn softmax_3d(x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    if len == 0 || inner == 0 || outer == 0 {
        return out;
    }
    if inner == 1 {
        let row = |r: &mut [f32]| {
            let m = simd::max(r);
            let s = simd::exp_sub_sum(r, m);
            simd::scale(r, 1.0 / s);
        };
        if par_elems(out.len()) {
            let per = (4096 / len).max(1);
            out.par_chunks_mut(len * per)
                .for_each(|c| c.chunks_exact_mut(len).for_each(row));
        } else {
            out.chunks_exact_mut(len).for_each(row);
        }
        return out;
    }
    // Softmax across rows of a [len, inner] block: column-wise max, exp, sum, scale.
    let block = |b: &mut [f32]| {
        let mut m = vec![f32::NEG_INFINITY; inner];
        let mut s = vec![0.0f32; inner];
        simd::vectorize(
            #[inline(always)]
            || {
                for row in b.chunks_exact(inner) {
                    for (m, &v) in m.iter_mut().zip(row) {
                        *m = if v > *m || v.is_nan() { v } else { *m };
                    }
                }
                for row in b.chunks_exact_mut(inner) {
                    for ((v, &m), s) in row.iter_mut().zip(&m).zip(s.iter_mut()) {
                        *v = simd::exp(*v - m);
                        *s += *v;
                    }
                }
                for v in s.iter_mut() {
                    *v = 1.0 / *v;
                }
                for row in b.chunks_exact_mut(inner) {
                    for (v, &r) in row.iter_mut().zip(&s) {
                        *v *= r;
                    }
                }
            },
        );
    };
    if par_elems(out.len()) && outer > 1 {
        out.par_chunks_mut(len * inner).for_each(block);
    } else {
        out.chunks_mut(len * inner).for_each(block);
    }
    out
}

/// Softmax of `x` along axis `ax` (max-subtracted; see the module docs).
pub fn softmax(x: &ArrayD<f32>, ax: usize) -> ArrayD<f32> {
    let shape = x.shape();
    let outer: usize = shape[..ax].iter().product();
    let len = shape[ax];
    let inner: usize = shape[ax + 1..].iter().product();
    let out = softmax_3d(&contiguous(x), outer, len, inner);
    ArrayD::from_shape_vec(IxDyn(shape), out).unwrap_or_else(|_| x.clone())
}

/// `f(x, [p₀, p₁])` over `[N, C, ...]` with up to two per-channel parameters.
fn per_channel(
    args: &Args<'_>,
    params: &[&str],
    f: impl Fn(f32, [f32; 2]) -> f32 + Sync + Send + Copy,
) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let xs = x.shape();
    if xs.len() < 2 {
        return Err(format!("x must be [N, C, ...], got shape {xs:?}"));
    }
    let c = xs[1];
    let vals: Vec<Vec<f32>> = params
        .iter()
        .map(|p| {
            let a = args.f32(p)?;
            if a.len() != c {
                return Err(format!(
                    "{p} has {} values for {c} channels of x {xs:?}",
                    a.len()
                ));
            }
            Ok(contiguous(a).into_owned())
        })
        .collect::<Result<_, String>>()?;
    let plane: usize = xs[2..].iter().product();
    let xd = contiguous(x);
    let mut out = crate::cpu::buffers::take(xd.len());
    if plane > 0 {
        let run = |(i, (o, xi)): (usize, (&mut [f32], &[f32]))| {
            let ch = i % c;
            let mut p = [0.0f32; 2];
            for (p, v) in p.iter_mut().zip(&vals) {
                *p = v[ch];
            }
            simd::vectorize(
                #[inline(always)]
                || {
                    for (o, &v) in o.iter_mut().zip(xi) {
                        *o = f(v, p);
                    }
                },
            );
        };
        if par_elems(xd.len()) {
            out.par_chunks_mut(plane)
                .zip(xd.par_chunks(plane))
                .enumerate()
                .for_each(run);
        } else {
            out.chunks_mut(plane)
                .zip(xd.chunks(plane))
                .enumerate()
                .for_each(run);
        }
    }
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(xs), out).map_err(|e| e.to_string())?,
    )])
}

/// `ln(1 + eˣ)` without overflow.
#[inline]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k: Box<dyn Kernel> = match ctx.op_type() {
        "relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            unary(a, |x| if x > 0.0 || x.is_nan() { x } else { 0.0 })
        }),
        "relu6" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x.clamp(0.0, 6.0))),
        "sigmoid" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, sigmoid)),
        "silu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x * sigmoid(x))),
        "softsign" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x / (1.0 + x.abs()))),
        "softplus" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, softplus)),
        "gelu" => {
            let mode = match ctx.constant("mode") {
                Some(v) => match v.as_str() {
                    Ok(s) => s.to_string(),
                    Err(e) => return Some(Err(e)),
                },
                None if ctx.has("mode") => return Some(Err("mode must be a constant".into())),
                None => "EXACT".to_string(),
            };
            match mode.as_str() {
                "EXACT" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, gelu_exact)),
                "TANH_APPROXIMATION" => {
                    kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, gelu_tanh))
                }
                "SIGMOID_APPROXIMATION" => {
                    kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x * sigmoid(1.702 * x)))
                }
                m => return Some(Err(format!("unknown gelu mode {m:?}"))),
            }
        }
        "softmax" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let x = a.f32("x")?;
            if x.ndim() == 0 {
                return Err("softmax of a scalar".into());
            }
            let ax = norm_axis(a.i64_or("axis", -1)?, x.ndim(), "axis")?;
            Ok(vec![Value::F32(softmax(x, ax))])
        }),
        "elu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let al = a.f32_or("alpha", 1.0)?;
            unary(a, move |x| if x > 0.0 { x } else { al * x.exp_m1() })
        }),
        "leaky_relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let al = a.f32_or("alpha", 0.01)?;
            unary(a, move |x| if x >= 0.0 { x } else { al * x })
        }),
        "sigmoid_hard" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 0.2)?, a.f32_or("beta", 0.5)?);
            unary(a, move |x| (al * x + be).clamp(0.0, 1.0))
        }),
        "clamped_relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 0.0)?, a.f32_or("beta", 6.0)?);
            unary(a, move |x| {
                if x >= 0.0 {
                    x.min(be)
                } else {
                    (al * x).min(be)
                }
            })
        }),
        "linear_activation" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 1.0)?, a.f32_or("beta", 0.0)?);
            unary(a, move |x| al * x + be)
        }),
        "scaled_tanh" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 1.0)?, a.f32_or("beta", 1.0)?);
            unary(a, move |x| al * simd::tanh(be * x))
        }),
        "thresholded_relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let al = a.f32_or("alpha", 1.0)?;
            unary(a, move |x| if x >= al { x } else { 0.0 })
        }),
        "prelu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            // max(x, 0) + min(x, 0)·α (coremltools' definition).
            per_channel(a, &["alpha"], |x, p| x.max(0.0) + x.min(0.0) * p[0])
        }),
        "softplus_parametric" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            per_channel(a, &["alpha", "beta"], |x, p| p[0] * softplus(p[1] * x))
        }),
        _ => return None,
    };
    Some(Ok(k))
}
