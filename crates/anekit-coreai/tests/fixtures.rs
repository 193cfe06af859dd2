//! Every Core AI fixture (coreai-torch conversions, `fixtures/coreai/`) translated to MIL
//! and run on anekit's CPU backend matches coreai-core's own outputs, saved by
//! `scripts/make_coreai_fixtures.py`, and the PyTorch reference (no further from it than
//! coreai-core is, plus the tolerance); and it does so both with
//! the composites mapped to MIL ops and with every composite lowered through its own
//! decomposition region.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anekit_coreai::CoreAiModel;
use anekit_coreai::to_mil::Options;
use anekit_runtime::cpu::CpuBackend;
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, Precision, Tensor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/coreai")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn npys(map: &serde_json::Value) -> BTreeMap<String, Tensor> {
    map.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let p = root().join(v.as_str().unwrap());
                    (k.clone(), anekit_runtime::npy::read(&p).unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Outputs of `function` of `path` on the CPU backend, call by call (states carried).
fn run(
    path: &Path,
    function: &str,
    calls: &[BTreeMap<String, Tensor>],
    options: Options,
) -> Result<Vec<BTreeMap<String, Tensor>>, String> {
    let model = CoreAiModel::open_with(path, options).map_err(|e| e.to_string())?;
    if let Some(reason) = model.translation.failed.get(function) {
        return Err(reason.clone());
    }
    let mil = model.to_mil_model();
    let mut engine = Engine::new();
    engine.register(Arc::new(CpuBackend));
    let loaded = engine
        .load(
            Arc::new(mil),
            &LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                function: Some(function.to_string()),
                precision: Precision::Fp32,
                threads: Some(1),
                ..LoadOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
    let stateful = !loaded.instance().states().is_empty();
    let mut state = loaded.new_state();
    calls
        .iter()
        .map(|inputs| {
            if stateful {
                loaded.predict_with_state(inputs, &mut state)
            } else {
                loaded.predict(inputs)
            }
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// max |a - b| / max(1, max |b|).
fn rel_dev(a: &Tensor, b: &Tensor) -> f64 {
    // coreai-core returns a rank-0 result as a 1-element vector.
    let same = a.shape() == b.shape() || (a.len() == 1 && b.len() == 1);
    if !same {
        return f64::INFINITY;
    }
    let (a, b) = (a.to_f32(), b.to_f32());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let dev = a.iter().zip(b.iter()).fold(0.0f32, |m, (x, y)| {
        if x.is_nan() && y.is_nan() {
            m
        } else {
            m.max((x - y).abs())
        }
    });
    f64::from(dev / scale)
}

/// Tolerance of anekit against coreai-core (both fp32 on a CPU; summation order differs).
const TOL: f64 = 1e-4;
/// Functions that round through fp16 or bf16 (anekit computes fp16 ops in f32 and keeps
/// bf16 values in fp32; one bf16 rounding is 2^-8 relative).
const HALF: [&str; 2] = ["cast_half", "bf16"];
const HALF_TOL: f64 = 1e-2;

fn check_all(options: Options) -> Vec<String> {
    let m = manifest();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, f) in m["fixtures"].as_object().unwrap() {
        let path = root().join(f["path"].as_str().unwrap());
        // Group the data by function (stateful fixtures: several calls in order).
        let mut by_fn: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
        for d in f["data"].as_array().unwrap() {
            by_fn
                .entry(d["function"].as_str().unwrap().to_string())
                .or_default()
                .push(d);
        }
        for (function, data) in by_fn {
            let calls: Vec<_> = data.iter().map(|d| npys(&d["inputs"])).collect();
            let label = format!("{name}/{function}");
            match run(&path, &function, &calls, options) {
                Err(e) => failures.push(format!("{label}: {e}")),
                Ok(outs) => {
                    for (d, got) in data.iter().zip(outs) {
                        let coreai = npys(&d["coreai"]);
                        // PyTorch's reference: anekit may be no further from it than
                        // coreai-core is, plus the tolerance.
                        for (key, reference) in npys(&d["torch"]) {
                            let (Some(g), Some(c)) = (got.get(&key), coreai.get(&key)) else {
                                continue;
                            };
                            let tol = if HALF.contains(&function.as_str()) {
                                HALF_TOL
                            } else {
                                TOL
                            };
                            let (ours, theirs) = (rel_dev(g, &reference), rel_dev(c, &reference));
                            if ours > theirs + tol {
                                failures.push(format!(
                                    "{label}: {key}: relative deviation {ours:.3e} from PyTorch (coreai-core's: {theirs:.3e})"
                                ));
                            }
                        }
                        for (key, want) in coreai {
                            checked += 1;
                            match got.get(&key) {
                                None => failures.push(format!("{label}: no output {key}")),
                                Some(g) => {
                                    let dev = rel_dev(g, &want);
                                    let tol = if HALF.contains(&function.as_str()) {
                                        HALF_TOL
                                    } else {
                                        TOL
                                    };
                                    if dev > tol {
                                        failures.push(format!(
                                            "{label}: {key}: relative deviation {dev:.3e} from coreai-core (shape {:?} vs {:?})",
                                            g.shape(),
                                            want.shape()
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        checked > 100 || !failures.is_empty(),
        "only {checked} outputs checked"
    );
    failures
}

#[test]
fn cpu_backend_matches_coreai_core() {
    let failures = check_all(Options::default());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn lowering_every_composite_gives_the_same_outputs() {
    let failures = check_all(Options { fast_paths: false });
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
