//! Reading and writing the dialect-defined encodings of attributes, types and properties
//! (MLIR's `DialectBytecodeReader` / `DialectBytecodeWriter`).
//!
//! A dialect encodes each attribute or type as it likes, from a small set of primitives:
//! varints, references to other attributes and types, strings of the string table, blobs,
//! fixed-width integers and handles to dialect resources. [`PayloadReader`] reads them
//! from an [`Entry`](crate::module::Entry) or a properties blob with every index checked;
//! [`PayloadWriter`] writes them.

use bytes::Bytes;

use crate::encoding::{Emitter, Reader};
use crate::error::{MlirError, Result, Section};
use crate::module::{AttrId, Bytecode, StringId, TypeId};

/// An arbitrary-width integer as the bytecode stores it: `width` bits in little-endian
/// 64-bit words.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApInt {
    /// Bit width.
    pub width: u32,
    /// The bits, least significant word first (bits above `width` are zero).
    pub words: Vec<u64>,
}

impl ApInt {
    /// A value of at most 64 bits (truncated to `width`).
    pub fn from_u64(width: u32, value: u64) -> Self {
        let mut v = Self {
            width,
            words: vec![value],
        };
        v.truncate();
        v
    }

    fn truncate(&mut self) {
        let words = (self.width as usize).div_ceil(64).max(1);
        self.words.resize(words, 0);
        let rem = self.width % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
        if self.width == 0 {
            self.words = vec![0];
        }
    }

    /// The low 64 bits, zero-extended.
    pub fn as_u64(&self) -> u64 {
        self.words.first().copied().unwrap_or(0)
    }

    /// The value sign-extended from `width` bits (for widths up to 64).
    pub fn as_i64(&self) -> i64 {
        let v = self.as_u64();
        if self.width == 0 || self.width >= 64 {
            return v as i64;
        }
        let shift = 64 - self.width;
        ((v << shift) as i64) >> shift
    }
}

/// A cursor over one dialect payload, resolving references against the module.
pub struct PayloadReader<'a> {
    module: &'a Bytecode,
    owner: &'a Bytes,
    r: Reader<'a>,
}

impl<'a> PayloadReader<'a> {
    /// A reader over `data` (an attribute's, type's or properties' encoding, owned by
    /// `owner` for zero-copy blobs) reporting errors in `section`.
    pub fn new(module: &'a Bytecode, data: &'a Bytes, section: Section) -> Self {
        Self {
            module,
            owner: data,
            r: Reader::new(data, 0, section),
        }
    }

    /// The module being decoded.
    pub fn module(&self) -> &'a Bytecode {
        self.module
    }

    /// An error at the current position.
    pub fn error(&self, message: impl Into<String>) -> MlirError {
        self.r.error(message)
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.r.remaining()
    }

    /// Whether the payload is fully read.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }

    /// Fail unless the whole payload was read.
    pub fn finish(&self) -> Result<()> {
        if self.r.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!("{} trailing bytes", self.r.remaining())))
        }
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8> {
        self.r.byte()
    }

    /// A boolean (one byte).
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.r.byte()? != 0)
    }

    /// A varint.
    pub fn varint(&mut self) -> Result<u64> {
        self.r.varint()
    }

    /// A zigzag signed varint.
    pub fn signed_varint(&mut self) -> Result<i64> {
        self.r.signed_varint()
    }

    /// A varint with a flag in its low bit.
    pub fn varint_with_flag(&mut self) -> Result<(u64, bool)> {
        self.r.varint_with_flag()
    }

    /// A list count whose items take at least `min_item_bytes` each.
    pub fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize> {
        self.r.count(min_item_bytes, what)
    }

    /// A reference to an attribute.
    pub fn attr(&mut self) -> Result<AttrId> {
        Ok(AttrId(
            self.r.index(self.module.attributes.len(), "attribute")? as u32,
        ))
    }

    /// An optional attribute reference (MLIR's `readOptionalAttribute`: index and
    /// presence flag in one varint).
    pub fn optional_attr(&mut self) -> Result<Option<AttrId>> {
        let at = self.r.offset();
        let (i, present) = self.r.varint_with_flag()?;
        if !present {
            return Ok(None);
        }
        usize::try_from(i)
            .ok()
            .filter(|&i| i < self.module.attributes.len())
            .map(|i| Some(AttrId(i as u32)))
            .ok_or_else(|| {
                MlirError::malformed(
                    self.r.section(),
                    at,
                    format!("attribute index {i} out of range"),
                )
            })
    }

    /// A reference to a type.
    pub fn ty(&mut self) -> Result<TypeId> {
        Ok(TypeId(self.r.index(self.module.types.len(), "type")? as u32))
    }

    /// A string of the string table, by reference.
    pub fn string_id(&mut self) -> Result<StringId> {
        Ok(StringId(
            self.r.index(self.module.strings.len(), "string")? as u32
        ))
    }

    /// A string of the string table.
    pub fn string(&mut self) -> Result<&'a str> {
        let id = self.string_id()?;
        Ok(self.module.string(id))
    }

    /// A length-prefixed blob (a zero-copy slice of the file).
    pub fn blob(&mut self) -> Result<Bytes> {
        let n = self.r.varint()?;
        let b = self.r.bytes(n)?;
        Ok(self.owner.slice_ref(b))
    }

    /// An integer of known bit width (MLIR's `readAPIntWithKnownWidth`: one byte up to 8
    /// bits, a signed varint up to 64, else a count of words each a signed varint).
    pub fn apint(&mut self, width: u32) -> Result<ApInt> {
        if width <= 8 {
            return Ok(ApInt::from_u64(width, u64::from(self.r.byte()?)));
        }
        if width <= 64 {
            return Ok(ApInt::from_u64(width, self.r.signed_varint()? as u64));
        }
        let n = self.r.count(1, "integer word")?;
        if n > (width as usize).div_ceil(64) {
            return Err(self.error(format!("{n} words for a {width}-bit integer")));
        }
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            words.push(self.r.signed_varint()? as u64);
        }
        let mut v = ApInt { width, words };
        v.truncate();
        Ok(v)
    }

    /// A handle to a dialect resource (an index into [`Bytecode::dialect_resources`]).
    pub fn resource_handle(&mut self, num_handles: usize) -> Result<usize> {
        self.r.index(num_handles, "resource handle")
    }
}

/// Writes one dialect payload.
#[derive(Debug, Default)]
pub struct PayloadWriter {
    e: Emitter,
}

impl PayloadWriter {
    /// An empty payload.
    pub fn new() -> Self {
        Self { e: Emitter::new() }
    }

    /// The encoded bytes.
    pub fn finish(self) -> Bytes {
        Bytes::from(self.e.into_bytes())
    }

    /// One byte.
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.e.byte(b);
        self
    }

    /// A boolean.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.e.byte(u8::from(b));
        self
    }

    /// A varint.
    pub fn varint(&mut self, v: u64) -> &mut Self {
        self.e.varint(v);
        self
    }

    /// A signed varint.
    pub fn signed_varint(&mut self, v: i64) -> &mut Self {
        self.e.signed_varint(v);
        self
    }

    /// A varint with a flag.
    pub fn varint_with_flag(&mut self, v: u64, flag: bool) -> &mut Self {
        self.e.varint_with_flag(v, flag);
        self
    }

    /// An attribute reference.
    pub fn attr(&mut self, a: AttrId) -> &mut Self {
        self.e.varint(u64::from(a.0));
        self
    }

    /// An optional attribute reference.
    pub fn optional_attr(&mut self, a: Option<AttrId>) -> &mut Self {
        match a {
            Some(a) => self.e.varint_with_flag(u64::from(a.0), true),
            None => self.e.varint(0),
        }
        self
    }

    /// A type reference.
    pub fn ty(&mut self, t: TypeId) -> &mut Self {
        self.e.varint(u64::from(t.0));
        self
    }

    /// A string reference.
    pub fn string(&mut self, s: StringId) -> &mut Self {
        self.e.varint(u64::from(s.0));
        self
    }

    /// A length-prefixed blob.
    pub fn blob(&mut self, b: &[u8]) -> &mut Self {
        self.e.varint(b.len() as u64);
        self.e.bytes(b);
        self
    }

    /// An integer of known width.
    pub fn apint(&mut self, v: &ApInt) -> &mut Self {
        if v.width <= 8 {
            self.e.byte(v.as_u64() as u8);
        } else if v.width <= 64 {
            self.e.signed_varint(v.as_u64() as i64);
        } else {
            let active = v.words.iter().rposition(|&w| w != 0).map_or(1, |i| i + 1);
            self.e.varint(active as u64);
            for &w in &v.words[..active] {
                self.e.signed_varint(w as i64);
            }
        }
        self
    }

    /// A resource handle.
    pub fn resource_handle(&mut self, index: usize) -> &mut Self {
        self.e.varint(index as u64);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apint_roundtrip() {
        let m = Bytecode::new(6, "test");
        for (width, v) in [
            (1u32, 1u64),
            (8, 255),
            (32, 20260204),
            (32, 0xffff_ffff),
            (64, u64::MAX),
        ] {
            let mut w = PayloadWriter::new();
            w.apint(&ApInt::from_u64(width, v));
            let bytes = w.finish();
            let mut r = PayloadReader::new(&m, &bytes, Section::Attribute(0));
            assert_eq!(r.apint(width).unwrap().as_u64(), v);
            r.finish().unwrap();
        }
        assert_eq!(ApInt::from_u64(8, 0xff).as_i64(), -1);
        assert_eq!(ApInt::from_u64(32, 7).as_i64(), 7);
    }

    #[test]
    fn references_are_checked() {
        let m = Bytecode::new(6, "test");
        let bytes = Bytes::from_static(&[0x01]);
        assert!(
            PayloadReader::new(&m, &bytes, Section::Attribute(0))
                .attr()
                .is_err()
        );
        assert!(
            PayloadReader::new(&m, &bytes, Section::Attribute(0))
                .ty()
                .is_err()
        );
        assert_eq!(
            PayloadReader::new(&m, &bytes, Section::Attribute(0))
                .optional_attr()
                .unwrap(),
            None
        );
    }
}
