//! MLIR's textual form of a module, as `mlir-opt` (or `str(module)` in MLIR's Python
//! bindings) prints it for ops without a custom assembly format: the generic op form, the
//! top-level ops inside `module { ... }`, value names numbered as MLIR's `SSANameState`
//! numbers them (`%0`, `%arg0`, `%5#1`), two spaces of indentation per region.
//!
//! Attributes and types are dialect-defined: [`Hooks`] renders them. Textual entries
//! (stored as text in the file) print as stored; custom-encoded entries no hook knows
//! print as `#dialect<bytecode "HEX">` (anekit's notation, not parseable by MLIR).

use std::collections::{HashMap, HashSet};
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
    /// Names the op gives its results (MLIR's `OpAsmOpInterface::getAsmResultNames`),
    /// one per result, or `None` for the default numbering.
    fn result_names(&self, _m: &Bytecode, _op: OpId) -> Option<Vec<String>> {
        None
    }
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

/// How an op's results are named.
enum ResultNames {
    /// `%N` (`%N#i` for result `i` of a multi-result op).
    Number(u64),
    /// One name per result.
    Named(Vec<String>),
}

/// Value names as MLIR assigns them.
struct Names {
    /// The names of each op's results.
    results: HashMap<OpId, ResultNames>,
    /// Names of block arguments: `arg3` for entry blocks, a number for others.
    args: HashMap<(BlockId, u32), String>,
    /// Block labels (`bb0`, per region).
    blocks: HashMap<BlockId, u64>,
}

/// MLIR's name uniquing: `name`, else `name_K` with the next free conflict number.
fn unique(name: &str, used: &mut HashSet<String>, next_conflict: &mut u64) -> String {
    let mut n = name.to_string();
    if used.contains(&n) {
        loop {
            n = format!("{name}_{next_conflict}");
            *next_conflict += 1;
            if !used.contains(&n) {
                break;
            }
        }
    }
    used.insert(n.clone());
    n
}

/// The numbering state carried from a region into its nested regions.
#[derive(Clone)]
struct Counters {
    value: u64,
    arg: u64,
    conflict: u64,
    used: HashSet<String>,
}

fn number(m: &Bytecode, hooks: &dyn Hooks) -> Names {
    let mut n = Names {
        results: HashMap::new(),
        args: HashMap::new(),
        blocks: HashMap::new(),
    };
    let ir = &m.ir;
    let name_op = |op: OpId, c: &mut Counters, n: &mut Names| {
        let count = ir.op(op).result_types.len();
        if count == 0 {
            return;
        }
        match hooks.result_names(m, op).filter(|v| v.len() == count) {
            Some(names) => {
                let names = names
                    .iter()
                    .map(|s| unique(s, &mut c.used, &mut c.conflict))
                    .collect();
                n.results.insert(op, ResultNames::Named(names));
            }
            None => {
                n.results.insert(op, ResultNames::Number(c.value));
                c.value += 1;
            }
        }
    };
    // (blocks of a region, or the top-level ops; the counters it starts with)
    type Context = (Vec<BlockId>, Option<Vec<OpId>>, Counters);
    let start = Counters {
        value: 0,
        arg: 0,
        conflict: 0,
        used: HashSet::new(),
    };
    let mut stack: Vec<Context> = vec![(Vec::new(), Some(ir.top.clone()), start)];
    while let Some((blocks, top_ops, mut c)) = stack.pop() {
        let mut ops_in_region: Vec<OpId> = Vec::new();
        if let Some(top) = top_ops {
            for &op in &top {
                name_op(op, &mut c, &mut n);
            }
            ops_in_region = top;
        }
        for (bi, &b) in blocks.iter().enumerate() {
            n.blocks.insert(b, bi as u64);
            let block = ir.block(b);
            for i in 0..block.args.len() {
                let name = if bi == 0 {
                    let s = format!("arg{}", c.arg);
                    c.arg += 1;
                    s
                } else {
                    let s = c.value.to_string();
                    c.value += 1;
                    s
                };
                n.args.insert((b, i as u32), name);
            }
            for &op in &block.ops {
                name_op(op, &mut c, &mut n);
                ops_in_region.push(op);
            }
        }
        for op in ops_in_region {
            for &r in &ir.op(op).regions {
                stack.push((ir.region(r).blocks.clone(), None, c.clone()));
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
            Value::Result { op, index } => match self.names.results.get(&op) {
                Some(ResultNames::Named(names)) => match names.get(index as usize) {
                    Some(s) => format!("%{s}"),
                    None => "%<invalid>".into(),
                },
                Some(ResultNames::Number(num)) => {
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
                None => "%<invalid>".into(),
            },
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
        match self.names.results.get(&id) {
            Some(ResultNames::Named(names)) => {
                let list: Vec<String> = names.iter().map(|s| format!("%{s}")).collect();
                let _ = write!(self.out, "{} = ", list.join(", "));
            }
            Some(ResultNames::Number(num)) => {
                let _ = write!(self.out, "%{num}");
                if op.result_types.len() > 1 {
                    let _ = write!(self.out, ":{}", op.result_types.len());
                }
                self.out.push_str(" = ");
            }
            None => {}
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
        names: number(m, hooks),
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
