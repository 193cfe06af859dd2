//! The MIL weight-blob file (`weights/weight.bin`, "blob storage v2").
//!
//! Layout (little-endian; `mlmodel/src/MILBlob/Blob/StorageFormat.hpp` in coremltools):
//!
//! ```text
//! [storage_header 64 B][blob_metadata 64 B][payload][pad to 64][blob_metadata 64 B][payload]...
//! storage_header: u32 count, u32 version (= 2), 7 × u64 reserved
//! blob_metadata:  u32 sentinel (= 0xDEADBEEF), u32 dtype, u64 size_in_bytes, u64 offset,
//!                 u64 padding_size_in_bits, 4 × u64 reserved
//! ```
//!
//! A `BlobFileValue` in the model points at a **metadata** record by its file offset. The
//! reader maps the file and hands out [`Bytes`] views into the map: opening a 1 GB weight file
//! reads 64 bytes, and a weight is only paged in when something computes with it.
//!
//! Every offset and size read from the file is checked against the file length before use;
//! a malformed file gives a [`FormatError::Invalid`] naming the record and field.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{FormatError, Result};

/// Size of the storage header at the start of the file.
pub const HEADER_SIZE: u64 = 64;
/// Size of each blob's metadata record.
pub const METADATA_SIZE: u64 = 64;
/// The marker that starts every metadata record.
pub const SENTINEL: u32 = 0xDEAD_BEEF;
/// The only storage version Core ML reads (version 1 was Espresso's blob_v1).
pub const VERSION: u32 = 2;
/// Alignment of every metadata record and payload.
pub const ALIGNMENT: u64 = 64;

/// Element type of a blob (`BlobDataType.hpp`).
///
/// The numbers differ from MIL.proto's `DataType`; the IR maps between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum BlobDataType {
    Float16 = 1,
    Float32 = 2,
    UInt8 = 3,
    Int8 = 4,
    BFloat16 = 5,
    Int16 = 6,
    UInt16 = 7,
    Int4 = 8,
    UInt1 = 9,
    UInt2 = 10,
    UInt4 = 11,
    UInt3 = 12,
    UInt6 = 13,
    Int32 = 14,
    UInt32 = 15,
    Float8E4M3FN = 16,
    Float8E5M2 = 17,
}

impl BlobDataType {
    /// Every blob data type, in numeric order.
    pub const ALL: [BlobDataType; 17] = [
        Self::Float16,
        Self::Float32,
        Self::UInt8,
        Self::Int8,
        Self::BFloat16,
        Self::Int16,
        Self::UInt16,
        Self::Int4,
        Self::UInt1,
        Self::UInt2,
        Self::UInt4,
        Self::UInt3,
        Self::UInt6,
        Self::Int32,
        Self::UInt32,
        Self::Float8E4M3FN,
        Self::Float8E5M2,
    ];

    /// The type with the on-disk number `v`, if any.
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| *t as u32 == v)
    }

    /// Width of one element in bits.
    pub fn bits(self) -> u32 {
        match self {
            Self::UInt1 => 1,
            Self::UInt2 => 2,
            Self::UInt3 => 3,
            Self::Int4 | Self::UInt4 => 4,
            Self::UInt6 => 6,
            Self::UInt8 | Self::Int8 | Self::Float8E4M3FN | Self::Float8E5M2 => 8,
            Self::Float16 | Self::BFloat16 | Self::Int16 | Self::UInt16 => 16,
            Self::Float32 | Self::Int32 | Self::UInt32 => 32,
        }
    }

    /// Whether elements are narrower than a byte (packed LSB-first, see [`crate::subbyte`]).
    pub fn is_sub_byte(self) -> bool {
        self.bits() < 8
    }
}

/// Round `v` up to the next multiple of [`ALIGNMENT`].
pub fn align64(v: u64) -> Option<u64> {
    v.checked_add(ALIGNMENT - 1).map(|x| x & !(ALIGNMENT - 1))
}

/// One blob: its metadata and a view of its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Element type.
    pub dtype: BlobDataType,
    /// Payload bytes (sub-byte types packed LSB-first, trailing bits unused).
    pub data: Bytes,
    /// Unused trailing bits of the last byte (sub-byte types only; 0 otherwise).
    pub padding_bits: u64,
    /// File offset of the metadata record (the value a `BlobFileValue.offset` holds).
    pub metadata_offset: u64,
}

impl Blob {
    /// Number of elements in the payload.
    pub fn element_count(&self) -> u64 {
        let bits = (self.data.len() as u64)
            .saturating_mul(8)
            .saturating_sub(self.padding_bits);
        bits / u64::from(self.dtype.bits())
    }
}

/// A weight-blob file opened for reading (memory-mapped).
#[derive(Debug, Clone)]
pub struct BlobFile {
    path: PathBuf,
    data: Bytes,
    count: u32,
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

impl BlobFile {
    /// Map the file at `path` and check its header. Reads no payload.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| FormatError::io(path, "opening weight file", e))?;
        let len = file
            .metadata()
            .map_err(|e| FormatError::io(path, "reading weight file metadata", e))?
            .len();
        if len < HEADER_SIZE {
            return Err(FormatError::invalid(
                path,
                "storage_header",
                format!("file is {len} bytes, shorter than the {HEADER_SIZE}-byte header"),
            ));
        }
        // SAFETY: the map is read-only and private to this process. Core ML weight files are
        // not modified while a model is open; if another process truncates the file anyway,
        // access to the vanished pages raises SIGBUS (a documented limit of memory-mapping,
        // see memmap2's docs) rather than reading out of bounds. All offsets are checked
        // against the length observed here before any access.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }
            .map_err(|e| FormatError::io(path, "memory-mapping weight file", e))?;
        Self::from_bytes(path, Bytes::from_owner(map))
    }

    /// Use `data` (e.g. a file read into memory) as the content of the blob file `path`.
    pub fn from_bytes(path: impl Into<PathBuf>, data: Bytes) -> Result<Self> {
        let path = path.into();
        let (Some(count), Some(version)) = (read_u32(&data, 0), read_u32(&data, 4)) else {
            return Err(FormatError::invalid(
                &path,
                "storage_header",
                format!(
                    "file is {} bytes, shorter than the {HEADER_SIZE}-byte header",
                    data.len()
                ),
            ));
        };
        if (data.len() as u64) < HEADER_SIZE {
            return Err(FormatError::invalid(
                &path,
                "storage_header",
                format!(
                    "file is {} bytes, shorter than the {HEADER_SIZE}-byte header",
                    data.len()
                ),
            ));
        }
        if version != VERSION {
            return Err(FormatError::invalid(
                &path,
                "storage_header.version",
                format!("is {version}; only blob storage version {VERSION} is supported"),
            ));
        }
        // Each blob needs at least a metadata record; a count the file cannot hold is corrupt.
        let max = (data.len() as u64 - HEADER_SIZE) / METADATA_SIZE;
        if u64::from(count) > max {
            return Err(FormatError::invalid(
                &path,
                "storage_header.count",
                format!(
                    "claims {count} blobs but a {}-byte file holds at most {max}",
                    data.len()
                ),
            ));
        }
        Ok(Self { path, data, count })
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of blobs the header declares.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Total file size in bytes.
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether the file holds no bytes (never true for a file that opened).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The blob whose metadata record starts at `metadata_offset`.
    pub fn blob(&self, metadata_offset: u64) -> Result<Blob> {
        let field = |f: &str| format!("blob_metadata@{metadata_offset}.{f}");
        let len = self.data.len() as u64;
        if metadata_offset < HEADER_SIZE
            || metadata_offset
                .checked_add(METADATA_SIZE)
                .is_none_or(|end| end > len)
        {
            return Err(FormatError::invalid(
                &self.path,
                format!("blob_metadata@{metadata_offset}"),
                format!("metadata record does not lie inside the {len}-byte file after the header"),
            ));
        }
        let at = metadata_offset as usize; // < len, which is a usize
        let get32 = |o: usize| read_u32(&self.data, at + o).unwrap_or(0);
        let get64 = |o: usize| read_u64(&self.data, at + o).unwrap_or(0);
        let sentinel = get32(0);
        if sentinel != SENTINEL {
            return Err(FormatError::invalid(
                &self.path,
                field("sentinel"),
                format!("is {sentinel:#010x}, expected {SENTINEL:#010x}"),
            ));
        }
        let raw_dtype = get32(4);
        let dtype = BlobDataType::from_u32(raw_dtype).ok_or_else(|| {
            FormatError::invalid(
                &self.path,
                field("mil_dtype"),
                format!("unknown value {raw_dtype}"),
            )
        })?;
        let size = get64(8);
        let offset = get64(16);
        let padding_bits = get64(24);
        let end = offset
            .checked_add(size)
            .filter(|&e| e <= len)
            .ok_or_else(|| {
                // Name the field that is out of range: the offset itself, or the size.
                let which = if offset > len {
                    "offset"
                } else {
                    "sizeInBytes"
                };
                FormatError::invalid(
                    &self.path,
                    field(which),
                    format!("payload [{offset}, +{size}) runs past the end of the {len}-byte file"),
                )
            })?;
        if dtype.is_sub_byte() {
            let bits = u64::from(dtype.bits());
            if padding_bits >= 8 || (bits != 3 && bits != 6 && padding_bits % bits != 0) {
                return Err(FormatError::invalid(
                    &self.path,
                    field("padding_size_in_bits"),
                    format!("{padding_bits} is not a valid padding for {bits}-bit elements"),
                ));
            }
            if size == 0 && padding_bits != 0 {
                return Err(FormatError::invalid(
                    &self.path,
                    field("padding_size_in_bits"),
                    "non-zero padding on an empty payload",
                ));
            }
        } else {
            if padding_bits != 0 {
                return Err(FormatError::invalid(
                    &self.path,
                    field("padding_size_in_bits"),
                    format!("{padding_bits} for a byte-sized type (must be 0)"),
                ));
            }
            let width = u64::from(dtype.bits() / 8);
            if size % width != 0 {
                return Err(FormatError::invalid(
                    &self.path,
                    field("sizeInBytes"),
                    format!("{size} is not a multiple of the {width}-byte element size"),
                ));
            }
        }
        Ok(Blob {
            dtype,
            data: self.data.slice(offset as usize..end as usize),
            padding_bits,
            metadata_offset,
        })
    }

    /// Every blob in file order, found by walking from the first record
    /// (next record = `align64(offset + size)`), as many as the header declares.
    pub fn blobs(&self) -> impl Iterator<Item = Result<Blob>> + '_ {
        let mut next = Some(HEADER_SIZE);
        let mut remaining = self.count;
        std::iter::from_fn(move || {
            if remaining == 0 {
                return None;
            }
            remaining -= 1;
            let at = next?;
            let blob = self.blob(at);
            match &blob {
                Ok(b) => {
                    let payload_end =
                        b.data.as_ptr() as usize - self.data.as_ptr() as usize + b.data.len();
                    next = align64(payload_end as u64);
                }
                Err(_) => {
                    next = None;
                    remaining = 0;
                }
            }
            Some(blob)
        })
    }
}

/// Writes a weight-blob file: version 2, every record 64-byte aligned, reserved fields zero.
///
/// Payloads are streamed to the writer as they are appended, so a model larger than memory
/// can be written; [`BlobWriter::finish`] fixes up the blob count in the header.
#[derive(Debug)]
pub struct BlobWriter<W: Write + Seek> {
    out: W,
    pos: u64,
    count: u32,
}

impl BlobWriter<std::io::BufWriter<File>> {
    /// Create (truncate) the file at `path` and write an empty header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = File::create(path).map_err(|e| FormatError::io(path, "creating weight file", e))?;
        Self::new(std::io::BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| FormatError::io(path, "writing weight file header", e))
    }
}

impl<W: Write + Seek> BlobWriter<W> {
    /// Start a blob file on `out` (which must be empty and positioned at 0).
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(&header(0))?;
        Ok(Self {
            out,
            pos: HEADER_SIZE,
            count: 0,
        })
    }

    /// Number of blobs written so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Append one blob and return the offset of its metadata record (what a
    /// `BlobFileValue.offset` must hold). `padding_bits` is the number of unused trailing
    /// bits for sub-byte types (see [`crate::subbyte::padding_bits`]) and 0 otherwise.
    pub fn append(
        &mut self,
        dtype: BlobDataType,
        data: &[u8],
        padding_bits: u64,
    ) -> std::io::Result<u64> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        if !dtype.is_sub_byte() && padding_bits != 0 {
            return Err(invalid(format!(
                "padding bits {padding_bits} for {dtype:?}"
            )));
        }
        if padding_bits >= 8 {
            return Err(invalid(format!("padding bits {padding_bits} >= 8")));
        }
        if !dtype.is_sub_byte() && !data.len().is_multiple_of(dtype.bits() as usize / 8) {
            return Err(invalid(format!(
                "{} bytes is not a whole number of {dtype:?}",
                data.len()
            )));
        }
        let count = self
            .count
            .checked_add(1)
            .ok_or_else(|| invalid("too many blobs".into()))?;
        let meta_at = align64(self.pos).ok_or_else(|| invalid("file too large".into()))?;
        self.pad_to(meta_at)?;
        let payload_at = meta_at + METADATA_SIZE;
        let mut meta = [0u8; METADATA_SIZE as usize];
        meta[0..4].copy_from_slice(&SENTINEL.to_le_bytes());
        meta[4..8].copy_from_slice(&(dtype as u32).to_le_bytes());
        meta[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        meta[16..24].copy_from_slice(&payload_at.to_le_bytes());
        meta[24..32].copy_from_slice(&padding_bits.to_le_bytes());
        self.out.write_all(&meta)?;
        self.out.write_all(data)?;
        self.pos = payload_at + data.len() as u64;
        self.count = count;
        Ok(meta_at)
    }

    fn pad_to(&mut self, at: u64) -> std::io::Result<()> {
        const ZEROS: [u8; ALIGNMENT as usize] = [0; ALIGNMENT as usize];
        let n = (at - self.pos) as usize; // < ALIGNMENT
        self.out.write_all(&ZEROS[..n])?;
        self.pos = at;
        Ok(())
    }

    /// Write the final blob count into the header and
    /// flush. Returns the underlying writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        // Like coremltools, the file ends right after the last payload (no final padding).
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.count))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn header(count: u32) -> [u8; HEADER_SIZE as usize] {
    let mut h = [0u8; HEADER_SIZE as usize];
    h[0..4].copy_from_slice(&count.to_le_bytes());
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn write(blobs: &[(BlobDataType, Vec<u8>, u64)]) -> (Vec<u8>, Vec<u64>) {
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let offs = blobs
            .iter()
            .map(|(t, d, p)| w.append(*t, d, *p).unwrap())
            .collect();
        (w.finish().unwrap().into_inner(), offs)
    }

    #[test]
    fn layout_matches_coremltools() {
        // coremltools 9.0: first metadata at 64, payload at 128; a 16384-byte fp16 weight puts
        // the next metadata at 16512 (docs/references.md#weight-blob-file).
        let (bytes, offs) = write(&[
            (BlobDataType::Float16, vec![1; 16384], 0),
            (BlobDataType::Float16, vec![2; 128], 0),
        ]);
        assert_eq!(offs, vec![64, 16512]);
        assert_eq!(&bytes[0..8], &[2, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(read_u64(&bytes, 64 + 16), Some(128));
        // No padding after the last payload, as coremltools writes it.
        assert_eq!(bytes.len(), 16512 + 64 + 128);
        let f = BlobFile::from_bytes("w.bin", Bytes::from(bytes)).unwrap();
        let all: Vec<_> = f.blobs().collect::<Result<_>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].metadata_offset, 16512);
        assert_eq!(all[1].data.as_ref(), &[2u8; 128][..]);
    }

    #[test]
    fn sub_byte_element_count() {
        // 5 uint3 elements = 15 bits = 2 bytes with 1 padding bit.
        let (bytes, offs) = write(&[(BlobDataType::UInt3, vec![0xff, 0x7f], 1)]);
        let f = BlobFile::from_bytes("w.bin", Bytes::from(bytes)).unwrap();
        assert_eq!(f.blob(offs[0]).unwrap().element_count(), 5);
    }

    #[test]
    fn rejects_corruption() {
        let (good, offs) = write(&[(BlobDataType::Float32, vec![0; 64], 0)]);
        let check = |bytes: Vec<u8>, field: &str| {
            let err = BlobFile::from_bytes("w.bin", Bytes::from(bytes))
                .and_then(|f| f.blob(offs[0]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(err.contains("w.bin"), "{err} should name the file");
        };
        let mut b = good.clone();
        b[4] = 1;
        check(b, "version");
        let mut b = good.clone();
        b[64] = 0;
        check(b, "sentinel");
        let mut b = good.clone();
        b[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        check(b, "sizeInBytes");
        let mut b = good.clone();
        b[64 + 16..64 + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        check(b, "offset");
        let mut b = good.clone();
        b[64 + 4] = 99;
        check(b, "mil_dtype");
        let mut b = good.clone();
        b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        check(b, "count");
        check(good[..100].to_vec(), "count");
        check(
            [&good[..4], &[2, 0, 0, 0], &good[8..160]].concat(),
            "sizeInBytes",
        );
        check(good[..10].to_vec(), "storage_header");
        let f = BlobFile::from_bytes("w.bin", Bytes::from(good)).unwrap();
        assert!(f.blob(u64::MAX - 3).is_err());
        assert!(f.blob(0).is_err());
    }
}
