//! The Core AI model folder (`.aimodel`): `metadata.json`, `main.mlirb` (an MLIR bytecode
//! module, see [`anekit_mlir`]) and `main.hash` (the raw 32-byte SHA-256 of
//! `main.mlirb`), as coreai-core 1.0.0b3 writes them (`AIProgram.save_asset`); see
//! `docs/coreai.md`.
//!
//! [`AiModel::open`] memory-maps `main.mlirb` (weights in the bytecode's resource section
//! stay in the map), checks its hash, and parses it. [`write`] writes a folder through a
//! temporary sibling renamed into place.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};

/// The module file.
pub const MODULE_FILE_NAME: &str = "main.mlirb";
/// The module's SHA-256, raw (32 bytes).
pub const HASH_FILE_NAME: &str = "main.hash";
/// The metadata.
pub const METADATA_FILE_NAME: &str = "metadata.json";

/// The largest `metadata.json` read (coreai-core writes about 100 bytes).
const MAX_METADATA_BYTES: u64 = 1 << 20;

/// `metadata.json`: the fields coreai-core writes, and any others kept as they are.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// Who wrote the asset (`coreai-core 1.0.0b3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// When (`20261207T104945Z`).
    #[serde(rename = "creationDate", skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    /// The asset format version (`2.0`).
    #[serde(rename = "assetVersion", skip_serializing_if = "Option::is_none")]
    pub asset_version: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Metadata {
    /// Parse `metadata.json` (`path` names the file in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| FormatError::invalid(path, "metadata.json", e.to_string()))
    }

    /// Metadata for an asset anekit writes now.
    pub fn anekit(asset_version: &str) -> Self {
        Self {
            producer: Some(format!("anekit {}", env!("CARGO_PKG_VERSION"))),
            creation_date: Some(utc_stamp()),
            asset_version: Some(asset_version.to_string()),
            other: serde_json::Map::new(),
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` for now (the format coreai-core uses).
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An opened `.aimodel` folder.
#[derive(Debug, Clone)]
pub struct AiModel {
    /// The folder.
    pub root: PathBuf,
    /// `metadata.json`.
    pub metadata: Metadata,
    /// `main.mlirb`, memory-mapped.
    pub bytes: Bytes,
    /// The parsed module (its payloads are slices of `bytes`).
    pub module: anekit_mlir::Bytecode,
}

/// Whether `path` looks like a Core AI model folder (has `main.mlirb`).
pub fn is_aimodel(path: &Path) -> bool {
    path.is_dir() && path.join(MODULE_FILE_NAME).is_file()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl AiModel {
    /// Open the folder at `path`: metadata, hash check, module.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(FormatError::UnknownFormat {
                path: root,
                message: "a Core AI model (.aimodel) is a folder".into(),
            });
        }
        let meta_path = root.join(METADATA_FILE_NAME);
        let metadata = match fs::metadata(&meta_path) {
            Ok(m) if m.len() > MAX_METADATA_BYTES => {
                return Err(FormatError::invalid(
                    &meta_path,
                    "size",
                    format!("{} bytes (at most {MAX_METADATA_BYTES} are read)", m.len()),
                ));
            }
            Ok(_) => {
                let b =
                    fs::read(&meta_path).map_err(|e| FormatError::io(&meta_path, "reading", e))?;
                Metadata::parse(&meta_path, &b)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %meta_path.display(), "no metadata.json");
                Metadata::default()
            }
            Err(e) => return Err(FormatError::io(&meta_path, "reading", e)),
        };
        let module_path = root.join(MODULE_FILE_NAME);
        let bytes = map(&module_path)?;
        let hash_path = root.join(HASH_FILE_NAME);
        match fs::read(&hash_path) {
            Ok(expected) => {
                if expected.len() != 32 {
                    return Err(FormatError::invalid(
                        &hash_path,
                        "hash",
                        format!("{} bytes; a SHA-256 is 32", expected.len()),
                    ));
                }
                let actual = sha256(&bytes);
                if actual[..] != expected[..] {
                    return Err(FormatError::invalid(
                        &module_path,
                        "hash",
                        format!(
                            "SHA-256 {} does not match {} in {HASH_FILE_NAME} (the file was changed or is damaged)",
                            hex(&actual),
                            hex(&expected)
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FormatError::invalid(
                    &hash_path,
                    "hash",
                    "missing (every .aimodel carries the SHA-256 of main.mlirb)",
                ));
            }
            Err(e) => return Err(FormatError::io(&hash_path, "reading", e)),
        }
        let module = anekit_mlir::read(bytes.clone())
            .map_err(|e| FormatError::invalid(&module_path, "MLIR bytecode", e.to_string()))?;
        Ok(Self {
            root,
            metadata,
            bytes,
            module,
        })
    }
}

/// Memory-map a file (empty files are read as empty).
fn map(path: &Path) -> Result<Bytes> {
    let file = fs::File::open(path).map_err(|e| FormatError::io(path, "opening", e))?;
    let len = file
        .metadata()
        .map_err(|e| FormatError::io(path, "reading metadata of", e))?
        .len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only and private to this process. A model is not modified
    // while it is open; if another process truncates the file anyway, touching the lost
    // pages raises SIGBUS (a documented limit of memory-mapping, see memmap2's docs)
    // rather than reading out of bounds. The bytecode reader checks every offset against
    // the length of this map.
    let m = unsafe { memmap2::MmapOptions::new().map(&file) }
        .map_err(|e| FormatError::io(path, "memory-mapping", e))?;
    Ok(Bytes::from_owner(m))
}

/// Write an `.aimodel` folder at `dest` holding `module` (encoded bytecode) and
/// `metadata`, with its hash, through a temporary sibling renamed into place. `dest` may
/// exist only as an `.aimodel` folder or an empty folder (it is then replaced).
pub fn write(dest: impl AsRef<Path>, module: &[u8], metadata: &Metadata) -> Result<PathBuf> {
    let dest = dest.as_ref().to_path_buf();
    let Some(name) = dest.file_name() else {
        return Err(FormatError::invalid(
            &dest,
            "output path",
            "has no file name",
        ));
    };
    if dest.extension().is_none_or(|e| e != "aimodel") {
        tracing::warn!(path = %dest.display(), "Core AI loads folders named *.aimodel");
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(FormatError::invalid(
            &dest,
            "output path",
            format!("parent folder {} does not exist", parent.display()),
        ));
    }
    check_replaceable(&dest)?;
    let tmp = parent.join(format!(
        ".{}.anekit-tmp-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4()
    ));
    let result = (|| {
        fs::create_dir(&tmp).map_err(|e| FormatError::io(&tmp, "creating", e))?;
        write_synced(&tmp.join(MODULE_FILE_NAME), module)?;
        write_synced(&tmp.join(HASH_FILE_NAME), &sha256(module))?;
        let mut json = serde_json::to_string_pretty(metadata)
            .map_err(|e| FormatError::invalid(&dest, "metadata.json", e.to_string()))?;
        json.push('\n');
        write_synced(&tmp.join(METADATA_FILE_NAME), json.as_bytes())?;
        rename_into_place(&tmp, &dest)
    })();
    if result.is_err() && tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| dest)
}

fn check_replaceable(dest: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(dest) else {
        return Ok(());
    };
    let ok = meta.is_dir()
        && (dest.join(MODULE_FILE_NAME).is_file()
            || fs::read_dir(dest).is_ok_and(|mut d| d.next().is_none()));
    if ok {
        Ok(())
    } else {
        Err(FormatError::invalid(
            dest,
            "output path",
            "exists and is not a Core AI model folder; refusing to replace it",
        ))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| FormatError::io(path, "creating", e))?;
    f.write_all(bytes)
        .map_err(|e| FormatError::io(path, "writing", e))?;
    f.sync_all()
        .map_err(|e| FormatError::io(path, "flushing", e))
}

fn rename_into_place(tmp: &Path, dest: &Path) -> Result<()> {
    if fs::symlink_metadata(dest).is_err() {
        return fs::rename(tmp, dest).map_err(|e| FormatError::io(dest, "renaming into place", e));
    }
    let old = tmp.with_file_name(format!(
        ".{}.anekit-old-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uuid::Uuid::new_v4()
    ));
    fs::rename(dest, &old)
        .map_err(|e| FormatError::io(dest, "moving the existing folder aside", e))?;
    if let Err(e) = fs::rename(tmp, dest) {
        if let Err(e2) = fs::rename(&old, dest) {
            tracing::error!(old = %old.display(), error = %e2, "could not restore the previous model; it is kept at the old path");
        }
        return Err(FormatError::io(dest, "renaming into place", e));
    }
    if let Err(e) = fs::remove_dir_all(&old) {
        tracing::warn!(old = %old.display(), error = %e, "could not delete the replaced model");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_format() {
        let s = utc_stamp();
        assert_eq!(s.len(), 16, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[8] == b'T', "{s}");
    }

    #[test]
    fn metadata_round_trip_keeps_unknown_fields() {
        let json = br#"{"producer" : "coreai-core 1.0.0b3", "creationDate" : "20261207T104945Z", "assetVersion" : "2.0", "extra": 1}"#;
        let m = Metadata::parse(Path::new("metadata.json"), json).unwrap();
        assert_eq!(m.producer.as_deref(), Some("coreai-core 1.0.0b3"));
        assert_eq!(m.asset_version.as_deref(), Some("2.0"));
        let again: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(again["extra"], 1);
        assert!(Metadata::parse(Path::new("metadata.json"), b"{").is_err());
    }
}
