//! Helpers shared by the integration tests: a small ML Program whose constants live in a
//! weight file, written with the crate's own writers.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anekit_format::proto::{self, mil_spec};
use anekit_format::{BlobDataType, BlobWriter, PackageWriter};

/// The weight file name as a model refers to it.
pub const WEIGHT_REF: &str = "@model_path/weights/weight.bin";

/// A `const` op whose value is the blob at `offset` of the weight file.
pub fn blob_const(name: &str, offset: u64, shape: &[u64]) -> mil_spec::Operation {
    let tensor = mil_spec::ValueType {
        r#type: Some(mil_spec::value_type::Type::TensorType(
            mil_spec::TensorType {
                data_type: mil_spec::DataType::Float16 as i32,
                rank: shape.len() as i64,
                dimensions: shape
                    .iter()
                    .map(|&size| mil_spec::Dimension {
                        dimension: Some(mil_spec::dimension::Dimension::Constant(
                            mil_spec::dimension::ConstantDimension { size },
                        )),
                    })
                    .collect(),
                attributes: BTreeMap::new(),
            },
        )),
    };
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "val".to_string(),
        mil_spec::Value {
            doc_string: String::new(),
            r#type: Some(tensor.clone()),
            value: Some(mil_spec::value::Value::BlobFileValue(
                mil_spec::value::BlobFileValue {
                    file_name: WEIGHT_REF.into(),
                    offset,
                },
            )),
        },
    );
    mil_spec::Operation {
        r#type: "const".into(),
        inputs: BTreeMap::new(),
        outputs: vec![mil_spec::NamedValueType {
            name: name.into(),
            r#type: Some(tensor),
        }],
        blocks: vec![],
        attributes,
    }
}

/// A spec-8 ML Program whose `main` holds one blob-backed `const` per offset.
pub fn program_model(offsets: &[u64]) -> proto::Model {
    let ops: Vec<_> = offsets
        .iter()
        .enumerate()
        .map(|(i, &o)| blob_const(&format!("w{i}"), o, &[2, 4]))
        .collect();
    let outputs = ops.iter().map(|o| o.outputs[0].name.clone()).collect();
    let block = mil_spec::Block {
        inputs: vec![],
        outputs,
        operations: ops,
        attributes: BTreeMap::new(),
    };
    let function = mil_spec::Function {
        inputs: vec![],
        opset: "CoreML7".into(),
        block_specializations: [("CoreML7".to_string(), block)].into_iter().collect(),
        attributes: BTreeMap::new(),
    };
    let program = mil_spec::Program {
        version: 1,
        functions: [("main".to_string(), function)].into_iter().collect(),
        doc_string: String::new(),
        attributes: BTreeMap::new(),
    };
    proto::Model {
        specification_version: 8,
        description: Some(proto::ModelDescription {
            output: vec![proto::FeatureDescription {
                name: "w0".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        r#type: Some(proto::model::Type::MlProgram(program)),
        ..Default::default()
    }
}

/// The payloads written by [`write_package`]: fp16 2×4 tensors.
pub fn payloads() -> Vec<Vec<u8>> {
    (0u8..3).map(|i| vec![i + 1; 16]).collect()
}

/// Write a package with three fp16 blobs at `dest`; returns the blob offsets.
pub fn write_package(dest: &Path) -> Vec<u64> {
    let writer = PackageWriter::create(dest).unwrap();
    let mut blobs = BlobWriter::create(writer.weight_file_path()).unwrap();
    let offsets: Vec<u64> = payloads()
        .iter()
        .map(|p| blobs.append(BlobDataType::Float16, p, 0).unwrap())
        .collect();
    blobs.finish().unwrap();
    writer.finish(&program_model(&offsets)).unwrap();
    offsets
}

/// Paths inside a package written by [`write_package`].
pub struct Layout {
    pub root: PathBuf,
    pub manifest: PathBuf,
    pub model: PathBuf,
    pub weights: PathBuf,
}

pub fn layout(root: &Path) -> Layout {
    let data = root.join("Data/com.apple.CoreML");
    Layout {
        root: root.to_path_buf(),
        manifest: root.join("Manifest.json"),
        model: data.join("model.mlmodel"),
        weights: data.join("weights/weight.bin"),
    }
}

/// The repository's `fixtures/` folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}
