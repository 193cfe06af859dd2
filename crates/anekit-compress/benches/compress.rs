//! anekit-compress side by side with coremltools 9.0 on the same synthetic model.
//!
//! `cargo bench -p anekit-compress --bench compress` builds a ~50 M-parameter fp16 iOS18
//! model with coremltools (`scripts/compress_oracle.py synth`; `ANEKIT_BENCH_PARAMS_M`
//! changes the size), compresses it in every mode with `coremltools.optimize.coreml` and
//! with anekit (open + compress + save, all cores of the rayon pool), measures both
//! results' reconstruction error with coremltools' own decompression, and prints a table.
//! `ANEKIT_BENCH_MODES=int8,kmeans4g` runs a subset. Needs the venv of
//! scripts/setup-python.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anekit_compress::config::{
    Config, LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig, QuantGranularity,
    Selection,
};
use anekit_compress::{NoProgress, PaletteMode, PruneMethod, QuantDtype, QuantMode};
use anekit_mil::model::Model;
use serde_json::{Value as Json, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn oracle(py: &Path, args: &[&str]) -> Json {
    let out = Command::new(py)
        .arg(repo().join("scripts/compress_oracle.py"))
        .args(args)
        .output()
        .expect("running compress_oracle.py");
    assert!(
        out.status.success(),
        "compress_oracle {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

struct Mode {
    key: &'static str,
    label: &'static str,
    ct: Json,
    ours: Config,
}

fn pal(mode: PaletteMode, nbits: u8, group: Option<usize>) -> Config {
    Config {
        palettize: Some(Selection::global(PaletteConfig {
            mode,
            nbits: Some(nbits),
            granularity: group.map_or(
                PaletteGranularity::PerTensor,
                PaletteGranularity::PerGroupedChannel,
            ),
            ..PaletteConfig::default()
        })),
        ..Config::default()
    }
}

fn quant(dtype: QuantDtype, granularity: QuantGranularity) -> Config {
    Config {
        quantize: Some(Selection::global(LinearConfig {
            dtype,
            mode: QuantMode::LinearSymmetric,
            granularity,
            ..LinearConfig::default()
        })),
        ..Config::default()
    }
}

fn prune(method: PruneMethod) -> Config {
    Config {
        prune: Some(Selection::global(PruneConfig {
            method,
            weight_threshold: 2048,
        })),
        ..Config::default()
    }
}

fn modes() -> Vec<Mode> {
    vec![
        Mode {
            key: "int8",
            label: "linear int8 per-channel",
            ct: json!([{"kind": "linear", "global": {}}]),
            ours: quant(QuantDtype::Int8, QuantGranularity::PerChannel),
        },
        Mode {
            key: "int4b",
            label: "linear int4 per-block 32",
            ct: json!([{"kind": "linear", "global": {"dtype": "int4", "granularity": "per_block", "block_size": 32}}]),
            ours: quant(QuantDtype::Int4, QuantGranularity::PerBlock(32)),
        },
        Mode {
            key: "kmeans4",
            label: "kmeans 4-bit per-tensor",
            ct: json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4}}]),
            ours: pal(PaletteMode::Kmeans, 4, None),
        },
        Mode {
            key: "kmeans4g",
            label: "kmeans 4-bit grouped 16",
            ct: json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4, "granularity": "per_grouped_channel", "group_size": 16}}]),
            ours: pal(PaletteMode::Kmeans, 4, Some(16)),
        },
        Mode {
            key: "kmeans8",
            label: "kmeans 8-bit per-tensor",
            ct: json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 8}}]),
            ours: pal(PaletteMode::Kmeans, 8, None),
        },
        Mode {
            key: "uniform4",
            label: "uniform 4-bit per-tensor",
            ct: json!([{"kind": "palettize", "global": {"mode": "uniform", "nbits": 4}}]),
            ours: pal(PaletteMode::Uniform, 4, None),
        },
        Mode {
            key: "prune50",
            label: "magnitude pruning 50%",
            ct: json!([{"kind": "prune", "global": {"target_sparsity": 0.5}}]),
            ours: prune(PruneMethod::Magnitude {
                target_sparsity: 0.5,
                block_size: None,
                dim: 0,
            }),
        },
        Mode {
            key: "prune24",
            label: "n:m pruning 2:4",
            ct: json!([{"kind": "prune", "global": {"n_m_ratio": [2, 4]}}]),
            ours: prune(PruneMethod::NOfM { n: 2, m: 4, dim: 1 }),
        },
    ]
}

fn snr(res: &Json) -> f64 {
    let (mut sse, mut sq) = (0.0, 0.0);
    for w in res["weights"].as_object().unwrap().values() {
        sse += w["sse"].as_f64().unwrap();
        sq += w["sum_sq"].as_f64().unwrap();
    }
    if sse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (sq / sse).log10()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let py = std::env::var_os("ANEKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    if !py.exists() {
        eprintln!(
            "compress bench: {} not found (run scripts/setup-python.sh)",
            py.display()
        );
        return;
    }
    let params: f64 = std::env::var("ANEKIT_BENCH_PARAMS_M")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50.0);
    let only: Option<Vec<String>> = std::env::var("ANEKIT_BENCH_MODES")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("synth.mlpackage");
    let made = oracle(&py, &["synth", src.to_str().unwrap(), &params.to_string()]);
    let threads = rayon::current_num_threads();
    eprintln!("synthetic model: {made}; rayon threads: {threads}");
    let modes: Vec<Mode> = modes()
        .into_iter()
        .filter(|m| only.as_ref().is_none_or(|o| o.iter().any(|k| k == m.key)))
        .collect();
    // coremltools, all modes in one process.
    let jobs: Vec<Json> = modes
        .iter()
        .map(|m| json!({"src": src, "out": tmp.path().join(format!("ct_{}.mlpackage", m.key)), "stages": m.ct}))
        .collect();
    let jf = tmp.path().join("jobs.json");
    std::fs::write(&jf, serde_json::to_vec(&jobs).unwrap()).unwrap();
    eprintln!("running coremltools ({} modes)…", modes.len());
    let ct = oracle(&py, &["compress", jf.to_str().unwrap()]);
    // anekit.
    let mut ours = Vec::new();
    for m in &modes {
        let out = tmp.path().join(format!("ak_{}.mlpackage", m.key));
        let t0 = Instant::now();
        let mut model = Model::open(&src).unwrap();
        let t1 = Instant::now();
        let report = anekit_compress::compress_model(&mut model, &m.ours, &NoProgress).unwrap();
        let t2 = Instant::now();
        model.save_mlpackage(&out).unwrap();
        let total = t0.elapsed().as_secs_f64();
        ours.push((out, total, (t2 - t1).as_secs_f64(), report.weights.len()));
        eprintln!("anekit {}: {total:.3} s", m.key);
    }
    // Errors, measured by coremltools' decompression for both.
    let err_jobs: Vec<Json> = modes
        .iter()
        .zip(&ours)
        .map(|(m, o)| {
            json!({"src": src, "pkgs": [tmp.path().join(format!("ct_{}.mlpackage", m.key)), o.0]})
        })
        .collect();
    std::fs::write(&jf, serde_json::to_vec(&err_jobs).unwrap()).unwrap();
    eprintln!("measuring errors…");
    let errs = oracle(&py, &["error", jf.to_str().unwrap()]);
    println!(
        "\n{:.0} M parameters (fp16, iOS18), {threads} threads; times are open + compress + save\n",
        params
    );
    println!(
        "| mode | coremltools 9.0 | anekit | of which compress | speed-up | SNR coremltools | SNR anekit |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, m) in modes.iter().enumerate() {
        let r = &ct["results"][i];
        let (_, total, core, n) = &ours[i];
        let fmt_snr = |v: f64| {
            if v.is_infinite() {
                "exact".to_string()
            } else {
                format!("{v:.2} dB")
            }
        };
        let (c_snr, a_snr) = (
            snr(&errs["results"][2 * i]),
            snr(&errs["results"][2 * i + 1]),
        );
        match r["seconds"].as_f64() {
            Some(cs) => println!(
                "| {} | {cs:.2} s | {total:.2} s | {core:.2} s | {:.1}× | {} | {} |",
                m.label,
                cs / total,
                fmt_snr(c_snr),
                fmt_snr(a_snr)
            ),
            None => println!(
                "| {} | failed: {} | {total:.2} s | {core:.2} s | | | {} |",
                m.label,
                r["error"],
                fmt_snr(a_snr)
            ),
        }
        assert!(*n > 0);
    }
}
