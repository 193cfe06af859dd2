//! Errors of the bytecode reader and writer.

use std::fmt;

/// The part of a bytecode file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The magic number, version and producer string.
    Header,
    /// Section 0: the string table.
    String,
    /// Section 1: dialects and operation names.
    Dialect,
    /// Section 2: attribute and type encodings.
    AttrType,
    /// Section 3: the offsets of the attribute and type encodings.
    AttrTypeOffset,
    /// Section 4 (and the nested sections of isolated regions): the operations.
    Ir,
    /// Section 5: resource data.
    Resource,
    /// Section 6: resource keys and sizes.
    ResourceOffset,
    /// Section 7: a dialect's version (nested in the dialect section).
    DialectVersions,
    /// Section 8: operation properties.
    Properties,
    /// The encoding of one attribute (by index).
    Attribute(u32),
    /// The encoding of one type (by index).
    Type(u32),
    /// One entry of the properties section (by index).
    PropertiesEntry(u32),
    /// Building a module in memory (no file offset).
    Builder,
}

impl Section {
    /// The section with numeric id `id` (0..=8), if it is one.
    pub fn from_id(id: u8) -> Option<Section> {
        Some(match id {
            0 => Section::String,
            1 => Section::Dialect,
            2 => Section::AttrType,
            3 => Section::AttrTypeOffset,
            4 => Section::Ir,
            5 => Section::Resource,
            6 => Section::ResourceOffset,
            7 => Section::DialectVersions,
            8 => Section::Properties,
            _ => return None,
        })
    }

    /// The numeric id of a top-level section.
    pub fn id(self) -> Option<u8> {
        Some(match self {
            Section::String => 0,
            Section::Dialect => 1,
            Section::AttrType => 2,
            Section::AttrTypeOffset => 3,
            Section::Ir => 4,
            Section::Resource => 5,
            Section::ResourceOffset => 6,
            Section::DialectVersions => 7,
            Section::Properties => 8,
            _ => return None,
        })
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Header => f.write_str("header"),
            Section::String => f.write_str("string section"),
            Section::Dialect => f.write_str("dialect section"),
            Section::AttrType => f.write_str("attribute/type section"),
            Section::AttrTypeOffset => f.write_str("attribute/type offset section"),
            Section::Ir => f.write_str("IR section"),
            Section::Resource => f.write_str("resource section"),
            Section::ResourceOffset => f.write_str("resource offset section"),
            Section::DialectVersions => f.write_str("dialect version section"),
            Section::Properties => f.write_str("properties section"),
            Section::Attribute(i) => write!(f, "attribute #{i}"),
            Section::Type(i) => write!(f, "type #{i}"),
            Section::PropertiesEntry(i) => write!(f, "properties #{i}"),
            Section::Builder => f.write_str("module builder"),
        }
    }
}

/// An error reading, decoding or writing MLIR bytecode.
#[derive(Debug, thiserror::Error)]
pub enum MlirError {
    /// The input is not well-formed bytecode (or a dialect payload is malformed).
    #[error("{section}, byte {offset}: {message}")]
    Malformed {
        /// Where.
        section: Section,
        /// Byte offset in the file (for payloads: in the file as well where known).
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// A well-formed file uses something this crate does not implement.
    #[error("{section}: unsupported: {message}")]
    Unsupported {
        /// Where.
        section: Section,
        /// What.
        message: String,
    },
}

impl MlirError {
    /// A malformed-input error.
    pub fn malformed(section: Section, offset: usize, message: impl Into<String>) -> Self {
        MlirError::Malformed {
            section,
            offset,
            message: message.into(),
        }
    }

    /// An unsupported-feature error.
    pub fn unsupported(section: Section, message: impl Into<String>) -> Self {
        MlirError::Unsupported {
            section,
            message: message.into(),
        }
    }

    /// The section the error is about.
    pub fn section(&self) -> Section {
        match self {
            MlirError::Malformed { section, .. } | MlirError::Unsupported { section, .. } => {
                *section
            }
        }
    }
}

/// Result with [`MlirError`].
pub type Result<T, E = MlirError> = std::result::Result<T, E>;
