//! Interop with coremltools 9.0, the oracle nobody here wrote (`scripts/interop.py`):
//! - coremltools loads every package anekit writes (MLModel + its MIL loader);
//! - `anekit inspect --json` op counts equal coremltools' counts for every fixture.
//!
//! Needs the venv of `scripts/setup-python.sh`. Without it the tests say so and pass,
//! unless `ANEKIT_REQUIRE_INTEROP=1` (set by `scripts/test.sh` and CI), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anekit_testkit::{Manifest, Python};
use serde_json::Value;

fn python() -> Option<Python> {
    Python::find("coremltools interop")
}

fn oracle(python: &Python, command: &str, path: &Path) -> Value {
    python
        .json("scripts/interop.py", &[Path::new(command), path])
        .unwrap_or_else(|e| panic!("coremltools `{command}` on {}: {e}", path.display()))
}

fn anekit(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "anekit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (name, path) of every fixture coremltools can read (packages and model files).
fn fixtures() -> Vec<(String, PathBuf)> {
    let m = Manifest::load().unwrap();
    m.fixtures
        .iter()
        .filter(|f| matches!(f.format.as_str(), "mlpackage" | "mlmodel"))
        // interop.py reads ML Programs and neural networks, not pipelines; of the
        // NeuralNetwork fixtures (tested against coremltools in anekit-compress's
        // nn_oracle test) two stand for the rest here, which keeps this test's time.
        .filter(|f| f.model_type.as_deref() != Some("pipeline"))
        .filter(|f| {
            !f.name.starts_with("nn_")
                || matches!(f.name.as_str(), "nn_convnet_fp32" | "nn_classifier_fp32")
        })
        .map(|f| (f.name.clone(), m.resolve(&f.path)))
        .collect()
}

#[test]
fn inspect_op_counts_equal_coremltools_counts() {
    let Some(py) = python() else { return };
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20);
    for (name, path) in fixtures {
        let ours = anekit(&["inspect", "--json", path.to_str().unwrap()]);
        let theirs = oracle(&py, "op-counts", &path);
        let default = ours["default_function"].as_str().unwrap_or("main");
        assert_eq!(
            ours["op_counts"], theirs[default],
            "{name}: op counts of {default}"
        );
        // Every function, not only the default one (a NeuralNetwork's one function is its
        // MIL translation, which coremltools does not count).
        if ours["model_type"] != "mlProgram" {
            continue;
        }
        for f in ours["functions"].as_array().unwrap() {
            let fname = f["name"].as_str().unwrap();
            assert_eq!(
                f["op_counts"], theirs[fname],
                "{name}: op counts of function {fname}"
            );
        }
    }
}

#[test]
fn coremltools_loads_what_anekit_writes() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for (name, path) in fixtures() {
        let model = anekit_mil::model::Model::open(&path).unwrap();
        let dest = tmp.path().join(format!("{name}.mlpackage"));
        model.save_mlpackage(&dest).unwrap();
        let loaded = oracle(&py, "load", &dest);
        assert_eq!(loaded["ok"], Value::Bool(true), "{name}: {loaded}");
        // What coremltools sees in our package is what it sees in its own.
        let original = oracle(&py, "load", &path);
        assert_eq!(loaded["functions"], original["functions"], "{name}");
        assert_eq!(loaded["spec_version"], original["spec_version"], "{name}");
        let describe = |p: &Path| {
            let mut d = oracle(&py, "describe", p);
            let obj = d.as_object_mut().unwrap();
            obj.remove("path");
            obj.remove("format");
            d
        };
        assert_eq!(describe(&dest), describe(&path), "{name}");
    }
}
