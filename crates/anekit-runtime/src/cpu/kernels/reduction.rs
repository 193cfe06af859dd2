//! Reductions: `reduce_{sum, mean, prod, max, min, sum_square, l1_norm, l2_norm, log_sum,
//! log_sum_exp}` over `axes` (none = all, negative allowed, `keep_dims`) and
//! `reduce_{argmax, argmin}` along one `axis`.
//!
//! The reduced axes are brought into an `[outer, reduced, inner]` view: without a copy when
//! they are consecutive (the usual case), else by moving them last. Sums accumulate in f64
//! (exact enough for any count a model can hold); `log_sum_exp` subtracts the maximum first.
//! Integer inputs give integer outputs as coremltools' numpy definitions do (`sum`/`prod`
//! wrap to int32, `mean` and the norms truncate toward zero); `argmax`/`argmin` return the
//! first index of the extreme value (a NaN counts as the extreme, as in numpy).

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::linalg::contiguous;
use super::normalization::par_elems;
use super::shape::norm_axis;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "reduce_argmax",
    "reduce_argmin",
    "reduce_l1_norm",
    "reduce_l2_norm",
    "reduce_log_sum",
    "reduce_log_sum_exp",
    "reduce_max",
    "reduce_mean",
    "reduce_min",
    "reduce_prod",
    "reduce_sum",
    "reduce_sum_square",
];

/// A reduction function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Σx
    Sum,
    /// Σx / n
    Mean,
    /// Πx
    Prod,
    /// max x
    Max,
    /// min x
    Min,
    /// Σx²
    SumSquare,
    /// Σ|x|
    L1,
    /// sqrt(Σx²)
    L2,
    /// ln Σx
    LogSum,
    /// ln Σ exp(x)
    LogSumExp,
}

impl Reduce {
    fn from_op(op: &str) -> Option<Self> {
        Some(match op {
            "reduce_sum" => Reduce::Sum,
            "reduce_mean" => Reduce::Mean,
            "reduce_prod" => Reduce::Prod,
            "reduce_max" => Reduce::Max,
            "reduce_min" => Reduce::Min,
            "reduce_sum_square" => Reduce::SumSquare,
            "reduce_l1_norm" => Reduce::L1,
            "reduce_l2_norm" => Reduce::L2,
            "reduce_log_sum" => Reduce::LogSum,
            "reduce_log_sum_exp" => Reduce::LogSumExp,
            _ => return None,
        })
    }
}

/// Reduce `len` values read by `get(j)` (j < len).
#[inline]
fn reduce_one(r: Reduce, len: usize, get: impl Fn(usize) -> f64) -> f64 {
    match r {
        Reduce::Max => (0..len).fold(f64::NEG_INFINITY, |m, j| {
            let v = get(j);
            if v > m || v.is_nan() || m.is_nan() {
                if m.is_nan() { m } else { v }
            } else {
                m
            }
        }),
        Reduce::Min => (0..len).fold(f64::INFINITY, |m, j| {
            let v = get(j);
            if v < m || v.is_nan() || m.is_nan() {
                if m.is_nan() { m } else { v }
            } else {
                m
            }
        }),
        Reduce::Prod => (0..len).map(&get).product(),
        Reduce::LogSumExp => {
            let m = (0..len).map(&get).fold(f64::NEG_INFINITY, |m, v| {
                if m.is_nan() || v.is_nan() {
                    f64::NAN
                } else {
                    m.max(v)
                }
            });
            if m.is_infinite() {
                return m;
            }
            let s: f64 = (0..len).map(|j| (get(j) - m).exp()).sum();
            m + s.ln()
        }
        _ => {
            let s: f64 = match r {
                Reduce::SumSquare | Reduce::L2 => (0..len).map(|j| get(j) * get(j)).sum(),
                Reduce::L1 => (0..len).map(|j| get(j).abs()).sum(),
                _ => (0..len).map(&get).sum(),
            };
            match r {
                Reduce::Mean => s / len as f64,
                Reduce::L2 => s.sqrt(),
                Reduce::LogSum => s.ln(),
                _ => s,
            }
        }
    }
}

/// The sum-based reductions of one contiguous row, in f64 like [`reduce_one`] but with 8
/// independent partial sums (vectorised; a single running sum is one dependent f64 add per
/// element, ~4 cycles each); `None` for the other reductions.
fn sum_row(r: Reduce, row: &[f32]) -> Option<f64> {
    #[inline(always)]
    fn sum8(row: &[f32], f: impl Fn(f64) -> f64) -> f64 {
        let mut acc = [0.0f64; 8];
        let chunks = row.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += f(f64::from(v));
            }
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for &v in rest {
            s += f(f64::from(v));
        }
        s
    }
    let s = super::simd::vectorize(
        #[inline(always)]
        || match r {
            Reduce::Sum | Reduce::Mean | Reduce::LogSum => Some(sum8(row, |v| v)),
            Reduce::SumSquare | Reduce::L2 => Some(sum8(row, |v| v * v)),
            Reduce::L1 => Some(sum8(row, f64::abs)),
            _ => None,
        },
    )?;
    Some(match r {
        Reduce::Mean => s / row.len() as f64,
        Reduce::L2 => s.sqrt(),
        Reduce::LogSum => s.ln(),
        _ => s,
    })
}

/// `[outer, reduced, inner]` sizes of `shape` for sorted, deduplicated `axes`, if those are
/// consecutive.
fn split3(shape: &[usize], axes: &[usize]) -> Option<(usize, usize, usize)> {
    let (&first, &last) = (axes.first()?, axes.last()?);
    if last - first + 1 != axes.len() {
        return None;
    }
    Some((
        shape[..first].iter().product(),
        shape[first..=last].iter().product(),
        shape[last + 1..].iter().product(),
    ))
}

/// `data` arranged as `[outer, reduced, inner]` for sorted, deduplicated `axes`: borrowed
/// when the axes are consecutive, else copied with the reduced axes moved last.
fn arrange<'a, T: Copy>(
    data: &'a [T],
    shape: &[usize],
    axes: &[usize],
) -> (Cow<'a, [T]>, usize, usize, usize) {
    if axes.is_empty() {
        return (Cow::Borrowed(data), data.len(), 1, 1);
    }
    if let Some((o, r, i)) = split3(shape, axes) {
        return (Cow::Borrowed(data), o, r, i);
    }
    let mut perm: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    perm.extend(axes);
    let moved: Vec<T> = ndarray::ArrayViewD::from_shape(IxDyn(shape), data)
        .map(|v| v.permuted_axes(IxDyn(&perm)).iter().copied().collect())
        .unwrap_or_default();
    let red: usize = axes.iter().map(|&a| shape[a]).product();
    let outer: usize = perm[..perm.len() - axes.len()]
        .iter()
        .map(|&a| shape[a])
        .product();
    (Cow::Owned(moved), outer, red, 1)
}

/// Reduce `data` (shape `shape`) over sorted, deduplicated `axes`; returns the values in
/// row-major order of the kept axes.
pub fn reduce_f64(data: &[f64], shape: &[usize], axes: &[usize], r: Reduce) -> Vec<f64> {
    let (data, outer, red, inner) = arrange(data, shape, axes);
    let mut out = vec![0.0f64; outer * inner];
    let run = |o: usize, dst: &mut [f64]| {
        let base = o * red * inner;
        for (i, d) in dst.iter_mut().enumerate() {
            *d = reduce_one(r, red, |j| data[base + j * inner + i]);
        }
    };
    if inner > 0 {
        if par_elems(data.len()) && outer > 1 {
            out.par_chunks_mut(inner)
                .enumerate()
                .for_each(|(o, d)| run(o, d));
        } else {
            for (o, d) in out.chunks_mut(inner).enumerate() {
                run(o, d);
            }
        }
    }
    out
}

fn out_shape(shape: &[usize], axes: &[usize], keep: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&i), keep) {
            (true, true) => Some(1),
            (true, false) => None,
            (false, _) => Some(d),
        })
        .collect()
}

/// The f32 fast path: consecutive axes, no copy, f64 accumulation per output element.
fn reduce_f32(x: &ArrayD<f32>, axes: &[usize], r: Reduce) -> Vec<f32> {
    let shape = x.shape();
    let data = contiguous(x);
    match split3(shape, axes) {
        Some((outer, red, inner)) => {
            let mut out = vec![0.0f32; outer * inner];
            let run = |o: usize, dst: &mut [f32]| {
                let base = o * red * inner;
                if inner == 1 {
                    let row = &data[base..base + red];
                    dst[0] = match sum_row(r, row) {
                        Some(v) => v as f32,
                        None => reduce_one(r, red, |j| f64::from(row[j])) as f32,
                    };
                } else {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = reduce_one(r, red, |j| f64::from(data[base + j * inner + i])) as f32;
                    }
                }
            };
            if inner > 0 {
                if par_elems(data.len()) && outer > 1 {
                    out.par_chunks_mut(inner)
                        .enumerate()
                        .for_each(|(o, d)| run(o, d));
                } else {
                    for (o, d) in out.chunks_mut(inner).enumerate() {
                        run(o, d);
                    }
                }
            }
            out
        }
        None => {
            let d64: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
            reduce_f64(&d64, shape, axes, r)
                .into_iter()
                .map(|v| v as f32)
                .collect()
        }
    }
}

fn reduce_axes(args: &Args<'_>, r: Reduce, axes: &Option<Vec<i64>>) -> Result<Vec<Value>, String> {
    let x = args.req("x")?;
    let keep = args.bool_or("keep_dims", false)?;
    let shape = x.shape().to_vec();
    let rank = shape.len();
    let mut ax: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(v) => v
            .iter()
            .map(|&a| norm_axis(a, rank, "axis"))
            .collect::<Result<_, _>>()?,
    };
    ax.sort_unstable();
    ax.dedup();
    let oshape = out_shape(&shape, &ax, keep);
    let out = match x {
        Value::F32(a) => Value::F32(
            ArrayD::from_shape_vec(IxDyn(&oshape), reduce_f32(a, &ax, r))
                .map_err(|e| e.to_string())?,
        ),
        Value::I32(a) => {
            let vals: Vec<i32> = if r == Reduce::Prod {
                // Exact wrapping product.
                let d: Vec<i64> = a.iter().map(|&v| i64::from(v)).collect();
                let (d, outer, red, inner) = arrange(&d, &shape, &ax);
                let mut out = Vec::with_capacity(outer * inner);
                for o in 0..outer {
                    for i in 0..inner {
                        let p = (0..red)
                            .fold(1i64, |p, j| p.wrapping_mul(d[(o * red + j) * inner + i]));
                        out.push(p as i32);
                    }
                }
                out
            } else {
                let d: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
                reduce_f64(&d, &shape, &ax, r)
                    .into_iter()
                    .map(|v| {
                        if v.is_nan() {
                            0
                        } else {
                            // numpy astype(int32): truncate toward zero, wrap.
                            (v.trunc() as i64) as i32
                        }
                    })
                    .collect()
            };
            Value::I32(ArrayD::from_shape_vec(IxDyn(&oshape), vals).map_err(|e| e.to_string())?)
        }
        v => {
            return Err(format!(
                "x: expected a numeric tensor, got {}",
                v.describe()
            ));
        }
    };
    Ok(vec![out])
}

fn arg_reduce(args: &Args<'_>, max: bool) -> Result<Vec<Value>, String> {
    let x = args.req("x")?;
    let keep = args.bool_or("keep_dims", false)?;
    let shape = x.shape().to_vec();
    if shape.is_empty() {
        return Err("x must have rank >= 1".into());
    }
    let ax = norm_axis(args.i64_or("axis", -1)?, shape.len(), "axis")?;
    let (outer, red, inner) = (
        shape[..ax].iter().product::<usize>(),
        shape[ax],
        shape[ax + 1..].iter().product::<usize>(),
    );
    if red == 0 {
        return Err(format!(
            "cannot take an arg-{} over an empty axis",
            if max { "max" } else { "min" }
        ));
    }
    let data: Vec<f64> = match x {
        Value::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
        Value::I32(a) => a.iter().map(|&v| f64::from(v)).collect(),
        v => {
            return Err(format!(
                "x: expected a numeric tensor, got {}",
                v.describe()
            ));
        }
    };
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| data[(o * red + j) * inner + i];
            let mut best = 0usize;
            let mut bv = at(0);
            if !bv.is_nan() {
                for j in 1..red {
                    let v = at(j);
                    if v.is_nan() {
                        best = j;
                        break;
                    }
                    if (max && v > bv) || (!max && v < bv) {
                        best = j;
                        bv = v;
                    }
                }
            }
            out.push(i32::try_from(best).map_err(|_| "index does not fit int32")?);
        }
    }
    let oshape = out_shape(&shape, &[ax], keep);
    Ok(vec![Value::I32(
        ArrayD::from_shape_vec(IxDyn(&oshape), out).map_err(|e| e.to_string())?,
    )])
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let op = ctx.op_type();
    if op == "reduce_argmax" || op == "reduce_argmin" {
        let max = op == "reduce_argmax";
        if let Some(v) = ctx.constant("output_dtype") {
            match v.as_str() {
                Ok("int32" | "uint16") => {}
                Ok(d) => return Some(Err(format!("output_dtype {d:?} is not int32 or uint16"))),
                Err(e) => return Some(Err(format!("output_dtype: {e}"))),
            }
        }
        return Some(Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
            arg_reduce(a, max)
        })));
    }
    let r = Reduce::from_op(op)?;
    let axes = match ctx.constant("axes") {
        Some(v) => match v.to_i64s() {
            Ok(v) => Some(v),
            Err(e) => return Some(Err(format!("axes: {e}"))),
        },
        None if ctx.has("axes") => return Some(Err("axes must be a constant".into())),
        None => None,
    };
    Some(Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        reduce_axes(a, r, &axes)
    })))
}
