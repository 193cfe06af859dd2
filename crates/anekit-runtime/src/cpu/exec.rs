//! Running a plan: steps in order, values in slots, dead values dropped after their last
//! use, fp16 rounding and non-finite detection per op when fp16 precision is on.

use super::kernels::{Args, RunCtx};
use super::plan::{Src, SubPlan};
use super::value::Value;
use crate::engine::Precision;
use crate::error::RuntimeError;

/// Live activation bytes of a prediction, and their peak.
#[derive(Debug, Default, Clone, Copy)]
pub struct Meter {
    /// Bytes held now.
    pub live: usize,
    /// Most bytes held at once.
    pub peak: usize,
}

impl Meter {
    fn add(&mut self, n: usize) {
        self.live += n;
        self.peak = self.peak.max(self.live);
    }
    fn sub(&mut self, n: usize) {
        self.live = self.live.saturating_sub(n);
    }
}

/// Run `plan` with its inputs and captured values (in the order of `plan.inputs` and
/// `plan.captures`); returns the block's outputs.
pub fn run(
    plan: &SubPlan,
    inputs: Vec<Value>,
    captures: Vec<Value>,
    ctx: &mut RunCtx<'_>,
    meter: &mut Meter,
) -> Result<Vec<Value>, RuntimeError> {
    let mut slots: Vec<Option<Value>> = vec![None; plan.num_slots];
    for (&slot, v) in plan
        .inputs
        .iter()
        .zip(inputs)
        .chain(plan.captures.iter().map(|c| &c.1).zip(captures))
    {
        meter.add(v.nbytes());
        if let Some(s) = slots.get_mut(slot) {
            *s = Some(v);
        }
    }
    for step in &plan.steps {
        let outs = {
            let args = Args {
                params: &step.params,
                slots: &slots,
                consts: ctx.consts,
            };
            step.kernel
                .run(&args, ctx)
                .map_err(|message| RuntimeError::Op {
                    op: step.op_name.clone(),
                    op_type: step.op_type.clone(),
                    message,
                })?
        };
        if outs.len() != step.outputs.len() {
            return Err(RuntimeError::Op {
                op: step.op_name.clone(),
                op_type: step.op_type.clone(),
                message: format!(
                    "kernel returned {} values for {} outputs",
                    outs.len(),
                    step.outputs.len()
                ),
            });
        }
        for (v, &(slot, dtype)) in outs.into_iter().zip(&step.outputs) {
            let v = if ctx.precision == Precision::Fp16 {
                let v = super::plan::round_if_fp16(v, dtype);
                check_finite(&v, step, &args_max(step, &slots, ctx.consts))?;
                v
            } else {
                v
            };
            meter.add(v.nbytes());
            if let Some(s) = slots.get_mut(slot) {
                *s = Some(v);
            }
        }
        for &f in &step.frees {
            if let Some(v) = slots.get_mut(f).and_then(Option::take) {
                meter.sub(v.nbytes());
            }
        }
    }
    plan.outputs
        .iter()
        .map(|o| match *o {
            Src::Slot(s) => slots
                .get(s)
                .and_then(Option::as_ref)
                .cloned()
                .ok_or_else(|| RuntimeError::Load(format!("output slot {s} was never written"))),
            Src::Const(i) => {
                ctx.consts.get(i).cloned().ok_or_else(|| {
                    RuntimeError::Load(format!("output constant {i} does not exist"))
                })
            }
        })
        .collect()
}

/// The largest finite magnitude among a step's floating-point inputs (for the message).
fn args_max(step: &super::plan::Step, slots: &[Option<Value>], consts: &[Value]) -> f32 {
    let mut m = 0.0f32;
    for (_, srcs) in &step.params {
        for s in srcs {
            let v = match *s {
                Src::Slot(i) => slots.get(i).and_then(Option::as_ref),
                Src::Const(i) => consts.get(i),
            };
            if let Some(Value::F32(a)) = v {
                m = a
                    .iter()
                    .filter(|x| x.is_finite())
                    .fold(m, |m, x| m.max(x.abs()));
            }
        }
    }
    m
}

fn check_finite(v: &Value, step: &super::plan::Step, max_input: &f32) -> Result<(), RuntimeError> {
    if let Value::F32(a) = v
        && let Some(bad) = a.iter().find(|x| !x.is_finite())
    {
        return Err(RuntimeError::NonFinite {
            op: step.op_name.clone(),
            op_type: step.op_type.clone(),
            what: if bad.is_nan() { "NaN" } else { "inf" },
            precision: "fp16",
            max_input: *max_input,
        });
    }
    Ok(())
}
