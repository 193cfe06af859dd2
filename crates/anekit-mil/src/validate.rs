//! Program validation: SSA, known ops, parameters, and output types re-inferred by the op registry.
//!
//! [`check`] walks every function (and every opset specialization block of it) and reports:
//!
//! - SSA: every name used is defined before, in the same or an enclosing block; no name is
//!   defined again while it is visible (sibling blocks such as a `while_loop`'s condition and
//!   body may reuse names, as coremltools writes them); block and function outputs name
//!   visible values;
//! - every op exists in the function's opset; required parameters present, unknown ones
//!   rejected, one binding unless variadic, element types in the parameter's type domain
//!   (and equal within a named domain), compile-time constants where required;
//! - nested blocks: the count the op needs, their inputs (`while_loop` loop variables);
//! - each op's declared output types against the types the registry infers from its input
//!   types (dims unknown on either side are compatible).
//!
//! Downstream ops are checked against the *declared* types of their inputs, so one wrong
//! declaration gives one diagnostic. [`Env`] is the name → [`Arg`] environment the walk uses,
//! for passes that want to infer an op's outputs inside a program; outside a program use
//! [`crate::ops::infer`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::ops::{Arg, Args, InferError, OpDef, check_args, infer_with, registry};
use crate::program::{Binding, Block, Function, Operation, Opset, Program};
use crate::types::{DataType, Dim, NamedValueType, TensorType, ValueType};
use crate::value::{Placement, Value};

/// What kind of problem a [`Diagnostic`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// The function's opset is not one this crate knows, or its block is missing.
    Opset,
    /// A name is used before it is defined, or is not visible.
    UndefinedName,
    /// A name is defined again while it is visible.
    DuplicateName,
    /// The op type does not exist in the function's opset.
    UnknownOp,
    /// A required parameter is missing.
    MissingParam,
    /// A parameter the op does not have.
    UnknownParam,
    /// A parameter bound to the wrong kind or element type of value.
    WrongType,
    /// A parameter that must be a compile-time constant is not.
    NotConstant,
    /// The arguments are inconsistent (shapes, values), so the op has no valid output type.
    InvalidArguments,
    /// Nested blocks are missing, extra, or do not match the op.
    Blocks,
    /// The op declares a different number of outputs than it produces.
    OutputCount,
    /// A declared output type differs from the inferred one.
    OutputType,
    /// A literal value's data does not match its type.
    InvalidLiteral,
    /// A declared shape is impossible: its element count does not fit a signed 64-bit
    /// count (Core ML's `NSInteger` sizes).
    Shape,
}

/// One problem, located by function, op and parameter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The function.
    pub function: String,
    /// The op (its `name` attribute, else its first output), if the problem is in an op.
    pub op: Option<String>,
    /// The op type.
    pub op_type: Option<String>,
    /// The parameter (or output) concerned, if one is.
    pub param: Option<String>,
    /// The kind of problem.
    pub kind: DiagnosticKind,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "function {}", self.function)?;
        if let Some(op) = &self.op {
            write!(f, " / op {op}")?;
            if let Some(t) = &self.op_type {
                write!(f, " ({t})")?;
            }
        }
        if let Some(p) = &self.param {
            write!(f, " / {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// An op whose outputs could not be re-inferred (accepted as declared).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unverified {
    /// The function.
    pub function: String,
    /// The op.
    pub op: String,
    /// The op type.
    pub op_type: String,
    /// Why.
    pub reason: String,
}

/// An output dimension the declaration knows but inference left unknown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imprecise {
    /// The function.
    pub function: String,
    /// The op.
    pub op: String,
    /// The op type.
    pub op_type: String,
    /// The output name.
    pub output: String,
    /// Declared type.
    pub declared: String,
    /// Inferred type.
    pub inferred: String,
}

/// The result of [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Problems found.
    pub diagnostics: Vec<Diagnostic>,
    /// Number of ops checked (nested ones included).
    pub ops: usize,
    /// Number of op outputs whose declared type was compared with an inferred one.
    pub outputs_compared: usize,
    /// Ops whose outputs could not be inferred.
    pub unverified: Vec<Unverified>,
    /// Outputs where inference is less precise than the declaration.
    pub imprecise: Vec<Imprecise>,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// The problems as one message: each on its own line (at most `max`), then how many more.
pub fn summarize(diagnostics: &[Diagnostic], max: usize) -> String {
    let mut out = String::new();
    for d in diagnostics.iter().take(max) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&d.to_string());
    }
    if diagnostics.len() > max {
        out.push_str(&format!("\n… and {} more", diagnostics.len() - max));
    }
    out
}

/// An invalid program: every problem found, each naming its function, op and parameter. Core
/// ML refuses to compile such a program; commands refuse it with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the program is invalid, Core ML will refuse to compile it ({} problem{}):\n{}",
    diagnostics.len(),
    if diagnostics.len() == 1 { "" } else { "s" },
    summarize(diagnostics, 10)
)]
pub struct InvalidProgram {
    /// The problems.
    pub diagnostics: Vec<Diagnostic>,
}

/// `Ok` for a valid program, else every problem as an [`InvalidProgram`] error.
pub fn require_valid(program: &Program) -> Result<(), InvalidProgram> {
    validate(program).map_err(|diagnostics| InvalidProgram { diagnostics })
}

/// Validate a program: `Ok` or every problem found.
pub fn validate(program: &Program) -> Result<(), Vec<Diagnostic>> {
    let r = check(program);
    if r.diagnostics.is_empty() {
        Ok(())
    } else {
        Err(r.diagnostics)
    }
}

/// Check every function of a program.
pub fn check(program: &Program) -> Report {
    let mut report = Report::default();
    for (name, f) in &program.functions {
        check_function_into(name, f, &mut report);
    }
    tracing::debug!(
        ops = report.ops,
        outputs_compared = report.outputs_compared,
        diagnostics = report.diagnostics.len(),
        unverified = report.unverified.len(),
        imprecise = report.imprecise.len(),
        "validated program"
    );
    report
}

/// Check one function.
pub fn check_function(name: &str, f: &Function) -> Report {
    let mut report = Report::default();
    check_function_into(name, f, &mut report);
    report
}

fn check_function_into(name: &str, f: &Function, report: &mut Report) {
    let mut w = Walker {
        function: name,
        opset: Opset::Ios15,
        report,
    };
    if f.block().is_none() {
        w.diag(
            None,
            None,
            DiagnosticKind::Opset,
            format!("no block for the function's opset `{}`", f.opset),
        );
    }
    for (key, block) in &f.blocks {
        let Some(opset) = Opset::parse(key) else {
            w.diag(
                None,
                None,
                DiagnosticKind::Opset,
                format!("unknown opset `{key}`"),
            );
            continue;
        };
        w.opset = opset;
        let mut env = Env::default();
        env.push();
        for i in &f.inputs {
            w.define(&mut env, i, Arg::var(i.ty.clone()), None);
        }
        w.block(block, &mut env, None);
    }
}

/// Names visible at a point of a program, with what is known about each.
#[derive(Debug, Clone, Default)]
pub struct Env {
    frames: Vec<HashMap<String, Arg>>,
}

impl Env {
    /// An environment holding a function's inputs.
    pub fn for_function(f: &Function) -> Self {
        let mut e = Env::default();
        e.push();
        for i in &f.inputs {
            e.insert(&i.name, Arg::var(i.ty.clone()));
        }
        e
    }

    /// Enter a nested block.
    pub fn push(&mut self) {
        self.frames.push(HashMap::new());
    }

    /// Leave a nested block.
    pub fn pop(&mut self) {
        self.frames.pop();
    }

    /// Define `name` in the innermost block.
    pub fn insert(&mut self, name: &str, arg: Arg) {
        if self.frames.is_empty() {
            self.push();
        }
        if let Some(f) = self.frames.last_mut() {
            f.insert(name.to_string(), arg);
        }
    }

    /// What is known about `name`, if visible.
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.frames.iter().rev().find_map(|f| f.get(name))
    }

    /// The arguments of `op` by parameter name (attributes too for ops whose parameters are
    /// attributes), and the names used that are not visible.
    pub fn args_of(&self, op: &Operation, def: Option<&OpDef>) -> (Args, Vec<(String, String)>) {
        let mut args: BTreeMap<String, Vec<Arg>> = BTreeMap::new();
        let mut missing = Vec::new();
        for (param, argument) in &op.inputs {
            let entry = args.entry(param.clone()).or_default();
            for b in &argument.0 {
                match b {
                    Binding::Name(n) => match self.get(n) {
                        Some(a) => entry.push(a.clone()),
                        None => missing.push((param.clone(), n.clone())),
                    },
                    Binding::Value(v) => entry.push(Arg::literal(v.clone())),
                }
            }
        }
        if def.is_some_and(|d| d.params_as_attributes) {
            for (k, v) in &op.attributes {
                if k != "name" && !args.contains_key(k) {
                    args.insert(k.clone(), vec![Arg::literal(v.clone())]);
                }
            }
        }
        (args, missing)
    }

    /// Infer the outputs of `op` in `opset` from the types visible here (nested blocks' output
    /// types from their declared values).
    pub fn infer(&self, op: &Operation, opset: Opset) -> Result<Vec<ValueType>, InferError> {
        let def = registry()
            .get(&op.op_type, opset)
            .ok_or_else(|| InferError::UnknownOp {
                op_type: op.op_type.clone(),
                opset,
            })?;
        let (args, missing) = self.args_of(op, Some(def));
        if let Some((param, name)) = missing.into_iter().next() {
            return Err(InferError::Invalid {
                param: Some(param),
                message: format!("`{name}` is not defined"),
            });
        }
        if let Some(e) = check_args(def, &args).into_iter().next() {
            return Err(e);
        }
        let mut blocks = Vec::new();
        for b in &op.blocks {
            let mut inner = self.clone();
            inner.push();
            for i in &b.inputs {
                inner.insert(&i.name, Arg::var(i.ty.clone()));
            }
            for o in &b.operations {
                let declared: Vec<_> = o.outputs.iter().map(|n| n.ty.clone()).collect();
                for (n, t) in o.outputs.iter().zip(declared) {
                    inner.insert(&n.name, Arg::var(t));
                }
            }
            blocks.push(
                b.outputs
                    .iter()
                    .map(|n| {
                        inner.get(n).map(|a| a.ty.clone()).ok_or_else(|| {
                            InferError::invalid(format!("block output `{n}` is not defined"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(infer_with(def, opset, &args, &blocks)?.outputs)
    }
}

struct Walker<'a> {
    function: &'a str,
    opset: Opset,
    report: &'a mut Report,
}

fn kind_of(e: &InferError) -> DiagnosticKind {
    match e {
        InferError::UnknownOp { .. } => DiagnosticKind::UnknownOp,
        InferError::MissingParam { .. } => DiagnosticKind::MissingParam,
        InferError::UnknownParam { .. } => DiagnosticKind::UnknownParam,
        InferError::WrongType { .. } => DiagnosticKind::WrongType,
        InferError::NotConstant { .. } => DiagnosticKind::NotConstant,
        InferError::Invalid { .. } | InferError::Undetermined(_) => {
            DiagnosticKind::InvalidArguments
        }
    }
}

/// Whether a declared type is compatible with an inferred one (equal dtypes and structure;
/// unknown dims and unknown ranks compatible with anything).
pub fn types_match(declared: &ValueType, inferred: &ValueType) -> bool {
    match (declared, inferred) {
        (ValueType::Tensor(a), ValueType::Tensor(b)) => {
            a.dtype == b.dtype
                && match (known(a), known(b)) {
                    (Some(x), Some(y)) => {
                        x.len() == y.len()
                            && x.iter().zip(y).all(|(p, q)| match (p, q) {
                                (Dim::Fixed(m), Dim::Fixed(n)) => m == n,
                                _ => true,
                            })
                    }
                    _ => true,
                }
        }
        (
            ValueType::List {
                element: e1,
                length: l1,
            },
            ValueType::List {
                element: e2,
                length: l2,
            },
        ) => {
            types_match(e1, e2)
                && match (l1, l2) {
                    (Dim::Fixed(a), Dim::Fixed(b)) => a == b,
                    _ => true,
                }
        }
        (ValueType::Tuple(a), ValueType::Tuple(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| types_match(x, y))
        }
        (ValueType::Dict { key: k1, value: v1 }, ValueType::Dict { key: k2, value: v2 }) => {
            types_match(k1, k2) && types_match(v1, v2)
        }
        (ValueType::State(a), ValueType::State(b)) => types_match(a, b),
        _ => false,
    }
}

/// The tensor inside `ty` (a tensor, or the element of a list or state) whose known
/// dimensions multiply beyond `i64::MAX`.
fn overflowing_tensor(ty: &ValueType) -> Option<&TensorType> {
    match ty {
        ValueType::Tensor(t) => {
            let dims = t.shape.as_ref()?;
            let count = dims
                .iter()
                .filter_map(|d| d.fixed())
                .try_fold(1u64, |a, d| a.checked_mul(d))
                .filter(|n| i64::try_from(*n).is_ok());
            count.is_none().then_some(t)
        }
        ValueType::List { element, .. } | ValueType::State(element) => overflowing_tensor(element),
        ValueType::Tuple(items) => items.iter().find_map(overflowing_tensor),
        ValueType::Dict { key, value } => {
            overflowing_tensor(key).or_else(|| overflowing_tensor(value))
        }
    }
}

fn known(t: &TensorType) -> Option<&Vec<Dim>> {
    let s = t.shape.as_ref()?;
    (!s.iter()
        .any(|d| matches!(d, Dim::Unknown { variadic: true })))
    .then_some(s)
}

/// Whether `inferred` leaves unknown something `declared` knows.
fn less_precise(declared: &ValueType, inferred: &ValueType) -> bool {
    match (declared, inferred) {
        (ValueType::Tensor(a), ValueType::Tensor(b)) => match (known(a), known(b)) {
            (Some(x), Some(y)) => x
                .iter()
                .zip(y)
                .any(|(p, q)| p.fixed().is_some() && q.fixed().is_none()),
            (Some(_), None) => true,
            _ => false,
        },
        (ValueType::List { element: a, .. }, ValueType::List { element: b, .. })
        | (ValueType::State(a), ValueType::State(b)) => less_precise(a, b),
        _ => false,
    }
}

/// A constant value for a fully known small integer vector or scalar.
fn value_from_sym(ty: &ValueType, sym: &[Option<i64>]) -> Option<Value> {
    let t = ty.as_tensor()?;
    if t.dtype != DataType::Int32 || t.rank()? > 1 {
        return None;
    }
    let vals: Vec<i32> = sym
        .iter()
        .map(|v| v.and_then(|x| i32::try_from(x).ok()))
        .collect::<Option<_>>()?;
    if t.element_count()? != vals.len() as u64 {
        return None;
    }
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    Some(Value::tensor_bytes(t.clone(), bytes, Placement::Inline))
}

impl Walker<'_> {
    fn diag(
        &mut self,
        op: Option<&Operation>,
        param: Option<&str>,
        kind: DiagnosticKind,
        message: String,
    ) {
        self.report.diagnostics.push(Diagnostic {
            function: self.function.to_string(),
            op: op.map(|o| o.display_name().to_string()),
            op_type: op.map(|o| o.op_type.clone()),
            param: param.map(str::to_string),
            kind,
            message,
        });
    }

    fn define(&mut self, env: &mut Env, n: &NamedValueType, arg: Arg, op: Option<&Operation>) {
        if let Some(t) = overflowing_tensor(&n.ty) {
            self.diag(
                op,
                Some(&n.name),
                DiagnosticKind::Shape,
                format!(
                    "`{}` is declared as {t}, whose element count does not fit a 64-bit count",
                    n.name
                ),
            );
        }
        if env.get(&n.name).is_some() {
            self.diag(
                op,
                Some(&n.name),
                DiagnosticKind::DuplicateName,
                format!("`{}` is defined more than once", n.name),
            );
        }
        env.insert(&n.name, arg);
    }

    /// Check a block; returns the types of its outputs.
    fn block(&mut self, b: &Block, env: &mut Env, owner: Option<&Operation>) -> Vec<ValueType> {
        for op in &b.operations {
            self.op(op, env);
        }
        let mut out = Vec::with_capacity(b.outputs.len());
        for name in &b.outputs {
            match env.get(name) {
                Some(a) => out.push(a.ty.clone()),
                None => {
                    self.diag(
                        owner,
                        Some(name),
                        DiagnosticKind::UndefinedName,
                        format!("block output `{name}` is not defined"),
                    );
                }
            }
        }
        out
    }

    fn op(&mut self, op: &Operation, env: &mut Env) {
        self.report.ops += 1;
        let reg = registry();
        let def = reg.get(&op.op_type, self.opset);
        if def.is_none() {
            let msg = match reg.revisions(&op.op_type).first() {
                Some(d) => format!(
                    "op type `{}` exists only from {} on, not in {}",
                    op.op_type, d.opset, self.opset
                ),
                None => format!("unknown op type `{}`", op.op_type),
            };
            self.diag(Some(op), None, DiagnosticKind::UnknownOp, msg);
        }
        let (args, missing) = env.args_of(op, def);
        for (param, name) in &missing {
            self.diag(
                Some(op),
                Some(param),
                DiagnosticKind::UndefinedName,
                format!("`{name}` is used before it is defined (or is not visible here)"),
            );
        }
        // literals (inline and attribute values) must be consistent with their types
        let literals = op
            .inputs
            .iter()
            .flat_map(|(p, a)| {
                a.0.iter().filter_map(move |b| match b {
                    Binding::Value(v) => Some((p.as_str(), v)),
                    Binding::Name(_) => None,
                })
            })
            .chain(
                op.attributes
                    .iter()
                    .filter(|(k, _)| k.as_str() != "name")
                    .map(|(k, v)| (k.as_str(), v)),
            );
        let mut bad_literals = Vec::new();
        for (p, v) in literals {
            if let Err(e) = v.validate() {
                bad_literals.push((p.to_string(), e));
            }
        }
        for (p, e) in bad_literals {
            self.diag(Some(op), Some(&p), DiagnosticKind::InvalidLiteral, e);
        }
        let mut args_ok = missing.is_empty() && def.is_some();
        if let Some(def) = def {
            for e in check_args(def, &args) {
                args_ok = false;
                // an undefined name was already reported for this parameter
                if matches!(e, InferError::MissingParam { .. })
                    && missing.iter().any(|(p, _)| Some(p.as_str()) == e.param())
                {
                    continue;
                }
                self.diag(Some(op), e.param(), kind_of(&e), e.to_string());
            }
            if op.blocks.len() != def.blocks {
                args_ok = false;
                self.diag(
                    Some(op),
                    None,
                    DiagnosticKind::Blocks,
                    format!(
                        "has {} nested blocks, `{}` needs {}",
                        op.blocks.len(),
                        op.op_type,
                        def.blocks
                    ),
                );
            }
        }
        // nested blocks
        let mut block_types = Vec::with_capacity(op.blocks.len());
        for (i, b) in op.blocks.iter().enumerate() {
            if op.op_type == "while_loop" && !self.loop_block_inputs(op, i, b, &args) {
                args_ok = false;
            }
            env.push();
            for inp in &b.inputs {
                self.define(env, inp, Arg::var(inp.ty.clone()), Some(op));
            }
            block_types.push(self.block(b, env, Some(op)));
            env.pop();
        }
        // infer and compare
        let mut inferred_sym = None;
        if let (Some(def), true) = (def, args_ok) {
            match infer_with(def, self.opset, &args, &block_types) {
                Ok(inf) => {
                    inferred_sym = inf.sym;
                    self.compare(op, &inf.outputs);
                }
                Err(InferError::Undetermined(reason)) => self.report.unverified.push(Unverified {
                    function: self.function.to_string(),
                    op: op.display_name().to_string(),
                    op_type: op.op_type.clone(),
                    reason,
                }),
                Err(e) => self.diag(Some(op), e.param(), kind_of(&e), e.to_string()),
            }
        }
        // define outputs with their declared types
        let is_const = op.op_type == "const";
        let constant = op.is_constant()
            || (op.blocks.is_empty() && args.values().flatten().all(|a| a.constant));
        for (k, out) in op.outputs.iter().enumerate() {
            let mut arg = Arg::var(out.ty.clone());
            arg.constant = constant;
            arg.from_const = is_const;
            if is_const {
                arg.value = op.attributes.get("val").cloned();
            } else if k == 0
                && let Some(sym) = &inferred_sym
            {
                match value_from_sym(&out.ty, sym) {
                    Some(v) => {
                        arg.value = Some(v);
                        arg.constant = true;
                    }
                    None => arg.sym = Some(sym.clone()),
                }
            }
            self.define(env, out, arg, Some(op));
        }
    }

    /// `while_loop` blocks take one input per loop variable, of its type.
    fn loop_block_inputs(
        &mut self,
        op: &Operation,
        i: usize,
        b: &Block,
        args: &BTreeMap<String, Vec<Arg>>,
    ) -> bool {
        let vars = args.get("loop_vars").map(Vec::as_slice).unwrap_or(&[]);
        let which = if i == 0 { "cond" } else { "body" };
        if b.inputs.len() != vars.len() {
            self.diag(
                Some(op),
                Some("loop_vars"),
                DiagnosticKind::Blocks,
                format!(
                    "the {which} block has {} inputs for {} loop_vars",
                    b.inputs.len(),
                    vars.len()
                ),
            );
            return false;
        }
        let mut ok = true;
        for (inp, var) in b.inputs.iter().zip(vars) {
            if !types_match(&inp.ty, &var.ty) && !types_match(&var.ty, &inp.ty) {
                ok = false;
                self.diag(
                    Some(op),
                    Some("loop_vars"),
                    DiagnosticKind::Blocks,
                    format!(
                        "{which} block input `{}` has type {}, its loop variable {}",
                        inp.name, inp.ty, var.ty
                    ),
                );
            }
        }
        ok
    }

    fn compare(&mut self, op: &Operation, inferred: &[ValueType]) {
        if inferred.len() != op.outputs.len() {
            self.diag(
                Some(op),
                None,
                DiagnosticKind::OutputCount,
                format!(
                    "declares {} outputs, `{}` produces {}",
                    op.outputs.len(),
                    op.op_type,
                    inferred.len()
                ),
            );
            return;
        }
        for (decl, inf) in op.outputs.iter().zip(inferred) {
            self.report.outputs_compared += 1;
            if !types_match(&decl.ty, inf) {
                self.diag(
                    Some(op),
                    Some(&decl.name),
                    DiagnosticKind::OutputType,
                    format!(
                        "output `{}` is declared {} but inferred {}",
                        decl.name, decl.ty, inf
                    ),
                );
            } else if less_precise(&decl.ty, inf) {
                self.report.imprecise.push(Imprecise {
                    function: self.function.to_string(),
                    op: op.display_name().to_string(),
                    op_type: op.op_type.clone(),
                    output: decl.name.clone(),
                    declared: decl.ty.to_string(),
                    inferred: inf.to_string(),
                });
            }
        }
    }
}
