//! Convolution (coremltools `ops/defs/iOS15/conv.py`, `iOS17/conv.py`).

use crate::program::Opset::{self, Ios15, Ios17};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{at, dims_compatible, fixed, fmt_dims, map1, size, spatial_out, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, TypeDomain, dom, dt, ty};

/// Known kernel sizes (`weight.shape[2:]`).
fn kernel_of(w: &[Dim]) -> Result<Vec<i64>, InferError> {
    w.iter()
        .skip(2)
        .map(|d| size(*d))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| InferError::Undetermined("kernel size of `weight` is unknown".into()))
}

/// `strides`/`dilations` (default one per spatial dim).
pub(super) fn per_dim(ctx: &InferCtx<'_>, name: &str, n: usize) -> Result<Vec<i64>, InferError> {
    Ok(ctx.opt_ints(name)?.unwrap_or_else(|| vec![1; n]))
}

pub(super) fn spatial_rank(x: &[Dim]) -> Result<usize, InferError> {
    x.len().checked_sub(2).filter(|n| *n > 0).ok_or_else(|| {
        InferError::at(
            "x",
            format!("x must have rank at least 3, got {}", fmt_dims(x)),
        )
    })
}

/// `conv` and `conv_quantized`.
fn conv(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let w = ctx.shape("weight")?;
    let n = spatial_rank(&x)?;
    if w.len() != x.len() {
        return Err(InferError::at(
            "weight",
            format!(
                "weight {} must have the rank of x {}",
                fmt_dims(&w),
                fmt_dims(&x)
            ),
        ));
    }
    let c_out = at(&w, 0, "weight")?;
    let c_in = at(&x, 1, "x")?;
    let groups = ctx.i64("groups")?;
    if groups <= 0 {
        return Err(InferError::at(
            "groups",
            format!("groups must be positive, got {groups}"),
        ));
    }
    if ctx.has("bias") {
        let b = ctx.shape("bias")?;
        match b.as_slice() {
            [n] if dims_compatible(*n, c_out) => {}
            _ => {
                return Err(InferError::at(
                    "bias",
                    format!(
                        "# of bias values {} not equal to # output channels {c_out}",
                        fmt_dims(&b)
                    ),
                ));
            }
        }
    }
    if let Some(ci) = size(c_in) {
        if ci % groups != 0 {
            return Err(InferError::at(
                "groups",
                format!("# of input channels {ci} not divisible by groups {groups}"),
            ));
        }
        if !dims_compatible(Dim::Fixed((ci / groups) as u64), at(&w, 1, "weight")?) {
            return Err(InferError::at(
                "weight",
                format!(
                    "C_in / groups = {ci}/{groups} != weight[1] ({})",
                    at(&w, 1, "weight")?
                ),
            ));
        }
    }
    let strides = per_dim(ctx, "strides", n)?;
    let dilations = per_dim(ctx, "dilations", n)?;
    let pad_type = ctx.str("pad_type")?;
    if ctx.opset == Opset::Ios15 && pad_type == "same_lower" {
        return Err(InferError::at(
            "pad_type",
            "iOS15 version of conv does not support pad_type = `same_lower`",
        ));
    }
    let pad = if pad_type == "custom" {
        Some(ctx.opt_ints("pad")?.unwrap_or_else(|| vec![0; 2 * n]))
    } else {
        None
    };
    let weight_const = ctx.arg("weight").is_some_and(|a| a.constant);
    if !weight_const && dilations.iter().any(|d| *d > 1) {
        return Err(InferError::at(
            "dilations",
            "convolution with dynamic weights does not support dilations",
        ));
    }
    let spatial = spatial_out(
        &pad_type,
        x.get(2..).unwrap_or(&[]),
        &kernel_of(&w)?,
        &strides,
        &dilations,
        pad.as_deref(),
        false,
    )?;
    let mut out = vec![at(&x, 0, "x")?, c_out];
    out.extend(spatial);
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// `conv_transpose`.
fn conv_transpose(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let w = ctx.shape("weight")?;
    let n = spatial_rank(&x)?;
    if w.len() != x.len() {
        return Err(InferError::at(
            "weight",
            format!(
                "weight {} must have the rank of x {}",
                fmt_dims(&w),
                fmt_dims(&x)
            ),
        ));
    }
    let groups = ctx.i64("groups")?;
    if groups <= 0 {
        return Err(InferError::at(
            "groups",
            format!("groups must be positive, got {groups}"),
        ));
    }
    let c_out = map1(at(&w, 1, "weight")?, "C_out", |c| c.checked_mul(groups))?;
    if ctx.has("bias") {
        let b = ctx.shape("bias")?;
        if !b.first().is_some_and(|d| dims_compatible(*d, c_out)) {
            return Err(InferError::at(
                "bias",
                format!(
                    "# of bias values {} not equal to # output channels {c_out}",
                    fmt_dims(&b)
                ),
            ));
        }
    }
    let batch = at(&x, 0, "x")?;
    let dtype = ctx.dtype("x")?;
    if ctx.has("output_shape") {
        let os = ctx.ints("output_shape")?;
        let dims = os
            .iter()
            .map(|&d| fixed(d, "output_shape"))
            .collect::<Result<Vec<_>, _>>()?;
        if !dims.first().is_some_and(|d| dims_compatible(*d, batch))
            || !dims.get(1).is_some_and(|d| dims_compatible(*d, c_out))
        {
            return Err(InferError::at(
                "output_shape",
                format!(
                    "output_shape {os:?} must start with the batch ({batch}) and output channels ({c_out})"
                ),
            ));
        }
        return Ok(vec![tensor(dtype, dims)]);
    }
    let strides = per_dim(ctx, "strides", n)?;
    let dilations = per_dim(ctx, "dilations", n)?;
    let kernel = kernel_of(&w)?;
    if strides.len() != n || dilations.len() != n || kernel.len() != n {
        return Err(InferError::invalid(
            "strides, dilations and kernel must have one entry per spatial dimension",
        ));
    }
    let pad_type = ctx.str("pad_type")?;
    let pad = ctx.opt_ints("pad")?.unwrap_or_else(|| vec![0; 2 * n]);
    let mut out = vec![batch, c_out];
    for r in 0..n {
        let k = kernel[r]
            .checked_sub(1)
            .and_then(|v| v.checked_mul(dilations[r]))
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| InferError::invalid("kernel size overflows"))?;
        let s = strides[r];
        let din = x.get(r + 2).copied().unwrap_or(super::shape::UNK);
        let d = match pad_type.as_str() {
            "same" => map1(din, "spatial output", |i| s.checked_mul(i))?,
            "valid" => map1(din, "spatial output", |i| {
                s.checked_mul(i - 1)?.checked_add(k)
            })?,
            "custom" => {
                let (a, b) = match (pad.get(2 * r), pad.get(2 * r + 1)) {
                    (Some(a), Some(b)) => (*a, *b),
                    _ => {
                        return Err(InferError::at(
                            "pad",
                            "pad must have 2 entries per spatial dimension",
                        ));
                    }
                };
                map1(din, "spatial output", |i| {
                    s.checked_mul(i - 1)?
                        .checked_add(k)?
                        .checked_sub(a)?
                        .checked_sub(b)
                })?
            }
            other => {
                return Err(InferError::at(
                    "pad_type",
                    format!("invalid pad_type \"{other}\" for conv_transpose"),
                ));
            }
        };
        out.push(d);
    }
    Ok(vec![tensor(dtype, out)])
}

fn conv_params(op: Op, t: TypeDomain, w: TypeDomain, const_w: bool, const_b: bool) -> Op {
    let op = if const_w {
        op.input("x", t).konst("weight", w)
    } else {
        op.input("x", t).input("weight", w)
    };
    if const_b {
        op.opt_konst("bias", w, None)
    } else {
        op.opt_input("bias", w, None)
    }
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let i32s = ty(dt::I32);
    let s = ty(dt::STR);
    let fp = dom("T", dt::FP);
    let u = dom("U", dt::FP);
    let ones = D::Computed("[1] * spatial rank");
    let zeros = D::Computed("[0] * 2 * spatial rank");
    // conv: iOS15 bias const, iOS17 bias may be a run-time value and of type U
    for (o, w, const_b) in [(Ios15, fp, true), (Ios17, u, false)] {
        v.push(
            conv_params(Op::new(o, "conv", Family::Conv), fp, w, false, const_b)
                .opt_konst("strides", i32s, Some(ones))
                .opt_konst("pad_type", s, Some(D::Str("valid")))
                .opt_konst("pad", i32s, Some(zeros))
                .opt_konst("dilations", i32s, Some(ones))
                .opt_konst("groups", i32s, Some(D::Int(1)))
                .infer(conv),
        );
    }
    let qt = dom("T", &[DataType::Fp32, DataType::Fp16]);
    let qu = dom("U", &[DataType::Uint8]);
    v.push(
        Op::new(Ios15, "conv_quantized", Family::Conv)
            .input("x", qt)
            .input("weight", qu)
            .opt_konst("bias", qu, None)
            .konst("quantization_type", s)
            .opt_konst("nbits", i32s, Some(D::Int(8)))
            .konst("quant_scale", qt)
            .konst("quant_bias", qt)
            .opt_konst("strides", i32s, Some(ones))
            .opt_konst("pad_type", s, Some(D::Str("valid")))
            .opt_konst("pad", i32s, Some(zeros))
            .opt_konst("dilations", i32s, Some(ones))
            .opt_konst("groups", i32s, Some(D::Int(1)))
            .infer(conv),
    );
    for (o, w, const_wb) in [(Ios15, fp, true), (Ios17, u, false)] {
        v.push(
            conv_params(
                Op::new(o, "conv_transpose", Family::Conv),
                fp,
                w,
                const_wb,
                const_wb,
            )
            .opt_konst("pad", i32s, Some(zeros))
            .opt_konst("output_shape", i32s, None)
            .opt_konst("pad_type", s, Some(D::Str("valid")))
            .opt_konst("strides", i32s, Some(ones))
            .opt_konst("dilations", i32s, Some(ones))
            .opt_konst("groups", i32s, Some(D::Int(1)))
            .infer(conv_transpose),
        );
    }
}
