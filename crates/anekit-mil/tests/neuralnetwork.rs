//! NeuralNetwork models: every NeuralNetwork fixture (coremltools-converted and
//! NeuralNetworkBuilder specs) translates into a program that validates, keeps its payload
//! when written back, and converts to an ML Program; layer coverage table up to date.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::frontend::neuralnetwork::coverage;
use anekit_mil::model::Model;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn nn_fixtures() -> Vec<(String, PathBuf)> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["format"] == "mlmodel")
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                fixtures().join(f["path"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn every_neuralnetwork_fixture_translates_and_validates() {
    let all = nn_fixtures();
    assert!(all.len() >= 10, "{all:?}");
    for (name, path) in all {
        let m = Model::open(&path).unwrap();
        let p = m
            .program
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: not translated: {:?}", m.untranslated));
        assert!(m.is_translated(), "{name}");
        if let Err(d) = anekit_mil::validate::validate(p) {
            panic!(
                "{name}: {}",
                d.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        assert_ne!(m.type_name(), "mlProgram", "{name}");
    }
}

#[test]
fn translated_model_writes_its_neuralnetwork_back_and_converts() {
    let path = fixtures().join("models/nn_convnet_fp32.mlmodel");
    let m = Model::open(&path).unwrap();
    let mut sink =
        anekit_format::BlobWriter::create(tempfile::tempdir().unwrap().path().join("w.bin"))
            .unwrap();
    let spec = m
        .to_spec(&mut sink, &anekit_mil::proto::WriteOptions::default())
        .unwrap();
    assert_eq!(spec, anekit_format::mlmodel::read_model(&path).unwrap());
    let ml = m.into_ml_program().unwrap();
    assert_eq!(ml.type_name(), "mlProgram");
    assert!(ml.spec_version() >= 6);
    let dir = tempfile::tempdir().unwrap();
    let out = ml.save_mlpackage(dir.path().join("c.mlpackage")).unwrap();
    let back = Model::open(&out).unwrap();
    let ops = |m: &Model| {
        m.program
            .as_ref()
            .unwrap()
            .main_function()
            .unwrap()
            .1
            .block()
            .unwrap()
            .op_counts()
    };
    assert_eq!(ops(&back), ops(&ml));
    assert_eq!(back.type_name(), "mlProgram");
}

#[test]
fn an_unsupported_layer_is_named_at_load() {
    use anekit_format::proto;
    let path = fixtures().join("models/nn_convnet_fp32.mlmodel");
    let mut spec = anekit_format::mlmodel::read_model(&path).unwrap();
    let Some(proto::model::Type::NeuralNetwork(nn)) = spec.r#type.as_mut() else {
        panic!("not a neural network")
    };
    nn.layers[1].layer = Some(proto::neural_network_layer::Layer::Custom(
        proto::CustomLayerParams {
            class_name: "MyLayer".into(),
            ..Default::default()
        },
    ));
    let name = nn.layers[1].name.clone();
    let m = Model::from_spec(
        spec,
        std::sync::Arc::new(anekit_format::WeightStore::none()),
    )
    .unwrap();
    let e = m.require_program().unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("custom"), "{e}");
}

#[test]
fn coverage_table_lists_every_layer_of_the_proto() {
    let proto = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../anekit-format/proto/NeuralNetwork.proto"),
    )
    .unwrap();
    // The oneof layer of NeuralNetworkLayer: `TypeParams name = N;` lines between its braces.
    let start = proto.find("oneof layer {").unwrap();
    let end = start + proto[start..].find("\n    }").unwrap();
    let names: Vec<&str> = proto[start..end]
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let mut it = l.split_whitespace();
            let (_ty, name, eq) = (it.next()?, it.next()?, it.next()?);
            (eq == "=").then_some(name)
        })
        .collect();
    let ours: Vec<&str> = coverage::LAYERS.iter().map(|l| l.0).collect();
    let mut a = names.clone();
    let mut b = ours.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/neuralnetwork.md"),
    )
    .unwrap();
    assert!(
        doc.contains(&coverage::coverage_markdown()),
        "docs/neuralnetwork.md is stale: run `cargo xtask gen-docs`"
    );
}
