//! The portable side of the macOS source.
//!
//! anekit-apple-sys reads the hardware and hands over its own plain records: IOReport
//! channel deltas ([`ioreport::Channel`]), IOAccelerator `PerformanceStatistics`
//! ([`GpuStatistics`]), SMC and IOHID temperatures ([`SmcReading`], [`HidTemperature`]), the
//! SMC's system power, host VM counters ([`VmCounters`]) and, once, the `pmgr` DVFS tables
//! ([`PmgrTables`]). This module turns them into [`Reading`]s: units, residency histograms
//! to frequencies, energy to power, sensors to components. It is plain arithmetic, tested on
//! any OS with constructed samples and with the IOReport/DVFS dumps that users of macmon,
//! mactop, socpowerbud and oshi posted from real machines (tests/apple_fixtures.rs).
//!
//! The conventions (sources in docs/metrics.md, "macOS"):
//!
//! - energy channels of the `Energy Model` group carry their unit label (`mJ`, `uJ`, `nJ`,
//!   varying per channel and chip), so the unit is never assumed;
//! - performance-state channels are residency histograms (24 MHz ticks) whose states are
//!   `IDLE`/`OFF`/`DOWN` (inactive) and one state per DVFS level; a state named `V<i>P<j>`
//!   runs at entry `i` of the cluster's table (metaspartan/mactop reads it so), other
//!   states are matched to the table in order, and when their number differs from the
//!   table's the frequency is interpolated over the table ([`residency`]);
//! - `pmgr` tables are in Hz or kHz per table, recognised by magnitude ([`to_hz`]);
//! - power is energy over the measured interval of the delta.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anekit_apple_sys::hid::HidTemperature;
use anekit_apple_sys::iokit::{GpuStatistics, PmgrTables};
use anekit_apple_sys::ioreport::{self, ChannelValue, StateResidency};
use anekit_apple_sys::memory::VmCounters;
use anekit_apple_sys::smc::SmcReading;
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

/// What is fixed for a chip: its name and DVFS frequency tables (from the `pmgr` registry
/// entry's `voltage-states*` properties), in hertz, as the tables list them (an "off" level
/// of 0 Hz included: state indices refer to table positions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocInfo {
    /// `machdep.cpu.brand_string`, e.g. `Apple M3 Pro`.
    pub chip: String,
    /// Frequency table per CPU cluster kind: `ecpu`, `pcpu`, `mcpu` (M5 mid tier).
    pub cpu_freqs_hz: BTreeMap<String, Vec<u64>>,
    /// The GPU's frequency table.
    pub gpu_freqs_hz: Vec<u64>,
}

/// One sample from the Apple readers, as anekit-apple-sys returns them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSample {
    /// Measured time covered by the IOReport delta.
    pub elapsed: Duration,
    /// The delta's channels.
    pub channels: Vec<ioreport::Channel>,
    /// The GPU's IOAccelerator statistics, when readable.
    pub gpu: Option<GpuStatistics>,
    /// SMC temperature keys that were read.
    pub smc_temperatures: Vec<SmcReading>,
    /// IOHID temperature sensors that were read.
    pub hid_temperatures: Vec<HidTemperature>,
    /// The SMC's `PSTR` (whole-system power, watts), when read.
    pub system_power_w: Option<f64>,
    /// Memory counters, when readable.
    pub memory: Option<VmCounters>,
}

/// What the macOS adapter implements (over anekit-apple-sys's IOReport, IOKit, SMC and
/// IOHID readers).
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

/// How a residency histogram's states were matched to the DVFS table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreqMapping {
    /// Each active state named `V<i>P<j>` runs at table entry `i` (mactop's reading).
    StateIndex,
    /// As many active states as non-zero table entries: matched in order.
    InOrder,
    /// The counts differ and the states carry no index: each state's position is mapped
    /// linearly onto the table and the frequency interpolated between neighbours.
    Interpolated,
}

/// What a residency histogram says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residency {
    /// Time in active states over all time, 0–1.
    pub active_ratio: f64,
    /// Residency-weighted mean frequency over the active time, hertz; `None` when there was
    /// no active time, no table, or no way to match states to it.
    pub mean_freq_hz: Option<f64>,
    /// How the states were matched to the table (with `mean_freq_hz`).
    pub mapping: Option<FreqMapping>,
    /// Active ticks (weights when several channels are combined).
    pub active: i64,
    /// All ticks.
    pub total: i64,
}

fn inactive(name: &str) -> bool {
    matches!(name, "IDLE" | "OFF" | "DOWN")
}

/// The table index a state name carries: `V12P4` → 12, `V3` → 3; `None` otherwise.
pub fn state_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix('V')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let tail = &rest[digits.len()..];
    if !(tail.is_empty()
        || (tail.starts_with('P') && tail[1..].chars().all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    digits.parse().ok()
}

/// The frequency at fractional position `pos` of `table` (linear between neighbours).
fn lerp(table: &[u64], pos: f64) -> Option<f64> {
    let last = table.len().checked_sub(1)?;
    let pos = pos.clamp(0.0, last as f64);
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (*table.get(lo)? as f64, *table.get(hi)? as f64);
    Some(a + (b - a) * (pos - lo as f64))
}

/// Reads a residency histogram against a frequency table (`freqs_hz`, lowest first, as the
/// `pmgr` entry lists it; a leading 0 Hz "off" level is allowed).
///
/// Frequencies, in order of preference: (1) states named `V<i>P<j>` run at table entry `i`
/// (an index past the table, or a 0 Hz entry, is unknown); (2) as many active states as
/// non-zero table entries: matched in order; (3) otherwise each active state's position is
/// mapped linearly onto the non-zero table and interpolated between neighbours (the M2
/// E-cluster reports 5 states for a 6-entry table, socpowerbud#8). A single active state
/// against a longer table, or no table, gives no frequency.
pub fn residency(states: &[StateResidency], freqs_hz: &[u64]) -> Option<Residency> {
    let total: i64 = states.iter().map(|s| s.residency.max(0)).sum();
    if total <= 0 {
        return None;
    }
    let active_states: Vec<&StateResidency> =
        states.iter().filter(|s| !inactive(&s.name)).collect();
    let active: i64 = active_states.iter().map(|s| s.residency.max(0)).sum();
    let table: Vec<u64> = freqs_hz.iter().copied().filter(|f| *f > 0).collect();
    let mut mapping = None;
    let mut mean_freq_hz = None;
    if active > 0 && !table.is_empty() {
        let by_index: Option<Vec<f64>> = active_states
            .iter()
            .map(|s| {
                let i = state_index(&s.name)?;
                freqs_hz
                    .get(i)
                    .copied()
                    .filter(|f| *f > 0)
                    .map(|f| f as f64)
            })
            .collect();
        let n = active_states.len();
        let freqs: Option<(Vec<f64>, FreqMapping)> = if let Some(f) = by_index {
            Some((f, FreqMapping::StateIndex))
        } else if n == table.len() {
            Some((
                table.iter().map(|&f| f as f64).collect(),
                FreqMapping::InOrder,
            ))
        } else if n >= 2 {
            let scale = (table.len() - 1) as f64 / (n - 1) as f64;
            (0..n)
                .map(|k| lerp(&table, k as f64 * scale))
                .collect::<Option<Vec<f64>>>()
                .map(|f| (f, FreqMapping::Interpolated))
        } else {
            None
        };
        if let Some((freqs, how)) = freqs {
            let weighted: f64 = active_states
                .iter()
                .zip(&freqs)
                .map(|(s, f)| s.residency.max(0) as f64 * f)
                .sum();
            mean_freq_hz = Some(weighted / active as f64);
            mapping = Some(how);
        }
    }
    Some(Residency {
        active_ratio: active as f64 / total as f64,
        mean_freq_hz,
        mapping,
        active,
        total,
    })
}

/// The generation of an `Apple M<n>…` brand string (`Apple M4 Pro` → 4).
pub fn m_generation(chip: &str) -> Option<u32> {
    let rest = chip.strip_prefix("Apple M")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether the per-core performance states of `chip` are the *requested* DVFS level rather
/// than the clock the core ran at: on an M4, IOReport's `CPU Core Performance States` sits in
/// the top state while `powermetrics` reports the hardware running 300–500 MHz lower under
/// thermal limits (vladkens/macmon#78). Frequencies from these chips carry the label
/// `basis="requested"`.
pub fn states_are_requested_levels(chip: &str) -> bool {
    m_generation(chip).is_some_and(|g| g >= 4)
}

/// Temperature sensors outside this range are discarded (bogus readings such as 5.9 °C
/// or −1.85 °C on some chips: vladkens/macmon#68, #50).
pub const VALID_CELSIUS: std::ops::Range<f64> = 10.0..130.0;

/// The component of a temperature sensor: `cpu` (SMC `Tp*`/`Te*`, IOHID `pACC`/`eACC MTR`),
/// `gpu` (SMC `Tg*`, IOHID `GPU MTR`), or `None`. SMC `Ts*` keys are not counted: macmon
/// reads them as M5 super-core sensors, but an M4 Max has 34 of them that are not CPU cores
/// (wandb/wandb#12682).
pub fn temperature_component(key: &str) -> Option<&'static str> {
    if key.starts_with("Tp") || key.starts_with("Te") || key.contains("ACC MTR") {
        Some("cpu")
    } else if key.starts_with("Tg") || key.starts_with("GPU") {
        Some("gpu")
    } else {
        None
    }
}

/// Used memory as Activity Monitor counts it: (active + inactive + wired + speculative +
/// compressor − purgeable − external) pages (the computation of exelban/stats and macmon,
/// docs/metrics.md).
pub fn memory_used(v: &VmCounters) -> u64 {
    let pages = v
        .active
        .saturating_add(v.inactive)
        .saturating_add(v.wired)
        .saturating_add(v.speculative)
        .saturating_add(v.compressor)
        .saturating_sub(v.purgeable.saturating_add(v.external));
    pages.saturating_mul(v.page_size)
}

/// The frequencies of a `voltage-states*` property (8-byte records: frequency u32 LE,
/// voltage u32 LE), in the table's own unit. A trailing partial record is ignored.
pub fn dvfs_table(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|r| u64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]])))
        .collect()
}

/// A table in hertz. The unit is per table, not per chip: CPU tables are Hz on M1–M3 and
/// the A-series and kHz from M4 on, while GPU tables stay in Hz (oshi/oshi#3674: "every real
/// maximum observed is either ≤ 4.7e6 (kHz) or ≥ 3.38e8 (Hz)"). A table whose largest entry
/// is below 10⁷ is therefore taken as kHz.
pub fn to_hz(table: &[u64]) -> Vec<u64> {
    let max = table.iter().copied().max().unwrap_or(0);
    if max > 0 && max < 10_000_000 {
        table.iter().map(|f| f.saturating_mul(1000)).collect()
    } else {
        table.to_vec()
    }
}

/// `acc-clusters` (M5 and later): 8-byte entries, byte 0 = `voltage-states` index, byte 1 =
/// cluster type (higher = faster tier), as vladkens/macmon#48 reads it.
pub fn acc_clusters(bytes: &[u8]) -> Vec<(u8, u8)> {
    bytes.chunks_exact(8).map(|e| (e[0], e[1])).collect()
}

fn table(tables: &PmgrTables, key: &str) -> Option<Vec<u64>> {
    let t = to_hz(&dvfs_table(tables.voltage_states.get(key)?));
    t.iter().any(|&f| f > 0).then_some(t)
}

/// The chip's fixed facts from its brand string and `pmgr` tables.
///
/// CPU tables: the legacy keys first — `voltage-states1-sram` for the E-cluster and
/// `voltage-states5-sram` for the P-cluster (M1–M4 and A-series) — as vladkens/macmon#48
/// does ("try legacy first; acc-clusters only when the legacy key is missing"). A cluster
/// whose legacy key is missing (M5: `voltage-states1-sram` is absent) is found through
/// `acc-clusters`: the fastest cluster type is `pcpu`, the next is `mcpu` (and `ecpu`; M5
/// Pro/Max name their second tier `MCPU`, base M5 keeps `ECPU`). GPU: `voltage-states9`.
/// The non-`-sram` CPU tables hold no usable frequencies and are not used.
pub fn soc_info(brand: &str, tables: &PmgrTables) -> SocInfo {
    let mut cpu: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if let Some(t) = table(tables, "voltage-states1-sram") {
        cpu.insert("ecpu".into(), t);
    }
    if let Some(t) = table(tables, "voltage-states5-sram") {
        cpu.insert("pcpu".into(), t);
    }
    let clusters = tables
        .acc_clusters
        .as_deref()
        .map(acc_clusters)
        .unwrap_or_default();
    if !clusters.is_empty() {
        let mut by_type = clusters;
        by_type.sort_by_key(|e| std::cmp::Reverse(e.1));
        let mut found = by_type
            .iter()
            .filter_map(|(idx, _)| table(tables, &format!("voltage-states{idx}-sram")));
        let fastest = found.next();
        let next = found.next();
        if let Some(t) = fastest {
            cpu.entry("pcpu".into()).or_insert(t);
        }
        if let Some(t) = next {
            cpu.entry("mcpu".into()).or_insert_with(|| t.clone());
            cpu.entry("ecpu".into()).or_insert(t);
        }
    }
    SocInfo {
        chip: brand.to_string(),
        cpu_freqs_hz: cpu,
        gpu_freqs_hz: table(tables, "voltage-states9").unwrap_or_default(),
    }
}

fn push_energy(
    raw: &RawSample,
    dt: f64,
    totals: &mut BTreeMap<String, f64>,
    out: &mut Vec<Reading>,
) {
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
        let total = totals.entry(component.to_string()).or_insert(0.0);
        *total += j;
        if dt > 0.0 {
            out.push(Reading::new(Metric::Power, *component, j / dt));
        }
        out.push(Reading::new(Metric::Energy, *component, *total));
    }
    if let Some(w) = raw.system_power_w.filter(|w| w.is_finite() && *w >= 0.0) {
        out.push(Reading::new(Metric::Power, "system", w));
    }
}

fn push_clusters(raw: &RawSample, soc: &SocInfo, out: &mut Vec<Reading>) {
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
    let requested = states_are_requested_levels(&soc.chip);
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
            let r = Reading::new(Metric::Frequency, *kind, fsum / *fw as f64);
            out.push(if requested {
                r.label("basis", "requested")
            } else {
                r
            });
        }
    }
    if all_total > 0 {
        out.push(Reading::new(
            Metric::ActiveRatio,
            "cpu",
            all_active as f64 / all_total as f64,
        ));
    }
}

fn push_gpu(raw: &RawSample, soc: &SocInfo, out: &mut Vec<Reading>) {
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
    if let Some(g) = &raw.gpu {
        let f = |k: &str| g.statistics.get(k).and_then(|v| v.as_f64());
        let u = |k: &str| g.statistics.get(k).and_then(|v| v.as_u64());
        if let Some(p) = f("Device Utilization %").filter(|p| (0.0..=100.0).contains(p)) {
            out.push(Reading::new(Metric::Utilisation, "gpu", p / 100.0));
        }
        if let Some(b) = u("In use system memory") {
            out.push(Reading::new(Metric::Memory, "gpu", b as f64).label("field", "in_use"));
        }
        if let Some(b) = u("Alloc system memory") {
            out.push(Reading::new(Metric::Memory, "gpu", b as f64).label("field", "allocated"));
        }
    }
}

fn push_temperatures(raw: &RawSample, out: &mut Vec<Reading>) {
    // The SMC's sensors when it has CPU ones, else the HID sensors (macmon's choice: which
    // set is readable depends on the OS version, vladkens/macmon `get_temp`).
    let smc: Vec<(&str, f64)> = raw
        .smc_temperatures
        .iter()
        .map(|r| (r.key.as_str(), r.value))
        .collect();
    let hid: Vec<(&str, f64)> = raw
        .hid_temperatures
        .iter()
        .map(|t| (t.product.as_str(), t.celsius))
        .collect();
    let smc_has_cpu = smc
        .iter()
        .any(|(k, v)| temperature_component(k) == Some("cpu") && VALID_CELSIUS.contains(v));
    let sensors = if smc_has_cpu || hid.is_empty() {
        (smc, "smc")
    } else {
        (hid, "hid")
    };
    let mut temps: BTreeMap<&'static str, (f64, usize)> = BTreeMap::new();
    for (key, celsius) in &sensors.0 {
        if let Some(c) = temperature_component(key)
            && VALID_CELSIUS.contains(celsius)
        {
            let e = temps.entry(c).or_insert((0.0, 0));
            e.0 += celsius;
            e.1 += 1;
        }
    }
    for (c, (sum, n)) in temps {
        out.push(
            Reading::new(Metric::Temperature, c, sum / n as f64)
                .label("sensors", n.to_string())
                .label("source", sensors.1),
        );
    }
}

/// Converts one raw sample to readings. `energy_totals` carries joules per component from
/// sample to sample. What was not read in this sample gives no reading (never a 0).
pub fn convert(
    raw: &RawSample,
    soc: &SocInfo,
    energy_totals: &mut BTreeMap<String, f64>,
) -> Vec<Reading> {
    let mut out = Vec::new();
    push_energy(raw, raw.elapsed.as_secs_f64(), energy_totals, &mut out);
    push_clusters(raw, soc, &mut out);
    push_gpu(raw, soc, &mut out);
    push_temperatures(raw, &mut out);
    if let Some(m) = &raw.memory {
        for (component, field, v) in [
            ("memory", "total", m.total_bytes),
            ("memory", "used", memory_used(m)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: &[(&str, i64)]) -> Vec<StateResidency> {
        v.iter()
            .map(|(n, r)| StateResidency {
                name: n.to_string(),
                residency: *r,
            })
            .collect()
    }

    #[test]
    fn state_names_carry_table_indices() {
        assert_eq!(state_index("V0P5"), Some(0));
        assert_eq!(state_index("V19P0"), Some(19));
        assert_eq!(state_index("V3"), Some(3));
        assert_eq!(state_index("P1"), None);
        assert_eq!(state_index("VMAX"), None);
        assert_eq!(state_index("V2X"), None);
        assert_eq!(state_index("IDLE"), None);
    }

    #[test]
    fn indexed_states_use_their_table_entry() {
        // Five states V0..V4 against a six-entry table: V4 is the fifth entry, not the last.
        let t = [100, 200, 300, 400, 500, 600];
        let r = residency(&st(&[("IDLE", 5), ("V0P5", 0), ("V4P1", 5)]), &t).unwrap();
        assert_eq!(r.mapping, Some(FreqMapping::StateIndex));
        assert_eq!(r.mean_freq_hz, Some(500.0));
        assert_eq!(r.active_ratio, 0.5);
        // An index past the table: not by index; counts differ (1 vs 6): no frequency.
        let r = residency(&st(&[("V9P0", 1)]), &t).unwrap();
        assert_eq!(r.mean_freq_hz, None);
    }

    #[test]
    fn unindexed_states_are_matched_in_order_or_interpolated() {
        // GPU: OFF, then P1..P3 against a table with its 0 Hz off level.
        let r = residency(
            &st(&[("OFF", 2), ("P1", 1), ("P2", 0), ("P3", 1)]),
            &[0, 10, 20, 30],
        )
        .unwrap();
        assert_eq!(r.mapping, Some(FreqMapping::InOrder));
        assert_eq!(r.mean_freq_hz, Some(20.0));
        // Three states against a five-entry table: positions 0, 2, 4.
        let r = residency(&st(&[("A", 1), ("B", 1), ("C", 1)]), &[10, 20, 30, 40, 50]).unwrap();
        assert_eq!(r.mapping, Some(FreqMapping::Interpolated));
        assert_eq!(r.mean_freq_hz, Some(30.0));
        // Three states against a two-entry table: 10, 15, 20.
        let r = residency(&st(&[("A", 1), ("B", 0), ("C", 0)]), &[10, 20]).unwrap();
        assert_eq!(r.mean_freq_hz, Some(10.0));
        let r = residency(&st(&[("A", 0), ("B", 1), ("C", 0)]), &[10, 20]).unwrap();
        assert_eq!(r.mean_freq_hz, Some(15.0));
        // One unindexed state against a longer table: nothing to map.
        let r = residency(&st(&[("A", 1)]), &[10, 20]).unwrap();
        assert_eq!(r.mean_freq_hz, None);
        assert_eq!(r.mapping, None);
        // No table: the active ratio still.
        let r = residency(&st(&[("IDLE", 1), ("V0P0", 1)]), &[]).unwrap();
        assert_eq!((r.active_ratio, r.mean_freq_hz), (0.5, None));
        // No time at all: nothing.
        assert_eq!(residency(&st(&[("IDLE", 0)]), &[]), None);
    }

    #[test]
    fn generations_and_requested_levels() {
        assert_eq!(m_generation("Apple M4 Pro"), Some(4));
        assert_eq!(m_generation("Apple M10"), Some(10));
        assert_eq!(m_generation("Apple A18 Pro"), None);
        assert!(states_are_requested_levels("Apple M4"));
        assert!(!states_are_requested_levels("Apple M3 Max"));
        assert!(!states_are_requested_levels("Apple A18 Pro"));
    }

    fn records(freqs: &[u32]) -> Vec<u8> {
        freqs
            .iter()
            .flat_map(|f| {
                let mut r = f.to_le_bytes().to_vec();
                r.extend_from_slice(&800_000u32.to_le_bytes());
                r
            })
            .collect()
    }

    #[test]
    fn legacy_keys_first_then_acc_clusters() {
        // M1-M4: the legacy keys.
        let mut t = PmgrTables::default();
        t.voltage_states.insert(
            "voltage-states1-sram".into(),
            records(&[600_000_000, 2_064_000_000]),
        );
        t.voltage_states.insert(
            "voltage-states5-sram".into(),
            records(&[600_000_000, 3_204_000_000]),
        );
        t.voltage_states
            .insert("voltage-states1".into(), records(&[0, 0]));
        t.voltage_states.insert(
            "voltage-states9".into(),
            records(&[0, 396_000_000, 1_278_000_000]),
        );
        let soc = soc_info("Apple M1", &t);
        assert_eq!(soc.cpu_freqs_hz["ecpu"], [600_000_000, 2_064_000_000]);
        assert_eq!(soc.cpu_freqs_hz["pcpu"], [600_000_000, 3_204_000_000]);
        assert!(!soc.cpu_freqs_hz.contains_key("mcpu"));
        assert_eq!(soc.gpu_freqs_hz, [0, 396_000_000, 1_278_000_000]);
        // M5 Max: no voltage-states1-sram; acc-clusters names tables 22 (tier 1) and 5
        // (tier 2); kHz tables. The legacy voltage-states5-sram is the top tier anyway.
        let mut t = PmgrTables::default();
        t.voltage_states.insert(
            "voltage-states5-sram".into(),
            records(&[1_308_000, 4_608_000]),
        );
        t.voltage_states.insert(
            "voltage-states22-sram".into(),
            records(&[1_344_000, 4_380_000]),
        );
        let mut acc = vec![22u8, 1, 0, 0, 0, 0, 0, 0];
        acc.extend_from_slice(&[5, 2, 0, 0, 0, 0, 0, 0]);
        t.acc_clusters = Some(acc);
        let soc = soc_info("Apple M5 Max", &t);
        assert_eq!(soc.cpu_freqs_hz["pcpu"], [1_308_000_000, 4_608_000_000]);
        assert_eq!(soc.cpu_freqs_hz["mcpu"], [1_344_000_000, 4_380_000_000]);
        assert_eq!(soc.cpu_freqs_hz["ecpu"], soc.cpu_freqs_hz["mcpu"]);
        assert_eq!(acc_clusters(&[7, 3, 0, 0, 0, 0, 0, 0, 9]), [(7, 3)]);
        // Partial records are ignored; all-zero tables are no tables.
        assert!(dvfs_table(&[1, 2, 3]).is_empty());
        assert_eq!(to_hz(&[0, 0]), [0, 0]);
    }

    #[test]
    fn memory_used_counts_like_activity_monitor() {
        let v = VmCounters {
            total_bytes: 16 << 30,
            page_size: 16384,
            active: 100,
            inactive: 50,
            wired: 30,
            speculative: 10,
            compressor: 20,
            purgeable: 5,
            external: 15,
            free: 1,
            swap_total: 2 << 30,
            swap_used: 1 << 30,
        };
        assert_eq!(memory_used(&v), 190 * 16384);
    }
}
