//! The NVML source on a real NVIDIA GPU. Without the NVIDIA driver the test says so and
//! passes, unless `ANEKIT_REQUIRE_NVML=1` (set where a GPU is expected), where it fails.
// Test code: panics are the failure reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::time::Duration;

use anekit_metrics::export::{json_line, prometheus_text};
use anekit_metrics::linux::nvml::Nvml;
use anekit_metrics::{Collector, Metric, Sampler, SamplerConfig, SourceState};

fn open() -> Option<Nvml> {
    match Nvml::open() {
        Ok(n) => Some(n),
        Err(u) => {
            assert!(
                std::env::var("ANEKIT_REQUIRE_NVML").as_deref() != Ok("1"),
                "ANEKIT_REQUIRE_NVML=1 but NVML is unavailable: {}",
                u.reason
            );
            eprintln!("NVML unavailable, test skipped: {}", u.reason);
            None
        }
    }
}

#[test]
fn nvml_reads_real_gpus() {
    let Some(nvml) = open() else { return };
    println!("driver {}", nvml.driver_version());
    for (i, name, uuid) in nvml.gpus() {
        println!("GPU {i}: {name} {uuid}");
    }
    let n = nvml.gpus().len();
    let mut c = Collector::new();
    c.add(nvml);
    // Precise samples read the energy counter at both ends of the interval.
    let s0 = c.sample_precise();
    std::thread::sleep(Duration::from_millis(500));
    let s1 = c.sample_precise();
    // A periodic sample in between energy reads: the energy counter was not read, so it is
    // absent (never a stale or zero value); the power comes from NVML's power reading.
    std::thread::sleep(Duration::from_millis(200));
    let s2 = c.sample();
    assert_eq!(s1.sources[0].state, SourceState::Ok);
    println!("{}", json_line(&s1).unwrap());
    println!("{}", prometheus_text(&s1));
    for g in 0..n {
        let gpu = format!("gpu{g}");
        let f = |m: Metric, labels: &[(&str, &str)]| s1.find(m, &gpu, labels);
        let util = f(Metric::Utilisation, &[]).expect("utilisation");
        assert!((0.0..=1.0).contains(&util), "{util}");
        let used = f(Metric::Memory, &[("field", "used")]).expect("memory used");
        let total = f(Metric::Memory, &[("field", "total")]).expect("memory total");
        assert!(used <= total && total > 1e9, "{used} {total}");
        let power = f(Metric::Power, &[]).expect("power");
        let limit = f(Metric::PowerLimit, &[]).unwrap_or(2000.0);
        assert!(
            power > 1.0 && power < limit * 1.5,
            "{power} W, limit {limit} W"
        );
        let temp = f(Metric::Temperature, &[]).expect("temperature");
        assert!((5.0..110.0).contains(&temp), "{temp}");
        let sm = f(Metric::Frequency, &[("clock", "sm")]).expect("SM clock");
        assert!(sm > 1e8 && sm < 5e9, "{sm}");
        // The energy counter (Volta and later) turned into joules over the measured interval.
        if let Some(e) = f(Metric::Energy, &[]) {
            let e0 = s0.find(Metric::Energy, &gpu, &[]).unwrap();
            assert_eq!(e0, 0.0);
            let dt = s1.interval_s.unwrap();
            assert!(
                (e / dt - power).abs() < 1e-6 * power.max(1.0),
                "{e} J / {dt} s vs {power} W"
            );
            assert_eq!(
                s2.find(Metric::Energy, &gpu, &[]),
                None,
                "a counter not read in a sample is absent from it"
            );
            let p2 = s2
                .find(Metric::Power, &gpu, &[])
                .expect("power from nvmlDeviceGetPowerUsage");
            assert!(p2 > 1.0 && p2 < limit * 1.5, "{p2}");
        }
    }
}

#[test]
fn gpu_energy_is_attributed_to_a_span() {
    let Some(nvml) = open() else { return };
    let mut c = Collector::new();
    c.add(nvml);
    let sampler = Sampler::start(
        c,
        SamplerConfig {
            interval: Duration::from_millis(100),
            history: 100,
        },
    )
    .unwrap();
    let ((), e) = sampler.measure("idle-wait", "cuda", || {
        std::thread::sleep(Duration::from_millis(1500))
    });
    println!("{}", serde_json::to_string(&e).unwrap());
    assert!(e.coverage > 0.99, "{e:?}");
    let g = e.components.iter().find(|c| c.component == "gpu0").unwrap();
    assert!(g.mean_power_w > 1.0 && g.energy_j > 1.0, "{g:?}");
    assert!((g.energy_j - g.mean_power_w * e.duration_s).abs() < 1e-6 * g.energy_j);
    sampler.stop();
}
