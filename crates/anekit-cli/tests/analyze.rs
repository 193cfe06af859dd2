//! `anekit analyze` and `anekit optimize` end to end: the binary on fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn anekit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(format!("{name}.mlpackage"))
}

#[test]
fn analyze_json_has_the_issue_keys() {
    let out = anekit()
        .args([
            "analyze",
            "--json",
            "--chip",
            "iPhone 13",
            "--compute-units",
            "cpu-and-ne",
        ])
        .arg(fixture("lstm_fp32_ios15"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["chip"], "A15");
    assert_eq!(j["compute_units"], "cpu-and-ne");
    assert!(j["estimate"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(j["coverage"]["ane_fraction_ops"].is_number());
    let lstm = j["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "lstm")
        .unwrap();
    assert_eq!(lstm["unit"], "cpu");
    assert!(!lstm["reasons"].as_array().unwrap().is_empty());
}

#[test]
fn analyze_text_html_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let out = anekit()
        .args(["analyze", "--chip", "M4"])
        .arg(fixture("convnet_fp16_ios16"))
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10 of 10 ops on the Neural Engine"), "{text}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    // the chip list and a helpful error for an unknown chip
    let out = anekit()
        .args(["analyze", "--chip", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("M3 Ultra"));
    let out = anekit()
        .args(["analyze", "--chip", "M99"])
        .arg(fixture("convnet_fp16_ios16"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown chip `M99`"));
    // NeuralNetwork models are analysed through their MIL translation …
    let nn = fixture("x").with_file_name("neuralnetwork_fp32.mlmodel");
    let out = anekit().arg("analyze").arg(&nn).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // … and one with a layer the translation does not handle is refused, naming the layer.
    use anekit_format::proto::{self, neural_network_layer::Layer};
    let mut spec = anekit_format::mlmodel::read_model(&nn).unwrap();
    let Some(proto::model::Type::NeuralNetwork(net)) = spec.r#type.as_mut() else {
        panic!("not a neural network")
    };
    net.layers[0].layer = Some(Layer::Custom(proto::CustomLayerParams::default()));
    let layer = net.layers[0].name.clone();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("custom.mlmodel");
    anekit_format::mlmodel::write_model(&bad, &spec).unwrap();
    let out = anekit().arg("analyze").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&layer) && err.contains("custom"), "{err}");
}

#[test]
fn optimize_writes_a_new_package_and_never_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let out_pkg = dir.path().join("mlp.mlpackage");
    let out = anekit()
        .arg("optimize")
        .arg(fixture("mlp_fp32_ios15"))
        .arg("-o")
        .arg(&out_pkg)
        .args(["--fp16", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["before"]["ane_ops"], 0);
    assert_eq!(j["after"]["ane_ops"], j["after"]["compute_ops"]);
    assert!(out_pkg.join("Manifest.json").exists());
    // the input is never the output
    let src = fixture("mlp_fp16_ios16");
    let out = anekit()
        .arg("optimize")
        .arg(&src)
        .arg("-o")
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
