//! Interop with coreai-core (needs `ANEKIT_COREAI_PYTHON`, a Python with coreai-core, as
//! `scripts/setup-python.sh --coreai` builds it; `scripts/test.sh` sets it, and with
//! `ANEKIT_REQUIRE_INTEROP=1` a missing interpreter is a failure):
//!
//! - every Core ML fixture (`fixtures/manifest.json`) that converts is converted to an
//!   `.aimodel` by anekit, loaded and run by coreai-core's Linux runtime, and its outputs
//!   are within the fixture's tolerance of the PyTorch reference; the fixtures that do not
//!   convert are exactly the expected ones, for the expected reasons;
//! - every function of every Core AI fixture, read into MIL and written back by anekit,
//!   runs in coreai-core to coreai-core's outputs for the original (the writer checked on
//!   coreai-torch's whole op zoo); the functions that are not written are exactly the
//!   expected ones;
//! - anekit's text of every Core AI fixture, and of its re-encoded module, is what
//!   coreai-core prints for it, and the op counts coreai-core reports equal anekit's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anekit_coreai::from_mil::{ConvertError, from_mil};
use anekit_mil::model::Model;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

use anekit_testkit::python::{coreai_oracle as oracle, coreai_python as python};

/// Fixtures that do not convert, and a word of the reason anekit must give.
const NOT_CONVERTED: [(&str, &str); 12] = [
    ("lstm_fp32_ios15", "recurrent"),
    ("control_flow_fp32_ios17", "control flow"),
    ("flexible_range_fp16_ios17", "flexible shape"),
    ("flexible_enum_fp16_ios17", "flexible shape"),
    ("mlp_palettized4_ios16", "iOS16 form"),
    ("mlp_pruned_palettized_ios18", "sparse"),
    ("classifier_str_fp32_ios15", "classify"),
    ("classifier_int_fp32_ios16", "classify"),
    // NeuralNetwork models (translated into MIL at load) with layers Core AI has no
    // form for in this converter.
    ("nn_classifier_fp32", "classify"),
    ("nn_gru_spec1", "recurrent"),
    ("nn_recurrent_fp32", "recurrent"),
    ("nn_rank5_classic_spec1", "local_response_norm"),
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

/// Functions of the Core AI fixtures that do not come back through MIL, and a word of the
/// reason anekit must give (ops the writer has no form for yet; see docs/coreai.md).
const NOT_WRITTEN: [(&str, &str); 5] = [
    ("ops/argmax", "reduce_argmax"),
    ("ops/cumsum", "cumsum"),
    ("ops/index_put", "scatter_nd"),
    ("ops/scatter", "scatter_along_axis"),
    ("ops/topk", "argsort"),
];

/// Every function of every Core AI fixture, read into MIL and written back as an
/// `.aimodel` on its own (`to_mil` → `from_mil`), is run by coreai-core to the outputs
/// coreai-core gave for the original (fp32: relative 1e-4; fp16/bf16 functions 1e-2).
#[test]
fn core_ai_fixtures_through_mil_and_back_run_in_coreai_core() {
    let Some(py) = python() else { return };
    let root = repo().join("fixtures/coreai");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut refused = BTreeMap::new();
    let mut checked = 0;
    for (name, f) in manifest["fixtures"].as_object().unwrap() {
        let m = anekit_coreai::CoreAiModel::open(root.join(f["path"].as_str().unwrap())).unwrap();
        let mut by_fn: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
        for d in f["data"].as_array().unwrap() {
            by_fn
                .entry(d["function"].as_str().unwrap().to_string())
                .or_default()
                .push(d);
        }
        for (function, data) in by_fn {
            let label = format!("{name}/{function}");
            let mut program = m.translation.program.clone();
            program.functions.retain(|k, _| *k == function);
            let module = match from_mil(&program, "anekit test") {
                Ok(module) => module,
                Err(e @ (ConvertError::Unsupported(_) | ConvertError::Program(_))) => {
                    refused.insert(label, e.to_string());
                    continue;
                }
                Err(e) => panic!("{label}: {e}"),
            };
            let out = tmp.path().join(format!("{name}-{function}.aimodel"));
            anekit_format::aimodel::write(
                &out,
                &anekit_mlir::write(&module).unwrap(),
                &anekit_format::aimodel::Metadata::anekit("2.0"),
            )
            .unwrap();
            let calls: Vec<serde_json::Value> = data
                .iter()
                .map(|d| {
                    let m: serde_json::Map<String, serde_json::Value> = d["inputs"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| {
                            let p = root.join(v.as_str().unwrap());
                            (k.clone(), p.display().to_string().into())
                        })
                        .collect();
                    serde_json::Value::Object(m)
                })
                .collect();
            let spec = serde_json::json!({
                "function": function,
                "calls": calls,
                "states": f.get("states").cloned().unwrap_or(serde_json::json!({})),
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
                failures.push(format!("{label}: coreai-core refused it: {e}"));
                continue;
            }
            let tol = if ["cast_half", "bf16"].contains(&function.as_str()) {
                1e-2
            } else {
                1e-4
            };
            for (i, d) in data.iter().enumerate() {
                for (k, v) in d["coreai"].as_object().unwrap() {
                    let (_, want) = npy_f32(&root.join(v.as_str().unwrap()));
                    let got_path = out_dir.join(format!("call{i}/{k}.npy"));
                    if !got_path.exists() {
                        failures.push(format!("{label}: no output {k}"));
                        continue;
                    }
                    let (_, got) = npy_f32(&got_path);
                    checked += 1;
                    if got.len() != want.len() {
                        failures.push(format!(
                            "{label}: {k}: {} elements vs {}",
                            got.len(),
                            want.len()
                        ));
                        continue;
                    }
                    let scale = want.iter().fold(1e-6f32, |m, w| m.max(w.abs()));
                    let dev = got
                        .iter()
                        .zip(&want)
                        .fold(0f32, |m, (g, w)| m.max((g - w).abs()))
                        / scale;
                    if f64::from(dev) > tol {
                        failures.push(format!("{label}: {k} (call {i}): deviation {dev:.3e} from coreai-core's original"));
                    }
                }
            }
        }
    }
    for (label, word) in NOT_WRITTEN {
        match refused.get(label) {
            Some(why) if why.contains(word) => {}
            Some(why) => failures.push(format!("{label}: refused, but not for \"{word}\": {why}")),
            None => failures.push(format!("{label}: expected not to be written, but it was")),
        }
    }
    for (label, why) in &refused {
        if !NOT_WRITTEN.iter().any(|(l, _)| l == label) {
            failures.push(format!("{label}: not written: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 100, "only {checked} outputs checked");
}
