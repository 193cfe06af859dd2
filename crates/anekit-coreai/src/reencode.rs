//! Re-encoding a module from its decoded form: every `aicode` attribute, type and property
//! is decoded ([`crate::ir`], [`crate::schema`]) and encoded again into fresh tables
//! ([`crate::ir::Encoder`]), the operation tree is rebuilt on them, and the result is
//! written with anekit-mlir's numbering (not the file's). The text of the result equals
//! the text of the input; that is how the encoders are checked against every file
//! coreai-core wrote.

use std::collections::HashMap;

use anekit_mlir::builder::Builder;
use anekit_mlir::dialect::PayloadWriter;
use anekit_mlir::{
    AttrId, Block, BlockArg, BlockId, Bytecode, Ir, MlirError, OpId, Operation, Properties, Region,
    RegionId, Section, TypeId, Value,
};

use crate::ir::{self, Attr, Encoder, Type};
use crate::schema;

struct Re<'m, 'b> {
    src: &'m Bytecode,
    enc: Encoder<'b>,
    attrs: HashMap<AttrId, AttrId>,
    types: HashMap<TypeId, TypeId>,
    /// Resource handles of the source → of the new module.
    handles: HashMap<usize, usize>,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

fn deep(depth: usize) -> Result<(), MlirError> {
    if depth > MAX_DEPTH {
        Err(MlirError::unsupported(
            Section::Builder,
            "attributes nested too deeply",
        ))
    } else {
        Ok(())
    }
}

impl Re<'_, '_> {
    fn ty(&mut self, t: TypeId) -> Result<TypeId, MlirError> {
        if let Some(&n) = self.types.get(&t) {
            return Ok(n);
        }
        self.depth += 1;
        deep(self.depth)?;
        let n = match ir::ty(self.src, t)? {
            Type::Scalar(s) => self.enc.scalar(s),
            Type::Tensor { shape, element } => {
                let e = self.ty(element)?;
                self.enc.tensor(&shape, e)
            }
            Type::Function { inputs, results } => {
                let i: Vec<TypeId> = inputs
                    .iter()
                    .map(|&t| self.ty(t))
                    .collect::<Result<_, _>>()?;
                let r: Vec<TypeId> = results
                    .iter()
                    .map(|&t| self.ty(t))
                    .collect::<Result<_, _>>()?;
                self.enc.function(&i, &r)
            }
            Type::Handle(inner) => {
                let i = self.ty(inner)?;
                self.enc.handle(i)
            }
            Type::Token => self.enc.token(),
            Type::ParamSymbol => self.enc.param_symbol(),
            Type::Unknown(c) => {
                return Err(MlirError::unsupported(
                    Section::Type(t.0),
                    format!("type code {c}"),
                ));
            }
        };
        self.depth -= 1;
        self.types.insert(t, n);
        Ok(n)
    }

    fn attr(&mut self, a: AttrId) -> Result<AttrId, MlirError> {
        if let Some(&n) = self.attrs.get(&a) {
            return Ok(n);
        }
        self.depth += 1;
        deep(self.depth)?;
        let n = match ir::attr(self.src, a)? {
            Attr::String(s) => self.enc.string(&s),
            Attr::Integer {
                width,
                signed,
                value,
            } => {
                if width > 64 {
                    return Err(MlirError::unsupported(
                        Section::Attribute(a.0),
                        "integers over 64 bits",
                    ));
                }
                self.enc.integer(width, signed, value.as_u64())
            }
            Attr::Float { width, bits } => self.enc.float(width, bits.as_u64()),
            Attr::Type(t) => {
                let t = self.ty(t)?;
                self.enc.type_attr(t)
            }
            Attr::Array(items) => {
                let v = self.attrs_of(&items)?;
                self.enc.array(&v)
            }
            Attr::Dictionary(items) => {
                let v = self.attrs_of(&items)?;
                self.enc.dictionary(&v)
            }
            Attr::Opaque { name, values } => {
                let v = self.attrs_of(&values)?;
                self.enc.opaque(&name, &v)
            }
            Attr::DenseElements { splat, data } => self.enc.dense(splat, &data),
            Attr::DenseResource(h) => {
                let nh = self.resource(h)?;
                self.enc.dense_resource(nh)
            }
            Attr::ParamConstant { value, ty } => {
                let v = self.attr(value)?;
                let t = self.ty(ty)?;
                self.enc.param_constant(v, t)
            }
            Attr::SymbolRef(path) => {
                let ids: Vec<_> = path.iter().map(|p| self.enc.b.string(p)).collect();
                let mut w = PayloadWriter::new();
                w.varint(14).varint(ids.len() as u64);
                for s in ids {
                    w.string(s);
                }
                self.enc.b.attr(self.enc.dialect, true, w.finish())
            }
            Attr::Enum { kind, value } => self.enc.enumeration(kind, value),
            Attr::Unit => self.enc.unit(),
            // Debug info is copied as encoded, with its references re-mapped by kind.
            Attr::DebugInfo(_) | Attr::Unknown(_) => self.copy_raw(a)?,
        };
        self.depth -= 1;
        self.attrs.insert(a, n);
        Ok(n)
    }

    fn attrs_of(&mut self, items: &[AttrId]) -> Result<Vec<AttrId>, MlirError> {
        items.iter().map(|&i| self.attr(i)).collect()
    }

    fn resource(&mut self, h: usize) -> Result<usize, MlirError> {
        if let Some(&n) = self.handles.get(&h) {
            return Ok(n);
        }
        let (_, e) = self.src.dialect_resource(h).ok_or_else(|| {
            MlirError::malformed(Section::Resource, 0, format!("no resource {h}"))
        })?;
        let key = self.src.string(e.key).to_string();
        let n = match &e.value {
            anekit_mlir::ResourceValue::Blob { alignment, data } => {
                self.enc
                    .b
                    .dialect_blob(self.enc.dialect, &key, *alignment, data.clone())
            }
            _ => {
                return Err(MlirError::unsupported(
                    Section::Resource,
                    "a non-blob dialect resource",
                ));
            }
        };
        self.handles.insert(h, n);
        Ok(n)
    }

    /// Copy a debug-info attribute: its payload is a code followed by references whose
    /// kinds are known per code (see `docs/coreai.md`).
    fn copy_raw(&mut self, a: AttrId) -> Result<AttrId, MlirError> {
        use anekit_mlir::dialect::PayloadReader;
        let entry = &self.src.attributes[a.index()];
        let mut r = PayloadReader::new(self.src, &entry.data, Section::Attribute(a.0));
        let mut w = PayloadWriter::new();
        let code = r.varint()?;
        w.varint(code);
        match code {
            // file: filename, directory, sha256 (strings)
            30 => {
                for _ in 0..3 {
                    let s = r.string()?.to_string();
                    let id = self.enc.b.string(&s);
                    w.string(id);
                }
            }
            // source range: file, then four varints
            31 => {
                let f = r.attr()?;
                let f = self.attr(f)?;
                w.attr(f);
                for _ in 0..4 {
                    let v = r.varint()?;
                    w.varint(v);
                }
            }
            // metadata value: one attribute
            33 => {
                let v = r.attr()?;
                let v = self.attr(v)?;
                w.attr(v);
            }
            // metadata entry: key string, value attribute
            35 => {
                let s = r.string()?.to_string();
                let id = self.enc.b.string(&s);
                w.string(id);
                let v = r.attr()?;
                let v = self.attr(v)?;
                w.attr(v);
            }
            // location: source, scope, a list of attributes (the call chain when inlined),
            // a list of metadata entries
            40 => {
                let src = r.attr()?;
                let src = self.attr(src)?;
                let scope = r.attr()?;
                let scope = self.attr(scope)?;
                w.attr(src).attr(scope);
                for _ in 0..2 {
                    let n = r.count(1, "location list item")?;
                    w.varint(n as u64);
                    for _ in 0..n {
                        let e = r.attr()?;
                        let e = self.attr(e)?;
                        w.attr(e);
                    }
                }
            }
            c => {
                return Err(MlirError::unsupported(
                    Section::Attribute(a.0),
                    format!("re-encoding attribute code {c}"),
                ));
            }
        }
        r.finish()?;
        Ok(self.enc.b.attr(self.enc.dialect, true, w.finish()))
    }
}

/// Decode every attribute, type and property of `src` and encode the module again
/// (`producer` written in the header).
pub fn reencode(src: &Bytecode, producer: &str) -> Result<Bytecode, MlirError> {
    let mut b = Builder::new(src.version, producer);
    let version = src
        .find_dialect(ir::DIALECT)
        .and_then(|d| src.dialects[d.index()].version.clone());
    let enc = Encoder::new(&mut b, version);
    let mut re = Re {
        src,
        enc,
        attrs: HashMap::new(),
        types: HashMap::new(),
        handles: HashMap::new(),
        depth: 0,
    };
    let mut ir = Ir::default();
    let mut blocks: HashMap<BlockId, BlockId> = HashMap::new();
    let mut block_args: HashMap<BlockId, Vec<BlockArg>> = HashMap::new();
    let mut ops: HashMap<OpId, OpId> = HashMap::new();
    // Ops are created first with placeholder operands, then operands are mapped (values
    // may be used before their definition in graph regions).
    let order = src.ir.walk();
    for &op in &order {
        let o = src.ir.op(op);
        let name = src.string(src.op_names[o.name.index()].name).to_string();
        let dialect = src.dialect_name(src.op_names[o.name.index()].dialect);
        if dialect != ir::DIALECT {
            return Err(MlirError::unsupported(
                Section::Ir,
                format!("an op of dialect {dialect}"),
            ));
        }
        let name_id = re.enc.b.op_name(re.enc.dialect, &name, true);
        let location = re.attr(o.location)?;
        let attributes = o.attributes.map(|a| re.attr(a)).transpose()?;
        let properties = match o.properties {
            None => None,
            Some(Properties::Attribute(_)) => {
                return Err(MlirError::unsupported(
                    Section::Ir,
                    "properties stored as an attribute",
                ));
            }
            Some(Properties::Encoded(_)) => {
                let slots = schema::slots(&name).ok_or_else(|| {
                    MlirError::unsupported(Section::Ir, format!("properties of aicode.{name}"))
                })?;
                let present = schema::properties(src, op)?;
                let mut w = PayloadWriter::new();
                for s in slots {
                    let v = present.iter().find(|(n, _)| *n == s.name).map(|(_, a)| *a);
                    let v = v.map(|a| re.attr(a)).transpose()?;
                    if s.optional {
                        w.optional_attr(v);
                    } else {
                        w.attr(v.ok_or_else(|| {
                            MlirError::malformed(
                                Section::Ir,
                                0,
                                format!("aicode.{name}: {} missing", s.name),
                            )
                        })?);
                    }
                }
                Some(Properties::Encoded(re.enc.b.properties(w.finish())))
            }
        };
        let result_types = o
            .result_types
            .iter()
            .map(|&t| re.ty(t))
            .collect::<Result<_, _>>()?;
        let id = ir.push_op(Operation {
            name: name_id,
            location,
            attributes,
            properties,
            result_types,
            operands: Vec::new(),
            successors: Vec::new(),
            use_list_orders: o.use_list_orders.clone(),
            regions: Vec::new(),
            isolated: o.isolated,
        });
        ops.insert(op, id);
        for &r in &o.regions {
            for &blk in &src.ir.region(r).blocks {
                let sb = src.ir.block(blk);
                let args = sb
                    .args
                    .iter()
                    .map(|a| {
                        Ok(BlockArg {
                            ty: re.ty(a.ty)?,
                            location: a.location.map(|l| re.attr(l)).transpose()?,
                        })
                    })
                    .collect::<Result<Vec<_>, MlirError>>()?;
                block_args.insert(blk, args);
            }
        }
    }
    // Blocks and regions keep the numbering of `src` (the order in which the reader
    // meets them: the regions of a control-flow op and the isolated regions of the ops in
    // them interleave), so that the module read back from what is written has the same
    // ids.
    let mut old_blocks: Vec<BlockId> = block_args.keys().copied().collect();
    old_blocks.sort_by_key(|b| b.0);
    for old in old_blocks {
        let args = block_args.remove(&old).unwrap_or_default();
        let nb = ir.push_block(Block {
            args,
            arg_use_list_orders: src.ir.block(old).arg_use_list_orders.clone(),
            ops: Vec::new(),
        });
        blocks.insert(old, nb);
    }
    let mut old_regions: Vec<RegionId> = order
        .iter()
        .flat_map(|&op| src.ir.op(op).regions.iter().copied())
        .collect();
    old_regions.sort_by_key(|r| r.0);
    old_regions.dedup();
    let mut regions: HashMap<RegionId, RegionId> = HashMap::new();
    for old in old_regions {
        let region = Region {
            blocks: src
                .ir
                .region(old)
                .blocks
                .iter()
                .filter_map(|b| blocks.get(b).copied())
                .collect(),
        };
        regions.insert(old, ir.push_region(region));
    }
    for &op in &order {
        let new = ops[&op];
        ir.ops[new.index()].regions = src
            .ir
            .op(op)
            .regions
            .iter()
            .filter_map(|r| regions.get(r).copied())
            .collect();
    }
    let map_value = |v: &Value| -> Option<Value> {
        Some(match *v {
            Value::Arg { block, index } => Value::Arg {
                block: *blocks.get(&block)?,
                index,
            },
            Value::Result { op, index } => Value::Result {
                op: *ops.get(&op)?,
                index,
            },
        })
    };
    for &op in &order {
        let o = src.ir.op(op);
        let new = ops[&op];
        let operands = o
            .operands
            .iter()
            .map(|v| {
                map_value(v)
                    .ok_or_else(|| MlirError::malformed(Section::Ir, 0, "operand not found"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let successors = o
            .successors
            .iter()
            .map(|b| {
                blocks
                    .get(b)
                    .copied()
                    .ok_or_else(|| MlirError::malformed(Section::Ir, 0, "successor not found"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        ir.ops[new.index()].operands = operands;
        ir.ops[new.index()].successors = successors;
    }
    for (old, new) in &blocks {
        let ops_of: Vec<OpId> = src.ir.block(*old).ops.iter().map(|o| ops[o]).collect();
        ir.blocks[new.index()].ops = ops_of;
    }
    ir.top = src.ir.top.iter().map(|o| ops[o]).collect();
    drop(re);
    let mut out = b.finish();
    out.ir = ir;
    Ok(out)
}
