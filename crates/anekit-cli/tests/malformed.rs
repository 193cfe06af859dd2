//! The malformed-model corpus (`fixtures/malformed/`, listed in its `cases.json`): `inspect`,
//! `analyze`, `optimize`, `compress` and `run` each refuse every case with a non-zero exit
//! and a message naming the op or field and the reason, never a panic, and never write an
//! output. `--no-validate` shows what can be shown (inspect) or analyses anyway with the
//! problems marked and unknown ops not placed (analyze).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> PathBuf {
    repo().join("fixtures/malformed")
}

fn anekit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .current_dir(repo())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Case {
    model: String,
    expect: Vec<String>,
}

fn cases() -> Vec<Case> {
    let raw = std::fs::read_to_string(corpus().join("cases.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            model: c["model"].as_str().unwrap().to_string(),
            expect: c["expect"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect(),
        })
        .collect()
}

#[test]
fn cases_json_lists_every_model_of_the_corpus() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mlmodelc") || n.ends_with(".mlpackage"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = cases().into_iter().map(|c| c.model).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert!(listed.len() >= 12);
}

fn refused(case: &Case, args: &[&str], out: Option<&Path>) {
    let o = anekit(args);
    let all = text(&o);
    let what = format!("`anekit {}`", args.join(" "));
    assert!(
        !all.contains("panicked") && o.status.code() != Some(101),
        "{what} panicked:\n{all}"
    );
    assert!(
        !o.status.success(),
        "{what} exited 0 on an invalid model:\n{all}"
    );
    for e in &case.expect {
        assert!(all.contains(e.as_str()), "{what}: no {e:?} in:\n{all}");
    }
    if let Some(out) = out {
        assert!(!out.exists(), "{what} wrote {}", out.display());
    }
}

#[test]
fn every_command_refuses_every_malformed_model() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases() {
        let model = format!("fixtures/malformed/{}", case.model);
        refused(&case, &["inspect", &model], None);
        refused(&case, &["inspect", "--json", &model], None);
        refused(&case, &["inspect", "--mil", &model], None);
        refused(&case, &["analyze", &model], None);
        refused(&case, &["analyze", "--json", &model], None);
        let out = tmp.path().join(format!("opt-{}.mlpackage", case.model));
        refused(
            &case,
            &["optimize", &model, "-o", out.to_str().unwrap()],
            Some(&out),
        );
        let out = tmp.path().join(format!("comp-{}.mlpackage", case.model));
        refused(
            &case,
            &[
                "compress",
                &model,
                "-o",
                out.to_str().unwrap(),
                "--quantize",
                "int8",
            ],
            Some(&out),
        );
        refused(&case, &["run", &model, "--random"], None);
    }
}

#[test]
fn inspect_reports_validation_and_no_validate_shows_the_model_anyway() {
    // A valid model: a validation section that says so.
    let o = anekit(&["inspect", "fixtures/models/mlp_fp16_ios16.mlpackage"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("Validation  valid: "), "{t}");
    let o = anekit(&[
        "inspect",
        "--json",
        "fixtures/models/mlp_fp16_ios16.mlpackage",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["validation"]["valid"], true);
    assert!(j["validation"]["ops"].as_u64().unwrap() > 0);

    // An invalid one: the section lists the problem, JSON carries it, the exit is 1.
    let model = "fixtures/malformed/unknown_op.mlmodelc";
    let o = anekit(&["inspect", model]);
    assert_eq!(o.status.code(), Some(1));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("Validation  INVALID"), "{t}");
    assert!(t.contains("op frob_0 (frobnicate): unknown op type `frobnicate`"));
    let o = anekit(&["inspect", "--json", model]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["validation"]["valid"], false);
    assert_eq!(j["validation"]["problems"][0]["kind"], "unknown_op");
    assert_eq!(j["validation"]["problems"][0]["op"], "frob_0");

    // --no-validate: the report (and the MIL text) without the check, exit 0.
    let o = anekit(&["inspect", "--no-validate", model]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("frobnicate") && !t.contains("Validation"), "{t}");
    let o = anekit(&["inspect", "--mil", "--no-validate", model]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("frobnicate(x = x, y = y)"));
}

#[test]
fn analyze_no_validate_marks_the_program_and_never_places_an_unknown_op() {
    let model = "fixtures/malformed/unknown_op.mlmodelc";
    let o = anekit(&["analyze", "--no-validate", "--json", model]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let invalid = j["invalid"].as_array().unwrap();
    assert!(
        invalid[0]
            .as_str()
            .unwrap()
            .starts_with("Core ML will refuse to compile: function main / op frob_0 (frobnicate)")
    );
    let op = j["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "frobnicate")
        .unwrap();
    assert_eq!(op["unit"], "none", "an unknown op is not placed: {op}");
    assert_eq!(op["est_us"], 0.0);
    assert_eq!(j["coverage"]["compute_ops"], 0);
    let o = anekit(&["analyze", "--no-validate", model]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("INVALID PROGRAM"), "{t}");
    assert!(t.contains("Core ML will refuse to compile: function main / op frob_0"));
}
