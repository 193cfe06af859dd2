//! `anekit compress` end to end: the fp16 compute-precision stage (`--fp16`, `fp16 = true`),
//! alone and followed by weight compression.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anekit_mil::model::Model;
use anekit_mil::{DataType, Program};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn anekit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The element types of every op output of the main function (nested blocks included).
fn output_dtypes(p: &Program) -> Vec<(String, DataType)> {
    let mut v = Vec::new();
    p.functions["main"].block().unwrap().visit_ops(&mut |op| {
        for o in &op.outputs {
            if let Some(t) = o.ty.as_tensor() {
                v.push((op.op_type.clone(), t.dtype));
            }
        }
    });
    v
}

fn open_valid(p: &Path) -> Model {
    let m = Model::open(p).unwrap();
    if let Err(d) = anekit_mil::validate::validate(m.program.as_ref().unwrap()) {
        panic!("{} does not validate: {d:?}", p.display());
    }
    m
}

#[test]
fn fp16_converts_and_reports_ops_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mlpackage");
    let stdout = ok(&anekit(&[
        "compress",
        "fixtures/models/mlp_fp32_ios15.mlpackage",
        "--fp16",
        "-o",
        out.to_str().unwrap(),
    ]));
    assert!(
        stdout.contains("fp16: 7 ops converted to fp16 compute precision"),
        "{stdout}"
    );
    assert!(stdout.contains("package: "), "{stdout}");
    assert!(stdout.contains("fp16 precision"), "{stdout}");
    let m = open_valid(&out);
    let p = m.program.as_ref().unwrap();
    let dtypes = output_dtypes(p);
    for (op, d) in &dtypes {
        if matches!(op.as_str(), "linear" | "layer_norm" | "gelu" | "softmax") {
            assert_eq!(*d, DataType::Fp16, "{op}");
        }
    }
    // the interface is unchanged: fp32 in, fp32 out, same names
    let f = &p.functions["main"];
    assert_eq!(f.inputs[0].name, "x");
    assert_eq!(f.block().unwrap().outputs, ["y"]);

    // --json: the same, as data
    let out2 = dir.path().join("x2.mlpackage");
    let stdout = ok(&anekit(&[
        "compress",
        "fixtures/models/mlp_fp32_ios15.mlpackage",
        "--fp16",
        "-o",
        out2.to_str().unwrap(),
        "--json",
    ]));
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["compression"]["fp16_ops"], 7);
    assert_eq!(r["compression"]["fp16"]["ops"], 7);
    let (before, after) = (
        r["compression"]["fp16"]["weight_bytes_before"]
            .as_u64()
            .unwrap(),
        r["compression"]["fp16"]["weight_bytes_after"]
            .as_u64()
            .unwrap(),
    );
    assert!(after * 2 <= before + 64, "{before} → {after}");
    assert!(r["size_after"].as_u64().unwrap() < r["size_before"].as_u64().unwrap());
    // fp16 against the fp32 model on the CPU backend
    assert!(r["outputs"][0]["snr_db"].as_f64().unwrap() > 50.0, "{r}");
}

#[test]
fn fp16_then_quantization_and_palettization() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, constexpr, min_snr) in [
        (
            &["--quantize", "int8"][..],
            "constexpr_affine_dequantize",
            35.0,
        ),
        (&["--palettize", "4"][..], "constexpr_lut_to_dense", 15.0),
    ] {
        let out = dir.path().join(format!("{constexpr}.mlpackage"));
        let mut args = vec![
            "compress",
            "fixtures/models/two_io_fp32_ios16.mlpackage",
            "--fp16",
            "--weight-threshold",
            "10",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let r: serde_json::Value = serde_json::from_str(&ok(&anekit(&args))).unwrap();
        assert_eq!(r["compression"]["fp16"]["ops"], 7, "{extra:?}");
        let weights = r["compression"]["weights"].as_array().unwrap();
        assert_eq!(weights.len(), 2, "{extra:?}: {r}");
        for w in weights {
            // the stage after fp16 compressed the fp16 weights
            assert_eq!(w["dtype"], "fp16", "{w}");
            assert!(w["name"].as_str().unwrap().ends_with("_to_fp16"), "{w}");
        }
        for o in r["outputs"].as_array().unwrap() {
            assert!(o["snr_db"].as_f64().unwrap() > min_snr, "{extra:?}: {o}");
        }
        let m = open_valid(&out);
        let dtypes = output_dtypes(m.program.as_ref().unwrap());
        assert!(
            dtypes
                .iter()
                .any(|(op, d)| op == constexpr && *d == DataType::Fp16),
            "{extra:?}: {dtypes:?}"
        );
        assert!(
            dtypes
                .iter()
                .filter(|(op, _)| op == "linear")
                .all(|(_, d)| *d == DataType::Fp16)
        );
    }
}

#[test]
fn fp16_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "fp16 = true\n").unwrap();
    let out = dir.path().join("c.mlpackage");
    let stdout = ok(&anekit(&[
        "compress",
        "fixtures/models/control_flow_fp32_ios17.mlpackage",
        "--config",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]));
    assert!(stdout.contains("fp16: 8 ops converted"), "{stdout}");
    open_valid(&out);
}

/// The flags are decided by `anekit_compress::Flags::resolve`: `--block-size` alone means
/// per-block quantization, `--group-size` alone grouped palettization, and contradictions
/// are errors naming the flags.
#[test]
fn flags_are_resolved_by_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mlpackage");
    let out = out.to_str().unwrap();
    let src = "fixtures/models/mlp_big_fp16_ios18.mlpackage";
    let stages = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["compress", src, "-o", out, "--json", "--no-eval"];
        args.extend(extra);
        let json: serde_json::Value = serde_json::from_str(&ok(&anekit(&args))).unwrap();
        let _ = std::fs::remove_dir_all(out);
        json["compression"]["weights"][0]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        stages(&["--quantize", "int4", "--block-size", "16"]),
        ["quantize int4 linear_symmetric per_block(16)"]
    );
    assert_eq!(
        stages(&["--palettize", "4", "--group-size", "16"]),
        ["palettize kmeans 4-bit per_grouped_channel(16)"]
    );
    assert_eq!(
        stages(&["--palettize", "4", "--quantize", "int8"]),
        [
            "palettize kmeans 4-bit per_tensor",
            "quantize int8 linear_symmetric per_tensor (LUT)"
        ]
    );
    for (args, needle) in [
        (
            &[
                "--palettize",
                "4",
                "--quantize",
                "int8",
                "--granularity",
                "per-channel",
            ][..],
            "quantizes the LUT",
        ),
        (
            &["--quantize", "int8", "--granularity", "per-row"][..],
            "per-row",
        ),
        (&["--prune-nm", "2-4"][..], "N:M"),
        (
            &["--prune-dim", "1", "--quantize", "int8"][..],
            "--prune-dim",
        ),
        (&["--group-size", "8"][..], "--palettize"),
    ] {
        let mut all = vec!["compress", src, "-o", out, "--no-eval"];
        all.extend(args);
        let o = anekit(&all);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
