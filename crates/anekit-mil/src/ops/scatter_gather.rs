//! Gather and scatter (coremltools `ops/defs/iOS15/scatter_gather.py`, `iOS16/…`, `iOS17/…`).

use crate::program::Opset::{self, Ios15, Ios16, Ios17};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError, SymInt};
use super::shape::{at, dims_compatible, fmt_dims, norm_axis, shapes_compatible, size, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, TypeDomain, dom, dt, ty};

/// `gather` (all revisions): `x.shape[:axis] + indices.shape[batch_dims:] + x.shape[axis+1:]`.
fn gather(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let idx = ctx.shape("indices")?;
    let axis = norm_axis(ctx.i64("axis")?, x.len(), "axis")?;
    let batch_dims = if ctx.def.param("batch_dims").is_some() {
        ctx.i64("batch_dims")?
    } else {
        0
    };
    let bd = usize::try_from(batch_dims)
        .map_err(|_| InferError::at("batch_dims", "batch_dims must not be negative"))?;
    if bd >= x.len() && bd > 0 {
        return Err(InferError::at(
            "batch_dims",
            format!("batch_dims {bd} must be less than x.rank {}", x.len()),
        ));
    }
    if bd > idx.len() {
        return Err(InferError::at(
            "batch_dims",
            format!(
                "batch_dims {bd} must be less or equal to indices.rank {}",
                idx.len()
            ),
        ));
    }
    validate_indices(ctx, x.get(axis).copied())?;
    let mut out: Vec<Dim> = x.get(..axis).unwrap_or(&[]).to_vec();
    out.extend_from_slice(idx.get(bd..).unwrap_or(&[]));
    out.extend_from_slice(x.get(axis + 1..).unwrap_or(&[]));
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// iOS17 `validate_indices`: constant indices must lie in `[0, bound)`.
fn validate_indices(ctx: &InferCtx<'_>, bound: Option<Dim>) -> Result<(), InferError> {
    if ctx.def.param("validate_indices").is_none() || !ctx.bool("validate_indices")? {
        return Ok(());
    }
    if let (Some(vals), Some(b)) = (
        ctx.value("indices").and_then(super::infer::small_i64s),
        bound.and_then(size),
    ) && vals.iter().any(|&i| i < 0 || i >= b)
    {
        return Err(InferError::at(
            "indices",
            format!("indices out of bounds; expected values in [0, {b})"),
        ));
    }
    Ok(())
}

/// `gather` keeps a partially known value when gathering from a small integer vector with
/// constant indices (`gather(shape(x), 1)`).
fn gather_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let src = ctx.sym("x")?;
    if ctx.rank("x").ok()? != 1 {
        return None;
    }
    let idx = super::infer::small_i64s(ctx.value("indices")?)?;
    let n = src.len();
    idx.iter()
        .map(|&i| super::shape::py_index(i, n).and_then(|i| src.get(i).copied()))
        .collect()
}

/// `scatter`: `updates` must have shape `data.shape[:axis] + indices.shape + data.shape[axis+1:]`.
fn scatter(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let data = ctx.shape("data")?;
    let idx = ctx.shape("indices")?;
    let upd = ctx.shape("updates")?;
    let axis = norm_axis(ctx.i64("axis")?, data.len(), "axis")?;
    let mut expected: Vec<Dim> = data.get(..axis).unwrap_or(&[]).to_vec();
    expected.extend_from_slice(&idx);
    expected.extend_from_slice(data.get(axis + 1..).unwrap_or(&[]));
    if !shapes_compatible(&upd, &expected) {
        return Err(InferError::at(
            "updates",
            format!(
                "updates shape {} is incorrect; it should be {}",
                fmt_dims(&upd),
                fmt_dims(&expected)
            ),
        ));
    }
    validate_indices(ctx, data.get(axis).copied())?;
    super::shape::same_as(ctx, "data")
}

/// `gather_along_axis`: indices of x's rank, equal outside `axis`; output has indices' shape.
fn gather_along_axis(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let idx = ctx.shape("indices")?;
    if x.len() != idx.len() {
        return Err(InferError::at(
            "indices",
            format!(
                "rank mismatch between input ({}) and indices ({})",
                x.len(),
                idx.len()
            ),
        ));
    }
    let axis = norm_axis(ctx.i64("axis")?, x.len(), "axis")?;
    for (i, (a, b)) in x.iter().zip(&idx).enumerate() {
        if i != axis && !dims_compatible(*a, *b) {
            return Err(InferError::at(
                "indices",
                format!("x and indices should have the same size at axis {i}, but got {a} vs {b}"),
            ));
        }
    }
    validate_indices(ctx, x.get(axis).copied())?;
    Ok(vec![tensor(ctx.dtype("x")?, idx)])
}

fn scatter_along_axis(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let data = ctx.shape("data")?;
    let idx = ctx.shape("indices")?;
    let upd = ctx.shape("updates")?;
    let axis = norm_axis(ctx.i64("axis")?, data.len(), "axis")?;
    if !shapes_compatible(&idx, &upd) {
        return Err(InferError::at(
            "updates",
            "indices and updates must have the same shape",
        ));
    }
    if data.len() != idx.len() {
        return Err(InferError::at(
            "indices",
            "data and indices must have the same rank",
        ));
    }
    for (i, (a, b)) in data.iter().zip(&idx).enumerate() {
        if i != axis && !dims_compatible(*a, *b) {
            return Err(InferError::at(
                "indices",
                format!("data and indices should have the same size at axis {i}"),
            ));
        }
    }
    validate_indices(ctx, data.get(axis).copied())?;
    super::shape::same_as(ctx, "data")
}

/// The depth `indices.shape[-1]`, which must be known.
fn depth(idx: &[Dim]) -> Result<usize, InferError> {
    let d = at(idx, -1, "indices")?;
    size(d)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| InferError::Undetermined("last dimension of `indices` is unknown".into()))
}

/// `gather_nd`: `indices.shape[:-1] + x.shape[batch_dims + indices.shape[-1]:]`.
fn gather_nd(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let idx = ctx.shape("indices")?;
    let bd = if ctx.def.param("batch_dims").is_some() {
        usize::try_from(ctx.i64("batch_dims")?)
            .map_err(|_| InferError::at("batch_dims", "batch_dims must not be negative"))?
    } else {
        0
    };
    let k = depth(&idx)?;
    if bd.checked_add(k).is_none_or(|s| s > x.len()) {
        return Err(InferError::at(
            "indices",
            format!(
                "indices.shape[-1] ({k}) + batch_dims ({bd}) must be <= the input rank {}",
                x.len()
            ),
        ));
    }
    validate_indices(ctx, None)?;
    let mut out: Vec<Dim> = idx.get(..idx.len() - 1).unwrap_or(&[]).to_vec();
    out.extend_from_slice(x.get(bd + k..).unwrap_or(&[]));
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn scatter_nd(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let data = ctx.shape("data")?;
    let idx = ctx.shape("indices")?;
    let upd = ctx.shape("updates")?;
    let k = depth(&idx)?;
    if k > data.len() {
        return Err(InferError::at(
            "indices",
            "indices.shape[-1] must be <= the rank of data",
        ));
    }
    let mut expected: Vec<Dim> = idx.get(..idx.len() - 1).unwrap_or(&[]).to_vec();
    expected.extend_from_slice(data.get(k..).unwrap_or(&[]));
    if !shapes_compatible(&upd, &expected) {
        return Err(InferError::at(
            "updates",
            format!(
                "updates shape {} is incorrect; it should be {}",
                fmt_dims(&upd),
                fmt_dims(&expected)
            ),
        ));
    }
    super::shape::same_as(ctx, "data")
}

fn sg(o: Opset, name: &'static str) -> Op {
    Op::new(o, name, Family::ScatterGather)
}

fn scatter_tail(op: Op, axis: bool, validate: bool) -> Op {
    let op = if axis {
        op.opt_konst("axis", ty(dt::I32), Some(D::Int(0)))
    } else {
        op
    };
    let op = op.opt_konst("mode", ty(dt::STR), Some(D::Str("add")));
    if validate {
        op.opt_konst("validate_indices", ty(dt::BOOL), Some(D::Bool(false)))
    } else {
        op
    }
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    let t15 = dom("T", dt::FP_I32);
    let i32s = ty(dt::I32);
    let i16 = dom("I", &[Int32, Uint16, Int16]);
    let t17 = dom("T", &[Fp16, Fp32, Int32, Int16, Uint16, Int8, Uint8]);
    let i17 = dom("I", &[Int32, Int16, Uint16, Int8, Uint8]);
    let vi = |op: Op, on: bool| {
        if on {
            op.opt_konst("validate_indices", ty(dt::BOOL), Some(D::Bool(false)))
        } else {
            op
        }
    };
    // gather
    v.push(
        sg(Ios15, "gather")
            .input("x", t15)
            .input("indices", i32s)
            .opt_konst("axis", i32s, Some(D::Int(0)))
            .value(gather_value)
            .infer(gather),
    );
    for (o, t, i) in [(Ios16, t15, i16), (Ios17, t17, i17)] {
        v.push(
            vi(
                sg(o, "gather")
                    .input("x", t)
                    .input("indices", i)
                    .opt_konst("axis", i32s, Some(D::Int(0)))
                    .opt_konst("batch_dims", i32s, Some(D::Int(0))),
                o == Ios17,
            )
            .value(gather_value)
            .infer(gather),
        );
    }
    // gather_along_axis
    let gaa: [(Opset, TypeDomain, TypeDomain); 3] =
        [(Ios15, t15, i32s), (Ios16, t15, i16), (Ios17, t17, i17)];
    for (o, t, i) in gaa {
        v.push(
            vi(
                sg(o, "gather_along_axis")
                    .input("x", t)
                    .input("indices", i)
                    .opt_konst("axis", i32s, Some(D::Int(0))),
                o == Ios17,
            )
            .infer(gather_along_axis),
        );
    }
    // gather_nd
    v.push(
        sg(Ios15, "gather_nd")
            .input("x", t15)
            .input("indices", i32s)
            .infer(gather_nd),
    );
    for (o, t, i) in [(Ios16, t15, i16), (Ios17, t17, i17)] {
        v.push(
            vi(
                sg(o, "gather_nd")
                    .input("x", t)
                    .input("indices", i)
                    .opt_konst("batch_dims", i32s, Some(D::Int(0))),
                o == Ios17,
            )
            .infer(gather_nd),
        );
    }
    // scatter family (iOS17 only adds validate_indices)
    for o in [Ios15, Ios17] {
        let base = |name| {
            sg(o, name)
                .input("data", t15)
                .input("indices", i32s)
                .input("updates", t15)
        };
        v.push(scatter_tail(base("scatter"), true, o == Ios17).infer(scatter));
        v.push(
            scatter_tail(base("scatter_along_axis"), true, o == Ios17).infer(scatter_along_axis),
        );
        v.push(scatter_tail(base("scatter_nd"), false, o == Ios17).infer(scatter_nd));
    }
}
