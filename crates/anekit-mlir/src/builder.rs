//! Building a [`Bytecode`] in memory, with interned tables.

use std::collections::HashMap;

use bytes::Bytes;

use crate::module::{
    AttrId, Bytecode, Dialect, DialectId, Entry, OpName, OpNameId, PropId, ResourceEntry,
    ResourceGroup, ResourceOwner, ResourceValue, StringId, TypeId,
};

/// Interns strings, dialects, op names, attributes, types and properties into a module;
/// the operation tree is built directly in [`Builder::module`]`.ir`.
#[derive(Debug)]
pub struct Builder {
    /// The module being built.
    pub module: Bytecode,
    strings: HashMap<String, StringId>,
    dialects: HashMap<String, DialectId>,
    op_names: HashMap<(DialectId, String), OpNameId>,
    attrs: HashMap<(DialectId, bool, Bytes), AttrId>,
    types: HashMap<(DialectId, bool, Bytes), TypeId>,
    props: HashMap<Bytes, PropId>,
    resource_handles: usize,
}

impl Builder {
    /// An empty module of bytecode `version` written by `producer`.
    pub fn new(version: u64, producer: &str) -> Self {
        Self::from_module(Bytecode::new(version, producer))
    }

    /// Continue building `module` (its tables are indexed so that new entries are shared
    /// with existing equal ones).
    pub fn from_module(module: Bytecode) -> Self {
        let mut b = Self {
            strings: HashMap::new(),
            dialects: HashMap::new(),
            op_names: HashMap::new(),
            attrs: HashMap::new(),
            types: HashMap::new(),
            props: HashMap::new(),
            resource_handles: module.dialect_resources().count(),
            module,
        };
        for (i, s) in b.module.strings.iter().enumerate() {
            b.strings.entry(s.clone()).or_insert(StringId(i as u32));
        }
        for (i, d) in b.module.dialects.iter().enumerate() {
            let name = b.module.string(d.name).to_string();
            b.dialects.entry(name).or_insert(DialectId(i as u32));
        }
        for (i, n) in b.module.op_names.iter().enumerate() {
            let name = b.module.string(n.name).to_string();
            b.op_names
                .entry((n.dialect, name))
                .or_insert(OpNameId(i as u32));
        }
        for (i, e) in b.module.attributes.iter().enumerate() {
            b.attrs
                .entry((e.dialect, e.custom, e.data.clone()))
                .or_insert(AttrId(i as u32));
        }
        for (i, e) in b.module.types.iter().enumerate() {
            b.types
                .entry((e.dialect, e.custom, e.data.clone()))
                .or_insert(TypeId(i as u32));
        }
        for (i, p) in b.module.properties.iter().enumerate() {
            b.props.entry(p.clone()).or_insert(PropId(i as u32));
        }
        b
    }

    /// The module.
    pub fn finish(self) -> Bytecode {
        self.module
    }

    /// Intern a string.
    pub fn string(&mut self, s: &str) -> StringId {
        if let Some(&id) = self.strings.get(s) {
            return id;
        }
        let id = StringId(self.module.strings.len() as u32);
        self.module.strings.push(s.to_string());
        self.strings.insert(s.to_string(), id);
        id
    }

    /// Intern a dialect (its version blob is set on first use).
    pub fn dialect(&mut self, name: &str, version: Option<Bytes>) -> DialectId {
        if let Some(&id) = self.dialects.get(name) {
            return id;
        }
        let s = self.string(name);
        let id = DialectId(self.module.dialects.len() as u32);
        self.module.dialects.push(Dialect { name: s, version });
        self.dialects.insert(name.to_string(), id);
        id
    }

    /// Intern an op name (`name` without the dialect prefix).
    pub fn op_name(&mut self, dialect: DialectId, name: &str, registered: bool) -> OpNameId {
        if let Some(&id) = self.op_names.get(&(dialect, name.to_string())) {
            return id;
        }
        let s = self.string(name);
        let id = OpNameId(self.module.op_names.len() as u32);
        self.module.op_names.push(OpName {
            dialect,
            name: s,
            registered: Some(registered),
        });
        self.op_names.insert((dialect, name.to_string()), id);
        id
    }

    /// Intern an attribute encoding.
    pub fn attr(&mut self, dialect: DialectId, custom: bool, data: Bytes) -> AttrId {
        let key = (dialect, custom, data);
        if let Some(&id) = self.attrs.get(&key) {
            return id;
        }
        let id = AttrId(self.module.attributes.len() as u32);
        self.module.attributes.push(Entry {
            dialect,
            custom,
            data: key.2.clone(),
        });
        self.attrs.insert(key, id);
        id
    }

    /// Intern a type encoding.
    pub fn ty(&mut self, dialect: DialectId, custom: bool, data: Bytes) -> TypeId {
        let key = (dialect, custom, data);
        if let Some(&id) = self.types.get(&key) {
            return id;
        }
        let id = TypeId(self.module.types.len() as u32);
        self.module.types.push(Entry {
            dialect,
            custom,
            data: key.2.clone(),
        });
        self.types.insert(key, id);
        id
    }

    /// Intern an encoded properties blob.
    pub fn properties(&mut self, data: Bytes) -> PropId {
        if let Some(&id) = self.props.get(&data) {
            return id;
        }
        let id = PropId(self.module.properties.len() as u32);
        self.module.properties.push(data.clone());
        self.props.insert(data, id);
        id
    }

    /// Add a blob resource owned by `dialect` under `key`; returns its handle (the index
    /// attributes refer to it by).
    pub fn dialect_blob(
        &mut self,
        dialect: DialectId,
        key: &str,
        alignment: u64,
        data: Bytes,
    ) -> usize {
        let key = self.string(key);
        let entry = ResourceEntry {
            key,
            value: ResourceValue::Blob { alignment, data },
        };
        match self.module.resources.last_mut() {
            Some(g) if g.owner == ResourceOwner::Dialect(dialect) => g.entries.push(entry),
            _ => self.module.resources.push(ResourceGroup {
                owner: ResourceOwner::Dialect(dialect),
                entries: vec![entry],
            }),
        }
        self.resource_handles += 1;
        self.resource_handles - 1
    }
}
