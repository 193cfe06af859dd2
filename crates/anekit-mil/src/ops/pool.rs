//! Pooling (coremltools `ops/defs/iOS15/pool.py`).

use crate::program::Opset::{self, Ios15};
use crate::types::{Dim, ValueType};

use super::conv::{per_dim, spatial_rank};
use super::infer::{InferCtx, InferError};
use super::shape::{spatial_out, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

/// Shared pooling inference (coremltools `Pooling.type_inference`).
fn pool(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let n = spatial_rank(&x)?;
    let ksize = ctx.ints("kernel_sizes")?;
    let strides = per_dim(ctx, "strides", n)?;
    let raw_pad_type = ctx.str("pad_type")?;
    let pad_type = raw_pad_type.to_lowercase();
    if !matches!(
        pad_type.as_str(),
        "valid" | "same" | "custom" | "same_lower"
    ) {
        return Err(InferError::at(
            "pad_type",
            format!("unrecognized value of pad_type: {raw_pad_type}"),
        ));
    }
    let pad = if ctx.has("pad") {
        ctx.opt_ints("pad")?
    } else {
        None
    };
    let ceil = ctx.bool("ceil_mode")?;
    if ceil {
        if n > 2 {
            return Err(InferError::at(
                "ceil_mode",
                "ceil_mode only supported for 1D or 2D pool",
            ));
        }
        if pad_type == "same" {
            return Err(InferError::at(
                "ceil_mode",
                "ceil_mode must be False when pad_type==same",
            ));
        }
        if let Some(p) = &pad
            && p.chunks(2).any(|c| c.first() != c.get(1))
        {
            return Err(InferError::at(
                "pad",
                "padding must be symmetric if ceil_mode is True",
            ));
        }
    }
    if ctx.opset == Opset::Ios15 && raw_pad_type == "same_lower" {
        return Err(InferError::at(
            "pad_type",
            "iOS15 version of pooling layers do not support pad_type = `same_lower`",
        ));
    }
    let spatial = spatial_out(
        &pad_type,
        x.get(2..).unwrap_or(&[]),
        &ksize,
        &strides,
        &vec![1; ksize.len()],
        pad.as_deref(),
        ceil,
    )?;
    let mut out: Vec<Dim> = x.iter().take(2).copied().collect();
    out.extend(spatial);
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn l2_pool(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let r = ctx.rank("x")?;
    if r > 4 {
        return Err(InferError::at(
            "x",
            format!(
                "l2_pool only supports rank 1 or 2. Got rank: {}",
                r.saturating_sub(2)
            ),
        ));
    }
    pool(ctx)
}
pub(super) fn defs(v: &mut Vec<OpDef>) {
    let i32s = ty(dt::I32);
    let s = ty(dt::STR);
    let fp = dom("T", dt::FP);
    let ones = D::Computed("[1] * spatial rank");
    let zeros = D::Computed("[0] * 2 * spatial rank");
    let pool_params = |op: Op| {
        op.input("x", fp)
            .konst("kernel_sizes", i32s)
            .opt_konst("strides", i32s, Some(ones))
            .konst("pad_type", s)
            .opt_konst("pad", i32s, Some(zeros))
            .opt_konst("ceil_mode", ty(dt::BOOL), Some(D::Bool(false)))
    };
    v.push(
        pool_params(Op::new(Ios15, "avg_pool", Family::Pool).opt_konst(
            "exclude_padding_from_average",
            ty(dt::BOOL),
            Some(D::Bool(false)),
        ))
        .infer(pool),
    );
    v.push(pool_params(Op::new(Ios15, "max_pool", Family::Pool)).infer(pool));
    v.push(pool_params(Op::new(Ios15, "l2_pool", Family::Pool)).infer(l2_pool));
}
