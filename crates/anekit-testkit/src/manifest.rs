//! The fixture manifest (`fixtures/manifest.json`, written by `scripts/make_fixtures.py`),
//! typed. Fields the tests do not read are kept as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::repo;

/// `fixtures/manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Versions of the tools that wrote the fixtures.
    #[serde(default)]
    pub generator: serde_json::Value,
    /// The fixtures.
    pub fixtures: Vec<Fixture>,
    /// The folder the manifest was read from (paths are relative to it).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One fixture model.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// Name (`convnet_fp32_ios15`).
    pub name: String,
    /// Path relative to the manifest's folder.
    pub path: String,
    /// `mlpackage`, `mlmodel` or `mlmodelc`.
    pub format: String,
    /// The network it was converted from.
    #[serde(default)]
    pub network: Option<String>,
    /// `fp32` or `fp16`.
    #[serde(default)]
    pub precision: Option<String>,
    /// `iOS15` … `iOS18`.
    #[serde(default)]
    pub deployment_target: Option<String>,
    /// Specification version.
    #[serde(default)]
    pub spec_version: Option<i64>,
    /// `mlProgram`, `neuralNetwork`, ...
    #[serde(default)]
    pub model_type: Option<String>,
    /// Functions of the program.
    #[serde(default)]
    pub functions: Vec<String>,
    /// The default function.
    #[serde(default)]
    pub default_function: Option<String>,
    /// How the weights were compressed (`null`: not compressed).
    #[serde(default)]
    pub compression: Option<serde_json::Value>,
    /// Input / output data sets with their PyTorch references.
    #[serde(default)]
    pub data: Vec<DataSet>,
    /// Op counts per function as coremltools counts them.
    #[serde(default)]
    pub coremltools_op_counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Everything else of the entry.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One data set of a fixture: inputs and the reference outputs (paths relative to the
/// manifest's folder).
#[derive(Debug, Clone, Deserialize)]
pub struct DataSet {
    /// The function it runs.
    pub function: String,
    /// A label (`reference` when absent).
    #[serde(default)]
    pub label: Option<String>,
    /// Input name → `.npy` file.
    pub inputs: BTreeMap<String, String>,
    /// Output name → `.npy` file.
    pub outputs: BTreeMap<String, String>,
    /// State name → `.npy` file after this call (stateful models).
    #[serde(default)]
    pub states_after: BTreeMap<String, String>,
}

impl DataSet {
    /// The label, `reference` when absent.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or("reference")
    }
}

/// What went wrong reading the manifest.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Manifest {
    /// The repository's `fixtures/manifest.json`.
    pub fn load() -> Result<Self, ManifestError> {
        Self::read(&repo::fixtures_dir().join("manifest.json"))
    }

    /// A manifest file.
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let err = |message: String| ManifestError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut m: Self = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        m.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(m)
    }

    /// The absolute path of a manifest-relative `path`.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// The fixture called `name`.
    pub fn fixture(&self, name: &str) -> Option<&Fixture> {
        self.fixtures.iter().find(|f| f.name == name)
    }
}

impl Fixture {
    /// Whether the fixture is an ML Program.
    pub fn is_ml_program(&self) -> bool {
        self.model_type.as_deref().is_none_or(|t| t == "mlProgram")
    }

    /// Whether the fixture's I/O and compute types are fp32.
    pub fn is_fp32(&self) -> bool {
        self.precision.as_deref() == Some("fp32")
    }
}
