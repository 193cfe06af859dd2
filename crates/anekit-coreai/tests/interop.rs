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
const NOT_CONVERTED: [(&str, &str); 7] = [
    ("flexible_range_fp16_ios17", "flexible shape"),
    ("flexible_enum_fp16_ios17", "flexible shape"),
    ("mlp_palettized4_ios16", "iOS16 form"),
    ("mlp_pruned_palettized_ios18", "sparse"),
    ("classifier_str_fp32_ios15", "classify"),
    ("classifier_int_fp32_ios16", "classify"),
    // NeuralNetwork models (translated into MIL at load) with layers Core AI has no
    // form for in this converter.
    ("nn_classifier_fp32", "classify"),
];

/// Run `model` in coreai-core (`coreai_oracle.py run`) on the calls of `spec` (written
/// next to the outputs as `TAG.json`); the folder of its outputs (`call<i>/<output>.npy`).
fn run_in_coreai_core(
    py: &Path,
    model: &Path,
    spec: &serde_json::Value,
    dir: &Path,
    tag: &str,
) -> Result<PathBuf, String> {
    let spec_path = dir.join(format!("{tag}.json"));
    std::fs::write(&spec_path, spec.to_string()).map_err(|e| e.to_string())?;
    let out_dir = dir.join(format!("{tag}-out"));
    oracle(
        py,
        &[
            "run",
            model.to_str().unwrap(),
            out_dir.to_str().unwrap(),
            spec_path.to_str().unwrap(),
        ],
    )?;
    Ok(out_dir)
}

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
            let tag = format!("{name}-{function}");
            let out_dir = match run_in_coreai_core(&py, &out, &spec, tmp.path(), &tag) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{name}/{function}: coreai-core refused it: {e}"));
                    continue;
                }
            };
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
const NOT_WRITTEN: [(&str, &str); 0] = [];

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
            let tag = format!("{name}-{function}");
            let out_dir = match run_in_coreai_core(&py, &out, &spec, tmp.path(), &tag) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{label}: coreai-core refused it: {e}"));
                    continue;
                }
            };
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

/// MIL ops whose Core AI forms have no Core ML fixture or Core AI fixture function of
/// their own (argmin, the cumsum flags, argsort directions, the scatter modes, stack on
/// any axis, local_response_norm, control-flow forms the fixtures do not have, and the
/// recurrent forms of `recurrent_forms`): each
/// small program is written by `from_mil`, loaded
/// and run by coreai-core, and its outputs equal those of anekit's CPU backend on the MIL
/// program (exactly for indices; relative 1e-5 for floats); anekit reads the written
/// module back to the same outputs too.
const WRITER_FORMS: &[(&str, &str)] = &[
    (
        "argmax",
        "tensor<fp32, [2, 5, 7]> x) {
    tensor<int32, [2, 5]> y = reduce_argmax(x = x, axis = int32(-1), keep_dims = bool(false))[name = string(\"y\")];",
    ),
    (
        "argmin",
        "tensor<fp32, [2, 5, 7]> x) {
    tensor<int32, [2, 1, 7]> y = reduce_argmin(x = x, axis = int32(1), keep_dims = bool(true))[name = string(\"y\")];",
    ),
    (
        "argmin_fp16",
        "tensor<fp16, [3, 8]> x) {
    tensor<int32, [8]> y = reduce_argmin(x = x, axis = int32(0), keep_dims = bool(false))[name = string(\"y\")];",
    ),
    (
        "cumsum",
        "tensor<fp32, [2, 5, 7]> x) {
    tensor<fp32, [2, 5, 7]> y = cumsum(x = x, axis = int32(1), exclusive = bool(false), reverse = bool(false))[name = string(\"y\")];",
    ),
    (
        "cumsum_exclusive_reverse",
        "tensor<fp32, [2, 5, 7]> x) {
    tensor<fp32, [2, 5, 7]> y = cumsum(x = x, axis = int32(-1), exclusive = bool(true), reverse = bool(true))[name = string(\"y\")];",
    ),
    (
        "cumsum_exclusive",
        "tensor<fp32, [6, 4]> x) {
    tensor<fp32, [6, 4]> y = cumsum(x = x, axis = int32(0), exclusive = bool(true), reverse = bool(false))[name = string(\"y\")];",
    ),
    (
        "argsort_ascending",
        "tensor<fp32, [2, 5, 7]> x) {
    tensor<int32, [2, 5, 7]> y = argsort(x = x, axis = int32(-1), ascending = bool(true))[name = string(\"y\")];",
    ),
    (
        "argsort_descending",
        "tensor<fp32, [6, 4]> x) {
    tensor<int32, [6, 4]> y = argsort(x = x, axis = int32(0), ascending = bool(false))[name = string(\"y\")];",
    ),
    (
        "scatter_along_axis_update",
        "tensor<fp32, [2, 4, 3]> x, tensor<fp32, [2, 2, 3]> u) {
    tensor<fp32, [2, 4, 3]> y = scatter_along_axis(data = x, indices = tensor<int32, [2, 2, 3]>([[[3, 0, 1], [1, 2, 0]], [[0, 3, 2], [2, 1, 3]]]), updates = u, axis = int32(1), mode = string(\"update\"))[name = string(\"y\")];",
    ),
    (
        "scatter_along_axis_add",
        "tensor<fp32, [2, 4, 3]> x, tensor<fp32, [2, 4, 2]> u) {
    tensor<fp32, [2, 4, 3]> y = scatter_along_axis(data = x, indices = tensor<int32, [2, 4, 2]>([[[0, 0], [2, 1], [1, 1], [0, 2]], [[2, 2], [0, 1], [1, 0], [2, 0]]]), updates = u, axis = int32(-1), mode = string(\"add\"))[name = string(\"y\")];",
    ),
    (
        "scatter_along_axis_max",
        "tensor<fp32, [4, 3]> x, tensor<fp32, [2, 3]> u) {
    tensor<fp32, [4, 3]> y = scatter_along_axis(data = x, indices = tensor<int32, [2, 3]>([[1, 3, 0], [2, 0, 3]]), updates = u, axis = int32(0), mode = string(\"max\"))[name = string(\"y\")];",
    ),
    (
        "scatter_nd_update",
        "tensor<fp32, [4, 6]> x, tensor<fp32, [2, 6]> u) {
    tensor<fp32, [4, 6]> y = scatter_nd(data = x, indices = tensor<int32, [2, 1]>([[0], [2]]), updates = u, mode = string(\"update\"))[name = string(\"y\")];",
    ),
    (
        "scatter_nd_add",
        "tensor<fp32, [4, 6]> x, tensor<fp32, [3]> u) {
    tensor<fp32, [4, 6]> y = scatter_nd(data = x, indices = tensor<int32, [3, 2]>([[0, 1], [3, 5], [0, 1]]), updates = u, mode = string(\"add\"))[name = string(\"y\")];",
    ),
    (
        "scatter_nd_mul",
        "tensor<fp32, [4, 6]> x, tensor<fp32, [2, 6]> u) {
    tensor<fp32, [4, 6]> y = scatter_nd(data = x, indices = tensor<int32, [2, 1]>([[3], [1]]), updates = u, mode = string(\"mul\"))[name = string(\"y\")];",
    ),
    (
        "stack_first",
        "tensor<fp32, [2, 3]> a, tensor<fp32, [2, 3]> b) {
    tensor<fp32, [2, 2, 3]> y = stack(values = (a, b), axis = int32(0))[name = string(\"y\")];",
    ),
    (
        "stack_middle",
        "tensor<fp32, [2, 3]> a, tensor<fp32, [2, 3]> b) {
    tensor<fp32, [2, 3, 3]> y = stack(values = (a, b, a), axis = int32(1))[name = string(\"y\")];",
    ),
    (
        "stack_last",
        "tensor<fp32, [2, 3]> a, tensor<fp32, [2, 3]> b) {
    tensor<fp32, [2, 3, 2]> y = stack(values = (a, b), axis = int32(-1))[name = string(\"y\")];",
    ),
    (
        "resize_bilinear_default_up",
        "tensor<fp32, [1, 2, 3, 4]> x) {
    tensor<fp32, [1, 2, 7, 6]> y = resize_bilinear(x = x, target_size_height = int32(7), target_size_width = int32(6), sampling_mode = string(\"DEFAULT\"))[name = string(\"y\")];",
    ),
    (
        "resize_bilinear_default_down",
        "tensor<fp32, [1, 2, 7, 6]> x) {
    tensor<fp32, [1, 2, 3, 4]> y = resize_bilinear(x = x, target_size_height = int32(3), target_size_width = int32(4), sampling_mode = string(\"DEFAULT\"))[name = string(\"y\")];",
    ),
    (
        "resize_bilinear_offset_corners",
        "tensor<fp32, [1, 2, 3, 4]> x) {
    tensor<fp32, [1, 2, 7, 6]> y = resize_bilinear(x = x, target_size_height = int32(7), target_size_width = int32(6), sampling_mode = string(\"OFFSET_CORNERS\"))[name = string(\"y\")];",
    ),
    (
        "resize_bilinear_offset_corners_down",
        "tensor<fp32, [1, 2, 7, 6]> x) {
    tensor<fp32, [1, 2, 3, 4]> y = resize_bilinear(x = x, target_size_height = int32(3), target_size_width = int32(4), sampling_mode = string(\"OFFSET_CORNERS\"))[name = string(\"y\")];",
    ),
    (
        "conv_transpose_3d",
        "tensor<fp32, [1, 2, 3, 4, 4]> x) {
    tensor<fp32, [1, 3, 6, 8, 7]> y = conv_transpose(x = x, weight = tensor<fp32, [2, 3, 3, 3, 3]>([-0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55, 0.15, -0.3, 0.4, -0.05, -0.5, 0.2, -0.25, 0.45, 0.0, -0.45, 0.25, -0.2, 0.5, 0.05, -0.4, 0.3, -0.15, 0.55, 0.1, -0.35, 0.35, -0.1, -0.55]), bias = tensor<fp32, [3]>([0.5, -0.25, 1.0]), strides = tensor<int32, [3]>([2, 2, 2]), dilations = tensor<int32, [3]>([1, 1, 1]), pad_type = string(\"custom\"), pad = tensor<int32, [6]>([1, 0, 1, 0, 1, 1]), groups = int32(1))[name = string(\"y\")];",
    ),
    // Control flow: a `cond` whose true block returns an outer value as it is and whose
    // predicate is a [1, 1] tensor, taken both ways (the sum of the results is checked);
    // a `while_loop` whose body holds a `cond` that uses an outer value, with an fp32
    // counter the cond block reads and a variable it does not.
    (
        "cond_both_branches",
        "tensor<fp32, [2, 3]> x) {
    tensor<fp32, [1, 1]> s = reduce_sum(x = x, axes = tensor<int32, [2]>([0, 1]), keep_dims = bool(true))[name = string(\"s\")];
    tensor<bool, [1, 1]> p = greater(x = s, y = fp32(-100.0))[name = string(\"p\")];
    tensor<bool, [1, 1]> q = greater(x = s, y = fp32(100.0))[name = string(\"q\")];
    tensor<fp32, [2, 3]> a = cond(pred = p)[name = string(\"a\")] {
        } -> (x) {
            tensor<fp32, [2, 3]> m = mul(x = x, y = fp32(-1.0))[name = string(\"m\")];
        } -> (m);
    tensor<fp32, [2, 3]> b = cond(pred = q)[name = string(\"b\")] {
        } -> (x) {
            tensor<fp32, [2, 3]> n = mul(x = x, y = fp32(-2.0))[name = string(\"n\")];
        } -> (n);
    tensor<fp32, [2, 3]> y = add(x = a, y = b)[name = string(\"y\")];",
    ),
    (
        "while_loop_with_cond",
        "tensor<fp32, [2, 3]> x) {
    fp32 i0 = const()[name = string(\"i0\"), val = fp32(0.0)];
    fp32 k, tensor<fp32, [2, 3]> y = while_loop(loop_vars = (i0, x))[name = string(\"loop\")] (fp32 i_c, tensor<fp32, [2, 3]> x_c) {
            bool go = less(x = i_c, y = fp32(4.0))[name = string(\"go\")];
        } -> (go) (fp32 i_b, tensor<fp32, [2, 3]> x_b) {
            fp32 i_next = add(x = i_b, y = fp32(1.0))[name = string(\"i_next\")];
            tensor<fp32, [1, 1]> t = reduce_sum(x = x_b, axes = tensor<int32, [2]>([0, 1]), keep_dims = bool(true))[name = string(\"t\")];
            tensor<bool, [1, 1]> pos = greater(x = t, y = fp32(0.0))[name = string(\"pos\")];
            tensor<fp32, [2, 3]> x_next = cond(pred = pos)[name = string(\"c\")] {
                    tensor<fp32, [2, 3]> d = sub(x = x_b, y = x)[name = string(\"d\")];
                } -> (d) {
                    tensor<fp32, [2, 3]> e = add(x = x_b, y = fp32(1.5))[name = string(\"e\")];
                } -> (e);
        } -> (i_next, x_next);",
    ),
    // Constant conditions: anekit reads the module back choosing the region at
    // translation (the false one here), and a loop whose condition is constant false
    // never runs its body.
    (
        "cond_constant_predicate",
        "tensor<fp32, [2, 3]> x) {
    tensor<fp32, [2, 3]> y = cond(pred = bool(false))[name = string(\"y\")] {
            tensor<fp32, [2, 3]> m = mul(x = x, y = fp32(3.0))[name = string(\"m\")];
        } -> (m) {
            tensor<fp32, [2, 3]> n = sub(x = x, y = fp32(0.5))[name = string(\"n\")];
        } -> (n);",
    ),
    (
        "while_loop_never_entered",
        "tensor<fp32, [2, 3]> x) {
    tensor<fp32, [2, 3]> y = while_loop(loop_vars = (x))[name = string(\"y\")] (tensor<fp32, [2, 3]> x_c) {
            bool go = const()[name = string(\"go\"), val = bool(false)];
        } -> (go) (tensor<fp32, [2, 3]> x_b) {
            tensor<fp32, [2, 3]> x_next = mul(x = x_b, y = fp32(2.0))[name = string(\"x_next\")];
        } -> (x_next);",
    ),
    (
        "local_response_norm",
        "tensor<fp32, [1, 6, 4, 4]> x) {
    tensor<fp32, [1, 6, 4, 4]> y = local_response_norm(x = x, size = int32(3), alpha = fp32(0.5), beta = fp32(0.75), k = fp32(1.0))[name = string(\"y\")];",
    ),
    (
        "local_response_norm_even",
        "tensor<fp32, [2, 5, 3, 3]> x) {
    tensor<fp32, [2, 5, 3, 3]> y = local_response_norm(x = x, size = int32(4), alpha = fp32(0.2), beta = fp32(0.5), k = fp32(2.0))[name = string(\"y\")];",
    ),
    (
        "local_response_norm_rank3",
        "tensor<fp32, [5, 3, 3]> x) {
    tensor<fp32, [5, 3, 3]> y = local_response_norm(x = x, size = int32(5), alpha = fp32(0.0001), beta = fp32(0.75), k = fp32(1.0))[name = string(\"y\")];",
    ),
];

/// Recurrent layers (unrolled by the writer) in the forms the Core ML fixtures do not
/// have: GRU (iOS15, and iOS18 `reset_after` with `input_bias`), LSTM reverse with clip
/// and no sequence output, a relu RNN, a bidirectional LSTM with initial states, as MIL
/// programs with generated weights.
fn recurrent_forms() -> Vec<(String, String, &'static str)> {
    let t = |shape: &[usize], seed: u64| {
        let n: usize = shape.iter().product();
        let v: Vec<String> = sample(n, seed)
            .iter()
            .map(|x| format!("{}", x * 0.4))
            .collect();
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!("tensor<fp32, [{}]>([{}])", dims.join(", "), v.join(", "))
    };
    let (s, b, i, h) = (5, 2, 3, 4);
    let lstm_rev = format!(
        "tensor<fp32, [{s}, {b}, {i}]> x, tensor<fp32, [{b}, {h}]> h0, tensor<fp32, [{b}, {h}]> c0) {{
    tensor<fp32, [1, {b}, {h}]> y, tensor<fp32, [{b}, {h}]> hn, tensor<fp32, [{b}, {h}]> cn = lstm(x = x, initial_h = h0, initial_c = c0, weight_ih = {}, weight_hh = {}, bias = {}, direction = string(\"reverse\"), output_sequence = bool(false), recurrent_activation = string(\"sigmoid\"), cell_activation = string(\"tanh\"), activation = string(\"tanh\"), clip = fp32(0.3))[name = string(\"y\")];",
        t(&[4 * h, i], 101),
        t(&[4 * h, h], 102),
        t(&[4 * h], 103)
    );
    let rnn = format!(
        "tensor<fp32, [{s}, {b}, {i}]> x, tensor<fp32, [{b}, {h}]> h0) {{
    tensor<fp32, [{s}, {b}, {h}]> y, tensor<fp32, [{b}, {h}]> hn = rnn(x = x, initial_h = h0, weight_ih = {}, weight_hh = {}, bias = {}, direction = string(\"reverse\"), output_sequence = bool(true), activation = string(\"relu\"))[name = string(\"y\")];",
        t(&[h, i], 111),
        t(&[h, h], 112),
        t(&[h], 113)
    );
    let bi = format!(
        "tensor<fp32, [{s}, {b}, {i}]> x, tensor<fp32, [{b}, {}]> h0, tensor<fp32, [{b}, {}]> c0) {{
    tensor<fp32, [{s}, {b}, {}]> y, tensor<fp32, [{b}, {}]> hn, tensor<fp32, [{b}, {}]> cn = lstm(x = x, initial_h = h0, initial_c = c0, weight_ih = {}, weight_hh = {}, bias = {}, weight_ih_back = {}, weight_hh_back = {}, bias_back = {}, direction = string(\"bidirectional\"), output_sequence = bool(true), recurrent_activation = string(\"sigmoid\"), cell_activation = string(\"tanh\"), activation = string(\"tanh\"))[name = string(\"y\")];",
        2 * h,
        2 * h,
        2 * h,
        2 * h,
        2 * h,
        t(&[4 * h, i], 121),
        t(&[4 * h, h], 122),
        t(&[4 * h], 123),
        t(&[4 * h, i], 124),
        t(&[4 * h, h], 125),
        t(&[4 * h], 126)
    );
    let gru = format!(
        "tensor<fp32, [{s}, {b}, {i}]> x, tensor<fp32, [{b}, {h}]> h0) {{
    tensor<fp32, [{s}, {b}, {h}]> y, tensor<fp32, [{b}, {h}]> hn = gru(x = x, initial_h = h0, weight_ih = {}, weight_hh = {}, bias = {}, direction = string(\"forward\"), output_sequence = bool(true), recurrent_activation = string(\"sigmoid\"), activation = string(\"tanh\"))[name = string(\"y\")];",
        t(&[3 * h, i], 131),
        t(&[3 * h, h], 132),
        t(&[3 * h], 133)
    );
    let gru_ra = format!(
        "tensor<fp32, [{s}, {b}, {i}]> x, tensor<fp32, [{b}, {h}]> h0) {{
    tensor<fp32, [1, {b}, {h}]> y, tensor<fp32, [{b}, {h}]> hn = gru(x = x, initial_h = h0, weight_ih = {}, weight_hh = {}, bias = {}, input_bias = {}, reset_after = bool(true), direction = string(\"reverse\"), output_sequence = bool(false), recurrent_activation = string(\"sigmoid\"), activation = string(\"tanh\"))[name = string(\"y\")];",
        t(&[3 * h, i], 141),
        t(&[3 * h, h], 142),
        t(&[3 * h], 143),
        t(&[3 * h], 144)
    );
    vec![
        ("gru".into(), gru, "y, hn"),
        ("gru_reset_after_reverse".into(), gru_ra, "y, hn"),
        ("lstm_reverse_clip".into(), lstm_rev, "y, hn, cn"),
        ("rnn_reverse_relu".into(), rnn, "y, hn"),
        ("lstm_bidirectional".into(), bi, "y, hn, cn"),
    ]
}

/// A deterministic pseudo-random normal-ish sample (sum of uniforms), no ties in practice.
fn sample(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                acc += (s >> 40) as f32 / (1u64 << 24) as f32;
            }
            acc - 2.0
        })
        .collect()
}

fn cpu_outputs(
    model: anekit_mil::model::Model,
    inputs: &BTreeMap<String, anekit_runtime::Tensor>,
) -> BTreeMap<String, anekit_runtime::Tensor> {
    use anekit_runtime::{ComputeUnits, Engine, LoadOptions, Precision};
    let mut engine = Engine::new();
    engine.register(std::sync::Arc::new(anekit_runtime::cpu::CpuBackend));
    let loaded = engine
        .load(
            std::sync::Arc::new(model),
            &LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                precision: Precision::Fp32,
                threads: Some(1),
                ..LoadOptions::default()
            },
        )
        .unwrap();
    loaded.predict(inputs).unwrap()
}

#[test]
fn writer_forms_run_in_coreai_core_like_the_cpu_backend() {
    use anekit_format::proto;
    use anekit_runtime::{ElementType, Tensor};
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let forms: Vec<(String, String, &str)> = WRITER_FORMS
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_string(), "y"))
        .chain(recurrent_forms())
        .collect();
    for (i, (name, body, outputs)) in forms.iter().enumerate() {
        let name = name.as_str();
        let text = format!(
            "program(1.3)\n[buildInfo = dict<string, string>({{}})]\n{{\n  func main<ios18>({body}\n  }} -> ({outputs});\n}}\n"
        );
        let program = anekit_mil::text::parse_without_weights(&text, name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = &program.functions["main"];
        // Inputs: files for coreai-core, tensors for the CPU backend.
        let mut inputs = BTreeMap::new();
        let mut call = serde_json::Map::new();
        let mut dtypes = serde_json::Map::new();
        for (j, input) in f.inputs.iter().enumerate() {
            let t = input.ty.as_tensor().unwrap();
            let shape: Vec<usize> = t
                .shape
                .as_ref()
                .unwrap()
                .iter()
                .map(|d| match d {
                    anekit_mil::Dim::Fixed(n) => *n as usize,
                    anekit_mil::Dim::Unknown { .. } => panic!("static shapes only"),
                })
                .collect();
            let n = shape.iter().product();
            let mut x = Tensor::f32(&shape, sample(n, (i * 10 + j) as u64)).unwrap();
            if t.dtype == anekit_mil::DataType::Fp16 {
                x = x.cast(ElementType::F16);
                dtypes.insert(input.name.clone(), "float16".into());
            }
            let p = tmp.path().join(format!("{name}-{}.npy", input.name));
            anekit_runtime::npy::write(&p, &x).unwrap();
            call.insert(input.name.clone(), p.display().to_string().into());
            inputs.insert(input.name.clone(), x);
        }
        let spec_model = proto::Model {
            specification_version: 9,
            ..Default::default()
        };
        let want = cpu_outputs(Model::from_program(spec_model, program.clone()), &inputs);
        let module = match from_mil(&program, "anekit test") {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: not written: {e}"));
                continue;
            }
        };
        let out = tmp.path().join(format!("{name}.aimodel"));
        anekit_format::aimodel::write(
            &out,
            &anekit_mlir::write(&module).unwrap(),
            &anekit_format::aimodel::Metadata::anekit("2.0"),
        )
        .unwrap();
        let spec = serde_json::json!({"function": "main", "calls": [call], "dtypes": dtypes});
        let out_dir = match run_in_coreai_core(&py, &out, &spec, tmp.path(), name) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: coreai-core refused it: {e}"));
                continue;
            }
        };
        // anekit reading the written module back.
        let back = match anekit_coreai::CoreAiModel::open(&out) {
            Ok(m) => cpu_outputs(m.to_mil_model(), &inputs),
            Err(e) => {
                failures.push(format!("{name}: anekit cannot read it back: {e}"));
                continue;
            }
        };
        let exact = f.block().unwrap().operations.iter().any(|o| {
            o.outputs.iter().any(|v| {
                v.ty.as_tensor()
                    .is_some_and(|t| t.dtype == anekit_mil::DataType::Int32)
            })
        });
        for key in outputs.split(", ") {
            let w = want[key].to_f32();
            let (_, got) = npy_f32(&out_dir.join(format!("call0/{key}.npy")));
            let scale = w.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (label, got) in [
                ("coreai-core", got),
                (
                    "anekit read back",
                    back[key].to_f32().iter().copied().collect(),
                ),
            ] {
                if got.len() != w.len() {
                    failures.push(format!(
                        "{name}: {key}: {label}: {} elements vs {}",
                        got.len(),
                        w.len()
                    ));
                    continue;
                }
                let dev = got
                    .iter()
                    .zip(w.iter())
                    .fold(0f32, |m, (g, w)| m.max((g - w).abs()))
                    / scale;
                if (exact && dev > 0.0) || dev > 1e-5 {
                    failures.push(format!(
                        "{name}: {key}: {label}: deviation {dev:.3e} from the CPU backend ({got:?} vs {w:?})"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
