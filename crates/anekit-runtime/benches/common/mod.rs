//! What the CPU benches share: where the bench networks are, and loading one of them (or any
//! model) on the CPU backend. Each bench uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, LoadedModel, NamedTensors, npy};
use serde_json::Value as Json;

/// The repository: where Cargo built the bench, else (a binary carried to another machine,
/// scripts/bench_remote.sh) the current directory.
pub fn root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("scripts").is_dir() {
        built
    } else {
        PathBuf::from(".")
    }
}

/// The bench networks' folder: `$ANEKIT_BENCH_MODELS`, else `target/bench-models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("ANEKIT_BENCH_MODELS")
        .map_or_else(|| root().join("target/bench-models"), PathBuf::from)
}

/// The networks' manifest (written by scripts/make_bench_models.py) in `dir`.
pub fn manifest(dir: &Path) -> Result<Json, String> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}; run `.venv/bin/python scripts/make_bench_models.py` first \
             (after `scripts/setup-python.sh --with-torch`)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The folder of manifest entry `net` in `dir`.
pub fn net_dir(dir: &Path, net: &Json) -> PathBuf {
    dir.join(net["dir"].as_str().or(net["name"].as_str()).unwrap_or("?"))
}

/// `model` loaded on the CPU backend with `threads` workers.
pub fn load_cpu(engine: &Engine, model: Model, threads: usize) -> Result<LoadedModel, String> {
    let options = LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        threads: Some(threads),
        ..Default::default()
    };
    engine
        .load(Arc::new(model), &options)
        .map_err(|e| format!("load: {e}"))
}

/// Network `net` of folder `ndir` loaded on the CPU backend, and its saved inputs cast to
/// the types the model declares.
pub fn load_net(
    engine: &Engine,
    ndir: &Path,
    net: &Json,
    threads: usize,
) -> Result<(LoadedModel, NamedTensors), String> {
    let model = Model::open(ndir.join(net["mlpackage"].as_str().unwrap_or("model.mlpackage")))
        .map_err(|e| format!("open: {e}"))?;
    let loaded = load_cpu(engine, model, threads)?;
    let mut inputs = NamedTensors::new();
    for (iname, spec) in net["inputs"].as_object().into_iter().flatten() {
        let t = npy::read(ndir.join(spec["file"].as_str().unwrap_or_default()))
            .map_err(|e| format!("input {iname}: {e}"))?;
        let want = loaded
            .inputs()
            .iter()
            .find(|s| &s.name == iname)
            .map_or(t.dtype(), |s| s.dtype);
        inputs.insert(iname.clone(), t.cast(want));
    }
    Ok((loaded, inputs))
}
