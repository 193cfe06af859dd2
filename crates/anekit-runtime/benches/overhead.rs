//! Per-op and per-prediction fixed costs of the CPU backend, side by side with ONNX Runtime.
//!
//! ```text
//! cargo bench -p anekit-runtime --bench overhead [-- --threads 2] [--seconds S] [--no-ort]
//! cargo bench -p anekit-runtime --bench overhead -- [--threads 2] [--seconds S] --net NAME
//! ```
//!
//! `--net NAME` instead times network NAME of `target/bench-models/` (see the
//! `vs_onnxruntime` bench) alone on anekit, with nothing else running in the process: a
//! loop to look at with a sampling profiler (`perf record`); with `ANEKIT_BENCH_PROFILE=1`
//! it then prints the per-op profile of 200 predictions.
//!
//! A chain of `DEPTH` ops `y = add(y, y)` (an op whose input is read twice is neither fused
//! into its producer nor run in place, so every op is a step of its own with a fresh
//! output) over a tiny tensor, run as a model through [`Engine`] — input checks, the
//! input's conversion, the executor, the output's conversion: what a user's `predict` pays.
//! The same chain is written as ONNX (`benches/overhead_onnx.py`, `Add(y, y)`) and timed by
//! `scripts/ort_bench.py` with the session options of the `vs_onnxruntime` comparison.
//! Per op = (median at depth 201 − median at depth 1) / 200; per prediction = the median
//! at depth 1 (one op). Two shapes: `[1, 64]` (only fixed costs) and `[1, 16, 32, 32]`
//! (16 Ki elements, below the size where elementwise work is split over threads). ONNX
//! Runtime's time is measured in Python around `session.run`, so its per-prediction number
//! includes a few µs of Python; its per-op number does not.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anekit_mil::Opset;
use anekit_mil::model::Model;
use anekit_runtime::cpu::plan;
use anekit_runtime::{Engine, NamedTensors, npy};

mod common;
use common::root;

const DEPTHS: [usize; 2] = [1, 201];

fn python() -> PathBuf {
    anekit_testkit::Python::find("the ONNX Runtime overhead comparison")
        .map_or_else(|| PathBuf::from("python3"), |p| p.path().to_path_buf())
}

/// x → `add(y, y)` × `depth`, fp32 of `shape`, as MIL text.
fn chain(shape: &[u64], depth: usize) -> Model {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let ty = format!("tensor<fp32, [{}]>", dims.join(", "));
    let mut body = String::new();
    let mut prev = "x".to_string();
    for i in 0..depth {
        let _ = writeln!(
            body,
            "        {ty} a{i} = add(x = {prev}, y = {prev})[name = string(\"a{i}\")];"
        );
        prev = format!("a{i}");
    }
    let text = format!(
        "program(1.0)\n{{\n    func main<ios15>({ty} x) {{\n{body}    }} -> ({prev});\n}}\n"
    );
    let program = anekit_mil::text::parse_without_weights(&text, "chain").expect("chain parses");
    anekit_testkit::case::model_of(program, Opset::Ios15)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ms of `f` after warm-up: at least 50 runs and `seconds`.
fn time(seconds: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let mut v = Vec::new();
    let t0 = Instant::now();
    while v.len() < 50 || t0.elapsed() < Duration::from_secs_f64(seconds) {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(v)
}

/// ONNX Runtime's median ms for the chain in `dir` (made by overhead_onnx.py).
fn ort_ms(dir: &Path, threads: usize, runs: usize) -> Result<f64, String> {
    let out = Command::new(python())
        .arg(root().join("scripts/ort_bench.py"))
        .arg(dir.join("chain.onnx"))
        .arg("--input")
        .arg(format!("x={}", dir.join("x.npy").display()))
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--warmup")
        .arg("20")
        .arg("--runs")
        .arg(runs.to_string())
        .output()
        .map_err(|e| format!("ort_bench.py: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ort_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ort_bench.py output: {e}"))?;
    j["median_ms"]
        .as_f64()
        .ok_or_else(|| "ort_bench.py gave no median_ms".into())
}

/// Time bench network `name` on anekit alone for `seconds` (for a sampling profiler).
fn net_alone(name: &str, threads: usize, seconds: f64) {
    let dir = common::models_dir();
    let manifest = common::manifest(&dir).unwrap_or_else(|e| panic!("{e}"));
    let net = manifest["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no network {name} in the manifest"));
    let ndir = common::net_dir(&dir, net);
    let (loaded, inputs) = common::load_net(&Engine::new(), &ndir, net, threads)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let ms = time(seconds, || {
        std::hint::black_box(loaded.predict(&inputs).unwrap());
    });
    println!("{name}: {ms:.4} ms per prediction (median, {threads} threads, anekit alone)");
    if std::env::var_os("ANEKIT_BENCH_PROFILE").is_some() {
        anekit_runtime::cpu::exec::profile::collect(true);
        let n = 200;
        for _ in 0..n {
            loaded.predict(&inputs).unwrap();
        }
        anekit_runtime::cpu::exec::profile::collect(false);
        let rows = anekit_runtime::cpu::exec::profile::take();
        println!(
            "{}",
            anekit_runtime::cpu::exec::profile::render(&rows, n, 12)
        );
    }
}

fn main() {
    let mut threads = 2;
    let mut seconds = 1.0;
    let mut with_ort = true;
    let mut net = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => {}
            "--threads" => threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            "--no-ort" => with_ort = false,
            "--net" => net = Some(it.next().expect("--net NAME")),
            s => panic!("unknown argument {s}"),
        }
    }
    if let Some(name) = net {
        return net_alone(&name, threads, seconds);
    }
    let tmp = tempfile::tempdir().expect("temporary directory");
    let engine = Engine::new();
    println!("per-op and per-prediction fixed costs, {threads} threads each, chain of add(y, y)");
    println!(
        "{:<16} {:>14} {:>14} {:>14} {:>14}",
        "shape", "anekit µs/op", "ORT µs/op", "anekit µs/pred", "ORT µs/pred"
    );
    for shape in [vec![1u64, 64], vec![1, 16, 32, 32]] {
        let text = shape
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for depth in DEPTHS {
            let dir = tmp
                .path()
                .join(format!("{}_{depth}", text.replace(',', "x")));
            let st = Command::new(python())
                .arg(root().join("crates/anekit-runtime/benches/overhead_onnx.py"))
                .arg(&dir)
                .arg("--shape")
                .arg(&text)
                .arg("--depth")
                .arg(depth.to_string())
                .status()
                .expect("run overhead_onnx.py");
            assert!(st.success(), "overhead_onnx.py failed");
            let x = npy::read(dir.join("x.npy")).expect("x.npy");
            let inputs: NamedTensors = [("x".to_string(), x)].into();
            let model = chain(&shape, depth);
            let f = &model.require_program().unwrap().functions["main"];
            let steps = plan::compile("main", f).unwrap().main.steps.len();
            assert_eq!(steps, depth, "every add is a step of its own");
            let loaded = common::load_cpu(&engine, model, threads).expect("load the chain");
            ours.push(time(seconds, || {
                std::hint::black_box(loaded.predict(&inputs).unwrap());
            }));
            if with_ort {
                let runs = ((seconds * 1e3 / ours[ours.len() - 1]) as usize).clamp(50, 20_000);
                theirs.push(ort_ms(&dir, threads, runs).unwrap_or_else(|e| {
                    eprintln!("{e}");
                    f64::NAN
                }));
            } else {
                theirs.push(f64::NAN);
            }
        }
        let per_op = |v: &[f64]| (v[1] - v[0]) / (DEPTHS[1] - DEPTHS[0]) as f64 * 1e3;
        println!(
            "{:<16} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
            text.replace(',', "x"),
            per_op(&ours),
            per_op(&theirs),
            ours[0] * 1e3,
            theirs[0] * 1e3
        );
    }
}
