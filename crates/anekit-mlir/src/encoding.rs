//! The primitive encodings of MLIR bytecode: prefix varints, zigzag signed varints,
//! null-terminated strings, sections with optional alignment (MLIR's
//! `docs/BytecodeFormat.md`, "Primitives" and "Sections").
//!
//! [`Reader`] never panics: every read is bounds-checked and reports the section and the
//! absolute file offset. [`Emitter`] produces the canonical (shortest) encodings that
//! MLIR's own writer produces, and places section padding the way it does, so a file read
//! and written again is byte-identical.

use crate::error::{MlirError, Result, Section};

/// The byte MLIR fills alignment padding with.
pub const ALIGNMENT_BYTE: u8 = 0xCB;

/// The largest alignment accepted from a file (MLIR uses at most a few KiB; anything above
/// this is hostile input).
pub const MAX_ALIGNMENT: u64 = 1 << 24;

/// A bounds-checked cursor over a slice of a bytecode file.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute file offset of `data[0]` (for messages and alignment).
    base: usize,
    section: Section,
}

impl<'a> Reader<'a> {
    /// A reader over `data`, which starts at file offset `base`, inside `section`.
    pub fn new(data: &'a [u8], base: usize, section: Section) -> Self {
        Self {
            data,
            pos: 0,
            base,
            section,
        }
    }

    /// The section this reader reports errors in.
    pub fn section(&self) -> Section {
        self.section
    }

    /// The absolute file offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// The absolute file offset of the first byte of this reader's data.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error at the current position.
    pub fn error(&self, message: impl Into<String>) -> MlirError {
        MlirError::malformed(self.section, self.offset(), message)
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error("unexpected end of data")),
        }
    }

    /// `n` bytes, borrowed.
    pub fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let n_usize = usize::try_from(n).ok().filter(|&n| n <= self.remaining());
        let Some(n) = n_usize else {
            return Err(self.error(format!(
                "{n} bytes claimed but only {} remain",
                self.remaining()
            )));
        };
        let start = self.pos;
        self.pos += n;
        Ok(&self.data[start..start + n])
    }

    /// The rest of the data.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }

    /// A prefix varint (1 to 9 bytes).
    pub fn varint(&mut self) -> Result<u64> {
        let first = self.byte()?;
        if first & 1 == 1 {
            return Ok(u64::from(first >> 1));
        }
        if first == 0 {
            let b = self.bytes(8)?;
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            return Ok(u64::from_le_bytes(le));
        }
        // `first` is non-zero with its low bit clear: 1..=7 trailing zeros.
        let extra = first.trailing_zeros() as usize;
        let rest = self.bytes(extra as u64)?;
        let mut le = [0u8; 8];
        le[0] = first;
        le[1..=extra].copy_from_slice(rest);
        Ok(u64::from_le_bytes(le) >> (extra + 1))
    }

    /// A varint whose low bit is a flag: `(value, flag)`.
    pub fn varint_with_flag(&mut self) -> Result<(u64, bool)> {
        let v = self.varint()?;
        Ok((v >> 1, v & 1 == 1))
    }

    /// A zigzag-encoded signed varint.
    pub fn signed_varint(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A varint used as an index into a table of `len` entries.
    pub fn index(&mut self, len: usize, what: &str) -> Result<usize> {
        let at = self.offset();
        let v = self.varint()?;
        usize::try_from(v).ok().filter(|&i| i < len).ok_or_else(|| {
            MlirError::malformed(
                self.section,
                at,
                format!("{what} index {v} out of range (the table has {len})"),
            )
        })
    }

    /// A count of items that each take at least `min_item_bytes` bytes: refused when the
    /// rest of the data could not hold that many (so no allocation exceeds the input).
    pub fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize> {
        let at = self.offset();
        let v = self.varint()?;
        let limit = self.remaining() / min_item_bytes.max(1);
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= limit)
            .ok_or_else(|| {
                MlirError::malformed(
                    self.section,
                    at,
                    format!(
                        "{what} count {v} is more than the {} bytes left could hold",
                        self.remaining()
                    ),
                )
            })
    }

    /// A null-terminated string (without the terminator).
    pub fn cstr(&mut self) -> Result<&'a [u8]> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(self.error("string without a terminating NUL")),
        }
    }

    /// Skip alignment padding (bytes 0xCB) up to the next multiple of `alignment` of the
    /// absolute file offset.
    pub fn align_to(&mut self, alignment: u64) -> Result<()> {
        if alignment == 0 || !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
            return Err(self.error(format!(
                "alignment {alignment} is not a power of two up to {MAX_ALIGNMENT}"
            )));
        }
        while !(self.offset() as u64).is_multiple_of(alignment) {
            let b = self.byte()?;
            if b != ALIGNMENT_BYTE {
                return Err(MlirError::malformed(
                    self.section,
                    self.offset() - 1,
                    format!("expected alignment byte 0xCB, found {b:#04x}"),
                ));
            }
        }
        Ok(())
    }

    /// A section header and its data: `(id, alignment if present, data, file offset of
    /// data)`.
    pub fn section_data(&mut self) -> Result<RawSection<'a>> {
        let header_at = self.offset();
        let code = self.byte()?;
        let id = code & 0x7f;
        let aligned = code & 0x80 != 0;
        let len = self.varint()?;
        let alignment = if aligned {
            let a = self.varint()?;
            self.align_to(a)?;
            Some(a)
        } else {
            None
        };
        let data_offset = self.offset();
        let data = self.bytes(len).map_err(|_| {
            MlirError::malformed(
                self.section,
                header_at,
                format!(
                    "section {id} claims {len} bytes but only {} remain",
                    self.remaining()
                ),
            )
        })?;
        Ok(RawSection {
            id,
            alignment,
            data,
            offset: data_offset,
        })
    }
}

/// A section as found in the file.
#[derive(Debug, Clone, Copy)]
pub struct RawSection<'a> {
    /// The section id (high bit cleared).
    pub id: u8,
    /// The alignment, when the header carried one.
    pub alignment: Option<u64>,
    /// The section's data.
    pub data: &'a [u8],
    /// File offset of `data`.
    pub offset: usize,
}

/// A growable output buffer with MLIR's encodings and alignment bookkeeping.
#[derive(Debug, Default, Clone)]
pub struct Emitter {
    buf: Vec<u8>,
    /// The largest alignment something in this buffer needs (relative to its start).
    required_alignment: u64,
}

impl Emitter {
    /// An empty emitter.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            required_alignment: 1,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// One byte.
    pub fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Overwrite the byte at `offset`.
    pub fn patch_byte(&mut self, offset: usize, b: u8) {
        if let Some(slot) = self.buf.get_mut(offset) {
            *slot = b;
        }
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A prefix varint in its shortest form.
    pub fn varint(&mut self, value: u64) {
        if value >> 7 == 0 {
            self.buf.push(((value << 1) | 1) as u8);
            return;
        }
        let mut it = value >> 7;
        for num_bytes in 2..9usize {
            it >>= 7;
            if it == 0 {
                let encoded = ((value << 1) | 1) << (num_bytes - 1);
                self.buf
                    .extend_from_slice(&encoded.to_le_bytes()[..num_bytes]);
                return;
            }
        }
        self.buf.push(0);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A varint with a flag in its low bit.
    pub fn varint_with_flag(&mut self, value: u64, flag: bool) {
        self.varint((value << 1) | u64::from(flag));
    }

    /// A zigzag signed varint.
    pub fn signed_varint(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    /// A null-terminated string.
    pub fn cstr(&mut self, s: &[u8]) {
        self.buf.extend_from_slice(s);
        self.buf.push(0);
    }

    /// Pad with 0xCB to a multiple of `alignment` (relative to this emitter's start) and
    /// remember that this emitter's data needs that alignment.
    pub fn align_to(&mut self, alignment: u64) {
        if alignment < 2 {
            return;
        }
        while !(self.buf.len() as u64).is_multiple_of(alignment) {
            self.buf.push(ALIGNMENT_BYTE);
        }
        self.required_alignment = self.required_alignment.max(alignment);
    }

    /// Append `section` as a section with id `id`, aligned as its content requires
    /// (MLIR's `EncodingEmitter::emitSection`: the alignment is written only when the
    /// current offset is not already a multiple of it).
    pub fn section(&mut self, id: u8, section: Emitter) {
        let code_at = self.buf.len();
        self.byte(id);
        self.varint(section.buf.len() as u64);
        let align = section.required_alignment;
        if align > 1 {
            if !(self.buf.len() as u64).is_multiple_of(align) {
                self.varint(align);
                self.align_to(align);
                self.patch_byte(code_at, id | 0x80);
            } else {
                self.required_alignment = self.required_alignment.max(align);
            }
        }
        self.buf.extend_from_slice(&section.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: u64) -> usize {
        let mut e = Emitter::new();
        e.varint(v);
        let bytes = e.into_bytes();
        let mut r = Reader::new(&bytes, 0, Section::Header);
        assert_eq!(r.varint().unwrap(), v, "value {v}");
        assert!(r.is_empty());
        bytes.len()
    }

    #[test]
    fn varint_lengths_follow_the_format_table() {
        // BytecodeFormat.md: 7 value bits per byte, 9 bytes for 64 bits.
        assert_eq!(roundtrip(0), 1);
        assert_eq!(roundtrip(127), 1);
        assert_eq!(roundtrip(128), 2);
        assert_eq!(roundtrip((1 << 14) - 1), 2);
        assert_eq!(roundtrip(1 << 14), 3);
        assert_eq!(roundtrip((1 << 56) - 1), 8);
        assert_eq!(roundtrip(1 << 56), 9);
        assert_eq!(roundtrip(u64::MAX), 9);
        for shift in 0..64 {
            roundtrip(1u64 << shift);
            roundtrip((1u64 << shift) - 1);
        }
    }

    #[test]
    fn known_encodings() {
        // Bytes seen in a coreai-core file: 0x0d is version 6, 0x81 is 64, 04 00 c8 the
        // size of a 1280x320 fp32 weight.
        let mut r = Reader::new(&[0x0d, 0x81, 0x04, 0x00, 0xc8], 0, Section::Header);
        assert_eq!(r.varint().unwrap(), 6);
        assert_eq!(r.varint().unwrap(), 64);
        assert_eq!(r.varint().unwrap(), 1_638_400);
    }

    #[test]
    fn signed_zigzag() {
        for v in [0i64, 1, -1, 2, -2, i64::MAX, i64::MIN, 20260204] {
            let mut e = Emitter::new();
            e.signed_varint(v);
            let b = e.into_bytes();
            assert_eq!(
                Reader::new(&b, 0, Section::Header).signed_varint().unwrap(),
                v
            );
        }
        // i64::MIN (a dynamic dimension) is the 9-byte all-ones varint.
        let mut e = Emitter::new();
        e.signed_varint(i64::MIN);
        assert_eq!(
            e.into_bytes(),
            [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn truncated_and_oversized_input_are_errors() {
        assert!(Reader::new(&[0x02], 0, Section::Ir).varint().is_err());
        assert!(Reader::new(&[0x00, 1, 2], 0, Section::Ir).varint().is_err());
        let mut r = Reader::new(&[0x05, 1], 0, Section::Ir);
        assert!(r.count(1, "things").is_err());
        let mut r = Reader::new(&[0x03, 1], 0, Section::Ir);
        assert_eq!(r.count(1, "things").unwrap(), 1);
        assert!(Reader::new(&[1, 2], 0, Section::Ir).cstr().is_err());
        let mut r = Reader::new(&[0x01, 0x07], 0, Section::Ir);
        assert!(r.bytes(u64::MAX).is_err());
    }

    #[test]
    fn aligned_sections() {
        let mut inner = Emitter::new();
        inner.byte(1);
        inner.align_to(16);
        inner.bytes(&[9; 4]);
        let mut top = Emitter::new();
        top.bytes(b"abc");
        top.section(5, inner);
        let bytes = top.into_bytes();
        assert_eq!(bytes[3], 0x85, "the alignment flag is set");
        let mut r = Reader::new(&bytes, 0, Section::Header);
        r.bytes(3).unwrap();
        let s = r.section_data().unwrap();
        assert_eq!(s.id, 5);
        assert_eq!(s.alignment, Some(16));
        assert_eq!(s.offset % 16, 0);
        assert_eq!(s.data.len(), 20);
        assert!(r.is_empty());
    }

    #[test]
    fn bad_padding_is_an_error() {
        let mut r = Reader::new(&[0x85, 0x03, 0x21, 0x00, 1, 2, 3], 0, Section::Header);
        let e = r.section_data().unwrap_err();
        assert!(e.to_string().contains("0xCB"), "{e}");
    }
}
