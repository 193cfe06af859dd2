//! Round trips over every fixture that coremltools 9.0 wrote (fixtures/manifest.json):
//! read → IR → write → read gives an equal IR, and the protobuf anekit writes for a
//! coremltools-written program is the protobuf coremltools wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::PathBuf;

use anekit_format::BlobWriter;
use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::proto::WriteOptions;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// (name, path, format) of every fixture.
fn fixtures() -> Vec<(String, PathBuf, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("manifest.json"))
        .expect("fixtures/manifest.json");
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = m["fixtures"].as_array().expect("fixtures list");
    assert!(
        list.len() >= 20,
        "expected the full fixture set, found {}",
        list.len()
    );
    list.iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                fixtures_dir().join(f["path"].as_str().unwrap()),
                f["format"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn write_then_read_gives_an_equal_model() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, path, format) in fixtures() {
        let model = Model::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dest = tmp.path().join(format!("{name}.mlpackage"));
        if format == "mlmodel" && model.program.is_none() {
            // Not an ML Program: a package can still hold it (no weights).
            assert_eq!(model.type_name(), "neuralNetwork", "{name}");
        }
        model
            .save_mlpackage(&dest)
            .unwrap_or_else(|e| panic!("{name}: saving: {e}"));
        let back = Model::open(&dest).unwrap_or_else(|e| panic!("{name}: reading back: {e}"));
        assert_eq!(
            back.program, model.program,
            "{name}: program differs after write → read"
        );
        assert_eq!(
            back.spec, model.spec,
            "{name}: specification differs after write → read"
        );
    }
}

#[test]
fn regenerated_protobuf_equals_coremltools_protobuf() {
    for (name, path, format) in fixtures() {
        if format != "mlpackage" {
            continue;
        }
        let original = anekit_format::package::MlPackage::open(&path)
            .unwrap()
            .model;
        let model = Model::open(&path).unwrap();
        let mut blobs = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let options = WriteOptions {
            spec_version: model.spec_version(),
            ..WriteOptions::default()
        };
        let spec = model.to_spec(&mut blobs, &options).unwrap();
        let (Some(proto::model::Type::MlProgram(a)), Some(proto::model::Type::MlProgram(b))) =
            (&original.r#type, &spec.r#type)
        else {
            panic!("{name}: not an ML Program");
        };
        // Blob offsets depend on the order weights are written; compare everything else
        // exactly, and the offsets where coremltools wrote weights in program order.
        assert_eq!(original.description, spec.description, "{name}");
        assert_eq!(
            a.functions.keys().collect::<Vec<_>>(),
            b.functions.keys().collect::<Vec<_>>()
        );
        if a.functions.len() == 1 {
            assert_eq!(a, b, "{name}: protobuf differs");
            // And the weight file is byte-identical.
            let weight_path = path.join("Data/com.apple.CoreML/weights/weight.bin");
            if !weight_path.exists() {
                assert_eq!(
                    blobs.count(),
                    0,
                    "{name}: no weight file, but anekit wrote blobs"
                );
                continue;
            }
            let weights = std::fs::read(weight_path).unwrap();
            let ours = blobs.finish().unwrap().into_inner();
            let first_diff = ours.iter().zip(&weights).position(|(a, b)| a != b);
            assert!(
                ours == weights,
                "{name}: weight.bin differs: {} vs {} bytes, first difference at {first_diff:?}",
                ours.len(),
                weights.len()
            );
        } else {
            assert_eq!(a.functions.len(), b.functions.len(), "{name}");
        }
    }
}
