//! `anekit top` end to end, on a fixture /proc and /sys tree
//! (crates/anekit-metrics/tests/fixtures/intel-desktop; its README says where the files come
//! from).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn anekit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anekit"))
}

/// A copy of the fixture tree with every `X.0` installed as `X`.
fn tree() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_str().unwrap().to_string();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(&name));
            } else if let Some(base) = name.strip_suffix(".0") {
                std::fs::copy(e.path(), to.join(base)).unwrap();
            } else if !name.ends_with(".1") {
                std::fs::copy(e.path(), to.join(&name)).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../anekit-metrics/tests/fixtures/intel-desktop"),
        dir.path(),
    );
    dir
}

#[test]
fn json_lines_with_count() {
    let root = tree();
    let out = anekit()
        .args([
            "top",
            "--json",
            "--count",
            "3",
            "--interval-ms",
            "100",
            "--root",
        ])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, v) in lines.iter().enumerate() {
        // The priming sample (seq 0) is not printed: every line has an interval and rates.
        assert_eq!(v["seq"], i as u64 + 1);
        assert!(v["interval_s"].as_f64().unwrap() > 0.05);
        assert!(v["time"]["unix_s"].as_f64().unwrap() > 1.7e9);
        let readings = v["readings"].as_array().unwrap();
        // The fixture does not change: RAPL power is exactly 0 W.
        let p = readings
            .iter()
            .find(|r| r["metric"] == "power_watts" && r["component"] == "rapl:package-0")
            .unwrap();
        assert_eq!(p["value"], 0.0);
        let states: Vec<(&str, &str)> = v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
            .collect();
        for name in ["proc_stat", "meminfo", "cpufreq", "temperature", "rapl"] {
            assert!(states.contains(&(name, "ok")), "{name}: {states:?}");
        }
    }
}

#[test]
fn serve_answers_prometheus_scrapes() {
    let root = tree();
    let mut child = anekit()
        .args([
            "top",
            "--serve",
            "127.0.0.1:0",
            "--interval-ms",
            "100",
            "--root",
        ])
        .arg(root.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let get = |path: &str| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    };
    let body = get("/metrics");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    for needle in [
        "# TYPE node_cpu_seconds_total counter",
        "node_memory_MemTotal_bytes 33441288192\n",
        "node_rapl_package_joules_total{index=\"0\",path=\"/sys/class/powercap/intel-rapl:0\"}",
        "node_hwmon_temp_celsius{chip=\"coretemp\",hwmon=\"hwmon1\",sensor=\"temp1\",label=\"Package id 0\"} 55\n",
        "anekit_source_up{source=\"rapl\"} 1\n",
        "anekit_source_up{source=\"nvml\"} ",
    ] {
        assert!(body.contains(needle), "{needle}\n{body}");
    }
}

#[test]
fn help_and_argument_errors() {
    let out = anekit().args(["top", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--json",
        "--count <N>",
        "--interval-ms <MS>",
        "--serve [<ADDR>]",
        "127.0.0.1:9090",
        "[default: 1000]",
    ] {
        assert!(help.contains(needle), "{needle}\n{help}");
    }
    // --count needs --json; --json and --serve exclude each other; the interval has a floor.
    for args in [
        &["top", "--count", "2"][..],
        &["top", "--json", "--serve"][..],
        &["top", "--json", "--interval-ms", "10"][..],
    ] {
        let out = anekit().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
