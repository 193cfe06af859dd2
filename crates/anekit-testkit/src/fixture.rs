//! The fixtures as cases: every data set of every ML Program fixture against its PyTorch
//! reference, on any backend.
//!
//! Error metric: relative error = max |output − reference| / max |reference|. Bounds:
//! fp32 models computed in fp32 (the CPU backend, or any backend asked for `cpuOnly`)
//! ≤ 1e-4; fp16 models, and any model a backend may run on the GPU or the Neural Engine
//! (fp16 arithmetic), ≤ 1e-2. Compressed models: against the network run with the
//! package's own decompressed weights (data sets labelled `package_weights`) the fp16
//! bound; against the uncompressed network the error is what the compression costs and is
//! only reported. A stateful model's data sets run in order on one state, and the states
//! after each call are checked too (≤ 1e-2).

use std::collections::BTreeMap;
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::{Backend, BackendKind, ComputeUnits, LoadOptions, Tensor, npy};

use crate::manifest::{Fixture, Manifest};
use crate::run::{Outcome, RunOptions};

/// One compared output of a fixture run.
#[derive(Debug, Clone)]
pub struct Compared {
    /// `<label> <output>` or `<label> state <name>`.
    pub what: String,
    /// Relative error.
    pub relative: f64,
    /// SNR, dB.
    pub snr_db: f64,
    /// The bound it was held to (`None`: reported only).
    pub bound: Option<f64>,
}

/// (relative error, SNR dB) of `out` against `reference`; strings must be equal.
fn deviation(out: &Tensor, reference: &Tensor) -> Result<(f64, f64), String> {
    if let (Tensor::Str(_), _) | (_, Tensor::Str(_)) = (out, reference) {
        return Ok(if out == reference {
            (0.0, f64::INFINITY)
        } else {
            (f64::INFINITY, f64::NEG_INFINITY)
        });
    }
    let d = out.deviation(reference).ok_or_else(|| {
        format!(
            "shape {:?}, the reference has {:?}",
            out.shape(),
            reference.shape()
        )
    })?;
    Ok((d.relative(), d.snr_db()))
}

/// Run fixture `f` on `backend`; the outcome, and every comparison made.
pub fn run_fixture(
    backend: &dyn Backend,
    manifest: &Manifest,
    f: &Fixture,
    options: &RunOptions,
) -> (Outcome, Vec<Compared>) {
    let model = match Model::open(manifest.resolve(&f.path)) {
        Ok(m) => Arc::new(m),
        Err(e) => return (Outcome::Fail(format!("open: {e}")), Vec::new()),
    };
    let fp32_compute =
        backend.kind() == BackendKind::Cpu || options.compute_units == ComputeUnits::CpuOnly;
    let compressed = f.compression.as_ref().is_some_and(|c| !c.is_null());
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let mut states = BTreeMap::new();
    for d in &f.data {
        let label = d.label();
        let load = LoadOptions {
            compute_units: options.compute_units,
            function: Some(d.function.clone()),
            threads: options.threads,
            ..LoadOptions::default()
        };
        let instance = match backend.load(model.clone(), &load) {
            Ok(i) => i,
            Err(e) => return (Outcome::Fail(format!("[{label}] load: {e}")), rows),
        };
        let mut inputs = BTreeMap::new();
        for (name, file) in &d.inputs {
            let t = match npy::read(manifest.resolve(file)) {
                Ok(t) => t,
                Err(e) => return (Outcome::Fail(format!("[{label}] {file}: {e}")), rows),
            };
            // References are saved in the PyTorch dtype; the model takes its own.
            let want = instance
                .inputs()
                .iter()
                .find(|s| &s.name == name)
                .map_or(t.dtype(), |s| s.dtype);
            inputs.insert(name.clone(), t.cast(want));
        }
        let result = if instance.states().is_empty() {
            instance.predict(&inputs)
        } else {
            let state = states
                .entry(d.function.clone())
                .or_insert_with(|| anekit_runtime::State::new(instance.states()));
            instance.predict_with_state(&inputs, state)
        };
        let outputs = match result {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("[{label}] predict: {e}"));
                continue;
            }
        };
        let bound = match (compressed, label, f.is_fp32() && fp32_compute) {
            (true, "reference", _) => None,
            (_, _, true) => Some(1e-4),
            _ => Some(1e-2),
        };
        for (oname, file) in &d.outputs {
            match outputs.get(oname) {
                Some(out) => record(
                    compare_with(manifest, format!("[{label}] {oname}"), out, file, bound),
                    &mut rows,
                    &mut failures,
                ),
                None => failures.push(format!("[{label}] no output {oname}")),
            }
        }
        if let Some(state) = states.get(&d.function) {
            for (sname, file) in &d.states_after {
                match state.read(sname) {
                    Ok(t) => record(
                        compare_with(
                            manifest,
                            format!("[{label}] state {sname}"),
                            t,
                            file,
                            Some(1e-2),
                        ),
                        &mut rows,
                        &mut failures,
                    ),
                    Err(e) => failures.push(format!("[{label}] state {sname}: {e}")),
                }
            }
        }
    }
    if failures.is_empty() {
        (Outcome::Pass, rows)
    } else {
        (Outcome::Fail(failures.join("\n")), rows)
    }
}

/// Compare `out` with the reference in `file`: the comparison, or why it failed.
fn compare_with(
    manifest: &Manifest,
    what: String,
    out: &Tensor,
    file: &str,
    bound: Option<f64>,
) -> Result<Compared, String> {
    let reference =
        npy::read(manifest.resolve(file)).map_err(|e| format!("{what}: {file}: {e}"))?;
    let (relative, snr_db) = deviation(out, &reference).map_err(|e| format!("{what}: {e}"))?;
    if let Some(b) = bound.filter(|&b| relative > b) {
        return Err(format!(
            "{what}: relative error {relative:.2e} > {b:.0e} (SNR {snr_db:.1} dB)"
        ));
    }
    Ok(Compared {
        what,
        relative,
        snr_db,
        bound,
    })
}

fn record(r: Result<Compared, String>, rows: &mut Vec<Compared>, failures: &mut Vec<String>) {
    match r {
        Ok(c) => rows.push(c),
        Err(e) => failures.push(e),
    }
}
