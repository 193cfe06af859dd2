//! Translation of a Core AI module into the MIL IR, so that everything anekit does with
//! Core ML programs (analysis, compression, the CPU backend) works on `.aimodel` files.
//!
//! Each public `graph_v1` becomes a MIL function (iOS18 opset). Every `aicode` primitive
//! with a MIL counterpart maps to it ([`COVERAGE`] lists them); a composite op (an op that
//! carries its own decomposition as a region, or an `invoke_v1` of a private graph) maps
//! to its MIL counterpart where one exists and is otherwise lowered through its own region
//! (or the invoked graph's body), so no well-formed model is refused for an unknown
//! composite. Constants keep their bytes (memory-mapped weights stay mapped). Types are
//! re-inferred by anekit-mil's op registry, not copied from the file.
//!
//! Integer tensors are computed as int32 and fp64/bf16 as fp32 (the types MIL programs
//! compute in); 8-bit and sub-byte integers stay as they are where they feed a
//! decompression op (`constexpr_blockwise_shift_scale`, `constexpr_lut_to_dense`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use bytes::Bytes;

use anekit_mil::ops::{Arg, infer};
use anekit_mil::value::Placement;
use anekit_mil::{
    Argument, Binding, Block, DataType, Dim, Function, NamedValueType, Operation, Opset, Program,
    TensorType, Value as MilValue, ValueType,
};
use anekit_mlir::{AttrId, Bytecode, MlirError, OpId, RegionId, TypeId, Value};

use crate::ir::{self, Attr, EnumKind, Scalar, Type};
use crate::konst::{Konst, mil_dtype};
use crate::model::{self, Graph};
use crate::schema;

/// Why a module could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// An op (or a form of it) that has no translation.
    #[error("{graph}: {op}: {reason}")]
    Unsupported {
        /// The graph.
        graph: String,
        /// The op (`aicode.primitive.foo_v1`).
        op: String,
        /// Why.
        reason: String,
    },
    /// The module is not well formed.
    #[error("{0}")]
    Mlir(#[from] MlirError),
    /// No public graph.
    #[error("the module has no public graph to run")]
    NoGraph,
    /// Ops of one or more graphs that have no translation: every one of them, not only
    /// the first.
    #[error("{} op(s) cannot be translated to MIL:\n{}", .0.len(), .0.iter().map(|u| format!("  {u}")).collect::<Vec<_>>().join("\n"))]
    Untranslatable(Vec<Untranslated>),
}

/// An op that has no MIL translation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Untranslated {
    /// The graph (public function) it is in.
    pub graph: String,
    /// The op (`aicode.primitive.foo_v1`; `region` for a malformed region).
    pub op: String,
    /// Its source location (`file:line:column`), where the module records one.
    pub location: Option<String>,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Untranslated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.graph, self.op)?;
        if let Some(l) = &self.location {
            write!(f, " at {l}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The reason given for an op kind that has no MIL counterpart at all (reported even
/// where the op's input comes from another op that could not be translated).
const NO_COUNTERPART: &str = "no MIL counterpart";

/// Options of the translation.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Map composites to their MIL counterparts (default); `false` lowers every composite
    /// through its own decomposition (to check the two agree).
    pub fast_paths: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { fast_paths: true }
    }
}

/// What the translation did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Composites mapped to a MIL counterpart, by op name (invokes by composite name).
    pub mapped: BTreeMap<String, usize>,
    /// Composites lowered through their own decomposition, by op name.
    pub lowered: BTreeMap<String, usize>,
}

/// A translated module.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The MIL program (one function per public graph).
    pub program: Program,
    /// The function to run by default (`main` if there is one, else the first).
    pub default_function: Option<String>,
    /// What was mapped and lowered.
    pub report: Report,
    /// Public graphs that could not be translated, with the reason (the other functions
    /// are usable).
    pub failed: BTreeMap<String, String>,
    /// Every op of those graphs that has no translation (graph by graph, in order).
    pub untranslated: Vec<Untranslated>,
}

/// The MIL opset the translation targets.
pub const OPSET: Opset = Opset::Ios18;

/// Translate `m` into MIL.
pub fn translate(m: &Bytecode, options: Options) -> Result<Translation, TranslateError> {
    let graphs = model::graphs(m)?;
    let resources: Vec<Bytes> = m
        .dialect_resources()
        .map(|(_, e)| match &e.value {
            anekit_mlir::ResourceValue::Blob { data, .. } => data.clone(),
            _ => Bytes::new(),
        })
        .collect();
    let mut tr = Tr {
        m,
        by_name: graphs.iter().map(|g| (g.name.clone(), g.clone())).collect(),
        resources,
        options,
        report: Report::default(),
        depth: 0,
        graph: String::new(),
        refused: Vec::new(),
        tainted: std::collections::HashSet::new(),
    };
    let mut program = Program {
        version: 1,
        ..Program::default()
    };
    let mut default_function = None;
    let mut failed = BTreeMap::new();
    let mut untranslated = Vec::new();
    let mut first_error = None;
    for g in graphs.iter().filter(|g| !g.private) {
        match tr.function(g) {
            Ok(f) => {
                program.functions.insert(g.name.clone(), f);
                if default_function.is_none() || g.name == "main" {
                    default_function = Some(g.name.clone());
                }
            }
            Err(TranslateError::Untranslatable(list)) => {
                let why: Vec<String> = list
                    .iter()
                    .map(|u| match &u.location {
                        Some(l) => format!("{} at {l}: {}", u.op, u.reason),
                        None => format!("{}: {}", u.op, u.reason),
                    })
                    .collect();
                failed.insert(g.name.clone(), why.join("; "));
                untranslated.extend(list);
            }
            Err(e) => {
                failed.insert(g.name.clone(), e.to_string());
                first_error.get_or_insert(e);
            }
        }
    }
    if program.functions.is_empty() {
        return Err(match first_error {
            Some(e) => e,
            None if !untranslated.is_empty() => TranslateError::Untranslatable(untranslated),
            None => TranslateError::NoGraph,
        });
    }
    Ok(Translation {
        program,
        default_function,
        report: tr.report,
        failed,
        untranslated,
    })
}

/// A value during translation.
#[derive(Debug, Clone)]
enum Tv {
    /// A MIL variable.
    Var {
        name: String,
        ty: TensorType,
        /// Set when the variable is a transpose of a constant (to form `linear`).
        transposed: Option<(Rc<Konst>, Vec<i64>)>,
    },
    /// A constant, materialized as a MIL `const` when an op needs it as a tensor.
    Const(Rc<Konst>),
    /// A state (a `handle_v1` argument).
    State { name: String, ty: TensorType },
    /// A token (ordering only; no MIL counterpart).
    Token,
}

/// A parameter of an emitted MIL op.
enum P {
    /// A tensor.
    T(Tv),
    /// Several tensors (variadic parameter).
    Ts(Vec<Tv>),
    /// An int32 scalar constant.
    I(i64),
    /// An int32 1-D constant.
    Is(Vec<i64>),
    /// A bool scalar constant.
    B(bool),
    /// A bool 1-D constant.
    Bs(Vec<bool>),
    /// A string constant.
    S(&'static str),
    /// A float scalar constant of a given type.
    F(f64, DataType),
}

/// The MIL block being built for one function.
#[derive(Default)]
struct Fb {
    ops: Vec<Operation>,
    taken: BTreeSet<String>,
    /// Inference arguments of every variable so far.
    args: HashMap<String, Arg>,
    /// Materialized constants by address of the shared constant and MIL dtype (the `Rc`
    /// is kept so that the address cannot be reused by another constant).
    consts: HashMap<(usize, DataType), (String, Rc<Konst>)>,
    /// The op (index in `ops`) that defines each variable.
    def: HashMap<String, usize>,
}

impl Fb {
    fn fresh(&mut self, base: &str) -> String {
        anekit_mil::passes::unique_name(base, &mut self.taken)
    }
}

struct Tr<'m> {
    m: &'m Bytecode,
    by_name: HashMap<String, Graph>,
    resources: Vec<Bytes>,
    options: Options,
    report: Report,
    depth: usize,
    graph: String,
    /// Ops of the current graph that could not be translated.
    refused: Vec<Untranslated>,
    /// MIL variables standing for the results of ops that could not be translated, and
    /// every variable computed from them (an op fed by them that fails is not reported,
    /// unless its kind has no translation at all).
    tainted: std::collections::HashSet<String>,
}

/// How deep invokes and regions may nest (a hostile module could recurse forever).
const MAX_DEPTH: usize = 64;

type Env = HashMap<Value, Tv>;

/// The terminator a region must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    /// `dataflow.output_v1` (a graph) or `dataflow.yield_v1` (any other region).
    Yield,
    /// `controlflow.condition_v1` (the first region of a `controlflow.while_v1`).
    Condition,
}

fn short(name: &str) -> &str {
    name.strip_prefix("aicode.").unwrap_or(name)
}

impl<'m> Tr<'m> {
    fn unsupported(&self, op: OpId, reason: impl Into<String>) -> TranslateError {
        TranslateError::Unsupported {
            graph: self.graph.clone(),
            op: self.m.name_of(op),
            reason: reason.into(),
        }
    }

    fn tensor_type(&self, t: TypeId) -> Result<(TensorType, Scalar), MlirError> {
        match ir::ty(self.m, t)? {
            Type::Tensor { shape, element } => {
                let s = match ir::ty(self.m, element)? {
                    Type::Scalar(s) => s,
                    other => {
                        return Err(MlirError::unsupported(
                            anekit_mlir::Section::Type(t.0),
                            format!("tensor of {other:?}"),
                        ));
                    }
                };
                let dims = shape
                    .iter()
                    .map(|&d| {
                        if d < 0 {
                            Dim::Unknown { variadic: false }
                        } else {
                            Dim::Fixed(d as u64)
                        }
                    })
                    .collect();
                Ok((
                    TensorType {
                        dtype: mil_dtype(s),
                        shape: Some(dims),
                        attributes: BTreeMap::new(),
                    },
                    s,
                ))
            }
            Type::Scalar(s) => Ok((TensorType::scalar(mil_dtype(s)), s)),
            other => Err(MlirError::unsupported(
                anekit_mlir::Section::Type(t.0),
                format!("{other:?} is not a tensor type"),
            )),
        }
    }

    fn function(&mut self, g: &Graph) -> Result<Function, TranslateError> {
        self.graph = g.name.clone();
        self.depth = 0;
        self.refused.clear();
        self.tainted.clear();
        let mut fb = Fb::default();
        let mut inputs = Vec::new();
        let mut args = Vec::new();
        for p in &g.inputs {
            let name = fb.fresh(&sanitize(&p.name));
            match ir::ty(self.m, p.ty)? {
                Type::Handle(inner) => {
                    let (t, _) = self.tensor_type(inner)?;
                    let vt = ValueType::State(Box::new(ValueType::Tensor(t.clone())));
                    fb.args.insert(name.clone(), Arg::var(vt.clone()));
                    inputs.push(NamedValueType::new(name.clone(), vt));
                    args.push(Tv::State { name, ty: t });
                }
                _ => {
                    let (t, _) = self.tensor_type(p.ty)?;
                    fb.args
                        .insert(name.clone(), Arg::var(ValueType::Tensor(t.clone())));
                    inputs.push(NamedValueType::new(
                        name.clone(),
                        ValueType::Tensor(t.clone()),
                    ));
                    args.push(Tv::Var {
                        name,
                        ty: t,
                        transposed: None,
                    });
                }
            }
        }
        let results = match self.region(&mut fb, g.body, args) {
            Ok(r) => r,
            Err(e) => {
                // The graph's own body is malformed for the translation: report it with
                // the ops refused before.
                match e {
                    TranslateError::Unsupported { op, reason, .. } => {
                        self.refused.push(Untranslated {
                            graph: g.name.clone(),
                            op,
                            location: None,
                            reason,
                        });
                        Vec::new()
                    }
                    other => return Err(other),
                }
            }
        };
        if !self.refused.is_empty() {
            return Err(TranslateError::Untranslatable(std::mem::take(
                &mut self.refused,
            )));
        }
        // Outputs: the tensors among the results, under their declared names.
        let mut outputs = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            let name = g
                .outputs
                .get(i)
                .map(|p| sanitize(&p.name))
                .unwrap_or_else(|| format!("output_{i}"));
            let var = match r {
                Tv::Token | Tv::State { .. } => continue,
                Tv::Const(_) | Tv::Var { .. } => r,
            };
            let out = self.named_output(&mut fb, var, &name)?;
            outputs.push(out);
        }
        let mut block = Block {
            outputs,
            operations: fb.ops,
            ..Block::default()
        };
        dce(&mut block);
        let opset = OPSET.proto_name().to_string();
        Ok(Function {
            inputs,
            opset: opset.clone(),
            blocks: BTreeMap::from([(opset, block)]),
            attributes: BTreeMap::new(),
        })
    }

    /// Make `tv` available as a variable called `name` (renaming the op that defines it,
    /// or adding an `identity`).
    fn named_output(&mut self, fb: &mut Fb, tv: Tv, name: &str) -> Result<String, TranslateError> {
        let current = self.var(fb, &tv)?;
        if current == name {
            return Ok(current);
        }
        let free = !fb.taken.contains(name);
        if free
            && let Some(&i) = fb.def.get(&current)
            && fb.ops[i].op_type != "const"
            && fb.ops[i].outputs.len() == 1
            && !fb.ops.iter().any(|o| uses(o, &current))
            && !fb.ops[i].outputs.iter().any(|o| o.name != current)
        {
            // Rename the defining op's output (no other op uses it yet).
            fb.taken.insert(name.to_string());
            let op = &mut fb.ops[i];
            op.outputs[0].name = name.to_string();
            op.attributes
                .insert("name".into(), MilValue::string(name.to_string()));
            let a = fb
                .args
                .remove(&current)
                .unwrap_or_else(|| Arg::var(op.outputs[0].ty.clone()));
            fb.args.insert(name.to_string(), a);
            fb.def.insert(name.to_string(), i);
            return Ok(name.to_string());
        }
        let out = self.emit_named(fb, "identity", vec![("x", P::T(tv))], Some(name))?;
        self.var(fb, &out[0])
    }

    /// Translate the single-block region `r` with `args` bound to its arguments; returns
    /// the operands of its terminator. An op that cannot be translated is recorded (see
    /// [`Tr::refuse`]) and the translation goes on, so that every such op is named.
    fn region(
        &mut self,
        fb: &mut Fb,
        r: RegionId,
        args: Vec<Tv>,
    ) -> Result<Vec<Tv>, TranslateError> {
        self.region_in(fb, r, args, &Env::new(), Term::Yield)
    }

    /// Translate region `r` (see [`Tr::region`]) whose ops may also use the values of
    /// `outer` (the enclosing regions of a control-flow op, which capture them), ending
    /// in a terminator of kind `term`.
    fn region_in(
        &mut self,
        fb: &mut Fb,
        r: RegionId,
        args: Vec<Tv>,
        outer: &Env,
        term: Term,
    ) -> Result<Vec<Tv>, TranslateError> {
        self.depth += 1;
        let result = if self.depth > MAX_DEPTH {
            Err(TranslateError::Unsupported {
                graph: self.graph.clone(),
                op: "region".into(),
                reason: format!("regions or invokes nested deeper than {MAX_DEPTH}"),
            })
        } else {
            self.region_body(fb, r, args, outer, term)
        };
        self.depth -= 1;
        result
    }

    fn region_body(
        &mut self,
        fb: &mut Fb,
        r: RegionId,
        args: Vec<Tv>,
        outer: &Env,
        term: Term,
    ) -> Result<Vec<Tv>, TranslateError> {
        let m = self.m;
        let region = m.ir.region(r);
        let [entry] = region.blocks.as_slice() else {
            return Err(TranslateError::Unsupported {
                graph: self.graph.clone(),
                op: "region".into(),
                reason: format!(
                    "{} blocks (only single-block regions are supported)",
                    region.blocks.len()
                ),
            });
        };
        let block = m.ir.block(*entry);
        if block.args.len() != args.len() {
            return Err(TranslateError::Unsupported {
                graph: self.graph.clone(),
                op: "region".into(),
                reason: format!(
                    "{} arguments bound to a block of {}",
                    args.len(),
                    block.args.len()
                ),
            });
        }
        // Control-flow regions capture the values of the regions around them.
        let mut env: Env = outer.clone();
        for (i, a) in args.into_iter().enumerate() {
            env.insert(
                Value::Arg {
                    block: *entry,
                    index: i as u32,
                },
                a,
            );
        }
        let uses = use_counts(m, *entry);
        for &op in &block.ops {
            let name = m.name_of(op);
            let operands: Result<Vec<Tv>, TranslateError> =
                m.ir.op(op)
                    .operands
                    .iter()
                    .map(|v| {
                        env.get(v).cloned().ok_or_else(|| {
                            self.unsupported(op, "an operand defined outside the region")
                        })
                    })
                    .collect();
            let operands = operands?;
            match (short(&name), term) {
                ("dataflow.output_v1" | "dataflow.yield_v1", Term::Yield)
                | ("controlflow.condition_v1", Term::Condition) => return Ok(operands),
                ("dataflow.output_v1" | "dataflow.yield_v1" | "controlflow.condition_v1", _) => {
                    return Err(self.unsupported(
                        op,
                        "a terminator the enclosing op does not take (condition_v1 ends a while_v1's first region, yield_v1 the others)",
                    ));
                }
                _ => {}
            }
            let fed_by_failure = operands.iter().any(|t| self.is_tainted(t));
            let n = m.ir.op(op).result_types.len();
            let translated = match short(&name) {
                "controlflow.if_v1" => self.if_op(fb, op, operands, &env),
                "controlflow.while_v1" => self.while_op(fb, op, operands, &env),
                _ => self.op(fb, op, operands, &uses),
            };
            let outs = match translated {
                Ok(outs) if outs.len() == n => {
                    if fed_by_failure {
                        for t in &outs {
                            self.taint(t);
                        }
                    }
                    outs
                }
                Ok(outs) => {
                    let e = self.unsupported(
                        op,
                        format!("translation gave {} results for {n}", outs.len()),
                    );
                    self.refuse(fb, op, e, fed_by_failure)?
                }
                Err(e) => self.refuse(fb, op, e, fed_by_failure)?,
            };
            for (i, t) in outs.into_iter().enumerate() {
                env.insert(
                    Value::Result {
                        op,
                        index: i as u32,
                    },
                    t,
                );
            }
        }
        Err(TranslateError::Unsupported {
            graph: self.graph.clone(),
            op: "region".into(),
            reason: match term {
                Term::Yield => "no output_v1 / yield_v1 terminator".into(),
                Term::Condition => "a while_v1 region without its condition_v1 terminator".into(),
            },
        })
    }

    /// Record that `op` could not be translated (`e`) and stand in for its results with
    /// placeholder variables of the declared types, so that the ops after it are still
    /// checked. An op fed by a placeholder is only reported when its kind has no
    /// translation at all (its other failures follow from the first). A malformed module
    /// (not an unsupported op) stops the translation.
    fn refuse(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        e: TranslateError,
        fed_by_failure: bool,
    ) -> Result<Vec<Tv>, TranslateError> {
        let (op_name, reason) = match e {
            TranslateError::Unsupported { op, reason, .. } => (op, reason),
            TranslateError::Untranslatable(list) => {
                self.refused.extend(list);
                (String::new(), String::new())
            }
            other => return Err(other),
        };
        if !op_name.is_empty() && (!fed_by_failure || reason == NO_COUNTERPART) {
            let location = ir::location(self.m, self.m.ir.op(op).location);
            let u = Untranslated {
                graph: self.graph.clone(),
                op: op_name,
                location,
                reason,
            };
            if !self.refused.contains(&u) {
                self.refused.push(u);
            }
        }
        let types = self.m.ir.op(op).result_types.clone();
        let mut outs = Vec::with_capacity(types.len());
        for t in types {
            let Ok((ty, _)) = self.tensor_type(t) else {
                outs.push(Tv::Token);
                continue;
            };
            let name = fb.fresh("untranslated");
            fb.args
                .insert(name.clone(), Arg::var(ValueType::Tensor(ty.clone())));
            self.tainted.insert(name.clone());
            outs.push(Tv::Var {
                name,
                ty,
                transposed: None,
            });
        }
        Ok(outs)
    }

    fn is_tainted(&self, t: &Tv) -> bool {
        matches!(t, Tv::Var { name, .. } if self.tainted.contains(name))
    }

    fn taint(&mut self, t: &Tv) {
        if let Tv::Var { name, .. } = t {
            self.tainted.insert(name.clone());
        }
    }

    /// A MIL block nested in `fb`'s (a branch of `cond`, a block of `while_loop`): it
    /// sees the enclosing block's variables and materialized constants, and takes no
    /// names the function already uses.
    fn child(fb: &Fb) -> Fb {
        Fb {
            ops: Vec::new(),
            taken: fb.taken.clone(),
            args: fb.args.clone(),
            consts: fb.consts.clone(),
            def: HashMap::new(),
        }
    }

    /// Block inputs for values of the types of `like` (the loop variables), bound in
    /// `child`: their MIL declarations and the values to bind to the region's arguments.
    fn block_inputs(
        &mut self,
        child: &mut Fb,
        like: &[(String, TensorType)],
    ) -> (Vec<NamedValueType>, Vec<Tv>) {
        let mut decls = Vec::new();
        let mut tvs = Vec::new();
        for (base, ty) in like {
            let name = child.fresh(&format!("{base}_in"));
            let vt = ValueType::Tensor(ty.clone());
            child.args.insert(name.clone(), Arg::var(vt.clone()));
            decls.push(NamedValueType::new(name.clone(), vt));
            tvs.push(Tv::Var {
                name,
                ty: ty.clone(),
                transposed: None,
            });
        }
        (decls, tvs)
    }

    /// Close `child` as a MIL block returning `outs`: a value the block does not define
    /// itself (one it captures from an enclosing block) is returned through an
    /// `identity`, as coremltools' builder returns outer values from a block. The names
    /// the block took stay taken in `fb`.
    fn finish_block(
        &mut self,
        fb: &mut Fb,
        mut child: Fb,
        inputs: Vec<NamedValueType>,
        outs: &[Tv],
    ) -> Result<(Block, Vec<ValueType>), TranslateError> {
        let mut names = Vec::with_capacity(outs.len());
        let mut types = Vec::with_capacity(outs.len());
        for t in outs {
            let mut n = self.var(&mut child, t)?;
            let local = child.def.contains_key(&n) || inputs.iter().any(|i| i.name == n);
            if !local {
                let out =
                    self.emit_named(&mut child, "identity", vec![("x", P::T(t.clone()))], None)?;
                n = self.var(&mut child, &out[0])?;
            }
            let ty = child
                .args
                .get(&n)
                .map(|a| a.ty.clone())
                .or_else(|| self.ty_of(&child, t).map(ValueType::Tensor))
                .unwrap_or_else(|| ValueType::Tensor(TensorType::scalar(DataType::Fp32)));
            types.push(ty);
            names.push(n);
        }
        fb.taken = std::mem::take(&mut child.taken);
        Ok((
            Block {
                inputs,
                outputs: names,
                operations: child.ops,
                ..Block::default()
            },
            types,
        ))
    }

    /// Emit a control-flow op (`cond`, `while_loop`) with its blocks; its outputs' types
    /// come from the op registry's inference over the blocks' output types.
    fn emit_blocks(
        &mut self,
        fb: &mut Fb,
        op_type: &str,
        param: &str,
        operands: Vec<String>,
        blocks: Vec<(Block, Vec<ValueType>)>,
    ) -> Result<Vec<Tv>, TranslateError> {
        let mut op = Operation::new(op_type);
        let args: Vec<Arg> = operands
            .iter()
            .map(|n| {
                fb.args.get(n).cloned().unwrap_or_else(|| {
                    Arg::var(ValueType::Tensor(TensorType::scalar(DataType::Fp32)))
                })
            })
            .collect();
        op.inputs.insert(
            param.to_string(),
            Argument(operands.into_iter().map(Binding::Name).collect()),
        );
        let block_types: Vec<Vec<ValueType>> = blocks.iter().map(|(_, t)| t.clone()).collect();
        let inferred = infer(
            op_type,
            OPSET,
            &BTreeMap::from([(param.to_string(), args)]),
            &block_types,
        )
        .map_err(|e| TranslateError::Unsupported {
            graph: self.graph.clone(),
            op: format!("MIL {op_type}"),
            reason: e.to_string(),
        })?;
        op.blocks = blocks.into_iter().map(|(b, _)| b).collect();
        let mut outs = Vec::new();
        for ty in &inferred.outputs {
            let n = fb.fresh(op_type);
            op.outputs.push(NamedValueType::new(n.clone(), ty.clone()));
            fb.args.insert(n.clone(), Arg::var(ty.clone()));
            fb.def.insert(n.clone(), fb.ops.len());
            outs.push(Tv::Var {
                name: n,
                ty: ty
                    .as_tensor()
                    .cloned()
                    .unwrap_or_else(|| TensorType::scalar(DataType::Fp32)),
                transposed: None,
            });
        }
        let op_name = op
            .outputs
            .first()
            .map(|o| o.name.clone())
            .unwrap_or_else(|| fb.fresh(op_type));
        op.attributes
            .insert("name".into(), MilValue::string(op_name));
        fb.ops.push(op);
        Ok(outs)
    }

    /// The truth of a constant predicate (any non-zero element: it has one).
    fn const_truth(&self, op: OpId, k: &Konst) -> Result<bool, TranslateError> {
        if k.count() != Some(1) {
            return Err(self.unsupported(op, "a condition that is not a single value"));
        }
        Ok(k.f64_at(0) != 0.0)
    }

    /// `controlflow.if_v1(pred) {then} {else}` → MIL `cond(pred)` with a true and a false
    /// block. Both aicode regions and MIL blocks capture the values around them, so the
    /// regions translate in place (their `yield_v1` operands are the blocks' outputs); a
    /// constant predicate selects its region at translation.
    fn if_op(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        a: Vec<Tv>,
        env: &Env,
    ) -> Result<Vec<Tv>, TranslateError> {
        let m = self.m;
        let [pred] = a.as_slice() else {
            return Err(self.unsupported(op, format!("{} operands (the condition only)", a.len())));
        };
        let regions = m.ir.op(op).regions.clone();
        let results = m.ir.op(op).result_types.len();
        if results == 0 {
            // Nothing observable: the regions compute values no one can see.
            return Ok(Vec::new());
        }
        let [then_r, else_r] = regions.as_slice() else {
            return Err(self.unsupported(
                op,
                format!(
                    "{} regions (then and else are needed when it has results)",
                    regions.len()
                ),
            ));
        };
        if let Tv::Const(k) = pred {
            let chosen = if self.const_truth(op, k)? {
                *then_r
            } else {
                *else_r
            };
            return self.region_in(fb, chosen, Vec::new(), env, Term::Yield);
        }
        let p = self.var(fb, pred)?;
        match self.ty_of(fb, pred) {
            Some(t) if t.dtype == DataType::Bool => {}
            other => {
                return Err(
                    self.unsupported(op, format!("the condition is {other:?}, not a bool tensor"))
                );
            }
        }
        let mut blocks = Vec::with_capacity(2);
        for r in [*then_r, *else_r] {
            let mut child = Self::child(fb);
            let outs = self.region_in(&mut child, r, Vec::new(), env, Term::Yield)?;
            if outs.len() != results {
                return Err(self.unsupported(
                    op,
                    format!(
                        "a region yields {} values for {results} results",
                        outs.len()
                    ),
                ));
            }
            blocks.push(self.finish_block(fb, child, Vec::new(), &outs)?);
        }
        self.emit_blocks(fb, "cond", "pred", vec![p], blocks)
    }

    /// `controlflow.while_v1(inits) {before} {after}` → MIL `while_loop(loop_vars)`.
    ///
    /// aicode's loop (MLIR `scf.while`'s form) runs `before` on the loop-carried values;
    /// its `condition_v1(c, args…)` either stops the loop with `args` as the results or
    /// passes `args` to `after`, whose `yield_v1` gives the next loop-carried values. MIL's
    /// `while_loop` runs its cond block on the loop variables and, while it returns true,
    /// the body block; the results are the loop variables. When `condition_v1` passes the
    /// block's own arguments on (what coreai-torch writes for `torch.while_loop`), the
    /// regions translate to the two blocks as they are. Otherwise the body block runs
    /// `before` then `after`, and `before` runs once more on the final loop variables for
    /// the results (its ops are pure, so it computes the same values again).
    fn while_op(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        a: Vec<Tv>,
        env: &Env,
    ) -> Result<Vec<Tv>, TranslateError> {
        let m = self.m;
        let regions = m.ir.op(op).regions.clone();
        let [before, after] = regions.as_slice() else {
            return Err(
                self.unsupported(op, format!("{} regions (before and after)", regions.len()))
            );
        };
        let (before, after) = (*before, *after);
        if a.is_empty() {
            return Err(self.unsupported(op, "a loop without loop-carried values"));
        }
        // The loop variables, materialized in the enclosing block.
        let mut vars = Vec::with_capacity(a.len());
        let mut like = Vec::with_capacity(a.len());
        for (i, t) in a.iter().enumerate() {
            let n = self.var(fb, t)?;
            let ty = self
                .ty_of(fb, t)
                .ok_or_else(|| self.unsupported(op, format!("loop value {i} is not a tensor")))?;
            like.push((format!("loop_var{i}"), ty));
            vars.push(n);
        }
        // The cond block: `before`, returning the condition.
        let mut cond = Self::child(fb);
        let (cond_in, cond_args) = self.block_inputs(&mut cond, &like);
        let c_out = self.region_in(&mut cond, before, cond_args.clone(), env, Term::Condition)?;
        let Some((c, passed)) = c_out.split_first() else {
            return Err(self.unsupported(op, "condition_v1 without a condition"));
        };
        if let Tv::Const(k) = c {
            if self.const_truth(op, k)? {
                return Err(
                    self.unsupported(op, "the loop condition is always true: the loop never ends")
                );
            }
            // Never entered: the results are what `before` passes on for the initial values.
            fb.taken = std::mem::take(&mut cond.taken);
            let out = self.region_in(fb, before, a, env, Term::Condition)?;
            return Ok(out.into_iter().skip(1).collect());
        }
        let passes_args = passed.len() == cond_args.len()
            && passed.iter().zip(&cond_args).all(|(p, q)| match (p, q) {
                (Tv::Var { name: x, .. }, Tv::Var { name: y, .. }) => x == y,
                _ => false,
            });
        let c = c.clone();
        let cond_block = self.finish_block(fb, cond, cond_in, &[c])?;
        // The body block.
        let mut body = Self::child(fb);
        let (body_in, body_args) = self.block_inputs(&mut body, &like);
        let after_args = if passes_args {
            body_args
        } else {
            let out = self.region_in(&mut body, before, body_args, env, Term::Condition)?;
            out.into_iter().skip(1).collect()
        };
        let next = self.region_in(&mut body, after, after_args, env, Term::Yield)?;
        if next.len() != like.len() {
            return Err(self.unsupported(
                op,
                format!(
                    "the loop body yields {} values for {} loop-carried values",
                    next.len(),
                    like.len()
                ),
            ));
        }
        let body_block = self.finish_block(fb, body, body_in, &next)?;
        let outs = self.emit_blocks(
            fb,
            "while_loop",
            "loop_vars",
            vars,
            vec![cond_block, body_block],
        )?;
        if passes_args {
            return Ok(outs);
        }
        let out = self.region_in(fb, before, outs, env, Term::Condition)?;
        Ok(out.into_iter().skip(1).collect())
    }

    /// The constant behind `tv`, or an error naming the op and operand.
    fn konst(&self, op: OpId, tv: &Tv, what: &str) -> Result<Rc<Konst>, TranslateError> {
        match tv {
            Tv::Const(k) => Ok(k.clone()),
            _ => Err(self.unsupported(op, format!("the {what} operand must be a constant"))),
        }
    }

    fn ints(&self, op: OpId, tv: &Tv, what: &str) -> Result<Vec<i64>, TranslateError> {
        self.konst(op, tv, what)?
            .to_i64s(1 << 16)
            .map_err(|e| self.unsupported(op, format!("{what}: {e}")))
    }

    fn int(&self, op: OpId, tv: &Tv, what: &str) -> Result<i64, TranslateError> {
        self.konst(op, tv, what)?
            .scalar_i64()
            .map_err(|e| self.unsupported(op, format!("{what}: {e}")))
    }

    /// The MIL variable for `tv`, materializing a constant.
    fn var(&mut self, fb: &mut Fb, tv: &Tv) -> Result<String, TranslateError> {
        match tv {
            Tv::Var { name, .. } | Tv::State { name, .. } => Ok(name.clone()),
            Tv::Const(k) => {
                let dtype = k.mil_dtype();
                self.const_var(fb, k, dtype)
            }
            Tv::Token => Err(TranslateError::Unsupported {
                graph: self.graph.clone(),
                op: "token".into(),
                reason: "a token used as a tensor".into(),
            }),
        }
    }

    fn const_var(
        &mut self,
        fb: &mut Fb,
        k: &Rc<Konst>,
        dtype: DataType,
    ) -> Result<String, TranslateError> {
        let key = (Rc::as_ptr(k) as usize, dtype);
        if let Some((n, _)) = fb.consts.get(&key) {
            return Ok(n.clone());
        }
        let value = k.to_mil(dtype).map_err(|e| TranslateError::Unsupported {
            graph: self.graph.clone(),
            op: "aicode.primitive.constant_v1".into(),
            reason: e,
        })?;
        let name = fb.fresh("const");
        push_const(fb, &name, value);
        fb.consts.insert(key, (name.clone(), k.clone()));
        Ok(name)
    }

    fn ty_of(&self, fb: &Fb, tv: &Tv) -> Option<TensorType> {
        match tv {
            Tv::Var { ty, .. } | Tv::State { ty, .. } => Some(ty.clone()),
            Tv::Const(k) => Some(TensorType::new(k.mil_dtype(), &k.shape)),
            Tv::Token => None,
        }
        .or_else(|| {
            let _ = fb;
            None
        })
    }

    fn emit(
        &mut self,
        fb: &mut Fb,
        op_type: &str,
        params: Vec<(&str, P)>,
    ) -> Result<Vec<Tv>, TranslateError> {
        self.emit_named(fb, op_type, params, None)
    }

    /// Emit one MIL op; its outputs' types come from the op registry's inference.
    fn emit_named(
        &mut self,
        fb: &mut Fb,
        op_type: &str,
        params: Vec<(&str, P)>,
        name: Option<&str>,
    ) -> Result<Vec<Tv>, TranslateError> {
        let mut op = Operation::new(op_type);
        let mut args: BTreeMap<String, Vec<Arg>> = BTreeMap::new();
        for (param, p) in params {
            let tvs: Vec<Tv> = match p {
                P::T(t) => vec![t],
                P::Ts(ts) => ts,
                other => {
                    let v = match other {
                        P::I(i) => MilValue::int32(i as i32),
                        P::Is(v) => {
                            let vals: Vec<i32> = v.iter().map(|&x| x as i32).collect();
                            MilValue::int32_tensor(&[vals.len() as u64], &vals)
                        }
                        P::B(b) => MilValue::bool(b),
                        P::Bs(v) => {
                            let bytes: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
                            MilValue::tensor_bytes(
                                TensorType::new(DataType::Bool, &[v.len() as u64]),
                                bytes,
                                Placement::Auto,
                            )
                        }
                        P::S(s) => MilValue::string(s),
                        P::F(f, DataType::Fp16) => MilValue::tensor_bytes(
                            TensorType::scalar(DataType::Fp16),
                            half::f16::from_f64(f).to_le_bytes().to_vec(),
                            Placement::Auto,
                        ),
                        P::F(f, DataType::Int32) => MilValue::int32(f as i32),
                        P::F(f, _) => MilValue::fp32(f as f32),
                        P::T(_) | P::Ts(_) => unreachable_param(),
                    };
                    let c = fb.fresh(&format!("{}_{param}", op_type));
                    push_const(fb, &c, v.clone());
                    op.inputs
                        .insert(param.to_string(), Argument(vec![Binding::Name(c)]));
                    args.insert(param.to_string(), vec![Arg::literal(v)]);
                    continue;
                }
            };
            let mut bindings = Vec::new();
            let mut a = Vec::new();
            for t in &tvs {
                let n = self.var(fb, t)?;
                a.push(fb.args.get(&n).cloned().unwrap_or_else(|| {
                    Arg::var(ValueType::Tensor(
                        self.ty_of(fb, t)
                            .unwrap_or_else(|| TensorType::scalar(DataType::Fp32)),
                    ))
                }));
                bindings.push(Binding::Name(n));
            }
            op.inputs.insert(param.to_string(), Argument(bindings));
            args.insert(param.to_string(), a);
        }
        let inferred =
            infer(op_type, OPSET, &args, &[]).map_err(|e| TranslateError::Unsupported {
                graph: self.graph.clone(),
                op: format!("MIL {op_type}"),
                reason: e.to_string(),
            })?;
        let mut outs = Vec::new();
        for (i, ty) in inferred.outputs.iter().enumerate() {
            let base = match (name, i) {
                (Some(n), 0) => n.to_string(),
                _ => op_type.to_string(),
            };
            let n = if name.is_some() && i == 0 && !fb.taken.contains(&base) {
                fb.taken.insert(base.clone());
                base
            } else {
                fb.fresh(&base)
            };
            op.outputs.push(NamedValueType::new(n.clone(), ty.clone()));
            let mut a = Arg::var(ty.clone());
            if i == 0 {
                a.sym = inferred.sym.clone();
            }
            fb.args.insert(n.clone(), a);
            fb.def.insert(n.clone(), fb.ops.len());
            let t = ty
                .as_tensor()
                .cloned()
                .unwrap_or_else(|| TensorType::scalar(DataType::Fp32));
            outs.push(Tv::Var {
                name: n,
                ty: t,
                transposed: None,
            });
        }
        let op_name = op
            .outputs
            .first()
            .map(|o| o.name.clone())
            .unwrap_or_else(|| fb.fresh(op_type));
        op.attributes
            .insert("name".into(), MilValue::string(op_name));
        fb.ops.push(op);
        Ok(outs)
    }

    fn emit1(
        &mut self,
        fb: &mut Fb,
        op_type: &str,
        params: Vec<(&str, P)>,
    ) -> Result<Vec<Tv>, TranslateError> {
        let mut outs = self.emit(fb, op_type, params)?;
        outs.truncate(1);
        Ok(outs)
    }

    fn rank(&self, fb: &Fb, tv: &Tv) -> Option<usize> {
        self.ty_of(fb, tv).and_then(|t| t.rank())
    }

    fn shape(&self, fb: &Fb, tv: &Tv) -> Option<Vec<u64>> {
        self.ty_of(fb, tv).and_then(|t| t.fixed_shape())
    }

    fn result_scalar(&self, op: OpId, i: usize) -> Result<Scalar, TranslateError> {
        let t = *self
            .m
            .ir
            .op(op)
            .result_types
            .get(i)
            .ok_or_else(|| self.unsupported(op, "missing result"))?;
        Ok(self.tensor_type(t)?.1)
    }

    fn attr_of(&self, op: OpId, name: &str) -> Result<Attr, TranslateError> {
        let a = schema::property(self.m, op, name)?
            .ok_or_else(|| self.unsupported(op, format!("property {name} is missing")))?;
        Ok(ir::attr(self.m, a)?)
    }

    /// Translate one op (not a terminator).
    fn op(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        a: Vec<Tv>,
        uses: &HashMap<Value, usize>,
    ) -> Result<Vec<Tv>, TranslateError> {
        let m = self.m;
        let full = m.name_of(op);
        let name = short(&full);
        let fast = self.options.fast_paths;
        let (graph, opname) = (self.graph.clone(), self.m.name_of(op));
        let arg = |i: usize| -> Result<Tv, TranslateError> {
            a.get(i)
                .cloned()
                .ok_or_else(|| TranslateError::Unsupported {
                    graph: graph.clone(),
                    op: opname.clone(),
                    reason: format!("operand {i} is missing"),
                })
        };
        // Small computations on constants are evaluated here (MIL wants constants).
        if m.ir.op(op).result_types.len() == 1
            && !a.is_empty()
            && name != "primitive.constant_v1"
            && !name.starts_with("dataflow.")
            && let Some(ks) = a
                .iter()
                .map(|t| match t {
                    Tv::Const(k) => Some(k.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
        {
            let base = op_base(composite_base(name).unwrap_or(name));
            let comb = if base == "reduce" {
                self.region_combiner(op)
            } else {
                None
            };
            let out = self.result_scalar(op, 0)?;
            let refs: Vec<&Konst> = ks.iter().map(|k| k.as_ref()).collect();
            if let Some(k) = crate::fold::fold(base, &refs, out, comb.as_deref()) {
                return Ok(vec![Tv::Const(Rc::new(k))]);
            }
        }
        // Composite ops: map to MIL where there is a counterpart, else lower.
        if let Some(base) = composite_base(name) {
            let has_region = !m.ir.op(op).regions.is_empty();
            if (fast || !has_region)
                && let Some(out) = self.primitive(fb, op, base, &a, uses)?
            {
                *self.report.mapped.entry(full.clone()).or_default() += 1;
                return Ok(out);
            }
            if has_region {
                *self.report.lowered.entry(full.clone()).or_default() += 1;
                let r = m.ir.op(op).regions[0];
                return self.region(fb, r, a);
            }
            return Err(self.unsupported(op, "a composite without a decomposition region"));
        }
        match name {
            "primitive.constant_v1" => {
                let Some(&rt) = m.ir.op(op).result_types.first() else {
                    return Err(self.unsupported(op, "a constant without a result"));
                };
                let (_, s) = self.tensor_type(rt)?;
                let shape = match ir::ty(m, rt)? {
                    Type::Tensor { shape, .. } => shape,
                    _ => Vec::new(),
                };
                if shape.iter().any(|&d| d < 0) {
                    return Err(self.unsupported(op, "a constant of dynamic shape"));
                }
                let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
                let (data, splat) = match self.attr_of(op, "value")? {
                    Attr::DenseElements { splat, data } => (data, splat),
                    Attr::DenseResource(h) => (
                        self.resources
                            .get(h)
                            .cloned()
                            .ok_or_else(|| self.unsupported(op, "missing resource"))?,
                        false,
                    ),
                    other => return Err(self.unsupported(op, format!("value {other:?}"))),
                };
                let k = Konst::new(s, shape, data, splat).map_err(|e| self.unsupported(op, e))?;
                Ok(vec![Tv::Const(Rc::new(k))])
            }
            "dataflow.invoke_v1" => self.invoke(fb, op, a),
            "dataflow.create_token_v1" | "dataflow.join_token_v1" => Ok(vec![Tv::Token]),
            "dataflow.read_handle_v1" => {
                let s = arg(0)?;
                let out = self.emit1(fb, "read_state", vec![("input", P::T(s))])?;
                Ok(vec![out.into_iter().next().unwrap_or(Tv::Token), Tv::Token])
            }
            "dataflow.write_handle_v1" => {
                let (s, data) = (arg(0)?, arg(1)?);
                // MIL write_state has no result; a read after it sees the new value.
                let mut o = Operation::new("write_state");
                let sname = self.var(fb, &s)?;
                let dname = self.var(fb, &data)?;
                o.inputs
                    .insert("input".into(), Argument(vec![Binding::Name(sname)]));
                o.inputs
                    .insert("data".into(), Argument(vec![Binding::Name(dname)]));
                let n = fb.fresh("write_state");
                o.attributes.insert("name".into(), MilValue::string(n));
                fb.ops.push(o);
                Ok(vec![Tv::Token])
            }
            _ => match self.primitive(fb, op, name, &a, uses)? {
                Some(out) => Ok(out),
                None => {
                    if let Some(&r) = m.ir.op(op).regions.first() {
                        *self.report.lowered.entry(full.clone()).or_default() += 1;
                        return self.region(fb, r, a);
                    }
                    Err(self.unsupported(op, NO_COUNTERPART))
                }
            },
        }
    }

    /// `invoke_v1`: a composite graph mapped by its declaration, or its body inlined.
    fn invoke(&mut self, fb: &mut Fb, op: OpId, a: Vec<Tv>) -> Result<Vec<Tv>, TranslateError> {
        let callee = match self.attr_of(op, "callee")? {
            Attr::ParamConstant { value, .. } => match ir::attr(self.m, value)? {
                Attr::SymbolRef(path) => path.join("::"),
                other => return Err(self.unsupported(op, format!("callee {other:?}"))),
            },
            Attr::SymbolRef(path) => path.join("::"),
            other => return Err(self.unsupported(op, format!("callee {other:?}"))),
        };
        let g = self
            .by_name
            .get(&callee)
            .cloned()
            .ok_or_else(|| self.unsupported(op, format!("no graph named {callee}")))?;
        if self.options.fast_paths
            && let Some(decl) = &g.composite
            && let Some(out) = self.composite_graph(fb, op, decl, &a)?
        {
            *self
                .report
                .mapped
                .entry(format!("invoke {}", decl.name))
                .or_default() += 1;
            return Ok(out);
        }
        let label = g.composite.as_ref().map_or_else(
            || format!("invoke {}", g.name),
            |d| format!("invoke {}", d.name),
        );
        *self.report.lowered.entry(label).or_default() += 1;
        let saved = std::mem::replace(&mut self.graph, g.name.clone());
        let r = self.region(fb, g.body, a);
        self.graph = saved;
        r
    }

    /// Fast paths for composite graphs (`compositeDecl`).
    fn composite_graph(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        decl: &model::CompositeDecl,
        a: &[Tv],
    ) -> Result<Option<Vec<Tv>>, TranslateError> {
        let f32_attr = |k: &str| decl.attrs.get(k).and_then(|v| v.as_f64());
        let ints_attr = |k: &str| decl.attrs.get(k).and_then(|v| v.as_ints());
        Ok(match (decl.name.as_str(), a) {
            ("layer_norm", [x, gamma, beta]) => {
                let Some(axes) = ints_attr("axes") else {
                    return Ok(None);
                };
                let eps = f32_attr("eps").unwrap_or(1e-5);
                let dt = self.ty_of(fb, x).map_or(DataType::Fp32, |t| t.dtype);
                Some(self.emit1(
                    fb,
                    "layer_norm",
                    vec![
                        ("x", P::T(x.clone())),
                        ("axes", P::Is(axes)),
                        ("gamma", P::T(gamma.clone())),
                        ("beta", P::T(beta.clone())),
                        ("epsilon", P::F(eps, dt)),
                    ],
                )?)
            }
            ("scaled_dot_product_attention", [q, k, v, mask]) => {
                let causal = ints_attr("is_causal").is_some_and(|v| v.first() == Some(&1));
                let window = ints_attr("window_size")
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0);
                if causal || window != 0 || self.rank(fb, q) != Some(4) {
                    return Ok(None);
                }
                Some(self.emit1(
                    fb,
                    "scaled_dot_product_attention",
                    vec![
                        ("query", P::T(q.clone())),
                        ("key", P::T(k.clone())),
                        ("value", P::T(v.clone())),
                        ("attn_mask", P::T(mask.clone())),
                    ],
                )?)
            }
            ("scaled_dot_product_attention", [q, k, v]) => {
                let causal = ints_attr("is_causal").is_some_and(|v| v.first() == Some(&1));
                if causal || self.rank(fb, q) != Some(4) {
                    return Ok(None);
                }
                Some(self.emit1(
                    fb,
                    "scaled_dot_product_attention",
                    vec![
                        ("query", P::T(q.clone())),
                        ("key", P::T(k.clone())),
                        ("value", P::T(v.clone())),
                    ],
                )?)
            }
            ("avg_pool_2d", [x, kernel, stride, padding, ceil, include_pad, divisor]) => {
                let konsts = [kernel, stride, padding, ceil, include_pad, divisor];
                if konsts.iter().any(|t| !matches!(t, Tv::Const(_))) {
                    return Ok(None);
                }
                let kernel = self.ints(op, kernel, "kernel_size")?;
                let stride = self.ints(op, stride, "stride")?;
                let padding = self.ints(op, padding, "padding")?;
                let ceil = self.int(op, ceil, "ceil_mode")? != 0;
                let include = self.int(op, include_pad, "count_include_pad")? != 0;
                let div = self.int(op, divisor, "divisor_override")?;
                // Excluding the padding from the average is left to the decomposition: it
                // is what defines the op, and coreai-torch 0.4.3's decomposition of it does
                // not give PyTorch's count (docs/coreai.md).
                let padded = padding.iter().any(|&p| p != 0);
                if div != 0
                    || kernel.len() != 2
                    || stride.len() != 2
                    || padding.len() != 2
                    || (padded && (ceil || !include))
                {
                    return Ok(None);
                }
                let pad = vec![padding[0], padding[0], padding[1], padding[1]];
                Some(self.emit1(
                    fb,
                    "avg_pool",
                    vec![
                        ("x", P::T(x.clone())),
                        ("kernel_sizes", P::Is(kernel)),
                        ("strides", P::Is(stride)),
                        ("pad_type", P::S("custom")),
                        ("pad", P::Is(pad)),
                        ("exclude_padding_from_average", P::B(!include)),
                        ("ceil_mode", P::B(ceil)),
                    ],
                )?)
            }
            _ => None,
        })
    }

    /// MIL for a primitive (or the fast path of a composite, `name` without `broadcasting_`
    /// and version). `None`: no counterpart (the caller lowers a composite).
    fn primitive(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        name: &str,
        a: &[Tv],
        uses: &HashMap<Value, usize>,
    ) -> Result<Option<Vec<Tv>>, TranslateError> {
        let (graph, opname) = (self.graph.clone(), self.m.name_of(op));
        let arg = |i: usize| -> Result<Tv, TranslateError> {
            a.get(i)
                .cloned()
                .ok_or_else(|| TranslateError::Unsupported {
                    graph: graph.clone(),
                    op: opname.clone(),
                    reason: format!("operand {i} is missing"),
                })
        };
        let base = name
            .strip_prefix("primitive.")
            .unwrap_or(name)
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches("_v");
        let binary = |s: &str| -> Option<&'static str> {
            Some(match s {
                "add" => "add",
                "sub" => "sub",
                "mul" => "mul",
                "maximum" => "maximum",
                "minimum" => "minimum",
                "pow" => "pow",
                "floor_divide" => "floor_div",
                "equal" => "equal",
                "not_equal" => "not_equal",
                "greater" => "greater",
                "greater_equal" => "greater_equal",
                "less" => "less",
                "less_equal" => "less_equal",
                "logical_and" | "and" => "logical_and",
                "logical_or" | "or" => "logical_or",
                "logical_xor" | "xor" => "logical_xor",
                _ => return None,
            })
        };
        let bitwise = |s: &str| -> Option<&'static str> {
            Some(match s {
                "bitwise_and" => "logical_and",
                "bitwise_or" => "logical_or",
                "bitwise_xor" => "logical_xor",
                _ => return None,
            })
        };
        let unary = |s: &str| -> Option<&'static str> {
            Some(match s {
                "abs" => "abs",
                "exp" => "exp",
                "log" => "log",
                "sqrt" => "sqrt",
                "sin" => "sin",
                "cos" => "cos",
                "tan" => "tan",
                "tanh" => "tanh",
                "sinh" => "sinh",
                "cosh" => "cosh",
                "asin" => "asin",
                "acos" => "acos",
                "atan" => "atan",
                "atanh" => "atanh",
                "erf" => "erf",
                "floor" => "floor",
                "ceil" => "ceil",
                "sign" => "sign",
                "not" => "logical_not",
                "relu" => "relu",
                "sigmoid" => "sigmoid",
                "silu" => "silu",
                _ => return None,
            })
        };
        if let Some(mil) = binary(base) {
            let (x, y) = (arg(0)?, arg(1)?);
            if let Some(out) = self.try_fuse_bias(fb, op, base, &x, &y, uses)? {
                return Ok(Some(out));
            }
            if let Some(out) = self.try_clip(fb, op, base, &x, &y, uses)? {
                return Ok(Some(out));
            }
            return Ok(Some(self.emit1(
                fb,
                mil,
                vec![("x", P::T(x)), ("y", P::T(y))],
            )?));
        }
        if let Some(mil) = bitwise(base) {
            let (x, y) = (arg(0)?, arg(1)?);
            if self
                .ty_of(fb, &x)
                .is_some_and(|t| t.dtype == DataType::Bool)
            {
                return Ok(Some(self.emit1(
                    fb,
                    mil,
                    vec![("x", P::T(x)), ("y", P::T(y))],
                )?));
            }
            return Err(
                self.unsupported(op, "bitwise operations on integers have no MIL counterpart")
            );
        }
        if let Some(mil) = unary(base) {
            return Ok(Some(self.emit1(fb, mil, vec![("x", P::T(arg(0)?))])?));
        }
        Ok(Some(match base {
            "divide" | "modulo" => {
                let (x, y) = (arg(0)?, arg(1)?);
                let dt = self.ty_of(fb, &x).map_or(DataType::Fp32, |t| t.dtype);
                let float = dt.is_float();
                let (fx, fy) = if float {
                    (x.clone(), y.clone())
                } else {
                    (
                        self.emit1(
                            fb,
                            "cast",
                            vec![("x", P::T(x.clone())), ("dtype", P::S("fp32"))],
                        )?
                        .remove(0),
                        self.emit1(
                            fb,
                            "cast",
                            vec![("x", P::T(y.clone())), ("dtype", P::S("fp32"))],
                        )?
                        .remove(0),
                    )
                };
                let q = self
                    .emit1(
                        fb,
                        "real_div",
                        vec![("x", P::T(fx.clone())), ("y", P::T(fy.clone()))],
                    )?
                    .remove(0);
                if base == "divide" && float {
                    vec![q]
                } else {
                    // trunc(q) = sign(q) * floor(|q|)
                    let sg = self
                        .emit1(fb, "sign", vec![("x", P::T(q.clone()))])?
                        .remove(0);
                    let ab = self.emit1(fb, "abs", vec![("x", P::T(q))])?.remove(0);
                    let fl = self.emit1(fb, "floor", vec![("x", P::T(ab))])?.remove(0);
                    let t = self
                        .emit1(fb, "mul", vec![("x", P::T(sg)), ("y", P::T(fl))])?
                        .remove(0);
                    let r = if base == "divide" {
                        t
                    } else {
                        let p = self
                            .emit1(fb, "mul", vec![("x", P::T(t)), ("y", P::T(fy))])?
                            .remove(0);
                        self.emit1(fb, "sub", vec![("x", P::T(fx)), ("y", P::T(p))])?
                            .remove(0)
                    };
                    if float {
                        vec![r]
                    } else {
                        self.emit1(fb, "cast", vec![("x", P::T(r)), ("dtype", P::S("int32"))])?
                    }
                }
            }
            "rsqrt" => {
                let x = arg(0)?;
                let s = self.emit1(fb, "sqrt", vec![("x", P::T(x))])?;
                self.emit1(
                    fb,
                    "inverse",
                    vec![
                        ("x", P::T(s[0].clone())),
                        ("epsilon", P::F(0.0, DataType::Fp32)),
                    ],
                )?
            }
            "round" => self.emit1(fb, "round", vec![("x", P::T(arg(0)?))])?,
            "asinh" => {
                // asinh(x) = sign(x) * log(|x| + sqrt(x^2 + 1))
                let x = arg(0)?;
                let dt = self.ty_of(fb, &x).map_or(DataType::Fp32, |t| t.dtype);
                let ab = self.emit1(fb, "abs", vec![("x", P::T(x.clone()))])?;
                let sq = self.emit1(
                    fb,
                    "mul",
                    vec![("x", P::T(ab[0].clone())), ("y", P::T(ab[0].clone()))],
                )?;
                let p1 = self.emit1(
                    fb,
                    "add",
                    vec![("x", P::T(sq[0].clone())), ("y", P::F(1.0, dt))],
                )?;
                let r = self.emit1(fb, "sqrt", vec![("x", P::T(p1[0].clone()))])?;
                let s = self.emit1(
                    fb,
                    "add",
                    vec![("x", P::T(ab[0].clone())), ("y", P::T(r[0].clone()))],
                )?;
                let l = self.emit1(fb, "log", vec![("x", P::T(s[0].clone()))])?;
                let sg = self.emit1(fb, "sign", vec![("x", P::T(x))])?;
                self.emit1(
                    fb,
                    "mul",
                    vec![("x", P::T(sg[0].clone())), ("y", P::T(l[0].clone()))],
                )?
            }
            "gelu" => {
                let mode = match self.attr_of(op, "approximate")? {
                    Attr::Enum {
                        kind: EnumKind::Approximate,
                        value,
                    } => match value {
                        0 => "EXACT",
                        1 => "TANH_APPROXIMATION",
                        _ => "SIGMOID_APPROXIMATION",
                    },
                    other => return Err(self.unsupported(op, format!("approximate = {other:?}"))),
                };
                self.emit1(fb, "gelu", vec![("x", P::T(arg(0)?)), ("mode", P::S(mode))])?
            }
            "softmax" => {
                let axis = self.int(op, &arg(1)?, "axis")?;
                self.emit1(
                    fb,
                    "softmax",
                    vec![("x", P::T(arg(0)?)), ("axis", P::I(axis))],
                )?
            }
            "where" => self.emit1(
                fb,
                "select",
                vec![
                    ("cond", P::T(arg(0)?)),
                    ("a", P::T(arg(1)?)),
                    ("b", P::T(arg(2)?)),
                ],
            )?,
            "cast" => {
                let target = mil_dtype(self.result_scalar(op, 0)?);
                let x = arg(0)?;
                if let Tv::Const(k) = &x {
                    let s = self.result_scalar(op, 0)?;
                    if let Some(c) = k.cast_to(s) {
                        return Ok(Some(vec![Tv::Const(Rc::new(c))]));
                    }
                }
                if self.ty_of(fb, &x).map(|t| t.dtype) == Some(target) {
                    vec![x]
                } else {
                    self.emit1(
                        fb,
                        "cast",
                        vec![("x", P::T(x)), ("dtype", P::S(dtype_str(target)))],
                    )?
                }
            }
            "reshape" => {
                let x = arg(0)?;
                let shape = self.ints(op, &arg(1)?, "shape")?;
                if let Tv::Const(k) = &x {
                    let new = resolve_reshape(k.count().unwrap_or(0), &shape).ok_or_else(|| {
                        self.unsupported(op, "reshape of a constant to an incompatible shape")
                    })?;
                    let mut c = (**k).clone();
                    c.shape = new;
                    return Ok(Some(vec![Tv::Const(Rc::new(c))]));
                }
                self.emit1(fb, "reshape", vec![("x", P::T(x)), ("shape", P::Is(shape))])?
            }
            "transpose" => {
                let x = arg(0)?;
                let perm = self.ints(op, &arg(1)?, "permutation")?;
                let out = self.emit1(
                    fb,
                    "transpose",
                    vec![("x", P::T(x.clone())), ("perm", P::Is(perm.clone()))],
                )?;
                match (x, out.into_iter().next()) {
                    (Tv::Const(k), Some(Tv::Var { name, ty, .. })) => vec![Tv::Var {
                        name,
                        ty,
                        transposed: Some((k, perm)),
                    }],
                    (_, Some(v)) => vec![v],
                    (_, None) => return Err(self.unsupported(op, "transpose gave no result")),
                }
            }
            "broadcast_in_dims" => {
                let x = arg(0)?;
                let sizes = self.ints(op, &arg(1)?, "dim_sizes")?;
                let axes = self.ints(op, &arg(2)?, "axes")?;
                let rank = self
                    .rank(fb, &x)
                    .ok_or_else(|| self.unsupported(op, "input of unknown rank"))?;
                let mut reps = vec![1i64; rank];
                for (&ax, &size) in axes.iter().zip(&sizes) {
                    let ax = norm_axis(ax, rank)
                        .ok_or_else(|| self.unsupported(op, "axis out of range"))?;
                    reps[ax] = size;
                }
                if reps.iter().all(|&r| r == 1) {
                    vec![x]
                } else {
                    self.emit1(fb, "tile", vec![("x", P::T(x)), ("reps", P::Is(reps))])?
                }
            }
            "broadcast_to" => {
                let x = arg(0)?;
                let target = self.ints(op, &arg(1)?, "shape")?;
                self.broadcast_to(fb, op, x, &target)?
            }
            "get_shape" => {
                let x = arg(0)?;
                match self.shape(fb, &x) {
                    Some(s) => {
                        let vals: Vec<i64> = s.iter().map(|&d| d as i64).collect();
                        vec![Tv::Const(Rc::new(Konst::i64s(
                            vec![vals.len() as u64],
                            &vals,
                        )))]
                    }
                    None => self.emit1(fb, "shape", vec![("x", P::T(x))])?,
                }
            }
            "broadcast_shapes" => {
                let s1 = self.ints(op, &arg(0)?, "shape_1")?;
                let s2 = self.ints(op, &arg(1)?, "shape_2")?;
                let n = s1.len().max(s2.len());
                let mut out = vec![0i64; n];
                for i in 0..n {
                    let d1 = if i + s1.len() >= n {
                        s1[i + s1.len() - n]
                    } else {
                        1
                    };
                    let d2 = if i + s2.len() >= n {
                        s2[i + s2.len() - n]
                    } else {
                        1
                    };
                    out[i] = if d1 == 1 { d2 } else { d1 };
                }
                vec![Tv::Const(Rc::new(Konst::i64s(vec![n as u64], &out)))]
            }
            "concat" => {
                let dim = self.int(op, &arg(0)?, "dimension")?;
                let inputs: Vec<Tv> = a.iter().skip(1).cloned().collect();
                if inputs.len() == 1 {
                    inputs
                } else {
                    self.emit1(
                        fb,
                        "concat",
                        vec![
                            ("values", P::Ts(inputs)),
                            ("axis", P::I(dim)),
                            ("interleave", P::B(false)),
                        ],
                    )?
                }
            }
            "expand_dims" => {
                let axes = self.ints(op, &arg(1)?, "axes")?;
                self.emit1(
                    fb,
                    "expand_dims",
                    vec![("x", P::T(arg(0)?)), ("axes", P::Is(axes))],
                )?
            }
            "shrink_dims" => {
                let axes = self.ints(op, &arg(1)?, "axes")?;
                self.emit1(
                    fb,
                    "squeeze",
                    vec![("x", P::T(arg(0)?)), ("axes", P::Is(axes))],
                )?
            }
            "reverse" => {
                let axes = self.ints(op, &arg(1)?, "dims")?;
                self.emit1(
                    fb,
                    "reverse",
                    vec![("x", P::T(arg(0)?)), ("axes", P::Is(axes))],
                )?
            }
            "tile" => {
                let x = arg(0)?;
                let mut reps = self.ints(op, &arg(1)?, "dims")?;
                let rank = self
                    .rank(fb, &x)
                    .ok_or_else(|| self.unsupported(op, "input of unknown rank"))?;
                while reps.len() < rank {
                    reps.insert(0, 1);
                }
                self.emit1(fb, "tile", vec![("x", P::T(x)), ("reps", P::Is(reps))])?
            }
            "slice" => self.slice(fb, op, a)?,
            "slice_update" => {
                let x = arg(0)?;
                let update = arg(4)?;
                let (begin, stop, strides, end_mask) = self.slice_bounds(fb, op, &x, a)?;
                self.emit1(
                    fb,
                    "slice_update",
                    vec![
                        ("x", P::T(x)),
                        ("update", P::T(update)),
                        ("begin", P::Is(begin)),
                        ("end", P::Is(stop)),
                        ("stride", P::Is(strides)),
                        ("end_mask", P::Bs(end_mask)),
                    ],
                )?
            }
            "split" => {
                let x = arg(0)?;
                let dim = self.int(op, &arg(2)?, "dim")?;
                let k = self.konst(op, &arg(1)?, "split_size_or_sections")?;
                let shape = self
                    .shape(fb, &x)
                    .ok_or_else(|| self.unsupported(op, "input of unknown shape"))?;
                let axis = norm_axis(dim, shape.len())
                    .ok_or_else(|| self.unsupported(op, "dim out of range"))?;
                let sizes: Vec<i64> = if k.shape.is_empty() {
                    let s = k.scalar_i64().map_err(|e| self.unsupported(op, e))?.max(1);
                    let total = shape[axis] as i64;
                    let mut v = vec![s; (total / s) as usize];
                    if total % s != 0 {
                        v.push(total % s);
                    }
                    v
                } else {
                    k.to_i64s(1 << 16).map_err(|e| self.unsupported(op, e))?
                };
                if sizes.len() == 1 {
                    vec![x]
                } else {
                    self.emit(
                        fb,
                        "split",
                        vec![
                            ("x", P::T(x)),
                            ("split_sizes", P::Is(sizes)),
                            ("axis", P::I(dim)),
                        ],
                    )?
                }
            }
            "pad" => {
                let x = arg(0)?;
                let pads = self.ints(op, &arg(1)?, "padding")?;
                let mode = match self.attr_of(op, "padding_mode")? {
                    Attr::Enum {
                        kind: EnumKind::Padding,
                        value,
                    } => match value {
                        1 => "constant",
                        2 => "reflect",
                        3 => "replicate",
                        v => {
                            return Err(self.unsupported(
                                op,
                                format!(
                                    "padding mode {} has no MIL counterpart",
                                    EnumKind::Padding.case(v).unwrap_or("?")
                                ),
                            ));
                        }
                    },
                    other => return Err(self.unsupported(op, format!("padding_mode = {other:?}"))),
                };
                if pads.iter().all(|&p| p == 0) {
                    vec![x]
                } else {
                    let dt = self.ty_of(fb, &x).map_or(DataType::Fp32, |t| t.dtype);
                    let value = match a.get(2) {
                        Some(Tv::Const(k)) => k.scalar_f64().unwrap_or(0.0),
                        _ => 0.0,
                    };
                    // MIL pads only the last dims: drop the leading all-zero pairs.
                    let mut p = pads.clone();
                    while p.len() > 2 && p[0] == 0 && p[1] == 0 {
                        p.drain(..2);
                    }
                    if value.is_infinite() && dt.is_float() {
                        // -inf padding before a max pool: finite lowest value of the type.
                        let v = if dt == DataType::Fp16 {
                            -65504.0
                        } else {
                            f64::from(f32::MIN)
                        } * value.signum().abs();
                        self.emit1(
                            fb,
                            "pad",
                            vec![
                                ("x", P::T(x)),
                                ("pad", P::Is(p)),
                                ("mode", P::S(mode)),
                                ("constant_val", P::F(if value < 0.0 { v } else { -v }, dt)),
                            ],
                        )?
                    } else {
                        self.emit1(
                            fb,
                            "pad",
                            vec![
                                ("x", P::T(x)),
                                ("pad", P::Is(p)),
                                ("mode", P::S(mode)),
                                ("constant_val", P::F(value, dt)),
                            ],
                        )?
                    }
                }
            }
            "batch_matmul" | "batch_matmul_" => self.matmul(fb, op, arg(0)?, arg(1)?)?,
            "conv2d" | "conv3d" => {
                let (x, w) = (arg(0)?, arg(1)?);
                let stride = self.ints(op, &arg(2)?, "stride")?;
                let dilation = self.ints(op, &arg(3)?, "dilation")?;
                let groups = self.int(op, &arg(4)?, "groups")?;
                let nsp = stride.len();
                let (x, pad) = self.absorb_pad(fb, op, x, nsp, |v| v == 0.0, uses);
                self.emit1(
                    fb,
                    "conv",
                    vec![
                        ("x", P::T(x)),
                        ("weight", P::T(w)),
                        ("strides", P::Is(stride)),
                        ("pad_type", P::S("custom")),
                        ("pad", P::Is(pad)),
                        ("dilations", P::Is(dilation)),
                        ("groups", P::I(groups)),
                    ],
                )?
            }
            "conv_transpose2d" | "conv_transpose3d" => {
                let (x, w) = (arg(0)?, arg(1)?);
                let stride = self.ints(op, &arg(2)?, "stride")?;
                let padding = self.ints(op, &arg(3)?, "padding")?;
                let dilation = self.ints(op, &arg(4)?, "dilation")?;
                let out_pad = self.ints(op, &arg(5)?, "output_pad")?;
                let groups = self.int(op, &arg(6)?, "groups")?;
                let Some(&rt) = self.m.ir.op(op).result_types.first() else {
                    return Err(self.unsupported(op, "a transposed convolution without a result"));
                };
                let (ot, _) = self.tensor_type(rt)?;
                let out_shape: Vec<i64> = ot
                    .fixed_shape()
                    .ok_or_else(|| self.unsupported(op, "output of unknown shape"))?
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                // MIL pad: [begin_0, end_0, begin_1, end_1]; the output padding goes at the end.
                let mut pad = Vec::new();
                for i in 0..stride.len() {
                    let p = padding.get(i).copied().unwrap_or(0);
                    pad.push(p);
                    pad.push(p - out_pad.get(i).copied().unwrap_or(0));
                }
                self.emit1(
                    fb,
                    "conv_transpose",
                    vec![
                        ("x", P::T(x)),
                        ("weight", P::T(w)),
                        ("strides", P::Is(stride)),
                        ("pad_type", P::S("custom")),
                        ("pad", P::Is(pad)),
                        ("dilations", P::Is(dilation)),
                        ("groups", P::I(groups)),
                        ("output_shape", P::Is(out_shape)),
                    ],
                )?
            }
            "max_pool_2d" | "max_pool_3d" => {
                let x = arg(0)?;
                let kernel = self.ints(op, &arg(1)?, "kernel_size")?;
                let stride = self.ints(op, &arg(2)?, "stride")?;
                let dilation = self.ints(op, &arg(3)?, "dilation")?;
                let ceil = self.int(op, &arg(4)?, "ceil_mode")? != 0;
                if dilation.iter().any(|&d| d != 1) {
                    return Err(self.unsupported(op, "dilated max pooling has no MIL counterpart"));
                }
                let n = kernel.len();
                // Padding with the lowest value before a max pool is the pool's own padding.
                let (x, pad) = self.absorb_pad(fb, op, x, n, |v| v <= -65504.0, uses);
                self.emit1(
                    fb,
                    "max_pool",
                    vec![
                        ("x", P::T(x)),
                        ("kernel_sizes", P::Is(kernel)),
                        ("strides", P::Is(stride)),
                        ("pad_type", P::S("custom")),
                        ("pad", P::Is(pad)),
                        ("ceil_mode", P::B(ceil)),
                    ],
                )?
            }
            "sum_pool_2d" | "sum_pool_3d" => {
                let x = arg(0)?;
                let kernel = self.ints(op, &arg(1)?, "kernel_size")?;
                let stride = self.ints(op, &arg(2)?, "strides")?;
                let dilation = self.ints(op, &arg(3)?, "dilation")?;
                if dilation.iter().any(|&d| d != 1) {
                    return Err(self.unsupported(op, "dilated sum pooling has no MIL counterpart"));
                }
                let dt = self.ty_of(fb, &x).map_or(DataType::Fp32, |t| t.dtype);
                let n = kernel.len();
                let Some(area) = kernel.iter().try_fold(1i64, |a, &d| a.checked_mul(d)) else {
                    return Err(self.unsupported(op, "a pooling window whose area overflows"));
                };
                let avg = self.emit1(
                    fb,
                    "avg_pool",
                    vec![
                        ("x", P::T(x)),
                        ("kernel_sizes", P::Is(kernel)),
                        ("strides", P::Is(stride)),
                        ("pad_type", P::S("custom")),
                        ("pad", P::Is(vec![0; 2 * n])),
                        ("exclude_padding_from_average", P::B(false)),
                    ],
                )?;
                self.emit1(
                    fb,
                    "mul",
                    vec![("x", P::T(avg[0].clone())), ("y", P::F(area as f64, dt))],
                )?
            }
            "reduce" => return self.reduce_region(fb, op, a.to_vec()),
            "reduce_sum" | "reduce_mean" | "reduce_max" | "reduce_min" | "reduce_product" => {
                let mil = match base {
                    "reduce_product" => "reduce_prod",
                    b => match b {
                        "reduce_sum" => "reduce_sum",
                        "reduce_mean" => "reduce_mean",
                        "reduce_max" => "reduce_max",
                        _ => "reduce_min",
                    },
                };
                let axes = self.ints(op, &arg(1)?, "axes")?;
                self.emit1(
                    fb,
                    mil,
                    vec![
                        ("x", P::T(arg(0)?)),
                        ("axes", P::Is(axes)),
                        ("keep_dims", P::B(true)),
                    ],
                )?
            }
            "any" | "all" => {
                let x = arg(0)?;
                let axes = self.ints(op, &arg(1)?, "axes")?;
                let xi = self.emit1(fb, "cast", vec![("x", P::T(x)), ("dtype", P::S("int32"))])?;
                let r = self.emit1(
                    fb,
                    if base == "any" {
                        "reduce_max"
                    } else {
                        "reduce_min"
                    },
                    vec![
                        ("x", P::T(xi[0].clone())),
                        ("axes", P::Is(axes)),
                        ("keep_dims", P::B(true)),
                    ],
                )?;
                self.emit1(
                    fb,
                    "cast",
                    vec![("x", P::T(r[0].clone())), ("dtype", P::S("bool"))],
                )?
            }
            "argmax" | "argmin" => {
                let axis = self.int(op, &arg(1)?, "axis")?;
                let mil = if base == "argmax" {
                    "reduce_argmax"
                } else {
                    "reduce_argmin"
                };
                self.emit1(
                    fb,
                    mil,
                    vec![
                        ("x", P::T(arg(0)?)),
                        ("axis", P::I(axis)),
                        ("keep_dims", P::B(true)),
                    ],
                )?
            }
            "reduce_index" => return self.reduce_index(fb, op, a.to_vec()),
            "argsort" => {
                let axis = self.int(op, &arg(1)?, "dim")?;
                let desc = self.int(op, &arg(2)?, "descending")? != 0;
                self.emit1(
                    fb,
                    "argsort",
                    vec![
                        ("x", P::T(arg(0)?)),
                        ("axis", P::I(axis)),
                        ("ascending", P::B(!desc)),
                    ],
                )?
            }
            "sort" => {
                let x = arg(0)?;
                let axis = self.int(op, &arg(1)?, "dim")?;
                let desc = self.int(op, &arg(2)?, "descending")? != 0;
                let idx = self.emit1(
                    fb,
                    "argsort",
                    vec![
                        ("x", P::T(x.clone())),
                        ("axis", P::I(axis)),
                        ("ascending", P::B(!desc)),
                    ],
                )?;
                self.emit1(
                    fb,
                    "gather_along_axis",
                    vec![
                        ("x", P::T(x)),
                        ("indices", P::T(idx[0].clone())),
                        ("axis", P::I(axis)),
                    ],
                )?
            }
            "scan" => {
                let x = arg(0)?;
                let axis = self.int(op, &arg(1)?, "axis")?;
                let reverse = self.int(op, &arg(2)?, "reverse")? != 0;
                match self.attr_of(op, "combiner")? {
                    Attr::Enum {
                        kind: EnumKind::ScanCombiner,
                        value: 0,
                    } => self.emit1(
                        fb,
                        "cumsum",
                        vec![
                            ("x", P::T(x)),
                            ("axis", P::I(axis)),
                            ("exclusive", P::B(false)),
                            ("reverse", P::B(reverse)),
                        ],
                    )?,
                    other => {
                        let which = match other {
                            Attr::Enum {
                                kind: EnumKind::ScanCombiner,
                                value,
                            } => EnumKind::ScanCombiner
                                .case(value)
                                .unwrap_or("unknown")
                                .to_string(),
                            other => format!("{other:?}"),
                        };
                        return Err(self.unsupported(
                            op,
                            format!(
                                "a cumulative {which} (scan combiner {which}) has no MIL \
                                 counterpart (MIL's cumsum only sums)"
                            ),
                        ));
                    }
                }
            }
            "gather_nd" => {
                let idx = self.as_int32(fb, arg(1)?)?;
                self.emit1(
                    fb,
                    "gather_nd",
                    vec![("x", P::T(arg(0)?)), ("indices", P::T(idx))],
                )?
            }
            "gather_along_axis" => {
                let axis = self.int(op, &arg(2)?, "axis")?;
                let idx = self.as_int32(fb, arg(1)?)?;
                self.emit1(
                    fb,
                    "gather_along_axis",
                    vec![
                        ("x", P::T(arg(0)?)),
                        ("indices", P::T(idx)),
                        ("axis", P::I(axis)),
                    ],
                )?
            }
            "scatter_along_axis" => {
                let axis = self.int(op, &arg(3)?, "axis")?;
                let mode = match self.attr_of(op, "scatter_mode")? {
                    Attr::Enum {
                        kind: EnumKind::ScatterMode,
                        value,
                    } => EnumKind::ScatterMode.case(value).unwrap_or("update"),
                    _ => "update",
                };
                let idx = self.as_int32(fb, arg(1)?)?;
                self.emit1(
                    fb,
                    "scatter_along_axis",
                    vec![
                        ("data", P::T(arg(0)?)),
                        ("indices", P::T(idx)),
                        ("updates", P::T(arg(2)?)),
                        ("axis", P::I(axis)),
                        ("mode", P::S(static_mode(mode))),
                    ],
                )?
            }
            "scatter_nd" => {
                let mode = match schema::property(self.m, op, "scatter_mode")? {
                    Some(att) => match ir::attr(self.m, att)? {
                        Attr::Enum {
                            kind: EnumKind::ScatterMode,
                            value,
                        } => EnumKind::ScatterMode.case(value).unwrap_or("update"),
                        _ => "update",
                    },
                    None => "update",
                };
                let idx = self.as_int32(fb, arg(1)?)?;
                self.emit1(
                    fb,
                    "scatter_nd",
                    vec![
                        ("data", P::T(arg(0)?)),
                        ("indices", P::T(idx)),
                        ("updates", P::T(arg(2)?)),
                        ("mode", P::S(static_mode(mode))),
                    ],
                )?
            }
            "interpolate" => self.interpolate(fb, op, a)?,
            "blockwise_shift_scale" => self.blockwise(fb, op, a)?,
            "lut_to_dense" => {
                let (idx, lut) = (
                    self.konst(op, &arg(0)?, "indices")?,
                    self.konst(op, &arg(1)?, "lut")?,
                );
                let axis = self.int(op, &arg(2)?, "axis")?;
                let idt = crate::konst::storage_dtype(idx.scalar)
                    .ok_or_else(|| self.unsupported(op, "indices of this type"))?;
                let i_name = self.const_var(fb, &idx, idt)?;
                let l_name = self.var(fb, &Tv::Const(lut))?;
                let iv = Tv::Var {
                    name: i_name,
                    ty: TensorType::new(idt, &idx.shape),
                    transposed: None,
                };
                let lv = Tv::Var {
                    name: l_name.clone(),
                    ty: TensorType::scalar(DataType::Fp32),
                    transposed: None,
                };
                self.emit1(
                    fb,
                    "constexpr_lut_to_dense",
                    vec![
                        ("indices", P::T(iv)),
                        ("lut", P::T(lv)),
                        ("vector_axis", P::I(axis)),
                    ],
                )?
            }
            _ => return Ok(None),
        }))
    }

    /// The MIL op that defines variable `tv`, if this translation emitted it.
    fn producer<'f>(&self, fb: &'f Fb, tv: &Tv) -> Option<&'f Operation> {
        match tv {
            Tv::Var { name, .. } => fb.def.get(name).and_then(|&i| fb.ops.get(i)),
            _ => None,
        }
    }

    /// The scalar constant bound to parameter `param` of `o`.
    fn const_param(fb: &Fb, o: &Operation, param: &str) -> Option<f64> {
        let Binding::Name(n) = o.inputs.get(param)?.0.first()? else {
            return None;
        };
        let v = fb.args.get(n)?.value.as_ref()?;
        if v.tensor_type()?.element_count()? != 1 {
            return None;
        }
        v.as_f32()
            .map(f64::from)
            .or_else(|| v.as_i64().map(|i| i as f64))
    }

    /// When `x` (the first operand of `op`, used once) is a constant-mode MIL `pad` of the
    /// last `nsp` dims whose value satisfies `fill`, return the pad's input and the pads for
    /// the consumer's own `pad` parameter; else `x` and zero pads.
    fn absorb_pad(
        &self,
        fb: &Fb,
        op: OpId,
        x: Tv,
        nsp: usize,
        fill: impl Fn(f64) -> bool,
        uses: &HashMap<Value, usize>,
    ) -> (Tv, Vec<i64>) {
        let zero = vec![0; 2 * nsp];
        let single = self
            .m
            .ir
            .op(op)
            .operands
            .first()
            .is_some_and(|v| uses.get(v).copied() == Some(1));
        let Some(p) = self.producer(fb, &x) else {
            return (x, zero);
        };
        if !single || p.op_type != "pad" {
            return (x, zero);
        }
        let mode_ok = match p.inputs.get("mode").and_then(|a| a.0.first()) {
            Some(Binding::Name(n)) => {
                fb.args
                    .get(n)
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| v.as_str())
                    == Some("constant")
            }
            _ => false,
        };
        let value_ok = Self::const_param(fb, p, "constant_val").is_some_and(&fill);
        let pads = match p.inputs.get("pad").and_then(|a| a.0.first()) {
            Some(Binding::Name(n)) => fb
                .args
                .get(n)
                .and_then(|a| a.value.as_ref())
                .and_then(|v| v.to_i64_vec()),
            _ => None,
        };
        let input = match p.inputs.get("x").and_then(|a| a.0.first()) {
            Some(Binding::Name(n)) => {
                fb.args
                    .get(n)
                    .and_then(|a| a.ty.as_tensor())
                    .map(|t| Tv::Var {
                        name: n.clone(),
                        ty: t.clone(),
                        transposed: None,
                    })
            }
            _ => None,
        };
        match (mode_ok && value_ok, pads, input) {
            (true, Some(pads), Some(input)) if pads.len() == 2 * nsp => (input, pads),
            _ => (x, zero),
        }
    }

    /// `x` as an int32 tensor (index operands).
    fn as_int32(&mut self, fb: &mut Fb, x: Tv) -> Result<Tv, TranslateError> {
        match self.ty_of(fb, &x).map(|t| t.dtype) {
            Some(DataType::Int32) | None => Ok(x),
            Some(_) => Ok(self
                .emit1(fb, "cast", vec![("x", P::T(x)), ("dtype", P::S("int32"))])?
                .remove(0)),
        }
    }

    fn broadcast_to(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        x: Tv,
        target: &[i64],
    ) -> Result<Vec<Tv>, TranslateError> {
        let shape = self
            .shape(fb, &x)
            .ok_or_else(|| self.unsupported(op, "input of unknown shape"))?;
        if shape.len() > target.len() {
            return Err(self.unsupported(op, "target of lower rank than the input"));
        }
        let mut padded: Vec<i64> = vec![1; target.len() - shape.len()];
        padded.extend(shape.iter().map(|&d| d as i64));
        let mut x = x;
        if padded.len() != shape.len() {
            x = self
                .emit1(
                    fb,
                    "reshape",
                    vec![("x", P::T(x)), ("shape", P::Is(padded.clone()))],
                )?
                .remove(0);
        }
        let reps: Vec<i64> = padded
            .iter()
            .zip(target)
            .map(|(&s, &t)| if s == t { 1 } else { t })
            .collect();
        if reps.iter().all(|&r| r == 1) {
            return Ok(vec![x]);
        }
        self.emit1(fb, "tile", vec![("x", P::T(x)), ("reps", P::Is(reps))])
    }

    fn matmul(&mut self, fb: &mut Fb, op: OpId, x: Tv, y: Tv) -> Result<Vec<Tv>, TranslateError> {
        // x @ transpose(W) with a 2-D constant W is a linear layer.
        if let Tv::Var {
            transposed: Some((w, perm)),
            ..
        } = &y
            && w.shape.len() == 2
            && perm == &[1, 0]
            && self.rank(fb, &x).is_some_and(|r| r >= 1)
            && self.ty_of(fb, &x).is_some_and(|t| t.dtype == w.mil_dtype())
        {
            let w = Tv::Const(w.clone());
            return self.emit1(fb, "linear", vec![("x", P::T(x)), ("weight", P::T(w))]);
        }
        let _ = op;
        self.emit1(
            fb,
            "matmul",
            vec![
                ("x", P::T(x)),
                ("y", P::T(y)),
                ("transpose_x", P::B(false)),
                ("transpose_y", P::B(false)),
            ],
        )
    }

    /// `minimum(maximum(X, lo), hi)` with scalar constants (ReLU6 and friends) is one `clip`
    /// when the inner result has no other use.
    fn try_clip(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        base: &str,
        x: &Tv,
        y: &Tv,
        uses: &HashMap<Value, usize>,
    ) -> Result<Option<Vec<Tv>>, TranslateError> {
        if base != "minimum" || !self.options.fast_paths {
            return Ok(None);
        }
        let Tv::Const(hi) = y else { return Ok(None) };
        let Ok(hi) = hi.scalar_f64() else {
            return Ok(None);
        };
        let single = self
            .m
            .ir
            .op(op)
            .operands
            .first()
            .is_some_and(|v| uses.get(v).copied() == Some(1));
        let Some(p) = self.producer(fb, x) else {
            return Ok(None);
        };
        if !single || p.op_type != "maximum" {
            return Ok(None);
        }
        let Some(lo) = Self::const_param(fb, p, "y") else {
            return Ok(None);
        };
        let inner = match p.inputs.get("x").and_then(|a| a.0.first()) {
            Some(Binding::Name(n)) => {
                fb.args
                    .get(n)
                    .and_then(|a| a.ty.as_tensor())
                    .map(|t| Tv::Var {
                        name: n.clone(),
                        ty: t.clone(),
                        transposed: None,
                    })
            }
            _ => None,
        };
        let Some(inner) = inner else { return Ok(None) };
        let dt = self.ty_of(fb, &inner).map_or(DataType::Fp32, |t| t.dtype);
        if !dt.is_float() || lo > hi {
            return Ok(None);
        }
        Ok(Some(self.emit1(
            fb,
            "clip",
            vec![
                ("x", P::T(inner)),
                ("alpha", P::F(lo, dt)),
                ("beta", P::F(hi, dt)),
            ],
        )?))
    }

    /// `conv(...) + bias` and `linear(...) + bias` with a constant bias become the op's own
    /// bias when the sum is the op's only use.
    fn try_fuse_bias(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        base: &str,
        x: &Tv,
        y: &Tv,
        uses: &HashMap<Value, usize>,
    ) -> Result<Option<Vec<Tv>>, TranslateError> {
        if base != "add" || !self.options.fast_paths {
            return Ok(None);
        }
        let (Tv::Var { name, ty, .. }, Tv::Const(b)) = (x, y) else {
            return Ok(None);
        };
        // The aicode value consumed here must have this one use.
        let operand = self.m.ir.op(op).operands.first().copied();
        if operand.is_none_or(|v| uses.get(&v).copied().unwrap_or(0) != 1) {
            return Ok(None);
        }
        let Some(&i) = fb.def.get(name) else {
            return Ok(None);
        };
        let producer = &fb.ops[i];
        if !matches!(producer.op_type.as_str(), "conv" | "linear")
            || producer.inputs.contains_key("bias")
        {
            return Ok(None);
        }
        let Some(shape) = ty.fixed_shape() else {
            return Ok(None);
        };
        let channels = match producer.op_type.as_str() {
            "conv" => shape.get(1).copied(),
            _ => shape.last().copied(),
        };
        let Some(c) = channels else {
            return Ok(None);
        };
        // The bias must vary along the channel axis only.
        let count = b.count().unwrap_or(0);
        let ok_shape = match producer.op_type.as_str() {
            "conv" => {
                let mut expect = vec![1u64; shape.len()];
                expect[1] = c;
                let trimmed: Vec<u64> = expect.iter().copied().skip_while(|&d| d == 1).collect();
                b.shape == expect
                    || b.shape == trimmed
                    || (b.shape.len() == shape.len() - 1
                        && b.shape.first() == Some(&c)
                        && b.shape[1..].iter().all(|&d| d == 1))
            }
            _ => b.shape.last() == Some(&c) && b.shape.iter().rev().skip(1).all(|&d| d == 1),
        };
        if !ok_shape || count != c || b.mil_dtype() != ty.dtype {
            return Ok(None);
        }
        let mut flat = (**b).clone();
        flat.shape = vec![c];
        let value = flat.to_mil(ty.dtype).map_err(|e| self.unsupported(op, e))?;
        let bias = fb.fresh("bias");
        // The constant must come before the op that uses it.
        push_const(fb, &bias, value);
        if let Some(c) = fb.ops.pop() {
            fb.ops.insert(i, c);
            for d in fb.def.values_mut() {
                if *d >= i {
                    *d += 1;
                }
            }
            fb.def.insert(bias.clone(), i);
        }
        let i = i + 1;
        let producer = &mut fb.ops[i];
        producer
            .inputs
            .insert("bias".into(), Argument(vec![Binding::Name(bias)]));
        Ok(Some(vec![x.clone()]))
    }

    /// Begin, end, stride and end mask of a `slice_v1`/`slice_update_v1` over `x`, resolved
    /// with the op's index rules (wrap a negative index once, then clamp).
    #[allow(clippy::type_complexity)]
    fn slice_bounds(
        &self,
        fb: &Fb,
        op: OpId,
        x: &Tv,
        a: &[Tv],
    ) -> Result<(Vec<i64>, Vec<i64>, Vec<i64>, Vec<bool>), TranslateError> {
        let start = self.ints(op, a.get(1).unwrap_or(&Tv::Token), "start_indices")?;
        let end = self.ints(op, a.get(2).unwrap_or(&Tv::Token), "end_indices")?;
        let strides = self.ints(op, a.get(3).unwrap_or(&Tv::Token), "strides")?;
        let shape = self
            .shape(fb, x)
            .ok_or_else(|| self.unsupported(op, "input of unknown shape"))?;
        let r = shape.len();
        if start.len() != r || end.len() != r || strides.len() != r {
            return Err(self.unsupported(op, "index vectors do not match the rank"));
        }
        let mut begin = Vec::with_capacity(r);
        let mut stop = Vec::with_capacity(r);
        let mut end_mask = Vec::with_capacity(r);
        for i in 0..r {
            let n = shape[i] as i64;
            let s = strides[i];
            if s == 0 {
                return Err(self.unsupported(op, "a zero stride"));
            }
            let (lo, hi) = if s > 0 { (0, n) } else { (0, n - 1) };
            let mut b = start[i];
            if b < lo {
                b += n;
            }
            let b = b.clamp(lo, hi.max(lo));
            let mut e = end[i];
            let elo = if s > 0 { 0 } else { -1 };
            if e < elo {
                e += n;
            }
            let e = e.clamp(elo, if s > 0 { n } else { n - 1 });
            begin.push(b);
            if e < 0 {
                stop.push(0);
                end_mask.push(true);
            } else {
                stop.push(e);
                end_mask.push(false);
            }
        }
        Ok((begin, stop, strides, end_mask))
    }

    fn slice(&mut self, fb: &mut Fb, op: OpId, a: &[Tv]) -> Result<Vec<Tv>, TranslateError> {
        let x = a
            .first()
            .cloned()
            .ok_or_else(|| self.unsupported(op, "no input"))?;
        let (begin, stop, strides, end_mask) = self.slice_bounds(fb, op, &x, a)?;
        let shape = self.shape(fb, &x).unwrap_or_default();
        let trivial = (0..shape.len()).all(|i| {
            begin[i] == 0 && stop[i] == shape[i] as i64 && strides[i] == 1 && !end_mask[i]
        });
        if trivial {
            return Ok(vec![x]);
        }
        self.emit1(
            fb,
            "slice_by_index",
            vec![
                ("x", P::T(x)),
                ("begin", P::Is(begin)),
                ("end", P::Is(stop)),
                ("stride", P::Is(strides)),
                ("end_mask", P::Bs(end_mask)),
            ],
        )
    }

    /// `reduce_v1` with its combiner region: recognised combiners map to MIL reductions.
    fn reduce_region(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        a: Vec<Tv>,
    ) -> Result<Option<Vec<Tv>>, TranslateError> {
        let Some(comb) = self.region_combiner(op) else {
            return Err(self.unsupported(
                op,
                "a reduction whose region is not one add/mul/max/min/and/or",
            ));
        };
        let x = a
            .first()
            .cloned()
            .ok_or_else(|| self.unsupported(op, "no input"))?;
        let axes = self.ints(op, a.get(1).unwrap_or(&Tv::Token), "axes")?;
        let init = a.get(2).and_then(|t| {
            if let Tv::Const(k) = t {
                k.scalar_f64().ok()
            } else {
                None
            }
        });
        let dt = self.ty_of(fb, &x).map_or(DataType::Fp32, |t| t.dtype);
        let (mil, identity) = match comb.as_str() {
            "add" => ("reduce_sum", Some(0.0)),
            "mul" => ("reduce_prod", Some(1.0)),
            "maximum" => ("reduce_max", None),
            "minimum" => ("reduce_min", None),
            "logical_or" | "bitwise_or" if dt == DataType::Bool => ("reduce_max", Some(0.0)),
            "logical_and" | "bitwise_and" if dt == DataType::Bool => ("reduce_min", Some(1.0)),
            _ => return Err(self.unsupported(op, format!("reduction with {comb}"))),
        };
        let boolean = dt == DataType::Bool;
        let xin = if boolean {
            self.emit1(fb, "cast", vec![("x", P::T(x)), ("dtype", P::S("int32"))])?
                .remove(0)
        } else {
            x
        };
        let mut r = self
            .emit1(
                fb,
                mil,
                vec![
                    ("x", P::T(xin)),
                    ("axes", P::Is(axes)),
                    ("keep_dims", P::B(true)),
                ],
            )?
            .remove(0);
        // Fold a non-neutral initial value into the result.
        if let Some(v) = init {
            let neutral = match identity {
                Some(id) => v == id,
                None => {
                    v.is_infinite()
                        || (mil == "reduce_max" && v <= f64::from(f32::MIN))
                        || (mil == "reduce_min" && v >= f64::from(f32::MAX))
                }
            };
            if !neutral && !boolean {
                let combine = match comb.as_str() {
                    "add" => "add",
                    "mul" => "mul",
                    "maximum" => "maximum",
                    _ => "minimum",
                };
                let rdt = self.ty_of(fb, &r).map_or(DataType::Fp32, |t| t.dtype);
                r = self
                    .emit1(fb, combine, vec![("x", P::T(r)), ("y", P::F(v, rdt))])?
                    .remove(0);
            }
        }
        if boolean {
            r = self
                .emit1(fb, "cast", vec![("x", P::T(r)), ("dtype", P::S("bool"))])?
                .remove(0);
        }
        Ok(Some(vec![r]))
    }

    /// The single binary op of a reduction region (`add`, `maximum`, ...), if that is all
    /// the region does.
    fn region_combiner(&self, op: OpId) -> Option<String> {
        let m = self.m;
        let r = *m.ir.op(op).regions.first()?;
        let [b] = m.ir.region(r).blocks.as_slice() else {
            return None;
        };
        let block = m.ir.block(*b);
        let [inner, term] = block.ops.as_slice() else {
            return None;
        };
        if short(&m.name_of(*term)) != "dataflow.yield_v1" {
            return None;
        }
        let n = m.name_of(*inner);
        let base = short(&n).strip_prefix("primitive.")?.strip_suffix("_v1")?;
        Some(base.to_string())
    }

    /// `reduce_index_v1` (argmax/argmin) with its comparison region.
    fn reduce_index(
        &mut self,
        fb: &mut Fb,
        op: OpId,
        a: Vec<Tv>,
    ) -> Result<Option<Vec<Tv>>, TranslateError> {
        let m = self.m;
        let x = a
            .first()
            .cloned()
            .ok_or_else(|| self.unsupported(op, "no input"))?;
        let axis = self.int(op, a.get(1).unwrap_or(&Tv::Token), "axis")?;
        // Region: greater(candidate=arg1, best=arg0) is argmax; greater(arg0, arg1) argmin.
        let r = *m
            .ir
            .op(op)
            .regions
            .first()
            .ok_or_else(|| self.unsupported(op, "no region"))?;
        let block_id = *m
            .ir
            .region(r)
            .blocks
            .first()
            .ok_or_else(|| self.unsupported(op, "empty region"))?;
        let block = m.ir.block(block_id);
        let cmp = block
            .ops
            .first()
            .copied()
            .ok_or_else(|| self.unsupported(op, "empty region"))?;
        let cmp_name = m.name_of(cmp);
        let operands = &m.ir.op(cmp).operands;
        let arg_index = |v: &Value| match v {
            Value::Arg { block, index } if *block == block_id => Some(*index),
            _ => None,
        };
        let order: Vec<Option<u32>> = operands.iter().map(arg_index).collect();
        let mil = match (short(&cmp_name), order.as_slice()) {
            ("primitive.greater_v1", [Some(1), Some(0)]) => "reduce_argmax",
            ("primitive.greater_v1", [Some(0), Some(1)]) => "reduce_argmin",
            _ => {
                return Err(
                    self.unsupported(op, format!("an index reduction comparing with {cmp_name}"))
                );
            }
        };
        Ok(Some(self.emit1(
            fb,
            mil,
            vec![
                ("x", P::T(x)),
                ("axis", P::I(axis)),
                ("keep_dims", P::B(true)),
            ],
        )?))
    }

    fn interpolate(&mut self, fb: &mut Fb, op: OpId, a: &[Tv]) -> Result<Vec<Tv>, TranslateError> {
        let x = a
            .first()
            .cloned()
            .ok_or_else(|| self.unsupported(op, "no input"))?;
        let out_shape = self.ints(op, a.get(1).unwrap_or(&Tv::Token), "output_shape")?;
        let scale = self.konst(op, a.get(2).unwrap_or(&Tv::Token), "scale")?;
        let offset = self.konst(op, a.get(3).unwrap_or(&Tv::Token), "offset")?;
        let shape = self
            .shape(fb, &x)
            .ok_or_else(|| self.unsupported(op, "input of unknown shape"))?;
        let linear = match self.attr_of(op, "interpolation_mode")? {
            Attr::Enum {
                kind: EnumKind::Interpolation,
                value,
            } => value == 0,
            other => return Err(self.unsupported(op, format!("interpolation_mode = {other:?}"))),
        };
        let r = shape.len();
        if r != 4
            || out_shape.len() != 4
            || out_shape[0] as u64 != shape[0]
            || out_shape[1] as u64 != shape[1]
        {
            return Err(self.unsupported(
                op,
                "interpolation other than over the last two dims of a 4-D tensor",
            ));
        }
        let (h, w) = (out_shape[2], out_shape[3]);
        let sc: Vec<f64> = (0..scale.count().unwrap_or(0) as usize)
            .map(|i| scale.f64_at(i))
            .collect();
        let of: Vec<f64> = (0..offset.count().unwrap_or(0) as usize)
            .map(|i| offset.f64_at(i))
            .collect();
        let tail = |v: &[f64]| -> Vec<f64> { v.iter().rev().take(2).rev().copied().collect() };
        let (sc, of) = (tail(&sc), tail(&of));
        let half_pixel = (0..2).all(|i| {
            let expect = [h, w][i] as f64 / shape[2 + i] as f64;
            (sc.get(i).copied().unwrap_or(0.0) - expect).abs() < 1e-6
                && of.get(i).copied().unwrap_or(1.0).abs() < 1e-6
        });
        let align = (0..2).all(|i| {
            let (o, n) = ([h, w][i] as f64, shape[2 + i] as f64);
            if n <= 1.0 {
                return false;
            }
            let s = (o - 1.0) / (n - 1.0);
            (sc.get(i).copied().unwrap_or(0.0) - s).abs() < 1e-6
                && (of.get(i).copied().unwrap_or(0.0) - 0.5 * (1.0 - s)).abs() < 1e-6
        });
        // Core ML's DEFAULT grid (i·X/N) and OFFSET_CORNERS ((i + ½)·max(1, X−1)/N), as
        // anekit's writer expresses them (see from_mil's `resize_bilinear`).
        let grid_of = |scale: &dyn Fn(f64, f64) -> f64, offset: &dyn Fn(f64) -> f64| {
            (0..2).all(|i| {
                let (o, n) = ([h, w][i] as f64, shape[2 + i] as f64);
                let s = scale(o, n);
                (sc.get(i).copied().unwrap_or(0.0) - s).abs() < 1e-6
                    && (of.get(i).copied().unwrap_or(0.0) - offset(s)).abs() < 1e-6
            })
        };
        let default = grid_of(&|o, n| o / n, &|s| 0.5 * (1.0 - s));
        let offset_corners = grid_of(&|o, n| o / (n - 1.0).max(1.0), &|s| -0.5 * s);
        if linear {
            let mode = if half_pixel {
                "UNALIGN_CORNERS"
            } else if align {
                "STRICT_ALIGN_CORNERS"
            } else if default {
                "DEFAULT"
            } else if offset_corners {
                "OFFSET_CORNERS"
            } else {
                return Err(self.unsupported(op, "bilinear interpolation with a scale/offset other than the half-pixel, align-corners, DEFAULT or OFFSET_CORNERS grids"));
            };
            self.emit1(
                fb,
                "resize_bilinear",
                vec![
                    ("x", P::T(x)),
                    ("target_size_height", P::I(h)),
                    ("target_size_width", P::I(w)),
                    ("sampling_mode", P::S(mode)),
                ],
            )
        } else {
            if !half_pixel || h % shape[2] as i64 != 0 || w % shape[3] as i64 != 0 {
                return Err(self.unsupported(
                    op,
                    "nearest-neighbour interpolation other than an integer upscale",
                ));
            }
            let (fh, fw) = (h / shape[2] as i64, w / shape[3] as i64);
            self.emit1(
                fb,
                "upsample_nearest_neighbor",
                vec![
                    ("x", P::T(x)),
                    ("scale_factor_height", P::I(fh)),
                    ("scale_factor_width", P::I(fw)),
                ],
            )
        }
    }

    /// `blockwise_shift_scale_v2(data, scale, offset1, offset2)`: scale * (data - offset1) +
    /// offset2. Constant integer data with a zero offset2 becomes MIL's
    /// `constexpr_blockwise_shift_scale`; anything else is computed.
    fn blockwise(&mut self, fb: &mut Fb, op: OpId, a: &[Tv]) -> Result<Vec<Tv>, TranslateError> {
        let [data, scale, off1, off2] = a else {
            return Err(self.unsupported(op, "expected 4 operands"));
        };
        if let (Tv::Const(d), Tv::Const(s), Tv::Const(o1), Tv::Const(o2)) =
            (data, scale, off1, off2)
            && o2.all_equal(0.0)
            && let Some(ddt) = crate::konst::storage_dtype(d.scalar).filter(|t| {
                matches!(
                    t,
                    DataType::Int8 | DataType::Uint8 | DataType::Int4 | DataType::Uint4
                )
            })
        {
            // The result has offset2's type (fp16 weights stay fp16).
            let out_dt = o2.mil_dtype();
            let dn = self.const_var(fb, d, ddt)?;
            let sn = self.const_var(fb, s, out_dt)?;
            let mut params = vec![
                (
                    "data",
                    P::T(Tv::Var {
                        name: dn,
                        ty: TensorType::new(ddt, &d.shape),
                        transposed: None,
                    }),
                ),
                (
                    "scale",
                    P::T(Tv::Var {
                        name: sn,
                        ty: TensorType::new(DataType::Fp32, &s.shape),
                        transposed: None,
                    }),
                ),
            ];
            if !o1.all_equal(0.0) {
                let on = self.const_var(fb, o1, ddt)?;
                params.push((
                    "offset",
                    P::T(Tv::Var {
                        name: on,
                        ty: TensorType::new(ddt, &o1.shape),
                        transposed: None,
                    }),
                ));
            }
            return self.emit1(fb, "constexpr_blockwise_shift_scale", params);
        }
        // General form: upsample the block parameters to the data's shape and compute.
        let shape = self
            .shape(fb, data)
            .ok_or_else(|| self.unsupported(op, "data of unknown shape"))?;
        let sshape = self
            .shape(fb, scale)
            .ok_or_else(|| self.unsupported(op, "scale of unknown shape"))?;
        let df = self
            .emit1(
                fb,
                "cast",
                vec![("x", P::T(data.clone())), ("dtype", P::S("fp32"))],
            )?
            .remove(0);
        let expand = |t: &Tv, this: &mut Self, fb: &mut Fb| -> Result<Tv, TranslateError> {
            let t = if this.ty_of(fb, t).is_some_and(|t| t.dtype != DataType::Fp32) {
                this.emit1(
                    fb,
                    "cast",
                    vec![("x", P::T(t.clone())), ("dtype", P::S("fp32"))],
                )?
                .remove(0)
            } else {
                t.clone()
            };
            // Repeat each block entry over its block: reshape to [s0,1,s1,1,...], tile, reshape.
            let mut inter = Vec::new();
            let mut reps = Vec::new();
            for (&d, &s) in shape.iter().zip(&sshape) {
                inter.push(s as i64);
                inter.push(1);
                reps.push(1);
                reps.push((d / s.max(1)) as i64);
            }
            let r = this
                .emit1(fb, "reshape", vec![("x", P::T(t)), ("shape", P::Is(inter))])?
                .remove(0);
            let r = this
                .emit1(fb, "tile", vec![("x", P::T(r)), ("reps", P::Is(reps))])?
                .remove(0);
            let full: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            Ok(this
                .emit1(fb, "reshape", vec![("x", P::T(r)), ("shape", P::Is(full))])?
                .remove(0))
        };
        let s = expand(scale, self, fb)?;
        let o1 = expand(off1, self, fb)?;
        let o2 = expand(off2, self, fb)?;
        let d = self
            .emit1(fb, "sub", vec![("x", P::T(df)), ("y", P::T(o1))])?
            .remove(0);
        let d = self
            .emit1(fb, "mul", vec![("x", P::T(d)), ("y", P::T(s))])?
            .remove(0);
        self.emit1(fb, "add", vec![("x", P::T(d)), ("y", P::T(o2))])
    }
}

fn unreachable_param() -> MilValue {
    MilValue::int32(0)
}

fn static_mode(mode: &str) -> &'static str {
    match mode {
        "add" => "add",
        "sub" => "sub",
        "mul" => "mul",
        "div" => "div",
        "max" => "max",
        "min" => "min",
        _ => "update",
    }
}

/// The op a composite maps to (`broadcasting_add_v1` → `add`), if `name` is a composite.
fn composite_base(name: &str) -> Option<&str> {
    if name.starts_with("primitive.")
        || name.starts_with("dataflow.")
        || name.starts_with("serialization.")
    {
        return None;
    }
    let base = name.strip_prefix("broadcasting_").unwrap_or(name);
    Some(base)
}

/// `primitive.add_v1` / `add_v1` → `add`.
fn op_base(name: &str) -> &str {
    name.strip_prefix("primitive.")
        .unwrap_or(name)
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches("_v")
}

fn dtype_str(d: DataType) -> &'static str {
    match d {
        DataType::Fp16 => "fp16",
        DataType::Bool => "bool",
        DataType::Int32 => "int32",
        _ => "fp32",
    }
}

fn norm_axis(ax: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if ax < 0 { ax + r } else { ax };
    (0..r).contains(&a).then_some(a as usize)
}

fn resolve_reshape(count: u64, shape: &[i64]) -> Option<Vec<u64>> {
    let known = shape
        .iter()
        .filter(|&&d| d != -1)
        .try_fold(1i64, |a, &d| a.checked_mul(d))?;
    let unknown = shape.iter().filter(|&&d| d == -1).count();
    let out: Vec<u64> = shape
        .iter()
        .map(|&d| {
            if d == -1 {
                if known == 0 { 0 } else { count / known as u64 }
            } else {
                d.max(0) as u64
            }
        })
        .collect();
    let total = out.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
    (unknown <= 1 && total == count).then_some(out)
}

/// Names that are valid MIL identifiers.
fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn push_const(fb: &mut Fb, name: &str, value: MilValue) {
    let mut c = Operation::new("const");
    c.attributes
        .insert("name".into(), MilValue::string(name.to_string()));
    c.outputs = vec![NamedValueType::new(name.to_string(), value.ty.clone())];
    fb.args
        .insert(name.to_string(), Arg::literal(value.clone()));
    fb.def.insert(name.to_string(), fb.ops.len());
    c.attributes.insert("val".into(), value);
    fb.taken.insert(name.to_string());
    fb.ops.push(c);
}

/// Whether `op` (or a block nested in it) uses the variable `name`.
fn uses(op: &Operation, name: &str) -> bool {
    op.inputs.values().any(|a| {
        a.0.iter()
            .any(|b| matches!(b, Binding::Name(n) if n == name))
    }) || op
        .blocks
        .iter()
        .any(|b| b.outputs.iter().any(|o| o == name) || b.operations.iter().any(|o| uses(o, name)))
}

/// How many times each value of `block` (and of the block's arguments) is used by its
/// ops, the ops of their regions included (a control-flow region uses the values around
/// it).
fn use_counts(m: &Bytecode, block: anekit_mlir::BlockId) -> HashMap<Value, usize> {
    fn count(m: &Bytecode, block: anekit_mlir::BlockId, c: &mut HashMap<Value, usize>) {
        for &op in &m.ir.block(block).ops {
            for v in &m.ir.op(op).operands {
                *c.entry(*v).or_default() += 1;
            }
            for &r in &m.ir.op(op).regions {
                for &b in &m.ir.region(r).blocks {
                    count(m, b, c);
                }
            }
        }
    }
    let mut c = HashMap::new();
    count(m, block, &mut c);
    c
}

/// Drop ops whose outputs nothing uses (repeatedly), keeping state writes, in nested
/// blocks too (MIL names are unique in a function, so one set of used names serves every
/// block).
fn dce(block: &mut Block) {
    fn used_names(block: &Block, used: &mut BTreeSet<String>) {
        used.extend(block.outputs.iter().cloned());
        for op in &block.operations {
            for a in op.inputs.values() {
                for b in &a.0 {
                    if let Binding::Name(n) = b {
                        used.insert(n.clone());
                    }
                }
            }
            for b in &op.blocks {
                used_names(b, used);
            }
        }
    }
    fn writes_state(op: &Operation) -> bool {
        op.op_type == "write_state"
            || op
                .blocks
                .iter()
                .any(|b| b.operations.iter().any(writes_state))
    }
    fn prune(block: &mut Block, used: &BTreeSet<String>) -> usize {
        let before = block.operations.len();
        block
            .operations
            .retain(|op| writes_state(op) || op.outputs.iter().any(|o| used.contains(&o.name)));
        let mut dropped = before - block.operations.len();
        for op in &mut block.operations {
            for b in &mut op.blocks {
                dropped += prune(b, used);
            }
        }
        dropped
    }
    loop {
        let mut used = BTreeSet::new();
        used_names(block, &mut used);
        if prune(block, &used) == 0 {
            break;
        }
    }
}

impl Konst {
    /// The constant converted to element type `s` (C casts; small constants only).
    pub fn cast_to(&self, s: Scalar) -> Option<Konst> {
        let n = usize::try_from(self.count()?).ok()?;
        if n > 1 << 16 {
            return None;
        }
        let mut data = Vec::new();
        for i in 0..n {
            match s {
                Scalar::F32 => data.extend_from_slice(&(self.f64_at(i) as f32).to_le_bytes()),
                Scalar::F16 => {
                    data.extend_from_slice(&half::f16::from_f64(self.f64_at(i)).to_le_bytes())
                }
                Scalar::Bool => data.push(u8::from(self.f64_at(i) != 0.0)),
                Scalar::SInt(64) | Scalar::UInt(64) => {
                    let v = if self.scalar_is_float() {
                        self.f64_at(i).trunc() as i64
                    } else {
                        self.i64_at(i)
                    };
                    data.extend_from_slice(&v.to_le_bytes())
                }
                Scalar::SInt(32) | Scalar::UInt(32) => {
                    let v = if self.scalar_is_float() {
                        self.f64_at(i).trunc() as i64
                    } else {
                        self.i64_at(i)
                    };
                    data.extend_from_slice(&(v as i32).to_le_bytes())
                }
                Scalar::SInt(16) | Scalar::UInt(16) => {
                    let v = if self.scalar_is_float() {
                        self.f64_at(i).trunc() as i64
                    } else {
                        self.i64_at(i)
                    };
                    data.extend_from_slice(&(v as i16).to_le_bytes())
                }
                Scalar::SInt(8) | Scalar::UInt(8) => {
                    let v = if self.scalar_is_float() {
                        self.f64_at(i).trunc() as i64
                    } else {
                        self.i64_at(i)
                    };
                    data.push(v as i8 as u8)
                }
                _ => return None,
            }
        }
        Konst::new(s, self.shape.clone(), Bytes::from(data), false).ok()
    }

    fn scalar_is_float(&self) -> bool {
        matches!(
            self.scalar,
            Scalar::F32 | Scalar::F64 | Scalar::F16 | Scalar::BF16
        )
    }
}

/// Whether an attribute id is used (keeps the import of AttrId meaningful for docs).
#[allow(dead_code)]
fn _attr(_: AttrId) {}
