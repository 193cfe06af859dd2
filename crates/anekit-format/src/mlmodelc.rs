//! The compiled model folder (`.mlmodelc`) that Apple's `coremlcompiler` produces.
//!
//! Its layout is not documented by Apple; what is read here is what compiled models show
//! (docs/references.md#compiled-models; coremltools ships one as
//! `coremltools/modelrunner/ModelRunner/add_model.mlmodelc`):
//!
//! ```text
//! X.mlmodelc/
//!   model.mil            textual MIL (ML Programs)
//!   coremldata.bin       binary header + embedded protobuf ModelDescription
//!   metadata.json        a JSON array holding one object (schemas, availability, ...)
//!   weights/weight.bin   the blob file, as in a package
//!   model.mlmodel        present in some bundles only
//! ```
//!
//! Everything is size-limited before it is read. `coremldata.bin` is decoded on a best-effort
//! basis ([`CoreMlData`]): its raw bytes are always kept, and the embedded description is
//! only reported when the observed layout is found.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{FormatError, Result};
use crate::mlmodel::{self, read_limited};
use crate::proto;
use crate::weights::WeightStore;

/// File name of the textual MIL program.
pub const MIL_FILE_NAME: &str = "model.mil";
/// File name of the binary description.
pub const COREMLDATA_FILE_NAME: &str = "coremldata.bin";
/// File name of the JSON metadata.
pub const METADATA_FILE_NAME: &str = "metadata.json";
/// File name of the optional embedded specification.
pub const MODEL_FILE_NAME: &str = "model.mlmodel";
/// Largest `model.mil` read (large language models have MIL texts of tens of MB).
pub const MAX_MIL_SIZE: u64 = 512 * 1024 * 1024;
/// Largest `metadata.json` read.
pub const MAX_METADATA_SIZE: u64 = 64 * 1024 * 1024;
/// Largest `coremldata.bin` read.
pub const MAX_COREMLDATA_SIZE: u64 = 64 * 1024 * 1024;

/// Deserialize `T`, or `None` when the value has another type (compiled metadata differs
/// between compiler versions; a surprising value must not make the whole model unreadable).
fn lenient<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// Like [`lenient`] for collections: the default (empty) on a type mismatch.
fn lenient_or_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    Ok(lenient(d)?.unwrap_or_default())
}

/// One entry of `inputSchema`, `outputSchema` or `stateSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureSchema {
    /// Feature name.
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Feature type (`MultiArray`, `Image`, `State`, ...).
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub feature_type: Option<String>,
    /// Element type (`Float16`, `Float32`, `Int32`, ...).
    #[serde(default, deserialize_with = "lenient")]
    pub data_type: Option<String>,
    /// Shape as written (`"[1, 10]"`).
    #[serde(default, deserialize_with = "lenient")]
    pub shape: Option<String>,
    /// Human-readable type (`"MultiArray (Float16 1 × 10)"`).
    #[serde(default, deserialize_with = "lenient")]
    pub formatted_type: Option<String>,
    /// Description text.
    #[serde(default, deserialize_with = "lenient")]
    pub short_description: Option<String>,
    /// `"0"` or `"1"`.
    #[serde(default, deserialize_with = "lenient")]
    pub is_optional: Option<String>,
    /// `"0"` or `"1"`.
    #[serde(default, deserialize_with = "lenient")]
    pub has_shape_flexibility: Option<String>,
    /// Keys not listed above (e.g. enumerated shapes), kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `modelType` of the metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelType {
    /// E.g. `MLModelType_mlProgram`, `MLModelType_neuralNetwork`.
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Other keys, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The object in a compiled model's `metadata.json`.
///
/// Every known key is optional and a value of an unexpected type reads as absent; unknown
/// keys are kept in [`CompiledMetadata::other`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledMetadata {
    /// Format version of this file (`"3.0"`).
    #[serde(default, deserialize_with = "lenient")]
    pub metadata_output_version: Option<String>,
    /// Core ML specification version of the source model.
    #[serde(default, deserialize_with = "lenient")]
    pub specification_version: Option<i64>,
    /// `Float16`, `Float32`, `Mixed (Float16, Int32)`, ...
    #[serde(default, deserialize_with = "lenient")]
    pub compute_precision: Option<String>,
    /// `"0"` or `"1"`.
    #[serde(default, deserialize_with = "lenient")]
    pub is_updatable: Option<String>,
    /// Minimum OS versions by platform (`macOS`, `iOS`, `tvOS`, `watchOS`, `visionOS`,
    /// `macCatalyst`).
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub availability: BTreeMap<String, String>,
    /// Model type.
    #[serde(default, deserialize_with = "lenient")]
    pub model_type: Option<ModelType>,
    /// Operation counts by `Opset.op` (`"Ios16.mul": 1`).
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub ml_program_operation_type_histogram: BTreeMap<String, u64>,
    /// The model's user-defined metadata.
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub user_defined_metadata: BTreeMap<String, String>,
    /// Inputs.
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub input_schema: Vec<FeatureSchema>,
    /// Outputs.
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub output_schema: Vec<FeatureSchema>,
    /// States.
    #[serde(default, deserialize_with = "lenient_or_default")]
    pub state_schema: Vec<FeatureSchema>,
    /// Class name Xcode generates.
    #[serde(default, deserialize_with = "lenient")]
    pub generated_class_name: Option<String>,
    /// `predict`.
    #[serde(default, deserialize_with = "lenient")]
    pub method: Option<String>,
    /// Every other key, kept as it is.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl CompiledMetadata {
    /// Parse `metadata.json` content: an array of one object (a bare object is accepted too).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| FormatError::invalid(path, "json", format!("not valid JSON: {e}")))?;
        let object = match value {
            Value::Array(items) => match items.into_iter().next() {
                Some(o @ Value::Object(_)) => o,
                Some(_) => {
                    return Err(FormatError::invalid(path, "[0]", "is not an object"));
                }
                None => return Err(FormatError::invalid(path, "[0]", "the array is empty")),
            },
            o @ Value::Object(_) => o,
            _ => {
                return Err(FormatError::invalid(
                    path,
                    "json",
                    "top level is neither an array nor an object",
                ));
            }
        };
        serde_json::from_value(object)
            .map_err(|e| FormatError::invalid(path, "[0]", format!("unreadable metadata: {e}")))
    }
}

/// The content of `coremldata.bin`, decoded as far as its observed layout allows.
///
/// Observed layout (coremltools' sample, 319 bytes): `u32` model type (502 = `mlProgram`,
/// the `Model.Type` oneof number), a header with the ASCII tag `generic` preceded by its
/// `u64` length, a `u64` length `L` followed by `L` bytes of protobuf `ModelDescription`,
/// and a 16-byte trailer that repeats the model type. The layout is undocumented; when it
/// does not hold, only [`CoreMlData::raw`] is available.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreMlData {
    /// The whole file.
    pub raw: bytes::Bytes,
    /// The leading `u32` (the `Model.Type` oneof field number, 502 for ML Programs).
    pub model_type: Option<u32>,
    /// The ASCII tag found in the header (`generic`).
    pub tag: Option<String>,
    /// The embedded model description, if found and decodable.
    pub description: Option<proto::ModelDescription>,
}

/// How far past the start the length of the embedded description is searched for.
const COREMLDATA_SCAN: usize = 4096;

impl CoreMlData {
    /// Decode what can be decoded of `coremldata.bin` content.
    pub fn parse(bytes: bytes::Bytes) -> Self {
        let model_type = bytes
            .get(0..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        let tag = find_tag(&bytes);
        let description = model_type.and_then(|t| find_description(&bytes, t));
        Self {
            raw: bytes,
            model_type,
            tag,
            description,
        }
    }
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// A `u64` length `n` (1..=64) followed by `n` ASCII letters, within the header.
fn find_tag(b: &[u8]) -> Option<String> {
    let limit = b.len().min(256);
    (4..limit).find_map(|at| {
        let n = read_u64(b, at)?;
        if !(1..=64).contains(&n) {
            return None;
        }
        let start = at.checked_add(8)?;
        let s = b.get(start..start.checked_add(n as usize)?)?;
        s.iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| String::from_utf8_lossy(s).into_owned())
    })
}

/// A `u64` length `L` at some offset `p` such that `L` protobuf bytes follow, the 16-byte
/// trailer after them starts with the model type again and ends the file, and the bytes
/// decode as a `ModelDescription`.
fn find_description(b: &[u8], model_type: u32) -> Option<proto::ModelDescription> {
    const TRAILER: usize = 16;
    let body_end = b.len().checked_sub(TRAILER)?;
    let trailer = b.get(body_end..body_end + 4)?;
    if trailer != model_type.to_le_bytes() {
        return None;
    }
    (4..body_end.min(COREMLDATA_SCAN)).find_map(|p| {
        let len = read_u64(b, p)?;
        let start = p.checked_add(8)?;
        if len == 0 || start.checked_add(usize::try_from(len).ok()?)? != body_end {
            return None;
        }
        proto::ModelDescription::decode(b.get(start..body_end)?).ok()
    })
}

/// An opened `.mlmodelc` folder.
#[derive(Debug)]
pub struct CompiledModel {
    /// The folder as given.
    pub root: PathBuf,
    /// The textual MIL program (`model.mil`), if present.
    pub mil_text: Option<String>,
    /// `metadata.json`, if present.
    pub metadata: Option<CompiledMetadata>,
    /// `coremldata.bin`, if present.
    pub coremldata: Option<CoreMlData>,
    /// `model.mlmodel`, if present.
    pub model: Option<proto::Model>,
    /// Resolves the MIL text's blob references; `@model_path` is the compiled folder, and no
    /// reference may leave it.
    pub weights: WeightStore,
}

impl CompiledModel {
    /// Open the compiled model folder `dir`. It must hold `model.mil` or `coremldata.bin`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        let meta =
            fs::metadata(&root).map_err(|e| FormatError::io(&root, "opening compiled model", e))?;
        if !meta.is_dir() {
            return Err(FormatError::UnknownFormat {
                path: root,
                message: "a .mlmodelc must be a folder".into(),
            });
        }
        let real_root = root
            .canonicalize()
            .map_err(|e| FormatError::io(&root, "resolving compiled model folder", e))?;
        // A file the folder lists, if present, after checking that it stays in the folder.
        let member = |name: &str| -> Result<Option<PathBuf>> {
            let path = root.join(name);
            if fs::symlink_metadata(&path).is_err() {
                return Ok(None);
            }
            let real = path
                .canonicalize()
                .map_err(|e| FormatError::io(&path, "resolving", e))?;
            if !real.starts_with(&real_root) {
                return Err(FormatError::invalid(
                    &path,
                    name,
                    format!("resolves to {}, outside the compiled model", real.display()),
                ));
            }
            Ok(Some(path))
        };
        let mil_text = match member(MIL_FILE_NAME)? {
            Some(p) => {
                let bytes = read_limited(&p, MAX_MIL_SIZE, MIL_FILE_NAME)?;
                Some(String::from_utf8(bytes).map_err(|e| {
                    FormatError::invalid(
                        &p,
                        "text",
                        format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                    )
                })?)
            }
            None => None,
        };
        let coremldata = match member(COREMLDATA_FILE_NAME)? {
            Some(p) => Some(CoreMlData::parse(
                read_limited(&p, MAX_COREMLDATA_SIZE, COREMLDATA_FILE_NAME)?.into(),
            )),
            None => None,
        };
        if mil_text.is_none() && coremldata.is_none() {
            return Err(FormatError::UnknownFormat {
                path: root,
                message: format!(
                    "not a compiled model: the folder has neither {MIL_FILE_NAME} nor {COREMLDATA_FILE_NAME}"
                ),
            });
        }
        let metadata = match member(METADATA_FILE_NAME)? {
            Some(p) => Some(CompiledMetadata::parse(
                &p,
                &read_limited(&p, MAX_METADATA_SIZE, METADATA_FILE_NAME)?,
            )?),
            None => None,
        };
        let model = match member(MODEL_FILE_NAME)? {
            Some(p) => Some(mlmodel::read_model(&p)?),
            None => None,
        };
        tracing::debug!(
            path = %root.display(),
            mil = mil_text.is_some(),
            description = coremldata.as_ref().is_some_and(|c| c.description.is_some()),
            "opened compiled model"
        );
        Ok(Self {
            weights: WeightStore::new(&root, &root),
            root,
            mil_text,
            metadata,
            coremldata,
            model,
        })
    }

    /// The model description: from `model.mlmodel` if present, else the one embedded in
    /// `coremldata.bin` if it could be decoded.
    pub fn description(&self) -> Option<&proto::ModelDescription> {
        self.model
            .as_ref()
            .and_then(|m| m.description.as_ref())
            .or_else(|| self.coremldata.as_ref()?.description.as_ref())
    }
}
