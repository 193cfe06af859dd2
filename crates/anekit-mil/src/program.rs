//! The program structure: Program → Function → Block → Operation.

use std::collections::BTreeMap;
use std::fmt;

use crate::types::{NamedValueType, ValueType};
use crate::value::Value;

/// A MIL opset (the `Function.opset` string). Later opsets include every op of earlier ones.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Opset {
    /// iOS 15 / macOS 12, spec 6, `CoreML5`.
    #[serde(rename = "iOS15")]
    Ios15,
    /// iOS 16 / macOS 13, spec 7, `CoreML6`.
    #[serde(rename = "iOS16")]
    Ios16,
    /// iOS 17 / macOS 14, spec 8, `CoreML7`.
    #[serde(rename = "iOS17")]
    Ios17,
    /// iOS 18 / macOS 15, spec 9, `CoreML8`.
    #[serde(rename = "iOS18")]
    Ios18,
    /// iOS 26 / macOS 26, spec 10, `CoreML9` (no new ops over iOS18).
    #[serde(rename = "iOS26")]
    Ios26,
}

impl Opset {
    /// All opsets, oldest first.
    pub const ALL: [Opset; 5] = [
        Self::Ios15,
        Self::Ios16,
        Self::Ios17,
        Self::Ios18,
        Self::Ios26,
    ];

    /// The name in `Function.opset` of the protobuf (`CoreML5` … `CoreML9`).
    pub fn proto_name(self) -> &'static str {
        match self {
            Self::Ios15 => "CoreML5",
            Self::Ios16 => "CoreML6",
            Self::Ios17 => "CoreML7",
            Self::Ios18 => "CoreML8",
            Self::Ios26 => "CoreML9",
        }
    }

    /// The name in MIL text (`ios15` … `ios26`).
    pub fn text_name(self) -> &'static str {
        match self {
            Self::Ios15 => "ios15",
            Self::Ios16 => "ios16",
            Self::Ios17 => "ios17",
            Self::Ios18 => "ios18",
            Self::Ios26 => "ios26",
        }
    }

    /// The opset named `s` in either spelling (`CoreML8`, `ios18`, `iOS18`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.proto_name() == s || o.text_name().eq_ignore_ascii_case(s))
    }

    /// The lowest model specification version that can hold this opset.
    pub fn spec_version(self) -> i32 {
        match self {
            Self::Ios15 => 6,
            Self::Ios16 => 7,
            Self::Ios17 => 8,
            Self::Ios18 => 9,
            Self::Ios26 => 10,
        }
    }

    /// The opset of a model specification version (`None` below 6, where there are no ML
    /// Programs).
    pub fn for_spec_version(v: i32) -> Option<Self> {
        match v {
            6 => Some(Self::Ios15),
            7 => Some(Self::Ios16),
            8 => Some(Self::Ios17),
            9 => Some(Self::Ios18),
            v if v >= 10 => Some(Self::Ios26),
            _ => None,
        }
    }
}

impl fmt::Display for Opset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ios15 => "iOS15",
            Self::Ios16 => "iOS16",
            Self::Ios17 => "iOS17",
            Self::Ios18 => "iOS18",
            Self::Ios26 => "iOS26",
        })
    }
}

/// A whole ML Program: named functions sharing one weight store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Program {
    /// Program version (coremltools always writes 1).
    pub version: i64,
    /// Functions by name (`main` for single-function models).
    pub functions: BTreeMap<String, Function>,
    /// Documentation string.
    pub doc: String,
    /// Program attributes (coremltools stores `buildInfo` here).
    pub attributes: BTreeMap<String, Value>,
}

/// A function: typed inputs and one block per opset specialization.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Inputs (tensors, or states from iOS18 on).
    pub inputs: Vec<NamedValueType>,
    /// The opset of the block that runs (a key of `blocks`), as written (`CoreML8`).
    pub opset: String,
    /// Blocks by opset name; normally exactly one, under `opset`.
    pub blocks: BTreeMap<String, Block>,
    /// Function attributes.
    pub attributes: BTreeMap<String, Value>,
}

impl Function {
    /// The block that runs: the specialization for [`Function::opset`].
    pub fn block(&self) -> Option<&Block> {
        self.blocks.get(&self.opset)
    }

    /// Mutable access to the block that runs.
    pub fn block_mut(&mut self) -> Option<&mut Block> {
        self.blocks.get_mut(&self.opset)
    }

    /// The opset, if it is one this crate knows.
    pub fn known_opset(&self) -> Option<Opset> {
        Opset::parse(&self.opset)
    }
}

/// A sequence of operations in SSA form with named outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    /// Block inputs (only nested blocks such as loop bodies have them).
    pub inputs: Vec<NamedValueType>,
    /// Names of the values the block returns.
    pub outputs: Vec<String>,
    /// Operations in topological order.
    pub operations: Vec<Operation>,
    /// Block attributes.
    pub attributes: BTreeMap<String, Value>,
}

/// One argument of an operation: one binding, or several for variadic parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Argument(pub Vec<Binding>);

/// A binding of an argument to a variable or a literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// A reference to a function input, block input or earlier op output.
    Name(String),
    /// An inline constant.
    Value(Value),
}

/// An operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Op type (`conv`, `const`, `constexpr_lut_to_dense`, ...).
    pub op_type: String,
    /// Parameters bound to arguments, by parameter name.
    pub inputs: BTreeMap<String, Argument>,
    /// Output variables with their types.
    pub outputs: Vec<NamedValueType>,
    /// Nested blocks (`cond`, `while_loop`).
    pub blocks: Vec<Block>,
    /// Attributes (`name` on every op; `val` on `const`; all parameters of iOS16/17
    /// constexpr ops).
    pub attributes: BTreeMap<String, Value>,
}

impl Operation {
    /// An operation with no inputs, outputs or attributes yet.
    pub fn new(op_type: impl Into<String>) -> Self {
        Self {
            op_type: op_type.into(),
            inputs: BTreeMap::new(),
            outputs: Vec::new(),
            blocks: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// The op's `name` attribute, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.attributes.get("name").and_then(Value::as_str)
    }

    /// A name to use in messages: the `name` attribute, else the first output.
    pub fn display_name(&self) -> &str {
        self.name()
            .or_else(|| self.outputs.first().map(|o| o.name.as_str()))
            .unwrap_or("<unnamed>")
    }

    /// The single binding of parameter `param`, if it has exactly one.
    pub fn input(&self, param: &str) -> Option<&Binding> {
        match self.inputs.get(param)?.0.as_slice() {
            [b] => Some(b),
            _ => None,
        }
    }

    /// The value of parameter `param` given either as an inline input value or as an
    /// attribute (iOS16/17 constexpr ops carry their parameters as attributes).
    pub fn literal(&self, param: &str) -> Option<&Value> {
        match self.input(param) {
            Some(Binding::Value(v)) => Some(v),
            Some(Binding::Name(_)) => None,
            None => self.attributes.get(param),
        }
    }

    /// Whether this is a `const` op or one of the `constexpr_*` family.
    pub fn is_constant(&self) -> bool {
        self.op_type == "const" || self.op_type.starts_with("constexpr_")
    }
}

impl Block {
    /// Visit every operation of this block and of all nested blocks, depth first in order.
    pub fn visit_ops<'a>(&'a self, f: &mut impl FnMut(&'a Operation)) {
        for op in &self.operations {
            f(op);
            for b in &op.blocks {
                b.visit_ops(f);
            }
        }
    }

    /// Op type → number of ops, nested blocks included.
    pub fn op_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        self.visit_ops(&mut |op| *counts.entry(op.op_type.clone()).or_insert(0) += 1);
        counts
    }
}

impl Program {
    /// The function named `main`, or the only function.
    pub fn main_function(&self) -> Option<(&str, &Function)> {
        if let Some((k, f)) = self.functions.get_key_value("main") {
            return Some((k.as_str(), f));
        }
        match self.functions.iter().next() {
            Some((k, f)) if self.functions.len() == 1 => Some((k.as_str(), f)),
            _ => None,
        }
    }
}

/// Type of a named variable visible in a scope — used by analyses that need the type of an
/// op's input.
pub fn lookup_type<'a>(scope: &'a [NamedValueType], name: &str) -> Option<&'a ValueType> {
    scope.iter().rev().find(|n| n.name == name).map(|n| &n.ty)
}
