//! MLIR bytecode, read and written in Rust, with no LLVM installation.
//!
//! MLIR's binary format (`mlir/docs/BytecodeFormat.md` in llvm/llvm-project) stores a
//! module as sections: a string table, the dialects and operation names, attributes and
//! types (each encoded by its dialect), the operations with their regions, resources
//! (weights) and operation properties. This crate knows the format, not any dialect:
//!
//! - [`read()`] parses a file into a [`Bytecode`]: the tables plus an operation tree
//!   ([`module::Ir`]) whose operands are resolved to [`Value`]s. Attribute, type and
//!   property encodings are kept as bytes ([`module::Entry`]) for their dialect to decode
//!   with [`dialect::PayloadReader`]; resources and payloads are slices of the input
//!   ([`bytes::Bytes`]), so a memory-mapped file is never copied.
//! - [`write()`] encodes a [`Bytecode`] with the value numbering, varint forms and section
//!   padding of MLIR's own writer: a file read and written back is identical byte for byte.
//! - [`dialect::PayloadWriter`] and [`builder::Builder`] build new modules (interning
//!   strings, attributes, types and properties).
//! - [`print`] renders the operation tree in MLIR's generic textual form, with hooks for
//!   the dialects' attributes and types.
//!
//! Every input is untrusted: counts, sizes and indices are checked before use, regions may
//! nest at most [`read::MAX_REGION_DEPTH`] levels, and every error names the section and
//! the byte offset ([`MlirError`]).
//!
//! `bytes` is the one dependency: its reference-counted slices let payloads point into a
//! shared buffer (a memory map) without lifetimes on every type.

pub mod builder;
pub mod dialect;
pub mod encoding;
pub mod error;
pub mod module;
pub mod print;
pub mod read;
pub mod write;

pub use error::{MlirError, Result, Section};
pub use module::{
    AttrId, Block, BlockArg, BlockId, Bytecode, Dialect, DialectId, Entry, Ir, OpId, OpName,
    OpNameId, Operation, PropId, Properties, Region, RegionId, ResourceEntry, ResourceGroup,
    ResourceOwner, ResourceValue, StringId, TypeId, UseListOrder, Value,
};
pub use read::{is_bytecode, read};
pub use write::write;
