//! The in-memory form of a bytecode file: its tables (strings, dialects, operation names,
//! attributes, types, properties, resources) and the operation tree.
//!
//! Attributes, types and properties stay in their encoded form ([`Entry`]): their meaning
//! belongs to their dialect, which decodes them with [`crate::dialect::PayloadReader`].
//! Everything else is plain data with typed indices.

use bytes::Bytes;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as `usize`.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// An index into [`Bytecode::strings`].
    StringId
);
id_type!(
    /// An index into [`Bytecode::dialects`].
    DialectId
);
id_type!(
    /// An index into [`Bytecode::op_names`].
    OpNameId
);
id_type!(
    /// An index into [`Bytecode::attributes`].
    AttrId
);
id_type!(
    /// An index into [`Bytecode::types`].
    TypeId
);
id_type!(
    /// An index into [`Bytecode::properties`].
    PropId
);
id_type!(
    /// An operation in [`Ir::ops`].
    OpId
);
id_type!(
    /// A region in [`Ir::regions`].
    RegionId
);
id_type!(
    /// A block in [`Ir::blocks`].
    BlockId
);

/// The newest bytecode version this crate reads and writes (MLIR's
/// `kNativePropertiesODSSegmentSize`, the version coreai-core writes).
pub const MAX_VERSION: u64 = 6;

/// Bytecode versions that changed the encoding (MLIR `Encoding.h`).
pub mod version {
    /// Dialect versions in the dialect section.
    pub const DIALECT_VERSIONING: u64 = 1;
    /// Isolated regions in their own (lazily loadable) sections.
    pub const LAZY_LOADING: u64 = 2;
    /// Use-list orders.
    pub const USE_LIST_ORDERING: u64 = 3;
    /// Block arguments without a location flag it; the dialect section counts op names.
    pub const ELIDE_UNKNOWN_BLOCK_ARG_LOCATION: u64 = 4;
    /// Properties section; op names carry a "registered" flag.
    pub const NATIVE_PROPERTIES: u64 = 5;
    /// Operand/result segment sizes as native properties (no format change here).
    pub const NATIVE_PROPERTIES_ODS_SEGMENT_SIZE: u64 = 6;
}

/// A dialect referenced by the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    /// Its name.
    pub name: StringId,
    /// Its version, encoded by the dialect (the nested dialect-version section).
    pub version: Option<Bytes>,
}

/// An operation name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpName {
    /// The dialect.
    pub dialect: DialectId,
    /// The name without the dialect prefix (`primitive.add_v1` of `aicode`).
    pub name: StringId,
    /// Whether the op was registered when written (version >= 5; `None` before).
    pub registered: Option<bool>,
}

/// An encoded attribute or type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The dialect it belongs to.
    pub dialect: DialectId,
    /// `true`: the dialect's own binary encoding; `false`: its textual form (the bytes
    /// exclude the terminating NUL).
    pub custom: bool,
    /// The encoding.
    pub data: Bytes,
}

/// Where a resource group comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceOwner {
    /// An external provider, by name.
    External(StringId),
    /// A dialect: its entries are the handles that attributes refer to.
    Dialect(DialectId),
}

/// A resource value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceValue {
    /// Raw bytes with their alignment (weights).
    Blob {
        /// The alignment the data needs (a power of two).
        alignment: u64,
        /// The data (a slice of the file: no copy).
        data: Bytes,
    },
    /// A boolean.
    Bool(bool),
    /// A string.
    String(StringId),
}

/// One named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceEntry {
    /// The key.
    pub key: StringId,
    /// The value.
    pub value: ResourceValue,
}

/// The resources of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGroup {
    /// The provider.
    pub owner: ResourceOwner,
    /// Its entries.
    pub entries: Vec<ResourceEntry>,
}

/// A value: a block argument or an operation result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Value {
    /// Argument `index` of `block`.
    Arg {
        /// The block.
        block: BlockId,
        /// The argument number.
        index: u32,
    },
    /// Result `index` of `op`.
    Result {
        /// The operation.
        op: OpId,
        /// The result number.
        index: u32,
    },
}

/// A use-list order of one value (MLIR keeps these so a round trip preserves the order
/// in which uses are visited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseListOrder {
    /// Which value of the op's results / block's arguments.
    pub value_index: u64,
    /// `true`: `indices` are `(from, to)` pairs; `false`: a full permutation.
    pub pair_encoding: bool,
    /// The indices as encoded.
    pub indices: Vec<u64>,
}

/// How an operation's properties are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Properties {
    /// A registered op: its dialect's encoding, in the properties section.
    Encoded(PropId),
    /// An op that was not registered when written: an attribute.
    Attribute(AttrId),
}

/// An operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Its name.
    pub name: OpNameId,
    /// Its location (an attribute).
    pub location: AttrId,
    /// Its discardable attributes (a dictionary attribute), if any.
    pub attributes: Option<AttrId>,
    /// Its properties, if any.
    pub properties: Option<Properties>,
    /// The types of its results.
    pub result_types: Vec<TypeId>,
    /// Its operands.
    pub operands: Vec<Value>,
    /// Successor blocks (within the parent region).
    pub successors: Vec<BlockId>,
    /// Use-list orders of its results.
    pub use_list_orders: Vec<UseListOrder>,
    /// Its regions.
    pub regions: Vec<RegionId>,
    /// Whether its regions are isolated from above (they then start a new value
    /// numbering and are stored in their own section).
    pub isolated: bool,
}

/// A block argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockArg {
    /// Its type.
    pub ty: TypeId,
    /// Its location; `None` is the unknown location.
    pub location: Option<AttrId>,
}

/// A block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    /// Arguments.
    pub args: Vec<BlockArg>,
    /// Use-list orders of the arguments.
    pub arg_use_list_orders: Vec<UseListOrder>,
    /// Operations in order.
    pub ops: Vec<OpId>,
}

/// A region.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Region {
    /// Its blocks; the first is the entry block.
    pub blocks: Vec<BlockId>,
}

/// The operation tree, in arenas indexed by [`OpId`], [`RegionId`] and [`BlockId`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ir {
    /// All operations.
    pub ops: Vec<Operation>,
    /// All regions.
    pub regions: Vec<Region>,
    /// All blocks.
    pub blocks: Vec<Block>,
    /// The top-level operations (normally one: the root op).
    pub top: Vec<OpId>,
}

impl Ir {
    /// The operation `id`.
    pub fn op(&self, id: OpId) -> &Operation {
        &self.ops[id.index()]
    }

    /// The region `id`.
    pub fn region(&self, id: RegionId) -> &Region {
        &self.regions[id.index()]
    }

    /// The block `id`.
    pub fn block(&self, id: BlockId) -> &Block {
        &self.blocks[id.index()]
    }

    /// Add an operation, returning its id.
    pub fn push_op(&mut self, op: Operation) -> OpId {
        self.ops.push(op);
        OpId((self.ops.len() - 1) as u32)
    }

    /// Add a block, returning its id.
    pub fn push_block(&mut self, block: Block) -> BlockId {
        self.blocks.push(block);
        BlockId((self.blocks.len() - 1) as u32)
    }

    /// Add a region, returning its id.
    pub fn push_region(&mut self, region: Region) -> RegionId {
        self.regions.push(region);
        RegionId((self.regions.len() - 1) as u32)
    }

    /// Every operation reachable from the top level, in pre-order (an op before the ops of
    /// its regions).
    pub fn walk(&self) -> Vec<OpId> {
        let mut out = Vec::new();
        let mut stack: Vec<OpId> = self.top.iter().rev().copied().collect();
        while let Some(op) = stack.pop() {
            out.push(op);
            let o = self.op(op);
            for &r in o.regions.iter().rev() {
                for &b in self.region(r).blocks.iter().rev() {
                    stack.extend(self.block(b).ops.iter().rev().copied());
                }
            }
        }
        out
    }
}

/// A whole bytecode file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytecode {
    /// The bytecode version (0..=[`MAX_VERSION`]).
    pub version: u64,
    /// The producer string (`MLIR22.0.0git`).
    pub producer: String,
    /// The string table.
    pub strings: Vec<String>,
    /// Dialects.
    pub dialects: Vec<Dialect>,
    /// Operation names.
    pub op_names: Vec<OpName>,
    /// Attributes.
    pub attributes: Vec<Entry>,
    /// Types.
    pub types: Vec<Entry>,
    /// Encoded operation properties.
    pub properties: Vec<Bytes>,
    /// Resources: external groups first, then dialect groups.
    pub resources: Vec<ResourceGroup>,
    /// The operations.
    pub ir: Ir,
    /// Section ids in file order (kept so a file is written back byte for byte; empty:
    /// MLIR's order).
    pub section_order: Vec<u8>,
}

/// MLIR's writer's section order: dialects, attribute/type offsets, attributes/types, IR,
/// resource offsets, resources, strings, properties.
pub const CANONICAL_SECTION_ORDER: [u8; 8] = [1, 3, 2, 4, 6, 5, 0, 8];

impl Bytecode {
    /// An empty module of `version` with `producer`.
    pub fn new(version: u64, producer: impl Into<String>) -> Self {
        Self {
            version,
            producer: producer.into(),
            strings: Vec::new(),
            dialects: Vec::new(),
            op_names: Vec::new(),
            attributes: Vec::new(),
            types: Vec::new(),
            properties: Vec::new(),
            resources: Vec::new(),
            ir: Ir::default(),
            section_order: Vec::new(),
        }
    }

    /// String `id`, or `""` if out of range.
    pub fn string(&self, id: StringId) -> &str {
        self.strings.get(id.index()).map_or("", String::as_str)
    }

    /// The name of dialect `id`.
    pub fn dialect_name(&self, id: DialectId) -> &str {
        self.dialects
            .get(id.index())
            .map_or("", |d| self.string(d.name))
    }

    /// The full name (`dialect.op`) of op name `id`.
    pub fn op_name(&self, id: OpNameId) -> String {
        match self.op_names.get(id.index()) {
            Some(n) => format!("{}.{}", self.dialect_name(n.dialect), self.string(n.name)),
            None => String::new(),
        }
    }

    /// The full name of operation `op`.
    pub fn name_of(&self, op: OpId) -> String {
        self.op_name(self.ir.op(op).name)
    }

    /// The dialect resources in handle order (the order attributes refer to them by).
    pub fn dialect_resources(&self) -> impl Iterator<Item = (DialectId, &ResourceEntry)> {
        self.resources.iter().flat_map(|g| match g.owner {
            ResourceOwner::Dialect(d) => g.entries.iter().map(move |e| (d, e)).collect(),
            ResourceOwner::External(_) => Vec::new(),
        })
    }

    /// Dialect resource handle `index`.
    pub fn dialect_resource(&self, index: usize) -> Option<(DialectId, &ResourceEntry)> {
        self.dialect_resources().nth(index)
    }

    /// The dialect that owns `name`, if the file references it.
    pub fn find_dialect(&self, name: &str) -> Option<DialectId> {
        self.dialects
            .iter()
            .position(|d| self.string(d.name) == name)
            .map(|i| DialectId(i as u32))
    }
}
