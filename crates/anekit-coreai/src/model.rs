//! The structure of a Core AI module: its asset op, its graphs (functions) with their
//! named inputs and outputs, composite declarations, and summaries for `inspect`.

use std::collections::BTreeMap;

use anekit_mlir::{AttrId, Bytecode, MlirError, OpId, RegionId, Section, TypeId};

use crate::ir::{self, Attr, Type};
use crate::schema;

/// A named input or output of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// The name (`aicode.name`), or `input_N` / `output_N` without one.
    pub name: String,
    /// Its type.
    pub ty: TypeId,
}

/// A value of a composite declaration's attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclValue {
    /// Integers.
    Ints(Vec<i64>),
    /// Floats.
    Floats(Vec<f64>),
    /// Strings.
    Strings(Vec<String>),
    /// Something else.
    Other,
}

impl DeclValue {
    /// The first number as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            DeclValue::Floats(v) => v.first().copied(),
            DeclValue::Ints(v) => v.first().map(|&i| i as f64),
            _ => None,
        }
    }

    /// The integers.
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            DeclValue::Ints(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// A `compositeDecl`: the graph implements a named composite op (`layer_norm`,
/// `scaled_dot_product_attention`, ...) with these attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeDecl {
    /// The composite's name.
    pub name: String,
    /// Input names.
    pub inputs: Vec<String>,
    /// Output names.
    pub outputs: Vec<String>,
    /// `op_attrs`.
    pub attrs: BTreeMap<String, DeclValue>,
}

/// A `dataflow.graph_v1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The op.
    pub op: OpId,
    /// Its symbol name.
    pub name: String,
    /// Private graphs are only invoked (composites); public ones are entry points.
    pub private: bool,
    /// The composite it implements, if declared.
    pub composite: Option<CompositeDecl>,
    /// Inputs.
    pub inputs: Vec<Port>,
    /// Outputs.
    pub outputs: Vec<Port>,
    /// The body.
    pub body: RegionId,
}

fn string(m: &Bytecode, a: AttrId) -> Option<String> {
    match ir::attr(m, a).ok()? {
        Attr::String(s) => Some(s),
        _ => None,
    }
}

fn int(m: &Bytecode, a: AttrId) -> Option<i64> {
    match ir::attr(m, a).ok()? {
        Attr::Integer { signed, value, .. } => Some(if signed {
            value.as_i64()
        } else {
            value.as_u64() as i64
        }),
        _ => None,
    }
}

fn list(m: &Bytecode, a: AttrId) -> Vec<AttrId> {
    match ir::attr(m, a) {
        Ok(Attr::Array(v)) | Ok(Attr::Dictionary(v)) => v,
        _ => Vec::new(),
    }
}

/// The value of entry `key` in a list of opaque `<"key" = [...]>` attributes.
fn opaque_entry(m: &Bytecode, entries: &[AttrId], key: &str) -> Option<Vec<AttrId>> {
    entries.iter().find_map(|&e| match ir::attr(m, e).ok()? {
        Attr::Opaque { name, values } if name == key => Some(values),
        _ => None,
    })
}

/// The `aicode.name` of each entry of an `argAttrs`/`resAttrs` array.
fn port_names(m: &Bytecode, attrs: Option<AttrId>, count: usize, prefix: &str) -> Vec<String> {
    let per: Vec<AttrId> = attrs.map(|a| list(m, a)).unwrap_or_default();
    (0..count)
        .map(|i| {
            per.get(i)
                .and_then(|&a| opaque_entry(m, &list(m, a), "aicode.name"))
                .and_then(|v| v.first().and_then(|&s| string(m, s)))
                .unwrap_or_else(|| format!("{prefix}_{i}"))
        })
        .collect()
}

fn decl_value(m: &Bytecode, a: AttrId) -> DeclValue {
    match ir::attr(m, a) {
        Ok(Attr::Integer { .. }) => DeclValue::Ints(int(m, a).into_iter().collect()),
        Ok(Attr::Float { width, bits }) => {
            let v = match crate::float::FloatFormat::for_width(width) {
                Some(f) => f.to_f64(bits.as_u64()),
                None => f64::NAN,
            };
            DeclValue::Floats(vec![v])
        }
        Ok(Attr::String(s)) => DeclValue::Strings(vec![s]),
        Ok(Attr::Array(items)) => {
            let ints: Option<Vec<i64>> = items.iter().map(|&i| int(m, i)).collect();
            if let Some(v) = ints {
                return DeclValue::Ints(v);
            }
            let strs: Option<Vec<String>> = items.iter().map(|&i| string(m, i)).collect();
            strs.map_or(DeclValue::Other, DeclValue::Strings)
        }
        _ => DeclValue::Other,
    }
}

fn composite_decl(m: &Bytecode, a: AttrId) -> Option<CompositeDecl> {
    let Attr::Opaque { name, values } = ir::attr(m, a).ok()? else {
        return None;
    };
    let names = |key: &str| -> Vec<String> {
        opaque_entry(m, &values, key)
            .and_then(|v| v.first().copied())
            .map(|arr| {
                list(m, arr)
                    .into_iter()
                    .filter_map(|s| string(m, s))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut attrs = BTreeMap::new();
    if let Some(v) = opaque_entry(m, &values, "op_attrs")
        && let Some(&dict) = v.first()
    {
        for e in list(m, dict) {
            if let Ok(Attr::Opaque { name, values }) = ir::attr(m, e) {
                let value = values
                    .first()
                    .map_or(DeclValue::Other, |&v| decl_value(m, v));
                attrs.insert(name, value);
            }
        }
    }
    Some(CompositeDecl {
        name,
        inputs: names("input_names"),
        outputs: names("output_names"),
        attrs,
    })
}

/// The version the asset declares (`serialization.asset`'s `version`: the dialect version
/// it needs, a date like 20260317).
pub fn asset_version(m: &Bytecode) -> Option<u64> {
    let op = *m.ir.top.first()?;
    let a = schema::property(m, op, "version").ok()??;
    int(m, a).map(|v| v as u64)
}

/// Every `graph_v1` of the module, in file order.
pub fn graphs(m: &Bytecode) -> Result<Vec<Graph>, MlirError> {
    let mut out = Vec::new();
    for op in m.ir.walk() {
        if m.name_of(op) != "aicode.dataflow.graph_v1" {
            continue;
        }
        let props = schema::properties(m, op)?;
        let get = |n: &str| props.iter().find(|(k, _)| *k == n).map(|(_, a)| *a);
        let name = get("name")
            .and_then(|a| string(m, a))
            .ok_or_else(|| MlirError::malformed(Section::Ir, 0, "a graph_v1 without a name"))?;
        let private = get("isPrivate").and_then(|a| int(m, a)).unwrap_or(0) != 0;
        let o = m.ir.op(op);
        let body = *o.regions.first().ok_or_else(|| {
            MlirError::malformed(Section::Ir, 0, format!("graph {name} has no body"))
        })?;
        let entry = m.ir.region(body).blocks.first().copied();
        let arg_types: Vec<TypeId> = entry
            .map(|b| m.ir.block(b).args.iter().map(|a| a.ty).collect())
            .unwrap_or_default();
        let result_types: Vec<TypeId> = match get("functionType").map(|a| ir::attr(m, a)) {
            Some(Ok(Attr::Type(t))) => match ir::ty(m, t)? {
                Type::Function { results, .. } => results,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let in_names = port_names(m, get("argAttrs"), arg_types.len(), "input");
        let out_names = port_names(m, get("resAttrs"), result_types.len(), "output");
        out.push(Graph {
            op,
            name,
            private,
            composite: get("compositeDecl").and_then(|a| composite_decl(m, a)),
            inputs: in_names
                .into_iter()
                .zip(arg_types)
                .map(|(name, ty)| Port { name, ty })
                .collect(),
            outputs: out_names
                .into_iter()
                .zip(result_types)
                .map(|(name, ty)| Port { name, ty })
                .collect(),
            body,
        });
    }
    Ok(out)
}

/// How many times each op name occurs, nested regions included.
pub fn op_counts(m: &Bytecode) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for op in m.ir.walk() {
        *c.entry(m.name_of(op)).or_default() += 1;
    }
    c
}
