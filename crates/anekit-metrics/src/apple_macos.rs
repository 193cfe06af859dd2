//! The macOS source: anekit-apple's IOReport, IOKit, SMC and memory readers behind
//! [`AppleProvider`](crate::apple::AppleProvider).
//!
//! anekit-apple hands over its own plain structs; this module converts them field by field
//! into [`crate::apple`]'s sample types, and reads the chip's DVFS tables out of the raw
//! `pmgr` properties ([`soc_info`]). The conversions are plain functions, unit-tested on any
//! OS with constructed samples; [`MacProvider`] and [`open`] (macOS only) wire them to the
//! hardware and have only been type-checked (no Mac was available; docs/apple.md).

use std::collections::BTreeMap;

use anekit_apple::iokit::{GpuStatistics, PmgrTables};
use anekit_apple::ioreport as ior;
use anekit_apple::memory::VmCounters;
use anekit_apple::smc::{SmcReading, is_temperature_key};

use crate::apple::{
    Channel, ChannelValue, GpuPerformance, MemoryStats, SocInfo, State, Temperature,
};

/// An IOReport channel as [`crate::apple::Channel`]; `None` for formats the conversion does
/// not use (histograms).
pub fn channel(c: &ior::Channel) -> Option<Channel> {
    let value = match &c.value {
        ior::ChannelValue::Simple(v) => ChannelValue::Simple(*v),
        ior::ChannelValue::States(states) => ChannelValue::States(
            states
                .iter()
                .map(|s| State {
                    name: s.name.clone(),
                    residency: s.residency,
                })
                .collect(),
        ),
        ior::ChannelValue::Unsupported(_) => return None,
    };
    Some(Channel {
        group: c.group.clone(),
        subgroup: c.subgroup.clone(),
        name: c.name.clone(),
        unit: c.unit.clone(),
        value,
    })
}

/// The GPU figures of an IOAccelerator's `PerformanceStatistics`.
pub fn gpu_performance(g: &GpuStatistics) -> GpuPerformance {
    let f = |k: &str| g.statistics.get(k).and_then(|v| v.as_f64());
    let u = |k: &str| g.statistics.get(k).and_then(|v| v.as_u64());
    GpuPerformance {
        device_utilization_pct: f("Device Utilization %"),
        renderer_utilization_pct: f("Renderer Utilization %"),
        tiler_utilization_pct: f("Tiler Utilization %"),
        in_use_system_memory: u("In use system memory"),
        alloc_system_memory: u("Alloc system memory"),
    }
}

/// The temperature sensors among SMC readings (keys `T…`).
pub fn temperatures(readings: &[SmcReading]) -> Vec<Temperature> {
    readings
        .iter()
        .filter(|r| is_temperature_key(&r.key) && r.value.is_finite())
        .map(|r| Temperature {
            key: r.key.clone(),
            celsius: r.value,
        })
        .collect()
}

/// Memory as Activity Monitor counts it: used = (active + inactive + wired + speculative +
/// compressor − purgeable − external) pages (docs/references.md#memory).
pub fn memory_stats(v: &VmCounters) -> MemoryStats {
    let pages = (v.active + v.inactive + v.wired + v.speculative + v.compressor)
        .saturating_sub(v.purgeable + v.external);
    MemoryStats {
        total: v.total_bytes,
        used: pages.saturating_mul(v.page_size),
        swap_total: v.swap_total,
        swap_used: v.swap_used,
    }
}

/// The frequencies of a `voltage-states*` property (8-byte records: frequency u32 LE,
/// voltage u32 LE), in the table's own unit. A trailing partial record is ignored.
pub fn dvfs_table(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|r| u64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]])))
        .collect()
}

/// A CPU or GPU table in hertz. Tables are in Hz on M1–M3 and A-series and in kHz on M4 and
/// later (macmon `cpu_freq_scale`); since every Apple clock lies between 100 MHz and 10 GHz,
/// a table whose largest entry is below 10⁷ is taken as kHz.
pub fn to_hz(table: &[u64]) -> Vec<u64> {
    let max = table.iter().copied().max().unwrap_or(0);
    if max > 0 && max < 10_000_000 {
        table.iter().map(|f| f.saturating_mul(1000)).collect()
    } else {
        table.to_vec()
    }
}

/// `acc-clusters` (M5 and later): 8-byte entries, byte 0 = `voltage-states` index, byte 1 =
/// cluster type (higher = faster tier).
pub fn acc_clusters(bytes: &[u8]) -> Vec<(u8, u8)> {
    bytes.chunks_exact(8).map(|e| (e[0], e[1])).collect()
}

fn table(tables: &PmgrTables, key: &str) -> Option<Vec<u64>> {
    let t = to_hz(&dvfs_table(tables.voltage_states.get(key)?));
    t.iter().any(|&f| f > 0).then_some(t)
}

/// The chip's fixed facts from its brand string and `pmgr` tables.
///
/// CPU tables: with `acc-clusters` (M5), the fastest cluster type's table is the `pcpu`
/// table and the next one is used for both `ecpu` and `mcpu` (sources disagree on the M5
/// tier names, docs/references.md#frequency-tables-and-cpu-tiers; the residency conversion uses whichever
/// kind the channels carry). Without it (M1–M4), `voltage-states1-sram` is the E-cluster
/// and `voltage-states5-sram` the P-cluster. GPU: `voltage-states9`. The non-`-sram` CPU
/// tables hold zero frequencies and are not used.
pub fn soc_info(brand: &str, tables: &PmgrTables) -> SocInfo {
    let mut cpu: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let clusters = tables
        .acc_clusters
        .as_deref()
        .map(acc_clusters)
        .unwrap_or_default();
    if clusters.is_empty() {
        if let Some(t) = table(tables, "voltage-states1-sram") {
            cpu.insert("ecpu".into(), t);
        }
        if let Some(t) = table(tables, "voltage-states5-sram") {
            cpu.insert("pcpu".into(), t);
        }
    } else {
        let mut by_type = clusters.clone();
        by_type.sort_by_key(|e| std::cmp::Reverse(e.1));
        let mut found = by_type
            .iter()
            .filter_map(|(idx, _)| table(tables, &format!("voltage-states{idx}-sram")));
        if let Some(t) = found.next() {
            cpu.insert("pcpu".into(), t);
        }
        if let Some(t) = found.next() {
            cpu.insert("ecpu".into(), t.clone());
            cpu.insert("mcpu".into(), t);
        }
    }
    SocInfo {
        chip: brand.to_string(),
        cpu_freqs_hz: cpu,
        gpu_freqs_hz: table(tables, "voltage-states9").unwrap_or_default(),
    }
}

#[cfg(target_os = "macos")]
pub use imp::{MacProvider, open};

#[cfg(target_os = "macos")]
mod imp {
    use super::*;
    use crate::apple::{AppleProvider, AppleSource, RawSample};
    use crate::{Error, Source, Unavailable};

    /// The macOS provider: one IOReport subscription (energy, CPU and GPU residencies), the
    /// GPU's statistics, the SMC's temperature sensors and the memory counters.
    #[derive(Debug)]
    pub struct MacProvider {
        subscription: ior::Subscription,
        smc: Option<anekit_apple::smc::Smc>,
        soc: SocInfo,
    }

    impl MacProvider {
        /// Subscribes and opens what can be opened (the SMC is optional).
        pub fn new() -> Result<Self, anekit_apple::AppleError> {
            let subscription = ior::Subscription::new(&ior::DEFAULT_GROUPS)?;
            let smc = match anekit_apple::smc::Smc::open() {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::info!(error = %e, "SMC unavailable: no temperatures");
                    None
                }
            };
            let brand =
                anekit_apple::sysctl::string("machdep.cpu.brand_string").unwrap_or_default();
            let soc = match anekit_apple::iokit::pmgr_tables() {
                Ok(t) => soc_info(&brand, &t),
                Err(e) => {
                    tracing::info!(error = %e, "no DVFS tables: no frequencies");
                    SocInfo {
                        chip: brand,
                        ..SocInfo::default()
                    }
                }
            };
            Ok(Self {
                subscription,
                smc,
                soc,
            })
        }
    }

    impl AppleProvider for MacProvider {
        fn soc(&self) -> &SocInfo {
            &self.soc
        }

        fn sample(&mut self) -> Result<RawSample, Error> {
            let s = self
                .subscription
                .sample()
                .map_err(|e| Error::source("apple", e.to_string()))?;
            let gpu = anekit_apple::iokit::gpu_statistics()
                .ok()
                .and_then(|g| g.first().map(gpu_performance));
            let temps = self
                .smc
                .as_ref()
                .map(|smc| temperatures(&smc.temperatures()))
                .unwrap_or_default();
            let memory = anekit_apple::memory::read().ok().map(|v| memory_stats(&v));
            Ok(RawSample {
                elapsed: s.elapsed,
                channels: s.channels.iter().filter_map(channel).collect(),
                gpu,
                temperatures: temps,
                memory,
            })
        }
    }

    /// The macOS source, or why it cannot be opened.
    pub fn open() -> Result<Box<dyn Source>, Unavailable> {
        MacProvider::new()
            .map(|p| Box::new(AppleSource::new(p)) as Box<dyn Source>)
            .map_err(|e| Unavailable::new("apple", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anekit_apple::value::PropertyValue;

    use super::*;
    use crate::Metric;
    use crate::apple::{RawSample, convert};

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
    fn channels_convert_field_by_field() {
        let simple = ior::Channel {
            group: "Energy Model".into(),
            subgroup: String::new(),
            name: "CPU Energy".into(),
            unit: "mJ".into(),
            value: ior::ChannelValue::Simple(1500),
        };
        let c = channel(&simple).unwrap();
        assert_eq!(c.group, "Energy Model");
        assert_eq!(c.name, "CPU Energy");
        assert_eq!(c.unit, "mJ");
        assert_eq!(c.value, ChannelValue::Simple(1500));
        let states = ior::Channel {
            group: "GPU Stats".into(),
            subgroup: "GPU Performance States".into(),
            name: "GPUPH".into(),
            unit: "24Mticks".into(),
            value: ior::ChannelValue::States(vec![
                ior::StateResidency {
                    name: "OFF".into(),
                    residency: 10,
                },
                ior::StateResidency {
                    name: "P1".into(),
                    residency: 30,
                },
            ]),
        };
        match channel(&states).unwrap().value {
            ChannelValue::States(s) => {
                assert_eq!(s.len(), 2);
                assert_eq!(s[1].name, "P1");
                assert_eq!(s[1].residency, 30);
            }
            other => panic!("{other:?}"),
        }
        let hist = ior::Channel {
            value: ior::ChannelValue::Unsupported(3),
            ..simple
        };
        assert_eq!(channel(&hist), None);
    }

    #[test]
    fn gpu_statistics_and_temperatures() {
        let mut stats = BTreeMap::new();
        stats.insert(
            "Device Utilization %".to_string(),
            PropertyValue::Integer(42),
        );
        stats.insert(
            "Renderer Utilization %".to_string(),
            PropertyValue::Integer(40),
        );
        stats.insert(
            "In use system memory".to_string(),
            PropertyValue::Integer(6_400_000),
        );
        stats.insert(
            "Alloc system memory".to_string(),
            PropertyValue::Integer(2_410_000_000),
        );
        let g = gpu_performance(&GpuStatistics {
            class: "AGXAcceleratorG13G_B0".into(),
            registry_id: 4_294_968_000,
            model: Some("Apple M1".into()),
            core_count: Some(8),
            statistics: stats,
        });
        assert_eq!(g.device_utilization_pct, Some(42.0));
        assert_eq!(g.renderer_utilization_pct, Some(40.0));
        assert_eq!(g.tiler_utilization_pct, None);
        assert_eq!(g.in_use_system_memory, Some(6_400_000));
        assert_eq!(g.alloc_system_memory, Some(2_410_000_000));

        let t = temperatures(&[
            SmcReading {
                key: "Tp09".into(),
                data_type: "flt ".into(),
                value: 48.5,
            },
            SmcReading {
                key: "PSTR".into(),
                data_type: "flt ".into(),
                value: 12.0,
            },
            SmcReading {
                key: "Tg0f".into(),
                data_type: "flt ".into(),
                value: f64::NAN,
            },
        ]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "Tp09");
        assert_eq!(t[0].celsius, 48.5);
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
        let m = memory_stats(&v);
        assert_eq!(m.used, 190 * 16384);
        assert_eq!(m.total, 16 << 30);
        assert_eq!(m.swap_used, 1 << 30);
    }

    #[test]
    fn dvfs_tables_in_hz_and_khz() {
        assert_eq!(
            dvfs_table(&records(&[600_000_000, 972_000_000])),
            [600_000_000, 972_000_000]
        );
        assert_eq!(
            dvfs_table(&[1, 2, 3]),
            Vec::<u64>::new(),
            "partial record ignored"
        );
        assert_eq!(
            to_hz(&[600_000_000, 3_228_000_000]),
            [600_000_000, 3_228_000_000]
        );
        assert_eq!(
            to_hz(&[1_020_000, 4_512_000]),
            [1_020_000_000, 4_512_000_000]
        );
        assert_eq!(to_hz(&[0, 0]), [0, 0]);
    }

    #[test]
    fn m1_tables_drive_the_frequency_conversion() {
        let mut t = PmgrTables::default();
        t.voltage_states.insert(
            "voltage-states1-sram".into(),
            records(&[600_000_000, 972_000_000, 2_064_000_000]),
        );
        t.voltage_states.insert(
            "voltage-states5-sram".into(),
            records(&[600_000_000, 3_204_000_000]),
        );
        t.voltage_states
            .insert("voltage-states1".into(), records(&[0, 0, 0]));
        t.voltage_states.insert(
            "voltage-states9".into(),
            records(&[0, 396_000_000, 1_278_000_000]),
        );
        let soc = soc_info("Apple M1", &t);
        assert_eq!(soc.chip, "Apple M1");
        assert_eq!(
            soc.cpu_freqs_hz["ecpu"],
            [600_000_000, 972_000_000, 2_064_000_000]
        );
        assert_eq!(soc.cpu_freqs_hz["pcpu"], [600_000_000, 3_204_000_000]);
        assert_eq!(soc.gpu_freqs_hz, [0, 396_000_000, 1_278_000_000]);

        // A sample through the metrics crate's conversion: the E-core runs half its active
        // time at each of its two upper states.
        let raw = RawSample {
            elapsed: Duration::from_secs(1),
            channels: vec![
                channel(&ior::Channel {
                    group: "CPU Stats".into(),
                    subgroup: "CPU Core Performance States".into(),
                    name: "ECPU0".into(),
                    unit: "24Mticks".into(),
                    value: ior::ChannelValue::States(vec![
                        ior::StateResidency {
                            name: "IDLE".into(),
                            residency: 50,
                        },
                        ior::StateResidency {
                            name: "V0P5".into(),
                            residency: 0,
                        },
                        ior::StateResidency {
                            name: "V1P4".into(),
                            residency: 25,
                        },
                        ior::StateResidency {
                            name: "V2P3".into(),
                            residency: 25,
                        },
                    ]),
                })
                .unwrap(),
                channel(&ior::Channel {
                    group: "Energy Model".into(),
                    subgroup: String::new(),
                    name: "ANE".into(),
                    unit: "mJ".into(),
                    value: ior::ChannelValue::Simple(2000),
                })
                .unwrap(),
            ],
            ..RawSample::default()
        };
        let mut totals = BTreeMap::new();
        let readings = convert(&raw, &soc, &mut totals);
        let find = |m: Metric, c: &str| {
            readings
                .iter()
                .find(|r| r.metric == m && r.component == c)
                .map(|r| r.value)
        };
        assert_eq!(find(Metric::ActiveRatio, "ecpu"), Some(0.5));
        assert_eq!(
            find(Metric::Frequency, "ecpu"),
            Some((972e6 + 2064e6) / 2.0)
        );
        assert_eq!(find(Metric::Power, "ane"), Some(2.0));
    }

    #[test]
    fn m5_tables_come_from_acc_clusters() {
        let mut t = PmgrTables::default();
        t.voltage_states.insert(
            "voltage-states23-sram".into(),
            records(&[1_000_000, 4_608_000]),
        );
        t.voltage_states.insert(
            "voltage-states5-sram".into(),
            records(&[800_000, 3_600_000]),
        );
        // Entries (index, type): 5 is type 1, 23 is type 2 (the top tier).
        let mut acc = vec![5u8, 1, 0, 0, 0, 0, 0, 0];
        acc.extend_from_slice(&[23, 2, 0, 0, 0, 0, 0, 0]);
        t.acc_clusters = Some(acc);
        let soc = soc_info("Apple M5 Max", &t);
        assert_eq!(soc.cpu_freqs_hz["pcpu"], [1_000_000_000, 4_608_000_000]);
        assert_eq!(soc.cpu_freqs_hz["mcpu"], [800_000_000, 3_600_000_000]);
        assert_eq!(soc.cpu_freqs_hz["ecpu"], soc.cpu_freqs_hz["mcpu"]);
        assert!(soc.gpu_freqs_hz.is_empty());
        assert_eq!(acc_clusters(&[7, 3, 0, 0, 0, 0, 0, 0, 9]), [(7, 3)]);
    }
}
