//! Every fixture listed in `fixtures/manifest.json` (Core ML models written by coremltools
//! 9.0, plus the compiled sample shipped in coremltools) opens, and what we read matches what
//! coremltools recorded: kind, specification version, model type, function names, input /
//! output / state names, dtypes and shapes. Every blob reference resolves to a blob whose
//! dtype and element count agree with the type the model declares for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use anekit_format::proto::{self, mil_spec};
use anekit_format::{AssetKind, BlobSource, ModelAsset, blob_references};
use serde_json::Value;

fn manifest() -> Value {
    let path = common::fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (fixtures missing?)", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn fixtures() -> Vec<Value> {
    let list = manifest()["fixtures"].as_array().unwrap().clone();
    assert!(list.len() >= 3, "fixture list suspiciously short");
    list
}

fn names(features: &[proto::FeatureDescription]) -> Vec<String> {
    features.iter().map(|f| f.name.clone()).collect()
}

fn expected_names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The array type of a feature (multi-array or state).
fn array_type(f: &proto::FeatureDescription) -> Option<&proto::ArrayFeatureType> {
    use proto::feature_type::Type;
    match f.r#type.as_ref()?.r#type.as_ref()? {
        Type::MultiArrayType(a) => Some(a),
        Type::StateType(s) => match s.r#type.as_ref()? {
            proto::state_feature_type::Type::ArrayType(a) => Some(a),
        },
        _ => None,
    }
}

fn dtype_name(a: &proto::ArrayFeatureType) -> &'static str {
    use proto::array_feature_type::ArrayDataType as D;
    match D::try_from(a.data_type) {
        Ok(D::Float16) => "float16",
        Ok(D::Float32) => "float32",
        Ok(D::Double) => "float64",
        Ok(D::Int32) => "int32",
        Ok(D::Int8) => "int8",
        _ => "?",
    }
}

/// Compare features with the manifest's records (name, dtype, and shape: the default shape
/// for flexible inputs).
fn check_features(ctx: &str, got: &[proto::FeatureDescription], want: &Value) {
    assert_eq!(names(got), expected_names(want), "{ctx}: names");
    for (f, w) in got.iter().zip(want.as_array().unwrap()) {
        let Some(a) = array_type(f) else { continue };
        assert_eq!(
            dtype_name(a),
            w["dtype"].as_str().unwrap(),
            "{ctx}: {} dtype",
            f.name
        );
        let shape: Vec<i64> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap())
            .collect();
        assert_eq!(a.shape, shape, "{ctx}: {} shape", f.name);
    }
}

/// Normalised dtype names so that MIL.proto's `FLOAT16` and the blob file's `Float16`
/// compare equal.
fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// Resolve every blob reference of an ML Program and check it against its declared type.
fn check_blobs(ctx: &str, asset: &ModelAsset) -> usize {
    let refs = blob_references(asset.spec.as_ref().unwrap());
    for r in &refs {
        let blob = asset
            .weights
            .blob(&r.file_name, r.offset)
            .unwrap_or_else(|e| panic!("{ctx}: {}: {e}", r.location));
        let Some(mil_spec::value_type::Type::TensorType(t)) =
            r.value_type.as_ref().and_then(|v| v.r#type.as_ref())
        else {
            panic!("{ctx}: {}: blob value without tensor type", r.location);
        };
        let dtype = mil_spec::DataType::try_from(t.data_type).unwrap();
        assert_eq!(
            norm(dtype.as_str_name()),
            norm(&format!("{:?}", blob.dtype)),
            "{ctx}: {} dtype",
            r.location
        );
        let count: u64 = t
            .dimensions
            .iter()
            .map(|d| match d.dimension {
                Some(mil_spec::dimension::Dimension::Constant(c)) => c.size,
                _ => panic!("{ctx}: {}: non-constant blob shape", r.location),
            })
            .product();
        assert_eq!(
            blob.element_count(),
            count,
            "{ctx}: {} element count",
            r.location
        );
    }
    // The file itself enumerates cleanly and holds every referenced record.
    let mut files: Vec<&str> = refs.iter().map(|r| r.file_name.as_str()).collect();
    files.dedup();
    for f in files {
        let file = asset.weights.file(f).unwrap();
        let offsets: Vec<u64> = file.blobs().map(|b| b.unwrap().metadata_offset).collect();
        assert_eq!(offsets.len(), file.count() as usize, "{ctx}: blob count");
        for r in refs.iter().filter(|r| r.file_name == f) {
            assert!(
                offsets.contains(&r.offset),
                "{ctx}: {} not a record",
                r.location
            );
        }
    }
    refs.len()
}

#[test]
fn every_fixture_matches_the_manifest() {
    let root = common::fixtures_dir();
    let mut by_kind = [0usize; 3];
    let mut blob_refs = 0;
    for fx in fixtures() {
        let name = fx["name"].as_str().unwrap();
        let path = root.join(fx["path"].as_str().unwrap());
        let asset = ModelAsset::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kind = match fx["format"].as_str().unwrap() {
            "mlpackage" => AssetKind::Package,
            "mlmodel" => AssetKind::ModelFile,
            "mlmodelc" => AssetKind::Compiled,
            other => panic!("{name}: unknown format {other}"),
        };
        assert_eq!(asset.kind, kind, "{name}");
        by_kind[kind as usize] += 1;
        assert_eq!(
            asset.specification_version(),
            fx["spec_version"].as_i64(),
            "{name}: spec version"
        );
        let desc = asset
            .description()
            .unwrap_or_else(|| panic!("{name}: no description"));
        let model_type = fx["model_type"].as_str().unwrap();
        let functions: Vec<String> = fx["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();

        if let Some(function_io) = fx.get("function_io").filter(|v| v.is_object()) {
            // Multifunction: I/O is declared per function.
            assert!(desc.input.is_empty(), "{name}: top-level inputs");
            assert_eq!(
                desc.default_function_name,
                fx["default_function"].as_str().unwrap()
            );
            for f in &desc.functions {
                let w = &function_io[&f.name];
                check_features(&format!("{name}/{}", f.name), &f.input, &w["inputs"]);
                check_features(&format!("{name}/{}", f.name), &f.output, &w["outputs"]);
                check_features(&format!("{name}/{}", f.name), &f.state, &w["states"]);
            }
            let mut got: Vec<_> = desc.functions.iter().map(|f| f.name.clone()).collect();
            got.sort();
            assert_eq!(got, functions, "{name}: function descriptions");
        } else {
            check_features(name, &desc.input, &fx["inputs"]);
            check_features(name, &desc.output, &fx["outputs"]);
            check_features(name, &desc.state, &fx["states"]);
        }

        match &asset.spec {
            Some(spec) => {
                use proto::model::Type;
                match (&spec.r#type, model_type) {
                    (Some(Type::MlProgram(p)), "mlProgram") => {
                        let got: Vec<_> = p.functions.keys().cloned().collect();
                        assert_eq!(got, functions, "{name}: program functions");
                        let opsets = fx["opsets"].as_object().unwrap();
                        for (f, func) in &p.functions {
                            assert_eq!(func.opset, opsets[f].as_str().unwrap(), "{name}: opset");
                        }
                        blob_refs += check_blobs(name, &asset);
                    }
                    (Some(Type::NeuralNetwork(_)), "neuralNetwork")
                    | (Some(Type::NeuralNetworkClassifier(_)), "neuralNetworkClassifier")
                    | (Some(Type::Pipeline(_)), "pipeline") => {}
                    (t, want) => panic!(
                        "{name}: model type {:?}, manifest says {want}",
                        t.as_ref().map(|_| "other")
                    ),
                }
            }
            None => {
                // Compiled model without model.mlmodel: MIL text and metadata instead.
                assert_eq!(kind, AssetKind::Compiled);
                let mil = asset.mil_text.as_deref().unwrap();
                assert!(mil.starts_with("program("), "{name}: MIL text");
                for f in &functions {
                    assert!(mil.contains(&format!("func {f}<")), "{name}: func {f}");
                }
                let md = asset.compiled_metadata.as_ref().unwrap();
                let ty = md.model_type.as_ref().and_then(|t| t.name.as_deref());
                assert_eq!(ty, Some(format!("MLModelType_{model_type}").as_str()));
                assert_eq!(md.specification_version, fx["spec_version"].as_i64());
                let schema_names = |s: &[anekit_format::mlmodelc::FeatureSchema]| -> Vec<String> {
                    s.iter().filter_map(|f| f.name.clone()).collect()
                };
                assert_eq!(
                    schema_names(&md.input_schema),
                    expected_names(&fx["inputs"])
                );
                assert_eq!(
                    schema_names(&md.output_schema),
                    expected_names(&fx["outputs"])
                );
                let cd = asset.coremldata.as_ref().unwrap();
                assert_eq!(
                    cd.model_type,
                    Some(502),
                    "{name}: coremldata.bin model type"
                );
                assert_eq!(cd.tag.as_deref(), Some("generic"));
            }
        }
    }
    assert!(
        by_kind.iter().all(|&n| n > 0),
        "each kind covered: {by_kind:?}"
    );
    eprintln!("checked {blob_refs} blob references; fixtures by kind {by_kind:?}");
    assert!(blob_refs > 50, "only {blob_refs} blob references checked");
}

#[test]
fn package_layout_is_coremltools() {
    // Every fixture package: the manifest names the root model and the weights folder the
    // way coremltools does, and MlPackage reports those paths.
    for fx in fixtures() {
        if fx["format"] != "mlpackage" {
            continue;
        }
        let path = common::fixtures_dir().join(fx["path"].as_str().unwrap());
        let pkg = anekit_format::MlPackage::open(&path).unwrap();
        assert_eq!(
            pkg.model_path,
            path.join("Data/com.apple.CoreML/model.mlmodel")
        );
        assert_eq!(
            pkg.weights_dir.as_deref(),
            Some(path.join("Data/com.apple.CoreML/weights").as_path())
        );
        assert_eq!(pkg.manifest.file_format_version, "1.0.0");
    }
}

#[test]
fn opening_through_manifest_and_model_file() {
    let root = common::fixtures_dir().join("models");
    let pkg = root.join("mlp_fp16_ios18.mlpackage");
    let a = ModelAsset::open(pkg.join("Manifest.json")).unwrap();
    assert_eq!(a.kind, AssetKind::Package);
    assert_eq!(a.path, pkg);
    // The root model file alone is a valid .mlmodel, but has no weights to resolve.
    let model = pkg.join("Data/com.apple.CoreML/model.mlmodel");
    let m = ModelAsset::open(&model).unwrap();
    assert_eq!(m.kind, AssetKind::ModelFile);
    let r = &blob_references(m.spec.as_ref().unwrap())[0];
    let err = m
        .weights
        .blob(&r.file_name, r.offset)
        .unwrap_err()
        .to_string();
    assert!(err.contains("BlobFileValue.fileName"), "{err}");
}

#[test]
fn kind_is_detected_by_content() {
    // Copies under misleading names are still recognised.
    let dir = tempfile::tempdir().unwrap();
    let src = common::fixtures_dir().join("models/neuralnetwork_fp32.mlmodel");
    let renamed = dir.path().join("weights.dat");
    std::fs::copy(&src, &renamed).unwrap();
    assert_eq!(
        ModelAsset::open(&renamed).unwrap().kind,
        AssetKind::ModelFile
    );
    let c = dir.path().join("compiled_thing");
    copy_dir(
        &common::fixtures_dir().join("external/add_model.mlmodelc"),
        &c,
    );
    assert_eq!(ModelAsset::open(&c).unwrap().kind, AssetKind::Compiled);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
