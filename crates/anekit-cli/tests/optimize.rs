//! `anekit optimize` rewrites keep a model's outputs: every fixture is rewritten with each
//! pipeline and run on the CPU backend next to the original, with the fixture's recorded
//! inputs; the outputs are compared with the original's and with the PyTorch reference
//! recorded by scripts/make_fixtures.py (the oracle).
//!
//! Bounds (relative error = max |a − b| / max |b|): exact rewrites (no-op removal, epsilon,
//! linear → 1x1 conv) ≤ 1e-4 against the original; fp16 compute ≤ 1e-2 (fp16 keeps 11
//! significant bits), the fixture's own fp16 bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_plan::{OptimizeOptions, optimize_passes};
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, NamedTensors, Tensor, npy};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn rel(out: &Tensor, reference: &Tensor) -> f64 {
    let o = out.to_f32();
    let r = reference.to_f32();
    assert_eq!(o.shape(), r.shape(), "output shape");
    let (mut err, mut refmax) = (0f64, 0f64);
    for (a, b) in o.iter().zip(r.iter()) {
        err = err.max((f64::from(*a) - f64::from(*b)).abs());
        refmax = refmax.max(f64::from(*b).abs());
    }
    err / refmax.max(f64::MIN_POSITIVE)
}

fn run(engine: &Engine, model: Model, dir: &Path, data: &Json) -> NamedTensors {
    let loaded = engine
        .load(
            Arc::new(model),
            &LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
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
                    // fp16 conversion refuses programs it cannot convert (control flow);
                    // that is reported, not a wrong result.
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
