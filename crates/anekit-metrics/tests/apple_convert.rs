//! The macOS conversion (IOReport deltas, IOAccelerator statistics, SMC and IOHID
//! temperatures, system power, memory) with constructed samples in anekit-apple-sys's own
//! records. Channel groups, names, unit labels and state names are the ones vladkens/macmon
//! and metaspartan/mactop read; the M1 DVFS tables are the E-cluster (600–2064 MHz, 5
//! states) and P-cluster (600–3204 MHz, 15 states) tables macmon prints for an M1. Dumps
//! from real machines are in tests/apple_fixtures.rs.
// Test helpers panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use anekit_apple_sys::hid::HidTemperature;
use anekit_apple_sys::iokit::GpuStatistics;
use anekit_apple_sys::ioreport::{Channel, ChannelValue, StateResidency as State};
use anekit_apple_sys::memory::VmCounters;
use anekit_apple_sys::smc::SmcReading;
use anekit_apple_sys::value::PropertyValue;
use anekit_metrics::apple::{self, AppleProvider, AppleSource, RawSample, SocInfo};
use anekit_metrics::export::prometheus_text;
use anekit_metrics::{Collector, Error, Metric, Snapshot};

const MHZ: u64 = 1_000_000;

fn m1() -> SocInfo {
    let e = [600, 972, 1332, 1704, 2064];
    let p = [
        600, 828, 1056, 1284, 1500, 1728, 1956, 2184, 2388, 2592, 2772, 2988, 3096, 3144, 3204,
    ];
    let mut cpu = BTreeMap::new();
    cpu.insert("ecpu".to_string(), e.iter().map(|f| f * MHZ).collect());
    cpu.insert("pcpu".to_string(), p.iter().map(|f| f * MHZ).collect());
    SocInfo {
        chip: "Apple M1".into(),
        cpu_freqs_hz: cpu,
        // The GPU table starts with an "off" level of 0 Hz.
        gpu_freqs_hz: [0, 396, 528, 720, 924, 1128, 1278]
            .iter()
            .map(|f| f * MHZ)
            .collect(),
    }
}

fn energy(name: &str, unit: &str, v: i64) -> Channel {
    Channel {
        group: apple::ENERGY_MODEL.into(),
        subgroup: String::new(),
        name: name.into(),
        unit: unit.into(),
        value: ChannelValue::Simple(v),
    }
}

fn states(group: &str, subgroup: &str, name: &str, s: &[(&str, i64)]) -> Channel {
    Channel {
        group: group.into(),
        subgroup: subgroup.into(),
        name: name.into(),
        unit: "24Mticks".into(),
        value: ChannelValue::States(
            s.iter()
                .map(|(n, r)| State {
                    name: n.to_string(),
                    residency: *r,
                })
                .collect(),
        ),
    }
}

fn core(name: &str, s: &[(&str, i64)]) -> Channel {
    states(apple::CPU_STATS, apple::CPU_CORE_STATES, name, s)
}

fn sample() -> RawSample {
    let v = |i: usize| format!("V{i}P{}", 14 - i);
    let mut pcpu0: Vec<(String, i64)> = vec![("IDLE".into(), 500), ("DOWN".into(), 500)];
    pcpu0.extend((0..15).map(|i| (v(i), if i == 14 { 1000 } else { 0 })));
    let pcpu0: Vec<(&str, i64)> = pcpu0.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    RawSample {
        elapsed: Duration::from_millis(500),
        channels: vec![
            energy("CPU Energy", "mJ", 1500),
            energy("GPU Energy", "nJ", 250_000_000),
            energy("ANE", "mJ", 0),
            energy("DRAM", "mJ", 400),
            energy("GPU SRAM0", "uJ", 10_000),
            // Per-core rails are part of "CPU Energy": not counted again.
            energy("ECPU0", "mJ", 300),
            energy("PCPU", "mJ", 900),
            // Not an energy unit: skipped.
            energy("ANE0", "24Mticks", 77),
            core(
                "ECPU0",
                &[
                    ("IDLE", 600),
                    ("V0P4", 100),
                    ("V1P3", 0),
                    ("V2P2", 0),
                    ("V3P1", 0),
                    ("V4P0", 300),
                ],
            ),
            core(
                "ECPU1",
                &[
                    ("IDLE", 1000),
                    ("V0P4", 0),
                    ("V1P3", 0),
                    ("V2P2", 0),
                    ("V3P1", 0),
                    ("V4P0", 0),
                ],
            ),
            core("PCPU0", &pcpu0),
            states(
                apple::GPU_STATS,
                apple::GPU_STATES,
                "GPUPH",
                &[
                    ("OFF", 750),
                    ("P1", 125),
                    ("P2", 0),
                    ("P3", 0),
                    ("P4", 0),
                    ("P5", 0),
                    ("P6", 125),
                ],
            ),
        ],
        gpu: Some(gpu_statistics()),
        smc_temperatures: vec![
            smc("Tp09", 60.0),
            smc("Tp0T", 62.0),
            smc("Te05", 50.0),
            smc("Tg0f", 45.0),
            // A bogus reading (macmon #68): dropped.
            smc("Tg05", 5.9),
            // Not a CPU or GPU sensor.
            smc("Ts0P", 30.0),
        ],
        // The SMC has CPU sensors, so the HID sensors are not used (macmon's choice).
        hid_temperatures: vec![hid("GPU MTR Temp Sensor1", 47.0)],
        system_power_w: Some(7.25),
        memory: Some(VmCounters {
            total_bytes: 16 << 30,
            page_size: 16384,
            active: (11 << 30) / 16384,
            swap_total: 2 << 30,
            swap_used: 1 << 29,
            ..VmCounters::default()
        }),
    }
}

fn smc(key: &str, value: f64) -> SmcReading {
    SmcReading {
        key: key.into(),
        data_type: "flt ".into(),
        value,
    }
}

fn hid(product: &str, celsius: f64) -> HidTemperature {
    HidTemperature {
        product: product.into(),
        celsius,
    }
}

fn gpu_statistics() -> GpuStatistics {
    let mut stats = BTreeMap::new();
    for (k, v) in [
        ("Device Utilization %", 37),
        ("Renderer Utilization %", 35),
        ("Tiler Utilization %", 12),
        ("In use system memory", 6_422_528),
        ("Alloc system memory", 2_411_724_800),
    ] {
        stats.insert(k.to_string(), PropertyValue::Integer(v));
    }
    GpuStatistics {
        class: "AGXAcceleratorG13G_B0".into(),
        registry_id: 4_294_968_000,
        model: Some("Apple M1".into()),
        core_count: Some(8),
        statistics: stats,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

struct Recorded {
    soc: SocInfo,
    samples: Vec<RawSample>,
}

impl AppleProvider for Recorded {
    fn soc(&self) -> &SocInfo {
        &self.soc
    }
    fn sample(&mut self) -> Result<RawSample, Error> {
        if self.samples.is_empty() {
            return Err(Error::Source {
                source_name: "apple".into(),
                detail: "IOReport subscription lost".into(),
            });
        }
        Ok(self.samples.remove(0))
    }
}

fn collect(samples: Vec<RawSample>) -> Vec<Snapshot> {
    let n = samples.len() + 1;
    let mut c = Collector::new();
    c.add(AppleSource::new(Recorded { soc: m1(), samples }));
    (0..n).map(|_| c.sample()).collect()
}

#[test]
fn m1_sample_converts() {
    let snaps = collect(vec![sample()]);
    let s = &snaps[0];
    let f = |m, c: &str| s.find(m, c, &[]);
    // Energy over 0.5 s, units from the labels.
    assert!(close(f(Metric::Power, "cpu").unwrap(), 3.0));
    assert!(close(f(Metric::Power, "gpu").unwrap(), 0.5));
    assert_eq!(f(Metric::Power, "ane"), Some(0.0));
    assert!(close(f(Metric::Power, "dram").unwrap(), 0.8));
    assert!(close(f(Metric::Power, "gpu_sram").unwrap(), 0.02));
    assert!(close(f(Metric::Power, "soc").unwrap(), 3.5));
    assert!(close(f(Metric::Energy, "cpu").unwrap(), 1.5));
    // E cluster: ECPU0 40 % active at (100·600 + 300·2064)/400 = 1698 MHz; ECPU1 idle.
    assert!(close(f(Metric::ActiveRatio, "ecpu").unwrap(), 0.2));
    assert!(close(f(Metric::Frequency, "ecpu").unwrap(), 1698e6));
    // P cluster: DOWN is not active; the top state is 3204 MHz.
    assert!(close(f(Metric::ActiveRatio, "pcpu").unwrap(), 0.5));
    assert!(close(f(Metric::Frequency, "pcpu").unwrap(), 3204e6));
    // All cores: (400 + 1000) / (1000 + 1000 + 2000).
    assert!(close(f(Metric::ActiveRatio, "cpu").unwrap(), 0.35));
    // GPU: 25 % active; the table's 0 Hz level is dropped: (125·396 + 125·1278)/250.
    assert!(close(f(Metric::ActiveRatio, "gpu").unwrap(), 0.25));
    assert!(close(f(Metric::Frequency, "gpu").unwrap(), 837e6));
    assert!(close(f(Metric::Utilisation, "gpu").unwrap(), 0.37));
    assert_eq!(
        s.find(Metric::Memory, "gpu", &[("field", "in_use")]),
        Some(6_422_528.0)
    );
    // Temperatures: means of the valid SMC sensors (the HID GPU sensor is not mixed in).
    assert!(close(f(Metric::Temperature, "cpu").unwrap(), 172.0 / 3.0));
    assert_eq!(
        s.find(
            Metric::Temperature,
            "gpu",
            &[("sensors", "1"), ("source", "smc")]
        ),
        Some(45.0)
    );
    // The SMC's PSTR: the whole system's power.
    assert_eq!(f(Metric::Power, "system"), Some(7.25));
    assert_eq!(
        s.find(Metric::Memory, "memory", &[("field", "used")]),
        Some((11u64 << 30) as f64)
    );
    // Exported under anekit names.
    let text = prometheus_text(s);
    assert!(
        text.contains("anekit_power_watts{component=\"ane\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("anekit_frequency_hertz{component=\"pcpu\"} 3204000000\n"));
    // When the provider fails, the source reports the error and the collector goes on.
    assert!(matches!(
        &snaps[1].sources[0].state,
        anekit_metrics::SourceState::Error { message } if message.contains("IOReport subscription lost")
    ));
}

#[test]
fn energy_totals_accumulate_and_ultra_dies_are_summed() {
    let mut second = sample();
    second.channels = vec![
        energy("DIE_0_CPU Energy", "mJ", 1000),
        energy("DIE_1_CPU Energy", "uJ", 500_000),
        core("DIE_1_PCPU1_CPU0", &[("IDLE", 1), ("V0P1", 1)]),
    ];
    second.elapsed = Duration::from_secs(1);
    second.system_power_w = None;
    second.gpu = None;
    let snaps = collect(vec![sample(), second]);
    let s = &snaps[1];
    assert!(close(s.find(Metric::Power, "cpu", &[]).unwrap(), 1.5));
    assert!(close(s.find(Metric::Energy, "cpu", &[]).unwrap(), 3.0));
    // The Ultra core counts as P cluster; its one active state V0P1 runs at entry 0 of the
    // P table (600 MHz), whatever the table's length.
    assert!(close(
        s.find(Metric::ActiveRatio, "pcpu", &[]).unwrap(),
        0.5
    ));
    assert!(close(
        s.find(Metric::Frequency, "pcpu", &[]).unwrap(),
        600e6
    ));
    // What the second sample did not read is absent, never 0.
    assert_eq!(s.find(Metric::Power, "system", &[]), None);
    assert_eq!(s.find(Metric::Utilisation, "gpu", &[]), None);
}

#[test]
fn residency_and_names() {
    let st = |v: &[(&str, i64)]| -> Vec<State> {
        v.iter()
            .map(|(n, r)| State {
                name: n.to_string(),
                residency: *r,
            })
            .collect()
    };
    // No time at all: nothing to say.
    assert_eq!(apple::residency(&st(&[("IDLE", 0)]), &[]), None);
    // Negative residencies (corrupt delta) count as zero.
    let r = apple::residency(&st(&[("IDLE", -5), ("P1", 10)]), &[1]).unwrap();
    assert_eq!(r.active_ratio, 1.0);
    assert_eq!(r.mean_freq_hz, Some(1.0));
    // One unindexed active state against a longer table: no frequency.
    let r = apple::residency(&st(&[("IDLE", 1), ("P1", 1)]), &[1, 2]).unwrap();
    assert_eq!(r.mean_freq_hz, None);
    assert_eq!(apple::energy_to_joules(5, "nJ"), Some(5e-9));
    assert_eq!(apple::energy_to_joules(5, "events"), None);
    assert_eq!(apple::energy_component("ANE0_1"), Some("ane"));
    assert_eq!(apple::energy_component("PCPU0_SRAM"), None);
    assert_eq!(apple::cpu_cluster("MCPU1"), Some("mcpu"));
    assert_eq!(apple::cpu_cluster("DIE_0_ECPU_CPU3"), Some("ecpu"));
    assert_eq!(apple::cpu_cluster("GPUPH"), None);
}

#[test]
fn hid_sensors_stand_in_when_the_smc_has_no_cpu_temperatures() {
    let mut raw = sample();
    raw.smc_temperatures = vec![smc("Tg0f", 45.0)];
    raw.hid_temperatures = vec![
        hid("pACC MTR Temp Sensor0", 58.0),
        hid("eACC MTR Temp Sensor1", 48.0),
        hid("GPU MTR Temp Sensor1", 47.0),
        hid("PMU tdie1", 40.0),
    ];
    let mut totals = BTreeMap::new();
    let r = apple::convert(&raw, &m1(), &mut totals);
    let t = |c: &str| {
        r.iter()
            .find(|x| x.metric == Metric::Temperature && x.component == c)
            .map(|x| (x.value, x.get_label("source").map(str::to_string)))
    };
    assert_eq!(t("cpu"), Some((53.0, Some("hid".into()))));
    assert_eq!(t("gpu"), Some((47.0, Some("hid".into()))));
}

#[test]
fn m4_and_later_frequencies_are_labelled_as_requested_levels() {
    let mut soc = m1();
    soc.chip = "Apple M4 Pro".into();
    let mut totals = BTreeMap::new();
    let r = apple::convert(&sample(), &soc, &mut totals);
    let f = r
        .iter()
        .find(|x| x.metric == Metric::Frequency && x.component == "pcpu")
        .unwrap();
    assert_eq!(f.get_label("basis"), Some("requested"));
    let r = apple::convert(&sample(), &m1(), &mut totals);
    let f = r
        .iter()
        .find(|x| x.metric == Metric::Frequency && x.component == "pcpu")
        .unwrap();
    assert_eq!(f.get_label("basis"), None);
}
