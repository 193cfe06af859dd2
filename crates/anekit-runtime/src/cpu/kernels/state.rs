//! States (iOS18, coremltools `ops/defs/iOS18/states.py`): `read_state` and `write_state`.
//!
//! coremltools serializes its `coreml_update_state(state, value)` as
//! `write_state(input=state, data=value)` (no outputs) followed, when the result is used, by
//! `read_state(input=state)` (`backend/mil/load.py`). A state argument is
//! [`Value::State`]`(name)`; the tensor lives in the prediction's [`State`](crate::State)
//! in the state's declared element type, so writing an fp16 state rounds to fp16 exactly as
//! Core ML stores it.

use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;
use crate::cpu::{tensor_to_value, value_to_tensor};
use crate::tensor::{ElementType, Tensor};

/// Op types of this family.
pub const OPS: &[&str] = &["read_state", "write_state"];

fn state_name<'a>(args: &Args<'a>, param: &str) -> Result<&'a str, String> {
    match args.req(param)? {
        Value::State(n) => Ok(n),
        v => Err(format!("{param}: expected a state, got {}", v.describe())),
    }
}

fn read(args: &Args<'_>, ctx: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
    let name = state_name(args, "input")?;
    let state = ctx
        .state
        .as_deref()
        .ok_or_else(|| format!("state {name:?}: the prediction has no state"))?;
    let t = state.read(name).map_err(|e| e.to_string())?;
    Ok(vec![tensor_to_value(t)])
}

/// Store `data` into state `name`, converted to its declared element type; returns what
/// was stored.
fn write(name: &str, data: &Value, ctx: &mut RunCtx<'_>) -> Result<Tensor, String> {
    let ty = ctx
        .state_types
        .get(name)
        .ok_or_else(|| format!("{name:?} is not a state of this function"))?;
    let et = ElementType::from_mil(ty.dtype).ok_or_else(|| {
        format!(
            "state {name:?} has element type {}, which cannot be stored",
            ty.dtype
        )
    })?;
    let t = value_to_tensor(data.clone(), et).map_err(|e| format!("state {name:?}: {e}"))?;
    let state = ctx
        .state
        .as_deref_mut()
        .ok_or_else(|| format!("state {name:?}: the prediction has no state"))?;
    state.write(name, t.clone()).map_err(|e| e.to_string())?;
    Ok(t)
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k: Box<dyn Kernel> = match ctx.op_type() {
        "read_state" => kernel(read),
        "write_state" => kernel(|args: &Args<'_>, ctx: &mut RunCtx<'_>| {
            let name = state_name(args, "input")?;
            write(name, args.req("data")?, ctx)?;
            Ok(Vec::new())
        }),
        _ => return None,
    };
    Some(Ok(k))
}
