//! Activation quantization (iOS17): `quantize`, `dequantize` (coremltools
//! `ops/defs/iOS17/quantization_ops.py`, whose `value_inference` is
//! `coremltools.optimize._utils.quantize_by_scale_and_zp` / `dequantize_by_scale_and_zp`).
//!
//! - `quantize`: `clip(round_half_even(input / scale) + zero_point)` to the range of
//!   `output_dtype` (`int8`: −128…127, `uint8`: 0…255), computed in f32 like coremltools'
//!   NumPy code; the result is an integer tensor (carried as i32 values, the declared output
//!   type says int8/uint8).
//! - `dequantize`: `(input − zero_point) · scale` in f32.
//! - `scale` and `zero_point` (default 0) are scalars (per tensor) or vectors of
//!   `input.shape[axis]` values (per axis; `axis` may be negative).
//!
//! And `conv_quantized` (iOS15, coremltools `ops/defs/iOS15/conv.py`, "experimental"): a
//! `conv` whose uint8 `weight` holds quantized values, dequantized as the NeuralNetwork
//! weight format defines it (`QuantizationParams` in NeuralNetwork.proto):
//! `linear`: `W = W_q · quant_scale + quant_bias`, each a scalar or one value per output
//! channel; `lut`: `W = table[W_q]` with the `2^nbits`-entry table in `quant_scale` (the op
//! has no other place for it; coremltools' converters only emit `linear`). The convolution
//! itself is the `conv` kernel's.

use super::shape::norm_axis;
use super::util::{const_i64, const_str};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["conv_quantized", "dequantize", "quantize"];

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k = match ctx.op_type() {
        "quantize" => quantize(ctx),
        "dequantize" => dequantize(ctx),
        "conv_quantized" => conv_quantized(ctx),
        _ => return None,
    };
    Some(k)
}

/// Per-element parameters: `value(i)` for the flat index `i` of the input.
struct Params {
    scale: Vec<f32>,
    zero: Vec<f32>,
    /// Elements per step of the quantization axis (1 for the last axis), and its size;
    /// `None` for per-tensor parameters.
    layout: Option<(usize, usize)>,
}

impl Params {
    #[inline]
    fn at(&self, i: usize) -> (f32, f32) {
        let k = match self.layout {
            None => 0,
            Some((inner, n)) => (i / inner) % n,
        };
        (
            self.scale.get(k).copied().unwrap_or(1.0),
            self.zero.get(k).copied().unwrap_or(0.0),
        )
    }
}

fn params(a: &Args<'_>, axis: Option<i64>, shape: &[usize]) -> Result<Params, String> {
    let sv = a.req("scale")?;
    let scale = sv.to_f32s().map_err(|e| format!("scale: {e}"))?;
    let zero = match a.get("zero_point") {
        Some(z) => z.to_f32s().map_err(|e| format!("zero_point: {e}"))?,
        None => vec![0.0; scale.len()],
    };
    let vector = !sv.shape().is_empty();
    if !vector {
        if scale.len() != 1 || zero.len() != 1 {
            return Err("zero_point should be a scalar if scale is a scalar".into());
        }
        return Ok(Params {
            scale,
            zero,
            layout: None,
        });
    }
    if sv.shape().len() != 1 {
        return Err(format!(
            "scale must be a scalar or a vector, got shape {:?}",
            sv.shape()
        ));
    }
    let ax = norm_axis(
        axis.ok_or("axis is required when scale is a vector")?,
        shape.len(),
        "axis",
    )?;
    let n = shape.get(ax).copied().unwrap_or(0);
    if scale.len() != n || zero.len() != n {
        return Err(format!(
            "scale has {} and zero_point {} values; input dimension {ax} has {n}",
            scale.len(),
            zero.len()
        ));
    }
    let inner = shape
        .get(ax + 1..)
        .map_or(1, |s| s.iter().product::<usize>());
    Ok(Params {
        scale,
        zero,
        layout: Some((inner.max(1), n.max(1))),
    })
}

fn axis_param(ctx: &OpCtx<'_>) -> Result<Option<i64>, String> {
    if ctx.has("axis") {
        Ok(Some(const_i64(ctx, "axis", 0)?))
    } else {
        Ok(None)
    }
}

fn quantize(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let (lo, hi) = match const_str(ctx, "output_dtype", "")?.as_str() {
        "int8" => (-128.0f32, 127.0f32),
        "uint8" => (0.0, 255.0),
        "" => return Err("output_dtype is required".into()),
        d => return Err(format!("output_dtype {d:?} is not int8 or uint8")),
    };
    let axis = axis_param(ctx)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("input")?;
        let p = params(a, axis, x.shape())?;
        if p.scale.contains(&0.0) {
            return Err("scale cannot be 0".into());
        }
        let xs = super::linalg::contiguous(x);
        let out: Vec<i32> = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (s, z) = p.at(i);
                let q = (v / s).round_ties_even() + z;
                // NaN maps to 0, as a float-to-int cast does.
                q.clamp(lo, hi) as i32
            })
            .collect();
        Ok(vec![Value::I32(
            ndarray::ArrayD::from_shape_vec(x.raw_dim(), out).map_err(|e| e.to_string())?,
        )])
    }))
}

fn dequantize(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let axis = axis_param(ctx)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.i32("input")?;
        let p = params(a, axis, x.shape())?;
        let out: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let (s, z) = p.at(i);
                (q as f32 - z) * s
            })
            .collect();
        Ok(vec![Value::F32(
            ndarray::ArrayD::from_shape_vec(x.raw_dim(), out).map_err(|e| e.to_string())?,
        )])
    }))
}

/// Dequantize `conv_quantized` weights (`c_out` output channels, first axis).
fn dequantize_weight(
    lut: bool,
    nbits: i64,
    wq: &Value,
    scale: &Value,
    bias: Option<&Value>,
) -> Result<ndarray::ArrayD<f32>, String> {
    let q = wq.to_i64s().map_err(|e| format!("weight: {e}"))?;
    let shape = wq.shape().to_vec();
    let c_out = shape.first().copied().unwrap_or(0);
    let levels = 1i64 << nbits.clamp(1, 8);
    if let Some(v) = q.iter().find(|&&v| !(0..levels).contains(&v)) {
        return Err(format!(
            "weight value {v} is outside [0, {levels}) for nbits {nbits}"
        ));
    }
    let s = scale.to_f32s().map_err(|e| format!("quant_scale: {e}"))?;
    let per_channel = |v: &[f32], name: &str| -> Result<(), String> {
        if v.len() == 1 || v.len() == c_out {
            Ok(())
        } else {
            Err(format!(
                "{name} has {} values; expected 1 or the {c_out} output channels",
                v.len()
            ))
        }
    };
    let per = q.len().checked_div(c_out).unwrap_or(0);
    let out: Vec<f32> = if lut {
        if s.len() as i64 != levels {
            return Err(format!(
                "quant_scale (the lookup table) has {} entries; expected 2^nbits = {levels}",
                s.len()
            ));
        }
        q.iter().map(|&v| s[v as usize]).collect()
    } else {
        per_channel(&s, "quant_scale")?;
        let b = match bias {
            Some(b) => b.to_f32s().map_err(|e| format!("quant_bias: {e}"))?,
            None => vec![0.0],
        };
        per_channel(&b, "quant_bias")?;
        let at = |v: &[f32], i: usize| {
            let c = i.checked_div(per).unwrap_or(0);
            if v.len() == 1 { v[0] } else { v[c] }
        };
        q.iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * at(&s, i) + at(&b, i))
            .collect()
    };
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), out).map_err(|e| e.to_string())
}

fn conv_quantized(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    use super::conv::{ConvParams, PadType, conv_forward, geometry};
    let lut = match const_str(ctx, "quantization_type", "")?
        .to_ascii_lowercase()
        .as_str()
    {
        "linear" => false,
        "lut" => true,
        t => return Err(format!("quantization_type {t:?} is not linear or lut")),
    };
    let nbits = const_i64(ctx, "nbits", 8)?;
    if !(1..=8).contains(&nbits) {
        return Err(format!("nbits must be in 1..=8, got {nbits}"));
    }
    let list = |name: &str| -> Result<Option<Vec<i64>>, String> {
        match ctx.constant(name) {
            Some(v) => Ok(Some(v.to_i64s().map_err(|e| format!("{name}: {e}"))?)),
            None if ctx.has(name) => Err(format!("{name} must be a constant")),
            None => Ok(None),
        }
    };
    let params = ConvParams {
        strides: list("strides")?,
        dilations: list("dilations")?,
        pad: list("pad")?,
        pad_type: PadType::parse(&const_str(ctx, "pad_type", "valid")?)?,
        groups: const_i64(ctx, "groups", 1)?,
        output_shape: None,
    };
    // Constant weights (the usual case) are dequantized once, here.
    let pre = match (ctx.constant("weight"), ctx.constant("quant_scale")) {
        (Some(w), Some(s)) => Some(dequantize_weight(
            lut,
            nbits,
            w,
            s,
            ctx.constant("quant_bias"),
        )?),
        _ => None,
    };
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let owned;
        let w = match &pre {
            Some(w) => w,
            None => {
                owned = dequantize_weight(
                    lut,
                    nbits,
                    a.req("weight")?,
                    a.req("quant_scale")?,
                    a.get("quant_bias"),
                )?;
                &owned
            }
        };
        let g = geometry(x.shape(), w.shape(), &params, false)?;
        let bias = match a.get("bias") {
            Some(b) => {
                let b = b.to_f32s().map_err(|e| format!("bias: {e}"))?;
                if b.len() != g.c_out {
                    return Err(format!(
                        "bias has {} values for {} output channels",
                        b.len(),
                        g.c_out
                    ));
                }
                Some(b)
            }
            None => None,
        };
        let out = conv_forward(
            &super::linalg::contiguous(x),
            &super::linalg::contiguous(w),
            bias.as_deref(),
            &g,
        );
        Ok(vec![Value::F32(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&g.out_shape()), out)
                .map_err(|e| e.to_string())?,
        )])
    }))
}
