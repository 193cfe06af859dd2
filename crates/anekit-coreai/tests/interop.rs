//! Interop with coreai-core (needs `ANEKIT_COREAI_PYTHON`, a Python with coreai-core, as
//! `scripts/setup-python.sh --coreai` builds it; `scripts/test.sh` sets it, and with
//! `ANEKIT_REQUIRE_INTEROP=1` a missing interpreter is a failure):
//!
//! - every Core ML fixture (`fixtures/manifest.json`) that converts is converted to an
//!   `.aimodel` by anekit, loaded and run by coreai-core's Linux runtime, and its outputs
//!   are within the fixture's tolerance of the PyTorch reference; the fixtures that do not
//!   convert are exactly the expected ones, for the expected reasons;
//! - anekit's text of every Core AI fixture, and of its re-encoded module, is what
//!   coreai-core prints for it, and the op counts coreai-core reports equal anekit's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anekit_coreai::from_mil::{ConvertError, from_mil};
use anekit_mil::model::Model;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The coreai-core interpreter, or `None` (skip) when interop is not required.
fn python() -> Option<PathBuf> {
    match std::env::var_os("ANEKIT_COREAI_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("ANEKIT_REQUIRE_INTEROP").is_none(),
                "ANEKIT_REQUIRE_INTEROP is set but ANEKIT_COREAI_PYTHON is not (scripts/setup-python.sh --coreai)"
            );
            eprintln!("skipped: ANEKIT_COREAI_PYTHON is not set");
            None
        }
    }
}

fn oracle(py: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(py)
        .arg(repo().join("scripts/coreai_oracle.py"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("ODIE"))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fixtures that do not convert, and a word of the reason anekit must give.
const NOT_CONVERTED: [(&str, &str); 9] = [
    ("lstm_fp32_ios15", "recurrent"),
    ("control_flow_fp32_ios17", "control flow"),
    ("flexible_range_fp16_ios17", "flexible shape"),
    ("flexible_enum_fp16_ios17", "flexible shape"),
    ("mlp_palettized4_ios16", "iOS16 form"),
    ("mlp_pruned_palettized_ios18", "sparse"),
    ("classifier_str_fp32_ios15", "classify"),
    ("classifier_int_fp32_ios16", "classify"),
    ("neuralnetwork_fp32", "not an ML Program"),
];

fn npy_f32(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let t = anekit_runtime::npy::read(p).unwrap();
    let shape = t.shape().to_vec();
    (shape, t.to_f32().iter().copied().collect())
}

#[test]
fn coreml_fixtures_converted_to_core_ai_run_in_coreai_core() {
    let Some(py) = python() else { return };
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("fixtures/manifest.json")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut not_converted = BTreeMap::new();
    let mut checked = 0;
    for f in manifest["fixtures"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let path = repo().join("fixtures").join(f["path"].as_str().unwrap());
        let model = match Model::open(&path) {
            Ok(m) => m,
            Err(e) => {
                not_converted.insert(name.to_string(), e.to_string());
                continue;
            }
        };
        let Some(program) = model.program.as_ref() else {
            not_converted.insert(name.to_string(), "not an ML Program".into());
            continue;
        };
        let module = match from_mil(program, "anekit test") {
            Ok(m) => m,
            Err(e @ (ConvertError::Unsupported(_) | ConvertError::Program(_))) => {
                not_converted.insert(name.to_string(), e.to_string());
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let out = tmp.path().join(format!("{name}.aimodel"));
        let bytes = anekit_mlir::write(&module).unwrap();
        anekit_format::aimodel::write(
            &out,
            &bytes,
            &anekit_format::aimodel::Metadata::anekit("2.0"),
        )
        .unwrap();
        // Group data entries by function; stateful fixtures: calls in step order.
        let mut by_fn: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
        for d in f["data"].as_array().unwrap() {
            by_fn
                .entry(d["function"].as_str().unwrap_or("main").to_string())
                .or_default()
                .push(d);
        }
        let states: serde_json::Map<String, serde_json::Value> = f["states"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|s| (s["name"].as_str().unwrap().to_string(), s["shape"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (function, data) in by_fn {
            let calls: Vec<serde_json::Value> = data
                .iter()
                .map(|d| {
                    let m: serde_json::Map<String, serde_json::Value> = d["inputs"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                repo()
                                    .join("fixtures")
                                    .join(v.as_str().unwrap())
                                    .display()
                                    .to_string()
                                    .into(),
                            )
                        })
                        .collect();
                    serde_json::Value::Object(m)
                })
                .collect();
            // Inputs are stored as fp32 (or int32); the model may want fp16.
            let dtypes: serde_json::Map<String, serde_json::Value> = f["inputs"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter(|i| i["dtype"] == "float16")
                        .map(|i| (i["name"].as_str().unwrap().to_string(), "float16".into()))
                        .collect()
                })
                .unwrap_or_default();
            let spec = serde_json::json!({
                "function": function,
                "dtypes": dtypes,
                "calls": calls,
                "states": states,
                "state_dtype": if f["precision"] == "fp16" { "float16" } else { "float32" },
            });
            let spec_path = tmp.path().join(format!("{name}-{function}.json"));
            std::fs::write(&spec_path, spec.to_string()).unwrap();
            let out_dir = tmp.path().join(format!("{name}-{function}-out"));
            if let Err(e) = oracle(
                &py,
                &[
                    "run",
                    out.to_str().unwrap(),
                    out_dir.to_str().unwrap(),
                    spec_path.to_str().unwrap(),
                ],
            ) {
                failures.push(format!("{name}/{function}: coreai-core refused it: {e}"));
                continue;
            }
            for (i, d) in data.iter().enumerate() {
                let atol = d["tolerance"]["atol"].as_f64().unwrap_or(1e-4) as f32;
                let rtol = d["tolerance"]["rtol"].as_f64().unwrap_or(1e-3) as f32;
                for (k, v) in d["outputs"].as_object().unwrap() {
                    let (ws, want) = npy_f32(&repo().join("fixtures").join(v.as_str().unwrap()));
                    let got_path = out_dir.join(format!("call{i}/{k}.npy"));
                    if !got_path.exists() {
                        failures.push(format!("{name}/{function}: no output {k}"));
                        continue;
                    }
                    let (gs, got) = npy_f32(&got_path);
                    checked += 1;
                    if gs.iter().product::<usize>() != ws.iter().product::<usize>() {
                        failures.push(format!("{name}/{function}: {k}: shape {gs:?} vs {ws:?}"));
                        continue;
                    }
                    let bad = got
                        .iter()
                        .zip(&want)
                        .filter(|(g, w)| (*g - *w).abs() > atol + rtol * w.abs())
                        .count();
                    let max = got
                        .iter()
                        .zip(&want)
                        .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
                    if bad > 0 {
                        failures.push(format!("{name}/{function}: {k}: {bad} elements out of tolerance (max abs {max:.3e})"));
                    }
                }
            }
        }
    }
    for (fixture, word) in NOT_CONVERTED {
        match not_converted.get(fixture) {
            Some(why) if why.contains(word) => {}
            Some(why) => {
                failures.push(format!("{fixture}: refused, but not for \"{word}\": {why}"))
            }
            None if repo().join("fixtures/models").join(fixture).exists()
                || manifest["fixtures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["name"] == fixture) =>
            {
                failures.push(format!("{fixture}: expected not to convert, but it did"))
            }
            None => {}
        }
    }
    for (fixture, why) in &not_converted {
        if !NOT_CONVERTED.iter().any(|(f, _)| f == fixture) {
            failures.push(format!("{fixture}: did not convert: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 15, "only {checked} outputs checked");
}

#[test]
fn text_and_op_counts_match_coreai_core() {
    let Some(py) = python() else { return };
    let root = repo().join("fixtures/coreai/models");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("main.mlirb");
        let m = anekit_mlir::read(bytes::Bytes::from(std::fs::read(&file).unwrap())).unwrap();
        let theirs = oracle(&py, &["print", file.to_str().unwrap()]).unwrap();
        assert_eq!(anekit_coreai::text::print(&m), theirs, "{}", file.display());
        // The module anekit re-encodes is read by coreai-core to the same text.
        let re = anekit_coreai::reencode::reencode(&m, "anekit test").unwrap();
        let re_file = tmp.path().join("re.mlirb");
        std::fs::write(&re_file, anekit_mlir::write(&re).unwrap()).unwrap();
        let theirs_re = oracle(&py, &["print", re_file.to_str().unwrap()]).unwrap();
        assert_eq!(theirs_re, theirs, "{} re-encoded", file.display());
        let counts: BTreeMap<String, usize> =
            serde_json::from_str(&oracle(&py, &["op-counts", dir.to_str().unwrap()]).unwrap())
                .unwrap();
        assert_eq!(
            anekit_coreai::model::op_counts(&m),
            counts,
            "{}",
            dir.display()
        );
    }
}
