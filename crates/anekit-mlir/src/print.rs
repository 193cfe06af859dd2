//! MLIR's textual form of a module, as `mlir-opt` (or `str(module)` in MLIR's Python
//! bindings) prints it for ops without a custom assembly format: the generic op form, the
//! top-level ops inside `module { ... }`, value names numbered as MLIR's `SSANameState`
//! numbers them (`%0`, `%arg0`, `%5#1`), two spaces of indentation per region.
//!
//! Attributes and types are dialect-defined: [`Hooks`] renders them. Textual entries
//! (stored as text in the file) print as stored; custom-encoded entries no hook knows
//! print as `#dialect<bytecode "HEX">` (anekit's notation, not parseable by MLIR).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::module::{AttrId, BlockId, Bytecode, OpId, RegionId, TypeId, Value};

/// Dialect-specific rendering.
pub trait Hooks {
    /// The textual form of attribute `id` (`#dialect.kind<...>`), if this hook knows it.
    fn attribute(&self, m: &Bytecode, id: AttrId) -> Option<String>;
    /// The textual form of type `id` (`!dialect.kind<...>`), if this hook knows it.
    fn ty(&self, m: &Bytecode, id: TypeId) -> Option<String>;
    /// The properties of `op` as `(name, value text)` pairs, if it has any and the hook
    /// knows their names.
    fn properties(&self, m: &Bytecode, op: OpId) -> Option<Vec<(String, String)>>;
    /// Text printed after the module (MLIR prints dialect resources there, in a
    /// `{-# ... #-}` block).
    fn trailer(&self, _m: &Bytecode) -> Option<String> {
        None
    }
}

/// Hooks that know no dialect.
pub struct NoHooks;

impl Hooks for NoHooks {
    fn attribute(&self, _: &Bytecode, _: AttrId) -> Option<String> {
        None
    }
    fn ty(&self, _: &Bytecode, _: TypeId) -> Option<String> {
        None
    }
    fn properties(&self, _: &Bytecode, _: OpId) -> Option<Vec<(String, String)>> {
        None
    }
}

fn fallback(m: &Bytecode, entry: Option<&crate::module::Entry>, sigil: char) -> String {
    match entry {
        Some(e) if !e.custom => String::from_utf8_lossy(&e.data).into_owned(),
        Some(e) => {
            let mut hex = String::with_capacity(e.data.len() * 2);
            for b in e.data.iter() {
                let _ = write!(hex, "{b:02X}");
            }
            format!("{sigil}{}<bytecode \"{hex}\">", m.dialect_name(e.dialect))
        }
        None => format!("{sigil}<invalid>"),
    }
}

/// Render attribute `id` through `hooks`, or the fallback form.
pub fn attribute(m: &Bytecode, hooks: &dyn Hooks, id: AttrId) -> String {
    hooks
        .attribute(m, id)
        .unwrap_or_else(|| fallback(m, m.attributes.get(id.index()), '#'))
}

/// Render type `id` through `hooks`, or the fallback form.
pub fn ty(m: &Bytecode, hooks: &dyn Hooks, id: TypeId) -> String {
    hooks
        .ty(m, id)
        .unwrap_or_else(|| fallback(m, m.types.get(id.index()), '!'))
}

/// Value names as MLIR assigns them.
struct Names {
    /// The number of each op's first result (all results of an op share it).
    results: HashMap<OpId, u64>,
    /// Names of block arguments: `arg3` for entry blocks, a number for others.
    args: HashMap<(BlockId, u32), String>,
    /// Block labels (`bb0`, per region).
    blocks: HashMap<BlockId, u64>,
}

fn number(m: &Bytecode) -> Names {
    let mut n = Names {
        results: HashMap::new(),
        args: HashMap::new(),
        blocks: HashMap::new(),
    };
    let ir = &m.ir;
    // The top-level ops form the body of the implicit module: a region numbered from 0.
    // (blocks of a region, or the top-level ops; next value number; next argument number)
    type Context = (Vec<BlockId>, Option<Vec<OpId>>, u64, u64);
    let mut stack: Vec<Context> = vec![(Vec::new(), Some(ir.top.clone()), 0, 0)];
    while let Some((blocks, top_ops, mut next_value, mut next_arg)) = stack.pop() {
        let mut ops_in_region: Vec<OpId> = Vec::new();
        if let Some(top) = top_ops {
            for &op in &top {
                if !ir.op(op).result_types.is_empty() {
                    n.results.insert(op, next_value);
                    next_value += 1;
                }
            }
            ops_in_region = top;
        }
        for (bi, &b) in blocks.iter().enumerate() {
            n.blocks.insert(b, bi as u64);
            let block = ir.block(b);
            for i in 0..block.args.len() {
                let name = if bi == 0 {
                    let s = format!("arg{next_arg}");
                    next_arg += 1;
                    s
                } else {
                    let s = next_value.to_string();
                    next_value += 1;
                    s
                };
                n.args.insert((b, i as u32), name);
            }
            for &op in &block.ops {
                if !ir.op(op).result_types.is_empty() {
                    n.results.insert(op, next_value);
                    next_value += 1;
                }
                ops_in_region.push(op);
            }
        }
        for op in ops_in_region {
            for &r in &ir.op(op).regions {
                stack.push((ir.region(r).blocks.clone(), None, next_value, next_arg));
            }
        }
    }
    n
}

struct Printer<'a> {
    m: &'a Bytecode,
    hooks: &'a dyn Hooks,
    names: Names,
    out: String,
}

impl Printer<'_> {
    fn value(&self, v: Value) -> String {
        match v {
            Value::Arg { block, index } => match self.names.args.get(&(block, index)) {
                Some(s) => format!("%{s}"),
                None => "%<invalid>".into(),
            },
            Value::Result { op, index } => {
                let Some(&num) = self.names.results.get(&op) else {
                    return "%<invalid>".into();
                };
                let multi = self
                    .m
                    .ir
                    .ops
                    .get(op.index())
                    .is_some_and(|o| o.result_types.len() > 1);
                if multi {
                    format!("%{num}#{index}")
                } else {
                    format!("%{num}")
                }
            }
        }
    }

    fn types(&self, ids: impl Iterator<Item = TypeId>) -> Vec<String> {
        ids.map(|t| ty(self.m, self.hooks, t)).collect()
    }

    fn value_type(&self, v: Value) -> Option<TypeId> {
        let ir = &self.m.ir;
        match v {
            Value::Arg { block, index } => ir
                .blocks
                .get(block.index())?
                .args
                .get(index as usize)
                .map(|a| a.ty),
            Value::Result { op, index } => ir
                .ops
                .get(op.index())?
                .result_types
                .get(index as usize)
                .copied(),
        }
    }

    fn op(&mut self, id: OpId, indent: usize) {
        let m = self.m;
        let op = m.ir.op(id);
        let pad = " ".repeat(indent);
        self.out.push_str(&pad);
        if !op.result_types.is_empty() {
            let num = self.names.results.get(&id).copied().unwrap_or(0);
            let _ = write!(self.out, "%{num}");
            if op.result_types.len() > 1 {
                let _ = write!(self.out, ":{}", op.result_types.len());
            }
            self.out.push_str(" = ");
        }
        let _ = write!(self.out, "\"{}\"(", m.op_name(op.name));
        let operands: Vec<String> = op.operands.iter().map(|&v| self.value(v)).collect();
        self.out.push_str(&operands.join(", "));
        self.out.push(')');
        if !op.successors.is_empty() {
            let s: Vec<String> = op
                .successors
                .iter()
                .map(|b| format!("^bb{}", self.names.blocks.get(b).copied().unwrap_or(0)))
                .collect();
            let _ = write!(self.out, "[{}]", s.join(", "));
        }
        if op.properties.is_some() {
            match self.hooks.properties(m, id) {
                Some(mut props) if !props.is_empty() => {
                    props.sort_by(|a, b| a.0.cmp(&b.0));
                    let body: Vec<String> = props
                        .into_iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect();
                    let _ = write!(self.out, " <{{{}}}>", body.join(", "));
                }
                Some(_) => {}
                None => self.out.push_str(" <{<properties not decoded>}>"),
            }
        }
        if !op.regions.is_empty() {
            self.out.push_str(" (");
            let regions = op.regions.clone();
            for (i, r) in regions.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                self.region(*r, indent);
            }
            self.out.push(')');
        }
        if let Some(a) = op.attributes {
            let _ = write!(self.out, " {}", attribute(m, self.hooks, a));
        }
        let ins: Vec<String> = op
            .operands
            .iter()
            .map(|&v| {
                self.value_type(v)
                    .map_or_else(|| "<invalid>".into(), |t| ty(m, self.hooks, t))
            })
            .collect();
        let outs = self.types(op.result_types.iter().copied());
        let _ = write!(self.out, " : ({}) -> ", ins.join(", "));
        if outs.len() == 1 && !outs[0].starts_with('(') {
            self.out.push_str(&outs[0]);
        } else {
            let _ = write!(self.out, "({})", outs.join(", "));
        }
    }

    fn region(&mut self, id: RegionId, indent: usize) {
        let m = self.m;
        self.out.push_str("{\n");
        let blocks = m.ir.region(id).blocks.clone();
        for (i, &b) in blocks.iter().enumerate() {
            let block = m.ir.block(b);
            let header = i > 0 || !block.args.is_empty() || block.ops.is_empty();
            if header {
                let _ = write!(self.out, "{}^bb{}", " ".repeat(indent), i);
                if !block.args.is_empty() {
                    let args: Vec<String> = block
                        .args
                        .iter()
                        .enumerate()
                        .map(|(ai, a)| {
                            format!(
                                "{}: {}",
                                self.value(Value::Arg {
                                    block: b,
                                    index: ai as u32
                                }),
                                ty(m, self.hooks, a.ty)
                            )
                        })
                        .collect();
                    let _ = write!(self.out, "({})", args.join(", "));
                }
                self.out.push_str(":\n");
            }
            for &op in &block.ops {
                self.op(op, indent + 2);
                self.out.push('\n');
            }
        }
        let _ = write!(self.out, "{}}}", " ".repeat(indent));
    }
}

/// The module in MLIR's textual form (generic op form inside `module { ... }`).
pub fn print(m: &Bytecode, hooks: &dyn Hooks) -> String {
    let mut p = Printer {
        m,
        hooks,
        names: number(m),
        out: String::new(),
    };
    p.out.push_str("module {\n");
    for &op in &m.ir.top {
        p.op(op, 2);
        p.out.push('\n');
    }
    p.out.push_str("}\n");
    if let Some(t) = hooks.trailer(m) {
        p.out.push('\n');
        p.out.push_str(&t);
    }
    p.out
}
