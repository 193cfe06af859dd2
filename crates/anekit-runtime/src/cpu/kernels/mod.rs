//! Kernels of the CPU backend.
//!
//! Each op family lives in its own module with
//! - `pub const OPS: &[&str]` — the op types it runs (this feeds the coverage table), and
//! - `pub fn build(ctx: &OpCtx) -> Option<Result<Box<dyn Kernel>, String>>` — `None` when the
//!   op type is not one of its own, else the kernel for this op (parameters that are
//!   constants are read here, once, at load).
//!
//! A kernel's [`Kernel::run`] gets the op's arguments ([`Args`]) and returns one value per
//! op output. Floating-point values are f32 whatever the model's width (see
//! [`super::value`]); the executor rounds fp16-typed outputs when fp16 precision is on.

use std::collections::BTreeMap;

use anekit_mil::Opset;
use anekit_mil::program::{Block, Operation};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};

use super::plan::{Src, SubPlan};
use super::value::Value;
use crate::engine::{Precision, State};

pub mod activation;
pub mod attention;
pub mod classify;
pub mod control;
pub mod conv;
pub mod elementwise;
pub mod gather;
pub mod gemm;
pub mod image_resizing;
pub mod linalg;
pub mod normalization;
pub mod pool;
pub mod quantize;
pub mod random;
pub mod recurrent;
pub mod reduction;
pub mod shape;
pub mod simd;
pub mod state;
pub mod tensor_op;
pub mod util;
pub mod window;

/// A compiled op.
pub trait Kernel: Send + Sync {
    /// Run the op: one value per op output, or a message saying what went wrong.
    fn run(&self, args: &Args<'_>, ctx: &mut RunCtx<'_>) -> Result<Vec<Value>, String>;

    /// Run the op with elementwise ops fused after it ([`crate::cpu::fuse`]), applied to its
    /// first output. The default runs the op, then the epilogue over the whole output;
    /// kernels that produce their output in blocks (convolutions) override it to apply the
    /// epilogue to each block while it is in cache.
    fn run_fused(
        &self,
        args: &Args<'_>,
        ctx: &mut RunCtx<'_>,
        epilogue: &[crate::cpu::fuse::EwOp],
    ) -> Result<Vec<Value>, String> {
        let mut outs = self.run(args, ctx)?;
        if let Some(first) = outs.first_mut() {
            let v = std::mem::replace(first, Value::List(Vec::new()));
            *first = crate::cpu::fuse::apply_epilogue(epilogue, v, &|p| args.get(p))?;
        }
        Ok(outs)
    }
}

impl<F> Kernel for F
where
    F: Fn(&Args<'_>, &mut RunCtx<'_>) -> Result<Vec<Value>, String> + Send + Sync,
{
    fn run(&self, args: &Args<'_>, ctx: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
        self(args, ctx)
    }
}

/// Box a closure as a kernel.
pub fn kernel<F>(f: F) -> Box<dyn Kernel>
where
    F: Fn(&Args<'_>, &mut RunCtx<'_>) -> Result<Vec<Value>, String> + Send + Sync + 'static,
{
    Box::new(f)
}

/// What a kernel may use while running.
pub struct RunCtx<'a> {
    /// The precision being emulated.
    pub precision: Precision,
    /// The prediction's state (stateful models).
    pub state: Option<&'a mut State>,
    /// The plan's constants (sub-plans of control-flow ops refer to them).
    pub consts: &'a [Value],
    /// State names → declared MIL types, for converting state tensors.
    pub state_types: &'a BTreeMap<String, TensorType>,
}

/// The arguments of one op invocation, by parameter name.
pub struct Args<'a> {
    pub(crate) params: &'a [(String, Vec<Src>)],
    pub(crate) slots: &'a [Option<Value>],
    pub(crate) consts: &'a [Value],
}

impl<'a> Args<'a> {
    fn resolve(&self, s: &Src) -> Option<&'a Value> {
        match *s {
            Src::Slot(i) => self.slots.get(i)?.as_ref(),
            Src::Const(i) => self.consts.get(i),
        }
    }

    /// The value bound to `param` (the first, for variadic parameters), if given.
    pub fn get(&self, param: &str) -> Option<&'a Value> {
        let (_, srcs) = self.params.iter().find(|(p, _)| p == param)?;
        self.resolve(srcs.first()?)
    }

    /// The value bound to `param`, or an error saying it is missing.
    pub fn req(&self, param: &str) -> Result<&'a Value, String> {
        self.get(param)
            .ok_or_else(|| format!("parameter {param:?} is missing"))
    }

    /// Every value bound to a variadic parameter, in order.
    pub fn all(&self, param: &str) -> Result<Vec<&'a Value>, String> {
        let Some((_, srcs)) = self.params.iter().find(|(p, _)| p == param) else {
            return Ok(Vec::new());
        };
        srcs.iter()
            .map(|s| {
                self.resolve(s)
                    .ok_or_else(|| format!("argument of {param:?} is not available"))
            })
            .collect()
    }

    /// The f32 tensor bound to `param`.
    pub fn f32(&self, param: &str) -> Result<&'a ndarray::ArrayD<f32>, String> {
        self.req(param)?.f32().map_err(|e| format!("{param}: {e}"))
    }

    /// The i32 tensor bound to `param`.
    pub fn i32(&self, param: &str) -> Result<&'a ndarray::ArrayD<i32>, String> {
        self.req(param)?.i32().map_err(|e| format!("{param}: {e}"))
    }

    /// Integer elements of `param` (ints or bools).
    pub fn i64s(&self, param: &str) -> Result<Vec<i64>, String> {
        self.req(param)?
            .to_i64s()
            .map_err(|e| format!("{param}: {e}"))
    }

    /// A scalar integer parameter, or `default` when absent.
    pub fn i64_or(&self, param: &str, default: i64) -> Result<i64, String> {
        match self.get(param) {
            None => Ok(default),
            Some(v) => match v.to_i64s().map_err(|e| format!("{param}: {e}"))?.as_slice() {
                [x] => Ok(*x),
                v => Err(format!("{param}: expected one integer, got {}", v.len())),
            },
        }
    }

    /// A scalar float parameter, or `default` when absent.
    pub fn f32_or(&self, param: &str, default: f32) -> Result<f32, String> {
        match self.get(param) {
            None => Ok(default),
            Some(v) => match v.to_f32s().map_err(|e| format!("{param}: {e}"))?.as_slice() {
                [x] => Ok(*x),
                v => Err(format!("{param}: expected one number, got {}", v.len())),
            },
        }
    }

    /// A scalar bool parameter, or `default` when absent.
    pub fn bool_or(&self, param: &str, default: bool) -> Result<bool, String> {
        Ok(self.i64_or(param, i64::from(default))? != 0)
    }

    /// A string parameter, or `default` when absent.
    pub fn str_or(&self, param: &str, default: &'a str) -> Result<&'a str, String> {
        match self.get(param) {
            None => Ok(default),
            Some(v) => v.as_str().map_err(|e| format!("{param}: {e}")),
        }
    }
}

/// What a kernel builder knows about the op at load time.
pub struct OpCtx<'a> {
    /// The op.
    pub op: &'a Operation,
    /// The opset of the function.
    pub opset: Opset,
    /// Parameter → bound sources (what [`Args`] will resolve).
    pub(crate) params: &'a [(String, Vec<Src>)],
    /// The plan's constants so far.
    pub(crate) consts: &'a [Value],
    /// Constants bound to this op that stay packed (by constant index; see
    /// [`OpCtx::packed`]).
    pub(crate) packed: &'a std::collections::HashMap<usize, crate::cpu::packed::Shared>,
    /// Types of the variables in scope, by name.
    pub(crate) types: &'a BTreeMap<String, ValueType>,
    /// Compiles a nested block (control flow) against the current scope.
    pub(crate) nested: &'a mut dyn FnMut(&Block) -> Result<SubPlan, String>,
}

impl OpCtx<'_> {
    /// The op's name.
    pub fn name(&self) -> &str {
        self.op.display_name()
    }

    /// The op's type.
    pub fn op_type(&self) -> &str {
        &self.op.op_type
    }

    /// The constant bound to `param`, if it is a constant (literal, `const` or decompressed
    /// `constexpr_*` output, or folded op output).
    pub fn constant(&self, param: &str) -> Option<&Value> {
        let (_, srcs) = self.params.iter().find(|(p, _)| p == param)?;
        match srcs.as_slice() {
            [Src::Const(i)] => self.consts.get(*i),
            _ => None,
        }
    }

    /// The packed weight bound to `param`, when the plan kept it packed for this kernel
    /// (then [`OpCtx::constant`] and the run-time argument are an empty placeholder).
    pub fn packed(&self, param: &str) -> Option<crate::cpu::packed::Shared> {
        let (_, srcs) = self.params.iter().find(|(p, _)| p == param)?;
        match srcs.as_slice() {
            [Src::Const(i)] => self.packed.get(i).cloned(),
            _ => None,
        }
    }

    /// Whether `param` is bound at all.
    pub fn has(&self, param: &str) -> bool {
        self.params.iter().any(|(p, _)| p == param)
    }

    /// The declared type of the variable bound to `param` (first binding).
    pub fn input_type(&self, param: &str) -> Option<&TensorType> {
        let arg = self.op.inputs.get(param)?;
        match arg.0.first()? {
            anekit_mil::Binding::Name(n) => self.types.get(n)?.as_tensor(),
            anekit_mil::Binding::Value(v) => v.tensor_type(),
        }
    }

    /// The op's declared outputs.
    pub fn outputs(&self) -> &[NamedValueType] {
        &self.op.outputs
    }

    /// The declared element type of output `i`.
    pub fn output_dtype(&self, i: usize) -> Option<DataType> {
        self.op.outputs.get(i)?.ty.as_tensor().map(|t| t.dtype)
    }

    /// Compile a nested block (the body of `cond`/`while_loop`).
    pub fn compile_block(&mut self, block: &Block) -> Result<SubPlan, String> {
        (self.nested)(block)
    }
}

/// The kernel families, tried in order.
type Builder = fn(&mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>>;

const FAMILIES: &[(&[&str], Builder)] = &[
    (elementwise::OPS, elementwise::build),
    (activation::OPS, activation::build),
    (linalg::OPS, linalg::build),
    (shape::OPS, shape::build),
    (tensor_op::OPS, tensor_op::build),
    (gather::OPS, gather::build),
    (state::OPS, state::build),
    (control::OPS, control::build),
    (recurrent::OPS, recurrent::build),
    (image_resizing::OPS, image_resizing::build),
    (random::OPS, random::build),
    (quantize::OPS, quantize::build),
    (classify::OPS, classify::build),
    (conv::OPS, conv::build),
    (pool::OPS, pool::build),
    (normalization::OPS, normalization::build),
    (reduction::OPS, reduction::build),
    (attention::OPS, attention::build),
];

/// Build the kernel for an op, or say why it cannot run.
pub fn build(ctx: &mut OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    for (_, b) in FAMILIES {
        if let Some(k) = b(ctx) {
            return k;
        }
    }
    Err(format!("no CPU kernel for op type {:?}", ctx.op_type()))
}

/// Every op type the CPU backend runs (for the coverage table).
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|(ops, _)| ops.iter().copied())
        .collect();
    v.extend(super::plan::PLAN_OPS);
    v.sort_unstable();
    v.dedup();
    v
}
