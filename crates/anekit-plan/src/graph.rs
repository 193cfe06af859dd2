//! The op graph the planner works on: every operation of one function (nested blocks
//! included, flattened in execution order) with resolved tensor types, producers and
//! consumers, and what is known at compile time.
//!
//! Types are the program's declared ones. When a function input has a flexible shape, the
//! declared types carry unknown dimensions; the graph then re-runs type inference from the
//! inputs' default shapes ([`anekit_mil::ops::infer_with`]) so that costs can be computed
//! for the shape the model is most likely called with. The declared type is kept, because
//! a dimension unknown in the program is what decides whether an op needs dynamic shapes.

use std::collections::HashMap;

use anekit_mil::ops::{Arg, infer_with, registry};
use anekit_mil::validate::Env;
use anekit_mil::{
    Binding, Block, DataType, Dim, Function, Operation, Opset, TensorType, Value, ValueType,
};

/// How a function input's shape may vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFlex {
    /// Fixed shape.
    Fixed,
    /// Each dimension in a range (`ct.RangeDim`).
    Range,
    /// One of a list of shapes (`ct.EnumeratedShapes`).
    Enumerated,
}

/// A function input as the planner sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InputInfo {
    /// Name.
    pub name: String,
    /// The shape to analyse with (the default shape of a flexible input).
    pub shape: Option<Vec<u64>>,
    /// How the shape may vary.
    pub flex: InputFlex,
}

/// What is known about one named value.
#[derive(Debug, Clone)]
pub struct ValueInfo {
    /// The op that produces it (`None` for function inputs and block inputs).
    pub producer: Option<usize>,
    /// Its type at the analysed shape.
    pub ty: ValueType,
    /// Its type as the program declares it (may have unknown dimensions).
    pub declared: ValueType,
    /// Known at compile time (a `const`, a `constexpr_*` output, or computed only from those).
    pub constant: bool,
    /// Its value, for `const` outputs.
    pub value: Option<Value>,
    /// A function input.
    pub function_input: bool,
    /// Flexibility of the function input(s) its shape depends on.
    pub flex: InputFlex,
}

/// One operation of the graph.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    /// The operation.
    pub op: &'a Operation,
    /// Position in execution order.
    pub index: usize,
    /// Nesting depth (0 for the function's own block).
    pub depth: usize,
    /// The enclosing control-flow op, for ops of nested blocks.
    pub parent: Option<usize>,
    /// Input bindings by parameter: the value names (literals are read from `op`).
    pub inputs: Vec<(String, String)>,
    /// Output names.
    pub outputs: Vec<String>,
    /// Known at compile time: a constant, or computed only from constants (Core ML folds
    /// these when it compiles the model).
    pub constant: bool,
    /// Some runtime input or output has a dimension the program leaves unknown.
    pub dynamic_shape: bool,
    /// The most flexible kind of function input its shapes depend on.
    pub flex: InputFlex,
    /// Ops that use its outputs.
    pub consumers: Vec<usize>,
    /// An output is a function output.
    pub feeds_output: bool,
}

/// The graph of one function.
#[derive(Debug, Clone)]
pub struct Graph<'a> {
    /// Function name.
    pub function: String,
    /// Its opset.
    pub opset: Opset,
    /// Ops in execution order.
    pub nodes: Vec<Node<'a>>,
    /// Named values.
    pub values: HashMap<String, ValueInfo>,
    /// The function's inputs.
    pub inputs: Vec<InputInfo>,
    /// The function's output names.
    pub outputs: Vec<String>,
    /// Ops whose types could not be re-inferred at the analysed shape (declared kept).
    pub uninferred: usize,
}

fn has_unknown(t: &ValueType) -> bool {
    match t {
        ValueType::Tensor(t) => t
            .shape
            .as_ref()
            .is_none_or(|s| s.iter().any(|d| d.fixed().is_none())),
        ValueType::State(inner) => has_unknown(inner),
        _ => false,
    }
}

fn more_flexible(a: InputFlex, b: InputFlex) -> InputFlex {
    use InputFlex::*;
    match (a, b) {
        (Range, _) | (_, Range) => Range,
        (Enumerated, _) | (_, Enumerated) => Enumerated,
        _ => Fixed,
    }
}

/// Prefer the inferred type where it knows more than the declared one.
fn merge(declared: &ValueType, inferred: &ValueType) -> ValueType {
    match (declared, inferred) {
        (ValueType::Tensor(d), ValueType::Tensor(i)) if d.dtype == i.dtype => {
            match (&d.shape, &i.shape) {
                (Some(ds), Some(is)) if ds.len() == is.len() => {
                    let shape = ds
                        .iter()
                        .zip(is)
                        .map(|(a, b)| match (a, b) {
                            (Dim::Fixed(_), _) => *a,
                            (_, Dim::Fixed(_)) => *b,
                            _ => *a,
                        })
                        .collect();
                    ValueType::Tensor(TensorType {
                        dtype: d.dtype,
                        shape: Some(shape),
                        attributes: d.attributes.clone(),
                    })
                }
                (None, Some(_)) => inferred.clone(),
                _ => declared.clone(),
            }
        }
        _ => declared.clone(),
    }
}

impl<'a> Graph<'a> {
    /// Build the graph of `function` (named `name`), analysing flexible inputs at the shapes
    /// given in `inputs` (inputs not listed keep their declared types).
    pub fn build(name: &str, function: &'a Function, inputs: &[InputInfo]) -> Graph<'a> {
        let opset = function.known_opset().unwrap_or(Opset::Ios18);
        let mut g = Graph {
            function: name.to_string(),
            opset,
            nodes: Vec::new(),
            values: HashMap::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            uninferred: 0,
        };
        let needs_inference = function.inputs.iter().any(|i| has_unknown(&i.ty));
        let mut env = Env::default();
        env.push();
        for i in &function.inputs {
            let info = inputs.iter().find(|x| x.name == i.name);
            let flex = info.map_or(InputFlex::Fixed, |x| x.flex);
            let ty = match (info.and_then(|x| x.shape.as_ref()), &i.ty) {
                (Some(shape), ValueType::Tensor(t))
                    if t.rank().is_none_or(|r| r == shape.len()) =>
                {
                    ValueType::Tensor(TensorType::new(t.dtype, shape))
                }
                _ => i.ty.clone(),
            };
            env.insert(&i.name, Arg::var(ty.clone()));
            g.inputs.push(InputInfo {
                name: i.name.clone(),
                shape: ty.as_tensor().and_then(TensorType::fixed_shape),
                flex,
            });
            g.values.insert(
                i.name.clone(),
                ValueInfo {
                    producer: None,
                    ty,
                    declared: i.ty.clone(),
                    constant: false,
                    value: None,
                    function_input: true,
                    flex: if has_unknown(&i.ty) {
                        flex
                    } else {
                        InputFlex::Fixed
                    },
                },
            );
        }
        if let Some(block) = function.block() {
            g.outputs = block.outputs.clone();
            g.walk(block, 0, None, &mut env, needs_inference);
            for o in &block.outputs {
                if let Some(p) = g.values.get(o).and_then(|v| v.producer)
                    && let Some(n) = g.nodes.get_mut(p)
                {
                    n.feeds_output = true;
                }
            }
        }
        g
    }

    fn walk(
        &mut self,
        block: &'a Block,
        depth: usize,
        parent: Option<usize>,
        env: &mut Env,
        infer: bool,
    ) {
        for i in &block.inputs {
            env.insert(&i.name, Arg::var(i.ty.clone()));
            self.values.insert(
                i.name.clone(),
                ValueInfo {
                    producer: None,
                    ty: i.ty.clone(),
                    declared: i.ty.clone(),
                    constant: false,
                    value: None,
                    function_input: false,
                    flex: InputFlex::Fixed,
                },
            );
        }
        for op in &block.operations {
            let index = self.nodes.len();
            let mut inputs = Vec::new();
            let mut all_const = true;
            let mut flex = InputFlex::Fixed;
            let mut dynamic = false;
            for (param, arg) in &op.inputs {
                for b in &arg.0 {
                    if let Binding::Name(n) = b {
                        inputs.push((param.clone(), n.clone()));
                        match self.values.get(n) {
                            Some(v) => {
                                if !v.constant {
                                    all_const = false;
                                    flex = more_flexible(flex, v.flex);
                                    dynamic |= has_unknown(&v.declared);
                                }
                                if let Some(p) = v.producer
                                    && let Some(pn) = self.nodes.get_mut(p)
                                    && pn.consumers.last() != Some(&index)
                                {
                                    pn.consumers.push(index);
                                }
                            }
                            None => all_const = false,
                        }
                    }
                }
            }
            let is_const_op = op.is_constant();
            let constant = is_const_op || (op.blocks.is_empty() && all_const && !is_stateful(op));
            dynamic |= !constant && op.outputs.iter().any(|o| has_unknown(&o.ty));
            // Types at the analysed shape.
            let declared: Vec<ValueType> = op.outputs.iter().map(|o| o.ty.clone()).collect();
            let mut types = declared.clone();
            let mut sym = None;
            if infer && !is_const_op && op.blocks.is_empty() {
                let def = registry().get(&op.op_type, self.opset);
                let (args, missing) = env.args_of(op, def);
                match def {
                    Some(def) if missing.is_empty() => {
                        match infer_with(def, self.opset, &args, &[]) {
                            Ok(inf) if inf.outputs.len() == declared.len() => {
                                types = declared
                                    .iter()
                                    .zip(&inf.outputs)
                                    .map(|(d, i)| merge(d, i))
                                    .collect();
                                sym = inf.sym;
                            }
                            _ => self.uninferred += 1,
                        }
                    }
                    _ => self.uninferred += 1,
                }
            }
            let node = Node {
                op,
                index,
                depth,
                parent,
                inputs,
                outputs: op.outputs.iter().map(|o| o.name.clone()).collect(),
                constant,
                dynamic_shape: dynamic,
                flex: if dynamic { flex } else { InputFlex::Fixed },
                consumers: Vec::new(),
                feeds_output: false,
            };
            self.nodes.push(node);
            // Nested blocks run inside this op.
            for b in &op.blocks {
                env.push();
                self.walk(b, depth + 1, Some(index), env, infer);
                env.pop();
            }
            for (k, (o, ty)) in op.outputs.iter().zip(types).enumerate() {
                let value = if op.op_type == "const" {
                    op.attributes.get("val").cloned()
                } else {
                    None
                };
                let mut arg = Arg::var(ty.clone());
                arg.constant = constant;
                arg.from_const = op.op_type == "const";
                arg.value = value.clone();
                if k == 0
                    && let Some(s) = &sym
                {
                    arg.sym = Some(s.clone());
                }
                env.insert(&o.name, arg);
                self.values.insert(
                    o.name.clone(),
                    ValueInfo {
                        producer: Some(index),
                        ty,
                        declared: o.ty.clone(),
                        constant,
                        value,
                        function_input: false,
                        flex: if has_unknown(&o.ty) && !constant {
                            flex
                        } else {
                            InputFlex::Fixed
                        },
                    },
                );
            }
        }
    }

    /// The value bound to parameter `param` of node `n` (the first binding).
    pub fn input_name<'n>(&self, n: &'n Node<'_>, param: &str) -> Option<&'n str> {
        n.inputs
            .iter()
            .find(|(p, _)| p == param)
            .map(|(_, v)| v.as_str())
    }

    /// The analysed tensor type of parameter `param` of node `n` (literal or named).
    pub fn input_tensor(&self, n: &Node<'_>, param: &str) -> Option<TensorType> {
        match n.op.input(param) {
            Some(Binding::Value(v)) => v.tensor_type().cloned(),
            Some(Binding::Name(name)) => self.values.get(name)?.ty.as_tensor().cloned(),
            None => n.op.attributes.get(param)?.tensor_type().cloned(),
        }
    }

    /// The constant value of parameter `param` of node `n`: a literal, an attribute, or the
    /// value of the `const` op it names.
    pub fn param_value(&self, n: &Node<'_>, param: &str) -> Option<Value> {
        match n.op.input(param) {
            Some(Binding::Value(v)) => Some(v.clone()),
            Some(Binding::Name(name)) => self.values.get(name)?.value.clone(),
            None => n.op.attributes.get(param).cloned(),
        }
    }

    /// Integer elements of a constant parameter (at most 64 of them).
    pub fn param_ints(&self, n: &Node<'_>, param: &str) -> Option<Vec<i64>> {
        let v = self.param_value(n, param)?;
        if v.tensor_type()?.element_count()? > 64 {
            return None;
        }
        v.to_i64_vec()
    }

    /// A scalar float parameter.
    pub fn param_f32(&self, n: &Node<'_>, param: &str) -> Option<f32> {
        let v = self.param_value(n, param)?;
        if v.tensor_type()?.element_count()? != 1 {
            return None;
        }
        v.as_f32()
    }

    /// A string parameter.
    pub fn param_str(&self, n: &Node<'_>, param: &str) -> Option<String> {
        self.param_value(n, param)?.as_str().map(str::to_string)
    }

    /// Whether parameter `param` of `n` is known at compile time (or absent).
    pub fn param_is_constant(&self, n: &Node<'_>, param: &str) -> bool {
        match n.op.input(param) {
            Some(Binding::Name(name)) => self.values.get(name).is_some_and(|v| v.constant),
            _ => true,
        }
    }

    /// The analysed types of the node's runtime (not compile-time) tensor inputs.
    pub fn runtime_inputs<'s>(&'s self, n: &'s Node<'_>) -> Vec<(&'s str, &'s TensorType)> {
        n.inputs
            .iter()
            .filter_map(|(p, name)| {
                let v = self.values.get(name)?;
                if v.constant {
                    return None;
                }
                Some((p.as_str(), v.ty.as_tensor()?))
            })
            .collect()
    }

    /// The analysed types of the node's tensor outputs.
    pub fn output_tensors(&self, n: &Node<'_>) -> Vec<&TensorType> {
        n.outputs
            .iter()
            .filter_map(|o| self.values.get(o)?.ty.as_tensor())
            .collect()
    }

    /// Whether value `name` is an input of the function.
    pub fn is_function_input(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v.function_input)
    }

    /// Element data types of the node's runtime tensors (inputs and outputs).
    pub fn runtime_dtypes(&self, n: &Node<'_>) -> Vec<DataType> {
        let mut d: Vec<DataType> = self
            .runtime_inputs(n)
            .iter()
            .map(|(_, t)| t.dtype)
            .collect();
        d.extend(self.output_tensors(n).iter().map(|t| t.dtype));
        d
    }
}

/// Ops whose result is not a function of their arguments (states, random numbers): never
/// folded into constants.
fn is_stateful(op: &Operation) -> bool {
    !anekit_mil::ops::effect(&op.op_type).foldable()
}
