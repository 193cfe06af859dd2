//! The textual form of `aicode` modules, as coreai-core's MLIR prints them
//! (`str(ir.Module.parse(bytes))`): [`print`] renders a whole module through
//! [`anekit_mlir::print`] with the dialect's attributes, types, properties and resources.

use std::cell::Cell;
use std::fmt::Write as _;

use base64::Engine as _;

use anekit_mlir::print::Hooks;
use anekit_mlir::{AttrId, Bytecode, OpId, ResourceValue, TypeId};

use crate::float::{FloatFormat, mlir_float};
use crate::ir::{self, Attr, Type};
use crate::schema;

/// Nesting depth at which rendering stops (attributes can refer to each other in cycles
/// in a hostile file).
const MAX_DEPTH: usize = 64;

/// MLIR's string escaping (`llvm::printEscapedString`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b == b'\\' {
            out.push_str("\\\\");
        } else if (0x20..0x7f).contains(&b) && b != b'"' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\{b:02X}");
        }
    }
    out
}

/// Most bytes of attribute and type text one print writes. Attributes and types form a DAG
/// in the bytecode (an attribute refers to others by index), and MLIR prints every
/// reference in full: a hostile file of a few KB can describe an array that holds the
/// previous array twice, 60 levels deep, whose text would be exponentially large. Past this
/// budget the printer writes [`ELIDED`] instead (a real model's attribute text is about its
/// inline data's size; this is far above it).
pub const MAX_PRINTED_BYTES: usize = 64 << 20;

/// What stands for an attribute or type once [`MAX_PRINTED_BYTES`] is spent.
pub const ELIDED: &str = "<elided: printing limit>";

/// The hooks for `aicode`, with the output budget of one print ([`MAX_PRINTED_BYTES`]).
pub struct AicodeHooks {
    /// Bytes left to write.
    left: Cell<usize>,
    /// How much of the current rendering's text is already charged.
    mark: Cell<usize>,
}

impl Default for AicodeHooks {
    fn default() -> Self {
        Self {
            left: Cell::new(MAX_PRINTED_BYTES),
            mark: Cell::new(0),
        }
    }
}

impl AicodeHooks {
    /// Hooks with a fresh budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// Charge the text written to `out` since the last charge against the budget; whether
    /// some budget is left. Every node of one rendering writes into the same `out`, so each
    /// byte is charged once, structure and payload alike.
    fn charge(&self, out: &str) -> bool {
        let new = out.len().saturating_sub(self.mark.get());
        self.mark.set(out.len());
        self.left.set(self.left.get().saturating_sub(new));
        self.left.get() > 0
    }

    fn ty_into(&self, m: &Bytecode, id: TypeId, depth: usize, out: &mut String) {
        if !self.charge(out) {
            out.push('!');
            out.push_str(ELIDED);
            return;
        }
        if depth > MAX_DEPTH {
            out.push_str("!aicode.<nested too deeply>");
            return;
        }
        match ir::ty(m, id) {
            Ok(Type::Scalar(s)) => {
                let _ = write!(out, "!aicode.{}_v1", s.name());
            }
            Ok(Type::Tensor { shape, element }) => {
                out.push_str("!aicode.tensor_v1<");
                if !shape.is_empty() {
                    out.push('[');
                    for (i, d) in shape.iter().enumerate() {
                        let _ = write!(out, "{}{d}", if i > 0 { ", " } else { "" });
                    }
                    out.push_str("] : ");
                }
                self.ty_into(m, element, depth + 1, out);
                out.push('>');
            }
            Ok(Type::Function { inputs, results }) => {
                out.push_str("!aicode.function_v1<(operands ");
                self.types_into(m, &inputs, depth, out);
                out.push_str(") -> (results ");
                self.types_into(m, &results, depth, out);
                out.push_str(")>");
            }
            Ok(Type::Handle(t)) => {
                out.push_str("!aicode.handle_v1<");
                self.ty_into(m, t, depth + 1, out);
                out.push('>');
            }
            Ok(Type::Token) => out.push_str("!aicode.token_v1"),
            Ok(Type::ParamSymbol) => out.push_str("!aicode.param.symbol_v1"),
            Ok(Type::Unknown(c)) => {
                let _ = write!(out, "!aicode.<unknown type code {c}>");
            }
            Err(e) => {
                let _ = write!(out, "!aicode.<{e}>");
            }
        }
    }

    fn types_into(&self, m: &Bytecode, ids: &[TypeId], depth: usize, out: &mut String) {
        for (i, &t) in ids.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.ty_into(m, t, depth + 1, out);
        }
    }

    fn attrs_into(&self, m: &Bytecode, ids: &[AttrId], depth: usize, out: &mut String) {
        for (i, &a) in ids.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.attr_into(m, a, depth + 1, out);
        }
    }

    fn attr_into(&self, m: &Bytecode, id: AttrId, depth: usize, out: &mut String) {
        if !self.charge(out) {
            out.push('#');
            out.push_str(ELIDED);
            return;
        }
        if depth > MAX_DEPTH {
            out.push_str("#aicode.<nested too deeply>");
            return;
        }
        match ir::attr(m, id) {
            Ok(Attr::String(s)) => {
                let _ = write!(out, "#aicode.serialization.string<\"{}\">", escape(&s));
            }
            Ok(Attr::Integer {
                width,
                signed,
                value,
            }) => {
                let _ = write!(
                    out,
                    "#aicode.serialization.integer<({width}bit {}) {}>",
                    if signed { "signed" } else { "unsigned" },
                    int_text(width, signed, &value)
                );
            }
            Ok(Attr::Float { width, bits }) => {
                let v = match FloatFormat::for_width(width) {
                    Some(f) => mlir_float(f, bits.as_u64()),
                    None => int_text(width, false, &bits),
                };
                let _ = write!(out, "#aicode.serialization.float<({width}bit) {v}>");
            }
            Ok(Attr::Type(t)) => {
                out.push_str("#aicode.serialization.type<");
                self.ty_into(m, t, depth + 1, out);
                out.push('>');
            }
            Ok(Attr::Array(items)) => {
                if items.is_empty() {
                    out.push_str("#aicode.serialization.array<>");
                } else {
                    out.push_str("#aicode.serialization.array<[");
                    self.attrs_into(m, &items, depth, out);
                    out.push_str("]>");
                }
            }
            Ok(Attr::DenseElements { splat, data }) => {
                let _ = write!(
                    out,
                    "#aicode.serialization.dense_elements<[splat = {splat}] \"{}\">",
                    base64::engine::general_purpose::STANDARD.encode(&data)
                );
            }
            Ok(Attr::DenseResource(h)) => {
                let _ = write!(
                    out,
                    "#aicode.serialization.dense_resource<{}>",
                    resource_key(m, h)
                );
            }
            Ok(Attr::Opaque { name, values }) => {
                let _ = write!(
                    out,
                    "#aicode.serialization.opaque<\"{}\" = [",
                    escape(&name)
                );
                self.attrs_into(m, &values, depth, out);
                out.push_str("]>");
            }
            Ok(Attr::Dictionary(entries)) => {
                out.push_str("#aicode.serialization.dictionary<{");
                for (i, &e) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    match ir::attr(m, e) {
                        Ok(Attr::Opaque { name, values }) => {
                            let _ = write!(out, "<\"{}\" = [", escape(&name));
                            self.attrs_into(m, &values, depth, out);
                            out.push_str("]>");
                        }
                        _ => self.attr_into(m, e, depth + 1, out),
                    }
                }
                out.push_str("}>");
            }
            Ok(Attr::ParamConstant { value, ty }) => {
                out.push_str("#aicode.param.constant_v1<binding{ [");
                self.attr_into(m, value, depth + 1, out);
                out.push_str("] : ");
                self.ty_into(m, ty, depth + 1, out);
                out.push_str(" }>");
            }
            Ok(Attr::SymbolRef(path)) => {
                let _ = write!(out, "#aicode.symbol_ref_v1<{}>", path.join("::"));
            }
            Ok(Attr::Enum { kind, value }) => {
                let _ = write!(
                    out,
                    "#aicode.{}<{}>",
                    kind.mnemonic(),
                    kind.case(value).unwrap_or("?")
                );
            }
            Ok(Attr::Unit) => out.push_str("#aicode.unit_v1"),
            Ok(Attr::DebugInfo(c)) => {
                let _ = write!(out, "#aicode.<debug info {c}>");
            }
            Ok(Attr::Unknown(c)) => {
                let _ = write!(out, "#aicode.<unknown attribute code {c}>");
            }
            Err(e) => {
                let _ = write!(out, "#aicode.<{e}>");
            }
        }
    }

    fn attr_text(&self, m: &Bytecode, id: AttrId) -> String {
        let mut out = String::new();
        self.mark.set(0);
        self.attr_into(m, id, 0, &mut out);
        self.charge(&out);
        out
    }

    fn ty_text(&self, m: &Bytecode, id: TypeId) -> String {
        let mut out = String::new();
        self.mark.set(0);
        self.ty_into(m, id, 0, &mut out);
        self.charge(&out);
        out
    }
}

fn int_text(width: u32, signed: bool, v: &anekit_mlir::dialect::ApInt) -> String {
    if width <= 64 {
        if signed {
            v.as_i64().to_string()
        } else {
            v.as_u64().to_string()
        }
    } else {
        let mut s = String::from("0x");
        for w in v.words.iter().rev() {
            let _ = write!(s, "{w:016X}");
        }
        s
    }
}

fn resource_key(m: &Bytecode, handle: usize) -> String {
    m.dialect_resource(handle).map_or_else(
        || "<missing resource>".into(),
        |(_, e)| m.string(e.key).to_string(),
    )
}

/// The textual form of attribute `id` (within [`MAX_PRINTED_BYTES`]).
pub fn attribute(m: &Bytecode, id: AttrId) -> String {
    AicodeHooks::new().attr_text(m, id)
}

/// The textual form of type `id` (within [`MAX_PRINTED_BYTES`]).
pub fn type_text(m: &Bytecode, id: TypeId) -> String {
    AicodeHooks::new().ty_text(m, id)
}

impl Hooks for AicodeHooks {
    fn attribute(&self, m: &Bytecode, id: AttrId) -> Option<String> {
        let e = m.attributes.get(id.index())?;
        (e.custom && m.dialect_name(e.dialect) == ir::DIALECT).then(|| self.attr_text(m, id))
    }

    fn ty(&self, m: &Bytecode, id: TypeId) -> Option<String> {
        let e = m.types.get(id.index())?;
        (e.custom && m.dialect_name(e.dialect) == ir::DIALECT).then(|| self.ty_text(m, id))
    }

    fn properties(&self, m: &Bytecode, op: OpId) -> Option<Vec<(String, String)>> {
        let props = schema::properties(m, op).ok()?;
        Some(
            props
                .into_iter()
                .map(|(n, a)| (n.to_string(), self.attr_text(m, a)))
                .collect(),
        )
    }

    fn result_names(&self, m: &Bytecode, op: OpId) -> Option<Vec<String>> {
        let name = m.name_of(op);
        let names: &[&str] = match name.as_str() {
            "aicode.dataflow.read_handle_v1" => &["output", "out_token"],
            _ => return None,
        };
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    fn trailer(&self, m: &Bytecode) -> Option<String> {
        // MLIR prints the resources in the order the text first refers to them.
        let handles: Vec<(anekit_mlir::DialectId, &anekit_mlir::ResourceEntry)> =
            m.dialect_resources().collect();
        let mut order: Vec<usize> = Vec::new();
        let mut seen = vec![false; handles.len()];
        let mut visited = vec![false; m.attributes.len()];
        for op in m.ir.walk() {
            let mut props = schema::properties(m, op).unwrap_or_default();
            props.sort_by(|a, b| a.0.cmp(b.0));
            for (_, a) in props {
                collect_resources(m, a, 0, &mut visited, &mut seen, &mut order);
            }
        }
        if order.is_empty() {
            return None;
        }
        let mut out = String::from("{-#\n  dialect_resources: {\n");
        let mut i = 0;
        while i < order.len() {
            // Consecutive handles of one dialect form one group.
            let dialect = handles[order[i]].0;
            let _ = writeln!(out, "    {}: {{", m.dialect_name(dialect));
            let mut j = i;
            while j < order.len() && handles[order[j]].0 == dialect {
                j += 1;
            }
            for (k, &h) in order[i..j].iter().enumerate() {
                let e = handles[h].1;
                let value = match &e.value {
                    ResourceValue::Blob { alignment, data } => {
                        let mut s = String::with_capacity(12 + data.len() * 2);
                        s.push_str("\"0x");
                        for b in (*alignment as u32).to_le_bytes() {
                            let _ = write!(s, "{b:02X}");
                        }
                        for b in data.iter() {
                            let _ = write!(s, "{b:02X}");
                        }
                        s.push('"');
                        s
                    }
                    ResourceValue::Bool(b) => b.to_string(),
                    ResourceValue::String(s) => format!("\"{}\"", escape(m.string(*s))),
                };
                let comma = if i + k + 1 < j { "," } else { "" };
                let _ = writeln!(out, "      {}: {value}{comma}", m.string(e.key));
            }
            out.push_str("    }\n");
            i = j;
        }
        out.push_str("  }\n#-}\n");
        Some(out)
    }
}

/// Append the resource handles under attribute `a` to `order`, first reference first. Each
/// attribute is walked once (`visited`): a shared sub-attribute holds no handle that its
/// first walk did not already find, and a hostile DAG of attributes would otherwise take
/// exponential time.
fn collect_resources(
    m: &Bytecode,
    a: AttrId,
    depth: usize,
    visited: &mut [bool],
    seen: &mut [bool],
    order: &mut Vec<usize>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match visited.get_mut(a.index()) {
        Some(v) if !*v => *v = true,
        _ => return,
    }
    let children = match ir::attr(m, a) {
        Ok(Attr::DenseResource(h)) => {
            if let Some(s) = seen.get_mut(h)
                && !*s
            {
                *s = true;
                order.push(h);
            }
            return;
        }
        Ok(Attr::Array(v) | Attr::Dictionary(v)) => v,
        Ok(Attr::Opaque { values, .. }) => values,
        Ok(Attr::ParamConstant { value, .. }) => vec![value],
        _ => return,
    };
    for c in children {
        collect_resources(m, c, depth + 1, visited, seen, order);
    }
}

/// The module as coreai-core prints it.
pub fn print(m: &Bytecode) -> String {
    anekit_mlir::print::print(m, &AicodeHooks::new())
}
