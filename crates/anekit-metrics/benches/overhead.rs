//! Sampler overhead: the CPU time the sampler costs, as a share of one core at 1 Hz.
//! Target: under 0.5 % of one core.
//!
//! Run: `cargo bench -p anekit-metrics --bench overhead` (`ANEKIT_OVERHEAD_SECS=N` sets the
//! length of the real 1 Hz run, default 10 s; `ANEKIT_METRICS_ROOT` the /proc and /sys root).
//!
//! 1. Each open source of this machine sampled 200 times back to back: CPU time per sample
//!    (`CLOCK_THREAD_CPUTIME_ID`), hence its share of a core at 1 Hz.
//! 2. A real `Sampler` at 1 Hz (thread, history, wake-ups included) while this thread
//!    sleeps: process CPU time (`CLOCK_PROCESS_CPUTIME_ID`) over wall time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anekit_metrics::{Sampler, SamplerConfig};
use rustix::time::{ClockId, clock_gettime};

fn cpu_s(id: ClockId) -> f64 {
    let t = clock_gettime(id);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn main() {
    let root = std::env::var_os("ANEKIT_METRICS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let secs: u64 = std::env::var("ANEKIT_OVERHEAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    const N: usize = 200;

    println!("anekit-metrics sampler overhead (root {})", root.display());
    println!();
    println!(
        "{:<14} {:>10} {:>16} {:>14}",
        "source", "readings", "CPU µs/sample", "% core @1 Hz"
    );
    let mut total_us = 0.0;
    #[cfg(target_os = "linux")]
    for opened in anekit_metrics::linux::open_all(&root) {
        match opened {
            Ok(mut s) => {
                let mut out = Vec::new();
                // Prime (first sample opens files, sets previous counters).
                let _ = s.sample(Instant::now(), &mut out);
                let t0 = cpu_s(ClockId::ThreadCPUTime);
                for _ in 0..N {
                    out.clear();
                    if let Err(e) = s.sample(Instant::now(), &mut out) {
                        println!("{:<14} error: {e}", s.name());
                        break;
                    }
                }
                let us = (cpu_s(ClockId::ThreadCPUTime) - t0) / N as f64 * 1e6;
                total_us += us;
                println!(
                    "{:<14} {:>10} {:>16.1} {:>13.4}%",
                    s.name(),
                    out.len(),
                    us,
                    us / 1e6 * 100.0
                );
            }
            Err(u) => println!("{:<14} unavailable: {}", u.source, u.reason),
        }
    }
    println!(
        "{:<14} {:>10} {:>16.1} {:>13.4}%",
        "all sources",
        "",
        total_us,
        total_us / 1e6 * 100.0
    );

    #[cfg(target_os = "linux")]
    nvml_queries();

    println!();
    println!("real sampler at 1 Hz for {secs} s, steady state (thread + history + wake-ups):");
    let collector = anekit_metrics::system_collector(&root);
    let sampler = match Sampler::start(
        collector,
        SamplerConfig {
            interval: Duration::from_secs(1),
            history: 300,
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            println!("cannot start the sampler: {e}");
            std::process::exit(1);
        }
    };
    // Steady state: opening the sources and the first (priming) sample are not counted.
    let cpu0 = cpu_s(ClockId::ProcessCPUTime);
    let wall0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let samples = sampler.with_history(|h| h.len());
    sampler.stop();
    let cpu = cpu_s(ClockId::ProcessCPUTime) - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    let pct = cpu / wall * 100.0;
    println!("{:<28} {:>12}", "samples", samples);
    println!("{:<28} {:>12.3}", "wall s", wall);
    println!("{:<28} {:>12.3}", "process CPU ms", cpu * 1e3);
    println!("{:<28} {:>11.4}%", "share of one core", pct);
    println!(
        "{:<28} {:>12}",
        "target (< 0.5 %)",
        if pct < 0.5 { "met" } else { "NOT met" }
    );
}

/// CPU time of each NVML query on GPU 0 (each is a driver call), to see where the NVML
/// source's time goes.
#[cfg(target_os = "linux")]
fn nvml_queries() {
    use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
    let Ok(nvml) = nvml_wrapper::Nvml::init() else {
        return;
    };
    let Ok(d) = nvml.device_by_index(0) else {
        return;
    };
    const N: usize = 100;
    let time = |name: &str, f: &dyn Fn() -> bool| {
        let t0 = cpu_s(ClockId::ThreadCPUTime);
        let mut ok = true;
        for _ in 0..N {
            ok &= f();
        }
        let us = (cpu_s(ClockId::ThreadCPUTime) - t0) / N as f64 * 1e6;
        println!(
            "  {name:<28} {us:>10.1} µs{}",
            if ok { "" } else { "  (failed)" }
        );
    };
    println!();
    println!("NVML queries on GPU 0 (CPU time per call, {N} calls each):");
    time("device_by_index", &|| nvml.device_by_index(0).is_ok());
    time("utilization_rates", &|| d.utilization_rates().is_ok());
    time("memory_info", &|| d.memory_info().is_ok());
    time("total_energy_consumption", &|| {
        d.total_energy_consumption().is_ok()
    });
    time("power_usage", &|| d.power_usage().is_ok());
    time("enforced_power_limit", &|| d.enforced_power_limit().is_ok());
    time("temperature(Gpu)", &|| {
        d.temperature(TemperatureSensor::Gpu).is_ok()
    });
    time("clock_info(SM)", &|| d.clock_info(Clock::SM).is_ok());
    time("clock_info(Memory)", &|| {
        d.clock_info(Clock::Memory).is_ok()
    });
}
