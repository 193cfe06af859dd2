//! Peak memory of one decode step of a big compressed model, against the package's size.
//!
//! ```text
//! .venv/bin/python scripts/make_memory_model.py        # once: target/memory-models/ (~1 B params)
//! cargo bench -p anekit-runtime --bench memory [-- DIR] [--threads T] [--no-reference]
//! ```
//!
//! For each `*.mlpackage` in DIR (default `target/memory-models`, or `$ANEKIT_MEMORY_MODELS`)
//! the bench runs itself once per package in a fresh process (so that each peak is its
//! own): load on the CPU backend (`Engine::load`, weights kept packed), one prediction with
//! token id 1, then report the peak resident set (`VmHWM` of /proc/self/status), the time
//! of load and prediction, and the package's size on disk. Then (unless `--no-reference`)
//! the same function is compiled with every weight decompressed at load
//! (`CompileOptions::unoptimized`) in another process, and the two outputs are compared
//! (max |packed − dense| / max |dense|): packing must not change the result.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anekit_mil::model::Model;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::plan::{self, CompileOptions};
use anekit_runtime::cpu::value::Value;
use anekit_runtime::cpu::{exec, tensor_to_value};
use anekit_runtime::{Engine, NamedTensors, Precision, Tensor, npy};

mod common;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                n += dir_size(&path);
            } else if let Ok(m) = e.metadata() {
                n += m.len();
            }
        }
    }
    n
}

fn ids() -> Tensor {
    Tensor::I32(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[1, 1]), vec![1]).unwrap())
}

/// One package in this process: prints one line `rss_kb load_s predict_s` and writes the
/// output to `out`.
fn child(pkg: &Path, out: &Path, reference: bool, threads: usize) {
    let t0 = Instant::now();
    let model = Model::open(pkg).expect("open");
    let result = if reference {
        let program = model.require_program().expect("program");
        let (name, f) = program.functions.iter().next().expect("a function");
        let p = plan::compile_with(name, f, CompileOptions::unoptimized()).expect("compile");
        let load = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let outs = pool.install(|| {
            let mut ctx = RunCtx {
                precision: Precision::Fp32,
                numerics: None,
                numerics_warnings: Vec::new(),
                state: None,
                consts: &p.consts,
                state_types: &p.state_types,
            };
            exec::run(
                &p.main,
                vec![tensor_to_value(&ids())],
                Vec::new(),
                &mut ctx,
                &mut exec::Meter::default(),
            )
            .expect("run")
        });
        let Value::F32(a) = outs.into_iter().next().expect("an output") else {
            panic!("float output expected")
        };
        (Tensor::F32(a), load, t1.elapsed().as_secs_f64())
    } else {
        let loaded = common::load_cpu(&Engine::new(), model, threads).expect("load");
        let load = t0.elapsed().as_secs_f64();
        let name = loaded.inputs()[0].name.clone();
        let inputs: NamedTensors = [(name, ids())].into();
        let t1 = Instant::now();
        let out = loaded.predict(&inputs).expect("predict");
        let t = t1.elapsed().as_secs_f64();
        (out.into_values().next().expect("an output"), load, t)
    };
    npy::write(out, &result.0).expect("write output");
    println!("{} {} {}", status_kb("VmHWM:"), result.1, result.2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::var_os("ANEKIT_MEMORY_MODELS").map(PathBuf::from);
    let mut threads = 2;
    let mut reference = true;
    let mut one: Option<(PathBuf, PathBuf, bool)> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--threads" => threads = args.next().unwrap().parse().unwrap(),
            "--no-reference" => reference = false,
            "--child" => {
                let pkg = PathBuf::from(args.next().unwrap());
                let out = PathBuf::from(args.next().unwrap());
                let r = args.next().unwrap() == "reference";
                one = Some((pkg, out, r));
            }
            s if s.starts_with("--") => panic!("unknown option {s}"),
            s => dir = Some(PathBuf::from(s)),
        }
    }
    if let Some((pkg, out, r)) = one {
        child(&pkg, &out, r, threads);
        return;
    }
    let dir = dir.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/memory-models")
    });
    let mut pkgs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            eprintln!(
                "memory: {}: {e}; run `.venv/bin/python scripts/make_memory_model.py` first",
                dir.display()
            );
            std::process::exit(2)
        })
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mlpackage"))
        .collect();
    pkgs.sort();
    let exe = std::env::current_exe().unwrap();
    let tmp = std::env::temp_dir().join(format!("anekit-memory-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    println!(
        "{:<22} {:>10} {:>12} {:>7} {:>9} {:>11} {:>16} {:>10}",
        "package",
        "size MB",
        "peak RSS MB",
        "RSS/size",
        "load s",
        "predict s",
        "dense peak MB",
        "rel diff"
    );
    let run = |pkg: &Path, out: &Path, mode: &str| -> (f64, f64, f64) {
        let o = Command::new(&exe)
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--child")
            .arg(pkg)
            .arg(out)
            .arg(mode)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            pkg.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let s = String::from_utf8_lossy(&o.stdout);
        let v: Vec<f64> = s
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        (v[0] / 1024.0, v[1], v[2])
    };
    for pkg in &pkgs {
        let name = pkg.file_stem().unwrap().to_string_lossy().to_string();
        let size = dir_size(pkg) as f64 / 1e6 * (1e6 / 1048576.0);
        let out = tmp.join(format!("{name}.npy"));
        let (rss, load, predict) = run(pkg, &out, "packed");
        let (dense, diff) = if reference {
            let rout = tmp.join(format!("{name}.ref.npy"));
            let (drss, _, _) = run(pkg, &rout, "reference");
            // The packed run returns the model's output type (fp16 for an fp16 model):
            // round the reference the same way.
            let a = npy::read(&out).unwrap();
            let b = npy::read(&rout).unwrap().cast(a.dtype());
            let d = a.deviation(&b).map(|d| d.relative()).unwrap_or(f64::NAN);
            (format!("{drss:.0}"), format!("{d:.1e}"))
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "{:<22} {:>10.0} {:>12.0} {:>7.2} {:>9.2} {:>11.3} {:>16} {:>10}",
            name,
            size,
            rss,
            rss / size,
            load,
            predict,
            dense,
            diff
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
