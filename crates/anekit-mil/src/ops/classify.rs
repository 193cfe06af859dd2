//! `classify` (coremltools `ops/defs/iOS15/classify.py`).

use crate::program::Opset::Ios15;
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError};
use super::{Family, Op, OpDef, Outputs, dt, ty};

/// `classify`: the top class (string or int64 scalar) and the class → probability dict.
fn classify(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let p = ctx.tensor("probabilities")?;
    let c = ctx.arg("classes").ok_or_else(|| InferError::MissingParam {
        param: "classes".into(),
    })?;
    let ValueType::List { element, length } = &c.ty else {
        return Err(InferError::at(
            "classes",
            format!("classes must be a list, found {}", c.ty),
        ));
    };
    let et = element
        .as_tensor()
        .filter(|t| t.is_scalar() && matches!(t.dtype, DataType::String | DataType::Int64))
        .ok_or_else(|| {
            InferError::at(
                "classes",
                "elements of classes must be str or int64 scalars",
            )
        })?;
    if let (Some(n), Some(l)) = (p.element_count(), length.fixed())
        && n != l
    {
        return Err(InferError::at(
            "classes",
            format!("number of classes ({l}) must match the size of probabilities ({n})"),
        ));
    }
    let k = ValueType::scalar(et.dtype);
    Ok(vec![
        k.clone(),
        ValueType::Dict {
            key: Box::new(k),
            value: Box::new(ValueType::scalar(DataType::Fp64)),
        },
    ])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    v.push(
        Op::new(Ios15, "classify", Family::Classify)
            .input("probabilities", ty(dt::FP32))
            .list("classes", true)
            .outputs(Outputs::Exactly(2))
            .infer(classify),
    );
}
