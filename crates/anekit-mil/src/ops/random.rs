//! Random sampling (coremltools `ops/defs/iOS15/random.py`).

use crate::program::Opset::Ios15;
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{out, tensor};
use super::tensor_operation::shape_from_vector;
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

/// The element type of a float parameter with a float default (fp32 when not given).
fn float_dtype(ctx: &InferCtx<'_>, p: &str) -> Result<DataType, InferError> {
    Ok(ctx
        .opt_tensor(p)?
        .map(|t| t.dtype)
        .unwrap_or(DataType::Fp32))
}

/// `random_bernoulli/normal/uniform`: shape from the `shape` vector, type of the
/// distribution parameters.
fn distribution(
    ctx: &InferCtx<'_>,
    a: &str,
    b: Option<&str>,
) -> Result<Vec<ValueType>, InferError> {
    let dtype = float_dtype(ctx, a)?;
    if let Some(b) = b
        && float_dtype(ctx, b)? != dtype
    {
        return Err(InferError::at(
            b,
            format!("`{a}` and `{b}` must have the same type"),
        ));
    }
    Ok(out(dtype, shape_from_vector(ctx, "shape")?))
}

fn bernoulli(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    distribution(ctx, "prob", None)
}

fn normal(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    distribution(ctx, "mean", Some("stddev"))
}

fn uniform(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    distribution(ctx, "low", Some("high"))
}

/// `random_categorical`: `x.shape[:-1] + [size]`, in x's type.
fn categorical(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = ctx.shape("x")?;
    x.pop();
    x.push(super::shape::fixed(ctx.i64("size")?, "size")?);
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let t = dom("T", dt::FP);
    let i32s = ty(dt::I32);
    let fam = Family::Random;
    v.push(
        Op::new(Ios15, "random_bernoulli", fam)
            .input("shape", i32s)
            .opt_konst("prob", t, Some(D::Float(0.5)))
            .opt_konst("seed", i32s, Some(D::Int(-1)))
            .infer(bernoulli),
    );
    v.push(
        Op::new(Ios15, "random_categorical", fam)
            .input("x", t)
            .opt_konst("mode", ty(dt::STR), Some(D::Str("logits")))
            .opt_konst("size", i32s, Some(D::Int(1)))
            .opt_konst("seed", i32s, Some(D::Int(-1)))
            .infer(categorical),
    );
    v.push(
        Op::new(Ios15, "random_normal", fam)
            .input("shape", i32s)
            .opt_konst("mean", t, Some(D::Float(0.0)))
            .opt_konst("stddev", t, Some(D::Float(1.0)))
            .opt_konst("seed", i32s, Some(D::Int(-1)))
            .infer(normal),
    );
    v.push(
        Op::new(Ios15, "random_uniform", fam)
            .input("shape", i32s)
            .opt_konst("low", t, Some(D::Float(0.0)))
            .opt_konst("high", t, Some(D::Float(1.0)))
            .opt_konst("seed", i32s, Some(D::Int(-1)))
            .infer(uniform),
    );
}
