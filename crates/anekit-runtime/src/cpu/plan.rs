//! Compilation of a MIL function into an execution plan.
//!
//! - `const` ops become constants; `constexpr_*` ops are decompressed once, here.
//! - Every other op gets a kernel; an op whose arguments are all constants (shape
//!   arithmetic, ...) is run once here and becomes a constant too (constant folding).
//! - Values live in numbered slots; each step lists the slots to free after it, computed
//!   from the last use of every value, so activation memory is released as soon as nothing
//!   needs it: the executor ([`super::exec`]) drops the value and the allocator gets the
//!   memory back. There is no buffer pool or arena: each kernel allocates its outputs.
//! - Nested blocks (`cond`, `while_loop` bodies) compile to [`SubPlan`]s; values they use
//!   from the enclosing scope are passed in as captures.

use std::collections::{BTreeMap, HashMap};

use anekit_mil::Opset;
use anekit_mil::program::{Binding, Block, Function, Operation};
use anekit_mil::types::{DataType, TensorType, ValueType};
use anekit_mil::value::Value as MilValue;

use super::constexpr;
use super::fuse;
use super::kernels::{self, Args, Kernel, OpCtx, RunCtx};
use super::layout;
use super::packed;
use super::value::Value;
use crate::engine::Precision;

/// Op types the compiler handles itself (no kernel).
pub const PLAN_OPS: &[&str] = &[
    "const",
    "constexpr_affine_dequantize",
    "constexpr_blockwise_shift_scale",
    "constexpr_cast",
    "constexpr_lut_to_dense",
    "constexpr_lut_to_sparse",
    "constexpr_sparse_blockwise_shift_scale",
    "constexpr_sparse_to_dense",
];

/// Where an argument comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// A slot of the running (sub-)plan.
    Slot(usize),
    /// A constant of the plan.
    Const(usize),
}

/// One op to run.
pub struct Step {
    /// The op's name (for messages).
    pub op_name: String,
    /// The op's type.
    pub op_type: String,
    /// The kernel.
    pub kernel: Box<dyn Kernel>,
    /// Parameter → sources (captures of nested blocks appear as `capture:<name>`).
    pub params: Vec<(String, Vec<Src>)>,
    /// Output slots with their declared element types.
    pub outputs: Vec<(usize, Option<DataType>)>,
    /// Slots whose values are dead after this step.
    pub frees: Vec<usize>,
    /// What the op computes, when it is a fusable elementwise op ([`fuse`]).
    pub desc: Option<fuse::Desc>,
    /// Elementwise ops fused after the kernel, applied to its output in place.
    pub epilogue: Vec<fuse::EwOp>,
    /// The kernel does not run: this slot's value (which dies here) is taken and the
    /// epilogue applied to it in place.
    pub inplace: Option<usize>,
    /// A shape-only op (`reshape`, `expand_dims`, `squeeze`) whose output shape is fixed:
    /// when its input dies here the executor gives that value this shape instead of
    /// running the kernel, which copies ([`Step::dying_view_input`]).
    pub view_shape: Option<Vec<usize>>,
}

/// Op types whose output is their input `x` under another shape.
pub const SHAPE_ONLY: &[&str] = &["reshape", "expand_dims", "squeeze"];

impl Step {
    /// The slot of this step's `x` when the step is a shape-only op with a fixed output
    /// shape and `x` dies here, read by no other parameter of the step (a fused epilogue's
    /// operand, say): its buffer can then become the output.
    pub fn dying_view_input(&self) -> Option<usize> {
        self.view_shape.as_ref()?;
        let (_, srcs) = self.params.iter().find(|(n, _)| n == "x")?;
        let s = match srcs.as_slice() {
            [Src::Slot(s)] if self.frees.binary_search(s).is_ok() => *s,
            _ => return None,
        };
        let reads = self
            .params
            .iter()
            .flat_map(|(_, srcs)| srcs)
            .filter(|src| **src == Src::Slot(s))
            .count();
        (reads == 1).then_some(s)
    }
}

/// A compiled block.
#[derive(Default)]
pub struct SubPlan {
    /// Slots of the block's inputs (function inputs, or loop variables).
    pub inputs: Vec<usize>,
    /// Values from the enclosing scope: (name there, slot here).
    pub captures: Vec<(String, usize)>,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// The block's outputs.
    pub outputs: Vec<Src>,
    /// Number of slots.
    pub num_slots: usize,
    /// Declared byte size of each slot's value, where the type has a fixed shape.
    pub slot_bytes: Vec<Option<usize>>,
}

impl SubPlan {
    /// Statically planned activation memory: the most bytes live at once (values of fixed
    /// size only), and the sum over all values — what the plan would hold without freeing.
    pub fn planned_memory(&self) -> (usize, usize) {
        let size = |s: usize| self.slot_bytes.get(s).copied().flatten().unwrap_or(0);
        let mut live: usize = self
            .inputs
            .iter()
            .chain(self.captures.iter().map(|c| &c.1))
            .map(|&s| size(s))
            .sum();
        let mut total = live;
        let mut peak = live;
        for step in &self.steps {
            let out: usize = step.outputs.iter().map(|&(s, _)| size(s)).sum();
            live += out;
            total += out;
            peak = peak.max(live);
            live -= step.frees.iter().map(|&s| size(s)).sum::<usize>().min(live);
        }
        (peak, total)
    }
}

/// A compiled function.
pub struct Plan {
    /// The function's name.
    pub function: String,
    /// The top-level block.
    pub main: SubPlan,
    /// Constants (weights decompressed, folded values).
    pub consts: Vec<Value>,
    /// Function inputs (tensor inputs and states), in order, with their types.
    pub inputs: Vec<(String, ValueType)>,
    /// Output names with declared types.
    pub outputs: Vec<(String, Option<TensorType>)>,
    /// Declared state types by name.
    pub state_types: BTreeMap<String, TensorType>,
    /// Number of ops folded into constants at load.
    pub folded: usize,
    /// Number of elementwise ops fused into the step before them.
    pub fused: usize,
    /// Number of convolutions that run in the channel-blocked layout ([`layout`]).
    pub blocked: usize,
    /// Weights kept packed for the kernels that decode them ([`packed`]).
    pub packed: usize,
}

struct Scope {
    names: HashMap<String, Src>,
    captures: Vec<(String, usize)>,
    next_slot: usize,
    slot_bytes: Vec<Option<usize>>,
    /// Declared shape of each slot, where fixed (for [`layout`]).
    slot_shapes: Vec<Option<Vec<usize>>>,
}

impl Scope {
    fn new() -> Self {
        Scope {
            names: HashMap::new(),
            captures: Vec::new(),
            next_slot: 0,
            slot_bytes: Vec::new(),
            slot_shapes: Vec::new(),
        }
    }
    fn slot(&mut self, ty: Option<&ValueType>) -> usize {
        self.next_slot += 1;
        self.slot_bytes.push(ty.and_then(byte_size));
        self.slot_shapes.push(ty.and_then(|t| {
            t.as_tensor()?
                .fixed_shape()?
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect()
        }));
        self.next_slot - 1
    }
}

fn byte_size(ty: &ValueType) -> Option<usize> {
    let t = ty.as_tensor()?;
    let n = usize::try_from(t.element_count()?).ok()?;
    let w = match t.dtype {
        DataType::Bool | DataType::String => 1,
        _ => 4,
    };
    n.checked_mul(w)
}

struct Compiler {
    /// Whether elementwise ops are fused ([`fuse`]).
    fuse: bool,
    /// Whether convolutional regions run channel-blocked ([`layout`]).
    blocked: bool,
    /// Whether big weights stay packed ([`packed`]).
    pack: bool,
    /// Constants not converted yet (their `consts` entry is a placeholder).
    lazy: HashMap<usize, Lazy>,
    consts: Vec<Value>,
    opset: Opset,
    types: BTreeMap<String, ValueType>,
    /// Scopes, innermost last.
    scopes: Vec<Scope>,
    folded: usize,
    fused: usize,
    blocked_convs: usize,
    /// How many step parameters and block outputs name each constant (counted when made,
    /// so fusion can only leave it too high): a weight only the blocked layout's packed
    /// copy needs is dropped.
    const_uses: HashMap<usize, usize>,
}

/// How to compile.
#[derive(Debug, Clone, Copy)]
pub struct CompileOptions {
    /// Fuse elementwise ops into their producers ([`fuse`]); off for fp16 emulation, which
    /// rounds and checks every op's own output.
    pub fuse: bool,
    /// Keep large fp16 / quantized / palettized weights in their stored form for the
    /// kernels that decode them on the fly ([`packed`]).
    pub pack_weights: bool,
    /// Run convolutional regions in the channel-blocked layout ([`layout`]); with `fuse`
    /// only. The default is on unless `ANEKIT_NCHWC=0`.
    pub blocked_layout: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            fuse: true,
            pack_weights: true,
            blocked_layout: layout::enabled_by_env(),
        }
    }
}

impl CompileOptions {
    /// Every op as its own step, weights decompressed: the plan the rewrites are checked
    /// against.
    pub fn unoptimized() -> Self {
        Self {
            fuse: false,
            pack_weights: false,
            blocked_layout: false,
        }
    }
}

/// Parameters whose kernels decode packed weights themselves.
fn reads_packed(op: &str, param: &str, params: &[(String, Vec<Src>)], consts: &[Value]) -> bool {
    let const_int = |name: &str| -> Option<i64> {
        match params.iter().find(|(p, _)| p == name) {
            None => Some(0),
            Some((_, s)) => match s.as_slice() {
                [Src::Const(i)] => match consts.get(*i)?.to_i64s().ok()?.as_slice() {
                    [v] => Some(*v),
                    _ => None,
                },
                _ => None,
            },
        }
    };
    match (op, param) {
        ("linear", "weight") => true,
        ("gather", "x") => const_int("axis") == Some(0) && const_int("batch_dims") == Some(0),
        _ => false,
    }
}

/// A constant that is not converted yet.
enum Lazy {
    /// As stored in the model.
    Raw(MilValue),
    /// In packed form.
    Packed(packed::Shared),
}

fn placeholder() -> Value {
    Value::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])))
}

/// Whether a `const` is worth keeping unconverted until an op asks for it.
fn lazy_candidate(v: &MilValue) -> bool {
    v.tensor_type().is_some_and(|t| {
        (t.dtype == DataType::Fp16 || t.dtype.is_int() && t.dtype.bits().is_some_and(|b| b <= 8))
            && t.element_count()
                .and_then(|n| usize::try_from(n).ok())
                .is_some_and(|n| n >= packed::MIN_ELEMENTS)
    })
}

/// Compile `function` (named `name`) for the CPU backend, with the default options.
pub fn compile(name: &str, function: &Function) -> Result<Plan, crate::RuntimeError> {
    compile_with(name, function, CompileOptions::default())
}

/// Compile `function` (named `name`) for the CPU backend.
pub fn compile_with(
    name: &str,
    function: &Function,
    options: CompileOptions,
) -> Result<Plan, crate::RuntimeError> {
    let block = function.block().ok_or_else(|| {
        crate::RuntimeError::Load(format!(
            "function {name:?} has no block for its opset {:?}",
            function.opset
        ))
    })?;
    let opset = function.known_opset().unwrap_or(Opset::Ios18);
    let mut c = Compiler {
        fuse: options.fuse,
        blocked: options.fuse && options.blocked_layout,
        pack: options.pack_weights,
        lazy: HashMap::new(),
        consts: Vec::new(),
        opset,
        types: BTreeMap::new(),
        scopes: vec![Scope::new()],
        folded: 0,
        fused: 0,
        blocked_convs: 0,
        const_uses: HashMap::new(),
    };
    let mut inputs = Vec::new();
    let mut input_slots = Vec::new();
    let mut state_types = BTreeMap::new();
    for i in &function.inputs {
        let slot = c.scope().slot(Some(&i.ty));
        c.scope().names.insert(i.name.clone(), Src::Slot(slot));
        c.types.insert(i.name.clone(), i.ty.clone());
        if let ValueType::State(inner) = &i.ty
            && let Some(t) = inner.as_tensor()
        {
            state_types.insert(i.name.clone(), t.clone());
        }
        inputs.push((i.name.clone(), i.ty.clone()));
        input_slots.push(slot);
    }
    let main = c.block(block, input_slots)?;
    let outputs = block
        .outputs
        .iter()
        .map(|o| {
            (
                o.clone(),
                c.types.get(o).and_then(|t| t.as_tensor()).cloned(),
            )
        })
        .collect();
    tracing::debug!(
        function = name,
        steps = main.steps.len(),
        consts = c.consts.len(),
        folded = c.folded,
        fused = c.fused,
        packed = c
            .lazy
            .values()
            .filter(|l| matches!(l, Lazy::Packed(_)))
            .count(),
        "compiled"
    );
    Ok(Plan {
        function: name.to_string(),
        main,
        consts: c.consts,
        inputs,
        outputs,
        state_types,
        folded: c.folded,
        fused: c.fused,
        blocked: c.blocked_convs,
        packed: c
            .lazy
            .values()
            .filter(|l| matches!(l, Lazy::Packed(_)))
            .count(),
    })
}

fn op_err(op: &Operation, message: impl Into<String>) -> crate::RuntimeError {
    crate::RuntimeError::Op {
        op: op.display_name().to_string(),
        op_type: op.op_type.clone(),
        message: message.into(),
    }
}

impl Compiler {
    fn scope(&mut self) -> &mut Scope {
        // There is always at least the function scope.
        let n = self.scopes.len();
        &mut self.scopes[n - 1]
    }

    /// Resolve a name, capturing it from enclosing scopes if needed.
    fn lookup(&mut self, name: &str) -> Option<Src> {
        let depth = self
            .scopes
            .iter()
            .rposition(|s| s.names.contains_key(name))?;
        let mut src = *self.scopes[depth].names.get(name)?;
        for d in depth + 1..self.scopes.len() {
            if let Src::Slot(_) = src {
                let ty = self.types.get(name).cloned();
                let scope = &mut self.scopes[d];
                let slot = scope.slot(ty.as_ref());
                scope.captures.push((name.to_string(), slot));
                scope.names.insert(name.to_string(), Src::Slot(slot));
                src = Src::Slot(slot);
            }
        }
        Some(src)
    }

    /// Convert a lazy constant in place.
    fn materialise(&mut self, i: usize) -> Result<(), String> {
        let v = match self.lazy.remove(&i) {
            None => return Ok(()),
            Some(Lazy::Raw(v)) => Value::from_mil(&v)?,
            Some(Lazy::Packed(p)) => p.to_value()?,
        };
        if let Some(c) = self.consts.get_mut(i) {
            *c = v;
        }
        Ok(())
    }

    fn push_const(&mut self, v: Value) -> Src {
        self.consts.push(v);
        Src::Const(self.consts.len() - 1)
    }

    fn block(&mut self, block: &Block, inputs: Vec<usize>) -> Result<SubPlan, crate::RuntimeError> {
        let mut steps = Vec::new();
        for op in &block.operations {
            self.op(op, &mut steps)?;
        }
        let outputs = block
            .outputs
            .iter()
            .map(|o| {
                self.lookup(o).ok_or_else(|| {
                    crate::RuntimeError::Load(format!("block output {o:?} is not defined"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for o in &outputs {
            if let Src::Const(i) = *o {
                self.materialise(i).map_err(crate::RuntimeError::Load)?;
                *self.const_uses.entry(i).or_default() += 1;
            }
        }
        if self.fuse {
            self.fused += fuse::fuse(&mut steps, &outputs);
        }
        if self.blocked {
            // The candidates' weights and biases, converted.
            for step in &steps {
                if step.op_type.split('+').next() != Some("conv") {
                    continue;
                }
                for (name, srcs) in &step.params {
                    if let ("weight" | "bias", [Src::Const(i)]) = (name.as_str(), srcs.as_slice()) {
                        self.materialise(*i).map_err(crate::RuntimeError::Load)?;
                    }
                }
            }
            let n = self.scopes.len();
            let scope = &mut self.scopes[n - 1];
            let mut slots = layout::Slots {
                shapes: &mut scope.slot_shapes,
                bytes: &mut scope.slot_bytes,
                next: &mut scope.next_slot,
            };
            let (count, released) = layout::rewrite(&mut steps, &outputs, &self.consts, &mut slots);
            self.blocked_convs += count;
            // Weights and biases now held packed by the blocked kernels only.
            for i in released {
                let uses = self.const_uses.entry(i).or_default();
                *uses = uses.saturating_sub(1);
                if *uses == 0
                    && let Some(c) = self.consts.get_mut(i)
                {
                    *c = placeholder();
                }
            }
        }
        let scope = self.scope();
        let mut plan = SubPlan {
            inputs,
            captures: std::mem::take(&mut scope.captures),
            steps,
            outputs,
            num_slots: scope.next_slot,
            slot_bytes: std::mem::take(&mut scope.slot_bytes),
        };
        compute_frees(&mut plan);
        Ok(plan)
    }

    fn define(&mut self, op: &Operation, i: usize, src: Src) -> Result<(), crate::RuntimeError> {
        let out = op.outputs.get(i).ok_or_else(|| {
            op_err(
                op,
                format!(
                    "produces more than its {} declared outputs",
                    op.outputs.len()
                ),
            )
        })?;
        self.types.insert(out.name.clone(), out.ty.clone());
        self.scope().names.insert(out.name.clone(), src);
        Ok(())
    }

    fn op(&mut self, op: &Operation, steps: &mut Vec<Step>) -> Result<(), crate::RuntimeError> {
        if op.op_type == "const" {
            let v = op
                .attributes
                .get("val")
                .ok_or_else(|| op_err(op, "const without a val attribute"))?;
            if self.pack && lazy_candidate(v) {
                let src = self.push_const(placeholder());
                if let Src::Const(i) = src {
                    self.lazy.insert(i, Lazy::Raw(v.clone()));
                }
                return self.define(op, 0, src);
            }
            let value = Value::from_mil(v).map_err(|m| op_err(op, m))?;
            let src = self.push_const(value);
            return self.define(op, 0, src);
        }
        if op.op_type.starts_with("constexpr_") {
            return self.constexpr(op);
        }
        // Arguments.
        let mut params: Vec<(String, Vec<Src>)> = Vec::new();
        for (param, arg) in &op.inputs {
            let mut srcs = Vec::new();
            for b in &arg.0 {
                srcs.push(match b {
                    Binding::Name(n) => self.lookup(n).ok_or_else(|| {
                        op_err(
                            op,
                            format!(
                                "input {param:?} refers to {n:?}, which is not defined before it"
                            ),
                        )
                    })?,
                    Binding::Value(v) => {
                        let value = Value::from_mil(v)
                            .map_err(|m| op_err(op, format!("input {param:?}: {m}")))?;
                        self.push_const(value)
                    }
                });
            }
            params.push((param.clone(), srcs));
        }
        // Nested blocks compile first; the kernel takes them from the context.
        let mut subplans = Vec::new();
        for b in &op.blocks {
            self.scopes.push(Scope::new());
            let mut ins = Vec::new();
            for i in &b.inputs {
                let slot = self.scope().slot(Some(&i.ty));
                self.scope().names.insert(i.name.clone(), Src::Slot(slot));
                self.types.insert(i.name.clone(), i.ty.clone());
                ins.push(slot);
            }
            let sp = self.block(b, ins);
            self.scopes.pop();
            subplans.push(sp?);
        }
        // Values the nested blocks capture from this scope become arguments of the op.
        for sp in &subplans {
            for (name, _) in &sp.captures {
                let key = format!("capture:{name}");
                if !params.iter().any(|(p, _)| *p == key) {
                    let src = self.lookup(name).ok_or_else(|| {
                        op_err(op, format!("nested block uses undefined {name:?}"))
                    })?;
                    params.push((key, vec![src]));
                }
            }
        }
        let mut pending = subplans.into_iter().map(Some).collect::<Vec<_>>();
        let mut take = |b: &Block| -> Result<SubPlan, String> {
            let i = op
                .blocks
                .iter()
                .position(|x| std::ptr::eq(x, b))
                .ok_or("not a block of this op")?;
            pending
                .get_mut(i)
                .and_then(Option::take)
                .ok_or_else(|| "block already taken".to_string())
        };
        // Lazy constants: packed for the kernels that decode them, converted for the rest.
        let all_const = params
            .iter()
            .all(|(_, s)| s.iter().all(|s| matches!(s, Src::Const(_))));
        let mut packed_args: HashMap<usize, packed::Shared> = HashMap::new();
        for (param, srcs) in &params {
            for s in srcs {
                let Src::Const(i) = *s else { continue };
                if !self.lazy.contains_key(&i) {
                    continue;
                }
                let keep = !all_const
                    && op.blocks.is_empty()
                    && reads_packed(&op.op_type, param, &params, &self.consts);
                if keep {
                    if let Some(Lazy::Raw(v)) = self.lazy.get(&i)
                        && let Some(p) = packed::from_const(v)
                    {
                        self.lazy.insert(i, Lazy::Packed(std::sync::Arc::new(p)));
                    }
                    if let Some(Lazy::Packed(p)) = self.lazy.get(&i) {
                        packed_args.insert(i, p.clone());
                        continue;
                    }
                }
                self.materialise(i)
                    .map_err(|m| op_err(op, format!("{param}: {m}")))?;
            }
        }
        let kernel = {
            let mut ctx = OpCtx {
                op,
                opset: self.opset,
                params: &params,
                consts: &self.consts,
                packed: &packed_args,
                types: &self.types,
                nested: &mut take,
            };
            kernels::build(&mut ctx).map_err(|m| crate::RuntimeError::Unsupported {
                op: op.display_name().to_string(),
                op_type: op.op_type.clone(),
                message: m,
            })?
        };
        if all_const && op.blocks.is_empty() && anekit_mil::ops::effect(&op.op_type).foldable() {
            let outs = {
                let args = Args {
                    params: &params,
                    slots: &[],
                    consts: &self.consts,
                };
                let state_types = BTreeMap::new();
                let mut rctx = RunCtx {
                    precision: Precision::Fp32,
                    numerics: None,
                    numerics_warnings: Vec::new(),
                    state: None,
                    consts: &self.consts,
                    state_types: &state_types,
                };
                kernel.run(&args, &mut rctx).map_err(|m| op_err(op, m))?
            };
            if outs.len() != op.outputs.len() {
                return Err(op_err(
                    op,
                    format!(
                        "kernel returned {} values for {} outputs",
                        outs.len(),
                        op.outputs.len()
                    ),
                ));
            }
            for (i, v) in outs.into_iter().enumerate() {
                let v = round_if_fp16(
                    v,
                    op.outputs
                        .get(i)
                        .and_then(|o| o.ty.as_tensor())
                        .map(|t| t.dtype),
                );
                let src = self.push_const(v);
                self.define(op, i, src)?;
            }
            self.folded += 1;
            return Ok(());
        }
        let mut outputs = Vec::new();
        for (i, o) in op.outputs.iter().enumerate() {
            let slot = self.scope().slot(Some(&o.ty));
            self.define(op, i, Src::Slot(slot))?;
            outputs.push((slot, o.ty.as_tensor().map(|t| t.dtype)));
        }
        let desc = self.describe(op, &params);
        let view_shape = SHAPE_ONLY
            .contains(&op.op_type.as_str())
            .then(|| {
                op.outputs
                    .first()?
                    .ty
                    .as_tensor()?
                    .shape
                    .as_ref()?
                    .iter()
                    .map(|d| d.fixed().map(|v| v as usize))
                    .collect::<Option<Vec<usize>>>()
            })
            .flatten();
        for src in params.iter().flat_map(|(_, v)| v) {
            if let Src::Const(i) = *src {
                *self.const_uses.entry(i).or_default() += 1;
            }
        }
        steps.push(Step {
            op_name: op.display_name().to_string(),
            op_type: op.op_type.clone(),
            kernel,
            params,
            outputs,
            frees: Vec::new(),
            desc,
            epilogue: Vec::new(),
            inplace: None,
            view_shape,
        });
        Ok(())
    }

    /// The fusion description of an op whose inputs and output are floating-point tensors.
    fn describe(&self, op: &Operation, params: &[(String, Vec<Src>)]) -> Option<fuse::Desc> {
        if !self.fuse || !op.blocks.is_empty() || op.outputs.len() != 1 {
            return None;
        }
        let is_float = |t: Option<&ValueType>| {
            t.and_then(ValueType::as_tensor)
                .is_some_and(|t| t.dtype.is_float())
        };
        if !is_float(op.outputs.first().map(|o| &o.ty)) {
            return None;
        }
        for p in ["x", "y"] {
            if let Some(arg) = op.inputs.get(p) {
                let ty = match arg.0.first()? {
                    Binding::Name(n) => self.types.get(n).cloned(),
                    Binding::Value(v) => Some(v.ty.clone()),
                };
                if !is_float(ty.as_ref()) {
                    return None;
                }
            }
        }
        let find = |name: &str| params.iter().find(|(p, _)| p == name);
        let constant = |name: &str| -> Option<Value> {
            match find(name)?.1.as_slice() {
                [Src::Const(i)] => self.consts.get(*i).cloned(),
                _ => None,
            }
        };
        let has = |name: &str| find(name).is_some();
        // Unary ops and batch_norm: only `x` may be computed at run time.
        let d = fuse::describe(&op.op_type, &constant, &has)?;
        if !matches!(d, fuse::Desc::Binary(_))
            && params
                .iter()
                .any(|(p, s)| p != "x" && s.iter().any(|s| matches!(s, Src::Slot(_))))
        {
            return None;
        }
        Some(d)
    }

    /// The packed form of a constexpr op's output, when [`packed`] decodes it.
    fn try_pack<'s>(&'s mut self, op: &'s Operation) -> Option<packed::PackedTensor> {
        if !self.pack || op.outputs.len() != 1 {
            return None;
        }
        let t = op.outputs.first()?.ty.as_tensor()?;
        let shape: Vec<usize> = t
            .fixed_shape()?
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()?;
        let mut names: HashMap<String, Src> = HashMap::new();
        for (k, arg) in &op.inputs {
            if let Some(Binding::Name(n)) = arg.0.first() {
                names.insert(k.clone(), self.lookup(n)?);
            }
        }
        let this: &'s Self = self;
        let names = &names;
        let get: &dyn Fn(&str) -> Option<packed::Param<'s>> = &move |name: &str| {
            if let Some(v) = op.attributes.get(name) {
                return Some(packed::Param::Raw(v));
            }
            match op.inputs.get(name)?.0.first()? {
                Binding::Value(v) => Some(packed::Param::Raw(v)),
                Binding::Name(n) => {
                    let Src::Const(i) = *names.get(name)? else {
                        return None;
                    };
                    match this.lazy.get(&i) {
                        Some(Lazy::Raw(v)) => Some(packed::Param::Raw(v)),
                        Some(Lazy::Packed(_)) => None,
                        None => {
                            let dt = this.types.get(n)?.as_tensor()?.dtype;
                            Some(packed::Param::Dense(this.consts.get(i)?, dt))
                        }
                    }
                }
            }
        };
        packed::from_constexpr(&op.op_type, get, (t.dtype, &shape))
    }

    fn constexpr(&mut self, op: &Operation) -> Result<(), crate::RuntimeError> {
        if let Some(p) = self.try_pack(op) {
            let src = self.push_const(placeholder());
            if let Src::Const(i) = src {
                self.lazy.insert(i, Lazy::Packed(std::sync::Arc::new(p)));
            }
            return self.define(op, 0, src);
        }
        // Parameters: iOS16/17 as attributes, iOS18 as inputs (literal or another
        // constexpr's output).
        let mut values: BTreeMap<String, (Value, DataType)> = BTreeMap::new();
        for (k, v) in &op.attributes {
            if k == "name" {
                continue;
            }
            values.insert(
                k.clone(),
                (
                    Value::from_mil(v).map_err(|m| op_err(op, format!("{k}: {m}")))?,
                    mil_dtype(v),
                ),
            );
        }
        for (k, arg) in &op.inputs {
            let b = arg
                .0
                .first()
                .ok_or_else(|| op_err(op, format!("{k}: no binding")))?;
            let entry = match b {
                Binding::Value(v) => (
                    Value::from_mil(v).map_err(|m| op_err(op, format!("{k}: {m}")))?,
                    mil_dtype(v),
                ),
                Binding::Name(n) => {
                    let src = self
                        .lookup(n)
                        .ok_or_else(|| op_err(op, format!("{k} refers to undefined {n:?}")))?;
                    let Src::Const(i) = src else {
                        return Err(op_err(
                            op,
                            format!("{k} must be a constant, but {n:?} is computed at run time"),
                        ));
                    };
                    self.materialise(i)
                        .map_err(|m| op_err(op, format!("{k}: {m}")))?;
                    let dt = self
                        .types
                        .get(n)
                        .and_then(|t| t.as_tensor())
                        .map(|t| t.dtype)
                        .unwrap_or(DataType::Fp32);
                    (
                        self.consts
                            .get(i)
                            .cloned()
                            .ok_or_else(|| op_err(op, "bad constant"))?,
                        dt,
                    )
                }
            };
            values.insert(k.clone(), entry);
        }
        struct P<'a>(&'a BTreeMap<String, (Value, DataType)>);
        impl constexpr::Params for P<'_> {
            fn get(&self, name: &str) -> Option<constexpr::Param<'_>> {
                self.0.get(name).map(|(value, dtype)| constexpr::Param {
                    value,
                    dtype: *dtype,
                })
            }
        }
        let outputs: Vec<(DataType, Vec<usize>)> = op
            .outputs
            .iter()
            .map(|o| {
                let t = o.ty.as_tensor();
                let shape = t
                    .and_then(TensorType::fixed_shape)
                    .map(|s| s.iter().map(|&d| d as usize).collect())
                    .unwrap_or_default();
                (t.map_or(DataType::Fp32, |t| t.dtype), shape)
            })
            .collect();
        let vals =
            constexpr::decompress(&op.op_type, &P(&values), &outputs).map_err(|m| op_err(op, m))?;
        for (i, v) in vals.into_iter().enumerate() {
            if let (Some((_, shape)), false) = (outputs.get(i), i >= op.outputs.len())
                && !shape.is_empty()
                && v.shape() != shape.as_slice()
                && i == 0
            {
                return Err(op_err(
                    op,
                    format!("decompressed to shape {:?}, declared {shape:?}", v.shape()),
                ));
            }
            let src = self.push_const(v);
            self.define(op, i, src)?;
        }
        Ok(())
    }
}

fn mil_dtype(v: &MilValue) -> DataType {
    v.tensor_type().map_or(DataType::Fp32, |t| t.dtype)
}

/// Round an f32 value to fp16 when its declared type is fp16.
pub fn round_if_fp16(v: Value, dtype: Option<DataType>) -> Value {
    match (v, dtype) {
        (Value::F32(a), Some(DataType::Fp16)) => {
            Value::F32(a.mapv(|x| half::f16::from_f32(x).to_f32()))
        }
        (v, _) => v,
    }
}

/// Fill every step's `frees`: a slot dies after its last use (block outputs never die).
fn compute_frees(plan: &mut SubPlan) {
    let mut last: HashMap<usize, usize> = HashMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for (_, srcs) in &step.params {
            for s in srcs {
                if let Src::Slot(slot) = s {
                    last.insert(*slot, i);
                }
            }
        }
        // An output nobody reads dies right after the step that made it.
        for &(slot, _) in &step.outputs {
            last.entry(slot).or_insert(i);
        }
    }
    for o in &plan.outputs {
        if let Src::Slot(s) = o {
            last.remove(s);
        }
    }
    for (slot, i) in last {
        if let Some(step) = plan.steps.get_mut(i) {
            step.frees.push(slot);
        }
    }
    for s in &mut plan.steps {
        s.frees.sort_unstable();
    }
}
