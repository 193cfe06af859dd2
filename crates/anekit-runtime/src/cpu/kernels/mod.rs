//! Kernels of the CPU backend.
//!
//! Each kernel module has
//! - `pub const OPS: &[&str]` — the op types it runs (registry names), and
//! - `pub fn build(ctx: &OpCtx) -> Option<Result<Box<dyn Kernel>, String>>` — `None` when the
//!   op type is not one of its own, else the kernel for this op (parameters that are
//!   constants are read here, once, at load).
//!
//! [`MODULES`] registers them with the registry families they cover; it is the table
//! `build` dispatches on and the coverage table reads, and its tests check it against the op
//! registry (every op classified once, families as declared, builders and lists agreeing).
//!
//! A kernel's [`Kernel::run`] gets the op's arguments ([`Args`]) and returns one value per
//! op output. Floating-point values are f32 whatever the model's width (see
//! [`super::value`]); the executor rounds fp16-typed outputs when fp16 precision is on.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use anekit_mil::Opset;
use anekit_mil::ops::Family;
use anekit_mil::program::{Block, Operation};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};

use super::plan::{Src, SubPlan};
use super::value::Value;
use crate::engine::{Precision, State};

thread_local! {
    /// Set while a prediction runs inline on the caller's thread ([`inline`]).
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The threads a kernel may split its work over: the size of the rayon pool it runs on, or
/// 1 while a prediction runs inline on the caller's thread ([`inline`]). Kernels ask this,
/// never `rayon::current_num_threads()`, which outside a pool names the global pool.
pub fn threads() -> usize {
    if INLINE.with(std::cell::Cell::get) {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Run `f` with [`threads`] answering 1 on this thread (restored afterwards, also on
/// panic): for plans too small for a thread hop to pay.
pub fn inline<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INLINE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(INLINE.with(|c| c.replace(true)));
    f()
}

pub mod activation;
pub mod attention;
pub mod blocked;
pub mod classify;
pub mod control;
pub mod conv;
pub mod conv_direct;
pub mod depthwise;
pub mod elementwise;
pub mod gather;
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
    /// With fp16 precision: a chip's Neural Engine cliffs to emulate.
    pub numerics: Option<&'a crate::engine::AneNumerics>,
    /// Non-fatal numerics events of this prediction (row sums past the exact range).
    pub numerics_warnings: Vec<String>,
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

/// Builds the kernel of one op: `None` when the op type is not one of the module's own.
type Builder = fn(&mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>>;

/// One kernel module: the registry families whose ops it builds, the op types it has
/// kernels for (registry names), and its builder.
#[derive(Debug, Clone, Copy)]
pub struct KernelModule {
    /// The module (`linalg`).
    pub name: &'static str,
    /// The registry families of its ops (`anekit_mil::ops::Family`, the project's one op
    /// taxonomy).
    pub families: &'static [Family],
    /// The op types it builds.
    pub ops: &'static [&'static str],
    /// Its builder.
    pub build: Builder,
}

const fn module(
    name: &'static str,
    families: &'static [Family],
    ops: &'static [&'static str],
    build: Builder,
) -> KernelModule {
    KernelModule {
        name,
        families,
        ops,
        build,
    }
}

/// The registration table of the CPU backend: every kernel module with the registry
/// families and op types it covers. With [`super::plan::PLAN_OPS`] (evaluated while
/// loading) and [`NO_KERNEL`] it classifies every op of the registry exactly once; a test
/// fails otherwise, and fails when a module builds an op of a family it does not declare.
pub const MODULES: &[KernelModule] = &[
    module(
        "activation",
        &[Family::Activation],
        activation::OPS,
        activation::build,
    ),
    module(
        "elementwise",
        &[
            Family::ElementwiseBinary,
            Family::ElementwiseUnary,
            Family::ControlFlow,
        ],
        elementwise::OPS,
        elementwise::build,
    ),
    module("linalg", &[Family::Linear], linalg::OPS, linalg::build),
    module(
        "shape",
        &[Family::TensorTransformation, Family::TensorOperation],
        shape::OPS,
        shape::build,
    ),
    module(
        "tensor_op",
        &[Family::TensorOperation],
        tensor_op::OPS,
        tensor_op::build,
    ),
    module(
        "gather",
        &[Family::ScatterGather],
        gather::OPS,
        gather::build,
    ),
    module("state", &[Family::States], state::OPS, state::build),
    module(
        "control",
        &[Family::ControlFlow],
        control::OPS,
        control::build,
    ),
    module(
        "recurrent",
        &[Family::Recurrent],
        recurrent::OPS,
        recurrent::build,
    ),
    module(
        "image_resizing",
        &[Family::ImageResizing],
        image_resizing::OPS,
        image_resizing::build,
    ),
    module("random", &[Family::Random], random::OPS, random::build),
    module(
        "quantize",
        &[Family::Quantization, Family::Conv],
        quantize::OPS,
        quantize::build,
    ),
    module(
        "classify",
        &[Family::Classify],
        classify::OPS,
        classify::build,
    ),
    module("conv", &[Family::Conv], conv::OPS, conv::build),
    module("pool", &[Family::Pool], pool::OPS, pool::build),
    module(
        "normalization",
        &[Family::Normalization],
        normalization::OPS,
        normalization::build,
    ),
    module(
        "reduction",
        &[Family::Reduction],
        reduction::OPS,
        reduction::build,
    ),
    module(
        "attention",
        &[Family::Transformers],
        attention::OPS,
        attention::build,
    ),
];

/// Registry ops the CPU backend has no kernel for (none today). An op added to the registry
/// must be registered in [`MODULES`] or listed here.
pub const NO_KERNEL: &[&str] = &[];

/// Op type → builder, from [`MODULES`].
fn index() -> &'static HashMap<&'static str, Builder> {
    static INDEX: OnceLock<HashMap<&'static str, Builder>> = OnceLock::new();
    INDEX.get_or_init(|| {
        MODULES
            .iter()
            .flat_map(|m| m.ops.iter().map(|op| (*op, m.build)))
            .collect()
    })
}

/// Build the kernel for an op, or say why it cannot run.
pub fn build(ctx: &mut OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let missing = || format!("no CPU kernel for op type {:?}", ctx.op_type());
    let b = index().get(ctx.op_type()).ok_or_else(missing)?;
    match b(ctx) {
        Some(k) => k,
        None => Err(format!("no CPU kernel for op type {:?}", ctx.op_type())),
    }
}

/// Every op type the CPU backend runs (for the coverage table).
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&str> = MODULES.iter().flat_map(|m| m.ops.iter().copied()).collect();
    v.extend(super::plan::PLAN_OPS);
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn inline_runs_report_one_thread_and_restore_the_pool_count() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(super::threads(), 4);
            let nested = super::inline(|| (super::threads(), super::inline(super::threads)));
            assert_eq!(nested, (1, 1));
            assert_eq!(super::threads(), 4);
            let caught = std::panic::catch_unwind(|| super::inline(|| panic!("in a kernel")));
            assert!(caught.is_err());
            assert_eq!(super::threads(), 4, "restored after a panic");
        });
    }

    use std::collections::BTreeMap;

    use anekit_mil::ops::{Family, audit};
    use anekit_mil::program::Operation;

    use super::*;

    #[test]
    fn the_registration_table_classifies_every_registry_op_once() {
        let keys = MODULES
            .iter()
            .flat_map(|m| m.ops.iter().copied())
            .chain(super::super::plan::PLAN_OPS.iter().copied())
            .chain(NO_KERNEL.iter().copied());
        let a = audit("anekit_runtime::cpu::kernels::MODULES", keys);
        assert!(a.is_complete(), "{a}");
    }

    #[test]
    fn modules_build_the_ops_of_the_families_they_declare() {
        for m in MODULES {
            for op in m.ops {
                let f = Family::of(op);
                assert!(
                    f.is_some_and(|f| m.families.contains(&f)),
                    "kernel module {} builds {op} of family {f:?}, not one of {:?}",
                    m.name,
                    m.families
                );
            }
            for f in m.families {
                assert!(
                    m.ops.iter().any(|op| Family::of(op) == Some(*f)),
                    "kernel module {} declares {f} but builds none of its ops",
                    m.name
                );
            }
        }
    }

    /// Each module's builder answers for exactly the ops it lists: its match arms and its
    /// table entry agree.
    #[test]
    fn builders_answer_for_their_listed_ops_only() {
        let types = BTreeMap::new();
        let packed = std::collections::HashMap::new();
        let all: Vec<&str> = MODULES.iter().flat_map(|m| m.ops.iter().copied()).collect();
        for m in MODULES {
            for op in &all {
                let operation = Operation::new(*op);
                let mut nested =
                    |_: &Block| -> Result<SubPlan, String> { Err("no nested blocks".into()) };
                let mut ctx = OpCtx {
                    op: &operation,
                    opset: Opset::Ios18,
                    params: &[],
                    consts: &[],
                    packed: &packed,
                    types: &types,
                    nested: &mut nested,
                };
                let answered = (m.build)(&mut ctx).is_some();
                assert_eq!(
                    answered,
                    m.ops.contains(op),
                    "kernel module {}: builder and table disagree on {op}",
                    m.name
                );
            }
        }
    }
}
