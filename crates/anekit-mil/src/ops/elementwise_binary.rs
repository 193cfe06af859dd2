//! Elementwise binary ops (coremltools `ops/defs/iOS15/elementwise_binary.py`).

use crate::program::Opset::Ios15;
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError, known_shape};
use super::shape::{broadcast, tensor, unknown_rank};
use super::{Family, Op, OpDef, dom, dt};

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

pub(super) fn defs(v: &mut Vec<OpDef>) {
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
