//! Activation quantization, `quantize` and `dequantize` (coremltools
//! `ops/defs/iOS17/quantization_ops.py`).

use crate::program::Opset::Ios17;
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::tensor;
use super::{Family, Op, OpDef, dom, dt, ty};

/// quantize/dequantize scale and zero-point layout (coremltools `_check_scale_zp_shapes`).
fn check_scale_zp(ctx: &InferCtx<'_>, input: &[Dim]) -> Result<(), InferError> {
    let s = ctx.shape("scale")?;
    let zp = if ctx.has("zero_point") {
        Some(ctx.shape("zero_point")?)
    } else {
        None
    };
    match s.as_slice() {
        [] => {
            if ctx.has("axis") {
                return Err(InferError::at(
                    "axis",
                    "axis should not be provided if scale/zero_point are scalars",
                ));
            }
            if zp.is_some_and(|z| !z.is_empty()) {
                return Err(InferError::at(
                    "zero_point",
                    "zero_point should be a scalar if scale is a scalar",
                ));
            }
        }
        [n] => {
            if !ctx.has("axis") {
                return Err(InferError::at(
                    "axis",
                    "axis should be provided if scale/zero_point are not scalars",
                ));
            }
            let a = super::shape::norm_axis(ctx.i64("axis")?, input.len(), "axis")?;
            if !super::shape::dims_compatible(*n, input[a]) {
                return Err(InferError::at(
                    "scale",
                    "scale must have the size of the axis dimension",
                ));
            }
            if let Some(z) = zp {
                match z.as_slice() {
                    [m] if super::shape::dims_compatible(*m, input[a]) => {}
                    _ => {
                        return Err(InferError::at(
                            "zero_point",
                            "zero_point should be a vector of the size of the axis dimension",
                        ));
                    }
                }
            }
        }
        _ => {
            return Err(InferError::at(
                "scale",
                "scale and zero_point should both be scalars or vectors",
            ));
        }
    }
    Ok(())
}

fn quantize(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let name = ctx.str("output_dtype")?;
    let out = match name.as_str() {
        "uint8" => DataType::Uint8,
        "int8" => DataType::Int8,
        _ => {
            return Err(InferError::at(
                "output_dtype",
                format!("unrecognized output dtype \"{name}\""),
            ));
        }
    };
    if let Some(z) = ctx.opt_tensor("zero_point")?
        && z.dtype != out
    {
        return Err(InferError::at(
            "zero_point",
            format!(
                "output_dtype {name} and zero_point dtype {} mismatch",
                z.dtype
            ),
        ));
    }
    if let Some(v) = ctx.value("scale").and_then(super::infer::small_f32s)
        && v.iter().all(|x| *x == 0.0)
    {
        return Err(InferError::at("scale", "scale cannot be 0"));
    }
    let input = ctx.shape("input")?;
    check_scale_zp(ctx, &input)?;
    Ok(vec![tensor(out, input)])
}

fn dequantize(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let input = ctx.shape("input")?;
    check_scale_zp(ctx, &input)?;
    Ok(vec![tensor(ctx.dtype("scale")?, input)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    let i32s = ty(dt::I32);
    let s = ty(dt::STR);
    v.push(
        Op::new(Ios17, "quantize", Family::Quantization)
            .input("input", dom("SrcT", dt::FP))
            .opt_konst("zero_point", dom("DstT", &[Uint8, Int8]), None)
            .konst("scale", dom("SrcT", dt::FP))
            .opt_konst("axis", i32s, None)
            .konst("output_dtype", s)
            .infer(quantize),
    );
    v.push(
        Op::new(Ios17, "dequantize", Family::Quantization)
            .input("input", dom("SrcT", &[Uint8, Int8]))
            .opt_konst("zero_point", dom("SrcT", &[Uint8, Int8]), None)
            .konst("scale", dom("DstT", dt::FP))
            .opt_konst("axis", i32s, None)
            .infer(dequantize),
    );
}
