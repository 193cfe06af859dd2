//! Hardware metrics for ML inference, with one API on Linux and macOS.
//!
//! A [`Collector`] owns a set of [`Source`]s (Linux: `/proc/stat`, `/proc/meminfo`, cpufreq,
//! hwmon and thermal zones, powercap RAPL, NVIDIA NVML; macOS: the IOReport/IOKit/SMC/IOHID
//! records that `anekit-apple-sys` reads, converted by [`apple`]). Each call to [`Collector::sample`]
//! gives a [`Snapshot`]: monotonic and wall-clock timestamps, the measured interval since the
//! previous sample, and a list of [`Reading`]s in SI units (ratios, bytes, hertz, watts,
//! joules, degrees Celsius). Cumulative counters (CPU ticks, energy) become rates over the
//! measured interval; counters that wrap (RAPL `energy_uj`) are unwrapped by
//! [`counter::EnergyCounter`].
//!
//! A [`Sampler`] runs a collector on its own thread at a set interval, keeps a ring-buffer
//! [`History`] with min/mean/max per series, hands snapshots to subscribers, and attributes
//! energy and mean power to inference spans that the runtime marks through a
//! [`SpanRecorder`] (or measures exactly with [`Sampler::measure`]).
//!
//! Exports: [`export::json_line`] (one JSON object per sample) and
//! [`export::prometheus_text`] (Prometheus text format with node_exporter and dcgm-exporter
//! names), served over HTTP by [`export::MetricsServer`].
//!
//! Every source is optional: one that cannot be opened (no NVIDIA driver, RAPL readable only
//! by root, no hwmon in a virtual machine) is reported with the reason, and the others go on.
//!
//! # Dependencies and why
//!
//! - `nvml-wrapper` (Linux only): the maintained safe wrapper over NVIDIA's NVML; it loads
//!   `libnvidia-ml.so.1` at run time with `libloading`, so the crate builds and runs on
//!   machines without the NVIDIA driver, and this crate needs no `unsafe`.
//! - `tiny_http`: a small, synchronous HTTP/1.1 server (no async runtime) for the Prometheus
//!   endpoint; it reads each connection on its own thread, so a slow client does not block
//!   other scrapes.
//! - `rustix`: safe `sysconf(_SC_CLK_TCK)` (the unit of `/proc/stat`) and
//!   `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` for the overhead benchmark, without `unsafe`
//!   here.
//! - `anekit-apple-sys`: the macOS readers (IOReport, IOKit, SMC, IOHID, memory) and the
//!   plain records they return; its portable part (the records) builds everywhere, so the
//!   conversion in [`apple`] is tested on Linux. It does not pull in the ML backends.
//! - `serde`/`serde_json`: snapshots are data first; JSON is a rendering of the same struct.
//! - `thiserror`, `tracing`: the project's error and logging conventions.

#![forbid(unsafe_code)]

pub mod apple;
#[cfg(target_os = "macos")]
pub mod apple_macos;
pub mod collector;
pub mod counter;
mod error;
pub mod export;
pub mod history;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod reading;
pub mod sampler;
pub mod source;
pub mod span;
pub mod time;

pub use collector::{Collector, Snapshot};
pub use error::Error;
pub use history::{History, Series, Stats};
pub use reading::{Family, Metric, Reading, Unit};
pub use sampler::{Sampler, SamplerConfig};
pub use source::{Source, SourceState, SourceStatus, Unavailable};
pub use span::{SpanEnergy, SpanRecorder};
pub use time::Timestamp;

/// The collector for this machine: every source this OS has, opened at `root` (`/` normally;
/// a recorded or fixture tree in tests). Sources that cannot be opened are listed in the
/// snapshots' `sources` with the reason.
pub fn system_collector(root: &std::path::Path) -> Collector {
    let mut collector = Collector::new();
    #[cfg(target_os = "linux")]
    for opened in linux::open_all(root) {
        collector.push(opened);
    }
    #[cfg(target_os = "macos")]
    {
        let _ = root;
        collector.push(apple_macos::open());
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = root;
        collector.push(Err(Unavailable::new(
            "system",
            "no metric sources for this operating system",
        )));
    }
    collector
}
