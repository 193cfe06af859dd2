//! `anekit doctor` on Linux: the portable checks pass (the CPU backend against PyTorch's
//! outputs for the bundled model among them) and every Apple check is listed as not
//! applicable with the reason.

use std::process::Command;

fn anekit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
}

#[test]
fn doctor_json_runs_the_portable_checks_and_explains_the_apple_ones() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = anekit()
        .args(["doctor", "--json"])
        .env("XDG_CACHE_HOME", home.path())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let checks = j["checks"].as_array().expect("checks");
    let find = |n: &str| {
        checks
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no check {n}: {stdout}"))
    };
    for name in [
        "cpu.bundled-model",
        "devices.detect",
        "cpu.doctor-programs",
        "ane.prepare",
        "gpu.plan",
    ] {
        let c = find(name);
        assert_eq!(c["status"], "pass", "{c}");
        assert!(c["ms"].as_f64().expect("ms") >= 0.0);
        assert!(c.get("error").is_none(), "{c}");
    }
    // The CPU backend matches PyTorch on the bundled model.
    assert!(
        find("cpu.bundled-model")["detail"]
            .as_str()
            .unwrap()
            .contains("against PyTorch")
    );
    assert_eq!(j["failed"], 0, "{stdout}");
    if cfg!(target_vendor = "apple") {
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(j["os"], std::env::consts::OS);
    for name in [
        "apple.devices",
        "apple.metal",
        "apple.mpsgraph-matmul",
        "coreml.all",
        "coreml.cpu-and-ne",
        "coreml.cpu-and-gpu",
        "coreml.cpu-only",
        "coreml.compute-plan",
        "ane.one-op",
        "ane.two-input",
        "apple.ioreport",
        "apple.smc",
    ] {
        let c = find(name);
        assert_eq!(c["status"], "not-applicable", "{c}");
        let why = c["detail"].as_str().unwrap();
        assert!(why.contains("exists only on"), "{why}");
        assert!(why.contains("this build is for Linux"), "{why}");
    }
    assert!(
        find("apple.smc")["detail"]
            .as_str()
            .unwrap()
            .starts_with("the AppleSMC service exists only on macOS")
    );
    assert_eq!(j["not_applicable"], 12);
}

#[test]
fn doctor_text_lists_every_check() {
    let home = tempfile::tempdir().expect("temp dir");
    let out = anekit()
        .arg("doctor")
        .env("XDG_CACHE_HOME", home.path())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cpu.bundled-model"), "{text}");
    assert!(text.contains("coreml.cpu-and-ne"), "{text}");
    assert!(text.contains("passed,"), "{text}");
    let help = anekit().args(["doctor", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("anekit doctor --json"), "{help}");
}
