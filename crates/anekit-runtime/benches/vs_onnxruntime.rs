//! anekit's CPU backend against ONNX Runtime on the same networks, at the same thread count.
//!
//! ```text
//! scripts/setup-python.sh --with-torch                 # once: .venv with torch, coremltools, onnxruntime
//! .venv/bin/python scripts/make_bench_models.py        # once: target/bench-models/ (Core ML + ONNX)
//! cargo bench -p anekit-runtime --bench vs_onnxruntime [-- FILTER ...] [--threads 2] [--runs N]
//!       [--warmup N] [--block K] [--seconds S] [--profile] [--profile-top N] [--json FILE]
//! ```
//!
//! For each network of `target/bench-models/manifest.json` (or `$ANEKIT_BENCH_MODELS`): the
//! Core ML package is loaded on anekit's CPU backend (`LoadOptions { threads: Some(T) }`)
//! and the ONNX file in ONNX Runtime through `scripts/ort_bench.py --serve` (Python
//! `onnxruntime`, `intra_op_num_threads = T`, `inter_op_num_threads = 1`, default graph
//! optimizations; the interpreter is `$ANEKIT_PYTHON`, else `.venv/bin/python`, else
//! `python3`). anekit's output is checked against ONNX Runtime's (relative difference
//! max |anekit − ORT| / max |ORT|). After warm-up the two are timed alternately, one
//! prediction each (A B A B ...), so machine noise hits both alike; the table shows the
//! medians, their ratio and the geometric mean of the ratios. ORT's time is measured inside
//! Python around `session.run` only; anekit's around `LoadedModel::predict`.
//!
//! Peak RSS is reported for both: anekit's process peak since the network's load (the
//! peak is reset through Linux `/proc/self/clear_refs` before each network) and the peak of
//! ORT's own Python process (one per network).
//!
//! `--block K` alternates in blocks of K predictions (A×K B×K ...) instead of one by one:
//! ONNX Runtime's worker threads spin for a while after each of its runs (its thread pool's
//! default `allow_spinning`), so on a machine with as many cores as threads the prediction
//! right after one of its runs competes with those spinning threads; with blocks only the
//! first of each K pays that (`--block 5` is what docs/runtime.md's tables use).
//!
//! `--runs 0` (default) times pairs until `--seconds` (default 3 s per network, both engines
//! together) have passed, at least 15 and at most 1000 pairs; `--warmup` (default 3) pairs
//! run first, untimed. `--profile`
//! prints anekit's per-op time table (see `cpu::exec::profile`) for each network after its
//! timing (`--profile-top N`: with the N slowest ops, default 25). `--json FILE` writes the
//! results.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anekit_runtime::cpu::exec::profile;
use anekit_runtime::{Engine, Tensor, npy};
use serde_json::{Value as Json, json};

mod common;
use common::root;

/// Fewest and most timed pairs with `--runs 0`.
const MIN_RUNS: usize = 15;
const MAX_RUNS: usize = 1000;

struct Opts {
    filters: Vec<String>,
    threads: usize,
    runs: usize,
    warmup: usize,
    block: usize,
    seconds: f64,
    profile: bool,
    profile_top: usize,
    json: Option<PathBuf>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        filters: Vec::new(),
        threads: 2,
        runs: 0,
        warmup: 3,
        block: 1,
        seconds: 3.0,
        profile: false,
        profile_top: 25,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--bench" => {}
            "--threads" => o.threads = val("--threads").parse().expect("--threads N"),
            "--runs" => o.runs = val("--runs").parse().expect("--runs N"),
            "--warmup" => o.warmup = val("--warmup").parse().expect("--warmup N"),
            "--block" => {
                o.block = val("--block").parse().expect("--block N");
                o.block = o.block.max(1);
            }
            "--seconds" => o.seconds = val("--seconds").parse().expect("--seconds S"),
            "--json" => o.json = Some(PathBuf::from(val("--json"))),
            "--profile" => o.profile = true,
            "--profile-top" => {
                o.profile = true;
                o.profile_top = val("--profile-top").parse().expect("--profile-top N");
            }
            s if s.starts_with("--") => panic!("unknown option {s}"),
            s => o.filters.push(s.to_string()),
        }
    }
    o
}

/// The oracle venv's interpreter (the test kit's rule), else `python3` from PATH.
fn python() -> PathBuf {
    anekit_testkit::Python::find("the ONNX Runtime comparison")
        .map_or_else(|| PathBuf::from("python3"), |p| p.path().to_path_buf())
}

/// One `scripts/ort_bench.py --serve` process.
struct Ort {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    info: Json,
}

impl Ort {
    fn start(dir: &Path, net: &Json, threads: usize) -> Result<Self, String> {
        let mut cmd = Command::new(python());
        cmd.arg(root().join("scripts/ort_bench.py"))
            .arg(dir.join(net["onnx"].as_str().unwrap_or("model.onnx")))
            .arg("--serve")
            .arg("--threads")
            .arg(threads.to_string());
        for (name, spec) in net["inputs"].as_object().into_iter().flatten() {
            let file = spec["file"].as_str().unwrap_or_default();
            cmd.arg("--input")
                .arg(format!("{name}={}", dir.join(file).display()));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", python().display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("ort_bench.py: {e}"))?;
        let info: Json = serde_json::from_str(&line)
            .map_err(|e| format!("ort_bench.py did not start ({e}): {line:?}"))?;
        Ok(Self {
            child,
            stdin,
            stdout,
            info,
        })
    }

    fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("write to ort_bench.py");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read ort_bench.py");
        line.trim().to_string()
    }

    /// One timed `session.run`.
    fn run(&mut self) -> Duration {
        let s = self.ask("run");
        Duration::from_secs_f64(
            s.parse()
                .unwrap_or_else(|_| panic!("ort_bench.py answered {s:?}")),
        )
    }
}

impl Drop for Ort {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f32(), b.to_f32());
    if a.shape() != b.shape() {
        return f64::INFINITY;
    }
    let (mut err, mut m) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b.iter()) {
        err = err.max((f64::from(*x) - f64::from(*y)).abs());
        m = m.max(f64::from(*y).abs());
    }
    err / m.max(f64::MIN_POSITIVE)
}

/// Minor page faults of this process so far (Linux: /proc/self/stat field 10).
fn minor_faults() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    rest.split(' ').nth(7)?.parse().ok()
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.1} G", x / 1e9),
        x if x >= 1e6 => format!("{:.1} M", x / 1e6),
        x if x >= 1e3 => format!("{:.1} k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

struct Row {
    name: String,
    /// p10 and p90 of anekit's and ORT's times, ms.
    spread: [f64; 4],
    params: f64,
    flops: f64,
    anekit_ms: f64,
    ort_ms: f64,
    runs: usize,
    diff: f64,
    /// Peak RSS of anekit (this process, since the network's load) and of ORT's process, MB.
    rss: [f64; 2],
}

/// This process's peak resident set (VmHWM, kB), on Linux.
fn peak_rss_kb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Reset the peak resident set to the current one (Linux `clear_refs` 5), so that each
/// network's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn bench_one(dir: &Path, net: &Json, o: &Opts, engine: &Engine) -> Result<Row, String> {
    let name = net["name"].as_str().unwrap_or("?").to_string();
    reset_peak_rss();
    let (loaded, inputs) = common::load_net(engine, dir, net, o.threads)?;
    // Correctness first: anekit's outputs against ONNX Runtime's.
    let out = loaded
        .predict(&inputs)
        .map_err(|e| format!("predict: {e}"))?;
    let mut diff = 0f64;
    for oname in net["outputs"].as_array().into_iter().flatten() {
        let oname = oname.as_str().unwrap_or_default();
        let reference = npy::read(dir.join("ort").join(format!("{oname}.npy")))
            .map_err(|e| format!("ORT output {oname}: {e}"))?;
        let got = out
            .get(oname)
            .ok_or_else(|| format!("anekit gave no output {oname}"))?;
        diff = diff.max(rel_diff(got, &reference));
    }

    let mut ort = Ort::start(dir, net, o.threads)?;
    for _ in 0..o.warmup {
        loaded.predict(&inputs).map_err(|e| e.to_string())?;
        ort.run();
    }
    // Timed pairs, alternating: a fixed count, or until the time budget is spent.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    loop {
        for _ in 0..o.block {
            let t = Instant::now();
            let r = loaded.predict(&inputs).map_err(|e| e.to_string())?;
            a.push(t.elapsed().as_secs_f64() * 1e3);
            drop(r);
        }
        for _ in 0..o.block {
            b.push(ort.run().as_secs_f64() * 1e3);
        }
        let n = a.len();
        let done = if o.runs > 0 {
            n >= o.runs
        } else {
            n >= MAX_RUNS || (n >= MIN_RUNS && t0.elapsed().as_secs_f64() >= o.seconds)
        };
        if done {
            break;
        }
    }
    let runs = a.len();
    let rss = [
        peak_rss_kb() / 1024.0,
        ort.ask("rss").parse::<f64>().unwrap_or(f64::NAN) / 1024.0,
    ];
    if o.profile {
        let n = runs.clamp(1, 20);
        profile::collect(true);
        let faults0 = minor_faults();
        for _ in 0..n {
            loaded.predict(&inputs).map_err(|e| e.to_string())?;
        }
        let faults = minor_faults()
            .zip(faults0)
            .map(|(f1, f0)| (f1 - f0) / n as u64);
        profile::collect(false);
        let rows = profile::take();
        println!(
            "\n--- {name}: anekit per-op time (mean of {n} predictions, profiling on; \
             minor page faults per prediction: {}) ---\n{}",
            faults.map_or("?".to_string(), |f| f.to_string()),
            profile::render(&rows, n as u64, o.profile_top)
        );
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let spread = [
        pct(&mut a, 0.1),
        pct(&mut a, 0.9),
        pct(&mut b, 0.1),
        pct(&mut b, 0.9),
    ];
    Ok(Row {
        name,
        spread,
        params: net["params"].as_f64().unwrap_or(0.0),
        flops: net["flops"].as_f64().unwrap_or(0.0),
        anekit_ms: median(&mut a),
        ort_ms: median(&mut b),
        runs,
        diff,
        rss,
    })
}

fn main() {
    let o = parse_args();
    let dir = common::models_dir();
    let manifest = common::manifest(&dir).unwrap_or_else(|e| {
        eprintln!("vs_onnxruntime: {e}");
        std::process::exit(2);
    });
    let engine = Engine::new();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut ort_info = Json::Null;
    for net in manifest["networks"].as_array().into_iter().flatten() {
        let name = net["name"].as_str().unwrap_or("?");
        if !o.filters.is_empty() && !o.filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let ndir = common::net_dir(&dir, net);
        if ort_info.is_null()
            && let Ok(ort) = Ort::start(&ndir, net, o.threads)
        {
            ort_info = ort.info.clone();
        }
        eprint!("vs_onnxruntime: {name} ... ");
        match bench_one(&ndir, net, &o, &engine) {
            Ok(r) => {
                eprintln!(
                    "{:.3} ms vs {:.3} ms ({} runs)",
                    r.anekit_ms, r.ort_ms, r.runs
                );
                rows.push(r);
            }
            Err(e) => {
                eprintln!("failed: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    let geo = if rows.is_empty() {
        f64::NAN
    } else {
        (rows
            .iter()
            .map(|r| (r.anekit_ms / r.ort_ms).ln())
            .sum::<f64>()
            / rows.len() as f64)
            .exp()
    };
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "\nanekit CPU backend vs ONNX Runtime {} — {} threads each; {}; {} cores visible; {}",
        ort_info["onnxruntime"].as_str().unwrap_or("?"),
        o.threads,
        cpu_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        date
    );
    println!(
        "{:<20} {:>9} {:>9} {:>11} {:>11} {:>7} {:>6} {:>10} {:>11} {:>9}",
        "model",
        "params",
        "FLOPs",
        "anekit ms",
        "ORT ms",
        "ratio",
        "runs",
        "rel diff",
        "anekit RSS",
        "ORT RSS"
    );
    for r in &rows {
        println!(
            "{:<20} {:>9} {:>9} {:>11.3} {:>11.3} {:>7.2} {:>6} {:>10.1e} {:>8.0} MB {:>6.0} MB",
            r.name,
            si(r.params),
            si(r.flops),
            r.anekit_ms,
            r.ort_ms,
            r.anekit_ms / r.ort_ms,
            r.runs,
            r.diff,
            r.rss[0],
            r.rss[1]
        );
    }
    println!(
        "geometric mean of anekit/ORT over {} models: {geo:.2}",
        rows.len()
    );
    if let Some(path) = &o.json {
        let j = json!({
            "threads": o.threads,
            "cpu": cpu_name(),
            "date": date,
            "onnxruntime": ort_info,
            "geomean_ratio": geo,
            "models": rows.iter().map(|r| json!({
                "name": r.name, "params": r.params, "flops": r.flops,
                "anekit_median_ms": r.anekit_ms, "ort_median_ms": r.ort_ms,
                "ratio": r.anekit_ms / r.ort_ms, "runs": r.runs, "rel_diff_vs_ort": r.diff,
                "anekit_p10_ms": r.spread[0], "anekit_p90_ms": r.spread[1],
                "ort_p10_ms": r.spread[2], "ort_p90_ms": r.spread[3],
                "anekit_peak_rss_mb": r.rss[0], "ort_peak_rss_mb": r.rss[1],
            })).collect::<Vec<_>>(),
            "failures": failures,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j).unwrap() + "\n")
            .expect("write --json");
    }
    if !failures.is_empty() {
        eprintln!("{} failed:\n  {}", failures.len(), failures.join("\n  "));
        std::process::exit(1);
    }
}
