//! The op registry: every op of the iOS15..iOS18 opsets with its parameters and type inference.
//!
//! Each op has one [`OpDef`] per *revision*: the opset that introduced it and every later
//! opset that changed its signature or semantics (coremltools re-registers a class under
//! `ops/defs/iOS16` … `iOS18` in that case). [`Registry::get`] returns the revision in force
//! for a given opset; an opset without its own revision uses the latest earlier one, exactly
//! like coremltools' `SSAOpRegistry`. iOS26 (`CoreML9`) adds no ops and uses the iOS18 set.
//!
//! A definition lists the parameters (name, kind, type domain, optional, must-be-constant,
//! coremltools' default value), the number of outputs and a type-inference function
//! equivalent to coremltools' `type_inference` for that revision. [`infer`] runs it on the
//! types (and, where known, the constant values) of an op's arguments, so later passes can
//! infer outputs without building a whole program; [`crate::validate`] uses the same entry
//! point for every op of a program.
//!
//! The facts come from coremltools 9.0 (`coremltools/converters/mil/mil/ops/defs/`); each
//! family module names the file it follows.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use crate::program::Opset;
use crate::types::DataType;

// One module per family (named as `Family::name`), plus the shared machinery.
mod activation;
mod classify;
mod constexpr;
mod control_flow;
mod conv;
mod coverage;
mod effects;
mod elementwise_binary;
mod elementwise_unary;
mod image_resizing;
mod infer;
mod linear;
mod normalization;
mod pool;
mod quantization;
mod random;
mod recurrent;
mod reduction;
mod scatter_gather;
mod shape;
mod states;
mod tables;
mod tensor_operation;
mod tensor_transformation;
mod transformers;

pub use coverage::{CoverageColumn, CoverageRow, coverage_rows};
pub use effects::{EFFECTS, Effect, effect};
pub use infer::{Arg, Args, InferCtx, InferError, Inferred, SymInt, check_args, infer, infer_with};
pub use tables::{Audit, audit};

/// Element types of a parameter: a fixed set, or a named set (`"T"`) whose members must all
/// bind the same element type within one op (coremltools `type_domains`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeDomain {
    /// The domain's name when it is shared between parameters (`T`, `U`, `SrcT`, …).
    pub id: Option<&'static str>,
    /// The allowed element types.
    pub types: &'static [DataType],
}

impl TypeDomain {
    /// Whether `dtype` is allowed.
    pub fn allows(&self, dtype: DataType) -> bool {
        self.types.contains(&dtype)
    }
}

impl fmt::Display for TypeDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = self.id {
            write!(f, "{id}=")?;
        }
        f.write_str("{")?;
        for (i, t) in self.types.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        f.write_str("}")
    }
}

/// What a parameter accepts (coremltools' `InputType` subclasses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A tensor or scalar with an element type from the domain (`TensorInputType`).
    Tensor(TypeDomain),
    /// A variadic sequence of tensors (`TupleInputType`: `concat.values`, `while_loop.loop_vars`).
    Tuple,
    /// A list (`ListInputType`).
    List,
    /// A tensor, list or dictionary (`ListOrTensorOrDictInputType`, only `identity.x`).
    Any,
    /// A state (`StateInputType`, iOS18).
    State,
    /// Any literal value (`const.val`).
    Literal,
}

/// The default coremltools uses for an optional parameter that is not given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// An integer scalar.
    Int(i64),
    /// A float scalar (in the parameter's element type).
    Float(f64),
    /// A bool scalar.
    Bool(bool),
    /// A string.
    Str(&'static str),
    /// An int32 vector.
    Ints(&'static [i64]),
    /// A value that depends on other arguments; the text says how (`[1] * spatial rank`).
    Computed(&'static str),
}

impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::Int(v) => write!(f, "{v}"),
            DefaultValue::Float(v) => write!(f, "{v:?}"),
            DefaultValue::Bool(v) => write!(f, "{v}"),
            DefaultValue::Str(s) => write!(f, "\"{s}\""),
            DefaultValue::Ints(v) => write!(f, "{v:?}"),
            DefaultValue::Computed(s) => f.write_str(s),
        }
    }
}

/// One parameter of an op revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// The name (a key of `Operation::inputs`, or of `attributes` for iOS16/17 constexpr ops).
    pub name: &'static str,
    /// What it accepts.
    pub kind: ParamKind,
    /// Whether it may be left out.
    pub optional: bool,
    /// Whether its value must be known at compile time (`const=True`).
    pub constant: bool,
    /// coremltools' default for an optional parameter; `None` when the parameter is simply
    /// absent (`bias=None`).
    pub default: Option<DefaultValue>,
}

impl ParamDef {
    /// Whether the parameter takes several bindings.
    pub fn is_variadic(&self) -> bool {
        matches!(self.kind, ParamKind::Tuple)
    }
}

/// How many outputs an op revision has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Always this many.
    Exactly(usize),
    /// Depends on the arguments or nested blocks; the text says how.
    Variable(&'static str),
}

impl fmt::Display for Outputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outputs::Exactly(n) => write!(f, "{n}"),
            Outputs::Variable(s) => f.write_str(s),
        }
    }
}

/// How completely type inference reproduces coremltools for an op revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferenceStatus {
    /// Same output types as coremltools' `type_inference` for every input it accepts.
    Full,
    /// Correct where it answers, but coarser in the cases the note describes (an unknown
    /// dimension where coremltools would know it).
    Partial(&'static str),
}

/// The op families, after coremltools' `ops/defs` file names: the one taxonomy of ops in
/// anekit. The registry defines each family in its own module (`ops/<name>.rs`), the CPU
/// backend registers its kernels per family (`anekit_runtime::cpu::kernels`), and the op
/// coverage table (`docs/op-coverage.md`) groups ops by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Family {
    Activation,
    Classify,
    ControlFlow,
    Conv,
    ElementwiseBinary,
    ElementwiseUnary,
    ImageResizing,
    Linear,
    Normalization,
    Pool,
    Random,
    Recurrent,
    Reduction,
    ScatterGather,
    TensorOperation,
    TensorTransformation,
    Constexpr,
    Quantization,
    States,
    Transformers,
}

impl Family {
    /// Every family, in declaration order.
    pub const ALL: [Family; 20] = [
        Family::Activation,
        Family::Classify,
        Family::ControlFlow,
        Family::Conv,
        Family::ElementwiseBinary,
        Family::ElementwiseUnary,
        Family::ImageResizing,
        Family::Linear,
        Family::Normalization,
        Family::Pool,
        Family::Random,
        Family::Recurrent,
        Family::Reduction,
        Family::ScatterGather,
        Family::TensorOperation,
        Family::TensorTransformation,
        Family::Constexpr,
        Family::Quantization,
        Family::States,
        Family::Transformers,
    ];

    /// The family of `op_type` (that of its first revision), if the registry knows it.
    pub fn of(op_type: &str) -> Option<Family> {
        registry().revisions(op_type).first().map(|d| d.family)
    }

    /// The ops of this family, sorted.
    pub fn ops(self) -> Vec<&'static str> {
        registry()
            .iter()
            .filter(|(_, revs)| revs.first().is_some_and(|d| d.family == self))
            .map(|(name, _)| name)
            .collect()
    }

    /// The coremltools defs file name without `.py` (`compression` for the iOS18 constexpr
    /// file, `constexpr_ops` for the iOS16 one are both [`Family::Constexpr`]).
    pub fn name(self) -> &'static str {
        match self {
            Family::Activation => "activation",
            Family::Classify => "classify",
            Family::ControlFlow => "control_flow",
            Family::Conv => "conv",
            Family::ElementwiseBinary => "elementwise_binary",
            Family::ElementwiseUnary => "elementwise_unary",
            Family::ImageResizing => "image_resizing",
            Family::Linear => "linear",
            Family::Normalization => "normalization",
            Family::Pool => "pool",
            Family::Random => "random",
            Family::Recurrent => "recurrent",
            Family::Reduction => "reduction",
            Family::ScatterGather => "scatter_gather",
            Family::TensorOperation => "tensor_operation",
            Family::TensorTransformation => "tensor_transformation",
            Family::Constexpr => "constexpr",
            Family::Quantization => "quantization",
            Family::States => "states",
            Family::Transformers => "transformers",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Type inference of an op revision: the output types, given the arguments.
pub type InferFn = fn(&InferCtx<'_>) -> Result<Vec<crate::types::ValueType>, InferError>;

/// Optional value inference: the partially known elements of a small integer first output
/// (coremltools' `sym_val`, used for shapes computed at run time).
pub type ValueFn = fn(&InferCtx<'_>) -> Option<Vec<SymInt>>;

/// One revision of an op.
#[derive(Debug, Clone)]
pub struct OpDef {
    /// The op type (`conv`).
    pub name: &'static str,
    /// The opset this revision was introduced in.
    pub opset: Opset,
    /// The family (coremltools defs file).
    pub family: Family,
    /// Parameters in coremltools' `input_spec` order.
    pub params: Vec<ParamDef>,
    /// Number of outputs.
    pub outputs: Outputs,
    /// Number of nested blocks (`cond` and `while_loop` have 2).
    pub blocks: usize,
    /// Whether the parameters are serialized as attributes, not inputs (iOS16/17 constexpr
    /// ops; coremltools `translate_constexpr`).
    pub params_as_attributes: bool,
    /// How complete the inference is.
    pub inference: InferenceStatus,
    /// The inference function.
    pub infer: InferFn,
    /// The value inference function, for ops that compute shapes.
    pub value: Option<ValueFn>,
}

impl OpDef {
    /// The parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The required parameters.
    pub fn required_params(&self) -> impl Iterator<Item = &ParamDef> {
        self.params.iter().filter(|p| !p.optional)
    }
}

/// All op revisions, by op type.
#[derive(Debug, Default)]
pub struct Registry {
    ops: BTreeMap<&'static str, Vec<OpDef>>,
}

impl Registry {
    /// The revision of `op_type` in force in `opset`, if the op exists there.
    pub fn get(&self, op_type: &str, opset: Opset) -> Option<&OpDef> {
        self.ops
            .get(op_type)?
            .iter()
            .rev()
            .find(|d| d.opset <= opset)
    }

    /// Every revision of `op_type`, oldest first (empty if unknown).
    pub fn revisions(&self, op_type: &str) -> &[OpDef] {
        self.ops.get(op_type).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every op type with its revisions, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[OpDef])> {
        self.ops.iter().map(|(k, v)| (*k, v.as_slice()))
    }

    /// The op types available in `opset`, sorted.
    pub fn op_types(&self, opset: Opset) -> Vec<&'static str> {
        self.ops
            .iter()
            .filter(|(_, revs)| revs.first().is_some_and(|d| d.opset <= opset))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Whether some opset knows `op_type`.
    pub fn contains(&self, op_type: &str) -> bool {
        self.ops.contains_key(op_type)
    }

    fn add(&mut self, def: OpDef) {
        let revs = self.ops.entry(def.name).or_default();
        revs.push(def);
        revs.sort_by_key(|d| d.opset);
    }
}

/// The registry of all ops of iOS15..iOS18 (built once).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::default();
        for def in all_defs() {
            r.add(def);
        }
        r
    })
}

/// The definitions of one family.
type FamilyDefs = fn(&mut Vec<OpDef>);

/// Each family and the module that defines its ops (a test checks that a module defines
/// only ops of its own family, and that every family has a module).
const FAMILY_MODULES: &[(Family, FamilyDefs)] = &[
    (Family::Activation, activation::defs),
    (Family::Classify, classify::defs),
    (Family::ControlFlow, control_flow::defs),
    (Family::Conv, conv::defs),
    (Family::ElementwiseBinary, elementwise_binary::defs),
    (Family::ElementwiseUnary, elementwise_unary::defs),
    (Family::ImageResizing, image_resizing::defs),
    (Family::Linear, linear::defs),
    (Family::Normalization, normalization::defs),
    (Family::Pool, pool::defs),
    (Family::Random, random::defs),
    (Family::Recurrent, recurrent::defs),
    (Family::Reduction, reduction::defs),
    (Family::ScatterGather, scatter_gather::defs),
    (Family::TensorOperation, tensor_operation::defs),
    (Family::TensorTransformation, tensor_transformation::defs),
    (Family::Constexpr, constexpr::defs),
    (Family::Quantization, quantization::defs),
    (Family::States, states::defs),
    (Family::Transformers, transformers::defs),
];

fn all_defs() -> Vec<OpDef> {
    let mut v = Vec::new();
    for (_, defs) in FAMILY_MODULES {
        defs(&mut v);
    }
    v
}

#[cfg(test)]
mod family_tests {
    use super::*;

    #[test]
    fn each_family_module_defines_only_its_family() {
        for (family, defs) in FAMILY_MODULES {
            let mut v = Vec::new();
            defs(&mut v);
            assert!(!v.is_empty(), "module of {family} defines no op");
            for d in &v {
                assert_eq!(
                    d.family, *family,
                    "{} is defined in the {family} module",
                    d.name
                );
            }
        }
        let listed: Vec<Family> = FAMILY_MODULES.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            listed,
            Family::ALL,
            "one module per family, in Family::ALL order"
        );
    }

    #[test]
    fn every_revision_of_an_op_keeps_its_family() {
        for (name, revs) in registry().iter() {
            let first = revs.first().map(|d| d.family);
            assert!(revs.iter().all(|d| Some(d.family) == first), "{name}");
            assert_eq!(Family::of(name), first);
            assert!(first.is_some_and(|f| f.ops().contains(&name)));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Building definitions
// ------------------------------------------------------------------------------------------

/// Element-type sets used by many ops.
pub(crate) mod dt {
    use crate::types::DataType::{self, *};

    pub const FP: &[DataType] = &[Fp16, Fp32];
    pub const FP32: &[DataType] = &[Fp32];
    pub const FP_I32: &[DataType] = &[Fp16, Fp32, Int32];
    pub const FP_I32_BOOL: &[DataType] = &[Fp16, Fp32, Int32, Bool];
    pub const I32: &[DataType] = &[Int32];
    pub const U32: &[DataType] = &[Uint32];
    pub const BOOL: &[DataType] = &[Bool];
    pub const STR: &[DataType] = &[String];
    /// iOS17's widened tensor domain (`fp16, fp32, int8, int16, int32, uint8, uint16, bool`).
    pub const IOS17_ALL: &[DataType] = &[Fp16, Fp32, Int8, Int16, Int32, Uint8, Uint16, Bool];
    /// iOS17 index domain (`int8, int16, int32`).
    pub const IOS17_IDX: &[DataType] = &[Int8, Int16, Int32];
}

/// A named type domain.
pub(crate) const fn dom(id: &'static str, types: &'static [DataType]) -> TypeDomain {
    TypeDomain {
        id: Some(id),
        types,
    }
}

/// An anonymous type domain.
pub(crate) const fn ty(types: &'static [DataType]) -> TypeDomain {
    TypeDomain { id: None, types }
}

/// Builder for an [`OpDef`].
pub(crate) struct Op {
    def: OpDef,
}

fn no_infer(_: &InferCtx<'_>) -> Result<Vec<crate::types::ValueType>, InferError> {
    Err(InferError::Undetermined("no inference function".into()))
}

impl Op {
    /// A new revision.
    pub(crate) fn new(opset: Opset, name: &'static str, family: Family) -> Self {
        Op {
            def: OpDef {
                name,
                opset,
                family,
                params: Vec::new(),
                outputs: Outputs::Exactly(1),
                blocks: 0,
                params_as_attributes: false,
                inference: InferenceStatus::Full,
                infer: no_infer,
                value: None,
            },
        }
    }

    fn param(
        mut self,
        name: &'static str,
        kind: ParamKind,
        optional: bool,
        constant: bool,
        default: Option<DefaultValue>,
    ) -> Self {
        self.def.params.push(ParamDef {
            name,
            kind,
            optional,
            constant,
            default,
        });
        self
    }

    /// A required tensor parameter.
    pub(crate) fn input(self, name: &'static str, d: TypeDomain) -> Self {
        self.param(name, ParamKind::Tensor(d), false, false, None)
    }

    /// An optional tensor parameter.
    pub(crate) fn opt_input(
        self,
        name: &'static str,
        d: TypeDomain,
        default: Option<DefaultValue>,
    ) -> Self {
        self.param(name, ParamKind::Tensor(d), true, false, default)
    }

    /// A required compile-time constant tensor parameter.
    pub(crate) fn konst(self, name: &'static str, d: TypeDomain) -> Self {
        self.param(name, ParamKind::Tensor(d), false, true, None)
    }

    /// An optional compile-time constant tensor parameter.
    pub(crate) fn opt_konst(
        self,
        name: &'static str,
        d: TypeDomain,
        default: Option<DefaultValue>,
    ) -> Self {
        self.param(name, ParamKind::Tensor(d), true, true, default)
    }

    /// A variadic tuple parameter.
    pub(crate) fn tuple(self, name: &'static str) -> Self {
        self.param(name, ParamKind::Tuple, false, false, None)
    }

    /// A list parameter.
    pub(crate) fn list(self, name: &'static str, constant: bool) -> Self {
        self.param(name, ParamKind::List, false, constant, None)
    }

    /// A tensor, list or dict parameter.
    pub(crate) fn any(self, name: &'static str) -> Self {
        self.param(name, ParamKind::Any, false, false, None)
    }

    /// A literal-value parameter.
    pub(crate) fn literal(self, name: &'static str) -> Self {
        self.param(name, ParamKind::Literal, false, true, None)
    }

    /// A state parameter.
    pub(crate) fn state(self, name: &'static str) -> Self {
        self.param(name, ParamKind::State, false, false, None)
    }

    /// Set the output count.
    pub(crate) fn outputs(mut self, o: Outputs) -> Self {
        self.def.outputs = o;
        self
    }

    /// Set the number of nested blocks.
    pub(crate) fn blocks(mut self, n: usize) -> Self {
        self.def.blocks = n;
        self
    }

    /// Parameters are attributes (iOS16/17 constexpr ops).
    pub(crate) fn attribute_params(mut self) -> Self {
        self.def.params_as_attributes = true;
        self
    }

    /// Mark inference partial.
    pub(crate) fn partial(mut self, note: &'static str) -> Self {
        self.def.inference = InferenceStatus::Partial(note);
        self
    }

    /// Set the value function.
    pub(crate) fn value(mut self, f: ValueFn) -> Self {
        self.def.value = Some(f);
        self
    }

    /// Set the inference function and finish.
    pub(crate) fn infer(mut self, f: InferFn) -> OpDef {
        self.def.infer = f;
        self.def
    }
}
