//! Running type inference: arguments, the context an inference function sees, errors, and
//! the argument checks every op gets (coremltools `InputSpec.validate_inputs` and
//! `Operation._ensure_required_inputs`).

use std::collections::BTreeMap;

use crate::program::Opset;
use crate::types::{DataType, Dim, TensorType, ValueType};
use crate::value::Value;

use super::{DefaultValue, OpDef, ParamKind, registry};

/// One element of a partially known integer value: `Some(v)` when known. coremltools tracks
/// such values (`sym_val`) for small integer tensors computed from shapes, e.g.
/// `concat(gather(shape(x), 0), 64)`, so that a later `reshape` knows some output dims.
pub type SymInt = Option<i64>;

/// Arguments of an op by parameter name, one [`Arg`] per binding.
pub type Args = BTreeMap<String, Vec<Arg>>;

/// Largest integer tensor whose elements are tracked as a partial value.
const MAX_SYM_ELEMENTS: u64 = 64;

/// Largest constant whose elements inference reads (shape-like parameters, indices checked
/// against bounds); a larger one is left unread rather than decoded.
pub(crate) const MAX_READ_ELEMENTS: u64 = 1 << 20;

fn small(v: &Value) -> bool {
    v.tensor_type()
        .and_then(TensorType::element_count)
        .is_some_and(|n| n <= MAX_READ_ELEMENTS)
}

/// The elements of a constant as `i64`, if it is an integer/bool tensor of at most
/// [`MAX_READ_ELEMENTS`] elements.
pub(crate) fn small_i64s(v: &Value) -> Option<Vec<i64>> {
    small(v).then(|| v.to_i64_vec()).flatten()
}

/// The elements of a constant as `f32`, if it has at most [`MAX_READ_ELEMENTS`] elements.
pub(crate) fn small_f32s(v: &Value) -> Option<Vec<f32>> {
    small(v).then(|| v.to_f32_vec()).flatten()
}

/// The single element of a one-element constant as `i64`.
pub(crate) fn scalar_i64(v: &Value) -> Option<i64> {
    (v.tensor_type()?.element_count()? == 1)
        .then(|| v.as_i64())
        .flatten()
}

/// The single element of a one-element constant as `f32`.
pub(crate) fn scalar_f32(v: &Value) -> Option<f32> {
    (v.tensor_type()?.element_count()? == 1)
        .then(|| v.as_f32())
        .flatten()
}

/// The number of non-zero elements of an integer/bool constant (a packed `uint1` mask is
/// counted from its bytes, without unpacking).
pub(crate) fn count_nonzero(v: &Value) -> Option<u64> {
    let t = v.tensor_type()?;
    if t.dtype == crate::types::DataType::Uint1 {
        let n = t.element_count()?;
        let bytes = v.bytes()?;
        let mut ones = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            let base = (i as u64).checked_mul(8)?;
            let used = n.saturating_sub(base).min(8);
            let mask = if used >= 8 { 0xffu8 } else { (1u8 << used) - 1 };
            ones += u64::from((b & mask).count_ones());
        }
        return Some(ones);
    }
    Some(small_i64s(v)?.iter().filter(|x| **x != 0).count() as u64)
}

/// What is known about one argument binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// Its type.
    pub ty: ValueType,
    /// Its value, when it is a constant whose value is at hand (a literal or a `const` op).
    pub value: Option<Value>,
    /// Its partially known value (small integer tensors only), if it is not a constant.
    pub sym: Option<Vec<SymInt>>,
    /// Whether it is known at compile time: a literal, a `const` or `constexpr_*` output, or
    /// an op output computed only from such values (coremltools `is_descendant_of_const`).
    pub constant: bool,
    /// Whether it is a literal or the output of a `const` op (iOS17 `matmul` picks its output
    /// type by this).
    pub from_const: bool,
}

impl Arg {
    /// A run-time value of type `ty`.
    pub fn var(ty: ValueType) -> Self {
        Arg {
            ty,
            value: None,
            sym: None,
            constant: false,
            from_const: false,
        }
    }

    /// A constant with a known value (a literal or the output of a `const` op).
    pub fn literal(value: Value) -> Self {
        Arg {
            ty: value.ty.clone(),
            value: Some(value),
            sym: None,
            constant: true,
            from_const: true,
        }
    }

    /// A compile-time constant whose value is not at hand (a `constexpr_*` output).
    pub fn constexpr(ty: ValueType) -> Self {
        Arg {
            ty,
            value: None,
            sym: None,
            constant: true,
            from_const: false,
        }
    }

    /// The partially known integer elements: from the value if there is one, else `sym`.
    pub fn sym_value(&self) -> Option<Vec<SymInt>> {
        if let Some(v) = &self.value {
            let t = v.tensor_type()?;
            if !t.dtype.is_int() || t.rank()? > 1 || t.element_count()? > MAX_SYM_ELEMENTS {
                return None;
            }
            return Some(small_i64s(v)?.into_iter().map(Some).collect());
        }
        self.sym.clone()
    }
}

/// Why inference (or an argument check) failed. Every variant that concerns one parameter
/// names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    /// The op type does not exist in the opset.
    #[error("op type `{op_type}` does not exist in opset {opset}")]
    UnknownOp {
        /// The op type.
        op_type: String,
        /// The opset.
        opset: Opset,
    },
    /// A required parameter is not bound.
    #[error("required parameter `{param}` is missing")]
    MissingParam {
        /// The parameter.
        param: String,
    },
    /// A parameter the op does not have is bound.
    #[error("unknown parameter `{param}`")]
    UnknownParam {
        /// The parameter.
        param: String,
    },
    /// A parameter got the wrong kind or element type of value.
    #[error("parameter `{param}`: {message}")]
    WrongType {
        /// The parameter.
        param: String,
        /// What was expected and found.
        message: String,
    },
    /// A parameter that must be a compile-time constant is bound to a run-time value.
    #[error("parameter `{param}` must be a compile-time constant")]
    NotConstant {
        /// The parameter.
        param: String,
    },
    /// The arguments are inconsistent (shapes, ranks, values), as coremltools' type
    /// inference would reject them.
    #[error("{}{message}", param.as_ref().map(|p| format!("parameter `{p}`: ")).unwrap_or_default())]
    Invalid {
        /// The parameter concerned, if one is.
        param: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The output type cannot be determined from what is known (an input of unknown rank,
    /// a constant whose value is not at hand).
    #[error("output type undetermined: {0}")]
    Undetermined(String),
}

impl InferError {
    /// The parameter the error concerns, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            InferError::MissingParam { param }
            | InferError::UnknownParam { param }
            | InferError::WrongType { param, .. }
            | InferError::NotConstant { param } => Some(param),
            InferError::Invalid { param, .. } => param.as_deref(),
            InferError::UnknownOp { .. } | InferError::Undetermined(_) => None,
        }
    }

    /// An [`InferError::Invalid`] about `param`.
    pub fn at(param: &str, message: impl Into<String>) -> Self {
        InferError::Invalid {
            param: Some(param.to_string()),
            message: message.into(),
        }
    }

    /// An [`InferError::Invalid`] about no single parameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        InferError::Invalid {
            param: None,
            message: message.into(),
        }
    }
}

/// The result of inference.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// The output types.
    pub outputs: Vec<ValueType>,
    /// The partially known value of the first output (small integer results only).
    pub sym: Option<Vec<SymInt>>,
}

/// What an inference function sees: the revision, the opset, the arguments by parameter
/// name and the output types of the nested blocks.
#[derive(Debug, Clone, Copy)]
pub struct InferCtx<'a> {
    /// The op revision.
    pub def: &'a OpDef,
    /// The opset of the enclosing function (coremltools `curr_opset_version()`).
    pub opset: Opset,
    /// Arguments by parameter name (one entry per binding).
    pub args: &'a BTreeMap<String, Vec<Arg>>,
    /// The output types of each nested block (`cond`, `while_loop`).
    pub blocks: &'a [Vec<ValueType>],
}

fn undetermined(msg: impl Into<String>) -> InferError {
    InferError::Undetermined(msg.into())
}

impl<'a> InferCtx<'a> {
    /// The bindings of `name` (empty when absent).
    pub fn bindings(&self, name: &str) -> &'a [Arg] {
        self.args.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The single binding of `name`, if it is bound once.
    pub fn arg(&self, name: &str) -> Option<&'a Arg> {
        match self.bindings(name) {
            [a] => Some(a),
            _ => None,
        }
    }

    /// Whether `name` is bound.
    pub fn has(&self, name: &str) -> bool {
        !self.bindings(name).is_empty()
    }

    /// The tensor type of the optional tensor parameter `name`.
    pub fn opt_tensor(&self, name: &str) -> Result<Option<&'a TensorType>, InferError> {
        match self.bindings(name) {
            [] => Ok(None),
            [a] => match &a.ty {
                ValueType::Tensor(t) => Ok(Some(t)),
                other => Err(InferError::WrongType {
                    param: name.into(),
                    message: format!("expected a tensor, found {other}"),
                }),
            },
            more => Err(InferError::WrongType {
                param: name.into(),
                message: format!("expected one binding, found {}", more.len()),
            }),
        }
    }

    /// The tensor type of the required tensor parameter `name`.
    pub fn tensor(&self, name: &str) -> Result<&'a TensorType, InferError> {
        self.opt_tensor(name)?
            .ok_or_else(|| InferError::MissingParam { param: name.into() })
    }

    /// The element type of tensor parameter `name`.
    pub fn dtype(&self, name: &str) -> Result<DataType, InferError> {
        Ok(self.tensor(name)?.dtype)
    }

    /// The shape of tensor parameter `name`; [`InferError::Undetermined`] when its rank is
    /// unknown (no shape, or a variadic dimension).
    pub fn shape(&self, name: &str) -> Result<Vec<Dim>, InferError> {
        known_shape(self.tensor(name)?).ok_or_else(|| undetermined(format!("rank of `{name}`")))
    }

    /// The rank of tensor parameter `name`.
    pub fn rank(&self, name: &str) -> Result<usize, InferError> {
        Ok(self.shape(name)?.len())
    }

    /// The constant value bound to `name`, if bound and known.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.arg(name)?.value.as_ref()
    }

    /// The partially known integer value of `name`.
    pub fn sym(&self, name: &str) -> Option<Vec<SymInt>> {
        self.arg(name)?.sym_value()
    }

    fn default_of(&self, name: &str) -> Option<DefaultValue> {
        match self.def.param(name)?.default? {
            DefaultValue::Computed(_) => None,
            d => Some(d),
        }
    }

    /// The value of `name` if bound (error if its value is not known), else `Ok(None)`.
    fn bound_value(&self, name: &str) -> Result<Option<&'a Value>, InferError> {
        match self.bindings(name) {
            [] => Ok(None),
            [a] => a
                .value
                .as_ref()
                .map(Some)
                .ok_or_else(|| undetermined(format!("value of `{name}` is not known"))),
            _ => Err(InferError::WrongType {
                param: name.into(),
                message: "expected one binding".into(),
            }),
        }
    }

    fn wrong_value(name: &str, what: &str) -> InferError {
        InferError::WrongType {
            param: name.into(),
            message: format!("expected {what}"),
        }
    }

    /// Integer elements of `name` (bound value or coremltools default); `None` if neither.
    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>, InferError> {
        if let Some(v) = self.bound_value(name)? {
            return small_i64s(v)
                .map(Some)
                .ok_or_else(|| Self::wrong_value(name, "a short integer vector"));
        }
        Ok(match self.default_of(name) {
            Some(DefaultValue::Int(i)) => Some(vec![i]),
            Some(DefaultValue::Ints(v)) => Some(v.to_vec()),
            Some(DefaultValue::Bool(b)) => Some(vec![i64::from(b)]),
            _ => None,
        })
    }

    /// Integer elements of `name`; error if absent without default.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, InferError> {
        self.opt_ints(name)?
            .ok_or_else(|| InferError::MissingParam { param: name.into() })
    }

    /// The integer scalar `name` (or its default).
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, InferError> {
        match self.opt_ints(name)? {
            None => Ok(None),
            Some(v) => match v.as_slice() {
                [x] => Ok(Some(*x)),
                _ => Err(Self::wrong_value(name, "a single integer")),
            },
        }
    }

    /// The integer scalar `name` (or its default); error if absent without default.
    pub fn i64(&self, name: &str) -> Result<i64, InferError> {
        self.opt_i64(name)?
            .ok_or_else(|| InferError::MissingParam { param: name.into() })
    }

    /// The bool elements of `name` (or its default).
    pub fn opt_bools(&self, name: &str) -> Result<Option<Vec<bool>>, InferError> {
        Ok(self
            .opt_ints(name)?
            .map(|v| v.into_iter().map(|x| x != 0).collect()))
    }

    /// The bool scalar `name` (or its default); error if absent without default.
    pub fn bool(&self, name: &str) -> Result<bool, InferError> {
        Ok(self.i64(name)? != 0)
    }

    /// The float scalar `name` (or its default).
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, InferError> {
        if let Some(v) = self.bound_value(name)? {
            return scalar_f32(v)
                .map(|x| Some(f64::from(x)))
                .ok_or_else(|| Self::wrong_value(name, "a single number"));
        }
        Ok(match self.default_of(name) {
            Some(DefaultValue::Float(f)) => Some(f),
            Some(DefaultValue::Int(i)) => Some(i as f64),
            _ => None,
        })
    }

    /// The float scalar `name` (or its default); error if absent without default.
    pub fn f64(&self, name: &str) -> Result<f64, InferError> {
        self.opt_f64(name)?
            .ok_or_else(|| InferError::MissingParam { param: name.into() })
    }

    /// The string scalar `name` (or its default).
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, InferError> {
        if let Some(v) = self.bound_value(name)? {
            return v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| Self::wrong_value(name, "a string"));
        }
        Ok(match self.default_of(name) {
            Some(DefaultValue::Str(s)) => Some(s.to_string()),
            _ => None,
        })
    }

    /// The string scalar `name` (or its default); error if absent without default.
    pub fn str(&self, name: &str) -> Result<String, InferError> {
        self.opt_str(name)?
            .ok_or_else(|| InferError::MissingParam { param: name.into() })
    }
}

/// The dims of `t` if its rank is known (no variadic dimension).
pub(crate) fn known_shape(t: &TensorType) -> Option<Vec<Dim>> {
    let s = t.shape.as_ref()?;
    if s.iter()
        .any(|d| matches!(d, Dim::Unknown { variadic: true }))
    {
        return None;
    }
    Some(s.clone())
}

fn kind_matches(kind: &ParamKind, ty: &ValueType) -> Result<(), String> {
    match (kind, ty) {
        (ParamKind::Tensor(d), ValueType::Tensor(t)) => {
            if d.allows(t.dtype) {
                Ok(())
            } else {
                Err(format!(
                    "element type {} is not in the allowed types {d}",
                    t.dtype
                ))
            }
        }
        (ParamKind::Tensor(d), other) => Err(format!("expected a tensor of {d}, found {other}")),
        (ParamKind::Tuple, ValueType::Tensor(_) | ValueType::List { .. }) => Ok(()),
        (ParamKind::List, ValueType::List { .. }) => Ok(()),
        (
            ParamKind::Any,
            ValueType::Tensor(_) | ValueType::List { .. } | ValueType::Dict { .. },
        ) => Ok(()),
        (ParamKind::State, ValueType::State(_)) => Ok(()),
        (ParamKind::Literal, _) => Ok(()),
        (ParamKind::Tuple, other) => Err(format!("expected tensors, found {other}")),
        (ParamKind::List, other) => Err(format!("expected a list, found {other}")),
        (ParamKind::Any, other) => Err(format!("expected a tensor, list or dict, found {other}")),
        (ParamKind::State, other) => Err(format!("expected a state, found {other}")),
    }
}

/// Check arguments against a revision's parameters: no unknown parameter, every required
/// one present, one binding unless variadic, kinds and element types in their domains
/// (members of one named domain agreeing), constants where required. Returns every problem.
pub fn check_args(def: &OpDef, args: &BTreeMap<String, Vec<Arg>>) -> Vec<InferError> {
    let mut errs = Vec::new();
    for name in args.keys() {
        if def.param(name).is_none() {
            errs.push(InferError::UnknownParam {
                param: name.clone(),
            });
        }
    }
    let mut domain_first: BTreeMap<&str, (&str, DataType)> = BTreeMap::new();
    for p in &def.params {
        let Some(bound) = args
            .get(p.name)
            .filter(|b| !b.is_empty() || p.is_variadic())
        else {
            if !p.optional {
                errs.push(InferError::MissingParam {
                    param: p.name.into(),
                });
            }
            continue;
        };
        if bound.len() > 1 && !p.is_variadic() {
            errs.push(InferError::WrongType {
                param: p.name.into(),
                message: format!("expected one binding, found {}", bound.len()),
            });
            continue;
        }
        for a in bound {
            if let Err(message) = kind_matches(&p.kind, &a.ty) {
                errs.push(InferError::WrongType {
                    param: p.name.into(),
                    message,
                });
                continue;
            }
            if p.constant && !a.constant {
                errs.push(InferError::NotConstant {
                    param: p.name.into(),
                });
            }
            if let (ParamKind::Tensor(d), ValueType::Tensor(t)) = (&p.kind, &a.ty)
                && let Some(id) = d.id
            {
                match domain_first.get(id) {
                    None => {
                        domain_first.insert(id, (p.name, t.dtype));
                    }
                    Some((other, dt)) if *dt != t.dtype => errs.push(InferError::WrongType {
                        param: p.name.into(),
                        message: format!(
                            "element type {} differs from `{other}` ({dt}); both are of type domain {id}",
                            t.dtype
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    errs
}

/// Infer the outputs of an op of type `op_type` in `opset` from its arguments (by parameter
/// name, one [`Arg`] per binding) and the output types of its nested blocks. Arguments are
/// checked first ([`check_args`]); the first problem is returned.
pub fn infer(
    op_type: &str,
    opset: Opset,
    args: &BTreeMap<String, Vec<Arg>>,
    blocks: &[Vec<ValueType>],
) -> Result<Inferred, InferError> {
    let def = registry()
        .get(op_type, opset)
        .ok_or_else(|| InferError::UnknownOp {
            op_type: op_type.into(),
            opset,
        })?;
    if let Some(e) = check_args(def, args).into_iter().next() {
        return Err(e);
    }
    infer_with(def, opset, args, blocks)
}

/// Run a revision's inference without checking the arguments first.
pub fn infer_with(
    def: &OpDef,
    opset: Opset,
    args: &BTreeMap<String, Vec<Arg>>,
    blocks: &[Vec<ValueType>],
) -> Result<Inferred, InferError> {
    let ctx = InferCtx {
        def,
        opset,
        args,
        blocks,
    };
    let outputs = (def.infer)(&ctx)?;
    let sym = def.value.and_then(|f| f(&ctx));
    Ok(Inferred { outputs, sym })
}
