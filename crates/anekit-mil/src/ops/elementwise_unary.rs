//! Elementwise unary ops (coremltools `ops/defs/iOS15/elementwise_unary.py`,
//! `iOS17/elementwise_unary.py`).

use crate::program::Opset::{self, Ios15, Ios17};
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::same_as_x;
use super::{DefaultValue as D, Family, Op, OpDef, TypeDomain, dom, dt, ty};

/// `cast`: the output element type is `dtype`, which must be one of the types of domain `T`.
fn cast(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let name = ctx.str("dtype")?;
    let allowed = match ctx.def.param("x").map(|p| p.kind) {
        Some(super::ParamKind::Tensor(d)) => d.types,
        _ => &[],
    };
    let target = DataType::from_name(&name)
        .filter(|d| allowed.contains(d))
        .ok_or_else(|| {
            InferError::at(
                "dtype",
                format!("cast to \"{name}\" is not supported in this opset"),
            )
        })?;
    let x = ctx.tensor("x")?;
    Ok(vec![ValueType::Tensor(crate::types::TensorType {
        dtype: target,
        shape: x.shape.clone(),
        attributes: Default::default(),
    })])
}

/// iOS17 `clip`: `alpha` must be smaller than `beta`.
fn clip17(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    if let (Some(a), Some(b)) = (
        ctx.value("alpha").and_then(super::infer::scalar_f32),
        ctx.value("beta").and_then(super::infer::scalar_f32),
    ) && a >= b
    {
        return Err(InferError::at(
            "alpha",
            format!("the `alpha` value ({a}) should be smaller than `beta` value ({b})"),
        ));
    }
    same_as_x(ctx)
}

fn unary(o: Opset, name: &'static str, d: TypeDomain) -> OpDef {
    Op::new(o, name, Family::ElementwiseUnary)
        .input("x", d)
        .infer(same_as_x)
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let num = dom("T", dt::FP_I32);
    let fp = dom("T", dt::FP);
    for name in [
        "acos", "asin", "atan", "atanh", "ceil", "cos", "cosh", "erf", "exp", "floor", "round",
        "sin", "sinh", "sqrt", "tan", "tanh",
    ] {
        v.push(unary(Ios15, name, fp));
    }
    for name in ["abs", "exp2", "sign", "square"] {
        v.push(unary(Ios15, name, num));
    }
    v.push(unary(Ios15, "logical_not", ty(dt::BOOL)));
    v.push(
        Op::new(Ios15, "threshold", Family::ElementwiseUnary)
            .input("x", num)
            .konst("alpha", num)
            .infer(same_as_x),
    );
    v.push(
        Op::new(Ios15, "clip", Family::ElementwiseUnary)
            .input("x", fp)
            .konst("alpha", fp)
            .konst("beta", fp)
            .infer(same_as_x),
    );
    v.push(
        Op::new(Ios17, "clip", Family::ElementwiseUnary)
            .input("x", fp)
            .konst("alpha", fp)
            .konst("beta", fp)
            .infer(clip17),
    );
    let u = dom("U", dt::FP);
    for (o, e) in [(Ios15, fp), (Ios17, u)] {
        for (name, eps) in [
            ("inverse", "1e-4 in the dtype of x"),
            ("log", "1e-45 in the dtype of x"),
            ("rsqrt", "1e-12 in the dtype of x"),
        ] {
            v.push(
                Op::new(o, name, Family::ElementwiseUnary)
                    .input("x", fp)
                    .opt_konst("epsilon", e, Some(D::Computed(eps)))
                    .infer(same_as_x),
            );
        }
    }
    use DataType::*;
    const CAST15: &[DataType] = &[Fp16, Fp32, Int32, Bool];
    const CAST17: &[DataType] = &[Fp16, Fp32, Int8, Uint8, Int16, Uint16, Int32, Bool];
    for (o, d) in [(Ios15, CAST15), (Ios17, CAST17)] {
        v.push(
            Op::new(o, "cast", Family::ElementwiseUnary)
                .input("x", dom("T", d))
                .konst("dtype", ty(dt::STR))
                .value(cast_value)
                .infer(cast),
        );
    }
}

/// `cast` keeps a partially known integer value when casting between integer types.
fn cast_value(ctx: &InferCtx<'_>) -> Option<Vec<super::SymInt>> {
    let target = DataType::from_name(&ctx.str("dtype").ok()?)?;
    if !target.is_int() || !ctx.tensor("x").ok()?.dtype.is_int() {
        return None;
    }
    ctx.sym("x")
}
