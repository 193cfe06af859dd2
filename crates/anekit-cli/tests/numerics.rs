//! `anekit run --precision fp16 --chip CHIP`: the chip's Neural Engine cliffs come from the
//! catalog and the run names the first op where the engine would silently go wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::text::parse_without_weights;
use anekit_runtime::{ElementType, Tensor};

fn anekit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .output()
        .unwrap()
}

/// x[1, 8] → y = x · ones[8, 16] (every output the row sum) → s = y[..., 1:] (a slice at a
/// non-zero last-axis offset) → z = s + 0.
fn write_model(dir: &Path) -> PathBuf {
    let ones = vec!["1"; 128].join(", ");
    let text = format!(
        r#"program(1.3)
[buildInfo = dict<string, string>({{}})]
{{
  func main<ios17>(tensor<fp16, [1, 8]> x) {{
    tensor<fp16, [8, 16]> w = const()[name = string("w"), val = tensor<fp16, [8, 16]>([{ones}])];
    tensor<fp16, [1, 16]> y = matmul(x = x, y = w, transpose_x = bool(false), transpose_y = bool(false))[name = string("y")];
    tensor<fp16, [1, 15]> s = slice_by_index(x = y, begin = tensor<int32, [2]>([0, 1]), end = tensor<int32, [2]>([1, 16]))[name = string("s")];
    tensor<fp16, [1, 15]> z = add(x = s, y = fp16(0))[name = string("z")];
  }} -> (z);
}}
"#
    );
    let program = parse_without_weights(&text, "numerics.mil").unwrap();
    let m = Model::from_program(
        proto::Model {
            specification_version: 8,
            ..Default::default()
        },
        program,
    );
    m.save_mlpackage(dir.join("cliffs.mlpackage")).unwrap()
}

fn write_input(dir: &Path, name: &str, total: f32) -> String {
    let p = dir.join(name);
    let x = Tensor::f32(&[1, 8], vec![total / 8.0; 8])
        .unwrap()
        .cast(ElementType::F16);
    anekit_runtime::npy::write(&p, &x).unwrap();
    format!("x={}", p.display())
}

#[test]
fn run_names_the_first_op_past_a_chip_cliff() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path());
    let model = model.to_str().unwrap();

    // 5000 per output: below the matmul cliff everywhere; above the M1's slice clamp (4094).
    let x = write_input(dir.path(), "x5000.npy", 5000.0);
    let o = anekit(&[
        "run",
        model,
        "--input",
        &x,
        "--precision",
        "fp16",
        "--chip",
        "M1",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"s\"")
            && err.contains("slice_by_index")
            && err.contains("M1")
            && err.contains("4094"),
        "{err}"
    );
    // The M4 has no clamp; plain fp16 has none either.
    for extra in [&["--chip", "M4"][..], &[][..]] {
        let mut args = vec!["run", model, "--input", &x, "--precision", "fp16", "--json"];
        args.extend_from_slice(extra);
        let o = anekit(&args);
        assert!(
            o.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["outputs"][0]["max"], 5000.0, "{extra:?}");
    }

    // 33024 per output: past the matmul cliff on every chip: the matmul is named, not the
    // slice after it.
    let x = write_input(dir.path(), "x33024.npy", 33024.0);
    for chip in ["M1", "M4", "A19 Pro"] {
        let o = anekit(&[
            "run",
            model,
            "--input",
            &x,
            "--precision",
            "fp16",
            "--chip",
            chip,
        ]);
        assert!(!o.status.success(), "{chip}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("\"y\"")
                && err.contains("matmul")
                && err.contains(chip)
                && err.contains("32752"),
            "{chip}: {err}"
        );
    }
    // Plain fp16 keeps 33024 (fp16 reaches 65504).
    let o = anekit(&["run", model, "--input", &x, "--precision", "fp16"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // --chip needs fp16 precision; an unknown chip is an error that lists the catalog.
    let o = anekit(&["run", model, "--input", &x, "--chip", "M1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--precision fp16"));
    let o = anekit(&[
        "run",
        model,
        "--input",
        &x,
        "--precision",
        "fp16",
        "--chip",
        "M99",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("M99"));
}
