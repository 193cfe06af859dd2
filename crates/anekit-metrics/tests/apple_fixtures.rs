//! The macOS conversion against IOReport and DVFS dumps posted from real machines
//! (tests/fixtures/apple/, each file naming its source): M1 Max, M2, M2 Max, M2 Ultra, M4,
//! M4 Pro, M5 Max, A18 Pro. Where the poster's tool printed a result computed from the same
//! data (socpowerbud's average frequency), that result is the oracle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anekit_apple_sys::iokit::PmgrTables;
use anekit_apple_sys::ioreport::{Channel, ChannelValue, StateResidency};
use anekit_metrics::Metric;
use anekit_metrics::apple::{
    self, FreqMapping, RawSample, SocInfo, dvfs_table, residency, soc_info, to_hz,
};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apple")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with('#'))
}

/// `voltage-statesN: (f) v v v` rows (macmon debug), values scaled by `scale`, as the
/// 8-byte records the `pmgr` entry holds (frequency, voltage 0).
fn macmon_tables(text: &str, scale: u64) -> PmgrTables {
    let mut t = PmgrTables::default();
    for l in lines(text) {
        let Some((key, rest)) = l.split_once(": (f)") else {
            continue;
        };
        let bytes: Vec<u8> = rest
            .split_whitespace()
            .flat_map(|v| {
                let f = u32::try_from(v.parse::<u64>().unwrap() * scale).unwrap();
                let mut r = f.to_le_bytes().to_vec();
                r.extend_from_slice(&[0; 4]);
                r
            })
            .collect();
        t.voltage_states.insert(key.trim().to_string(), bytes);
    }
    t
}

/// `"key" = <hex>` rows (`ioreg`).
fn ioreg_tables(text: &str) -> PmgrTables {
    let mut t = PmgrTables::default();
    for l in lines(text) {
        let Some((key, rest)) = l.split_once(" = <") else {
            continue;
        };
        let hex = rest.trim_end_matches('>');
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        t.voltage_states
            .insert(key.trim().trim_matches('"').to_string(), bytes);
    }
    t
}

/// `Group :: Subgroup :: Name (unit) = [("STATE", n), ...]` rows (macmon debug).
fn macmon_channels(text: &str) -> Vec<Channel> {
    let mut out = Vec::new();
    for l in lines(text) {
        let Some((head, states)) = l.split_once(" = [") else {
            continue;
        };
        let parts: Vec<&str> = head.split(" :: ").collect();
        let [group, subgroup, name_unit] = parts[..] else {
            continue;
        };
        let (name, unit) = name_unit.rsplit_once(" (").unwrap();
        let states = states
            .trim_end_matches(']')
            .split("), (")
            .map(|s| {
                let s = s.trim_matches(|c| c == '(' || c == ')');
                let (n, r) = s.split_once(", ").unwrap();
                StateResidency {
                    name: n.trim_matches('"').to_string(),
                    residency: r.parse().unwrap(),
                }
            })
            .collect();
        out.push(Channel {
            group: group.into(),
            subgroup: subgroup.into(),
            name: name.into(),
            unit: unit.trim_end_matches(')').into(),
            value: ChannelValue::States(states),
        });
    }
    out
}

/// `Energy Model ::  :: NAME (unit) = x.xxW` rows: the channel names and units.
fn energy_names(text: &str) -> Vec<(String, String)> {
    lines(text)
        .filter_map(|l| {
            let rest = l.strip_prefix("Energy Model ::  :: ")?;
            let (name_unit, _) = rest.split_once(" = ")?;
            let (name, unit) = name_unit.rsplit_once(" (")?;
            Some((name.to_string(), unit.trim_end_matches(')').to_string()))
        })
        .collect()
}

const MHZ: f64 = 1e6;

#[test]
fn socpowerbud_average_frequencies_on_an_m1_max() {
    // Each cluster's DVFS distribution (percent of active time per frequency) through our
    // residency arithmetic gives socpowerbud's own average.
    let text = fixture("socpowerbud-13-m1-max.txt");
    let mut clusters: Vec<(f64, Vec<(u64, f64)>)> = Vec::new();
    for l in lines(&text) {
        let l = l.trim();
        if let Some(avg) = l.strip_prefix("Average frequency: ") {
            let mhz: f64 = avg.trim_end_matches(" mhz").parse().unwrap();
            clusters.push((mhz, Vec::new()));
        } else if let Some((freq, pct)) = l.split_once(" MHz (") {
            let pct: f64 = pct
                .split(": ")
                .nth(1)
                .unwrap()
                .trim_end_matches('%')
                .parse()
                .unwrap();
            clusters
                .last_mut()
                .unwrap()
                .1
                .push((freq.parse().unwrap(), pct));
        }
    }
    assert_eq!(clusters.len(), 2);
    for (expected_mhz, dist) in clusters {
        // Residencies in hundredths of a percent; the table in Hz, in state order.
        let mut states = vec![StateResidency {
            name: "IDLE".into(),
            residency: 10_000,
        }];
        states.extend(dist.iter().enumerate().map(|(i, (_, pct))| StateResidency {
            name: format!("V{i}P{}", dist.len() - 1 - i),
            residency: (pct * 100.0).round() as i64,
        }));
        let table: Vec<u64> = dist.iter().map(|(f, _)| f * 1_000_000).collect();
        let r = residency(&states, &table).unwrap();
        assert_eq!(r.mapping, Some(FreqMapping::StateIndex));
        let mhz = r.mean_freq_hz.unwrap() / MHZ;
        assert!(
            (mhz - expected_mhz).abs() < 1.0,
            "{mhz:.1} MHz, socpowerbud printed {expected_mhz}"
        );
    }
}

#[test]
fn an_m2_e_core_with_fewer_states_than_its_table() {
    // socpowerbud#8: states V0..V4 for the six-entry M2 E-cluster table. Matched by index,
    // V4 is 2256 MHz (never the table's last 2424 MHz, which no state reports); matched in
    // order the counts would not agree and no frequency would come out at all.
    let table = soc_info(
        "Apple M2 Max",
        &macmon_tables(&fixture("macmon-1-m2-max.txt"), 1_000_000),
    );
    let e = &table.cpu_freqs_hz["ecpu"];
    assert_eq!(e.len(), 6);
    let states: Vec<StateResidency> = lines(&fixture("socpowerbud-8-m2.txt"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("State: ")?;
            let (name, res) = rest.split_once("   Res: ")?;
            Some(StateResidency {
                name: name.trim().into(),
                residency: res.trim().parse().unwrap(),
            })
        })
        .collect();
    assert_eq!(states.len(), 7);
    let r = residency(&states, e).unwrap();
    assert_eq!(r.mapping, Some(FreqMapping::StateIndex));
    let f = r.mean_freq_hz.unwrap() / MHZ;
    assert!((912.0..2256.0).contains(&f), "{f}");
    // DOWN and IDLE are inactive.
    let active: i64 = states[2..].iter().map(|s| s.residency).sum();
    let total: i64 = states.iter().map(|s| s.residency).sum();
    assert_eq!(r.active_ratio, active as f64 / total as f64);
}

#[test]
fn m2_max_tables_are_hertz_and_match_the_published_clocks() {
    let soc = soc_info(
        "Apple M2 Max",
        &macmon_tables(&fixture("macmon-1-m2-max.txt"), 1_000_000),
    );
    // E-cores up to 2.42 GHz; the GPU table (voltage-states14 here; macmon reads 9, absent
    // from this excerpt) is not taken from a CPU key.
    assert_eq!(soc.cpu_freqs_hz["ecpu"].last(), Some(&2_424_000_000));
    assert!(soc.gpu_freqs_hz.is_empty());
    // The non-sram tables hold zeros and are never used.
    assert!(
        !soc.cpu_freqs_hz.contains_key("pcpu"),
        "voltage-states5-sram not in the excerpt"
    );
}

#[test]
fn m2_ultra_dies_and_the_17_state_p_table() {
    let text = fixture("macmon-17-68-m2-ultra.txt");
    let soc = soc_info("Apple M2 Ultra", &macmon_tables(&text, 1));
    let p = &soc.cpu_freqs_hz["pcpu"];
    assert_eq!(p.len(), 17);
    assert_eq!(p.last(), Some(&3_504_000_000), "M2 Ultra P-cores: 3.5 GHz");
    assert_eq!(soc.cpu_freqs_hz["ecpu"].first(), Some(&912_000_000));
    // The GPU table keeps its 0 Hz off level; residency matching drops it.
    assert_eq!(soc.gpu_freqs_hz.first(), Some(&0));
    assert_eq!(soc.gpu_freqs_hz.last(), Some(&1_398_000_000));
    // The per-core channels: IDLE plus V0P16..V16P0, one state per table entry.
    let channels = macmon_channels(&text);
    assert_eq!(channels.len(), 3);
    for c in &channels {
        assert_eq!(apple::cpu_cluster(&c.name), Some("pcpu"), "{}", c.name);
        let ChannelValue::States(s) = &c.value else {
            panic!()
        };
        assert_eq!(s.len(), 18);
        // Idle cores: no active time, so no frequency, and never a made-up one.
        let r = residency(s, p).unwrap();
        assert_eq!((r.active_ratio, r.mean_freq_hz), (0.0, None));
        // The same states with the core busy in its top state run at the table's top.
        let mut busy = s.clone();
        busy.last_mut().unwrap().residency = 1000;
        let r = residency(&busy, p).unwrap();
        assert_eq!(r.mean_freq_hz, Some(3_504_000_000.0));
    }
    let mut totals = BTreeMap::new();
    let raw = RawSample {
        elapsed: std::time::Duration::from_secs(1),
        channels,
        ..RawSample::default()
    };
    let readings = apple::convert(&raw, &soc, &mut totals);
    let pcpu = readings
        .iter()
        .find(|r| r.metric == Metric::ActiveRatio && r.component == "pcpu")
        .unwrap();
    assert_eq!(pcpu.value, 0.0);
    // Per-core and per-cluster energy rails of the Ultra's dies never count as CPU energy
    // (that is `DIE_<n>_CPU Energy`): no double counting.
    for (name, _) in energy_names(&text) {
        assert_eq!(apple::energy_component(&name), None, "{name}");
    }
}

#[test]
fn a18_pro_tables_and_energy_channels() {
    let text = fixture("macmon-57-a18-pro.txt");
    let mut tables = macmon_tables(&text, 1);
    tables
        .voltage_states
        .extend(ioreg_tables(&text).voltage_states);
    let soc = soc_info("Apple A18 Pro", &tables);
    // E-cluster 816-2424 MHz in Hz (the A-series keeps Hz; macmon showed "millions of MHz"
    // by scaling by chip name, vladkens/macmon#57).
    assert_eq!(
        soc.cpu_freqs_hz["ecpu"],
        [816, 1140, 1464, 1788, 2112, 2424].map(|m| m * 1_000_000)
    );
    // The non-sram table's small numbers are not frequencies and are not used.
    assert!(
        dvfs_table(&tables.voltage_states["voltage-states1"])
            .iter()
            .all(|&v| v < 100_000)
    );
    // GPU: Hz, 15 levels after the off level, up to 1.47 GHz.
    assert_eq!(soc.gpu_freqs_hz.len(), 16);
    assert_eq!(soc.gpu_freqs_hz[0], 0);
    assert_eq!(soc.gpu_freqs_hz[1], 338_000_000);
    assert_eq!(soc.gpu_freqs_hz.iter().max(), Some(&1_470_000_000));
    // Energy: one channel per component. `GPU Energy` (nJ) is the GPU, the plain `GPU` (mJ)
    // rail is not counted again; the A18 has no `CPU Energy` channel, so no CPU power.
    let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, unit) in energy_names(&text) {
        if let Some(c) = apple::energy_component(&name) {
            assert!(apple::energy_to_joules(1, &unit).is_some(), "{name} {unit}");
            by.entry(c).or_default().push(name);
        }
    }
    assert_eq!(by["gpu"], ["GPU Energy"]);
    assert_eq!(by["gpu_sram"], ["GPU SRAM"]);
    assert_eq!(by["ane"], ["ANE"]);
    assert_eq!(by["dram"], ["DRAM"]);
    assert!(!by.contains_key("cpu"));
}

#[test]
fn m5_max_gpu_domains_are_hertz_and_the_non_sram_cpu_table_is_unused() {
    let tables = ioreg_tables(&fixture("macmon-47-m5-max.txt"));
    // voltage-states16-sram: the GPU-adjacent domain, 338-1620 MHz in 14 steps (as
    // SiliconScope#30 decodes it), Hz.
    let t = to_hz(&dvfs_table(&tables.voltage_states["voltage-states16-sram"]));
    assert_eq!(t.len(), 14);
    assert_eq!(t[1], 338_000_000);
    assert_eq!(t.last(), Some(&1_620_000_000));
    assert_eq!(
        t,
        to_hz(&dvfs_table(&tables.voltage_states["voltage-states15-sram"])),
        "twin domain"
    );
    // voltage-states5 (not -sram) holds 20 small numbers that are no frequencies; the CPU
    // tables come only from -sram keys, so this excerpt gives no CPU table at all.
    let raw5 = dvfs_table(&tables.voltage_states["voltage-states5"]);
    assert_eq!(raw5.len(), 20);
    let soc = soc_info("Apple M5 Max", &tables);
    assert!(soc.cpu_freqs_hz.is_empty(), "{:?}", soc.cpu_freqs_hz);
    assert!(
        soc.gpu_freqs_hz.is_empty(),
        "voltage-states9 not in the excerpt"
    );
}

#[test]
fn m4_pro_cpu_tables_are_kilohertz() {
    // The xxd-style dump of exelban/stats#2285.
    let text = fixture("stats-2285-m4-pro.txt");
    let hex: String = lines(&text)
        .filter_map(|l| l.split_once("00000000: ").map(|(_, h)| h.replace(' ', "")))
        .collect();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let raw = dvfs_table(&bytes);
    assert_eq!(
        raw,
        [1_020_000, 1_404_000, 1_788_000],
        "the partial record is ignored"
    );
    assert_eq!(to_hz(&raw), [1_020_000_000, 1_404_000_000, 1_788_000_000]);
}

#[test]
fn m4_reports_the_requested_level() {
    // vladkens/macmon#78, Mac mini M4: PCPU0 100 % in V19P0, "table value 4464 MHz", while
    // powermetrics measured 3936 MHz; ECPU 100 % in V7P0 (2892 MHz) vs 2808 MHz. Only those
    // table entries are known; the others stay 0 (unknown) here.
    let mut p = vec![0u64; 20];
    p[19] = 4_464_000_000;
    let mut e = vec![0u64; 8];
    e[7] = 2_892_000_000;
    let mut cpu = BTreeMap::new();
    cpu.insert("pcpu".to_string(), p);
    cpu.insert("ecpu".to_string(), e);
    let soc = SocInfo {
        chip: "Apple M4".into(),
        cpu_freqs_hz: cpu,
        gpu_freqs_hz: Vec::new(),
    };
    let ch = |name: &str, state: &str| Channel {
        group: apple::CPU_STATS.into(),
        subgroup: apple::CPU_CORE_STATES.into(),
        name: name.into(),
        unit: "24Mticks".into(),
        value: ChannelValue::States(vec![
            StateResidency {
                name: "IDLE".into(),
                residency: 0,
            },
            StateResidency {
                name: state.into(),
                residency: 24_000_000,
            },
        ]),
    };
    let raw = RawSample {
        elapsed: std::time::Duration::from_secs(1),
        channels: vec![ch("PCPU0", "V19P0"), ch("ECPU0", "V7P0")],
        ..RawSample::default()
    };
    let readings = apple::convert(&raw, &soc, &mut BTreeMap::new());
    let f = |c: &str| {
        readings
            .iter()
            .find(|r| r.metric == Metric::Frequency && r.component == c)
            .unwrap()
    };
    // What IOReport says (the requested level), labelled so; powermetrics' 3936 MHz
    // hardware clock is not observable here (docs/metrics.md).
    assert_eq!(f("pcpu").value, 4_464_000_000.0);
    assert_eq!(f("pcpu").get_label("basis"), Some("requested"));
    assert_eq!(f("ecpu").value, 2_892_000_000.0);
}
