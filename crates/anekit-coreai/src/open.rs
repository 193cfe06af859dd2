//! Opening an `.aimodel` as a MIL model: the container ([`anekit_format::aimodel`]), the
//! translation ([`crate::to_mil`]) and a Core ML specification around the program, so
//! that every command working on Core ML models works on Core AI models too.

use std::path::Path;
use std::sync::Arc;

use anekit_format::aimodel::AiModel;
use anekit_format::{FormatError, WeightStore, proto};
use anekit_mil::model::Model;

use crate::to_mil::{Options, TranslateError, Translation, translate};

/// Why a Core AI model could not be opened as a MIL model.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The folder or its files.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The translation.
    #[error("{path}: {source}")]
    Translate {
        /// The model.
        path: String,
        /// What failed.
        #[source]
        source: TranslateError,
    },
}

/// An opened and translated Core AI model.
#[derive(Debug, Clone)]
pub struct CoreAiModel {
    /// The folder, its metadata and module.
    pub asset: AiModel,
    /// The translation into MIL.
    pub translation: Translation,
}

/// The Core ML specification version the translated program needs (iOS18 opset).
pub const SPEC_VERSION: i32 = 9;

impl CoreAiModel {
    /// Open and translate the `.aimodel` at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, Options::default())
    }

    /// Open and translate with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        let asset = AiModel::open(path.as_ref())?;
        let translation =
            translate(&asset.module, options).map_err(|source| OpenError::Translate {
                path: path.as_ref().display().to_string(),
                source,
            })?;
        Ok(Self { asset, translation })
    }

    /// The model as a MIL model (its constants share the memory-mapped file).
    pub fn to_mil_model(&self) -> Model {
        let mut description = proto::ModelDescription::default();
        if self.translation.program.functions.len() > 1
            && let Some(d) = &self.translation.default_function
        {
            description.default_function_name = d.clone();
        }
        let mut meta = proto::Metadata::default();
        if let Some(p) = &self.asset.metadata.producer {
            meta.user_defined
                .insert("com.apple.coreai.producer".into(), p.clone());
        }
        if let Some(v) = crate::model::asset_version(&self.asset.module) {
            meta.user_defined
                .insert("com.apple.coreai.asset_version".into(), v.to_string());
        }
        meta.short_description = "Core AI model translated by anekit".into();
        description.metadata = Some(meta);
        let spec = proto::Model {
            specification_version: SPEC_VERSION,
            description: Some(description),
            ..proto::Model::default()
        };
        let mut model = Model::from_program(spec, self.translation.program.clone());
        model.weights = Arc::new(WeightStore::none());
        model.source = Some(self.asset.root.clone());
        model
    }
}
