//! Core AI models (`.aimodel`) through every command, against coreai-core:
//!
//! - `inspect`: `--json` op counts equal those of the module as coreai-core's MLIR walks it
//!   (`fixtures/coreai/manifest.json`, written by `scripts/make_coreai_fixtures.py`), and
//!   `--mlir` prints what coreai-core prints (with the interop interpreter);
//! - `run` matches the outputs coreai-core's Linux runtime gave for every fixture function
//!   (the multifunction and the stateful model included);
//! - `bench` and `analyze` work through the translation;
//! - `compress` writes an `.aimodel` whose weights are `blockwise_shift_scale_v2` /
//!   `lut_to_dense_v1` ops, and coreai-core runs it to the outputs anekit gives for it;
//! - `convert` both ways: Core ML → Core AI runs in coreai-core within the fixture's
//!   tolerance of PyTorch, Core AI → Core ML runs on the CPU backend to coreai-core's
//!   outputs, and a model that cannot convert names every op (text and `--json`);
//! - malformed folders (a wrong hash, a truncated module) give errors naming the file or
//!   the section.
//!
//! The coreai-core checks need `ANEKIT_COREAI_PYTHON` (`scripts/setup-python.sh --coreai`);
//! with `ANEKIT_REQUIRE_INTEROP=1` a missing interpreter is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anekit_runtime::{Tensor, npy};
use serde_json::{Value as Json, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn coreai_fixtures() -> PathBuf {
    repo().join("fixtures/coreai")
}

fn manifest() -> Json {
    serde_json::from_str(&std::fs::read_to_string(coreai_fixtures().join("manifest.json")).unwrap())
        .unwrap()
}

fn anekit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok_json(o: &Output) -> Json {
    let s = ok(o);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn fixture_path(name: &str) -> String {
    let m = manifest();
    let p = m["fixtures"][name]["path"].as_str().unwrap();
    coreai_fixtures().join(p).display().to_string()
}

use anekit_testkit::python::{coreai_oracle as oracle, coreai_python as python};

/// Run `function` of `model` in coreai-core, call by call (`calls`: input name → .npy;
/// states start at zero with the given shapes), returning each call's outputs.
fn coreai_run(
    py: &Path,
    model: &Path,
    function: &str,
    calls: &[BTreeMap<String, PathBuf>],
    states: &Json,
    dtypes: &Json,
    state_dtype: &str,
) -> Result<Vec<BTreeMap<String, Tensor>>, String> {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({
        "function": function,
        "calls": calls,
        "states": states,
        "dtypes": dtypes,
        "state_dtype": state_dtype,
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = dir.path().join("out");
    oracle(
        py,
        &[
            "run",
            model.to_str().unwrap(),
            out.to_str().unwrap(),
            spec_path.to_str().unwrap(),
        ],
    )?;
    Ok((0..calls.len())
        .map(|i| read_dir_npys(&out.join(format!("call{i}"))))
        .collect())
}

fn read_dir_npys(dir: &Path) -> BTreeMap<String, Tensor> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_stem()?.to_str()?.to_string();
            (p.extension()? == "npy").then(|| (name, npy::read(&p).unwrap()))
        })
        .collect()
}

/// max |a - b| / max(1e-6, max |b|).
fn rel_dev(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f32(), b.to_f32());
    assert_eq!(a.len(), b.len(), "element counts differ");
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let dev = a
        .iter()
        .zip(b.iter())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    f64::from(dev / scale)
}

/// anekit against coreai-core, both fp32 on a CPU (summation order differs).
const TOL: f64 = 1e-4;
/// Functions that round through fp16 or bf16 (anekit computes fp16 ops in f32).
const HALF: [&str; 2] = ["cast_half", "bf16"];

fn npy_paths(map: &Json) -> BTreeMap<String, PathBuf> {
    map.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), coreai_fixtures().join(v.as_str().unwrap())))
                .collect()
        })
        .unwrap_or_default()
}

fn input_args(inputs: &BTreeMap<String, PathBuf>) -> Vec<String> {
    inputs
        .iter()
        .flat_map(|(k, p)| ["--input".to_string(), format!("{k}={}", p.display())])
        .collect()
}

/// `anekit run MODEL --function F --input ... --output-dir D`: the outputs.
fn anekit_run(model: &str, function: &str, inputs: &BTreeMap<String, PathBuf>) -> Vec<Tensor> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run".to_string(),
        model.to_string(),
        "--function".into(),
        function.into(),
        "--output-dir".into(),
        dir.path().display().to_string(),
        "--json".into(),
    ];
    args.extend(input_args(inputs));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = ok_json(&anekit(&args));
    report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let name = o["name"].as_str().unwrap();
            npy::read(dir.path().join(format!("{name}.npy"))).unwrap()
        })
        .collect()
}

fn anekit_run_named(
    model: &str,
    function: &str,
    inputs: &BTreeMap<String, PathBuf>,
) -> BTreeMap<String, Tensor> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run".to_string(),
        model.to_string(),
        "--function".into(),
        function.into(),
        "--output-dir".into(),
        dir.path().display().to_string(),
    ];
    args.extend(input_args(inputs));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&anekit(&args));
    read_dir_npys(dir.path())
}

#[test]
fn inspect_json_op_counts_equal_coreai_cores() {
    let m = manifest();
    for (name, f) in m["fixtures"].as_object().unwrap() {
        let path = fixture_path(name);
        let r = ok_json(&anekit(&["inspect", &path, "--json"]));
        assert_eq!(r["format"], "aimodel", "{name}");
        assert_eq!(r["op_counts"], f["op_counts"], "{name}: op counts");
        let sum = |counts: &serde_json::Value| -> u64 {
            counts
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum()
        };
        let total = sum(&f["op_counts"]);
        let by_dialect = sum(&r["ops_by_dialect"]);
        let by_kind = sum(&r["ops_by_kind"]);
        assert_eq!(by_dialect, total, "{name}: ops by dialect");
        assert_eq!(by_kind, total, "{name}: ops by kind");
        assert_eq!(
            r["ops_by_dialect"]["aicode"].as_u64(),
            Some(total),
            "{name}"
        );
        // Every function the fixture calls is a public graph with the inputs it is given,
        // and translates.
        for d in f["data"].as_array().unwrap() {
            let function = d["function"].as_str().unwrap();
            let g = r["graphs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == function && g["public"] == true)
                .unwrap_or_else(|| panic!("{name}: no public graph {function}"));
            for input in d["inputs"].as_object().unwrap().keys() {
                assert!(
                    g["inputs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == input.as_str()),
                    "{name}/{function}: no input {input}"
                );
            }
            assert!(
                r["translation"]["functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == function),
                "{name}: {function} not translated: {}",
                r["translation"]
            );
        }
        assert!(
            r["translation"]["failed"].as_object().unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(r["metadata"]["producer"], "coreai-core 1.0.0b3", "{name}");
        assert!(r["weights"]["constants"].as_u64().unwrap() > 0, "{name}");
    }
}

#[test]
fn inspect_text_names_functions_ports_weights_and_translation() {
    let text = ok(&anekit(&["inspect", &fixture_path("convnet")]));
    for want in [
        "Core AI model (.aimodel)",
        "coreai-core 1.0.0b3",
        "SHA-256 verified",
        "function main",
        "input   x",
        "!aicode.tensor_v1<[1, 3, 32, 32] : !aicode.float32_v1>",
        "op histogram",
        "aicode.primitive.conv2d_v1",
        "weights:",
        "translation to MIL",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // Both entry points of the multifunction model; the states of the stateful one.
    let text = ok(&anekit(&["inspect", &fixture_path("multifunction")]));
    assert!(text.contains("function classify"), "{text}");
    assert!(text.contains("function regress"), "{text}");
    let text = ok(&anekit(&["inspect", &fixture_path("stateful_kv")]));
    assert!(
        text.contains("state   k_cache  !aicode.handle_v1<"),
        "{text}"
    );
    assert!(text.contains("token   v_cache  !aicode.token_v1"), "{text}");
}

#[test]
fn inspect_mlir_prints_what_coreai_core_prints() {
    let py = python();
    for name in ["convnet", "stateful_kv", "multifunction", "mlp_int4"] {
        let path = fixture_path(name);
        let ours = ok(&anekit(&["inspect", &path, "--mlir"]));
        assert!(ours.contains("aicode.serialization.asset"), "{name}");
        if let Some(py) = &py {
            let mlirb = Path::new(&path).join("main.mlirb");
            let theirs = oracle(py, &["print", mlirb.to_str().unwrap()]).unwrap();
            assert!(ours.trim_end() == theirs.trim_end(), "{name}: texts differ");
        }
    }
    // --mlir is for Core AI models.
    let o = anekit(&[
        "inspect",
        "fixtures/models/mlp_fp32_ios15.mlpackage",
        "--mlir",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--mil"));
}

#[test]
fn run_matches_coreai_core_on_every_fixture_function() {
    let m = manifest();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, f) in m["fixtures"].as_object().unwrap() {
        let path = fixture_path(name);
        // The first call of every function (stateful: the call from zero states).
        let mut seen = std::collections::BTreeSet::new();
        for d in f["data"].as_array().unwrap() {
            let function = d["function"].as_str().unwrap();
            if !seen.insert(function.to_string()) {
                continue;
            }
            let got = anekit_run_named(&path, function, &npy_paths(&d["inputs"]));
            for (key, want) in npy_paths(&d["coreai"]) {
                let want = npy::read(&want).unwrap();
                let Some(g) = got.get(&key) else {
                    failures.push(format!("{name}/{function}: no output {key}"));
                    continue;
                };
                checked += 1;
                let tol = if HALF.contains(&function) { 1e-2 } else { TOL };
                let dev = rel_dev(g, &want);
                if dev > tol {
                    failures.push(format!(
                        "{name}/{function}: {key}: deviation {dev:.3e} from coreai-core"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 20, "only {checked} outputs checked");
}

#[test]
fn run_json_reports_the_outputs_of_a_stateful_model() {
    let m = manifest();
    let d = &m["fixtures"]["stateful_kv"]["data"][0];
    let got = anekit_run(
        &fixture_path("stateful_kv"),
        "main",
        &npy_paths(&d["inputs"]),
    );
    let want = npy::read(coreai_fixtures().join(d["coreai"]["y"].as_str().unwrap())).unwrap();
    assert_eq!(got.len(), 1);
    assert!(rel_dev(&got[0], &want) < TOL);
}

#[test]
fn bench_times_a_core_ai_model_on_the_cpu_backend() {
    let r = ok_json(&anekit(&[
        "bench",
        &fixture_path("convnet"),
        "--runs",
        "3",
        "--warmup",
        "1",
        "--json",
    ]));
    assert_eq!(r["backend"], "anekit CPU", "{r}");
    assert_eq!(r["runs"], 3, "{r}");
    assert!(r["median_ms"].as_f64().unwrap() > 0.0, "{r}");
    // Text form too, on the decoder (int32 token inputs, random within --int-max).
    let text = ok(&anekit(&[
        "bench",
        &fixture_path("decoder_sdpa"),
        "--runs",
        "2",
        "--warmup",
        "0",
    ]));
    assert!(text.contains("median"), "{text}");
}

#[test]
fn analyze_places_the_ops_of_a_core_ai_model() {
    let r = ok_json(&anekit(&[
        "analyze",
        &fixture_path("convnet"),
        "--chip",
        "M1",
        "--json",
    ]));
    // The translated program: conv, relu, max_pool, conv, relu, mean, linear (the
    // composites mapped to their MIL ops), each placed, with a cost.
    let types: Vec<&str> = r["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] != "const")
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "conv").count(),
        2,
        "{types:?}"
    );
    assert!(types.contains(&"max_pool"), "{types:?}");
    assert_eq!(
        r["coverage"]["compute_ops"].as_u64(),
        Some(types.len() as u64),
        "{}",
        r["coverage"]
    );
    assert!(
        r["model"]["flops"].as_f64().unwrap() > 1e5,
        "{}",
        r["model"]
    );
    assert!(r["estimate"]["latency_ms"].as_f64().unwrap() > 0.0);
    // An fp32 Core AI model cannot run on the Neural Engine, and analyze says so.
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "fp32-program"),
        "{}",
        r["findings"]
    );
    let text = ok(&anekit(&["analyze", &fixture_path("transformer_encoder")]));
    assert!(!text.is_empty());
}

/// Compress `fixture` with `flags` into an `.aimodel`; check the ops that express the
/// compression, and that coreai-core runs the result to the outputs anekit gives for it
/// (and close to the uncompressed model's).
fn compress_round_trip(fixture: &str, flags: &[&str], op: &str, max_dev: f64) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{fixture}-c.aimodel"));
    let out_s = out.display().to_string();
    let fp = fixture_path(fixture);
    let mut args = vec!["compress", fp.as_str()];
    args.extend(["-o", &out_s, "--weight-threshold", "0"]);
    args.extend(flags);
    let r = ok(&anekit(&args));
    assert!(out.join("main.mlirb").exists(), "{r}");
    let info = ok_json(&anekit(&["inspect", &out_s, "--json"]));
    let n = info["op_counts"][op].as_u64().unwrap_or(0);
    assert!(
        n >= 2,
        "{fixture} {flags:?}: {n} x {op}: {}",
        info["op_counts"]
    );
    assert_eq!(
        info["translation"]["failed"].as_object().unwrap().len(),
        0,
        "{info}"
    );
    let m = manifest();
    let d = &m["fixtures"][fixture]["data"][0];
    let inputs = npy_paths(&d["inputs"]);
    let ours = anekit_run_named(&out_s, "main", &inputs);
    let original = npy::read(coreai_fixtures().join(d["coreai"]["y"].as_str().unwrap())).unwrap();
    let dev = rel_dev(&ours["y"], &original);
    assert!(
        dev < max_dev,
        "{fixture} {flags:?}: compressed model deviates {dev:.3e} from the original"
    );
    assert!(
        dev > 0.0,
        "{fixture} {flags:?}: compression changed nothing"
    );
    if let Some(py) = python() {
        let theirs = coreai_run(
            &py,
            &out,
            "main",
            &[inputs],
            &json!({}),
            &json!({}),
            "float32",
        )
        .unwrap_or_else(|e| panic!("{fixture} {flags:?}: coreai-core refused it: {e}"));
        let dev = rel_dev(&ours["y"], &theirs[0]["y"]);
        assert!(
            dev < TOL,
            "{fixture} {flags:?}: anekit and coreai-core differ by {dev:.3e} on the compressed model"
        );
    }
}

#[test]
fn compress_writes_core_ai_quantization_ops_that_coreai_core_runs() {
    compress_round_trip(
        "mlp",
        &["--quantize", "int8"],
        "aicode.primitive.blockwise_shift_scale_v2",
        2e-2,
    );
    compress_round_trip(
        "mlp",
        &["--quantize", "int4", "--block-size", "16"],
        "aicode.primitive.blockwise_shift_scale_v2",
        2e-1,
    );
    compress_round_trip(
        "mlp",
        &["--palettize", "4"],
        "aicode.primitive.lut_to_dense_v1",
        2e-1,
    );
}

#[test]
fn compress_names_what_core_ai_cannot_express() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pruned.aimodel");
    let o = anekit(&[
        "compress",
        &fixture_path("mlp"),
        "-o",
        out.to_str().unwrap(),
        "--weight-threshold",
        "0",
        "--prune",
        "0.5",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sparse"), "{err}");
    assert!(!out.exists());
}

/// The inputs, dtypes and states of a Core ML fixture's function for coreai-core.
fn coreml_calls<'a>(
    f: &'a Json,
    function: &str,
) -> (Vec<BTreeMap<String, PathBuf>>, Vec<&'a Json>) {
    let data: Vec<&Json> = f["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["function"].as_str().unwrap_or("main") == function)
        .collect();
    let calls = data
        .iter()
        .map(|d| {
            d["inputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), repo().join("fixtures").join(v.as_str().unwrap())))
                .collect()
        })
        .collect();
    (calls, data)
}

#[test]
fn convert_core_ml_to_core_ai_runs_in_coreai_core() {
    let manifest: Json = serde_json::from_str(
        &std::fs::read_to_string(repo().join("fixtures/manifest.json")).unwrap(),
    )
    .unwrap();
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    // A plain model, a multifunction model, a stateful one and one with control flow
    // (a while_loop and a cond).
    for name in [
        "mlp_fp32_ios15",
        "multifunction_fp16_ios18",
        "stateful_fp16_ios18",
        "control_flow_fp32_ios17",
    ] {
        let f = manifest["fixtures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap();
        let input = repo().join("fixtures").join(f["path"].as_str().unwrap());
        let out = dir.path().join(format!("{name}.aimodel"));
        let s = ok_json(&anekit(&[
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]));
        assert_eq!(s["direction"], "Core ML -> Core AI", "{s}");
        let functions: Vec<String> = f["functions"]
            .as_array()
            .map(|v| v.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["main".into()]);
        for function in &functions {
            assert!(
                s["functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == function),
                "{name}: {function} not in {s}"
            );
        }
        assert!(
            s["ops"]["aicode.dataflow.graph_v1"].as_u64().unwrap() >= functions.len() as u64,
            "{s}"
        );
        let Some(py) = &py else { continue };
        let states: serde_json::Map<String, Json> = f["states"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|s| (s["name"].as_str().unwrap().to_string(), s["shape"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        let dtypes: serde_json::Map<String, Json> = f["inputs"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|i| i["dtype"] == "float16")
                    .map(|i| (i["name"].as_str().unwrap().to_string(), "float16".into()))
                    .collect()
            })
            .unwrap_or_default();
        let state_dtype = if f["precision"] == "fp16" {
            "float16"
        } else {
            "float32"
        };
        for function in &functions {
            let (calls, data) = coreml_calls(f, function);
            assert!(!calls.is_empty(), "{name}/{function}: no data");
            let outs = coreai_run(
                py,
                &out,
                function,
                &calls,
                &Json::Object(states.clone()),
                &Json::Object(dtypes.clone()),
                state_dtype,
            )
            .unwrap_or_else(|e| panic!("{name}/{function}: coreai-core refused it: {e}"));
            for (d, got) in data.iter().zip(outs) {
                let atol = d["tolerance"]["atol"].as_f64().unwrap_or(1e-4);
                let rtol = d["tolerance"]["rtol"].as_f64().unwrap_or(1e-3);
                for (k, v) in d["outputs"].as_object().unwrap() {
                    let want = npy::read(repo().join("fixtures").join(v.as_str().unwrap()))
                        .unwrap()
                        .to_f32();
                    let g = got
                        .get(k)
                        .unwrap_or_else(|| panic!("{name}/{function}: no output {k}"))
                        .to_f32();
                    assert_eq!(g.len(), want.len(), "{name}/{function}: {k}");
                    let bad = g
                        .iter()
                        .zip(want.iter())
                        .filter(|(g, w)| {
                            f64::from((**g - **w).abs()) > atol + rtol * f64::from(w.abs())
                        })
                        .count();
                    assert_eq!(
                        bad, 0,
                        "{name}/{function}: {k}: {bad} elements out of the fixture's tolerance of PyTorch"
                    );
                }
            }
        }
    }
}

#[test]
fn convert_core_ai_to_core_ml_runs_to_coreai_cores_outputs() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "convnet",
        "multifunction",
        "stateful_kv",
        "mlp_int8",
        "control_flow",
        "control_flow_authored",
    ] {
        let out = dir.path().join(format!("{name}.mlpackage"));
        let s = ok_json(&anekit(&[
            "convert",
            &fixture_path(name),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]));
        assert_eq!(s["direction"], "Core AI -> Core ML", "{s}");
        let inspect = ok_json(&anekit(&["inspect", out.to_str().unwrap(), "--json"]));
        assert!(inspect.is_object());
        let f = &m["fixtures"][name];
        let mut seen = std::collections::BTreeSet::new();
        for d in f["data"].as_array().unwrap() {
            let function = d["function"].as_str().unwrap();
            if !seen.insert(function) {
                continue;
            }
            let got = anekit_run_named(out.to_str().unwrap(), function, &npy_paths(&d["inputs"]));
            for (key, want) in npy_paths(&d["coreai"]) {
                let want = npy::read(&want).unwrap();
                let dev = rel_dev(&got[&key], &want);
                assert!(dev < TOL, "{name}/{function}: {key}: deviation {dev:.3e}");
            }
        }
    }
}

#[test]
fn convert_names_every_op_that_cannot_be_converted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("palettized.aimodel");
    let model = "fixtures/models/mlp_palettized4_ios16.mlpackage";
    // Text: every op, with its type and the reason.
    let o = anekit(&["convert", model, "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "4 op(s) cannot be converted",
        "main: l1_weight_to_fp16_palettized (constexpr_lut_to_dense): the iOS16 form",
        "main: l2_weight_to_fp16_palettized (constexpr_lut_to_dense): the iOS16 form",
        "main: l3_weight_to_fp16_palettized (constexpr_lut_to_dense): the iOS16 form",
        "main: head_weight_to_fp16_palettized (constexpr_lut_to_dense): the iOS16 form",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    assert!(!out.exists());
    // --json: the same list on stdout.
    let o = anekit(&["convert", model, "-o", out.to_str().unwrap(), "--json"]);
    assert!(!o.status.success());
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["converted"], false);
    let list = r["unsupported"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{r}");
    for l in ["l1", "l2", "l3", "head"] {
        let op = format!("{l}_weight_to_fp16_palettized");
        assert!(
            list.iter()
                .any(|u| u["op"] == op.as_str() && u["type"] == "constexpr_lut_to_dense"),
            "{op}: {r}"
        );
    }
    assert!(
        list.iter()
            .all(|u| u["function"] == "main" && u["reason"].is_string())
    );
    assert!(!out.exists());
    // The wrong direction is refused before anything is written.
    let o = anekit(&[
        "convert",
        &fixture_path("mlp"),
        "-o",
        dir.path().join("x.aimodel").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(".mlpackage"));
}

#[test]
fn convert_to_core_ml_names_every_op_that_does_not_translate() {
    // fixtures/coreai/untranslatable.json: the ops coreai-core's authoring API put in the
    // module (with source locations) that have no MIL form, in two of its three graphs.
    let spec: Json = serde_json::from_str(
        &std::fs::read_to_string(coreai_fixtures().join("untranslatable.json")).unwrap(),
    )
    .unwrap();
    let model = coreai_fixtures().join(spec["path"].as_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("u.mlpackage");
    let o = anekit(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("4 op(s) in 2 function(s) have no MIL form"),
        "{err}"
    );
    let want = spec["untranslated"].as_array().unwrap();
    for u in want {
        let line = format!(
            "{}: {} at {}: ",
            u["graph"].as_str().unwrap(),
            u["op"].as_str().unwrap(),
            u["location"].as_str().unwrap()
        );
        assert!(err.contains(&line), "{line:?} not in {err}");
    }
    assert!(!out.exists());
    // inspect names them too, one line each, and lists them in --json.
    let text = ok(&anekit(&["inspect", model.to_str().unwrap()]));
    for u in want {
        let line = format!(
            "not translated: {}: {} at {}: ",
            u["graph"].as_str().unwrap(),
            u["op"].as_str().unwrap(),
            u["location"].as_str().unwrap()
        );
        assert!(text.contains(&line), "{line:?} not in {text}");
    }
    let j = ok_json(&anekit(&["inspect", model.to_str().unwrap(), "--json"]));
    let listed = j["translation"]["untranslated"].as_array().unwrap();
    assert_eq!(listed.len(), want.len(), "{j}");
    for (got, want) in listed.iter().zip(want) {
        assert_eq!(got["graph"], want["graph"]);
        assert_eq!(got["op"], want["op"]);
        assert_eq!(got["location"], want["location"]);
    }
    // --json: the same list, one entry per op.
    let o = anekit(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(!o.status.success());
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["converted"], false);
    assert_eq!(r["direction"], "Core AI -> Core ML");
    let list = r["unsupported"].as_array().unwrap();
    assert_eq!(list.len(), want.len(), "{r}");
    for (got, want) in list.iter().zip(want) {
        assert_eq!(got["function"], want["graph"], "{r}");
        assert_eq!(got["type"], want["op"], "{r}");
        assert_eq!(got["location"], want["location"], "{r}");
        assert!(!got["reason"].as_str().unwrap().is_empty());
    }
    assert!(!out.exists());
}

/// A copy of the convnet fixture in a temporary folder.
fn copy_fixture(dir: &Path) -> PathBuf {
    let src = PathBuf::from(fixture_path("convnet"));
    let dst = dir.join("convnet.aimodel");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

#[test]
fn malformed_models_give_errors_naming_the_file_or_section() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_fixture(dir.path());
    let ms = m.to_str().unwrap();
    // A hash that does not match.
    let mut hash = std::fs::read(m.join("main.hash")).unwrap();
    hash[0] ^= 0xff;
    std::fs::write(m.join("main.hash"), &hash).unwrap();
    for cmd in [
        &["inspect", ms][..],
        &["run", ms],
        &["inspect", ms, "--mlir"],
    ] {
        let o = anekit(cmd);
        assert!(!o.status.success(), "{cmd:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("main.hash"), "{cmd:?}: {err}");
        assert!(err.to_lowercase().contains("hash"), "{cmd:?}: {err}");
        assert!(!err.contains("panicked"), "{cmd:?}: {err}");
    }
    // A truncated module with a matching hash: the error names the bytecode section.
    let bytes = std::fs::read(m.join("main.mlirb")).unwrap();
    for cut in [3, 9, bytes.len() / 3, bytes.len() - 5] {
        let short = &bytes[..cut];
        std::fs::write(m.join("main.mlirb"), short).unwrap();
        std::fs::write(m.join("main.hash"), anekit_format::aimodel::sha256(short)).unwrap();
        let o = anekit(&["inspect", ms]);
        assert!(!o.status.success(), "cut at {cut}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("main.mlirb") || err.contains(ms),
            "cut {cut}: {err}"
        );
        // "MLIR bytecode: <section>, byte N: ..." (the header or a numbered section).
        assert!(err.contains("MLIR bytecode: "), "cut {cut}: {err}");
        assert!(err.contains(", byte "), "cut {cut}: {err}");
        assert!(!err.contains("panicked"), "cut {cut}: {err}");
    }
    // No hash file at all.
    std::fs::remove_file(m.join("main.hash")).unwrap();
    let o = anekit(&["inspect", ms]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("main.hash"));
}
