//! `classify` (coremltools `ops/defs/iOS15/classify.py`): the last op of a classifier
//! program. It maps `probabilities` (fp32, any shape, read flat) to `classes` (a constant
//! list of strings or int64 labels, one per element) and returns
//! 1. the predicted label — the class of the largest probability (the first on ties; NaN
//!    never wins) — as a scalar `Value::Str`, or `Value::I32` for integer labels, and
//! 2. the `dict<label, fp64>` of every class's probability. The CPU backend has no dict
//!    value; it represents the dict as `Value::List([labels, probabilities])`: two parallel
//!    1-D tensors, the labels (`Str` or `I32`, in the order of `classes`) and their
//!    probabilities (`F32`). This is what Core ML's classifier outputs carry
//!    (`classLabel` and `classLabel_probs` by coremltools' default names).

use ndarray::{ArrayD, IxDyn};

use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["classify"];

/// The labels of `classes`: strings or integers.
enum Labels {
    Str(Vec<String>),
    Int(Vec<i32>),
}

fn labels(v: &Value) -> Result<Labels, String> {
    let items: Vec<&Value> = match v {
        Value::List(items) => items.iter().collect(),
        // A tensor of labels is accepted too.
        Value::Str(a) => return Ok(Labels::Str(a.iter().cloned().collect())),
        Value::I32(a) => return Ok(Labels::Int(a.iter().copied().collect())),
        v => return Err(format!("classes must be a list, got {}", v.describe())),
    };
    if items
        .iter()
        .all(|i| matches!(i, Value::Str(a) if a.len() == 1))
    {
        Ok(Labels::Str(
            items
                .iter()
                .filter_map(|i| i.as_str().ok().map(str::to_string))
                .collect(),
        ))
    } else if items
        .iter()
        .all(|i| matches!(i, Value::I32(a) if a.len() == 1))
    {
        Ok(Labels::Int(
            items
                .iter()
                .filter_map(|i| match i {
                    Value::I32(a) => a.iter().next().copied(),
                    _ => None,
                })
                .collect(),
        ))
    } else {
        Err("classes must be a list of string or integer scalars".into())
    }
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    if ctx.op_type() != "classify" {
        return None;
    }
    let classes = match ctx.constant("classes") {
        Some(v) => labels(v),
        None => Err("classes must be a constant list".into()),
    };
    Some(classes.map(|classes| {
        kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
            let p = a.f32("probabilities")?;
            let n = match &classes {
                Labels::Str(v) => v.len(),
                Labels::Int(v) => v.len(),
            };
            if p.len() != n {
                return Err(format!(
                    "probabilities has {} elements (shape {:?}) for {n} classes",
                    p.len(),
                    p.shape()
                ));
            }
            let probs: Vec<f32> = p.iter().copied().collect();
            let best = probs
                .iter()
                .enumerate()
                .fold(None::<(usize, f32)>, |acc, (i, &v)| match acc {
                    _ if v.is_nan() => acc,
                    Some((_, m)) if v <= m => acc,
                    _ => Some((i, v)),
                })
                .map_or(0, |(i, _)| i);
            let scalar = |s| IxDyn(s);
            let (label, keys) = match &classes {
                Labels::Str(v) => (
                    Value::Str(
                        ArrayD::from_shape_vec(
                            scalar(&[]),
                            vec![v.get(best).cloned().unwrap_or_default()],
                        )
                        .map_err(|e| e.to_string())?,
                    ),
                    Value::Str(
                        ArrayD::from_shape_vec(scalar(&[n]), v.clone())
                            .map_err(|e| e.to_string())?,
                    ),
                ),
                Labels::Int(v) => (
                    Value::I32(
                        ArrayD::from_shape_vec(
                            scalar(&[]),
                            vec![v.get(best).copied().unwrap_or(0)],
                        )
                        .map_err(|e| e.to_string())?,
                    ),
                    Value::I32(
                        ArrayD::from_shape_vec(scalar(&[n]), v.clone())
                            .map_err(|e| e.to_string())?,
                    ),
                ),
            };
            let values =
                Value::F32(ArrayD::from_shape_vec(IxDyn(&[n]), probs).map_err(|e| e.to_string())?);
            Ok(vec![label, Value::List(vec![keys, values])])
        })
    }))
}
