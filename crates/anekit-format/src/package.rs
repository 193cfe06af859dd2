//! The model package (`.mlpackage`): a folder with `Manifest.json` and a `Data/` folder.
//!
//! ```text
//! X.mlpackage/
//!   Manifest.json                      fileFormatVersion, itemInfoEntries, rootModelIdentifier
//!   Data/com.apple.CoreML/model.mlmodel    the root model (a serialized Model)
//!   Data/com.apple.CoreML/weights/weight.bin
//! ```
//!
//! [`Manifest`] is validated the way coremltools' `modelpackage/src/ModelPackage.cpp` does
//! (version `major.minor.patch`, not newer than 1.0.0; every item has `path`, `name`,
//! `author` and `description`; every item exists under `Data/`; the root model identifier
//! names an item), plus rules of our own because packages are untrusted: item paths must be
//! relative and free of `..`, symlinks must not lead out of the package, and Manifest.json is
//! size-limited before it is read.
//!
//! [`PackageWriter`] writes a package the way coremltools does (same Manifest shape, UUID
//! identifiers, `com.apple.CoreML` author) into a temporary sibling folder and renames it into
//! place, so a failed or interrupted write never destroys an existing package.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{FormatError, Result};
use crate::mlmodel;
use crate::proto;
use crate::weights::WeightStore;

/// File name of the manifest at the package root.
pub const MANIFEST_FILE_NAME: &str = "Manifest.json";
/// Folder (under the package root) that item paths are relative to.
pub const DATA_DIR: &str = "Data";
/// Largest Manifest.json read (coremltools writes about 600 bytes).
pub const MAX_MANIFEST_SIZE: u64 = 1024 * 1024;
/// The newest package format version understood (`fileFormatVersion`).
pub const FILE_FORMAT_VERSION: (u64, u64, u64) = (1, 0, 0);
/// Author coremltools gives its items.
pub const COREML_AUTHOR: &str = "com.apple.CoreML";
/// Item name of the root model file written by coremltools.
pub const MODEL_ITEM_NAME: &str = "model.mlmodel";
/// Item name of the weights folder written by coremltools.
pub const WEIGHTS_ITEM_NAME: &str = "weights";
/// Item description of the root model written by coremltools.
pub const MODEL_ITEM_DESCRIPTION: &str = "CoreML Model Specification";
/// Item description of the weights folder written by coremltools.
pub const WEIGHTS_ITEM_DESCRIPTION: &str = "CoreML Model Weights";
/// The weight file inside the weights folder, as coremltools names it.
pub const WEIGHT_FILE_NAME: &str = "weight.bin";

/// One entry of `itemInfoEntries`: a file or folder under `Data/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInfo {
    /// Who wrote the item (`com.apple.CoreML` for coremltools).
    pub author: String,
    /// Free-text description.
    pub description: String,
    /// Item name (`model.mlmodel`, `weights`).
    pub name: String,
    /// Path relative to `Data/` (coremltools: `<author>/<name>`).
    pub path: String,
}

/// The parsed `Manifest.json` of a package.
///
/// Field order matches the sorted key order coremltools (nlohmann::json) writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Package format version, `major.minor.patch` (`"1.0.0"`).
    #[serde(rename = "fileFormatVersion")]
    pub file_format_version: String,
    /// Items by identifier.
    #[serde(rename = "itemInfoEntries")]
    pub item_info_entries: BTreeMap<String, ItemInfo>,
    /// Identifier of the root model item.
    #[serde(rename = "rootModelIdentifier")]
    pub root_model_identifier: String,
}

/// Parse `major.minor.patch` the way ModelPackage.cpp requires (exactly three parts, each a
/// non-negative integer).
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.');
    let mut next = || -> Option<u64> {
        let p = parts.next()?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let version = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(version)
}

impl Manifest {
    /// A manifest in coremltools' shape: version 1.0.0, a root model item
    /// `com.apple.CoreML/model.mlmodel` and, if `weights` is set, a weights folder item
    /// `com.apple.CoreML/weights`, each under a fresh random UUID.
    pub fn coremltools(weights: bool) -> Self {
        let model_id = uuid::Uuid::new_v4().to_string();
        let mut entries = BTreeMap::new();
        entries.insert(
            model_id.clone(),
            ItemInfo {
                author: COREML_AUTHOR.into(),
                description: MODEL_ITEM_DESCRIPTION.into(),
                name: MODEL_ITEM_NAME.into(),
                path: format!("{COREML_AUTHOR}/{MODEL_ITEM_NAME}"),
            },
        );
        if weights {
            entries.insert(
                uuid::Uuid::new_v4().to_string(),
                ItemInfo {
                    author: COREML_AUTHOR.into(),
                    description: WEIGHTS_ITEM_DESCRIPTION.into(),
                    name: WEIGHTS_ITEM_NAME.into(),
                    path: format!("{COREML_AUTHOR}/{WEIGHTS_ITEM_NAME}"),
                },
            );
        }
        Self {
            file_format_version: "1.0.0".into(),
            item_info_entries: entries,
            root_model_identifier: model_id,
        }
    }

    /// Parse and check the content of a Manifest.json (`path` names it in errors).
    ///
    /// Checks everything that does not need the file system: JSON syntax, the version, the
    /// presence and types of all keys, item path syntax (relative, no `..`) and that the root
    /// model identifier names an item. Unknown keys are ignored, as coremltools does.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| FormatError::invalid(path, "json", format!("not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(FormatError::invalid(
                path,
                "json",
                "top level is not an object",
            ));
        };
        let string =
            |obj: &serde_json::Map<String, Value>, key: &str, field: &str| match obj.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(FormatError::invalid(path, field, "is not a string")),
                None => Err(FormatError::invalid(path, field, "is missing")),
            };
        let file_format_version = string(&top, "fileFormatVersion", "fileFormatVersion")?;
        let Some(version) = parse_version(&file_format_version) else {
            return Err(FormatError::invalid(
                path,
                "fileFormatVersion",
                format!(
                    "{file_format_version:?} is not of the form major.minor.patch with non-negative numbers"
                ),
            ));
        };
        if version > FILE_FORMAT_VERSION {
            let (a, b, c) = FILE_FORMAT_VERSION;
            return Err(FormatError::invalid(
                path,
                "fileFormatVersion",
                format!(
                    "unsupported version {file_format_version}; the newest understood is {a}.{b}.{c}"
                ),
            ));
        }
        let entries = match top.get("itemInfoEntries") {
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(FormatError::invalid(
                    path,
                    "itemInfoEntries",
                    "is not an object",
                ));
            }
            None => return Err(FormatError::invalid(path, "itemInfoEntries", "is missing")),
        };
        let mut item_info_entries = BTreeMap::new();
        for (id, entry) in entries {
            let field = |k: &str| format!("itemInfoEntries[{id:?}].{k}");
            let Value::Object(entry) = entry else {
                return Err(FormatError::invalid(
                    path,
                    field("").trim_end_matches('.'),
                    "is not an object",
                ));
            };
            let item = ItemInfo {
                author: string(entry, "author", &field("author"))?,
                description: string(entry, "description", &field("description"))?,
                name: string(entry, "name", &field("name"))?,
                path: string(entry, "path", &field("path"))?,
            };
            check_relative_path(&item.path).map_err(|m| {
                FormatError::invalid(path, field("path"), format!("{:?} {m}", item.path))
            })?;
            item_info_entries.insert(id.clone(), item);
        }
        let root_model_identifier = string(&top, "rootModelIdentifier", "rootModelIdentifier")?;
        if !item_info_entries.contains_key(&root_model_identifier) {
            return Err(FormatError::invalid(
                path,
                "rootModelIdentifier",
                format!("{root_model_identifier:?} names no entry of itemInfoEntries"),
            ));
        }
        Ok(Self {
            file_format_version,
            item_info_entries,
            root_model_identifier,
        })
    }

    /// Read and parse `<package>/Manifest.json` (size-limited to [`MAX_MANIFEST_SIZE`]).
    pub fn read(package: &Path) -> Result<Self> {
        let path = package.join(MANIFEST_FILE_NAME);
        let bytes = mlmodel::read_limited(&path, MAX_MANIFEST_SIZE, MANIFEST_FILE_NAME)?;
        Self::parse(&path, &bytes)
    }

    /// The root model entry: its identifier and item.
    pub fn root_item(&self) -> Option<&ItemInfo> {
        self.item_info_entries.get(&self.root_model_identifier)
    }

    /// The weights-folder item the way coremltools looks it up (name `weights`, author
    /// `com.apple.CoreML`), else any other item named `weights`.
    pub fn weights_item(&self) -> Option<&ItemInfo> {
        let candidates: Vec<&ItemInfo> = self
            .item_info_entries
            .iter()
            .filter(|(id, i)| **id != self.root_model_identifier && i.name == WEIGHTS_ITEM_NAME)
            .map(|(_, i)| i)
            .collect();
        candidates
            .iter()
            .find(|i| i.author == COREML_AUTHOR)
            .or(candidates.first())
            .copied()
    }

    /// The JSON text coremltools writes: keys sorted, 4-space indentation, a final newline.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serializing plain strings and maps into a Vec cannot fail.
        if self.serialize(&mut ser).is_err() {
            return String::new();
        }
        let mut s = String::from_utf8(out).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Check that an item or reference path is a non-empty relative path without `..`, root or
/// drive prefix. Returns what is wrong with it.
pub fn check_relative_path(p: &str) -> std::result::Result<(), &'static str> {
    if p.is_empty() {
        return Err("is empty");
    }
    if p.contains('\0') {
        return Err("contains a NUL byte");
    }
    if p.starts_with('/') || p.starts_with('\\') || Path::new(p).is_absolute() {
        return Err("is absolute; item paths must be relative to Data/");
    }
    for c in Path::new(p).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("contains `..`"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; item paths must be relative to Data/");
            }
        }
    }
    Ok(())
}

/// `base.join(rel)` after checking that it exists and, with every symlink resolved, stays
/// inside `boundary`. Returns the joined (not canonicalized) path.
fn resolve_inside(
    manifest: &Path,
    field: &str,
    base: &Path,
    rel: &str,
    real_boundary: &Path,
) -> Result<PathBuf> {
    let path = base.join(rel);
    let real = path.canonicalize().map_err(|e| {
        FormatError::invalid(
            manifest,
            field,
            format!(
                "item {} does not exist or cannot be resolved: {e}",
                path.display()
            ),
        )
    })?;
    if !real.starts_with(real_boundary) {
        return Err(FormatError::invalid(
            manifest,
            field,
            format!(
                "item {} resolves to {}, outside the package",
                path.display(),
                real.display()
            ),
        ));
    }
    Ok(path)
}

/// An opened `.mlpackage`.
#[derive(Debug)]
pub struct MlPackage {
    /// The package folder as given.
    pub root: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The root model file (`Data/<root item path>`).
    pub model_path: PathBuf,
    /// The weights folder: the weights item if the manifest has one, else the root model's
    /// sibling `weights/` if it exists.
    pub weights_dir: Option<PathBuf>,
    /// The decoded root model.
    pub model: proto::Model,
    /// Resolves the model's blob references: `@model_path` is the root model's folder and no
    /// reference may leave the package.
    pub weights: WeightStore,
}

impl MlPackage {
    /// Open the package folder `dir`: read and check its manifest, check every item, decode
    /// the root model. Weight files are only opened (mapped) when a blob is asked for.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let meta = fs::metadata(&root).map_err(|e| FormatError::io(&root, "opening package", e))?;
        if !meta.is_dir() {
            return Err(FormatError::UnknownFormat {
                path: root,
                message: "a .mlpackage must be a folder".into(),
            });
        }
        let real_root = root
            .canonicalize()
            .map_err(|e| FormatError::io(&root, "resolving package folder", e))?;
        let manifest_path = root.join(MANIFEST_FILE_NAME);
        let real_manifest = manifest_path
            .canonicalize()
            .map_err(|e| FormatError::io(&manifest_path, "resolving", e))?;
        if !real_manifest.starts_with(&real_root) {
            return Err(FormatError::invalid(
                &manifest_path,
                MANIFEST_FILE_NAME,
                format!(
                    "resolves to {}, outside the package",
                    real_manifest.display()
                ),
            ));
        }
        let manifest = Manifest::read(&root)?;
        let data = root.join(DATA_DIR);
        for (id, item) in &manifest.item_info_entries {
            // A missing item other than the root model is tolerated: version control drops
            // the empty `weights` folder of a model without weight files. Whatever needs
            // the item (a blob reference) fails later and names the file. A dangling
            // symlink is not "missing" and is still refused below.
            let joined = data.join(&item.path);
            if *id != manifest.root_model_identifier
                && fs::symlink_metadata(&joined)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            {
                tracing::warn!(
                    item = %joined.display(),
                    "manifest item does not exist (an empty folder dropped by version control?)"
                );
                continue;
            }
            resolve_inside(
                &manifest_path,
                &format!("itemInfoEntries[{id:?}].path"),
                &data,
                &item.path,
                &real_root,
            )?;
        }
        let root_item = manifest.root_item().ok_or_else(|| {
            FormatError::invalid(&manifest_path, "rootModelIdentifier", "names no item")
        })?;
        let model_path = data.join(&root_item.path);
        if !model_path.is_file() {
            return Err(FormatError::invalid(
                &manifest_path,
                format!("itemInfoEntries[{:?}].path", manifest.root_model_identifier),
                format!("root model {} is not a file", model_path.display()),
            ));
        }
        let model_dir = model_path
            .parent()
            .map_or_else(|| data.clone(), Path::to_path_buf);
        let weights_dir = match manifest.weights_item() {
            Some(item) => Some(data.join(&item.path)).filter(|p| p.is_dir()),
            None => Some(model_dir.join(WEIGHTS_ITEM_NAME)).filter(|p| p.is_dir()),
        };
        let model = mlmodel::read_model(&model_path)?;
        tracing::debug!(
            package = %root.display(),
            spec = model.specification_version,
            "opened model package"
        );
        Ok(Self {
            weights: WeightStore::new(model_dir, &root),
            root,
            manifest,
            model_path,
            weights_dir,
            model,
        })
    }
}

/// Whether `a` and `b` name the same file or folder (both canonicalized). A path that does
/// not exist is the same as nothing.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Check that writing (and so replacing) `dest` cannot destroy `input`: refuses when they are
/// the same path, or when one contains the other (symlinks resolved).
pub fn check_output_path(dest: &Path, input: &Path) -> Result<()> {
    let Ok(real_input) = input.canonicalize() else {
        return Ok(());
    };
    let real_dest = match dest.canonicalize() {
        Ok(p) => p,
        // A dest that does not exist yet: resolve its parent.
        Err(_) => match (dest.parent(), dest.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                match parent.canonicalize() {
                    Ok(p) => p.join(name),
                    Err(_) => return Ok(()),
                }
            }
            _ => return Ok(()),
        },
    };
    if real_dest == real_input
        || real_input.starts_with(&real_dest)
        || real_dest.starts_with(&real_input)
    {
        return Err(FormatError::invalid(
            dest,
            "output path",
            format!(
                "writing here would overwrite the input {}; choose another output path",
                input.display()
            ),
        ));
    }
    Ok(())
}

/// Writes a `.mlpackage` into a temporary sibling folder and renames it into place.
///
/// ```no_run
/// # fn main() -> anekit_format::Result<()> {
/// use anekit_format::{BlobDataType, BlobWriter, PackageWriter, proto};
/// let writer = PackageWriter::create("out.mlpackage")?;
/// let mut blobs = BlobWriter::create(writer.weight_file_path())?;
/// let _offset = blobs.append(BlobDataType::Float16, &[0; 128], 0);
/// // ... build the model, pointing BlobFileValues at `@model_path/weights/weight.bin` ...
/// # let model = proto::Model::default();
/// drop(blobs.finish());
/// writer.finish(&model)?;
/// # Ok(()) }
/// ```
///
/// Dropping a writer that was not finished removes the temporary folder.
#[derive(Debug)]
pub struct PackageWriter {
    dest: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl PackageWriter {
    /// Start writing the package `dest`: creates `.<name>.anekit-tmp-<uuid>` next to it with
    /// `Data/com.apple.CoreML/weights/`. Nothing at `dest` changes until [`Self::finish`].
    ///
    /// `dest` may already exist only as a model package (a folder with Manifest.json) or an
    /// empty folder; anything else there is refused rather than replaced. Callers that read
    /// an input model should also call [`check_output_path`] so the input is never replaced.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let Some(name) = dest.file_name() else {
            return Err(FormatError::invalid(
                &dest,
                "output path",
                "has no file name",
            ));
        };
        if dest.extension().is_none_or(|e| e != "mlpackage") {
            tracing::warn!(path = %dest.display(), "Core ML only loads packages named *.mlpackage");
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
        let tmp = parent.join(format!(
            ".{}.anekit-tmp-{}",
            name.to_string_lossy(),
            uuid::Uuid::new_v4()
        ));
        check_replaceable(&dest)?;
        let writer = Self {
            dest,
            tmp,
            done: false,
        };
        let weights = writer.weights_dir();
        fs::create_dir_all(&weights)
            .map_err(|e| FormatError::io(&weights, "creating package folders", e))?;
        Ok(writer)
    }

    /// The temporary package folder being written.
    pub fn temp_dir(&self) -> &Path {
        &self.tmp
    }

    /// The final destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The folder of the root model file (what `@model_path` stands for).
    pub fn model_dir(&self) -> PathBuf {
        self.tmp.join(DATA_DIR).join(COREML_AUTHOR)
    }

    /// The weights folder (`Data/com.apple.CoreML/weights`), already created.
    pub fn weights_dir(&self) -> PathBuf {
        self.model_dir().join(WEIGHTS_ITEM_NAME)
    }

    /// Where the weight file must be written (e.g. with [`crate::BlobWriter::create`]); the
    /// model refers to it as `@model_path/weights/weight.bin`.
    pub fn weight_file_path(&self) -> PathBuf {
        self.weights_dir().join(WEIGHT_FILE_NAME)
    }

    /// Write the root model and Manifest.json, flush everything to disk and move the package
    /// to its destination. If `dest` exists (a package, see [`Self::create`]) it is moved
    /// aside first and deleted only after the new package is in place; if the new one cannot
    /// be moved in, the old one is put back. Returns the destination path.
    pub fn finish(mut self, model: &proto::Model) -> Result<PathBuf> {
        let model_path = self.model_dir().join(MODEL_ITEM_NAME);
        mlmodel::write_model(&model_path, model)?;
        let weights = self.weights_dir();
        let has_weights = fs::read_dir(&weights)
            .map_err(|e| FormatError::io(&weights, "listing weights folder", e))?
            .next()
            .is_some();
        if has_weights {
            sync_tree(&weights)?;
        } else {
            fs::remove_dir(&weights)
                .map_err(|e| FormatError::io(&weights, "removing empty weights folder", e))?;
        }
        let manifest = Manifest::coremltools(has_weights);
        let manifest_path = self.tmp.join(MANIFEST_FILE_NAME);
        write_synced(&manifest_path, manifest.to_json().as_bytes())?;
        self.rename_into_place()?;
        self.done = true;
        Ok(self.dest.clone())
    }

    fn rename_into_place(&self) -> Result<()> {
        check_replaceable(&self.dest)?;
        let exists = fs::symlink_metadata(&self.dest).is_ok();
        if !exists {
            return fs::rename(&self.tmp, &self.dest)
                .map_err(|e| FormatError::io(&self.dest, "renaming package into place", e));
        }
        let name = self
            .dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let old = self
            .tmp
            .with_file_name(format!(".{name}.anekit-old-{}", uuid::Uuid::new_v4()));
        fs::rename(&self.dest, &old)
            .map_err(|e| FormatError::io(&self.dest, "moving the existing package aside", e))?;
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            // Put the user's package back; if even that fails, say where it is.
            if let Err(e2) = fs::rename(&old, &self.dest) {
                tracing::error!(
                    old = %old.display(),
                    error = %e2,
                    "could not restore the previous package; it is kept at the old path"
                );
            }
            return Err(FormatError::io(
                &self.dest,
                "renaming package into place",
                e,
            ));
        }
        let removed = if fs::symlink_metadata(&old).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&old)
        } else {
            fs::remove_file(&old)
        };
        if let Err(e) = removed {
            tracing::warn!(old = %old.display(), error = %e, "could not delete the replaced package");
        }
        Ok(())
    }
}

impl Drop for PackageWriter {
    fn drop(&mut self) {
        if !self.done
            && self.tmp.exists()
            && let Err(e) = fs::remove_dir_all(&self.tmp)
        {
            tracing::warn!(tmp = %self.tmp.display(), error = %e, "could not remove temporary package folder");
        }
    }
}

/// A destination may be replaced only if it does not exist, is an empty folder, or is a model
/// package (a folder with Manifest.json): anything else may be the user's work.
fn check_replaceable(dest: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(dest) else {
        return Ok(());
    };
    let replaceable = meta.is_dir()
        && (dest.join(MANIFEST_FILE_NAME).is_file()
            || fs::read_dir(dest).is_ok_and(|mut d| d.next().is_none()));
    if replaceable {
        Ok(())
    } else {
        Err(FormatError::invalid(
            dest,
            "output path",
            "exists and is not a model package; refusing to replace it",
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

/// fsync every regular file directly in `dir`.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| FormatError::io(dir, "listing", e))? {
        let entry = entry.map_err(|e| FormatError::io(dir, "listing", e))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| FormatError::io(&path, "flushing", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("1.0"), None);
        assert_eq!(parse_version("1.0.0.0"), None);
        assert_eq!(parse_version("-1.0.0"), None);
        assert_eq!(parse_version("1.a.0"), None);
    }

    #[test]
    fn relative_paths() {
        assert!(check_relative_path("com.apple.CoreML/model.mlmodel").is_ok());
        assert!(check_relative_path("../x").is_err());
        assert!(check_relative_path("a/../../x").is_err());
        assert!(check_relative_path("/etc/passwd").is_err());
        assert!(check_relative_path("").is_err());
    }
}
