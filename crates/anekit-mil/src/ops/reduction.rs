//! Reductions (coremltools `ops/defs/iOS15/reduction.py`, `iOS17/reduction.py`).

use crate::program::Opset::{Ios15, Ios17};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{norm_axis, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

/// `reduce_*` over `axes` (all axes if absent), dropping them unless `keep_dims`.
fn reduce_axes(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let rank = x.len();
    let axes = match ctx.opt_ints("axes")? {
        Some(a) => a
            .into_iter()
            .map(|a| norm_axis(a, rank, "axes"))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).collect(),
    };
    let out: Vec<Dim> = if ctx.bool("keep_dims")? {
        x.iter()
            .enumerate()
            .map(|(i, d)| if axes.contains(&i) { Dim::Fixed(1) } else { *d })
            .collect()
    } else {
        x.iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| *d)
            .collect()
    };
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// The shape after reducing the single `axis`.
fn reduced_one(ctx: &InferCtx<'_>) -> Result<Vec<Dim>, InferError> {
    let mut x = ctx.shape("x")?;
    let a = norm_axis(ctx.i64("axis")?, x.len(), "axis")?;
    if ctx.bool("keep_dims")? {
        x[a] = Dim::Fixed(1);
    } else {
        x.remove(a);
    }
    Ok(x)
}

fn reduce_arg15(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    Ok(vec![tensor(DataType::Int32, reduced_one(ctx)?)])
}

/// iOS17 `reduce_argmax/argmin`: output type from `output_dtype` (`int32` or `uint16`).
fn reduce_arg17(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let name = ctx.str("output_dtype")?.to_lowercase();
    let dtype = match name.as_str() {
        "int32" => DataType::Int32,
        "uint16" => DataType::Uint16,
        _ => {
            return Err(InferError::at(
                "output_dtype",
                format!("invalid output_dtype {name}; only int32 and uint16 are supported"),
            ));
        }
    };
    Ok(vec![tensor(dtype, reduced_one(ctx)?)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let t = dom("T", dt::FP_I32);
    let i32s = ty(dt::I32);
    let b = ty(dt::BOOL);
    for name in [
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
    ] {
        v.push(
            Op::new(Ios15, name, Family::Reduction)
                .input("x", t)
                .opt_konst("axes", i32s, None)
                .opt_konst("keep_dims", b, Some(D::Bool(false)))
                .infer(reduce_axes),
        );
    }
    for name in ["reduce_argmax", "reduce_argmin"] {
        v.push(
            Op::new(Ios15, name, Family::Reduction)
                .input("x", t)
                .opt_konst("axis", i32s, Some(D::Int(-1)))
                .opt_konst("keep_dims", b, Some(D::Bool(false)))
                .infer(reduce_arg15),
        );
        v.push(
            Op::new(Ios17, name, Family::Reduction)
                .input("x", t)
                .opt_konst("axis", i32s, Some(D::Int(-1)))
                .opt_konst("keep_dims", b, Some(D::Bool(false)))
                .opt_konst("output_dtype", ty(dt::STR), Some(D::Str("int32")))
                .infer(reduce_arg17),
        );
    }
}
