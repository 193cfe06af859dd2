//! anekit's CPU backend (through the Core AI → MIL translation, what `anekit bench` runs)
//! against coreai-core's own Linux CPU runtime, on the same `.aimodel` file, input and CPUs.
//!
//! ```text
//! scripts/setup-python.sh --coreai --with-torch          # once: .venv-coreai with coreai-torch
//! .venv-coreai/bin/python scripts/make_coreai_fixtures.py --bench 3
//!                                                        # once: target/bench-models/mobilenetv2_coreai/
//! cargo bench -p anekit-coreai --bench vs_coreai_core [-- --threads 2] [--runs N]
//!       [--coreai-runs N] [--warmup N] [--profile] [--json FILE] [MODEL_DIR ...]
//! ```
//!
//! A model folder holds `*.aimodel` (made by coreai-torch), `x.npy` (the input) and
//! optionally `y_torch.npy` (PyTorch's output); the default is the MobileNetV2 of
//! `scripts/make_coreai_fixtures.py --bench` (torchvision's architecture, width 1.0,
//! 1x3x224x224, random weights and batch-norm statistics, fp32).
//!
//! anekit: [`anekit_coreai::CoreAiModel::open`] (container, hash, bytecode, translation),
//! then the CPU backend with `LoadOptions { threads: Some(T) }`; each prediction is timed
//! around `LoadedModel::predict`. coreai-core: `scripts/coreai_oracle.py bench` in
//! `$ANEKIT_COREAI_PYTHON` (else `.venv-coreai/bin/python`), run under `taskset -c 0..T-1`
//! so that its runtime has the same T CPUs (coreai-core 1.0.0b3 has no thread-count
//! setting on Linux); each awaited call is timed in Python. After warm-up the two are timed
//! in alternation (`--runs / --coreai-runs` anekit predictions, then one coreai-core call,
//! and again), so machine load hits both alike. The outputs are compared:
//! max |anekit − coreai-core| / max |coreai-core| (and against PyTorch where given).
//!
//! The table shows median (and min) times per inference, the speedup of anekit, and the
//! deviations. `--runs` (default 30) anekit predictions and `--coreai-runs` (default 5)
//! coreai-core calls, after `--warmup` (default 2 and 1) untimed ones. Timings depend on
//! the machine and its load: say which when quoting them (see `docs/coreai.md`).
//! `--profile` prints anekit's per-op time table (`cpu::exec::profile`) after the timing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anekit_coreai::CoreAiModel;
use anekit_runtime::cpu::exec::profile;
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, NamedTensors, Tensor, npy};
use serde_json::{Value as Json, json};

struct Opts {
    dirs: Vec<PathBuf>,
    threads: usize,
    runs: usize,
    coreai_runs: usize,
    warmup: usize,
    profile: bool,
    json: Option<PathBuf>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_args() -> Opts {
    let mut o = Opts {
        dirs: Vec::new(),
        threads: 2,
        runs: 30,
        coreai_runs: 5,
        warmup: 2,
        profile: false,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--bench" => {}
            "--threads" => o.threads = val("--threads").parse().expect("--threads N"),
            "--runs" => o.runs = val("--runs").parse().expect("--runs N"),
            "--coreai-runs" => {
                o.coreai_runs = val("--coreai-runs").parse().expect("--coreai-runs N");
            }
            "--warmup" => o.warmup = val("--warmup").parse().expect("--warmup N"),
            "--json" => o.json = Some(PathBuf::from(val("--json"))),
            "--profile" => o.profile = true,
            s if s.starts_with("--") => panic!("unknown option {s}"),
            s => o.dirs.push(PathBuf::from(s)),
        }
    }
    if o.dirs.is_empty() {
        o.dirs
            .push(root().join("target/bench-models/mobilenetv2_coreai"));
    }
    o.threads = o.threads.max(1);
    o.runs = o.runs.max(1);
    o.coreai_runs = o.coreai_runs.max(1);
    o
}

fn python() -> PathBuf {
    std::env::var_os("ANEKIT_COREAI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-coreai/bin/python"))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f32(), b.to_f32());
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let (mut err, mut m) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b.iter()) {
        err = err.max((f64::from(*x) - f64::from(*y)).abs());
        m = m.max(f64::from(*y).abs());
    }
    err / m.max(f64::MIN_POSITIVE)
}

struct Row {
    name: String,
    anekit_load_ms: f64,
    anekit_ms: Vec<f64>,
    coreai_load_ms: f64,
    coreai_ms: Vec<f64>,
    coreai_cpus: Json,
    vs_coreai: f64,
    vs_torch: Option<f64>,
}

fn find_model(dir: &Path) -> Result<PathBuf, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "aimodel"))
        .ok_or_else(|| format!("no .aimodel in {}", dir.display()))
}

fn bench_one(dir: &Path, o: &Opts, engine: &Engine) -> Result<Row, String> {
    let model_path = find_model(dir)?;
    let name = model_path
        .file_stem()
        .map_or_else(|| "?".into(), |s| s.to_string_lossy().into_owned());
    let x = npy::read(dir.join("x.npy")).map_err(|e| format!("x.npy: {e}"))?;

    // anekit: open (container, hash, bytecode, translation) and load, as `anekit bench`.
    let t0 = Instant::now();
    let m = CoreAiModel::open(&model_path).map_err(|e| format!("open: {e}"))?;
    if !m.translation.failed.is_empty() {
        return Err(format!("not translated: {:?}", m.translation.failed));
    }
    let options = LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        threads: Some(o.threads),
        ..Default::default()
    };
    let loaded = engine
        .load(Arc::new(m.to_mil_model()), &options)
        .map_err(|e| format!("load: {e}"))?;
    let anekit_load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let input_name = loaded
        .inputs()
        .first()
        .map(|s| s.name.clone())
        .ok_or("the model has no input")?;
    let mut inputs = NamedTensors::new();
    inputs.insert(input_name.clone(), x);
    let output_name = loaded
        .outputs()
        .first()
        .map(|s| s.name.clone())
        .ok_or("the model has no output")?;
    let mut out = None;
    for _ in 0..o.warmup {
        out = Some(
            loaded
                .predict(&inputs)
                .map_err(|e| format!("predict: {e}"))?,
        );
    }

    // coreai-core on the same file, input and CPUs, as a server answering one timed call
    // per request, so that the two are timed in alternation (machine load hits both).
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cpus = format!("0-{}", o.threads - 1);
    let mut child = Command::new("taskset")
        .args(["-c", &cpus])
        .arg(python())
        .arg(root().join("scripts/coreai_oracle.py"))
        .arg("bench")
        .arg(&model_path)
        .arg(tmp.path())
        .arg("--input")
        .arg(format!("{input_name}={}", dir.join("x.npy").display()))
        .args(["--warmup", "1", "--serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start taskset {}: {e}", python().display()))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    let info: Json = match serde_json::from_str(&line) {
        Ok(j) => j,
        Err(_) => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return Err(format!(
                "coreai-core did not start: {}",
                err.lines()
                    .filter(|l| !l.starts_with("ODIE"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    };
    let mut anekit_ms = Vec::with_capacity(o.runs);
    let mut coreai_ms = Vec::with_capacity(o.coreai_runs);
    for round in 0..o.coreai_runs {
        // This round's share of anekit's runs, then one coreai-core call.
        let n = (round + 1) * o.runs / o.coreai_runs - round * o.runs / o.coreai_runs;
        for _ in 0..n {
            let t = Instant::now();
            let r = loaded
                .predict(&inputs)
                .map_err(|e| format!("predict: {e}"))?;
            anekit_ms.push(t.elapsed().as_secs_f64() * 1e3);
            out = Some(r);
        }
        writeln!(stdin, "run").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        line.clear();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        coreai_ms.push(
            line.trim()
                .parse()
                .map_err(|_| format!("coreai-core answered {line:?}"))?,
        );
    }
    let _ = writeln!(stdin, "quit");
    drop(stdin);
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("coreai-core exited with {status}"));
    }
    let ours = out
        .and_then(|mut r| r.remove(&output_name))
        .ok_or("no output")?;
    if o.profile {
        let n = 10;
        profile::collect(true);
        for _ in 0..n {
            loaded.predict(&inputs).map_err(|e| e.to_string())?;
        }
        profile::collect(false);
        println!(
            "\n--- {name}: anekit per-op time (mean of {n} predictions, profiling on) ---\n{}",
            profile::render(&profile::take(), n, 25)
        );
    }
    let theirs = npy::read(tmp.path().join(format!("{output_name}.npy")))
        .map_err(|e| format!("coreai-core's output: {e}"))?;
    let vs_torch = npy::read(dir.join("y_torch.npy"))
        .ok()
        .map(|t| rel_diff(&ours, &t));
    Ok(Row {
        name,
        anekit_load_ms,
        anekit_ms,
        coreai_load_ms: info["load_ms"].as_f64().unwrap_or(f64::NAN),
        coreai_ms,
        coreai_cpus: info["cpus"].clone(),
        vs_coreai: rel_diff(&ours, &theirs),
        vs_torch,
    })
}

fn main() {
    let o = parse_args();
    let engine = Engine::new();
    println!(
        "anekit (CPU backend, {} threads) vs coreai-core 1.0.0b3 Linux CPU runtime (taskset -c 0-{}); {} / {} timed runs",
        o.threads,
        o.threads - 1,
        o.runs,
        o.coreai_runs
    );
    println!(
        "{:<14} {:>11} {:>11} {:>13} {:>13} {:>9} {:>11} {:>11}",
        "model", "anekit ms", "(min)", "coreai ms", "(min)", "speedup", "vs coreai", "vs torch"
    );
    let mut results = Vec::new();
    let mut failed = false;
    for dir in &o.dirs {
        // coreai-core 1.0.0b3's Linux runtime aborts now and then ("C++ exception handling
        // detected"); such a run is tried again.
        let mut result = bench_one(dir, &o, &engine);
        for _ in 0..2 {
            match &result {
                Err(e) if e.starts_with("coreai-core") => {
                    eprintln!("{}: {e}; again", dir.display());
                    result = bench_one(dir, &o, &engine);
                }
                _ => break,
            }
        }
        match result {
            Ok(r) => {
                let (a, c) = (median(&r.anekit_ms), median(&r.coreai_ms));
                println!(
                    "{:<14} {:>11.2} {:>11.2} {:>13.1} {:>13.1} {:>8.0}x {:>11.2e} {:>11}",
                    r.name,
                    a,
                    min(&r.anekit_ms),
                    c,
                    min(&r.coreai_ms),
                    c / a,
                    r.vs_coreai,
                    r.vs_torch
                        .map_or_else(|| "-".into(), |d| format!("{d:.2e}"))
                );
                results.push(json!({
                    "model": r.name,
                    "dir": dir.display().to_string(),
                    "threads": o.threads,
                    "anekit_load_ms": r.anekit_load_ms,
                    "anekit_ms": r.anekit_ms,
                    "anekit_median_ms": a,
                    "coreai_load_ms": r.coreai_load_ms,
                    "coreai_ms": r.coreai_ms,
                    "coreai_median_ms": c,
                    "coreai_cpus": r.coreai_cpus,
                    "speedup": c / a,
                    "anekit_vs_coreai": r.vs_coreai,
                    "anekit_vs_torch": r.vs_torch,
                }));
            }
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", dir.display());
                if !dir.exists() {
                    eprintln!(
                        "  make it with: .venv-coreai/bin/python scripts/make_coreai_fixtures.py --bench 3"
                    );
                }
            }
        }
    }
    if let Some(p) = &o.json {
        std::fs::write(p, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    }
    if failed {
        std::process::exit(1);
    }
}
