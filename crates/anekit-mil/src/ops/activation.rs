//! Activations (coremltools `ops/defs/iOS15/activation.py`, `iOS17/activation.py`).
//!
//! iOS17 re-registers every op with `alpha`/`beta` to let those take their own float type
//! (domain `U`) independent of `x` (domain `T`).

use crate::program::Opset::{Ios15, Ios17};
use crate::types::ValueType;

use super::infer::{InferCtx, InferError};
use super::shape::{at, dims_compatible, same_as_x};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

fn act(o: crate::program::Opset, name: &'static str) -> Op {
    Op::new(o, name, Family::Activation)
}

/// `prelu`: `x` of rank 3..5, `alpha` a vector of length `x.shape[1]`; rank 3 and 5 need
/// all alphas equal.
fn prelu(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    if !(3..=5).contains(&x.len()) {
        return Err(InferError::at(
            "x",
            format!(
                "x must be rank 3 or 4 or 5, instead it is of rank {}",
                x.len()
            ),
        ));
    }
    let a = ctx.shape("alpha")?;
    let [n] = a.as_slice() else {
        return Err(InferError::at("alpha", "alpha should be rank 1"));
    };
    if !dims_compatible(at(&x, 1, "x")?, *n) {
        return Err(InferError::at(
            "alpha",
            format!(
                "size of alpha ({n}) should equal dimension 1 of x ({})",
                at(&x, 1, "x")?
            ),
        ));
    }
    if matches!(x.len(), 3 | 5)
        && let Some(v) = ctx.value("alpha").and_then(super::infer::small_f32s)
        && let Some(first) = v.first()
        && v.iter().any(|a| (a - first).abs() > 1e-5)
    {
        return Err(InferError::at(
            "alpha",
            "rank 3 or rank 5 input is only supported when all the values of alpha are same",
        ));
    }
    same_as_x(ctx)
}

/// `softplus_parametric`: `x` of rank ≥ 3, `alpha` and `beta` vectors of length `x.shape[1]`.
fn softplus_parametric(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    if x.len() < 3 {
        return Err(InferError::at("x", "x should be at least rank 3"));
    }
    let c = at(&x, 1, "x")?;
    for p in ["alpha", "beta"] {
        let s = ctx.shape(p)?;
        match s.as_slice() {
            [n] if dims_compatible(*n, c) => {}
            [_] => {
                return Err(InferError::at(
                    p,
                    format!("size of dimension 0 of {p} should equal dimension 1 of x ({c})"),
                ));
            }
            _ => return Err(InferError::at(p, format!("{p} should be rank 1"))),
        }
    }
    same_as_x(ctx)
}

/// `gelu`: `mode` must be one of the three known modes.
fn gelu(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mode = ctx.str("mode")?;
    if !matches!(
        mode.as_str(),
        "EXACT" | "TANH_APPROXIMATION" | "SIGMOID_APPROXIMATION"
    ) {
        return Err(InferError::at(
            "mode",
            format!("unrecognized value of mode: \"{mode}\""),
        ));
    }
    same_as_x(ctx)
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let t = dom("T", dt::FP);
    let u = dom("U", dt::FP);
    // x only (elementwise_unary base class)
    for name in ["relu", "relu6", "sigmoid", "silu", "softplus", "softsign"] {
        v.push(act(Ios15, name).input("x", t).infer(same_as_x));
    }
    v.push(
        act(Ios15, "gelu")
            .input("x", t)
            .opt_konst("mode", ty(dt::STR), Some(D::Str("EXACT")))
            .infer(gelu),
    );
    v.push(
        act(Ios15, "softmax")
            .input("x", t)
            .opt_konst("axis", ty(dt::I32), Some(D::Int(-1)))
            .infer(same_as_x),
    );
    // activation_with_alpha / activation_with_alpha_and_beta; iOS17 gives alpha/beta domain U
    for (o, a) in [(Ios15, t), (Ios17, u)] {
        for name in ["elu", "leaky_relu", "thresholded_relu"] {
            v.push(
                act(o, name)
                    .input("x", t)
                    .konst("alpha", a)
                    .infer(same_as_x),
            );
        }
        v.push(act(o, "prelu").input("x", t).konst("alpha", a).infer(prelu));
        for name in [
            "clamped_relu",
            "linear_activation",
            "scaled_tanh",
            "sigmoid_hard",
        ] {
            v.push(
                act(o, name)
                    .input("x", t)
                    .konst("alpha", a)
                    .konst("beta", a)
                    .infer(same_as_x),
            );
        }
        v.push(
            act(o, "softplus_parametric")
                .input("x", t)
                .konst("alpha", a)
                .konst("beta", a)
                .infer(softplus_parametric),
        );
    }
}
