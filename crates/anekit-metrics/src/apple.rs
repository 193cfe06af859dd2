//! The portable side of the macOS sources.
//!
//! `anekit-apple` (the only crate with `unsafe` FFI) reads the hardware and hands over plain
//! data: IOReport channel deltas ([`Channel`]), IOAccelerator `PerformanceStatistics`
//! ([`GpuPerformance`]), SMC/IOHID temperatures ([`Temperature`]), memory
//! ([`MemoryStats`]) and, once, the chip's DVFS frequency tables from the `pmgr` registry
//! entry ([`SocInfo`]). It implements [`AppleProvider`]; [`AppleSource`] turns that into a
//! [`Source`]. Everything here (units, residency histograms to frequencies, energy to power)
//! is plain arithmetic, tested on any OS with constructed samples.
//!
//! Conventions followed (see `docs/references.md#ioreport`): energy channels of the
//! `Energy Model` group carry their unit label (`mJ`, `uJ`, `nJ`, varying per channel and
//! chip), so the unit is never assumed; performance-state channels are residency histograms
//! (24 MHz ticks) whose states are `IDLE`/`OFF`/`DOWN` (inactive) and then one state per DVFS
//! level, matched in order to the chip's frequency table; power is energy over the measured
//! interval of the delta.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Error, Metric, Reading, Source};

/// IOReport group of the per-block energy counters.
pub const ENERGY_MODEL: &str = "Energy Model";
/// IOReport group of the CPU residency channels.
pub const CPU_STATS: &str = "CPU Stats";
/// Subgroup of the per-core performance-state channels.
pub const CPU_CORE_STATES: &str = "CPU Core Performance States";
/// IOReport group of the GPU residency channel.
pub const GPU_STATS: &str = "GPU Stats";
/// Subgroup of the GPU performance-state channel (`GPUPH`).
pub const GPU_STATES: &str = "GPU Performance States";

/// One residency-histogram state of a state channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The state's name (`IDLE`, `DOWN`, `OFF`, `V0P7`, `P1`, ...).
    pub name: String,
    /// Time in the state during the delta (24 MHz ticks; only ratios are used).
    pub residency: i64,
}

/// A channel's value in a delta sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelValue {
    /// A simple counter's increase (`IOReportSimpleGetIntegerValue`).
    Simple(i64),
    /// A state channel's residencies (`IOReportStateGetResidency` per state).
    States(Vec<State>),
}

/// One IOReport channel of a delta (`IOReportCreateSamplesDelta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// `IOReportChannelGetGroup`.
    pub group: String,
    /// `IOReportChannelGetSubGroup` (empty when none).
    pub subgroup: String,
    /// `IOReportChannelGetChannelName`.
    pub name: String,
    /// `IOReportChannelGetUnitLabel` (`mJ`, `uJ`, `nJ`, `24Mticks`, ...).
    pub unit: String,
    /// The value.
    pub value: ChannelValue,
}

/// IOAccelerator `PerformanceStatistics` of the GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuPerformance {
    /// `Device Utilization %`.
    pub device_utilization_pct: Option<f64>,
    /// `Renderer Utilization %`.
    pub renderer_utilization_pct: Option<f64>,
    /// `Tiler Utilization %`.
    pub tiler_utilization_pct: Option<f64>,
    /// `In use system memory`, bytes.
    pub in_use_system_memory: Option<u64>,
    /// `Alloc system memory`, bytes.
    pub alloc_system_memory: Option<u64>,
}

/// One temperature sensor (SMC key like `Tp09`, or IOHID name like `pACC MTR Temp Sensor0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// The SMC key or IOHID product name.
    pub key: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

/// System memory (`hw.memsize`, host VM statistics, `vm.swapusage`), bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Installed memory.
    pub total: u64,
    /// Used memory (as Activity Monitor counts it).
    pub used: u64,
    /// Swap size.
    pub swap_total: u64,
    /// Swap in use.
    pub swap_used: u64,
}

/// What is fixed for a chip: its name and DVFS frequency tables (from the `pmgr` registry
/// entry's `voltage-states*` properties), in hertz, lowest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocInfo {
    /// `machdep.cpu.brand_string`, e.g. `Apple M3 Pro`.
    pub chip: String,
    /// Frequency table per CPU cluster kind: `ecpu`, `pcpu`, `mcpu` (M5 mid tier).
    pub cpu_freqs_hz: BTreeMap<String, Vec<u64>>,
    /// The GPU's frequency table.
    pub gpu_freqs_hz: Vec<u64>,
}

/// One sample from the Apple layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawSample {
    /// Measured time covered by the IOReport delta.
    pub elapsed: Duration,
    /// The delta's channels.
    pub channels: Vec<Channel>,
    /// GPU statistics, when readable.
    pub gpu: Option<GpuPerformance>,
    /// Temperature sensors.
    pub temperatures: Vec<Temperature>,
    /// Memory, when readable.
    pub memory: Option<MemoryStats>,
}

/// What the macOS adapter implements (over `anekit-apple`'s IOReport, IOKit and SMC
/// wrappers).
pub trait AppleProvider: Send {
    /// The chip's fixed facts.
    fn soc(&self) -> &SocInfo;
    /// A delta since the previous call (the first call primes and may return an empty
    /// delta with `elapsed` zero) and the current gauges.
    fn sample(&mut self) -> Result<RawSample, Error>;
}

/// Converts an energy channel's value to joules from its unit label; `None` for a unit
/// that is not an energy unit.
pub fn energy_to_joules(value: i64, unit: &str) -> Option<f64> {
    let scale = match unit.trim() {
        "J" => 1.0,
        "mJ" => 1e-3,
        "uJ" | "µJ" => 1e-6,
        "nJ" => 1e-9,
        _ => return None,
    };
    Some(value as f64 * scale)
}

/// The component of an `Energy Model` channel, or `None` for channels that would double
/// count (per-core and per-cluster rails such as `ECPU0`, `PCPU`, `PACC_0`).
///
/// `CPU Energy` and `DIE_<n>_CPU Energy` (Ultra) → `cpu`; `GPU Energy` → `gpu`; `ANE`,
/// `ANE0`, `ANE0_<n>` → `ane`; `DRAM*` → `dram`; `GPU SRAM*` → `gpu_sram`.
pub fn energy_component(name: &str) -> Option<&'static str> {
    if name == "CPU Energy" || (name.starts_with("DIE_") && name.ends_with("_CPU Energy")) {
        Some("cpu")
    } else if name == "GPU Energy" {
        Some("gpu")
    } else if name.starts_with("GPU SRAM") {
        Some("gpu_sram")
    } else if name.starts_with("ANE") {
        Some("ane")
    } else if name.starts_with("DRAM") {
        Some("dram")
    } else {
        None
    }
}

/// The cluster kind of a `CPU Core Performance States` channel: `ECPU0` → `ecpu`,
/// `PCPU3` → `pcpu`, `MCPU1` → `mcpu`, `DIE_1_PCPU1_CPU0` (Ultra) → `pcpu`.
pub fn cpu_cluster(name: &str) -> Option<&'static str> {
    let mut rest = name;
    if let Some(r) = rest.strip_prefix("DIE_") {
        rest = r.split_once('_').map(|(_, tail)| tail).unwrap_or("");
    }
    if rest.starts_with("ECPU") {
        Some("ecpu")
    } else if rest.starts_with("PCPU") {
        Some("pcpu")
    } else if rest.starts_with("MCPU") {
        Some("mcpu")
    } else {
        None
    }
}

/// What a residency histogram says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residency {
    /// Time in active states over all time, 0–1.
    pub active_ratio: f64,
    /// Residency-weighted mean frequency over the active time, hertz; `None` when the
    /// table does not match the active states or there was no active time.
    pub mean_freq_hz: Option<f64>,
    /// Active ticks (weights when several channels are combined).
    pub active: i64,
    /// All ticks.
    pub total: i64,
}

fn inactive(name: &str) -> bool {
    matches!(name, "IDLE" | "OFF" | "DOWN")
}

/// Reads a residency histogram against a frequency table (`freqs_hz`, one entry per active
/// state, lowest first). Zero entries of the table (an "off" level some tables start with)
/// are dropped first. A table whose length differs from the number of active states gives
/// no frequency (a silent mismatch would report wrong clocks; new chips change tables).
pub fn residency(states: &[State], freqs_hz: &[u64]) -> Option<Residency> {
    let total: i64 = states.iter().map(|s| s.residency.max(0)).sum();
    if total <= 0 {
        return None;
    }
    let active_states: Vec<&State> = states.iter().filter(|s| !inactive(&s.name)).collect();
    let active: i64 = active_states.iter().map(|s| s.residency.max(0)).sum();
    let table: Vec<u64> = freqs_hz.iter().copied().filter(|f| *f > 0).collect();
    let mean_freq_hz = if active > 0 && table.len() == active_states.len() {
        let weighted: f64 = active_states
            .iter()
            .zip(&table)
            .map(|(s, f)| s.residency.max(0) as f64 * *f as f64)
            .sum();
        Some(weighted / active as f64)
    } else {
        None
    };
    Some(Residency {
        active_ratio: active as f64 / total as f64,
        mean_freq_hz,
        active,
        total,
    })
}

/// Temperature sensors outside this range are discarded (bogus readings such as 5.9 °C
/// or −1.85 °C on some chips: macmon issues #68, #50).
pub const VALID_CELSIUS: std::ops::Range<f64> = 10.0..130.0;

/// The component of a temperature sensor: `cpu` (SMC `Tp*`/`Te*`, IOHID `pACC`/`eACC`),
/// `gpu` (SMC `Tg*`, IOHID `GPU*`), or `None`.
pub fn temperature_component(key: &str) -> Option<&'static str> {
    if key.starts_with("Tp") || key.starts_with("Te") || key.contains("ACC MTR") {
        Some("cpu")
    } else if key.starts_with("Tg") || key.starts_with("GPU") {
        Some("gpu")
    } else {
        None
    }
}

/// Converts one raw sample to readings. `energy_totals` carries joules per component from
/// sample to sample.
pub fn convert(
    raw: &RawSample,
    soc: &SocInfo,
    energy_totals: &mut BTreeMap<String, f64>,
) -> Vec<Reading> {
    let mut out = Vec::new();
    let dt = raw.elapsed.as_secs_f64();

    // Energy → power.
    let mut joules: BTreeMap<&'static str, f64> = BTreeMap::new();
    for c in raw.channels.iter().filter(|c| c.group == ENERGY_MODEL) {
        let (Some(component), ChannelValue::Simple(v)) = (energy_component(&c.name), &c.value)
        else {
            continue;
        };
        match energy_to_joules(*v, &c.unit) {
            Some(j) if j >= 0.0 => *joules.entry(component).or_insert(0.0) += j,
            Some(_) => tracing::debug!(channel = %c.name, "negative energy delta skipped"),
            None => {
                tracing::debug!(channel = %c.name, unit = %c.unit, "energy channel with unknown unit skipped")
            }
        }
    }
    if !joules.is_empty() {
        let soc_j: f64 = ["cpu", "gpu", "ane"]
            .iter()
            .filter_map(|k| joules.get(k))
            .sum();
        joules.insert("soc", soc_j);
    }
    for (component, j) in &joules {
        let total = energy_totals.entry(component.to_string()).or_insert(0.0);
        *total += j;
        if dt > 0.0 {
            out.push(Reading::new(Metric::Power, *component, j / dt));
        }
        out.push(Reading::new(Metric::Energy, *component, *total));
    }

    // CPU clusters: combine the cores of each cluster kind.
    // cluster -> (active ticks, total ticks, Σ freq·active, active ticks with a freq)
    let mut clusters: BTreeMap<&'static str, (i64, i64, f64, i64)> = BTreeMap::new();
    for c in raw
        .channels
        .iter()
        .filter(|c| c.group == CPU_STATS && c.subgroup == CPU_CORE_STATES)
    {
        let (Some(kind), ChannelValue::States(states)) = (cpu_cluster(&c.name), &c.value) else {
            continue;
        };
        let table = soc.cpu_freqs_hz.get(kind).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(r) = residency(states, table) {
            let e = clusters.entry(kind).or_insert((0, 0, 0.0, 0));
            e.0 += r.active;
            e.1 += r.total;
            if let Some(f) = r.mean_freq_hz {
                e.2 += f * r.active as f64;
                e.3 += r.active;
            }
        }
    }
    let (mut all_active, mut all_total) = (0i64, 0i64);
    for (kind, (active, total, fsum, fw)) in &clusters {
        all_active += active;
        all_total += total;
        if *total > 0 {
            out.push(Reading::new(
                Metric::ActiveRatio,
                *kind,
                *active as f64 / *total as f64,
            ));
        }
        if *fw > 0 {
            out.push(Reading::new(Metric::Frequency, *kind, fsum / *fw as f64));
        }
    }
    if all_total > 0 {
        out.push(Reading::new(
            Metric::ActiveRatio,
            "cpu",
            all_active as f64 / all_total as f64,
        ));
    }

    // GPU residency.
    for c in raw
        .channels
        .iter()
        .filter(|c| c.group == GPU_STATS && c.subgroup == GPU_STATES && c.name == "GPUPH")
    {
        if let ChannelValue::States(states) = &c.value
            && let Some(r) = residency(states, &soc.gpu_freqs_hz)
        {
            out.push(Reading::new(Metric::ActiveRatio, "gpu", r.active_ratio));
            if let Some(f) = r.mean_freq_hz {
                out.push(Reading::new(Metric::Frequency, "gpu", f));
            }
        }
    }

    // GPU statistics.
    if let Some(g) = &raw.gpu {
        if let Some(u) = g
            .device_utilization_pct
            .filter(|u| (0.0..=100.0).contains(u))
        {
            out.push(Reading::new(Metric::Utilisation, "gpu", u / 100.0));
        }
        if let Some(b) = g.in_use_system_memory {
            out.push(Reading::new(Metric::Memory, "gpu", b as f64).label("field", "in_use"));
        }
        if let Some(b) = g.alloc_system_memory {
            out.push(Reading::new(Metric::Memory, "gpu", b as f64).label("field", "allocated"));
        }
    }

    // Temperatures: mean of the valid sensors per component.
    let mut temps: BTreeMap<&'static str, (f64, usize)> = BTreeMap::new();
    for t in &raw.temperatures {
        if let Some(c) = temperature_component(&t.key)
            && VALID_CELSIUS.contains(&t.celsius)
        {
            let e = temps.entry(c).or_insert((0.0, 0));
            e.0 += t.celsius;
            e.1 += 1;
        }
    }
    for (c, (sum, n)) in temps {
        out.push(
            Reading::new(Metric::Temperature, c, sum / n as f64).label("sensors", n.to_string()),
        );
    }

    // Memory.
    if let Some(m) = raw.memory {
        for (component, field, v) in [
            ("memory", "total", m.total),
            ("memory", "used", m.used),
            ("swap", "total", m.swap_total),
            ("swap", "used", m.swap_used),
        ] {
            out.push(Reading::new(Metric::Memory, component, v as f64).label("field", field));
        }
    }
    out
}

/// A [`Source`] over an [`AppleProvider`].
#[derive(Debug)]
pub struct AppleSource<P> {
    provider: P,
    energy_totals: BTreeMap<String, f64>,
}

impl<P: AppleProvider> AppleSource<P> {
    /// Wraps a provider.
    pub fn new(provider: P) -> Self {
        AppleSource {
            provider,
            energy_totals: BTreeMap::new(),
        }
    }
}

impl<P: AppleProvider> Source for AppleSource<P> {
    fn name(&self) -> &str {
        "apple"
    }

    fn sample(&mut self, _at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        let raw = self.provider.sample()?;
        out.extend(convert(&raw, self.provider.soc(), &mut self.energy_totals));
        Ok(())
    }
}
