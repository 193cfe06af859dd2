//! One measured value: what it measures ([`Metric`], with its SI [`Unit`]), which hardware
//! component it belongs to, extra labels, and the value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What a reading measures. Every metric has one SI unit ([`Metric::unit`]); renderings that
/// follow other conventions (dcgm-exporter's percent, MiB and MHz) convert on output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    /// CPU time spent in a mode (label `mode`), seconds, cumulative.
    #[serde(rename = "cpu_time_seconds_total")]
    CpuTime,
    /// Share of the interval the component was busy, 0–1 (CPU: non-idle time; GPU: time a
    /// kernel ran, as NVML or IOAccelerator report it).
    #[serde(rename = "utilization_ratio")]
    Utilisation,
    /// Share of the interval spent in active (non-idle, powered) performance states, from a
    /// residency histogram (Apple DVFS states), 0–1.
    #[serde(rename = "active_ratio")]
    ActiveRatio,
    /// Share of the interval during which device memory was read or written (NVML), 0–1.
    #[serde(rename = "memory_activity_ratio")]
    MemoryActivity,
    /// A clock frequency, hertz (CPU core, Apple cluster residency-weighted mean, GPU clocks).
    #[serde(rename = "frequency_hertz")]
    Frequency,
    /// A memory amount, bytes; label `field` says which (`MemTotal`, `used`, `total`, ...).
    #[serde(rename = "memory_bytes")]
    Memory,
    /// A temperature, degrees Celsius.
    #[serde(rename = "temperature_celsius")]
    Temperature,
    /// Mean power over the sample interval, watts (from energy counters where there are any).
    #[serde(rename = "power_watts")]
    Power,
    /// The enforced power limit, watts.
    #[serde(rename = "power_limit_watts")]
    PowerLimit,
    /// Energy used since the source started, joules, with counter wraps undone.
    #[serde(rename = "energy_joules_total")]
    Energy,
}

/// The SI unit of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// A ratio, 0–1.
    Ratio,
    /// Hertz.
    Hertz,
    /// Bytes.
    Bytes,
    /// Degrees Celsius.
    Celsius,
    /// Watts.
    Watts,
    /// Joules.
    Joules,
}

impl Metric {
    /// Every metric, in display order.
    pub const ALL: [Metric; 10] = [
        Metric::Power,
        Metric::Energy,
        Metric::PowerLimit,
        Metric::Utilisation,
        Metric::ActiveRatio,
        Metric::MemoryActivity,
        Metric::Frequency,
        Metric::Memory,
        Metric::Temperature,
        Metric::CpuTime,
    ];

    /// The metric's unit.
    pub fn unit(self) -> Unit {
        match self {
            Metric::CpuTime => Unit::Seconds,
            Metric::Utilisation | Metric::ActiveRatio | Metric::MemoryActivity => Unit::Ratio,
            Metric::Frequency => Unit::Hertz,
            Metric::Memory => Unit::Bytes,
            Metric::Temperature => Unit::Celsius,
            Metric::Power | Metric::PowerLimit => Unit::Watts,
            Metric::Energy => Unit::Joules,
        }
    }

    /// True for cumulative counters (Prometheus `counter`); false for gauges.
    pub fn is_counter(self) -> bool {
        matches!(self, Metric::CpuTime | Metric::Energy)
    }

    /// The snake-case name with the unit as suffix, as JSON and `anekit_*` Prometheus names
    /// use it (`power_watts`, `utilization_ratio`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::CpuTime => "cpu_time_seconds_total",
            Metric::Utilisation => "utilization_ratio",
            Metric::ActiveRatio => "active_ratio",
            Metric::MemoryActivity => "memory_activity_ratio",
            Metric::Frequency => "frequency_hertz",
            Metric::Memory => "memory_bytes",
            Metric::Temperature => "temperature_celsius",
            Metric::Power => "power_watts",
            Metric::PowerLimit => "power_limit_watts",
            Metric::Energy => "energy_joules_total",
        }
    }

    /// One line saying what the metric is (Prometheus `# HELP`).
    pub fn help(self) -> &'static str {
        match self {
            Metric::CpuTime => "CPU time spent in each mode, seconds.",
            Metric::Utilisation => "Share of the sample interval the component was busy (0-1).",
            Metric::ActiveRatio => {
                "Share of the sample interval spent in active performance states (0-1)."
            }
            Metric::MemoryActivity => {
                "Share of the sample interval device memory was being read or written (0-1)."
            }
            Metric::Frequency => "Clock frequency, hertz.",
            Metric::Memory => "Memory amount, bytes.",
            Metric::Temperature => "Temperature, degrees Celsius.",
            Metric::Power => "Mean power over the sample interval, watts.",
            Metric::PowerLimit => "Enforced power limit, watts.",
            Metric::Energy => "Energy used since the source started (wraps undone), joules.",
        }
    }
}

impl Unit {
    /// The unit's symbol for display.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Ratio => "",
            Unit::Hertz => "Hz",
            Unit::Bytes => "B",
            Unit::Celsius => "°C",
            Unit::Watts => "W",
            Unit::Joules => "J",
        }
    }
}

/// The naming convention a reading is exported under in Prometheus text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// `anekit_<metric>{component=...}`.
    #[default]
    Anekit,
    /// node_exporter's names (`node_cpu_seconds_total`, `node_memory_MemTotal_bytes`,
    /// `node_hwmon_temp_celsius`, `node_rapl_package_joules_total`, ...).
    Node,
    /// dcgm-exporter's names and units (`DCGM_FI_DEV_POWER_USAGE` in W,
    /// `DCGM_FI_DEV_FB_USED` in MiB, `DCGM_FI_DEV_SM_CLOCK` in MHz, ...).
    Dcgm,
}

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// What is measured.
    pub metric: Metric,
    /// The hardware it belongs to: `cpu` (all cores), `cpu3`, `memory`, `gpu0`, `ane`,
    /// `rapl:package-0`, `coretemp/temp1`, ...
    pub component: String,
    /// Extra labels (`mode`, `field`, `chip`, `UUID`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The value, in the metric's SI unit.
    pub value: f64,
    /// The Prometheus naming convention of this reading.
    #[serde(skip)]
    pub family: Family,
}

impl Reading {
    /// A reading with no labels, exported under `anekit_*` names.
    pub fn new(metric: Metric, component: impl Into<String>, value: f64) -> Self {
        Reading {
            metric,
            component: component.into(),
            labels: BTreeMap::new(),
            value,
            family: Family::Anekit,
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the export naming convention.
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// The value of label `key`, if set.
    pub fn get_label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// A key naming this series across samples: metric, component and labels,
    /// e.g. `power_watts{component="gpu0"}`.
    pub fn key(&self) -> String {
        series_key(self.metric, &self.component, &self.labels)
    }
}

/// The series key of a metric, component and labels (see [`Reading::key`]).
pub fn series_key(metric: Metric, component: &str, labels: &BTreeMap<String, String>) -> String {
    let mut k = String::with_capacity(48);
    k.push_str(metric.name());
    k.push_str("{component=\"");
    k.push_str(component);
    k.push('"');
    for (name, value) in labels {
        let _ = write!(k, ",{name}=\"{value}\"");
    }
    k.push('}');
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_unit_suffixed_names_and_skips_family() {
        let r = Reading::new(Metric::Power, "gpu0", 71.5)
            .label("UUID", "GPU-1")
            .family(Family::Dcgm);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["metric"], "power_watts");
        assert_eq!(v["component"], "gpu0");
        assert_eq!(v["labels"]["UUID"], "GPU-1");
        assert!(v.get("family").is_none());
        assert_eq!(r.key(), "power_watts{component=\"gpu0\",UUID=\"GPU-1\"}");
    }

    #[test]
    fn names_match_serde() {
        for m in Metric::ALL {
            let s = serde_json::to_value(m).unwrap();
            assert_eq!(s, m.name());
            assert_eq!(m.is_counter(), m.name().ends_with("_total"));
        }
    }
}
