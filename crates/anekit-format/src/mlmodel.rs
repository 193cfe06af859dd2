//! The single-file model format (`.mlmodel`): one serialized `CoreML.Specification.Model`.
//!
//! The same encoding is the root model file of a package (`Data/com.apple.CoreML/model.mlmodel`)
//! and the optional `model.mlmodel` of a compiled model. Protobuf messages are limited to
//! 2 GiB, so a larger file is refused before any of it is read.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use prost::Message;

use crate::error::{FormatError, Result};
use crate::proto;

/// The largest model file read or written: protobuf's 2 GiB message limit.
pub const MAX_MODEL_FILE_SIZE: u64 = 2 * 1024 * 1024 * 1024;

/// Decode a `Model` from `bytes`, naming `path` in errors.
pub fn decode_model(path: &Path, bytes: &[u8]) -> Result<proto::Model> {
    if bytes.len() as u64 > MAX_MODEL_FILE_SIZE {
        return Err(too_large(path, bytes.len() as u64));
    }
    proto::Model::decode(bytes).map_err(|source| FormatError::Protobuf {
        path: path.to_path_buf(),
        message_type: "CoreML.Specification.Model",
        source,
    })
}

/// Read and decode the model file at `path` (refusing files over [`MAX_MODEL_FILE_SIZE`]).
pub fn read_model(path: impl AsRef<Path>) -> Result<proto::Model> {
    let path = path.as_ref();
    let bytes = read_limited(path, MAX_MODEL_FILE_SIZE, "model file")?;
    decode_model(path, &bytes)
}

/// Encode `model` to its protobuf bytes.
pub fn encode_model(model: &proto::Model) -> Vec<u8> {
    model.encode_to_vec()
}

/// Encode `model` and write it to `path` (created or truncated), flushed to disk.
///
/// Refuses a model whose encoding exceeds [`MAX_MODEL_FILE_SIZE`], which no reader could load.
pub fn write_model(path: impl AsRef<Path>, model: &proto::Model) -> Result<()> {
    let path = path.as_ref();
    let len = model.encoded_len() as u64;
    if len > MAX_MODEL_FILE_SIZE {
        return Err(too_large(path, len));
    }
    let bytes = encode_model(model);
    let mut f = File::create(path).map_err(|e| FormatError::io(path, "creating model file", e))?;
    f.write_all(&bytes)
        .map_err(|e| FormatError::io(path, "writing model file", e))?;
    f.sync_all()
        .map_err(|e| FormatError::io(path, "flushing model file", e))?;
    Ok(())
}

fn too_large(path: &Path, len: u64) -> FormatError {
    FormatError::invalid(
        path,
        "size",
        format!(
            "{len} bytes exceeds the {MAX_MODEL_FILE_SIZE}-byte (2 GiB) protobuf message limit"
        ),
    )
}

/// Read a whole regular file of at most `limit` bytes.
///
/// The size is checked from the file's metadata before anything is allocated, and the read
/// itself stops after `limit` bytes, so a file that grows meanwhile cannot make it allocate
/// more. `what` names the file in errors ("model file", "Manifest.json", ...).
pub(crate) fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    // Checked before opening: opening a FIFO or device planted in a model folder could block
    // or read forever.
    let kind = std::fs::metadata(path).map_err(|e| FormatError::io(path, "opening", e))?;
    if !kind.is_file() {
        return Err(FormatError::invalid(path, what, "is not a regular file"));
    }
    let file = File::open(path).map_err(|e| FormatError::io(path, "opening", e))?;
    let meta = file
        .metadata()
        .map_err(|e| FormatError::io(path, "reading file metadata", e))?;
    if !meta.is_file() {
        return Err(FormatError::invalid(path, what, "is not a regular file"));
    }
    let len = meta.len();
    if len > limit {
        return Err(FormatError::invalid(
            path,
            "size",
            format!("{what} is {len} bytes, more than the {limit}-byte limit"),
        ));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len as usize).map_err(|_| {
        FormatError::invalid(
            path,
            "size",
            format!("cannot allocate {len} bytes for the {what}"),
        )
    })?;
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| FormatError::io(path, "reading", e))?;
    if buf.len() as u64 > limit {
        return Err(FormatError::invalid(
            path,
            "size",
            format!("{what} grew past the {limit}-byte limit while being read"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_protobuf_names_the_file() {
        let model = proto::Model {
            specification_version: 9,
            description: Some(proto::ModelDescription {
                input: vec![proto::FeatureDescription {
                    name: "x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = encode_model(&model);
        assert_eq!(decode_model(Path::new("m.mlmodel"), &bytes).unwrap(), model);
        let err = decode_model(Path::new("m.mlmodel"), &bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.mlmodel") && err.contains("Model"), "{err}");
    }
}
