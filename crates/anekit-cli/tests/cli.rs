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
