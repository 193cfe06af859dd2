//! Model states (coremltools `ops/defs/iOS18/states.py`), and the `write_state` that
//! coremltools' `backend/mil/load.py` writes for `coreml_update_state`.

use crate::program::Opset::Ios18;
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError};
use super::{Family, Op, OpDef, Outputs, dom};

/// The tensor type a state wraps.
fn wrapped<'a>(ctx: &InferCtx<'a>, p: &str) -> Result<&'a ValueType, InferError> {
    let a = ctx
        .arg(p)
        .ok_or_else(|| InferError::MissingParam { param: p.into() })?;
    match &a.ty {
        ValueType::State(inner) if matches!(**inner, ValueType::Tensor(_)) => Ok(inner),
        other => Err(InferError::WrongType {
            param: p.into(),
            message: format!("expected a state wrapping a tensor, found {other}"),
        }),
    }
}

fn read_state(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    Ok(vec![wrapped(ctx, "input")?.clone()])
}

/// `write_state` (serialized `coreml_update_state`): `data` must have the wrapped type.
fn write_state(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let w = wrapped(ctx, "input")?;
    let d = &ctx
        .arg("data")
        .ok_or_else(|| InferError::MissingParam {
            param: "data".into(),
        })?
        .ty;
    if w != d {
        return Err(InferError::at(
            "data",
            format!("state wrapped type {w} does not match the data type {d}"),
        ));
    }
    Ok(Vec::new())
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    v.push(
        Op::new(Ios18, "read_state", Family::States)
            .state("input")
            .infer(read_state),
    );
    v.push(
        Op::new(Ios18, "write_state", Family::States)
            .state("input")
            .input(
                "data",
                dom("T", &[Fp16, Fp32, Int8, Int16, Int32, Uint8, Uint16, Bool]),
            )
            .outputs(Outputs::Exactly(0))
            .infer(write_state),
    );
}
