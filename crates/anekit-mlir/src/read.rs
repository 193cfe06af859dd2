//! Reading a bytecode file into a [`Bytecode`] (MLIR's `BytecodeReader.cpp` describes the
//! encoding; this is an independent implementation of the same format).

use std::collections::HashMap;

use bytes::Bytes;

use crate::encoding::{RawSection, Reader};
use crate::error::{MlirError, Result, Section};
use crate::module::{
    AttrId, Block, BlockArg, BlockId, Bytecode, Dialect, DialectId, Entry, Ir, MAX_VERSION, OpId,
    OpName, OpNameId, Operation, PropId, Properties, Region, RegionId, ResourceEntry,
    ResourceGroup, ResourceOwner, ResourceValue, StringId, TypeId, UseListOrder, Value, version,
};

/// The magic number at the start of every bytecode file: `ML\xEFR`.
pub const MAGIC: [u8; 4] = *b"ML\xEFR";

/// The deepest nesting of regions accepted (Core AI modules nest about five levels: asset,
/// graph, composite, nested composite, reduction; the limit keeps hostile input from
/// exhausting the stack of a 2 MiB thread).
pub const MAX_REGION_DEPTH: usize = 64;

/// Whether `data` starts with the bytecode magic number.
pub fn is_bytecode(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Parse a whole bytecode file. `data` is kept (sliced, not copied) for attribute, type,
/// property and resource payloads: pass a memory map wrapped in [`Bytes::from_owner`] to
/// keep weights out of the heap.
pub fn read(data: Bytes) -> Result<Bytecode> {
    let buf: &[u8] = &data;
    let mut r = Reader::new(buf, 0, Section::Header);
    let magic = r
        .bytes(4)
        .map_err(|_| r.error("file too short for the magic number"))?;
    if magic != MAGIC {
        return Err(MlirError::malformed(
            Section::Header,
            0,
            "not MLIR bytecode (the magic number ML\\xEFR is missing)",
        ));
    }
    let version = r.varint()?;
    if version > MAX_VERSION {
        return Err(MlirError::unsupported(
            Section::Header,
            format!("bytecode version {version} (this reader knows up to {MAX_VERSION})"),
        ));
    }
    let producer = std::str::from_utf8(r.cstr()?)
        .map_err(|_| r.error("producer string is not UTF-8"))?
        .to_string();

    let mut sections: [Option<RawSection<'_>>; 9] = [None; 9];
    let mut order = Vec::new();
    while !r.is_empty() {
        let at = r.offset();
        let s = r.section_data()?;
        let Some(slot) = sections.get_mut(usize::from(s.id)) else {
            return Err(MlirError::malformed(
                Section::Header,
                at,
                format!("unknown section id {}", s.id),
            ));
        };
        if slot.is_some() {
            return Err(MlirError::malformed(
                Section::Header,
                at,
                format!("duplicate section {}", s.id),
            ));
        }
        *slot = Some(s);
        order.push(s.id);
    }
    let required = |id: u8| -> Result<RawSection<'_>> {
        sections[usize::from(id)].ok_or_else(|| {
            MlirError::malformed(
                Section::Header,
                buf.len(),
                format!(
                    "missing {}",
                    Section::from_id(id).map_or("section".into(), |s| s.to_string())
                ),
            )
        })
    };
    let string_s = required(0)?;
    let dialect_s = required(1)?;
    let attr_s = required(2)?;
    let attr_off_s = required(3)?;
    let ir_s = required(4)?;
    let props_s = if version >= version::NATIVE_PROPERTIES {
        Some(required(8)?)
    } else {
        sections[8]
    };
    if sections[7].is_some() {
        return Err(MlirError::unsupported(
            Section::DialectVersions,
            "a top-level dialect version section",
        ));
    }

    // Every payload is a sub-slice of `buf`; slice_ref keeps the owner alive without
    // copying.
    let slice = |d: &[u8]| -> Bytes { data.slice_ref(d) };

    let strings = read_strings(&string_s)?;
    let (dialects, op_names) = read_dialects(&dialect_s, version, &strings, &slice)?;
    let (attributes, types) = read_attr_types(&attr_off_s, &attr_s, dialects.len(), &slice)?;
    let resources = match (sections[5], sections[6]) {
        (Some(res), Some(off)) => read_resources(&res, &off, &strings, dialects.len(), &slice)?,
        (None, None) => Vec::new(),
        (Some(_), None) => {
            return Err(MlirError::malformed(
                Section::ResourceOffset,
                buf.len(),
                "resource section without its offset section",
            ));
        }
        (None, Some(_)) => {
            return Err(MlirError::malformed(
                Section::Resource,
                buf.len(),
                "resource offset section without its resource section",
            ));
        }
    };
    let properties = match props_s {
        Some(p) => read_properties(&p, &slice)?,
        None => Vec::new(),
    };

    let mut module = Bytecode {
        version,
        producer,
        strings,
        dialects,
        op_names,
        attributes,
        types,
        properties,
        resources,
        ir: Ir::default(),
        section_order: order,
    };
    let mut ir_reader = IrReader {
        module: &module,
        ir: Ir::default(),
        scopes: Vec::new(),
        depth: 0,
    };
    let mut rd = Reader::new(ir_s.data, ir_s.offset, Section::Ir);
    ir_reader.scopes.push(Scope::default());
    let top = ir_reader.read_top(&mut rd)?;
    if !rd.is_empty() {
        return Err(rd.error("trailing bytes after the top-level operations"));
    }
    let mut ir = ir_reader.ir;
    ir.top = top;
    module.ir = ir;
    Ok(module)
}

fn read_strings(s: &RawSection<'_>) -> Result<Vec<String>> {
    let mut r = Reader::new(s.data, s.offset, Section::String);
    let n = r.count(1, "string")?;
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        lens.push(r.varint()?);
    }
    let blob_start = r.offset() - s.offset;
    let blob = r.rest();
    // Lengths are stored in reverse order; the strings fill the data from its end.
    let mut strings = vec![String::new(); n];
    let mut end = blob.len();
    for (i, &len) in lens.iter().enumerate() {
        let idx = n - 1 - i;
        let len_usize = usize::try_from(len).ok().filter(|&l| l >= 1 && l <= end);
        let Some(len) = len_usize else {
            return Err(MlirError::malformed(
                Section::String,
                s.offset + blob_start,
                format!("string #{idx}: length {len} does not fit the {end} bytes left"),
            ));
        };
        let start = end - len;
        let bytes = &blob[start..end];
        let (text, nul) = bytes.split_at(len - 1);
        if nul != [0] {
            return Err(MlirError::malformed(
                Section::String,
                s.offset + blob_start + end - 1,
                format!("string #{idx} is not NUL-terminated"),
            ));
        }
        // The writer refuses interior NUL bytes (MLIR's own reader would cut such a name at
        // the NUL when it becomes an identifier), so the reader refuses them too.
        if let Some(at) = text.iter().position(|&b| b == 0) {
            return Err(MlirError::malformed(
                Section::String,
                s.offset + blob_start + start + at,
                format!("string #{idx} contains a NUL byte before its end"),
            ));
        }
        strings[idx] = std::str::from_utf8(text)
            .map_err(|_| {
                MlirError::malformed(
                    Section::String,
                    s.offset + blob_start + start,
                    format!("string #{idx} is not UTF-8"),
                )
            })?
            .to_string();
        end = start;
    }
    if end != 0 {
        return Err(MlirError::malformed(
            Section::String,
            s.offset + blob_start,
            format!("{end} bytes of string data belong to no string"),
        ));
    }
    Ok(strings)
}

type Slicer<'a> = dyn Fn(&[u8]) -> Bytes + 'a;

fn read_dialects(
    s: &RawSection<'_>,
    version: u64,
    strings: &[String],
    slice: &Slicer<'_>,
) -> Result<(Vec<Dialect>, Vec<OpName>)> {
    let mut r = Reader::new(s.data, s.offset, Section::Dialect);
    let n = r.count(1, "dialect")?;
    let mut dialects = Vec::with_capacity(n);
    for _ in 0..n {
        if version < version::DIALECT_VERSIONING {
            let name = StringId(r.index(strings.len(), "dialect name string")? as u32);
            dialects.push(Dialect {
                name,
                version: None,
            });
            continue;
        }
        let at = r.offset();
        let (name, versioned) = r.varint_with_flag()?;
        let name = usize::try_from(name)
            .ok()
            .filter(|&i| i < strings.len())
            .ok_or_else(|| {
                MlirError::malformed(
                    Section::Dialect,
                    at,
                    format!("dialect name string {name} out of range"),
                )
            })?;
        let version_blob = if versioned {
            let vs = r.section_data()?;
            if vs.id != 7 {
                return Err(MlirError::malformed(
                    Section::Dialect,
                    vs.offset,
                    format!("expected a dialect version section (7), found {}", vs.id),
                ));
            }
            Some(slice(vs.data))
        } else {
            None
        };
        dialects.push(Dialect {
            name: StringId(name as u32),
            version: version_blob,
        });
    }
    if version >= version::ELIDE_UNKNOWN_BLOCK_ARG_LOCATION {
        // The number of op names (a capacity hint; the groups below are authoritative).
        r.varint()?;
    }
    let mut op_names = Vec::new();
    while !r.is_empty() {
        let dialect = DialectId(r.index(dialects.len(), "dialect")? as u32);
        let count = r.count(1, "op name")?;
        for _ in 0..count {
            let at = r.offset();
            let (name, registered) = if version < version::NATIVE_PROPERTIES {
                (r.varint()?, None)
            } else {
                let (n, f) = r.varint_with_flag()?;
                (n, Some(f))
            };
            let name = usize::try_from(name)
                .ok()
                .filter(|&i| i < strings.len())
                .ok_or_else(|| {
                    MlirError::malformed(
                        Section::Dialect,
                        at,
                        format!("op name string {name} out of range"),
                    )
                })?;
            op_names.push(OpName {
                dialect,
                name: StringId(name as u32),
                registered,
            });
        }
    }
    Ok((dialects, op_names))
}

fn read_attr_types(
    off: &RawSection<'_>,
    data: &RawSection<'_>,
    num_dialects: usize,
    slice: &Slicer<'_>,
) -> Result<(Vec<Entry>, Vec<Entry>)> {
    let mut r = Reader::new(off.data, off.offset, Section::AttrTypeOffset);
    let num_attrs = r.count(1, "attribute")?;
    let num_types = r.count(1, "type")?;
    if num_attrs.saturating_add(num_types) > off.data.len() {
        return Err(r.error(format!(
            "{num_attrs} attributes and {num_types} types cannot fit the offset section"
        )));
    }
    let mut offset = 0usize;
    let mut read_entries = |count: usize, what: &str| -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let dialect = DialectId(r.index(num_dialects, "dialect")? as u32);
            let n = r.count(1, what)?;
            if n > count - out.len() {
                return Err(r.error(format!(
                    "a group of {n} {what}s overruns the {count} declared"
                )));
            }
            for _ in 0..n {
                let at = r.offset();
                let (size, custom) = r.varint_with_flag()?;
                let end = usize::try_from(size)
                    .ok()
                    .and_then(|s| offset.checked_add(s))
                    .filter(|&e| e <= data.data.len())
                    .ok_or_else(|| {
                        MlirError::malformed(
                            Section::AttrTypeOffset,
                            at,
                            format!(
                                "{what} #{} of {size} bytes runs past the end of the attribute/type section",
                                out.len()
                            ),
                        )
                    })?;
                let mut bytes = &data.data[offset..end];
                if !custom {
                    // The textual form is NUL-terminated.
                    match bytes.split_last() {
                        Some((0, text)) if !text.contains(&0) => bytes = text,
                        _ => {
                            return Err(MlirError::malformed(
                                Section::AttrType,
                                data.offset + offset,
                                format!(
                                    "textual {what} #{} is not NUL-terminated or holds a NUL byte",
                                    out.len()
                                ),
                            ));
                        }
                    }
                }
                out.push(Entry {
                    dialect,
                    custom,
                    data: slice(bytes),
                });
                offset = end;
            }
        }
        Ok(out)
    };
    let attrs = read_entries(num_attrs, "attribute")?;
    let types = read_entries(num_types, "type")?;
    if !r.is_empty() {
        return Err(r.error("trailing bytes in the attribute/type offset section"));
    }
    if offset != data.data.len() {
        return Err(MlirError::malformed(
            Section::AttrType,
            data.offset + offset,
            "bytes that belong to no attribute or type",
        ));
    }
    Ok((attrs, types))
}

fn read_resources(
    res: &RawSection<'_>,
    off: &RawSection<'_>,
    strings: &[String],
    num_dialects: usize,
    slice: &Slicer<'_>,
) -> Result<Vec<ResourceGroup>> {
    let mut o = Reader::new(off.data, off.offset, Section::ResourceOffset);
    let mut d = Reader::new(res.data, res.offset, Section::Resource);
    let num_external = o.count(1, "external resource group")?;
    let mut groups = Vec::new();
    let mut read_group = |o: &mut Reader<'_>, owner: ResourceOwner| -> Result<ResourceGroup> {
        let n = o.count(3, "resource")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let key = StringId(o.index(strings.len(), "resource key string")? as u32);
            let size = o.varint()?;
            let kind_at = o.offset();
            let kind = o.byte()?;
            let entry_at = d.offset();
            let bytes = d.bytes(size).map_err(|_| {
                MlirError::malformed(
                    Section::ResourceOffset,
                    kind_at,
                    format!("resource of {size} bytes runs past the end of the resource section"),
                )
            })?;
            let mut e = Reader::new(bytes, entry_at, Section::Resource);
            let value = match kind {
                0 => {
                    let alignment = e.varint()?;
                    let len = e.varint()?;
                    e.align_to(alignment)?;
                    let blob = e.bytes(len)?;
                    ResourceValue::Blob {
                        alignment,
                        data: slice(blob),
                    }
                }
                1 => ResourceValue::Bool(e.byte()? != 0),
                2 => ResourceValue::String(StringId(
                    e.index(strings.len(), "resource string")? as u32
                )),
                k => {
                    return Err(MlirError::malformed(
                        Section::ResourceOffset,
                        kind_at,
                        format!("unknown resource kind {k}"),
                    ));
                }
            };
            if !e.is_empty() {
                return Err(e.error("trailing bytes in a resource entry"));
            }
            entries.push(ResourceEntry { key, value });
        }
        Ok(ResourceGroup { owner, entries })
    };
    for _ in 0..num_external {
        let key = StringId(o.index(strings.len(), "resource provider string")? as u32);
        groups.push(read_group(&mut o, ResourceOwner::External(key))?);
    }
    while !o.is_empty() {
        let dialect = DialectId(o.index(num_dialects, "dialect")? as u32);
        groups.push(read_group(&mut o, ResourceOwner::Dialect(dialect))?);
    }
    if !d.is_empty() {
        return Err(d.error("resource bytes that belong to no resource"));
    }
    Ok(groups)
}

fn read_properties(s: &RawSection<'_>, slice: &Slicer<'_>) -> Result<Vec<Bytes>> {
    if s.data.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(s.data, s.offset, Section::Properties);
    let n = r.count(1, "properties entry")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.varint()?;
        out.push(slice(r.bytes(len)?));
    }
    if !r.is_empty() {
        return Err(r.error("trailing bytes in the properties section"));
    }
    Ok(out)
}

/// One isolated value scope: the value slots of the regions being read in it.
#[derive(Default)]
struct Scope {
    values: Vec<Option<Value>>,
    /// For each region pushed: the next slot to define.
    next: Vec<usize>,
    /// Operands that referred to a slot before it was defined: slot → (op, operand).
    pending: HashMap<usize, Vec<(OpId, usize)>>,
}

struct IrReader<'m> {
    module: &'m Bytecode,
    ir: Ir,
    scopes: Vec<Scope>,
    depth: usize,
}

const PENDING: Value = Value::Result {
    op: OpId(u32::MAX),
    index: u32::MAX,
};

impl IrReader<'_> {
    fn scope(&mut self) -> &mut Scope {
        // `scopes` is never empty while reading (the top scope is pushed first).
        let n = self.scopes.len();
        &mut self.scopes[n - 1]
    }

    fn read_top(&mut self, r: &mut Reader<'_>) -> Result<Vec<OpId>> {
        let (num_ops, has_args) = r.varint_with_flag()?;
        if has_args {
            return Err(r.error("the top-level block has arguments"));
        }
        let n = bounded(r, num_ops, 3, "top-level operation")?;
        // The top level defines no values (MLIR reads it with zero value slots).
        self.scope().next.push(0);
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(self.read_op(r, &[])?);
        }
        self.pop_region(r, 0)?;
        Ok(ops)
    }

    fn define(&mut self, r: &Reader<'_>, value: Value) -> Result<()> {
        let scope = self.scope();
        let Some(next) = scope.next.last_mut() else {
            return Err(r.error("value defined outside a region"));
        };
        let slot = *next;
        if slot >= scope.values.len() {
            return Err(r.error(format!(
                "more values defined than the region declared ({})",
                scope.values.len()
            )));
        }
        *next += 1;
        scope.values[slot] = Some(value);
        if let Some(users) = scope.pending.remove(&slot) {
            for (op, i) in users {
                self.ir.ops[op.index()].operands[i] = value;
            }
        }
        Ok(())
    }

    fn pop_region(&mut self, r: &Reader<'_>, num_values: usize) -> Result<()> {
        let scope = self.scope();
        scope.next.pop();
        let keep = scope.values.len().saturating_sub(num_values);
        if let Some(slot) = scope.pending.keys().copied().find(|&s| s >= keep) {
            return Err(r.error(format!(
                "an operand refers to value {slot}, which its region never defines"
            )));
        }
        scope.values.truncate(keep);
        Ok(())
    }

    fn read_op(&mut self, r: &mut Reader<'_>, blocks: &[BlockId]) -> Result<OpId> {
        let m = self.module;
        let op_at = r.offset();
        let name = OpNameId(r.index(m.op_names.len(), "operation name")? as u32);
        let mask = r.byte()?;
        if mask & 0x80 != 0 {
            return Err(r.error(format!(
                "unknown bits in operation encoding mask {mask:#04x}"
            )));
        }
        let location = AttrId(r.index(m.attributes.len(), "location attribute")? as u32);
        let attributes = if mask & 0x01 != 0 {
            Some(AttrId(
                r.index(m.attributes.len(), "attribute dictionary")? as u32
            ))
        } else {
            None
        };
        let properties = if mask & 0x40 != 0 {
            match m.op_names[name.index()].registered {
                Some(true) => Some(Properties::Encoded(PropId(
                    r.index(m.properties.len(), "properties")? as u32,
                ))),
                Some(false) => Some(Properties::Attribute(AttrId(
                    r.index(m.attributes.len(), "properties attribute")? as u32,
                ))),
                None => {
                    return Err(MlirError::malformed(
                        Section::Ir,
                        op_at,
                        "operation has properties in a bytecode version without them",
                    ));
                }
            }
        } else {
            None
        };
        let mut result_types = Vec::new();
        if mask & 0x02 != 0 {
            let n = r.count(1, "result")?;
            for _ in 0..n {
                result_types.push(TypeId(r.index(m.types.len(), "result type")? as u32));
            }
        }
        let mut operand_slots = Vec::new();
        if mask & 0x04 != 0 {
            let n = r.count(1, "operand")?;
            let len = self.scope().values.len();
            for _ in 0..n {
                operand_slots.push(r.index(len, "operand value")?);
            }
        }
        let mut successors = Vec::new();
        if mask & 0x08 != 0 {
            let n = r.count(1, "successor")?;
            for _ in 0..n {
                successors.push(blocks[r.index(blocks.len(), "successor block")?]);
            }
        }
        let mut use_list_orders = Vec::new();
        if mask & 0x20 != 0 {
            use_list_orders = read_use_lists(r, result_types.len())?;
        }
        let (num_regions, isolated) = if mask & 0x10 != 0 {
            let (n, iso) = r.varint_with_flag()?;
            (bounded(r, n, 1, "region")?, iso)
        } else {
            (0, false)
        };

        let id = self.ir.push_op(Operation {
            name,
            location,
            attributes,
            properties,
            result_types,
            operands: Vec::with_capacity(operand_slots.len()),
            successors,
            use_list_orders,
            regions: Vec::new(),
            isolated,
        });
        for (i, slot) in operand_slots.into_iter().enumerate() {
            let scope = self.scope();
            let v = match scope.values[slot] {
                Some(v) => v,
                None => {
                    scope.pending.entry(slot).or_default().push((id, i));
                    PENDING
                }
            };
            self.ir.ops[id.index()].operands.push(v);
        }
        let num_results = self.ir.ops[id.index()].result_types.len();
        for index in 0..num_results {
            self.define(
                r,
                Value::Result {
                    op: id,
                    index: index as u32,
                },
            )?;
        }

        if num_regions > 0 {
            self.depth += 1;
            if self.depth > MAX_REGION_DEPTH {
                return Err(r.error(format!(
                    "regions nested deeper than {MAX_REGION_DEPTH} levels"
                )));
            }
            let regions: Vec<RegionId> = (0..num_regions)
                .map(|_| self.ir.push_region(Region::default()))
                .collect();
            self.ir.ops[id.index()].regions = regions.clone();
            let lazy = isolated && m.version >= crate::module::version::LAZY_LOADING;
            if isolated {
                self.scopes.push(Scope::default());
            }
            if lazy {
                let s = r.section_data()?;
                if s.id != 4 {
                    return Err(MlirError::malformed(
                        Section::Ir,
                        s.offset,
                        format!(
                            "expected an IR section for isolated regions, found section {}",
                            s.id
                        ),
                    ));
                }
                let mut sub = Reader::new(s.data, s.offset, Section::Ir);
                for &region in &regions {
                    self.read_region(&mut sub, region)?;
                }
                if !sub.is_empty() {
                    return Err(sub.error("trailing bytes in a region section"));
                }
            } else {
                for &region in &regions {
                    self.read_region(r, region)?;
                }
            }
            if isolated {
                self.scopes.pop();
            }
            self.depth -= 1;
        }
        Ok(id)
    }

    fn read_region(&mut self, r: &mut Reader<'_>, region: RegionId) -> Result<()> {
        let num_blocks = r.count(1, "block")?;
        if num_blocks == 0 {
            return Ok(());
        }
        // A value needs at least one byte of IR to define it (a block argument's type or
        // an op's result type), so the count is bounded by the data left.
        let num_values = r.count(1, "value")?;
        let blocks: Vec<BlockId> = (0..num_blocks)
            .map(|_| self.ir.push_block(Block::default()))
            .collect();
        self.ir.regions[region.index()].blocks = blocks.clone();
        let scope = self.scope();
        let start = scope.values.len();
        scope.values.resize(start + num_values, None);
        scope.next.push(start);
        for &block in &blocks {
            self.read_block(r, block, &blocks)?;
        }
        self.pop_region(r, num_values)
    }

    fn read_block(&mut self, r: &mut Reader<'_>, block: BlockId, blocks: &[BlockId]) -> Result<()> {
        let m = self.module;
        let (num_ops, has_args) = r.varint_with_flag()?;
        let num_ops = bounded(r, num_ops, 3, "operation")?;
        if has_args {
            let n = r.count(1, "block argument")?;
            let mut args = Vec::with_capacity(n);
            for _ in 0..n {
                let (ty, location) = if m.version >= version::ELIDE_UNKNOWN_BLOCK_ARG_LOCATION {
                    let at = r.offset();
                    let (ty, has_loc) = r.varint_with_flag()?;
                    let ty = usize::try_from(ty)
                        .ok()
                        .filter(|&t| t < m.types.len())
                        .ok_or_else(|| {
                            MlirError::malformed(
                                Section::Ir,
                                at,
                                format!("block argument type {ty} out of range"),
                            )
                        })?;
                    let loc = if has_loc {
                        Some(AttrId(
                            r.index(m.attributes.len(), "location attribute")? as u32
                        ))
                    } else {
                        None
                    };
                    (ty, loc)
                } else {
                    let ty = r.index(m.types.len(), "block argument type")?;
                    let loc = AttrId(r.index(m.attributes.len(), "location attribute")? as u32);
                    (ty, Some(loc))
                };
                args.push(BlockArg {
                    ty: TypeId(ty as u32),
                    location,
                });
            }
            let mut arg_use_list_orders = Vec::new();
            if m.version >= version::USE_LIST_ORDERING {
                let flag = r.byte()?;
                if flag != 0 {
                    arg_use_list_orders = read_use_lists(r, args.len())?;
                }
            }
            let count = args.len();
            let b = &mut self.ir.blocks[block.index()];
            b.args = args;
            b.arg_use_list_orders = arg_use_list_orders;
            for index in 0..count {
                self.define(
                    r,
                    Value::Arg {
                        block,
                        index: index as u32,
                    },
                )?;
            }
        }
        let mut ops = Vec::with_capacity(num_ops);
        for _ in 0..num_ops {
            ops.push(self.read_op(r, blocks)?);
        }
        self.ir.blocks[block.index()].ops = ops;
        Ok(())
    }
}

/// `n` items of at least `min_bytes` each, checked against the data left.
fn bounded(r: &Reader<'_>, n: u64, min_bytes: usize, what: &str) -> Result<usize> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= r.remaining() / min_bytes.max(1))
        .ok_or_else(|| {
            r.error(format!(
                "{n} {what}s claimed but only {} bytes remain",
                r.remaining()
            ))
        })
}

fn read_use_lists(r: &mut Reader<'_>, num_values: usize) -> Result<Vec<UseListOrder>> {
    let count = if num_values > 1 {
        r.count(1, "use-list order")?
    } else {
        1
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let value_index = if num_values > 1 {
            r.index(num_values, "use-list value")? as u64
        } else {
            0
        };
        let (n, pair_encoding) = r.varint_with_flag()?;
        let n = bounded(r, n, 1, "use-list index")?;
        let mut indices = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            indices.push(r.varint()?);
        }
        out.push(UseListOrder {
            value_index,
            pair_encoding,
            indices,
        });
    }
    Ok(out)
}
