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

    /// The model as a MIL model (its constants share the memory-mapped file), with a
    /// Core ML description of every function's inputs, outputs and states.
    pub fn to_mil_model(&self) -> Model {
        let mut description = proto::ModelDescription::default();
        let program = &self.translation.program;
        let funcs: Vec<proto::FunctionDescription> = program
            .functions
            .iter()
            .map(|(name, f)| describe(name, f))
            .collect();
        if program.functions.len() > 1 {
            if let Some(d) = &self.translation.default_function {
                description.default_function_name = d.clone();
            }
            description.functions = funcs;
        } else if let Some(f) = funcs.into_iter().next() {
            description.input = f.input;
            description.output = f.output;
            description.state = f.state;
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

fn array_type(t: &anekit_mil::TensorType) -> proto::ArrayFeatureType {
    use proto::array_feature_type::ArrayDataType as A;
    let data_type = match t.dtype {
        anekit_mil::DataType::Fp16 => A::Float16,
        anekit_mil::DataType::Fp64 => A::Double,
        anekit_mil::DataType::Int32 => A::Int32,
        anekit_mil::DataType::Int8 => A::Int8,
        _ => A::Float32,
    };
    proto::ArrayFeatureType {
        shape: t
            .fixed_shape()
            .map(|s| s.iter().map(|&d| d as i64).collect())
            .unwrap_or_default(),
        data_type: data_type as i32,
        ..proto::ArrayFeatureType::default()
    }
}

fn feature(name: &str, t: &anekit_mil::ValueType) -> Option<proto::FeatureDescription> {
    let ty = match t {
        anekit_mil::ValueType::Tensor(t) => {
            proto::feature_type::Type::MultiArrayType(array_type(t))
        }
        anekit_mil::ValueType::State(inner) => {
            let t = inner.as_tensor()?;
            proto::feature_type::Type::StateType(proto::StateFeatureType {
                r#type: Some(proto::state_feature_type::Type::ArrayType(array_type(t))),
            })
        }
        _ => return None,
    };
    Some(proto::FeatureDescription {
        name: name.to_string(),
        r#type: Some(proto::FeatureType {
            r#type: Some(ty),
            ..proto::FeatureType::default()
        }),
        ..proto::FeatureDescription::default()
    })
}

/// The Core ML description of a translated function.
fn describe(name: &str, f: &anekit_mil::Function) -> proto::FunctionDescription {
    let mut d = proto::FunctionDescription {
        name: name.to_string(),
        ..proto::FunctionDescription::default()
    };
    for i in &f.inputs {
        if let Some(fd) = feature(&i.name, &i.ty) {
            if matches!(i.ty, anekit_mil::ValueType::State(_)) {
                d.state.push(fd);
            } else {
                d.input.push(fd);
            }
        }
    }
    if let Some(b) = f.block() {
        for o in &b.outputs {
            let ty = b
                .operations
                .iter()
                .rev()
                .flat_map(|op| op.outputs.iter())
                .find(|v| &v.name == o)
                .map(|v| v.ty.clone())
                .or_else(|| f.inputs.iter().find(|i| &i.name == o).map(|i| i.ty.clone()));
            if let Some(fd) = ty.and_then(|t| feature(o, &t)) {
                d.output.push(fd);
            }
        }
    }
    d
}
