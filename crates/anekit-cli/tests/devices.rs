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
    assert_eq!(features.len(), 10);
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
