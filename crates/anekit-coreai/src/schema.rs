//! The properties of `aicode` operations: which attributes each op stores, in which order,
//! and which are optional.
//!
//! MLIR stores an operation's properties as the op's own encoding (here: one attribute
//! reference per property, in ODS order, optional ones with a presence flag). The order
//! and optionality below were read off files coreai-core wrote and modules it parsed from
//! text and wrote; ops not listed carry no properties in the files seen.

use anekit_mlir::dialect::PayloadReader;
use anekit_mlir::{AttrId, Bytecode, MlirError, OpId, Properties, Section};

/// One property slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The property's name (as printed).
    pub name: &'static str,
    /// Whether it may be absent (encoded with a presence flag).
    pub optional: bool,
}

const fn req(name: &'static str) -> Slot {
    Slot {
        name,
        optional: false,
    }
}

const fn opt(name: &'static str) -> Slot {
    Slot {
        name,
        optional: true,
    }
}

/// (op name without the `aicode.` prefix, its property slots in encoding order).
pub const SCHEMAS: &[(&str, &[Slot])] = &[
    // The first slot was always absent in the files seen; its name is not printed.
    ("serialization.asset", &[opt("_slot0"), opt("version")]),
    (
        "dataflow.graph_v1",
        &[
            req("argAttrs"),
            opt("compositeDecl"),
            req("externalize"),
            req("functionType"),
            req("isPrivate"),
            req("name"),
            req("noInline"),
            req("paramDecls"),
            req("resAttrs"),
        ],
    ),
    (
        "dataflow.invoke_v1",
        &[req("arg_attrs"), req("callee"), req("res_attrs")],
    ),
    ("primitive.constant_v1", &[req("value")]),
    ("primitive.gelu_v1", &[req("approximate")]),
    ("primitive.interpolate_v1", &[req("interpolation_mode")]),
    ("primitive.pad_v1", &[req("padding_mode")]),
    ("primitive.scan_v1", &[req("combiner")]),
    ("primitive.scatter_along_axis_v1", &[req("scatter_mode")]),
    ("primitive.scatter_nd_v1", &[req("scatter_mode")]),
];

/// The property slots of op `name` (without the dialect prefix).
pub fn slots(name: &str) -> Option<&'static [Slot]> {
    SCHEMAS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The present properties of `op`: `(name, attribute)` in slot order. `Ok(vec![])` for an
/// op without properties; an error for properties this crate cannot decode.
pub fn properties(m: &Bytecode, op: OpId) -> Result<Vec<(&'static str, AttrId)>, MlirError> {
    let o = m.ir.op(op);
    let Some(p) = o.properties else {
        return Ok(Vec::new());
    };
    let Properties::Encoded(pid) = p else {
        return Err(MlirError::unsupported(
            Section::Ir,
            format!("{}: properties stored as an attribute", m.name_of(op)),
        ));
    };
    let name = m.string(m.op_names[o.name.index()].name);
    let Some(slots) = slots(name) else {
        return Err(MlirError::unsupported(
            Section::PropertiesEntry(pid.0),
            format!("properties of {} (not in the op table)", m.name_of(op)),
        ));
    };
    let data = &m.properties[pid.index()];
    let mut r = PayloadReader::new(m, data, Section::PropertiesEntry(pid.0));
    let mut out = Vec::with_capacity(slots.len());
    for s in slots {
        if s.optional {
            if let Some(a) = r.optional_attr()? {
                out.push((s.name, a));
            }
        } else {
            out.push((s.name, r.attr()?));
        }
    }
    r.finish()?;
    Ok(out)
}

/// The property `name` of `op`, if present.
pub fn property(m: &Bytecode, op: OpId, name: &str) -> Result<Option<AttrId>, MlirError> {
    Ok(properties(m, op)?
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| a))
}
