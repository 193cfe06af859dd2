//! Normalization: `batch_norm`, `instance_norm`, `layer_norm`, `l2_norm`,
//! `local_response_norm`.
//!
//! # Numerics
//!
//! Statistics are computed in f32 with **two passes** over each normalised group: the mean
//! first, then the variance as the mean of squared deviations from it, `Σ(x − μ)²/n`
//! (biased, as PyTorch and coremltools compute it). The one-pass `E[x²] − E[x]²` form is
//! not used: it cancels catastrophically when |μ| ≫ σ (a layer whose activations share a
//! large offset) and can even go negative. Both passes are SIMD reductions with several
//! vector accumulators (see [`super::simd`]), so each f32 partial sum covers only
//! `n / lanes` terms; for the group sizes of real models (≤ 10⁵) the relative error of the
//! statistics stays around 1e-6, well inside the 1e-4 the fixtures allow. The group is read
//! twice (it is usually in L1/L2 by then), which costs less than Welford's division per
//! element. `1/sqrt(var + ε)` is computed once per group and the output is one fused
//! `(x − μ)·(γ·rstd) + β` pass.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::linalg::contiguous;
use super::shape::norm_axis;
use super::simd;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "batch_norm",
    "instance_norm",
    "layer_norm",
    "l2_norm",
    "local_response_norm",
];

/// Elements above which memory-bound loops run on every thread.
pub const PAR_ELEMS: usize = 1 << 16;

/// Whether a memory-bound loop over `n` elements should be split over the threads.
pub fn par_elems(n: usize) -> bool {
    n >= PAR_ELEMS && super::threads() > 1
}

/// Apply `f(group index, input group, output group)` to consecutive groups of `len`
/// elements, in parallel when large.
fn for_groups(
    x: &[f32],
    out: &mut [f32],
    len: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send,
) {
    if len == 0 {
        return;
    }
    if par_elems(x.len()) {
        // A few groups per task so that tiny groups do not cost a task each.
        let per = (8192 / len).max(1);
        out.par_chunks_mut(len * per)
            .zip(x.par_chunks(len * per))
            .enumerate()
            .for_each(|(t, (o, i))| {
                for (j, (o, i)) in o.chunks_mut(len).zip(i.chunks(len)).enumerate() {
                    f(t * per + j, i, o);
                }
            });
    } else {
        for (j, (o, i)) in out.chunks_mut(len).zip(x.chunks(len)).enumerate() {
            f(j, i, o);
        }
    }
}

/// Mean and `1/sqrt(var + eps)` of one group (two passes; see the module docs).
#[inline]
pub fn mean_rstd(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len().max(1) as f32;
    let mean = simd::sum(x) / n;
    let var = simd::sum_sq_dev(x, mean) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `out = (x − mean)·rstd·γ + β` for one group, γ/β per element (or absent).
#[inline]
fn normalize_row(
    x: &[f32],
    out: &mut [f32],
    mean: f32,
    rstd: f32,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
) {
    simd::vectorize(
        #[inline(always)]
        || match (gamma, beta) {
            (Some(g), Some(b)) => {
                for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(g).zip(b) {
                    *o = (v - mean) * (rstd * g) + b;
                }
            }
            (Some(g), None) => {
                for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
                    *o = (v - mean) * (rstd * g);
                }
            }
            (None, Some(b)) => {
                for ((o, &v), &b) in out.iter_mut().zip(x).zip(b) {
                    *o = (v - mean) * rstd + b;
                }
            }
            (None, None) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = (v - mean) * rstd;
                }
            }
        },
    );
}

/// Layer normalisation of consecutive rows of `len` elements.
pub fn layer_norm_rows(
    x: &[f32],
    len: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
) -> Vec<f32> {
    let mut out = crate::cpu::buffers::take(x.len());
    for_groups(x, &mut out, len, |_, i, o| {
        let (m, r) = mean_rstd(i, eps);
        normalize_row(i, o, m, r, gamma, beta);
    });
    out
}

fn opt_vec<'a>(args: &Args<'a>, name: &str, len: usize) -> Result<Option<Cow<'a, [f32]>>, String> {
    match args.get(name) {
        None => Ok(None),
        Some(v) => {
            let a = v.f32().map_err(|e| format!("{name}: {e}"))?;
            if a.len() != len {
                return Err(format!(
                    "{name} has shape {:?} ({} values), expected {len} values",
                    a.shape(),
                    a.len()
                ));
            }
            Ok(Some(contiguous(a)))
        }
    }
}

fn out_value(shape: &[usize], data: Vec<f32>) -> Result<Vec<Value>, String> {
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| e.to_string())?,
    )])
}

fn layer_norm(args: &Args<'_>, axes: &Option<Vec<i64>>) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let rank = x.ndim();
    let eps = args.f32_or("epsilon", 1e-5)?;
    let mut ax: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(v) => v
            .iter()
            .map(|&a| norm_axis(a, rank, "axis"))
            .collect::<Result<_, _>>()?,
    };
    ax.sort_unstable();
    ax.dedup();
    let len: usize = ax.iter().map(|&a| x.shape()[a]).product();
    let gamma = opt_vec(args, "gamma", len)?;
    let beta = opt_vec(args, "beta", len)?;
    let trailing = ax
        .iter()
        .enumerate()
        .all(|(i, &a)| a == rank - ax.len() + i);
    if trailing {
        let out = layer_norm_rows(&contiguous(x), len, gamma.as_deref(), beta.as_deref(), eps);
        return out_value(x.shape(), out);
    }
    // Other axes: move the normalised axes last (in order), normalise rows, move back.
    let mut perm: Vec<usize> = (0..rank).filter(|a| !ax.contains(a)).collect();
    perm.extend(&ax);
    let moved = x.view().permuted_axes(IxDyn(&perm));
    let moved_shape = moved.shape().to_vec();
    let data: Vec<f32> = moved.iter().copied().collect();
    let out = layer_norm_rows(&data, len, gamma.as_deref(), beta.as_deref(), eps);
    let arr = ArrayD::from_shape_vec(IxDyn(&moved_shape), out).map_err(|e| e.to_string())?;
    let mut inv = vec![0usize; rank];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let back = arr.permuted_axes(IxDyn(&inv));
    Ok(vec![Value::F32(back.as_standard_layout().into_owned())])
}

fn channel_dims(xs: &[usize], what: &str) -> Result<(usize, usize, usize), String> {
    if xs.len() < 2 {
        return Err(format!("{what}: x must be [N, C, ...], got shape {xs:?}"));
    }
    let plane: usize = xs[2..].iter().product();
    Ok((xs[0], xs[1], plane))
}

fn batch_norm(args: &Args<'_>) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let (_, c, plane) = channel_dims(x.shape(), "batch_norm")?;
    let eps = args.f32_or("epsilon", 1e-5)?;
    let mean = opt_vec(args, "mean", c)?.ok_or("mean is required")?;
    let var = opt_vec(args, "variance", c)?.ok_or("variance is required")?;
    let gamma = opt_vec(args, "gamma", c)?;
    let beta = opt_vec(args, "beta", c)?;
    // y = x·scale + shift per channel.
    let scale: Vec<f32> = (0..c)
        .map(|i| gamma.as_ref().map_or(1.0, |g| g[i]) / (var[i] + eps).sqrt())
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|i| beta.as_ref().map_or(0.0, |b| b[i]) - mean[i] * scale[i])
        .collect();
    let xd = contiguous(x);
    let mut out = crate::cpu::buffers::take(xd.len());
    for_groups(&xd, &mut out, plane, |i, x, o| {
        let (s, t) = (scale[i % c], shift[i % c]);
        simd::vectorize(
            #[inline(always)]
            || {
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = v * s + t;
                }
            },
        );
    });
    out_value(x.shape(), out)
}

fn instance_norm(args: &Args<'_>) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let (_, c, plane) = channel_dims(x.shape(), "instance_norm")?;
    let eps = args.f32_or("epsilon", 1e-5)?;
    let gamma = opt_vec(args, "gamma", c)?;
    let beta = opt_vec(args, "beta", c)?;
    let xd = contiguous(x);
    let mut out = crate::cpu::buffers::take(xd.len());
    for_groups(&xd, &mut out, plane, |i, x, o| {
        let (m, r) = mean_rstd(x, eps);
        let g = gamma.as_ref().map_or(1.0, |g| g[i % c]);
        let b = beta.as_ref().map_or(0.0, |b| b[i % c]);
        let s = r * g;
        simd::vectorize(
            #[inline(always)]
            || {
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = (v - m) * s + b;
                }
            },
        );
    });
    out_value(x.shape(), out)
}

fn l2_norm(args: &Args<'_>) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let xs = x.shape();
    if xs.len() < 3 {
        return Err(format!("l2_norm: x must have rank >= 3, got shape {xs:?}"));
    }
    let eps = args.f32_or("epsilon", 1e-6)?;
    let len: usize = xs[xs.len() - 3..].iter().product();
    let xd = contiguous(x);
    let mut out = crate::cpu::buffers::take(xd.len());
    for_groups(&xd, &mut out, len, |_, x, o| {
        let ss = simd::dot(x, x);
        let r = 1.0 / (ss + eps).sqrt();
        o.copy_from_slice(x);
        simd::scale(o, r);
    });
    out_value(xs, out)
}

fn local_response_norm(args: &Args<'_>) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let xs = x.shape();
    // The channel axis is −3: [C, H, W] for rank 3 (coremltools' own test of the Core ML
    // runtime expects that), [N, C, ...] from rank 4.
    let (n, c, plane) = match xs.len() {
        0..=2 => {
            return Err(format!(
                "local_response_norm: x must have rank >= 3, got shape {xs:?}"
            ));
        }
        3 => (1, xs[0], xs[1] * xs[2]),
        _ => channel_dims(xs, "local_response_norm")?,
    };
    let size = args.i64_or("size", 0)?;
    if !(1..=1 << 20).contains(&size) {
        return Err(format!("size must be a positive integer, got {size}"));
    }
    let size = size as usize;
    let alpha = args.f32_or("alpha", 1e-4)?;
    let beta = args.f32_or("beta", 0.75)?;
    let k = args.f32_or("k", 1.0)?;
    let xd = contiguous(x);
    let mut out = crate::cpu::buffers::take(xd.len());
    // PyTorch's window: channels c − size/2 ..= c + (size − 1)/2, divided by size.
    let (lo, hi) = (size / 2, (size - 1) / 2);
    let per_batch = c * plane;
    let run = |b: usize, o: &mut [f32]| {
        let xb = &xd[b * per_batch..(b + 1) * per_batch];
        let mut acc = vec![0.0f32; plane];
        for ch in 0..c {
            acc.fill(0.0);
            let j0 = ch.saturating_sub(lo);
            let j1 = (ch + hi).min(c - 1);
            for j in j0..=j1 {
                let xj = &xb[j * plane..(j + 1) * plane];
                for (a, &v) in acc.iter_mut().zip(xj) {
                    *a += v * v;
                }
            }
            let xo = &xb[ch * plane..(ch + 1) * plane];
            let oo = &mut o[ch * plane..(ch + 1) * plane];
            for ((o, &v), &a) in oo.iter_mut().zip(xo).zip(&acc) {
                *o = v / (k + alpha / size as f32 * a).powf(beta);
            }
        }
    };
    if per_batch > 0 {
        if par_elems(xd.len().saturating_mul(size)) {
            out.par_chunks_mut(per_batch)
                .enumerate()
                .for_each(|(b, o)| run(b, o));
        } else {
            for (b, o) in out.chunks_mut(per_batch).enumerate().take(n) {
                run(b, o);
            }
        }
    }
    out_value(x.shape(), out)
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k: Box<dyn Kernel> = match ctx.op_type() {
        "batch_norm" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| batch_norm(a)),
        "instance_norm" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| instance_norm(a)),
        "l2_norm" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| l2_norm(a)),
        "local_response_norm" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| local_response_norm(a)),
        "layer_norm" => {
            let axes = match ctx.constant("axes") {
                Some(v) => match v.to_i64s() {
                    Ok(v) => Some(v),
                    Err(e) => return Some(Err(format!("axes: {e}"))),
                },
                None if ctx.has("axes") => return Some(Err("axes must be a constant".into())),
                None => None,
            };
            kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| layer_norm(a, &axes))
        }
        _ => return None,
    };
    Some(Ok(k))
}
