//! `anekit optimize` rewrites keep a model's outputs: every fixture is rewritten with each
//! pipeline and run on the CPU backend next to the original, with the fixture's recorded
//! inputs; the outputs are compared with the original's and with the PyTorch reference
//! recorded by scripts/make_fixtures.py (the oracle).
//!
//! Bounds (relative error = max |a − b| / max |b|): exact rewrites (no-op removal, epsilon,
//! linear → 1x1 conv) ≤ 1e-4 against the original; fp16 compute ≤ 1e-2 (fp16 keeps 11
//! significant bits), the fixture's own fp16 bound.
//!
//! `anekit optimize --fp16` end to end: the binary converts an fp32 fixture, and the package
//! it writes runs on the CPU backend (at fp32 and at fp16 precision) within 40 dB SNR of the
//! PyTorch reference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_plan::{OptimizeOptions, optimize_passes};
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, NamedTensors, Precision, Tensor, npy};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn rel(out: &Tensor, reference: &Tensor) -> f64 {
    out.deviation(reference).expect("output shape").relative()
}

/// Signal-to-noise ratio of `out` against `reference`, in dB.
fn snr_db(out: &Tensor, reference: &Tensor) -> f64 {
    out.deviation(reference).expect("output shape").snr_db()
}

fn run(engine: &Engine, model: Model, dir: &Path, data: &Json) -> NamedTensors {
    run_at(engine, model, dir, data, Precision::Fp32)
}

fn run_at(
    engine: &Engine,
    model: Model,
    dir: &Path,
    data: &Json,
    precision: Precision,
) -> NamedTensors {
    let loaded = engine
        .load(
            Arc::new(model),
            &LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                precision,
                ..Default::default()
            },
        )
        .expect("load");
    let inputs: NamedTensors = data["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, f)| {
            let t = npy::read(dir.join(f.as_str().unwrap())).unwrap();
            let want = loaded
                .inputs()
                .iter()
                .find(|s| &s.name == name)
                .map_or(t.dtype(), |s| s.dtype);
            (name.clone(), t.cast(want))
        })
        .collect();
    if loaded.instance().states().is_empty() {
        loaded.predict(&inputs).expect("predict")
    } else {
        let mut state = loaded.new_state();
        loaded
            .predict_with_state(&inputs, &mut state)
            .expect("predict")
    }
}

#[test]
fn rewritten_fixtures_give_the_same_outputs() {
    let dir = fixtures();
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let engine = Engine::new();
    let pipelines = [
        ("default", OptimizeOptions::default(), 1e-4),
        (
            "linear-to-conv",
            OptimizeOptions {
                linear_to_conv: true,
                ..Default::default()
            },
            1e-4,
        ),
        (
            "fp16",
            OptimizeOptions {
                fp16: true,
                ..Default::default()
            },
            1e-2,
        ),
    ];
    let mut compared = 0;
    let mut failures = Vec::new();
    println!(
        "{:<34} {:<16} {:>12} {:>12}",
        "fixture", "pipeline", "vs original", "vs PyTorch"
    );
    for f in manifest["fixtures"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let model = Model::open(dir.join(f["path"].as_str().unwrap())).unwrap();
        let Some(program) = model.program.clone() else {
            continue;
        };
        // The default function's first recorded call.
        let default_fn = anekit_plan::analyze::model_inputs(&model).0;
        let Some(data) = f["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| Some(d["function"].as_str().unwrap()) == default_fn.as_deref())
        else {
            continue;
        };
        let original = run(&engine, model.clone(), &dir, data);
        for (label, opts, bound) in &pipelines {
            if opts.fp16 && f["precision"].as_str() != Some("fp32") {
                continue;
            }
            let mut p = program.clone();
            let runs = match optimize_passes(opts).run(&mut p) {
                Ok(r) => r,
                Err(e) => {
                    // A pass may refuse a program it cannot rewrite; that is reported, not
                    // a wrong result.
                    println!("{name:<34} {label:<16} not rewritten: {e}");
                    continue;
                }
            };
            let mut m = model.clone();
            m.program = Some(p);
            let out = run(&engine, m, &dir, data);
            for (oname, file) in data["outputs"].as_object().unwrap() {
                let reference = npy::read(dir.join(file.as_str().unwrap())).unwrap();
                let (Some(a), Some(b)) = (out.get(oname), original.get(oname)) else {
                    failures.push(format!("{name} {label}: output {oname} missing"));
                    continue;
                };
                let vs_orig = rel(a, b);
                let vs_ref = rel(a, &reference);
                let orig_ref = rel(b, &reference);
                println!("{name:<34} {label:<16} {vs_orig:>12.2e} {vs_ref:>12.2e}");
                if vs_orig > *bound {
                    failures.push(format!(
                        "{name} {label} {oname}: {vs_orig:.2e} from the original (bound {bound:.0e}); passes {runs:?}"
                    ));
                }
                // Against PyTorch: no worse than the original plus the rewrite's bound.
                if vs_ref > orig_ref + bound {
                    failures.push(format!(
                        "{name} {label} {oname}: {vs_ref:.2e} from PyTorch (original {orig_ref:.2e})"
                    ));
                }
                compared += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 40, "compared only {compared} outputs");
}

#[test]
fn optimize_fp16_binary_output_matches_the_reference() {
    let dir = fixtures();
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let f = manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "mlp_fp32_ios15")
        .unwrap();
    assert_eq!(f["precision"], "fp32");
    let src = dir.join(f["path"].as_str().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let out_pkg = tmp.path().join("mlp_fp16.mlpackage");
    let out = Command::new(env!("CARGO_BIN_EXE_anekit"))
        .arg("optimize")
        .arg(&src)
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
    let summary: Json = serde_json::from_slice(&out.stdout).unwrap();
    let fp16 = summary["passes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pass"] == "fp16-compute-precision")
        .unwrap_or_else(|| panic!("no fp16 pass in {summary}"));
    // every computing op of the MLP: 3 linear, layer_norm, 2 gelu, softmax
    assert_eq!(fp16["changes"], 7, "{summary}");

    let original = Model::open(&src).unwrap();
    let converted = Model::open(&out_pkg).unwrap();
    // the interface is unchanged: same inputs and outputs, still fp32
    let (p0, p1) = (
        original.program.as_ref().unwrap(),
        converted.program.as_ref().unwrap(),
    );
    let (f0, f1) = (&p0.functions["main"], &p1.functions["main"]);
    assert_eq!(f0.inputs, f1.inputs);
    assert_eq!(
        f0.block().unwrap().outputs,
        f1.block().unwrap().outputs,
        "output names"
    );
    let counts = f1.block().unwrap().op_counts();
    assert_eq!(counts.get("linear"), Some(&3), "{counts:?}");
    assert!(
        f1.block()
            .unwrap()
            .operations
            .iter()
            .any(|o| o.op_type == "linear"
                && o.outputs[0].ty.as_tensor().unwrap().dtype == anekit_mil::DataType::Fp16),
        "linear computes in fp16"
    );

    let engine = Engine::new();
    let data = &f["data"][0];
    for precision in [Precision::Fp32, Precision::Fp16] {
        let got = run_at(&engine, converted.clone(), &dir, data, precision);
        for (oname, file) in data["outputs"].as_object().unwrap() {
            let reference = npy::read(dir.join(file.as_str().unwrap())).unwrap();
            let t = got.get(oname).unwrap();
            assert_eq!(t.dtype(), anekit_runtime::ElementType::F32, "{oname}");
            let snr = snr_db(t, &reference);
            println!("mlp_fp32_ios15 optimize --fp16 ({precision:?}) {oname}: {snr:.1} dB");
            assert!(snr >= 40.0, "{oname} at {precision:?}: {snr:.1} dB");
        }
    }
}
