//! Every fixture against its PyTorch reference (fixtures/manifest.json), on the CPU backend.
//!
//! Error metric: relative error = max |output − reference| / max |reference|; SNR in dB is
//! reported too. Bounds:
//! - fp32-typed models: relative error ≤ 1e-4 (the bound);
//! - fp16-typed models: relative error ≤ 1e-2 (fp16 keeps 11 significant bits; weights are
//!   stored in fp16 and the reference network ran in fp32);
//! - compressed models: against the PyTorch network run with the package's own decompressed
//!   weights (`package_weights`), the fp16 bound; against the uncompressed network the error
//!   is what the compression costs and is only reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::{ComputeUnits, ElementType, Engine, LoadOptions, NamedTensors, Tensor, npy};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// (max abs error / max abs reference, SNR dB). String outputs (a classifier's label) must
/// be equal: (0, ∞) if they are, (∞, −∞) if not.
fn compare(out: &Tensor, reference: &Tensor) -> (f64, f64) {
    if let (Tensor::Str(_), _) | (_, Tensor::Str(_)) = (out, reference) {
        return if out == reference {
            (0.0, f64::INFINITY)
        } else {
            (f64::INFINITY, f64::NEG_INFINITY)
        };
    }
    let d = out.deviation(reference).expect("output shape");
    (d.relative(), d.snr_db())
}

fn load_inputs(
    dir: &Path,
    files: &serde_json::Map<String, Json>,
    model: &anekit_runtime::LoadedModel,
) -> NamedTensors {
    files
        .iter()
        .map(|(name, f)| {
            let t = npy::read(dir.join(f.as_str().unwrap())).unwrap();
            // References are saved in the PyTorch dtype; Core ML takes the model's dtype.
            let want = model
                .inputs()
                .iter()
                .find(|s| &s.name == name)
                .map_or(t.dtype(), |s| s.dtype);
            (name.clone(), t.cast(want))
        })
        .collect()
}

struct Row {
    name: String,
    label: String,
    rel: f64,
    snr: f64,
    bound: Option<f64>,
}

#[test]
fn every_fixture_matches_its_reference() {
    let dir = fixtures();
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let only = std::env::var("ANEKIT_FIXTURE").ok();
    let engine = Engine::new();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for f in manifest["fixtures"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let model = Model::open(dir.join(f["path"].as_str().unwrap())).unwrap();
        if model.program.is_none() {
            // NeuralNetwork models run through their MIL translation.
            failures.push(format!("{name}: no program: {:?}", model.untranslated));
            continue;
        }
        let model = Arc::new(model);
        let fp32 = f["precision"].as_str() == Some("fp32");
        let compressed = !f["compression"].is_null();
        let mut state_by_fn = std::collections::BTreeMap::new();
        for d in f["data"].as_array().unwrap() {
            let function = d["function"].as_str().unwrap().to_string();
            let label = d["label"].as_str().unwrap_or("reference").to_string();
            let options = LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                function: Some(function.clone()),
                ..Default::default()
            };
            let loaded = match engine.load(model.clone(), &options) {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!("{name} [{label}]: load: {e}"));
                    break;
                }
            };
            let inputs = load_inputs(&dir, d["inputs"].as_object().unwrap(), &loaded);
            let result = if loaded.instance().states().is_empty() {
                loaded.predict(&inputs)
            } else {
                let state = state_by_fn
                    .entry(function.clone())
                    .or_insert_with(|| loaded.new_state());
                loaded.predict_with_state(&inputs, state)
            };
            let outputs = match result {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{name} [{label}]: predict: {e}"));
                    continue;
                }
            };
            for (oname, file) in d["outputs"].as_object().unwrap() {
                let reference = npy::read(dir.join(file.as_str().unwrap())).unwrap();
                let Some(out) = outputs.get(oname) else {
                    failures.push(format!("{name} [{label}]: no output {oname}"));
                    continue;
                };
                let (rel, snr) = compare(out, &reference);
                let bound = match (compressed, label.as_str(), fp32) {
                    (true, "reference", _) => None,
                    (_, _, true) => Some(1e-4),
                    _ => Some(1e-2),
                };
                if bound.is_some_and(|b| rel > b) {
                    failures.push(format!("{name} [{label}] {oname}: relative error {rel:.2e} > {:.0e} (SNR {snr:.1} dB)", bound.unwrap_or(0.0)));
                }
                rows.push(Row {
                    name: name.into(),
                    label: label.clone(),
                    rel,
                    snr,
                    bound,
                });
            }
            // Stateful models: the states after each call match PyTorch's buffers too.
            if let (Some(states), Some(state)) =
                (d["states_after"].as_object(), state_by_fn.get(&function))
            {
                for (sname, file) in states {
                    let reference = npy::read(dir.join(file.as_str().unwrap())).unwrap();
                    let (rel, snr) = compare(state.read(sname).unwrap(), &reference);
                    if rel > 1e-2 {
                        failures.push(format!(
                            "{name} [{label}] state {sname}: relative error {rel:.2e}"
                        ));
                    }
                    rows.push(Row {
                        name: name.into(),
                        label: format!("{label} state {sname}"),
                        rel,
                        snr,
                        bound: Some(1e-2),
                    });
                }
            }
            let _ = ElementType::F32;
        }
    }
    println!(
        "{:<34} {:<28} {:>10} {:>9} {:>8}",
        "fixture", "data", "rel. err", "SNR dB", "bound"
    );
    for r in &rows {
        println!(
            "{:<34} {:<28} {:>10.2e} {:>9.1} {:>8}",
            r.name,
            r.label,
            r.rel,
            r.snr,
            r.bound.map_or("report".to_string(), |b| format!("{b:.0e}"))
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        only.is_some() || rows.len() >= 30,
        "expected the whole fixture set, compared {}",
        rows.len()
    );
}
