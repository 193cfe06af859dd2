//! Random sampling: `random_bernoulli`, `random_categorical`, `random_normal`,
//! `random_uniform` (coremltools `ops/defs/iOS15/random.py`).
//!
//! The distributions, parameters and defaults are coremltools' (`prob` 0.5; `mean` 0,
//! `stddev` 1; `low` 0, `high` 1 — uniform over `[low, high)`; `random_categorical` draws
//! `size` (1) class indices per distribution over the last axis of `x`, read as logits by
//! default or as probabilities with `mode="probs"`, and returns them as floats of `x`'s type).
//!
//! The values are **not** bit-identical to Core ML's: Apple does not document its generator.
//! This backend uses SplitMix64 (Steele, Lea, Flood 2014): with a `seed` other than the
//! default `-1` every prediction draws the same values (a fixed seed is reproducible across
//! invocations); with `-1` each prediction draws fresh values. Normal samples use the
//! Box–Muller transform. The tests check distribution statistics and determinism, not values.

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayD, IxDyn};

use super::util::{checked_product, const_f32_opt, const_i64, const_str, try_zeros};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "random_bernoulli",
    "random_categorical",
    "random_normal",
    "random_uniform",
];

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn new(seed: i64) -> Self {
        if seed == -1 {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            Rng(t ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03))
        } else {
            Rng(seed as u64)
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The output shape from the `shape` argument.
fn out_shape(a: &Args<'_>) -> Result<Vec<usize>, String> {
    let s = a.i64s("shape")?;
    if a.req("shape")?.shape().len() > 1 {
        return Err(format!(
            "shape must be a 1-D tensor, got shape {:?}",
            a.req("shape")?.shape()
        ));
    }
    s.iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("shape has a negative dimension {d}")))
        .collect()
}

fn fill(shape: &[usize], mut f: impl FnMut() -> f32) -> Result<Vec<Value>, String> {
    let n = checked_product(shape, "the output")?;
    let mut v = try_zeros::<f32>(n)?;
    v.iter_mut().for_each(|x| *x = f());
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| e.to_string())?,
    )])
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k = match ctx.op_type() {
        "random_bernoulli" => bernoulli(ctx),
        "random_normal" => normal(ctx),
        "random_uniform" => uniform(ctx),
        "random_categorical" => categorical(ctx),
        _ => return None,
    };
    Some(k)
}

fn param(ctx: &OpCtx<'_>, p: &str, default: f32) -> Result<f32, String> {
    Ok(const_f32_opt(ctx, p)?.unwrap_or(default))
}

fn bernoulli(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let p = f64::from(param(ctx, "prob", 0.5)?);
    let seed = const_i64(ctx, "seed", -1)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let shape = out_shape(a)?;
        let mut rng = Rng::new(seed);
        fill(&shape, || if rng.unit() < p { 1.0 } else { 0.0 })
    }))
}

fn normal(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let mean = f64::from(param(ctx, "mean", 0.0)?);
    let sd = f64::from(param(ctx, "stddev", 1.0)?);
    let seed = const_i64(ctx, "seed", -1)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let shape = out_shape(a)?;
        let mut rng = Rng::new(seed);
        fill(&shape, || (mean + sd * rng.normal()) as f32)
    }))
}

fn uniform(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let low = param(ctx, "low", 0.0)?;
    let high = param(ctx, "high", 1.0)?;
    let seed = const_i64(ctx, "seed", -1)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let shape = out_shape(a)?;
        let mut rng = Rng::new(seed);
        let (lo, span) = (f64::from(low), f64::from(high) - f64::from(low));
        fill(&shape, || {
            let v = (lo + span * rng.unit()) as f32;
            // Rounding to f32 can reach `high`; keep the interval half-open.
            if v >= high && high > low {
                low.max(high.next_down())
            } else {
                v
            }
        })
    }))
}

fn categorical(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let probs = match const_str(ctx, "mode", "logits")?.as_str() {
        "logits" => false,
        "probs" => true,
        m => return Err(format!("mode {m:?} is not logits or probs")),
    };
    let size = usize::try_from(const_i64(ctx, "size", 1)?)
        .map_err(|_| "size must not be negative".to_string())?;
    let seed = const_i64(ctx, "seed", -1)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let shape = x.shape();
        let k = *shape.last().ok_or("x must have rank >= 1")?;
        let mut oshape = shape.to_vec();
        if let Some(l) = oshape.last_mut() {
            *l = size;
        }
        let rows = checked_product(&shape[..shape.len() - 1], "x")?;
        let n = checked_product(&oshape, "the output")?;
        let mut out = try_zeros::<f32>(n)?;
        if k == 0 && size > 0 && rows > 0 {
            return Err("x has no categories (last dimension is 0)".into());
        }
        let xs = super::linalg::contiguous(x);
        let mut rng = Rng::new(seed);
        let mut cdf = vec![0.0f64; k];
        for r in 0..rows {
            let row = &xs[r * k..(r + 1) * k];
            // Unnormalized weights: exp(logit - max), or the probabilities themselves.
            let mut acc = 0.0;
            if probs {
                for (c, &p) in cdf.iter_mut().zip(row) {
                    acc += f64::from(p).max(0.0);
                    *c = acc;
                }
            } else {
                let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                for (c, &l) in cdf.iter_mut().zip(row) {
                    acc += f64::from(l - m).exp();
                    *c = acc;
                }
            }
            if !(acc > 0.0 && acc.is_finite()) {
                return Err(format!(
                    "distribution {r} has no positive finite probability mass"
                ));
            }
            for o in &mut out[r * size..(r + 1) * size] {
                let u = rng.unit() * acc;
                let idx = cdf.partition_point(|&c| c <= u).min(k - 1);
                *o = idx as f32;
            }
        }
        Ok(vec![Value::F32(
            ArrayD::from_shape_vec(IxDyn(&oshape), out).map_err(|e| e.to_string())?,
        )])
    }))
}
