//! The whole `anekit compress` command, accuracy check included, side by side with
//! coremltools 9.0 doing the same compression without any check.
//!
//! ```text
//! .venv/bin/python scripts/make_bench_models.py --only bert_base_fp16   # once
//! cargo bench -p anekit-cli --bench compress_cli [-- --runs N]
//! ```
//!
//! The model is `target/bench-models/bert_base_fp16/model.mlpackage` (or
//! `$ANEKIT_BENCH_MODELS/bert_base_fp16`): a BERT-base-sized encoder (12 layers, d 768, FFN
//! 3072, 128 tokens, ~85 M parameters) converted by coremltools with fp16 compute precision,
//! as shipped packages are. The compression is 4-bit k-means palettization per grouped
//! channel (groups of 16), the setting of issue 12's target.
//!
//! - anekit: `anekit compress MODEL -o OUT --palettize 4 --group-size 16 -i x=INPUT.npy
//!   --json`, the wall time of the whole process: start, open, compress, write, and the
//!   default accuracy check (the original and the written package run on the CPU backend,
//!   every output's SNR). The same command with `--no-eval` is shown beside it, so the check's
//!   own cost is visible.
//! - coremltools: `ct.models.MLModel(src, skip_model_load=True)` →
//!   `ct.optimize.coreml.palettize_weights` (`OpPalettizerConfig(mode="kmeans", nbits=4,
//!   granularity="per_grouped_channel", group_size=16)`) → `save`, timed inside Python
//!   (`scripts/compress_oracle.py compress`), so its interpreter start and imports (a few
//!   seconds) are NOT counted: the comparison favours coremltools.
//!
//! Runs alternate (coremltools, anekit, anekit --no-eval; `--runs` rounds, default 3) and the
//! table shows the medians. The interpreter is `$ANEKIT_PYTHON`, else `.venv/bin/python`;
//! `$ANEKIT_BIN` names another `anekit` binary than the one Cargo built with the bench.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value as Json, json};

/// The repository: where Cargo built this bench, else (a binary carried to another machine,
/// scripts/bench_remote.sh) the current directory.
fn repo() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("scripts").is_dir() {
        built
    } else {
        PathBuf::from(".")
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One `anekit compress` process: its wall time and its JSON report.
fn anekit(src: &Path, input: &Path, out: &Path, eval: bool) -> (f64, Json) {
    let _ = std::fs::remove_dir_all(out);
    let bin = std::env::var_os("ANEKIT_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_anekit")),
        PathBuf::from,
    );
    let mut cmd = Command::new(bin);
    cmd.arg("compress")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--palettize", "4", "--group-size", "16", "--json", "-i"])
        .arg(format!("x={}", input.display()));
    if !eval {
        cmd.arg("--no-eval");
    }
    let t0 = Instant::now();
    let o = cmd.output().expect("running anekit");
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "anekit compress failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        secs,
        serde_json::from_slice(&o.stdout).expect("anekit --json"),
    )
}

/// One coremltools compression in a fresh interpreter: load + palettize + save seconds.
fn coremltools(py: &Path, src: &Path, out: &Path, dir: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(out);
    let job = json!([{
        "src": src,
        "out": out,
        "stages": [{"kind": "palettize", "global": {
            "mode": "kmeans", "nbits": 4, "granularity": "per_grouped_channel", "group_size": 16
        }}],
    }]);
    let jf = dir.join("jobs.json");
    std::fs::write(&jf, serde_json::to_vec(&job).unwrap()).unwrap();
    let o = Command::new(py)
        .arg(repo().join("scripts/compress_oracle.py"))
        .arg("compress")
        .arg(&jf)
        .output()
        .expect("running compress_oracle.py");
    assert!(
        o.status.success(),
        "compress_oracle.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Json = serde_json::from_slice(&o.stdout).unwrap();
    let r = &r["results"][0];
    assert!(
        r["ok"].as_bool() == Some(true),
        "coremltools: {}",
        r["error"]
    );
    r["total_seconds"].as_f64().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let py = std::env::var_os("ANEKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    let models = std::env::var_os("ANEKIT_BENCH_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/bench-models"));
    let dir = models.join("bert_base_fp16");
    let src = dir.join("model.mlpackage");
    let input = dir.join("inputs/x.npy");
    // `python3` and the like name a command on PATH, not a file here.
    let py_missing = py.components().count() > 1 && !py.exists();
    if !src.is_dir() || py_missing {
        eprintln!(
            "compress_cli bench: needs {} and {} (scripts/setup-python.sh --with-torch, then \
             scripts/make_bench_models.py --only bert_base_fp16)",
            src.display(),
            py.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ak_out, ct_out) = (
        tmp.path().join("ak.mlpackage"),
        tmp.path().join("ct.mlpackage"),
    );
    let (mut ct, mut ak, mut ak_no_eval) = (Vec::new(), Vec::new(), Vec::new());
    let mut report = Json::Null;
    for i in 0..runs {
        ct.push(coremltools(&py, &src, &ct_out, tmp.path()));
        let (s, r) = anekit(&src, &input, &ak_out, true);
        ak.push(s);
        report = r;
        ak_no_eval.push(anekit(&src, &input, &ak_out, false).0);
        eprintln!(
            "round {}/{runs}: coremltools {:.2} s, anekit {:.2} s, anekit --no-eval {:.2} s",
            i + 1,
            ct[i],
            ak[i],
            ak_no_eval[i]
        );
    }
    let (c, a, n) = (median(&mut ct), median(&mut ak), median(&mut ak_no_eval));
    let snr = report["outputs"][0]["snr_db"]
        .as_f64()
        .map_or("exact".into(), |v| format!("{v:.1} dB"));
    let mb = |k: &str| report[k].as_f64().unwrap_or(0.0) / 1e6;
    println!(
        "\nBERT-base-sized fp16 package ({:.0} MB → {:.0} MB), kmeans 4-bit grouped 16, medians of {runs} \
         rounds, {} cores\n",
        mb("size_before"),
        mb("size_after"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| coremltools 9.0 (load+compress+save) | anekit compress (whole command, with check) | speed-up | anekit --no-eval | speed-up | check's SNR |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {c:.2} s | {a:.2} s | {:.1}× | {n:.2} s | {:.1}× | {snr} |",
        c / a,
        c / n
    );
}
