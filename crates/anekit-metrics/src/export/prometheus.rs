//! Prometheus text exposition format (version 0.0.4).
//!
//! Names follow the exporters people already have dashboards for: node_exporter for host
//! metrics (`node_cpu_seconds_total`, `node_memory_MemTotal_bytes`,
//! `node_cpu_scaling_frequency_hertz`, `node_hwmon_temp_celsius`, `node_thermal_zone_temp`,
//! `node_rapl_<zone>_joules_total`), dcgm-exporter for NVIDIA GPUs (`DCGM_FI_DEV_GPU_UTIL`
//! in %, `DCGM_FI_DEV_FB_USED` in MiB, `DCGM_FI_DEV_POWER_USAGE` in W,
//! `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` in mJ, `DCGM_FI_DEV_SM_CLOCK` in MHz, ...), and
//! `anekit_<metric>{component=...}` in SI units for the rest (Apple SoC power, RAPL power,
//! CPU utilisation).

use std::fmt::Write as _;

use crate::{Family, Metric, Reading, Snapshot, SourceState};

/// One exposition sample: family name, help, type, labels and value (in the family's unit).
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    /// The metric family name.
    pub name: String,
    /// `# HELP` text.
    pub help: String,
    /// True for `counter`, false for `gauge`.
    pub counter: bool,
    /// Label pairs, in output order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn pick(r: &Reading, keys: &[&str]) -> Vec<(String, String)> {
    keys.iter()
        .filter_map(|k| r.get_label(k).map(|v| (k.to_string(), v.to_string())))
        .collect()
}

fn anekit(r: &Reading) -> PromSample {
    let mut labels = vec![("component".to_string(), r.component.clone())];
    labels.extend(r.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    PromSample {
        name: format!("anekit_{}", r.metric.name()),
        help: r.metric.help().to_string(),
        counter: r.metric.is_counter(),
        labels,
        value: r.value,
    }
}

/// The exposition sample of one reading, under its family's naming convention.
pub fn prometheus_sample(r: &Reading) -> PromSample {
    let s = |name: String, help: &str, counter: bool, labels, value| PromSample {
        name,
        help: help.to_string(),
        counter,
        labels,
        value,
    };
    match (r.family, r.metric) {
        (Family::Node, Metric::CpuTime) => s(
            "node_cpu_seconds_total".into(),
            "Seconds the CPUs spent in each mode.",
            true,
            pick(r, &["cpu", "mode"]),
            r.value,
        ),
        (Family::Node, Metric::Frequency) => s(
            "node_cpu_scaling_frequency_hertz".into(),
            "Current scaled CPU thread frequency in hertz.",
            false,
            pick(r, &["cpu"]),
            r.value,
        ),
        (Family::Node, Metric::Memory) => {
            let field = sanitize(r.get_label("field").unwrap_or("unknown"));
            s(
                format!("node_memory_{field}_bytes"),
                &format!("Memory information field {field}_bytes."),
                false,
                vec![],
                r.value,
            )
        }
        (Family::Node, Metric::Temperature) if r.get_label("zone").is_some() => s(
            "node_thermal_zone_temp".into(),
            "Zone temperature in Celsius.",
            false,
            pick(r, &["zone", "type"]),
            r.value,
        ),
        (Family::Node, Metric::Temperature) => s(
            "node_hwmon_temp_celsius".into(),
            "Hardware monitor for temperature (input).",
            false,
            pick(r, &["chip", "hwmon", "sensor", "label"]),
            r.value,
        ),
        (Family::Node, Metric::Energy) => {
            let zone = sanitize(r.get_label("zone").unwrap_or("unknown"));
            s(
                format!("node_rapl_{zone}_joules_total"),
                &format!("Current RAPL {zone} value in joules."),
                true,
                pick(r, &["index", "path"]),
                r.value,
            )
        }
        (Family::Dcgm, m) => {
            let labels = pick(r, &["gpu", "UUID", "modelName"]);
            let field = r.get_label("field");
            let clock = r.get_label("clock");
            let (name, help, counter, value) = match (m, field, clock) {
                (Metric::Utilisation, _, _) => (
                    "DCGM_FI_DEV_GPU_UTIL",
                    "GPU utilization (in %).",
                    false,
                    r.value * 100.0,
                ),
                (Metric::MemoryActivity, _, _) => (
                    "DCGM_FI_DEV_MEM_COPY_UTIL",
                    "Memory utilization (in %).",
                    false,
                    r.value * 100.0,
                ),
                (Metric::Memory, Some("used"), _) => (
                    "DCGM_FI_DEV_FB_USED",
                    "Framebuffer memory used (in MiB).",
                    false,
                    r.value / 1048576.0,
                ),
                (Metric::Memory, Some("free"), _) => (
                    "DCGM_FI_DEV_FB_FREE",
                    "Framebuffer memory free (in MiB).",
                    false,
                    r.value / 1048576.0,
                ),
                (Metric::Memory, Some("total"), _) => (
                    "DCGM_FI_DEV_FB_TOTAL",
                    "Framebuffer memory total (in MiB).",
                    false,
                    r.value / 1048576.0,
                ),
                (Metric::Power, _, _) => (
                    "DCGM_FI_DEV_POWER_USAGE",
                    "Power draw (in W).",
                    false,
                    r.value,
                ),
                (Metric::PowerLimit, _, _) => (
                    "DCGM_FI_DEV_POWER_MGMT_LIMIT",
                    "Power management limit (in W).",
                    false,
                    r.value,
                ),
                (Metric::Energy, _, _) => (
                    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                    "Total energy consumption since the exporter started (in mJ).",
                    true,
                    r.value * 1000.0,
                ),
                (Metric::Temperature, _, _) => (
                    "DCGM_FI_DEV_GPU_TEMP",
                    "GPU temperature (in C).",
                    false,
                    r.value,
                ),
                (Metric::Frequency, _, Some("sm")) => (
                    "DCGM_FI_DEV_SM_CLOCK",
                    "SM clock frequency (in MHz).",
                    false,
                    r.value / 1e6,
                ),
                (Metric::Frequency, _, Some("mem")) => (
                    "DCGM_FI_DEV_MEM_CLOCK",
                    "Memory clock frequency (in MHz).",
                    false,
                    r.value / 1e6,
                ),
                _ => return anekit(r),
            };
            s(name.to_string(), help, counter, labels, value)
        }
        _ => anekit(r),
    }
}

fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn number(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The snapshot in Prometheus text format: every reading, plus `anekit_source_up{source}`
/// (1 when the source gave readings), `anekit_sample_timestamp_seconds` and
/// `anekit_sample_interval_seconds`.
pub fn prometheus_text(snap: &Snapshot) -> String {
    let mut samples: Vec<PromSample> = snap.readings.iter().map(prometheus_sample).collect();
    for s in &snap.sources {
        samples.push(PromSample {
            name: "anekit_source_up".into(),
            help: "1 when the metric source gave readings in the last sample, 0 when it is unavailable or failed.".into(),
            counter: false,
            labels: vec![("source".into(), s.name.clone())],
            value: if s.state == SourceState::Ok { 1.0 } else { 0.0 },
        });
    }
    samples.push(PromSample {
        name: "anekit_sample_timestamp_seconds".into(),
        help: "Wall-clock time of the last sample, seconds since the Unix epoch.".into(),
        counter: false,
        labels: vec![],
        value: snap.time.unix_s,
    });
    if let Some(dt) = snap.interval_s {
        samples.push(PromSample {
            name: "anekit_sample_interval_seconds".into(),
            help: "Measured time between the last two samples, seconds.".into(),
            counter: false,
            labels: vec![],
            value: dt,
        });
    }
    // Group by family, keeping first-seen order; drop repeated label sets.
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, Vec<PromSample>> =
        std::collections::HashMap::new();
    for s in samples {
        let g = groups.entry(s.name.clone()).or_insert_with(|| {
            order.push(s.name.clone());
            Vec::new()
        });
        if !g.iter().any(|o| o.labels == s.labels) {
            g.push(s);
        }
    }
    let mut out = String::with_capacity(64 * 1024);
    for name in order {
        let Some(group) = groups.get(&name) else {
            continue;
        };
        let Some(first) = group.first() else { continue };
        out.push_str("# HELP ");
        out.push_str(&name);
        out.push(' ');
        escape_help(&first.help, &mut out);
        out.push('\n');
        let _ = writeln!(
            out,
            "# TYPE {name} {}",
            if first.counter { "counter" } else { "gauge" }
        );
        for s in group {
            out.push_str(&name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape_label(v, &mut out);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            number(s.value, &mut out);
            out.push('\n');
        }
    }
    out
}
