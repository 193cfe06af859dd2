//! NVIDIA GPUs through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run time).
//!
//! Per GPU: utilisation (time a kernel ran) and memory activity, framebuffer memory
//! used/free/total, power, energy, enforced power limit, GPU temperature, SM and memory
//! clocks. A query the GPU does not support is skipped (logged once at debug level).
//! Exported under dcgm-exporter's names.
//!
//! Cost: every query but one costs well under 5 µs of CPU (the driver caches them), but the
//! energy counter (`nvmlDeviceGetTotalEnergyConsumption`, Volta and later) costs about
//! 3.7 ms per read (H100, driver 580; measured by the `overhead` benchmark). So the counter
//! is read every [`ENERGY_EVERY`] samples and on precise samples
//! ([`crate::Source::sample_precise`], which [`crate::Sampler::measure`] takes at both ends
//! of the work it measures). A sample's power is the energy counter's increase over the
//! interval when the counter was read at both ends of it, and NVML's power reading
//! (`nvmlDeviceGetPowerUsage`, averaged over one second on Ampere and later) otherwise.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use nvml_wrapper::Device;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::error::NvmlError;

use crate::counter::{EnergyCounter, Wrap};
use crate::source::{Source, Unavailable};
use crate::{Error, Family, Metric, Reading};

/// Slow-changing values (enforced power limit, memory clock) are read every this many
/// samples and repeated in between: each NVML query is a driver call costing tens to
/// hundreds of microseconds of CPU, and the sampler's budget is 0.5 % of a core at 1 Hz.
pub const SLOW_QUERY_EVERY: u64 = 10;

/// The energy counter is read every this many samples (and on precise samples).
pub const ENERGY_EVERY: u64 = 10;

struct Gpu {
    device: Device<'static>,
    index: u32,
    uuid: String,
    name: String,
    energy: EnergyCounter,
    power_limit_w: Option<f64>,
    mem_clock_hz: Option<f64>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("index", &self.index)
            .field("uuid", &self.uuid)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The NVML source.
pub struct Nvml {
    gpus: Vec<Gpu>,
    driver: String,
    samples: u64,
    last_at: Option<Instant>,
    unsupported: BTreeSet<(u32, &'static str)>,
}

/// NVML is initialised once per process and kept: device handles borrow it, and caching
/// the handles (rather than looking each GPU up on every sample) halves the driver calls.
fn library() -> Result<&'static nvml_wrapper::Nvml, String> {
    static NVML: OnceLock<Result<nvml_wrapper::Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| nvml_wrapper::Nvml::init().map_err(|e| init_failure_reason(&e)))
        .as_ref()
        .map_err(Clone::clone)
}

impl std::fmt::Debug for Nvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvml")
            .field("gpus", &self.gpus)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

/// Why NVML could not be started, for humans.
pub fn init_failure_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(inner) => format!(
            "libnvidia-ml.so.1 could not be loaded (no NVIDIA driver installed, or not on the \
             library path): {inner}"
        ),
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_string(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_string(),
        NvmlError::LibraryNotFound => "NVML could not find the NVIDIA library".to_string(),
        other => format!("NVML could not be initialised: {other}"),
    }
}

impl Nvml {
    /// Loads NVML and lists the GPUs.
    pub fn open() -> Result<Self, Unavailable> {
        let nvml = library().map_err(|reason| Unavailable::new("nvml", reason))?;
        let count = nvml
            .device_count()
            .map_err(|e| Unavailable::new("nvml", format!("cannot count GPUs: {e}")))?;
        if count == 0 {
            return Err(Unavailable::new("nvml", "NVML loaded but reports no GPU"));
        }
        let driver = nvml.sys_driver_version().unwrap_or_default();
        let mut gpus = Vec::new();
        for i in 0..count {
            let d = nvml
                .device_by_index(i)
                .map_err(|e| Unavailable::new("nvml", format!("GPU {i}: {e}")))?;
            gpus.push(Gpu {
                index: i,
                uuid: d.uuid().unwrap_or_default(),
                name: d.name().unwrap_or_else(|_| "NVIDIA GPU".to_string()),
                energy: EnergyCounter::new(Wrap::Never, 1e-3),
                power_limit_w: None,
                mem_clock_hz: None,
                device: d,
            });
        }
        tracing::debug!(gpus = gpus.len(), %driver, "NVML opened");
        Ok(Nvml {
            gpus,
            driver,
            samples: 0,
            last_at: None,
            unsupported: BTreeSet::new(),
        })
    }

    /// The driver version NVML reports.
    pub fn driver_version(&self) -> &str {
        &self.driver
    }

    /// (index, name, UUID) of each GPU.
    pub fn gpus(&self) -> Vec<(u32, &str, &str)> {
        self.gpus
            .iter()
            .map(|g| (g.index, g.name.as_str(), g.uuid.as_str()))
            .collect()
    }
}

/// Keeps `Ok` values; records NotSupported (and similar "this GPU can't") per query once;
/// other errors are logged and skipped too, so one failing query does not hide the rest.
fn ok<T>(
    r: Result<T, NvmlError>,
    gpu: u32,
    what: &'static str,
    unsupported: &mut BTreeSet<(u32, &'static str)>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            if unsupported.insert((gpu, what)) {
                tracing::debug!(gpu, query = what, error = %e, "NVML query skipped");
            }
            None
        }
    }
}

impl Source for Nvml {
    fn name(&self) -> &str {
        "nvml"
    }

    fn sample(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        self.read(at, out, false);
        Ok(())
    }

    fn sample_precise(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        self.read(at, out, true);
        Ok(())
    }
}

impl Nvml {
    fn read(&mut self, at: Instant, out: &mut Vec<Reading>, precise: bool) {
        let uns = &mut self.unsupported;
        let slow = self.samples.is_multiple_of(SLOW_QUERY_EVERY);
        let read_energy = precise || self.samples.is_multiple_of(ENERGY_EVERY);
        let prev_at = self.last_at.replace(at);
        self.samples += 1;
        for g in &mut self.gpus {
            let d = &g.device;
            let component = format!("gpu{}", g.index);
            let gpu_label = g.index.to_string();
            let (uuid, model) = (g.uuid.clone(), g.name.clone());
            let r = |metric, value: f64| {
                Reading::new(metric, component.clone(), value)
                    .label("gpu", gpu_label.clone())
                    .label("UUID", uuid.clone())
                    .label("modelName", model.clone())
                    .family(Family::Dcgm)
            };
            if let Some(u) = ok(d.utilization_rates(), g.index, "utilization", uns) {
                out.push(r(Metric::Utilisation, f64::from(u.gpu) / 100.0));
                out.push(r(Metric::MemoryActivity, f64::from(u.memory) / 100.0));
            }
            if let Some(m) = ok(d.memory_info(), g.index, "memory", uns) {
                out.push(r(Metric::Memory, m.used as f64).label("field", "used"));
                out.push(r(Metric::Memory, m.free as f64).label("field", "free"));
                out.push(r(Metric::Memory, m.total as f64).label("field", "total"));
            }
            let mut power = None;
            if read_energy
                && let Some(mj) = ok(d.total_energy_consumption(), g.index, "energy", uns)
            {
                let u = g.energy.update(mj, at);
                // Energy-based power only when the counter was read at both ends of this
                // sample's interval.
                if u.since.is_some() && u.since == prev_at {
                    power = u.power_w;
                }
                // The counter is in the sample only when it was read for it: a value carried
                // over from an earlier read would be stale (a flat line, then a jump, in a
                // Prometheus `rate()`), and a 0 before the first read would be false.
                out.push(r(Metric::Energy, u.total_j));
            }
            if power.is_none() {
                power = ok(d.power_usage(), g.index, "power", uns).map(|mw| f64::from(mw) / 1e3);
            }
            if let Some(p) = power {
                out.push(r(Metric::Power, p));
            }
            if slow {
                g.power_limit_w = ok(d.enforced_power_limit(), g.index, "power_limit", uns)
                    .map(|mw| f64::from(mw) / 1e3);
                g.mem_clock_hz = ok(d.clock_info(Clock::Memory), g.index, "mem_clock", uns)
                    .map(|mhz| f64::from(mhz) * 1e6);
            }
            if let Some(w) = g.power_limit_w {
                out.push(r(Metric::PowerLimit, w));
            }
            if let Some(c) = ok(
                d.temperature(TemperatureSensor::Gpu),
                g.index,
                "temperature",
                uns,
            ) {
                out.push(r(Metric::Temperature, f64::from(c)));
            }
            if let Some(mhz) = ok(d.clock_info(Clock::SM), g.index, "sm_clock", uns) {
                out.push(r(Metric::Frequency, f64::from(mhz) * 1e6).label("clock", "sm"));
            }
            if let Some(hz) = g.mem_clock_hz {
                out.push(r(Metric::Frequency, hz).label("clock", "mem"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_gives_a_reason() {
        // On a machine without the NVIDIA driver, opening must fail with a reason, not panic.
        if let Err(u) = Nvml::open() {
            assert_eq!(u.source, "nvml");
            assert!(!u.reason.is_empty());
        }
    }
}
