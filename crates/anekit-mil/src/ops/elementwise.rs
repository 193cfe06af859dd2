//! Elementwise ops (coremltools `ops/defs/iOS15/elementwise_binary.py`,
//! `iOS15/elementwise_unary.py`, `iOS17/elementwise_unary.py`).

use crate::program::Opset::{self, Ios15, Ios17};
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError, known_shape};
use super::shape::{broadcast, same_as_x, tensor, unknown_rank};
use super::{DefaultValue as D, Family, Op, OpDef, TypeDomain, dom, dt, ty};

/// Broadcast the types of parameters `a` and `b` (coremltools `infer_type_with_broadcast`),
/// with element type `out` (or the shared input type).
pub(super) fn broadcast_types(
    ctx: &InferCtx<'_>,
    a: &str,
    b: &str,
    out: Option<DataType>,
) -> Result<Vec<ValueType>, InferError> {
    let ta = ctx.tensor(a)?;
    let tb = ctx.tensor(b)?;
    if ta.dtype != tb.dtype {
        return Err(InferError::at(
            b,
            format!(
                "element type {} differs from `{a}` ({})",
                tb.dtype, ta.dtype
            ),
        ));
    }
    let dtype = out.unwrap_or(ta.dtype);
    match (known_shape(ta), known_shape(tb)) {
        (Some(sa), Some(sb)) => Ok(vec![tensor(dtype, broadcast(&sa, &sb)?)]),
        _ => Ok(vec![unknown_rank(dtype)]),
    }
}

fn binary(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    broadcast_types(ctx, "x", "y", None)
}

fn binary_bool(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    broadcast_types(ctx, "x", "y", Some(DataType::Bool))
}

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
    // ---- binary
    let num = dom("T", dt::FP_I32);
    let logic = dom("T", dt::BOOL);
    let bin = |name, d, f| {
        Op::new(Ios15, name, Family::ElementwiseBinary)
            .input("x", d)
            .input("y", d)
            .infer(f)
    };
    for name in [
        "add",
        "floor_div",
        "maximum",
        "minimum",
        "mod",
        "mul",
        "pow",
        "real_div",
        "sub",
    ] {
        let mut def = bin(name, num, binary);
        if matches!(
            name,
            "add" | "sub" | "mul" | "floor_div" | "maximum" | "minimum"
        ) {
            def.value = Some(int_binary_value);
        }
        v.push(def);
    }
    for name in [
        "equal",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "not_equal",
    ] {
        v.push(bin(name, num, binary_bool));
    }
    for name in ["logical_and", "logical_or", "logical_xor"] {
        v.push(bin(name, logic, binary_bool));
    }

    // ---- unary
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

/// Integer `add/sub/mul/floor_div/maximum/minimum` of partially known small vectors or
/// scalars (shape arithmetic such as `mul(gather(shape(x), 1), 4)`).
fn int_binary_value(ctx: &InferCtx<'_>) -> Option<Vec<super::SymInt>> {
    if !ctx.tensor("x").ok()?.dtype.is_int() {
        return None;
    }
    let a = ctx.sym("x")?;
    let b = ctx.sym("y")?;
    let n = match (a.len(), b.len()) {
        (p, q) if p == q => p,
        (1, q) => q,
        (p, 1) => p,
        _ => return None,
    };
    let pick = |v: &[super::SymInt], i: usize| {
        if v.len() == 1 {
            v.first().copied().flatten()
        } else {
            v.get(i).copied().flatten()
        }
    };
    let op: fn(i64, i64) -> Option<i64> = match ctx.def.name {
        "add" => i64::checked_add,
        "sub" => i64::checked_sub,
        "mul" => i64::checked_mul,
        "floor_div" => super::shape::floor_div,
        "maximum" => |p, q| Some(p.max(q)),
        "minimum" => |p, q| Some(p.min(q)),
        _ => return None,
    };
    Some((0..n).map(|i| op(pick(&a, i)?, pick(&b, i)?)).collect())
}
