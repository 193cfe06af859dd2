//! NeuralNetwork models through the CLI: `run` with a PNG for an image input (the model's
//! scaler preprocessing applied), `analyze` placing a NeuralNetwork and the ML Program
//! conversion of the same network alike, `compress` writing a NeuralNetwork back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn anekit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn run_decodes_a_png_for_an_image_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    ok(&anekit(&[
        "run",
        "fixtures/models/nn_image_fp32.mlmodel",
        "--input",
        "image=fixtures/data/nn_image/inputs/image.png",
        "--output-dir",
        out,
    ]));
    let y = anekit_runtime::npy::read(dir.path().join("y.npy")).unwrap();
    let want =
        anekit_runtime::npy::read(repo().join("fixtures/data/nn_image/outputs/y.npy")).unwrap();
    let d = y.deviation(&want).unwrap();
    assert!(d.relative() < 1e-4, "relative error {}", d.relative());
    // The same pixels from the .npy give the same answer.
    let dir2 = tempfile::tempdir().unwrap();
    ok(&anekit(&[
        "run",
        "fixtures/models/nn_image_fp32.mlmodel",
        "--input",
        "image=fixtures/data/nn_image/inputs/image.npy",
        "--output-dir",
        dir2.path().to_str().unwrap(),
    ]));
    let y2 = anekit_runtime::npy::read(dir2.path().join("y.npy")).unwrap();
    assert_eq!(y, y2);
}

#[test]
fn a_png_of_another_size_is_resized_with_a_note() {
    // The 10x12 fixture image given to a model whose image input is 10x12 needs no resize;
    // a 3-channel image for a [1, 3, 16, 16] tensor input is decoded and resized.
    let o = anekit(&[
        "run",
        "fixtures/models/nn_convnet_fp32.mlmodel",
        "--input",
        "x=fixtures/data/nn_image/inputs/image.png",
    ]);
    let text = ok(&o);
    assert!(
        text.contains("resized 10x12 to the input's 16x16"),
        "{text}"
    );
    assert!(text.contains("not an image input"), "{text}");
}

#[test]
fn neuralnetwork_and_ml_program_conversions_place_alike() {
    let report = |m: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&anekit(&["analyze", m, "--chip", "M2", "--json"]))).unwrap()
    };
    let nn = report("fixtures/models/nn_convnet_fp32.mlmodel");
    let ml = report("fixtures/models/nn_convnet_mlprogram_fp16_ios15.mlpackage");
    let units = |r: &serde_json::Value| -> Vec<String> {
        r["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["unit"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(units(&nn), units(&ml), "segments");
    for key in ["ane_fraction_ops", "ane_fraction_flops"] {
        let (a, b) = (
            nn["coverage"][key].as_f64().unwrap(),
            ml["coverage"][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() < 0.05 || (a > 0.9 && b > 0.9),
            "{key}: {a} vs {b}"
        );
    }
}

#[test]
fn compress_writes_a_neuralnetwork_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.mlmodel");
    let text = ok(&anekit(&[
        "compress",
        "fixtures/models/nn_mobilenetv2_fp32.mlmodel",
        "-o",
        out.to_str().unwrap(),
        "--quantize",
        "uint8",
        "--mode",
        "linear",
        "--json",
    ]));
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    // fp32 → 8-bit weights: a quarter of the weight bytes (the file also holds names, shapes).
    let w = &r["compression"];
    assert_eq!(
        w["bytes_before"].as_u64().unwrap(),
        4 * w["bytes_after"].as_u64().unwrap(),
        "{r}"
    );
    assert!(
        r["size_after"].as_u64().unwrap() * 2 < r["size_before"].as_u64().unwrap(),
        "{r}"
    );
    let snr = r["outputs"][0]["snr_db"].as_f64().unwrap();
    assert!(snr > 25.0, "8-bit linear SNR {snr}");
    let m = anekit_mil::model::Model::open(&out).unwrap();
    assert_eq!(m.type_name(), "neuralNetwork");
    assert!(m.is_translated());
    // Options coremltools does not offer for NeuralNetwork models are refused.
    let o = anekit(&[
        "compress",
        "fixtures/models/nn_convnet_fp32.mlmodel",
        "-o",
        out.to_str().unwrap(),
        "--prune",
        "0.5",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not available for NeuralNetwork models"));
}

#[test]
fn compress_takes_any_linear_width_for_a_neuralnetwork() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q4.mlmodel");
    let text = ok(&anekit(&[
        "compress",
        "fixtures/models/nn_mobilenetv2_fp32.mlmodel",
        "-o",
        out.to_str().unwrap(),
        "--quantize",
        "uint8",
        "--nbits",
        "4",
        "--json",
    ]));
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["nbits"], 4, "{r}");
    // fp32 -> 4-bit codes: an eighth of the weight bytes, give or take a byte per weight
    // for the packing of odd-sized rows.
    let w = &r["compression"];
    let (before, after) = (
        w["bytes_before"].as_u64().unwrap(),
        w["bytes_after"].as_u64().unwrap(),
    );
    assert!(after * 7 < before && after * 9 > before, "{r}");
    assert_eq!(
        anekit_mil::model::Model::open(&out).unwrap().type_name(),
        "neuralNetwork"
    );
    // A width is unsigned below 8 bits, and ML Programs do not take --nbits.
    let o = anekit(&[
        "compress",
        "fixtures/models/nn_convnet_fp32.mlmodel",
        "-o",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--nbits",
        "3",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsigned"));
    let o = anekit(&[
        "compress",
        "fixtures/models/mlp_fp16_ios16.mlpackage",
        "-o",
        dir.path().join("m.mlpackage").to_str().unwrap(),
        "--quantize",
        "uint8",
        "--nbits",
        "4",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--nbits is for NeuralNetwork"));
}
