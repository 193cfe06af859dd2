//! JSON and Prometheus renderings, checked with a real Prometheus text-format parser
//! (`prometheus-parse`), and the HTTP endpoint under concurrent scrapes.
// Test helpers panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anekit_metrics::export::{MetricsServer, json_line, prometheus_text};
use anekit_metrics::{Collector, Family, Metric, Reading, Snapshot, linux};
use common::{Tree, close, run};

/// A snapshot of the intel-desktop fixture plus GPU readings as the NVML source makes them
/// and Apple readings, and a label value that needs escaping.
fn snapshot() -> Snapshot {
    let tree = Tree::new("intel-desktop");
    let mut c = Collector::new();
    for s in linux::open_files(tree.root()) {
        c.push(s);
    }
    c.push(Err(anekit_metrics::Unavailable::new(
        "nvml",
        "libnvidia-ml.so.1 could not be loaded",
    )));
    let mut s = run(&tree, &mut c, 2).pop().unwrap();
    let gpu = |m: Metric, v: f64| {
        Reading::new(m, "gpu0", v)
            .label("gpu", "0")
            .label("UUID", "GPU-5d1b1c7e-0000-0000-0000-000000000000")
            .label("modelName", "NVIDIA H100 80GB HBM3")
            .family(Family::Dcgm)
    };
    s.readings.extend([
        gpu(Metric::Utilisation, 0.97),
        gpu(Metric::MemoryActivity, 0.41),
        gpu(Metric::Memory, 1024.0 * 1048576.0).label("field", "used"),
        gpu(Metric::Memory, 80.0 * 1073741824.0).label("field", "total"),
        gpu(Metric::Power, 512.25),
        gpu(Metric::Energy, 1234.5),
        gpu(Metric::Temperature, 61.0),
        gpu(Metric::Frequency, 1.98e9).label("clock", "sm"),
        gpu(Metric::Frequency, 2.619e9).label("clock", "mem"),
        Reading::new(Metric::Power, "ane", 1.75),
        Reading::new(Metric::Temperature, "odd", 40.0).label("sensor", "a \"q\" \\ b\nc"),
    ]);
    s
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {} matches", found.len());
    match found[0].value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{other:?}"),
    }
}

fn is_counter(scrape: &prometheus_parse::Scrape, name: &str) -> bool {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .is_some_and(|s| matches!(s.value, prometheus_parse::Value::Counter(_)))
}

fn check_exposition(text: &str) {
    let scrape = parse(text);
    // Every family has HELP and TYPE once, before its samples; no series twice.
    let mut seen_type: HashMap<&str, usize> = HashMap::new();
    let mut series = std::collections::HashSet::new();
    let mut current = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            *seen_type.entry(name).or_default() += 1;
            current = name;
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "sample outside its family: {line}");
            let key = line.rsplit_once(' ').unwrap().0;
            assert!(series.insert(key.to_string()), "duplicate series {key}");
        }
    }
    assert!(seen_type.values().all(|n| *n == 1));
    assert_eq!(scrape.samples.len(), series.len());

    // node_exporter names.
    assert!(is_counter(&scrape, "node_cpu_seconds_total"));
    assert!(close(
        value(
            &scrape,
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "user")]
        ),
        14.53
    ));
    assert_eq!(
        value(&scrape, "node_memory_MemTotal_bytes", &[]),
        32_657_508.0 * 1024.0
    );
    assert_eq!(
        value(&scrape, "node_cpu_scaling_frequency_hertz", &[("cpu", "0")]),
        4.7e9
    );
    assert_eq!(
        value(
            &scrape,
            "node_hwmon_temp_celsius",
            &[("chip", "coretemp"), ("sensor", "temp1")]
        ),
        55.0
    );
    assert_eq!(
        value(
            &scrape,
            "node_thermal_zone_temp",
            &[("zone", "0"), ("type", "x86_pkg_temp")]
        ),
        55.0
    );
    assert!(is_counter(&scrape, "node_rapl_package_joules_total"));
    assert!(close(
        value(
            &scrape,
            "node_rapl_package_joules_total",
            &[("index", "0"), ("path", "/sys/class/powercap/intel-rapl:0")]
        ),
        25.000001
    ));
    assert!(close(
        value(&scrape, "node_rapl_dram_joules_total", &[]),
        2.5
    ));
    // anekit names, SI units.
    assert!(close(
        value(&scrape, "anekit_utilization_ratio", &[("component", "cpu")]),
        0.375
    ));
    assert!(close(
        value(
            &scrape,
            "anekit_power_watts",
            &[("component", "rapl:package-0")]
        ),
        25.000001
    ));
    assert_eq!(
        value(&scrape, "anekit_power_watts", &[("component", "ane")]),
        1.75
    );
    // dcgm-exporter names and units.
    let g = [("gpu", "0"), ("modelName", "NVIDIA H100 80GB HBM3")];
    assert!(close(value(&scrape, "DCGM_FI_DEV_GPU_UTIL", &g), 97.0));
    assert!(close(value(&scrape, "DCGM_FI_DEV_MEM_COPY_UTIL", &g), 41.0));
    assert_eq!(value(&scrape, "DCGM_FI_DEV_FB_USED", &g), 1024.0);
    assert_eq!(value(&scrape, "DCGM_FI_DEV_FB_TOTAL", &g), 81920.0);
    assert_eq!(value(&scrape, "DCGM_FI_DEV_POWER_USAGE", &g), 512.25);
    assert_eq!(
        value(&scrape, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &g),
        1_234_500.0
    );
    assert!(is_counter(&scrape, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"));
    assert_eq!(value(&scrape, "DCGM_FI_DEV_GPU_TEMP", &g), 61.0);
    assert_eq!(value(&scrape, "DCGM_FI_DEV_SM_CLOCK", &g), 1980.0);
    assert_eq!(value(&scrape, "DCGM_FI_DEV_MEM_CLOCK", &g), 2619.0);
    // Sources and sample time.
    assert_eq!(
        value(&scrape, "anekit_source_up", &[("source", "rapl")]),
        1.0
    );
    assert_eq!(
        value(&scrape, "anekit_source_up", &[("source", "nvml")]),
        0.0
    );
    assert_eq!(value(&scrape, "anekit_sample_interval_seconds", &[]), 1.0);
    assert!(scrape.docs.contains_key("anekit_power_watts"));
}

#[test]
fn prometheus_text_parses_with_exporter_names() {
    let text = prometheus_text(&snapshot());
    check_exposition(&text);
    // Escaping: the raw line has the escapes; the parser must not have split the line.
    assert!(text.contains(r#"sensor="a \"q\" \\ b\nc""#), "{text}");
}

#[test]
fn json_line_is_one_object_with_time_and_readings() {
    let s = snapshot();
    let line = json_line(&s).unwrap();
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["seq"], 1);
    assert_eq!(v["interval_s"], 1.0);
    assert_eq!(v["time"]["mono_s"], 1.0);
    assert!(v["time"]["unix_s"].as_f64().unwrap() > 1.7e9);
    let readings = v["readings"].as_array().unwrap();
    assert_eq!(readings.len(), s.readings.len());
    let pkg = readings
        .iter()
        .find(|r| r["metric"] == "power_watts" && r["component"] == "rapl:package-0")
        .unwrap();
    assert!(close(pkg["value"].as_f64().unwrap(), 25.000001));
    let nvml = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nvml")
        .unwrap();
    assert_eq!(nvml["state"], "unavailable");
    assert!(nvml["reason"].as_str().unwrap().contains("libnvidia-ml"));
    // And it reads back into the same struct (serde_json's float parsing is within 1 ulp).
    let back: Snapshot = serde_json::from_str(&line).unwrap();
    assert_eq!(back.readings.len(), s.readings.len());
    for (a, b) in back.readings.iter().zip(&s.readings) {
        assert_eq!(
            (a.metric, &a.component, &a.labels),
            (b.metric, &b.component, &b.labels)
        );
        assert!(close(a.value, b.value), "{a:?} {b:?}");
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[test]
fn endpoint_serves_concurrent_scrapes_on_loopback() {
    let snap = Arc::new(snapshot());
    let s2 = Arc::clone(&snap);
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), 4, move || {
        Some(Arc::clone(&s2))
    })
    .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    // A client that connects and never sends a request must not block the others.
    let _idle = TcpStream::connect(addr).unwrap();
    let handles: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics")))
        .collect();
    for h in handles {
        let (status, head, body) = h.join().unwrap();
        assert_eq!(status, 200);
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        check_exposition(&body);
    }
    let (status, _, body) = get(addr, "/json");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["seq"], 1);
    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(get(addr, "/").0, 200);
    server.stop();
}

#[test]
fn endpoint_without_a_sample_says_so() {
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), 1, || None).unwrap();
    let (status, _, body) = get(server.local_addr(), "/metrics");
    assert_eq!(status, 503);
    assert!(body.contains("no sample yet"));
}

/// `promtool check metrics` (Prometheus' own parser and linter) when it is installed
/// (Debian package `prometheus`); skipped otherwise. Parse errors fail the test; lint notes
/// that the exporter conventions themselves produce (node_exporter's camelCase field names
/// such as `node_memory_MemTotal_bytes`, dcgm-exporter's `modelName` label and its counter
/// without `_total`) are allowed, and nothing else.
#[test]
fn promtool_accepts_the_exposition() {
    let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(prometheus_text(&snapshot()).as_bytes())?;
            child.wait_with_output()
        })
    else {
        eprintln!("promtool not installed: skipped");
        return;
    };
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("promtool: {report}");
    assert!(!report.contains("error while linting"), "{report}");
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let allowed = (line.starts_with("node_memory_") && line.contains("camelCase"))
            || (line.starts_with("DCGM_FI_DEV_") && line.contains("label names should be"))
            || (line.starts_with("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
                && line.contains("_total"));
        assert!(allowed, "promtool: {line}");
    }
}
