//! `anekit run` and `anekit bench` end to end, against the fixtures' PyTorch references.
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

#[test]
fn run_writes_outputs_that_match_pytorch() {
    let out_dir = tempfile::tempdir().unwrap();
    let o = anekit(&[
        "run",
        "fixtures/models/mlp_big_fp16_ios18.mlpackage",
        "--input",
        "x=fixtures/data/mlp_big/inputs/x.npy",
        "--output-dir",
        out_dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["selection"]["backend"], "cpu");
    assert_eq!(report["outputs"][0]["name"], "y");
    let ours = anekit_runtime::npy::read(out_dir.path().join("y.npy"))
        .unwrap()
        .to_f32();
    let reference = anekit_runtime::npy::read(repo().join("fixtures/data/mlp_big/outputs/y.npy"))
        .unwrap()
        .to_f32();
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(reference.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    // fp16 model against the fp32 PyTorch network.
    assert!(err / scale < 1e-2, "relative error {}", err / scale);
}

#[test]
fn run_prints_and_writes_a_classifiers_label_and_probabilities() {
    let model = "fixtures/models/classifier_str_fp32_ios15.mlpackage";
    let input = "x=fixtures/data/classifier_str_fp32_ios15/inputs/x.npy";
    let reference = anekit_runtime::npy::read(
        repo().join("fixtures/data/classifier_str_fp32_ios15/outputs/classLabel_probs.npy"),
    )
    .unwrap()
    .to_f32();
    // Text: the label and every class's probability.
    let o = anekit(&["run", model, "--input", input]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("classLabel  string []"), "{text}");
    assert!(text.contains("\"bird\""), "{text}");
    assert!(text.contains("classLabel_probs  dict [3]"), "{text}");
    let line = format!(
        "{{cat: {:.4}, dog: {:.4}, bird: {:.4}}}",
        reference[0], reference[1], reference[2]
    );
    assert!(text.contains(&line), "{line} not in {text}");

    // --json and --output-dir: the label as a numpy unicode .npy, the dictionary as .json.
    let out_dir = tempfile::tempdir().unwrap();
    let o = anekit(&[
        "run",
        model,
        "--input",
        input,
        "--output-dir",
        out_dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["name"], "classLabel");
    assert_eq!(outputs[0]["dtype"], "string");
    assert_eq!(outputs[0]["value"], "bird");
    assert_eq!(outputs[1]["dtype"], "dict");
    let label = anekit_runtime::npy::read(out_dir.path().join("classLabel.npy")).unwrap();
    assert_eq!(label.as_str(), Some("bird"));
    let probs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("classLabel_probs.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(probs, outputs[1]["value"]);
    for (i, key) in ["cat", "dog", "bird"].iter().enumerate() {
        let got = probs[key].as_f64().unwrap();
        assert!(
            (got - f64::from(reference[i])).abs() <= 1e-4,
            "{key}: {got} vs {}",
            reference[i]
        );
    }

    // Integer labels.
    let o = anekit(&[
        "run",
        "fixtures/models/classifier_int_fp32_ios16.mlpackage",
        "--input",
        "x=fixtures/data/classifier_int_fp32_ios16/inputs/x.npy",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["outputs"][0]["dtype"], "int32");
    assert_eq!(report["outputs"][0]["mean"], 11.0);
    let probs = &report["outputs"][1]["value"];
    assert!((probs["11"].as_f64().unwrap() - f64::from(reference[2])).abs() <= 1e-4);
}

#[test]
fn run_explains_bad_inputs() {
    let o = anekit(&["run", "fixtures/models/mlp_big_fp16_ios18.mlpackage"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no value for input \"x\"") && e.contains("--random"),
        "{e}"
    );
    let o = anekit(&[
        "run",
        "fixtures/models/mlp_big_fp16_ios18.mlpackage",
        "--input",
        "nope=x.npy",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no input \"nope\"") && e.contains("its inputs: x"),
        "{e}"
    );
    let o = anekit(&[
        "run",
        "fixtures/models/mlp_big_fp16_ios18.mlpackage",
        "--input",
        "x=fixtures/data/decoder_sdpa/inputs/input_ids.npy",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("input \"x\"") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn bench_reports_percentiles_memory_and_energy_sources() {
    let o = anekit(&[
        "bench",
        "fixtures/models/mlp_big_fp16_ios18.mlpackage",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--metrics",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["threads"], 1);
    assert_eq!(r["runs"], 3);
    let (min, med, p90) = (
        r["min_ms"].as_f64().unwrap(),
        r["median_ms"].as_f64().unwrap(),
        r["p90_ms"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= med && med <= p90, "{r}");
    // Energy: either components with power, or the reason each power source is unreadable.
    let e = &r["energy"];
    let n = e["components"].as_array().unwrap().len() + e["unavailable"].as_array().unwrap().len();
    assert!(n > 0, "{e}");
}
