//! Writing a [`Bytecode`] back to bytes, with MLIR's encodings, value numbering and
//! section layout, so that a file read by [`crate::read`] is written back byte for byte.

use std::collections::HashMap;

use crate::encoding::Emitter;
use crate::error::{MlirError, Result, Section};
use crate::module::{
    BlockId, Bytecode, CANONICAL_SECTION_ORDER, Entry, OpId, Properties, RegionId, ResourceOwner,
    ResourceValue, UseListOrder, Value, version,
};
use crate::read::MAGIC;

/// Encode `module` as a bytecode file.
///
/// Fails when the module is inconsistent (an index out of range, an operand whose value is
/// not visible where it is used, an op with properties in a version without them).
pub fn write(module: &Bytecode) -> Result<Vec<u8>> {
    check_tables(module)?;
    let mut sections: [Option<Emitter>; 9] = Default::default();
    sections[0] = Some(string_section(module));
    sections[1] = Some(dialect_section(module));
    let (offsets, data) = attr_type_sections(module);
    sections[2] = Some(data);
    sections[3] = Some(offsets);
    sections[4] = Some(ir_section(module)?);
    let (res_off, res) = resource_sections(module);
    sections[5] = Some(res);
    sections[6] = Some(res_off);
    if module.version >= version::NATIVE_PROPERTIES {
        sections[8] = Some(properties_section(module));
    } else if !module.properties.is_empty() {
        return Err(MlirError::unsupported(
            Section::Properties,
            format!("properties in bytecode version {}", module.version),
        ));
    }

    let mut out = Emitter::new();
    out.bytes(&MAGIC);
    out.varint(module.version);
    out.cstr(module.producer.as_bytes());
    let order: Vec<u8> = if module.section_order.is_empty() {
        CANONICAL_SECTION_ORDER.to_vec()
    } else {
        module.section_order.clone()
    };
    for id in order.iter().copied().chain(CANONICAL_SECTION_ORDER) {
        if let Some(s) = sections.get_mut(usize::from(id)).and_then(Option::take) {
            out.section(id, s);
        }
    }
    Ok(out.into_bytes())
}

fn check_tables(m: &Bytecode) -> Result<()> {
    let bad = |what: String| Err(MlirError::malformed(Section::Builder, 0, what));
    let ns = m.strings.len();
    for (i, d) in m.dialects.iter().enumerate() {
        if d.name.index() >= ns {
            return bad(format!("dialect #{i}: name string out of range"));
        }
    }
    for (i, n) in m.op_names.iter().enumerate() {
        if n.dialect.index() >= m.dialects.len() || n.name.index() >= ns {
            return bad(format!("op name #{i}: index out of range"));
        }
        if m.version >= version::NATIVE_PROPERTIES && n.registered.is_none() {
            return bad(format!("op name #{i}: registered flag missing"));
        }
    }
    for (what, entries) in [("attribute", &m.attributes), ("type", &m.types)] {
        for (i, e) in entries.iter().enumerate() {
            if e.dialect.index() >= m.dialects.len() {
                return bad(format!("{what} #{i}: dialect out of range"));
            }
            if !e.custom && e.data.contains(&0) {
                return bad(format!("textual {what} #{i} contains a NUL byte"));
            }
        }
    }
    for g in &m.resources {
        match g.owner {
            ResourceOwner::External(s) if s.index() >= ns => {
                return bad("resource provider string out of range".into());
            }
            ResourceOwner::Dialect(d) if d.index() >= m.dialects.len() => {
                return bad("resource dialect out of range".into());
            }
            _ => {}
        }
        for e in &g.entries {
            if e.key.index() >= ns {
                return bad("resource key string out of range".into());
            }
            if let ResourceValue::Blob { alignment, .. } = e.value
                && (alignment == 0 || !alignment.is_power_of_two())
            {
                return bad(format!(
                    "resource alignment {alignment} is not a power of two"
                ));
            }
        }
    }
    // External groups must come first (the offset section counts them up front).
    let mut seen_dialect = false;
    for g in &m.resources {
        match g.owner {
            ResourceOwner::Dialect(_) => seen_dialect = true,
            ResourceOwner::External(_) if seen_dialect => {
                return bad("an external resource group after a dialect group".into());
            }
            ResourceOwner::External(_) => {}
        }
    }
    for s in &m.strings {
        if s.as_bytes().contains(&0) {
            return bad(format!("string {s:?} contains a NUL byte"));
        }
    }
    Ok(())
}

fn string_section(m: &Bytecode) -> Emitter {
    let mut e = Emitter::new();
    e.varint(m.strings.len() as u64);
    for s in m.strings.iter().rev() {
        e.varint(s.len() as u64 + 1);
    }
    for s in &m.strings {
        e.cstr(s.as_bytes());
    }
    e
}

/// Runs of consecutive items with the same key: `(key, items)`.
fn runs<T, K: PartialEq + Copy>(items: &[T], key: impl Fn(&T) -> K) -> Vec<(K, &[T])> {
    let mut out: Vec<(K, &[T])> = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || key(&items[i]) != key(&items[start]) {
            out.push((key(&items[start]), &items[start..i]));
            start = i;
        }
    }
    out
}

fn dialect_section(m: &Bytecode) -> Emitter {
    let mut e = Emitter::new();
    e.varint(m.dialects.len() as u64);
    for d in &m.dialects {
        if m.version < version::DIALECT_VERSIONING {
            e.varint(u64::from(d.name.0));
            continue;
        }
        e.varint_with_flag(u64::from(d.name.0), d.version.is_some());
        if let Some(v) = &d.version {
            let mut vs = Emitter::new();
            vs.bytes(v);
            e.section(7, vs);
        }
    }
    if m.version >= version::ELIDE_UNKNOWN_BLOCK_ARG_LOCATION {
        e.varint(m.op_names.len() as u64);
    }
    for (dialect, names) in runs(&m.op_names, |n| n.dialect) {
        e.varint(u64::from(dialect.0));
        e.varint(names.len() as u64);
        for n in names {
            match n.registered {
                Some(r) if m.version >= version::NATIVE_PROPERTIES => {
                    e.varint_with_flag(u64::from(n.name.0), r)
                }
                _ => e.varint(u64::from(n.name.0)),
            }
        }
    }
    e
}

fn attr_type_sections(m: &Bytecode) -> (Emitter, Emitter) {
    let mut off = Emitter::new();
    let mut data = Emitter::new();
    off.varint(m.attributes.len() as u64);
    off.varint(m.types.len() as u64);
    for entries in [&m.attributes, &m.types] {
        for (dialect, group) in runs(entries, |e: &Entry| e.dialect) {
            off.varint(u64::from(dialect.0));
            off.varint(group.len() as u64);
            for entry in group {
                let size = entry.data.len() + usize::from(!entry.custom);
                off.varint_with_flag(size as u64, entry.custom);
                data.bytes(&entry.data);
                if !entry.custom {
                    data.byte(0);
                }
            }
        }
    }
    (off, data)
}

fn resource_sections(m: &Bytecode) -> (Emitter, Emitter) {
    let mut off = Emitter::new();
    let mut data = Emitter::new();
    let external = m
        .resources
        .iter()
        .filter(|g| matches!(g.owner, ResourceOwner::External(_)))
        .count();
    off.varint(external as u64);
    for g in &m.resources {
        match g.owner {
            ResourceOwner::External(key) => off.varint(u64::from(key.0)),
            ResourceOwner::Dialect(d) => off.varint(u64::from(d.0)),
        }
        off.varint(g.entries.len() as u64);
        for entry in &g.entries {
            let start = data.len();
            let kind = match &entry.value {
                ResourceValue::Blob {
                    alignment,
                    data: blob,
                } => {
                    data.varint(*alignment);
                    data.varint(blob.len() as u64);
                    data.align_to(*alignment);
                    data.bytes(blob);
                    0
                }
                ResourceValue::Bool(b) => {
                    data.byte(u8::from(*b));
                    1
                }
                ResourceValue::String(s) => {
                    data.varint(u64::from(s.0));
                    2
                }
            };
            off.varint(u64::from(entry.key.0));
            off.varint((data.len() - start) as u64);
            off.byte(kind);
        }
    }
    (off, data)
}

fn properties_section(m: &Bytecode) -> Emitter {
    let mut e = Emitter::new();
    e.varint(m.properties.len() as u64);
    for p in &m.properties {
        e.varint(p.len() as u64);
        e.bytes(p);
    }
    e
}

struct IrWriter<'m> {
    m: &'m Bytecode,
    /// Region nesting depth (bounded as when reading).
    depth: usize,
    /// The number of each visible value in its isolated scope.
    numbers: HashMap<Value, u64>,
}

fn ir_section(m: &Bytecode) -> Result<Emitter> {
    let mut w = IrWriter {
        m,
        depth: 0,
        numbers: HashMap::new(),
    };
    let mut e = Emitter::new();
    e.varint_with_flag(m.ir.top.len() as u64, false);
    for &op in &m.ir.top {
        w.op(&mut e, op, &[], 0)?;
    }
    Ok(e)
}

fn err(message: String) -> MlirError {
    MlirError::malformed(Section::Builder, 0, message)
}

impl IrWriter<'_> {
    fn check(&self, index: usize, len: usize, what: &str) -> Result<u64> {
        if index < len {
            Ok(index as u64)
        } else {
            Err(err(format!("{what} index {index} out of range ({len})")))
        }
    }

    /// Write op `id` of a region with `blocks`, whose own values end before `next_free`
    /// (where the values of the op's non-isolated regions start).
    fn op(&mut self, e: &mut Emitter, id: OpId, blocks: &[BlockId], next_free: u64) -> Result<()> {
        let m = self.m;
        let op =
            m.ir.ops
                .get(id.index())
                .ok_or_else(|| err(format!("operation {} does not exist", id.0)))?;
        e.varint(self.check(op.name.index(), m.op_names.len(), "op name")?);
        let mask_at = e.len();
        e.byte(0);
        let mut mask = 0u8;
        e.varint(self.check(op.location.index(), m.attributes.len(), "location")?);
        if let Some(a) = op.attributes {
            mask |= 0x01;
            e.varint(self.check(a.index(), m.attributes.len(), "attribute dictionary")?);
        }
        if let Some(p) = op.properties {
            if m.version < version::NATIVE_PROPERTIES {
                return Err(err(format!(
                    "{} has properties, which bytecode version {} cannot hold",
                    m.name_of(id),
                    m.version
                )));
            }
            mask |= 0x40;
            let registered = m.op_names[op.name.index()].registered;
            match (p, registered) {
                (Properties::Encoded(p), Some(true)) => {
                    e.varint(self.check(p.index(), m.properties.len(), "properties")?)
                }
                (Properties::Attribute(a), Some(false)) => {
                    e.varint(self.check(a.index(), m.attributes.len(), "properties")?)
                }
                _ => {
                    return Err(err(format!(
                        "{}: encoded properties need a registered op name, attribute properties an unregistered one",
                        m.name_of(id)
                    )));
                }
            }
        }
        if !op.result_types.is_empty() {
            mask |= 0x02;
            e.varint(op.result_types.len() as u64);
            for t in &op.result_types {
                e.varint(self.check(t.index(), m.types.len(), "result type")?);
            }
        }
        if !op.operands.is_empty() {
            mask |= 0x04;
            e.varint(op.operands.len() as u64);
            for v in &op.operands {
                let n = self.numbers.get(v).copied().ok_or_else(|| {
                    err(format!(
                        "{}: an operand ({v:?}) is not visible where it is used",
                        m.name_of(id)
                    ))
                })?;
                e.varint(n);
            }
        }
        if !op.successors.is_empty() {
            mask |= 0x08;
            e.varint(op.successors.len() as u64);
            for s in &op.successors {
                let i = blocks.iter().position(|b| b == s).ok_or_else(|| {
                    err(format!(
                        "{}: a successor is not in the parent region",
                        m.name_of(id)
                    ))
                })?;
                e.varint(i as u64);
            }
        }
        if !op.use_list_orders.is_empty() && m.version >= version::USE_LIST_ORDERING {
            mask |= 0x20;
            write_use_lists(e, &op.use_list_orders, op.result_types.len());
        }
        if !op.regions.is_empty() {
            mask |= 0x10;
        }
        e.patch_byte(mask_at, mask);
        if !op.regions.is_empty() {
            self.depth += 1;
            if self.depth > crate::read::MAX_REGION_DEPTH {
                return Err(err(format!(
                    "regions nested deeper than {} levels",
                    crate::read::MAX_REGION_DEPTH
                )));
            }
            e.varint_with_flag(op.regions.len() as u64, op.isolated);
            // Isolated regions start numbering at zero and cannot see outer values.
            let saved = if op.isolated {
                Some(std::mem::take(&mut self.numbers))
            } else {
                None
            };
            let first = if op.isolated { 0 } else { next_free };
            let result = if op.isolated && m.version >= version::LAZY_LOADING {
                let mut sub = Emitter::new();
                let r = op
                    .regions
                    .iter()
                    .try_for_each(|&r| self.region(&mut sub, r, first));
                e.section(4, sub);
                r
            } else {
                op.regions
                    .iter()
                    .try_for_each(|&r| self.region(e, r, first))
            };
            if let Some(saved) = saved {
                self.numbers = saved;
            }
            self.depth -= 1;
            result?;
        }
        Ok(())
    }

    /// Write a region whose values are numbered from `first`.
    fn region(&mut self, e: &mut Emitter, id: RegionId, first: u64) -> Result<()> {
        let m = self.m;
        let region =
            m.ir.regions
                .get(id.index())
                .ok_or_else(|| err(format!("region {} does not exist", id.0)))?;
        if region.blocks.is_empty() {
            e.varint(0);
            return Ok(());
        }
        // Number this region's values: block arguments and results, block by block.
        let mut next = first;
        let mut defined = Vec::new();
        for &b in &region.blocks {
            let block =
                m.ir.blocks
                    .get(b.index())
                    .ok_or_else(|| err(format!("block {} does not exist", b.0)))?;
            for index in 0..block.args.len() {
                defined.push((
                    Value::Arg {
                        block: b,
                        index: index as u32,
                    },
                    next,
                ));
                next += 1;
            }
            for &op in &block.ops {
                let o =
                    m.ir.ops
                        .get(op.index())
                        .ok_or_else(|| err(format!("operation {} does not exist", op.0)))?;
                for index in 0..o.result_types.len() {
                    defined.push((
                        Value::Result {
                            op,
                            index: index as u32,
                        },
                        next,
                    ));
                    next += 1;
                }
            }
        }
        // Values of nested non-isolated regions are numbered after this region's.
        let before: Vec<(Value, Option<u64>)> = defined
            .iter()
            .map(|(v, _)| (*v, self.numbers.get(v).copied()))
            .collect();
        for &(v, n) in &defined {
            self.numbers.insert(v, n);
        }
        e.varint(region.blocks.len() as u64);
        e.varint(next - first);
        let result = region
            .blocks
            .iter()
            .try_for_each(|&b| self.block(e, b, &region.blocks, next));
        // Leave the region: its values go out of scope.
        for (v, old) in before {
            match old {
                Some(n) => self.numbers.insert(v, n),
                None => self.numbers.remove(&v),
            };
        }
        result
    }

    fn block(&mut self, e: &mut Emitter, id: BlockId, blocks: &[BlockId], next: u64) -> Result<()> {
        let m = self.m;
        let block = &m.ir.blocks[id.index()];
        e.varint_with_flag(block.ops.len() as u64, !block.args.is_empty());
        if !block.args.is_empty() {
            e.varint(block.args.len() as u64);
            for a in &block.args {
                let ty = self.check(a.ty.index(), m.types.len(), "argument type")?;
                if m.version >= version::ELIDE_UNKNOWN_BLOCK_ARG_LOCATION {
                    e.varint_with_flag(ty, a.location.is_some());
                    if let Some(l) = a.location {
                        e.varint(self.check(l.index(), m.attributes.len(), "location")?);
                    }
                } else {
                    let l = a.location.ok_or_else(|| {
                        err("a block argument without location in bytecode version < 4".into())
                    })?;
                    e.varint(ty);
                    e.varint(self.check(l.index(), m.attributes.len(), "location")?);
                }
            }
            if m.version >= version::USE_LIST_ORDERING {
                if block.arg_use_list_orders.is_empty() {
                    e.byte(0);
                } else {
                    e.byte(0x20);
                    write_use_lists(e, &block.arg_use_list_orders, block.args.len());
                }
            }
        }
        for &op in &block.ops {
            self.op(e, op, blocks, next)?;
        }
        Ok(())
    }
}

fn write_use_lists(e: &mut Emitter, orders: &[UseListOrder], num_values: usize) {
    if num_values > 1 {
        e.varint(orders.len() as u64);
    }
    for o in orders {
        if num_values > 1 {
            e.varint(o.value_index);
        }
        e.varint_with_flag(o.indices.len() as u64, o.pair_encoding);
        for &i in &o.indices {
            e.varint(i);
        }
    }
}
