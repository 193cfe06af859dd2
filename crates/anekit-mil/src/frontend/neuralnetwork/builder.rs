//! A small program builder for the translation: it names values, emits `const` ops for
//! parameters and infers every output type through the op registry (so a lowering that
//! produces an ill-typed op fails at load, naming the layer).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{MilError, Result};
use crate::ops::Arg;
use crate::program::{Argument, Binding, Operation, Opset};
use crate::types::{DataType, Dim, NamedValueType, TensorType, ValueType};
use crate::validate::Env;
use crate::value::{Placement, Value, ValueData};

/// One argument of an op being built.
pub(super) enum A {
    /// A variable.
    V(String),
    /// Several variables (variadic parameters such as `concat.values`).
    Vs(Vec<String>),
    /// An int32 scalar constant.
    I(i64),
    /// An int32 vector constant.
    Is(Vec<i64>),
    /// An fp32 scalar constant.
    F(f32),
    /// A bool scalar constant.
    B(bool),
    /// A string scalar constant.
    S(String),
    /// An fp32 tensor constant of the given shape.
    T(Vec<usize>, Vec<f32>),
    /// Any constant value.
    C(Value),
}

/// Shorthand for a string constant.
pub(super) fn s(v: &str) -> A {
    A::S(v.to_string())
}

/// Shorthand for a variable.
pub(super) fn v(name: &str) -> A {
    A::V(name.to_string())
}

/// The builder.
pub(super) struct Builder {
    pub opset: Opset,
    pub ops: Vec<Operation>,
    env: Env,
    types: BTreeMap<String, ValueType>,
    taken: BTreeSet<String>,
    /// The layer being translated (error context and name prefix).
    pub layer: String,
}

/// Make a name usable as a MIL identifier: letters, digits and `_`, not starting with a digit.
pub(super) fn sanitize(name: &str) -> String {
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

impl Builder {
    pub fn new(opset: Opset) -> Self {
        let mut env = Env::default();
        env.push();
        Self {
            opset,
            ops: Vec::new(),
            env,
            types: BTreeMap::new(),
            taken: BTreeSet::new(),
            layer: String::new(),
        }
    }

    /// Reserve names that no generated value may take (model inputs and outputs).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// Declare a function input.
    pub fn input(&mut self, name: &str, ty: TensorType) -> NamedValueType {
        self.taken.insert(name.to_string());
        let ty = ValueType::Tensor(ty);
        self.env.insert(name, Arg::var(ty.clone()));
        self.types.insert(name.to_string(), ty.clone());
        NamedValueType::new(name, ty)
    }

    /// A fresh value name from `hint`.
    pub fn fresh(&mut self, hint: &str) -> String {
        crate::passes::unique_name(&sanitize(hint), &mut self.taken)
    }

    /// An error about the current layer.
    /// The element count of `shape`, or an error when it exceeds
    /// [`crate::types::MAX_ELEMENTS`] (shapes come from the untrusted model).
    pub fn count(&self, shape: &[usize]) -> Result<usize> {
        crate::types::bounded_element_count(shape)
            .ok_or_else(|| self.err(format!("shape {shape:?} has too many elements")))
    }

    /// An error naming the layer being translated.
    pub fn err(&self, message: impl Into<String>) -> MilError {
        MilError::invalid(format!("layer {:?}", self.layer), message)
    }

    /// The type of a value.
    pub fn tensor(&self, name: &str) -> Result<&TensorType> {
        self.types
            .get(name)
            .and_then(ValueType::as_tensor)
            .ok_or_else(|| self.err(format!("`{name}` is not a tensor value")))
    }

    /// The rank of a value.
    pub fn rank(&self, name: &str) -> Result<usize> {
        self.tensor(name)?
            .rank()
            .ok_or_else(|| self.err(format!("the rank of `{name}` is not known")))
    }

    /// The fixed shape of a value.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let t = self.tensor(name)?;
        t.fixed_shape()
            .map(|s| s.into_iter().map(|d| d as usize).collect())
            .ok_or_else(|| {
                self.err(format!(
                    "`{name}` has shape {t}; this layer needs a fixed shape"
                ))
            })
    }

    /// Element type of a value.
    pub fn dtype(&self, name: &str) -> Result<DataType> {
        Ok(self.tensor(name)?.dtype)
    }

    /// Emit a `const` op holding `value`; returns its name.
    pub fn konst(&mut self, hint: &str, value: Value) -> Result<String> {
        let name = self.fresh(hint);
        let mut op = Operation::new("const");
        op.attributes
            .insert("name".into(), Value::string(name.clone()));
        op.outputs
            .push(NamedValueType::new(name.clone(), value.ty.clone()));
        self.env.insert(&name, Arg::literal(value.clone()));
        self.types.insert(name.clone(), value.ty.clone());
        op.attributes.insert("val".into(), value);
        self.ops.push(op);
        Ok(name)
    }

    /// An fp32 constant of `shape` filled with `value` (fills that a file asks for are
    /// bounded: at most 2^28 elements).
    pub fn filled(&mut self, hint: &str, shape: &[usize], value: f32) -> Result<String> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= 1 << 28)
            .ok_or_else(|| self.err(format!("constant {hint} of shape {shape:?} is too large")))?;
        self.f32s(hint, shape, vec![value; n])
    }

    /// An fp32 constant tensor.
    pub fn f32s(&mut self, hint: &str, shape: &[usize], data: Vec<f32>) -> Result<String> {
        let n = self.count(shape)?;
        if n != data.len() {
            return Err(self.err(format!(
                "constant {hint}: {} values for shape {shape:?}",
                data.len()
            )));
        }
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut v = Value::fp32_tensor(&dims, &data);
        // coremltools' rule: 10 or more elements go to the weight file.
        if let ValueData::Tensor(t) = &mut v.data {
            t.placement = if n < 10 {
                Placement::Inline
            } else {
                Placement::Blob { source: None }
            };
        }
        self.konst(hint, v)
    }

    fn literal(&mut self, hint: &str, a: A) -> Result<Binding> {
        let value = match a {
            A::V(n) => return Ok(Binding::Name(n)),
            A::Vs(_) => return Err(self.err("internal: a list of values where one is expected")),
            A::I(i) => Value::int32(
                i32::try_from(i).map_err(|_| self.err(format!("{hint} {i} does not fit int32")))?,
            ),
            A::Is(v) => {
                let v: Vec<i32> = v
                    .iter()
                    .map(|&i| {
                        i32::try_from(i)
                            .map_err(|_| self.err(format!("{hint} {i} does not fit int32")))
                    })
                    .collect::<Result<_>>()?;
                let mut c = Value::int32_tensor(&[v.len() as u64], &v);
                set_inline(&mut c);
                c
            }
            A::F(f) => Value::fp32(f),
            A::B(b) => Value::bool(b),
            A::S(s) => Value::string(s),
            A::T(shape, data) => return Ok(Binding::Name(self.f32s(hint, &shape, data)?)),
            A::C(v) => v,
        };
        Ok(Binding::Name(self.konst(hint, value)?))
    }

    /// Emit an op; returns the names of its outputs (types inferred by the registry).
    pub fn op_n(&mut self, op_type: &str, hint: &str, args: Vec<(&str, A)>) -> Result<Vec<String>> {
        let base = self.fresh(hint);
        let mut op = Operation::new(op_type);
        for (param, a) in args {
            let bindings = match a {
                A::Vs(vs) => vs.into_iter().map(Binding::Name).collect(),
                other => vec![self.literal(&format!("{base}_{param}"), other)?],
            };
            op.inputs.insert(param.to_string(), Argument(bindings));
        }
        let types = self
            .env
            .infer(&op, self.opset)
            .map_err(|e| self.err(format!("lowering to MIL `{op_type}` failed: {e}")))?;
        op.attributes
            .insert("name".into(), Value::string(base.clone()));
        let mut names = Vec::with_capacity(types.len());
        for (i, ty) in types.into_iter().enumerate() {
            let name = if i == 0 {
                base.clone()
            } else {
                self.fresh(&format!("{base}_{i}"))
            };
            self.env.insert(&name, Arg::var(ty.clone()));
            self.types.insert(name.clone(), ty.clone());
            op.outputs.push(NamedValueType::new(name.clone(), ty));
            names.push(name);
        }
        self.ops.push(op);
        Ok(names)
    }

    /// Emit a single-output op.
    pub fn op(&mut self, op_type: &str, hint: &str, args: Vec<(&str, A)>) -> Result<String> {
        let mut outs = self.op_n(op_type, hint, args)?;
        if outs.is_empty() {
            return Err(self.err(format!("internal: `{op_type}` has no output")));
        }
        Ok(outs.swap_remove(0))
    }

    // ---- common shapes of ops ---------------------------------------------------------

    /// `reshape(x, shape)`.
    pub fn reshape(&mut self, x: &str, shape: &[usize]) -> Result<String> {
        if self
            .tensor(x)?
            .fixed_shape()
            .is_some_and(|s| s.iter().map(|&d| d as usize).eq(shape.iter().copied()))
        {
            return Ok(x.to_string());
        }
        self.op(
            "reshape",
            x,
            vec![
                ("x", v(x)),
                ("shape", A::Is(shape.iter().map(|&d| d as i64).collect())),
            ],
        )
    }

    /// `transpose(x, perm)`.
    pub fn transpose(&mut self, x: &str, perm: &[usize]) -> Result<String> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x.to_string());
        }
        self.op(
            "transpose",
            x,
            vec![
                ("x", v(x)),
                ("perm", A::Is(perm.iter().map(|&d| d as i64).collect())),
            ],
        )
    }

    /// A binary elementwise op.
    pub fn bin(&mut self, op_type: &str, x: &str, y: &str) -> Result<String> {
        self.op(op_type, x, vec![("x", v(x)), ("y", v(y))])
    }

    /// A binary elementwise op with an fp32 scalar.
    pub fn bin_scalar(&mut self, op_type: &str, x: &str, y: f32) -> Result<String> {
        self.op(op_type, x, vec![("x", v(x)), ("y", A::F(y))])
    }

    /// A unary op.
    pub fn un(&mut self, op_type: &str, x: &str) -> Result<String> {
        self.op(op_type, x, vec![("x", v(x))])
    }

    /// `cast(x, dtype)`.
    pub fn cast(&mut self, x: &str, dtype: &str) -> Result<String> {
        self.op("cast", x, vec![("x", v(x)), ("dtype", s(dtype))])
    }

    /// Rename the output `from` of the op that defines it to `to` (a reserved name), and
    /// every later use.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        let Some(pos) = self
            .ops
            .iter()
            .position(|op| op.outputs.iter().any(|o| o.name == from))
        else {
            return false;
        };
        if let Some(op) = self.ops.get_mut(pos) {
            for o in &mut op.outputs {
                if o.name == from {
                    o.name = to.to_string();
                }
            }
            if op.name() == Some(from) {
                op.attributes.insert("name".into(), Value::string(to));
            }
        }
        for op in self.ops.iter_mut().skip(pos + 1) {
            for arg in op.inputs.values_mut() {
                for b in &mut arg.0 {
                    if let Binding::Name(n) = b
                        && n == from
                    {
                        *n = to.to_string();
                    }
                }
            }
        }
        if let Some(t) = self.types.remove(from) {
            self.types.insert(to.to_string(), t);
        }
        true
    }
}

/// Mark a constant as written inline (small parameter vectors).
pub(super) fn set_inline(v: &mut Value) {
    if let ValueData::Tensor(t) = &mut v.data {
        t.placement = Placement::Inline;
    }
}

/// A rank-`n` tensor type of fixed shape.
pub(super) fn fixed(dtype: DataType, shape: &[usize]) -> TensorType {
    TensorType {
        dtype,
        shape: Some(shape.iter().map(|&d| Dim::Fixed(d as u64)).collect()),
        attributes: BTreeMap::new(),
    }
}
