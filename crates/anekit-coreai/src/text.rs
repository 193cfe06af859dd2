//! The textual form of `aicode` modules, as coreai-core's MLIR prints them
//! (`str(ir.Module.parse(bytes))`): [`print`] renders a whole module through
//! [`anekit_mlir::print`] with the dialect's attributes, types, properties and resources.

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

/// The hooks for `aicode`.
pub struct AicodeHooks;

fn ty_text(m: &Bytecode, id: TypeId, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return "!aicode.<nested too deeply>".into();
    }
    match ir::ty(m, id) {
        Ok(Type::Scalar(s)) => format!("!aicode.{}_v1", s.name()),
        Ok(Type::Tensor { shape, element }) => {
            let e = ty_text(m, element, depth + 1);
            if shape.is_empty() {
                format!("!aicode.tensor_v1<{e}>")
            } else {
                let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
                format!("!aicode.tensor_v1<[{}] : {e}>", dims.join(", "))
            }
        }
        Ok(Type::Function { inputs, results }) => {
            let i: Vec<String> = inputs.iter().map(|&t| ty_text(m, t, depth + 1)).collect();
            let r: Vec<String> = results.iter().map(|&t| ty_text(m, t, depth + 1)).collect();
            format!(
                "!aicode.function_v1<(operands {}) -> (results {})>",
                i.join(", "),
                r.join(", ")
            )
        }
        Ok(Type::Handle(t)) => format!("!aicode.handle_v1<{}>", ty_text(m, t, depth + 1)),
        Ok(Type::Token) => "!aicode.token_v1".into(),
        Ok(Type::ParamSymbol) => "!aicode.param.symbol_v1".into(),
        Ok(Type::Unknown(c)) => format!("!aicode.<unknown type code {c}>"),
        Err(e) => format!("!aicode.<{e}>"),
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

fn attr_text(m: &Bytecode, id: AttrId, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return "#aicode.<nested too deeply>".into();
    }
    let list = |ids: &[AttrId]| -> String {
        ids.iter()
            .map(|&a| attr_text(m, a, depth + 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ir::attr(m, id) {
        Ok(Attr::String(s)) => format!("#aicode.serialization.string<\"{}\">", escape(&s)),
        Ok(Attr::Integer {
            width,
            signed,
            value,
        }) => format!(
            "#aicode.serialization.integer<({width}bit {}) {}>",
            if signed { "signed" } else { "unsigned" },
            int_text(width, signed, &value)
        ),
        Ok(Attr::Float { width, bits }) => {
            let v = match FloatFormat::for_width(width) {
                Some(f) => mlir_float(f, bits.as_u64()),
                None => int_text(width, false, &bits),
            };
            format!("#aicode.serialization.float<({width}bit) {v}>")
        }
        Ok(Attr::Type(t)) => format!("#aicode.serialization.type<{}>", ty_text(m, t, depth + 1)),
        Ok(Attr::Array(items)) => {
            if items.is_empty() {
                "#aicode.serialization.array<>".into()
            } else {
                format!("#aicode.serialization.array<[{}]>", list(&items))
            }
        }
        Ok(Attr::DenseElements { splat, data }) => format!(
            "#aicode.serialization.dense_elements<[splat = {splat}] \"{}\">",
            base64::engine::general_purpose::STANDARD.encode(&data)
        ),
        Ok(Attr::DenseResource(h)) => {
            format!(
                "#aicode.serialization.dense_resource<{}>",
                resource_key(m, h)
            )
        }
        Ok(Attr::Opaque { name, values }) => format!(
            "#aicode.serialization.opaque<\"{}\" = [{}]>",
            escape(&name),
            list(&values)
        ),
        Ok(Attr::Dictionary(entries)) => {
            let body: Vec<String> = entries
                .iter()
                .map(|&e| match ir::attr(m, e) {
                    Ok(Attr::Opaque { name, values }) => {
                        format!("<\"{}\" = [{}]>", escape(&name), list(&values))
                    }
                    _ => attr_text(m, e, depth + 1),
                })
                .collect();
            format!("#aicode.serialization.dictionary<{{{}}}>", body.join(", "))
        }
        Ok(Attr::ParamConstant { value, ty }) => format!(
            "#aicode.param.constant_v1<binding{{ [{}] : {} }}>",
            attr_text(m, value, depth + 1),
            ty_text(m, ty, depth + 1)
        ),
        Ok(Attr::SymbolRef(path)) => format!("#aicode.symbol_ref_v1<{}>", path.join("::")),
        Ok(Attr::Enum { kind, value }) => format!(
            "#aicode.{}<{}>",
            kind.mnemonic(),
            kind.case(value).unwrap_or("?")
        ),
        Ok(Attr::Unit) => "#aicode.unit_v1".into(),
        Ok(Attr::DebugInfo(c)) => format!("#aicode.<debug info {c}>"),
        Ok(Attr::Unknown(c)) => format!("#aicode.<unknown attribute code {c}>"),
        Err(e) => format!("#aicode.<{e}>"),
    }
}

/// The textual form of attribute `id`.
pub fn attribute(m: &Bytecode, id: AttrId) -> String {
    attr_text(m, id, 0)
}

/// The textual form of type `id`.
pub fn type_text(m: &Bytecode, id: TypeId) -> String {
    ty_text(m, id, 0)
}

impl Hooks for AicodeHooks {
    fn attribute(&self, m: &Bytecode, id: AttrId) -> Option<String> {
        let e = m.attributes.get(id.index())?;
        (e.custom && m.dialect_name(e.dialect) == ir::DIALECT).then(|| attr_text(m, id, 0))
    }

    fn ty(&self, m: &Bytecode, id: TypeId) -> Option<String> {
        let e = m.types.get(id.index())?;
        (e.custom && m.dialect_name(e.dialect) == ir::DIALECT).then(|| ty_text(m, id, 0))
    }

    fn properties(&self, m: &Bytecode, op: OpId) -> Option<Vec<(String, String)>> {
        let props = schema::properties(m, op).ok()?;
        Some(
            props
                .into_iter()
                .map(|(n, a)| (n.to_string(), attr_text(m, a, 0)))
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
        for op in m.ir.walk() {
            let mut props = schema::properties(m, op).unwrap_or_default();
            props.sort_by(|a, b| a.0.cmp(b.0));
            for (_, a) in props {
                collect_resources(m, a, 0, &mut seen, &mut order);
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

fn collect_resources(
    m: &Bytecode,
    a: AttrId,
    depth: usize,
    seen: &mut [bool],
    order: &mut Vec<usize>,
) {
    if depth > MAX_DEPTH {
        return;
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
        collect_resources(m, c, depth + 1, seen, order);
    }
}

/// The module as coreai-core prints it.
pub fn print(m: &Bytecode) -> String {
    anekit_mlir::print::print(m, &AicodeHooks)
}
