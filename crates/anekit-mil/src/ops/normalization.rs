//! Normalizations (coremltools `ops/defs/iOS15/normalization.py`, `iOS17/normalization.py`).
//! iOS17 lets the statistics/affine parameters take their own float type (domain `U`).

use crate::program::Opset::{Ios15, Ios17};
use crate::types::ValueType;

use super::infer::{InferCtx, InferError};
use super::shape::{fmt_dims, norm_axis, same_as_x, shapes_compatible, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

fn x_shape(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.tensor("x")?;
    Ok(vec![ValueType::Tensor(crate::types::TensorType {
        dtype: x.dtype,
        shape: x.shape.clone(),
        attributes: Default::default(),
    })])
}

fn l2_norm(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let r = ctx.rank("x")?;
    if r < 3 {
        return Err(InferError::at(
            "x",
            format!("input rank of l2_norm must be at least 3. Got {r}"),
        ));
    }
    x_shape(ctx)
}

/// `layer_norm`: `axes` in range; `gamma`/`beta` must have the normalized shape.
fn layer_norm(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let rank = x.len();
    let axes = match ctx.opt_ints("axes")? {
        Some(a) => a
            .into_iter()
            .map(|a| norm_axis(a, rank, "axes"))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).collect(),
    };
    let normalized: Vec<_> = x
        .iter()
        .enumerate()
        .filter(|(i, _)| axes.contains(i))
        .map(|(_, d)| *d)
        .collect();
    for p in ["gamma", "beta"] {
        if ctx.has(p) {
            let s = ctx.shape(p)?;
            if !shapes_compatible(&s, &normalized) {
                return Err(InferError::at(
                    p,
                    format!(
                        "expect shape {} for {p}, but got {}",
                        fmt_dims(&normalized),
                        fmt_dims(&s)
                    ),
                ));
            }
        }
    }
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let t = dom("T", dt::FP);
    for (o, u) in [(Ios15, t), (Ios17, dom("U", dt::FP))] {
        v.push(
            Op::new(o, "batch_norm", Family::Normalization)
                .input("x", t)
                .konst("mean", u)
                .konst("variance", u)
                .opt_konst("gamma", u, None)
                .opt_konst("beta", u, None)
                .opt_konst("epsilon", u, Some(D::Float(1e-5)))
                .infer(x_shape),
        );
        v.push(
            Op::new(o, "instance_norm", Family::Normalization)
                .input("x", t)
                .opt_konst("gamma", u, None)
                .opt_konst("beta", u, None)
                .opt_konst("epsilon", u, Some(D::Float(1e-5)))
                .infer(x_shape),
        );
        v.push(
            Op::new(o, "l2_norm", Family::Normalization)
                .input("x", t)
                .opt_konst("epsilon", u, Some(D::Float(1e-6)))
                .infer(l2_norm),
        );
        v.push(
            Op::new(o, "layer_norm", Family::Normalization)
                .input("x", t)
                .opt_konst("axes", ty(dt::I32), Some(D::Computed("all axes of x")))
                .opt_konst("gamma", u, None)
                .opt_konst("beta", u, None)
                .opt_konst("epsilon", u, Some(D::Float(1e-5)))
                .infer(layer_norm),
        );
        v.push(
            Op::new(o, "local_response_norm", Family::Normalization)
                .input("x", t)
                .konst("size", ty(dt::I32))
                .opt_konst("alpha", u, Some(D::Float(1e-4)))
                .opt_konst("beta", u, Some(D::Float(0.75)))
                .opt_konst("k", u, Some(D::Float(1.0)))
                .infer(same_as_x),
        );
    }
}
