//! Activations and softmax.

use ndarray::{ArrayD, Axis};

use super::elementwise::{erf, map_f32};
use super::util::axis;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "relu",
    "relu6",
    "gelu",
    "sigmoid",
    "silu",
    "softmax",
    "elu",
    "leaky_relu",
    "softplus",
    "softsign",
    "sigmoid_hard",
    "clamped_relu",
    "linear_activation",
    "scaled_tanh",
    "thresholded_relu",
];

fn unary(args: &Args<'_>, f: impl Fn(f32) -> f32 + Sync + Send) -> Result<Vec<Value>, String> {
    Ok(vec![Value::F32(map_f32(args.f32("x")?, f))])
}

/// Softmax along `axis` (max-subtracted).
pub fn softmax(x: &ArrayD<f32>, ax: usize) -> ArrayD<f32> {
    let mut out = x.clone();
    for mut lane in out.lanes_mut(Axis(ax)) {
        let m = lane.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0;
        for v in lane.iter_mut() {
            *v = (*v - m).exp();
            sum += *v;
        }
        for v in lane.iter_mut() {
            *v /= sum;
        }
    }
    out
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k: Box<dyn Kernel> = match ctx.op_type() {
        "relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x.max(0.0))),
        "relu6" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x.clamp(0.0, 6.0))),
        "sigmoid" => {
            kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| 1.0 / (1.0 + (-x).exp())))
        }
        "silu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x / (1.0 + (-x).exp()))),
        "softsign" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| unary(a, |x| x / (1.0 + x.abs()))),
        "softplus" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            unary(a, |x| x.max(0.0) + (-x.abs()).exp().ln_1p())
        }),
        "gelu" => {
            let mode = match ctx.constant("mode") {
                Some(v) => match v.as_str() {
                    Ok(s) => s.to_string(),
                    Err(e) => return Some(Err(e)),
                },
                None => "EXACT".to_string(),
            };
            match mode.as_str() {
                "EXACT" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
                    unary(a, |x| 0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2)))
                }),
                "TANH_APPROXIMATION" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
                    let c = (2.0f32 / std::f32::consts::PI).sqrt();
                    unary(a, move |x| {
                        0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
                    })
                }),
                "SIGMOID_APPROXIMATION" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
                    unary(a, |x| x / (1.0 + (-1.702 * x).exp()))
                }),
                m => return Some(Err(format!("unknown gelu mode {m:?}"))),
            }
        }
        "softmax" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let x = a.f32("x")?;
            let ax = axis(a.i64_or("axis", -1)?, x.ndim())?;
            Ok(vec![Value::F32(softmax(x, ax))])
        }),
        "elu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let al = a.f32_or("alpha", 1.0)?;
            unary(a, move |x| if x > 0.0 { x } else { al * (x.exp() - 1.0) })
        }),
        "leaky_relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let al = a.f32_or("alpha", 0.01)?;
            unary(a, move |x| if x >= 0.0 { x } else { al * x })
        }),
        "sigmoid_hard" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 0.2)?, a.f32_or("beta", 0.5)?);
            unary(a, move |x| (al * x + be).clamp(0.0, 1.0))
        }),
        "clamped_relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 0.0)?, a.f32_or("beta", 6.0)?);
            unary(a, move |x| {
                if x >= 0.0 {
                    x.min(be)
                } else {
                    (al * x).min(be)
                }
            })
        }),
        "linear_activation" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 1.0)?, a.f32_or("beta", 0.0)?);
            unary(a, move |x| al * x + be)
        }),
        "scaled_tanh" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let (al, be) = (a.f32_or("alpha", 1.0)?, a.f32_or("beta", 1.0)?);
            unary(a, move |x| al * (be * x).tanh())
        }),
        "thresholded_relu" => kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| {
            let al = a.f32_or("alpha", 1.0)?;
            unary(a, move |x| if x >= al { x } else { 0.0 })
        }),
        _ => return None,
    };
    Some(Ok(k))
}
