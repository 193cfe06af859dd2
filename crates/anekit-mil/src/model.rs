//! A whole Core ML model: its protobuf specification with the ML Program as IR.

use std::sync::Arc;

use std::path::{Path, PathBuf};

use anekit_format::asset::{AssetKind, ModelAsset};
use anekit_format::package::{PackageWriter, check_output_path};
use anekit_format::{BlobWriter, FormatError, WeightStore, proto};

use crate::error::{MilError, Result};
use crate::frontend::neuralnetwork;
use crate::program::Program;
use crate::proto::{BlobSink, WriteOptions, program_from_proto, program_to_proto};

/// A Core ML model.
///
/// `spec` is the protobuf `Model` with its ML Program payload taken out; the program lives
/// in `program` as IR and is put back by [`Model::to_spec`]. NeuralNetwork models and
/// pipelines of them keep their payload in `spec` and get `program` as its translation into
/// MIL ([`crate::frontend::neuralnetwork`]), so every analysis and backend works on them;
/// [`Model::to_spec`] writes the NeuralNetwork payload back unchanged and
/// [`Model::into_ml_program`] makes the translation the model. Models of other types keep
/// their whole payload in `spec` and have no program.
#[derive(Debug, Clone)]
pub struct Model {
    /// The specification, without the `mlProgram` payload.
    pub spec: proto::Model,
    /// The ML Program, for ML Program models.
    pub program: Option<Program>,
    /// The model's weight files.
    pub weights: Arc<WeightStore>,
    /// The file or folder the model was read from, if any.
    pub source: Option<PathBuf>,
    /// The kind of file it was read from, if any.
    pub format: Option<AssetKind>,
    /// Why a NeuralNetwork (or pipeline) model has no program: the layer or stage the
    /// translation could not handle.
    pub untranslated: Option<String>,
}

impl Model {
    /// Build a model from a decoded specification, converting an ML Program payload to IR
    /// (weights resolved through `weights`, without copying them).
    pub fn from_spec(mut spec: proto::Model, weights: Arc<WeightStore>) -> Result<Self> {
        let mut untranslated = None;
        let program = match spec.r#type.take() {
            Some(proto::model::Type::MlProgram(p)) => {
                Some(program_from_proto(&p, weights.as_ref())?)
            }
            Some(t) if neuralnetwork::is_legacy(&t) => {
                spec.r#type = Some(t);
                match neuralnetwork::translate(&spec) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::debug!(error = %e, "NeuralNetwork translation failed");
                        untranslated = Some(e.to_string());
                        None
                    }
                }
            }
            other => {
                spec.r#type = other;
                None
            }
        };
        Ok(Self {
            spec,
            program,
            weights,
            source: None,
            format: None,
            untranslated,
        })
    }

    /// Open a `.mlpackage`, `.mlmodel` or compiled `.mlmodelc` (kind told by content).
    /// Weights are memory-mapped, not read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_asset(ModelAsset::open(path)?)
    }

    /// Build a model from an opened asset.
    pub fn from_asset(asset: ModelAsset) -> Result<Self> {
        let weights = Arc::new(asset.weights);
        let mut model = match (asset.kind, asset.spec) {
            (AssetKind::Compiled, spec) => {
                let text = asset.mil_text.as_deref().ok_or_else(|| {
                    MilError::invalid(
                        asset.path.display().to_string(),
                        "compiled model has no model.mil (only ML Programs can be read from .mlmodelc)",
                    )
                })?;
                let label = asset.path.join("model.mil").display().to_string();
                let program = crate::text::parse(text, &label, weights.as_ref())?;
                // The description comes from the compiled model's own model.mlmodel or its
                // coremldata.bin; the version from metadata.json.
                let mut spec = spec.unwrap_or_default();
                spec.r#type = None;
                if spec.description.is_none() {
                    spec.description = asset.coremldata.and_then(|c| c.description);
                }
                if spec.specification_version == 0 {
                    spec.specification_version = asset
                        .compiled_metadata
                        .as_ref()
                        .and_then(|m| m.specification_version)
                        .and_then(|v| i32::try_from(v).ok())
                        .unwrap_or(0);
                }
                Self {
                    spec,
                    program: Some(program),
                    weights,
                    source: None,
                    format: None,
                    untranslated: None,
                }
            }
            (_, Some(spec)) => Self::from_spec(spec, weights)?,
            (kind, None) => {
                return Err(MilError::invalid(
                    asset.path.display().to_string(),
                    format!("{} has no model specification", kind.extension()),
                ));
            }
        };
        model.source = Some(asset.path);
        model.format = Some(asset.kind);
        Ok(model)
    }

    /// The file kind the model was read from (`mlpackage`, `mlmodel`, `mlmodelc`), or
    /// `memory`.
    pub fn format_name(&self) -> &'static str {
        self.format.map_or("memory", AssetKind::extension)
    }

    /// A model holding `program` with `spec` as its specification (description, metadata,
    /// version); the program's weights must already be resolved.
    pub fn from_program(spec: proto::Model, program: Program) -> Self {
        Self {
            spec,
            program: Some(program),
            weights: Arc::new(WeightStore::none()),
            source: None,
            format: None,
            untranslated: None,
        }
    }

    /// Whether `program` is the MIL translation of a NeuralNetwork (or pipeline) payload
    /// that `spec` still holds.
    pub fn is_translated(&self) -> bool {
        self.program.is_some() && self.spec.r#type.is_some()
    }

    /// The translated program as the model itself: an ML Program (specification version at
    /// least 6, iOS15) with the same description. Models that are already ML Programs are
    /// returned as they are.
    pub fn into_ml_program(mut self) -> Result<Self> {
        if self.program.is_none() {
            return Err(MilError::invalid(
                "model",
                match &self.untranslated {
                    Some(why) => format!(
                        "is a {} model that cannot be translated: {why}",
                        self.type_name()
                    ),
                    None => format!("is a {} model, not an ML Program", self.type_name()),
                },
            ));
        }
        if self.spec.r#type.take().is_some() {
            self.spec.specification_version = self
                .spec
                .specification_version
                .max(neuralnetwork::OPSET.spec_version());
        }
        Ok(self)
    }

    /// The full specification, with the program converted back to protobuf and its weights
    /// appended to `sink`.
    pub fn to_spec(&self, sink: &mut dyn BlobSink, options: &WriteOptions) -> Result<proto::Model> {
        let mut spec = self.spec.clone();
        // A translated NeuralNetwork is written as the NeuralNetwork it was read as.
        if let (Some(p), None) = (&self.program, &self.spec.r#type) {
            spec.r#type = Some(proto::model::Type::MlProgram(program_to_proto(
                p, sink, options,
            )?));
        }
        Ok(spec)
    }

    /// Write the model as an `.mlpackage` at `dest` in coremltools' layout
    /// (`Data/com.apple.CoreML/model.mlmodel`, `weights/weight.bin`), through a temporary
    /// sibling folder renamed into place. Refuses to overwrite the package it was read from.
    pub fn save_mlpackage(&self, dest: impl AsRef<Path>) -> Result<PathBuf> {
        let dest = dest.as_ref();
        if let Some(src) = &self.source {
            check_output_path(dest, src)?;
        }
        let writer = PackageWriter::create(dest)?;
        let weight_path = writer.weight_file_path();
        let io_err = |e| MilError::Format(FormatError::io(&weight_path, "writing weight file", e));
        let mut blobs = BlobWriter::create(&weight_path)?;
        let options = WriteOptions {
            spec_version: self.spec_version(),
            ..WriteOptions::default()
        };
        let spec = self.to_spec(&mut blobs, &options)?;
        let count = blobs.count();
        drop(blobs.finish().map_err(io_err)?);
        if count == 0 {
            std::fs::remove_file(&weight_path).map_err(io_err)?;
        }
        Ok(writer.finish(&spec)?)
    }

    /// Specification version (6 = iOS15 … 9 = iOS18, 10 = iOS26).
    pub fn spec_version(&self) -> i32 {
        self.spec.specification_version
    }

    /// The model description (inputs, outputs, states, metadata).
    pub fn description(&self) -> Option<&proto::ModelDescription> {
        self.spec.description.as_ref()
    }

    /// The model type as named in the protobuf (`mlProgram`, `neuralNetwork`, `pipeline`, ...).
    pub fn type_name(&self) -> &'static str {
        match (&self.program, &self.spec.r#type) {
            (_, Some(t)) => t.type_name(),
            (Some(_), None) => "mlProgram",
            (None, None) => "none",
        }
    }

    /// The program, or an error saying this model is not an ML Program.
    pub fn require_program(&self) -> Result<&Program> {
        self.program.as_ref().ok_or_else(|| {
            MilError::invalid(
                "model",
                match &self.untranslated {
                    Some(why) => format!(
                        "is a {} model that anekit cannot translate to MIL: {why}",
                        self.type_name()
                    ),
                    None => format!("is a {} model, not an ML Program", self.type_name()),
                },
            )
        })
    }
}
