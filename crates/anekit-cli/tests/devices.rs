//! `anekit devices` end to end: on this (non-Apple) machine it lists the host and the CPU
//! backend and says, for every Apple feature, that it is unavailable and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn anekit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .output()
        .expect("anekit runs")
}

#[test]
fn json_lists_host_backends_and_every_apple_feature() {
    let out = anekit(&["devices", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["host"]["os"], std::env::consts::OS);
    assert!(v["host"]["logical_cpus"].as_u64().unwrap() >= 1);
    let backends = v["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 3);
    assert_eq!(backends[0]["backend"], "cpu");
    assert_eq!(backends[0]["available"], true);
    let features = v["apple"]["features"].as_array().unwrap();
    assert_eq!(features.len(), 11);
    for f in features {
        assert!(f["name"].is_string() && f["description"].is_string());
        assert_eq!(
            f["available"].as_bool().unwrap(),
            f.get("reason").is_none(),
            "{f}"
        );
    }
    if cfg!(not(target_vendor = "apple")) {
        for b in &backends[1..] {
            assert_eq!(b["available"], false);
            assert!(b["reason"].as_str().unwrap().contains("only on"), "{b}");
        }
        for f in features {
            assert_eq!(f["available"], false, "{f}");
            let reason = f["reason"].as_str().unwrap();
            assert!(reason.contains("exists only on"), "{reason}");
        }
        assert!(v["apple"]["sysctl"].is_null());
        assert!(v["chip"].is_null());
    }
}

#[test]
fn text_names_the_unavailable_features_and_why() {
    let out = anekit(&["devices"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Host: "), "{text}");
    assert!(text.contains("Backends:"), "{text}");
    assert!(text.contains("anekit CPU"), "{text}");
    assert!(text.contains("Apple features:"), "{text}");
    for name in [
        "Core ML",
        "MLComputePlan",
        "direct ANE",
        "Metal",
        "MPSGraph",
        "IOReport",
        "SMC",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    if cfg!(not(target_vendor = "apple")) {
        assert!(text.contains("unavailable"), "{text}");
        assert!(
            text.contains("exists only on macOS; this build is for Linux")
                || !cfg!(target_os = "linux"),
            "{text}"
        );
    }
}

#[test]
fn analyze_device_says_why_core_ml_plans_are_unavailable() {
    if cfg!(target_vendor = "apple") {
        return;
    }
    let out = anekit(&["analyze", "--device"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--device: MLComputePlan is unavailable: Core ML exists only on"),
        "{err}"
    );
}

#[test]
fn analyze_device_backend_cpu_places_every_op_on_the_cpu_and_ane_says_why_not() {
    let out = anekit(&["analyze", "--device", "--backend", "cpu", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["comparison"]["coreml_ane_fraction"], 0.0);
    assert!(j["device_plan"]["ops"].as_array().unwrap().len() > 1);
    let units = j["device_plan"]["units"].as_object().unwrap();
    assert_eq!(units.keys().collect::<Vec<_>>(), ["cpu"], "{units:?}");
    if cfg!(target_vendor = "apple") {
        return;
    }
    let out = anekit(&["analyze", "--device", "--backend", "ane"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--device --backend ane:"), "{err}");
    assert!(err.contains("exists only on macOS"), "{err}");
    // --backend needs --device; an unknown backend is refused with the choices.
    let out = anekit(&["analyze", "--backend", "cpu"]);
    assert!(!out.status.success());
    let out = anekit(&["run", "--backend", "gpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auto, coreml, ane, cpu"), "{err}");
}

#[test]
fn run_with_a_named_backend_that_is_missing_fails_with_the_reason() {
    if cfg!(target_vendor = "apple") {
        return;
    }
    let out = anekit(&["run", "--backend", "coreml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Core ML is unavailable"), "{err}");
    let out = anekit(&[
        "run",
        "--backend",
        "cpu",
        "--compute-units",
        "cpu-and-ne",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["selection"]["backend"], "cpu");
    assert_eq!(j["selection"]["choice"], "cpu");
    assert_eq!(j["selection"]["requested"], "cpu-and-ne");
}
