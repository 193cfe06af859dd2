//! Opening any Core ML model file or folder: [`ModelAsset::open`].
//!
//! The kind is told by content, not by extension ([`AssetKind::detect`]):
//!
//! - a folder with `Manifest.json` is a package (`.mlpackage`),
//! - a folder with `model.mil` or `coremldata.bin` is a compiled model (`.mlmodelc`),
//! - a file that decodes as a non-empty protobuf `Model` is a single-file model (`.mlmodel`),
//! - anything else is [`FormatError::UnknownFormat`], with a reason.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{FormatError, Result};
use crate::mlmodel;
use crate::mlmodelc::{
    COREMLDATA_FILE_NAME, CompiledMetadata, CompiledModel, CoreMlData, MIL_FILE_NAME,
};
use crate::package::{MANIFEST_FILE_NAME, Manifest, MlPackage};
use crate::proto;
use crate::proto::mil_spec;
use crate::weights::WeightStore;

/// The kind of a model asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AssetKind {
    /// A `.mlpackage` folder (Manifest.json, root model, weights).
    Package,
    /// A single `.mlmodel` file (a serialized `Model`; no external weights).
    ModelFile,
    /// A compiled `.mlmodelc` folder (`model.mil`, `coremldata.bin`, weights).
    Compiled,
}

impl AssetKind {
    /// The usual extension of this kind (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            AssetKind::Package => "mlpackage",
            AssetKind::ModelFile => "mlmodel",
            AssetKind::Compiled => "mlmodelc",
        }
    }

    /// Tell the kind of `path` from its content. A file is only classified as a model file
    /// here; whether it decodes is checked by [`ModelAsset::open`].
    pub fn detect(path: &Path) -> Result<Self> {
        let meta = fs::metadata(path).map_err(|e| FormatError::io(path, "opening model", e))?;
        if meta.is_dir() {
            if path.join(MANIFEST_FILE_NAME).exists() {
                return Ok(AssetKind::Package);
            }
            if path.join(MIL_FILE_NAME).exists() || path.join(COREMLDATA_FILE_NAME).exists() {
                return Ok(AssetKind::Compiled);
            }
            let hint = if path.join("Data").is_dir() {
                "it has a Data/ folder but no Manifest.json (an incomplete .mlpackage?)"
            } else {
                "expected Manifest.json (.mlpackage) or model.mil / coremldata.bin (.mlmodelc)"
            };
            return Err(FormatError::UnknownFormat {
                path: path.to_path_buf(),
                message: format!("folder is not a Core ML model: {hint}"),
            });
        }
        if meta.is_file() {
            return Ok(AssetKind::ModelFile);
        }
        Err(FormatError::UnknownFormat {
            path: path.to_path_buf(),
            message: "neither a file nor a folder".into(),
        })
    }
}

/// A Core ML model of any kind, opened: its specification, MIL text, metadata and weights.
///
/// Weight files are not read here: blobs are mapped and checked when asked for through
/// [`ModelAsset::weights`].
#[derive(Debug)]
pub struct ModelAsset {
    /// The path given to [`ModelAsset::open`] (the folder, for a package opened through its
    /// Manifest.json).
    pub path: PathBuf,
    /// What kind of asset this is.
    pub kind: AssetKind,
    /// The protobuf specification: the root model of a package, the model file, or a
    /// compiled model's `model.mlmodel` if it has one.
    pub spec: Option<proto::Model>,
    /// The root model file (package: `Data/<root item>`; model file: the file itself).
    pub spec_path: Option<PathBuf>,
    /// The textual MIL of a compiled model.
    pub mil_text: Option<String>,
    /// A compiled model's `metadata.json`.
    pub compiled_metadata: Option<CompiledMetadata>,
    /// A compiled model's `coremldata.bin`.
    pub coremldata: Option<CoreMlData>,
    /// A package's manifest.
    pub manifest: Option<Manifest>,
    /// A package's weights folder.
    pub weights_dir: Option<PathBuf>,
    /// Resolves blob references (`@model_path/...`); holds no files for a model file.
    pub weights: WeightStore,
}

impl ModelAsset {
    /// Open the model at `path`, whatever its kind (see [`AssetKind::detect`]).
    ///
    /// A path to a package's `Manifest.json` opens the package.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.file_name().is_some_and(|n| n == MANIFEST_FILE_NAME)
            && path.is_file()
            && let Some(parent) = path.parent()
        {
            return Self::open(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            });
        }
        match AssetKind::detect(path)? {
            AssetKind::Package => Ok(Self::from_package(MlPackage::open(path)?)),
            AssetKind::Compiled => Ok(Self::from_compiled(CompiledModel::open(path)?)),
            AssetKind::ModelFile => Self::open_model_file(path),
        }
    }

    fn open_model_file(path: &Path) -> Result<Self> {
        let named_mlmodel = path.extension().is_some_and(|e| e == "mlmodel");
        let unknown = |message: String| FormatError::UnknownFormat {
            path: path.to_path_buf(),
            message,
        };
        let spec = match mlmodel::read_model(path) {
            Ok(spec) => spec,
            Err(e @ FormatError::Protobuf { .. }) => {
                if named_mlmodel {
                    return Err(e);
                }
                let head = fs::read(path).map(|b| b.get(..4).map(<[u8]>::to_vec));
                let what = match head {
                    Ok(Some(h)) if h == b"PK\x03\x04" => {
                        "a zip archive; unpack it and open the .mlpackage or .mlmodel inside"
                            .to_string()
                    }
                    _ => format!("not a Core ML model file ({e})"),
                };
                return Err(unknown(what));
            }
            Err(e) => return Err(e),
        };
        if spec.specification_version <= 0 && spec.r#type.is_none() {
            return Err(unknown(
                "not a Core ML model file: it decodes to an empty Model \
                 (no specificationVersion, no model type)"
                    .into(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            kind: AssetKind::ModelFile,
            spec: Some(spec),
            spec_path: Some(path.to_path_buf()),
            mil_text: None,
            compiled_metadata: None,
            coremldata: None,
            manifest: None,
            weights_dir: None,
            weights: WeightStore::none(),
        })
    }

    /// An asset from an opened package.
    pub fn from_package(p: MlPackage) -> Self {
        Self {
            path: p.root,
            kind: AssetKind::Package,
            spec: Some(p.model),
            spec_path: Some(p.model_path),
            mil_text: None,
            compiled_metadata: None,
            coremldata: None,
            manifest: Some(p.manifest),
            weights_dir: p.weights_dir,
            weights: p.weights,
        }
    }

    /// An asset from an opened compiled model.
    pub fn from_compiled(c: CompiledModel) -> Self {
        let weights_dir = Some(c.root.join("weights")).filter(|p| p.is_dir());
        let spec_path = c
            .model
            .as_ref()
            .map(|_| c.root.join(crate::mlmodelc::MODEL_FILE_NAME));
        Self {
            path: c.root,
            kind: AssetKind::Compiled,
            spec: c.model,
            spec_path,
            mil_text: c.mil_text,
            compiled_metadata: c.metadata,
            coremldata: c.coremldata,
            manifest: None,
            weights_dir,
            weights: c.weights,
        }
    }

    /// The model description: the spec's, else the one embedded in a compiled model's
    /// `coremldata.bin`.
    pub fn description(&self) -> Option<&proto::ModelDescription> {
        self.spec
            .as_ref()
            .and_then(|m| m.description.as_ref())
            .or_else(|| self.coremldata.as_ref()?.description.as_ref())
    }

    /// The specification version: the spec's, else the compiled metadata's.
    pub fn specification_version(&self) -> Option<i64> {
        self.spec
            .as_ref()
            .map(|m| i64::from(m.specification_version))
            .or_else(|| self.compiled_metadata.as_ref()?.specification_version)
    }

    /// The weight store (see [`WeightStore`]).
    pub fn weights(&self) -> &WeightStore {
        &self.weights
    }
}

/// A `BlobFileValue` found in a model specification.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobReference {
    /// The weight file as written (`@model_path/weights/weight.bin`).
    pub file_name: String,
    /// Offset of the blob's metadata record in that file.
    pub offset: u64,
    /// Where the reference was found, for messages
    /// (`function main<CoreML7> / op 3 (const) / attribute val`).
    pub location: String,
    /// The value's declared type (for a blob: a tensor type with dtype and shape).
    pub value_type: Option<mil_spec::ValueType>,
}

/// Every blob reference in the ML Programs of `model` (including the models of a pipeline):
/// program and function attributes, then each block's operations, nested blocks after the
/// block that holds them.
pub fn blob_references(model: &proto::Model) -> Vec<BlobReference> {
    use proto::model::Type;
    let mut out = Vec::new();
    let mut models = vec![(String::new(), model)];
    while let Some((prefix, m)) = models.pop() {
        let pipeline = match &m.r#type {
            Some(Type::MlProgram(p)) => {
                program_references(&prefix, p, &mut out);
                None
            }
            Some(Type::Pipeline(p)) => Some(p),
            Some(Type::PipelineClassifier(p)) => p.pipeline.as_ref(),
            Some(Type::PipelineRegressor(p)) => p.pipeline.as_ref(),
            _ => None,
        };
        if let Some(p) = pipeline {
            for (i, sub) in p.models.iter().enumerate().rev() {
                models.push((format!("{prefix}pipeline model {i} / "), sub));
            }
        }
    }
    out
}

fn program_references(prefix: &str, p: &mil_spec::Program, out: &mut Vec<BlobReference>) {
    let mut push = |loc: &dyn Fn() -> String, v: &mil_spec::Value| {
        if let Some(mil_spec::value::Value::BlobFileValue(b)) = &v.value {
            out.push(BlobReference {
                file_name: b.file_name.clone(),
                offset: b.offset,
                location: loc(),
                value_type: v.r#type.clone(),
            });
        }
    };
    for (k, v) in &p.attributes {
        push(&|| format!("{prefix}program attribute {k}"), v);
    }
    for (fname, f) in &p.functions {
        for (k, v) in &f.attributes {
            push(&|| format!("{prefix}function {fname} / attribute {k}"), v);
        }
        // Blocks nest inside operations; walk them with an explicit stack (depth is bounded
        // by the protobuf decoder, but this keeps the walker's stack flat regardless).
        let mut blocks: Vec<(String, &mil_spec::Block)> = f
            .block_specializations
            .iter()
            .rev()
            .map(|(opset, b)| (format!("{prefix}function {fname}<{opset}>"), b))
            .collect();
        while let Some((loc, block)) = blocks.pop() {
            for (k, v) in &block.attributes {
                push(&|| format!("{loc} / block attribute {k}"), v);
            }
            for (i, op) in block.operations.iter().enumerate() {
                let op_loc = || format!("{loc} / op {i} ({})", op.r#type);
                for (k, v) in &op.attributes {
                    push(&|| format!("{} / attribute {k}", op_loc()), v);
                }
                for (k, arg) in &op.inputs {
                    for binding in &arg.arguments {
                        if let Some(mil_spec::argument::binding::Binding::Value(v)) =
                            &binding.binding
                        {
                            push(&|| format!("{} / input {k}", op_loc()), v);
                        }
                    }
                }
                for (j, b) in op.blocks.iter().enumerate().rev() {
                    blocks.push((format!("{} / block {j}", op_loc()), b));
                }
            }
        }
    }
}
