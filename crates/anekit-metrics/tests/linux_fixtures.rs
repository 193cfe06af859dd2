//! The Linux sources against fixture trees (tests/fixtures/README.md says where each file
//! comes from).
// Test helpers panic on setup failures, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use anekit_metrics::linux::{self, procstat::ProcStat};
use anekit_metrics::{Collector, Error, Metric, Snapshot, Source, SourceState};
use common::{Tree, close, run};

fn collector(tree: &Tree) -> Collector {
    let mut c = Collector::new();
    for s in linux::open_files(tree.root()) {
        c.push(s);
    }
    c
}

fn state<'a>(s: &'a Snapshot, name: &str) -> &'a SourceState {
    &s.sources.iter().find(|x| x.name == name).unwrap().state
}

#[test]
fn intel_desktop_every_source() {
    let tree = Tree::new("intel-desktop");
    let mut c = collector(&tree);
    let snaps = run(&tree, &mut c, 2);
    let (s0, s1) = (&snaps[0], &snaps[1]);
    for name in ["proc_stat", "meminfo", "cpufreq", "temperature", "rapl"] {
        assert_eq!(state(s1, name), &SourceState::Ok, "{name}");
    }
    assert_eq!(s0.interval_s, None);
    assert_eq!(s1.interval_s, Some(1.0));
    assert_eq!(s1.seq, 1);

    // /proc/stat: no rates on the first sample, then 100 ticks per CPU.
    assert_eq!(s0.of(Metric::Utilisation).count(), 0);
    assert!(close(
        s1.find(Metric::Utilisation, "cpu", &[]).unwrap(),
        0.375
    ));
    assert!(close(
        s1.find(Metric::Utilisation, "cpu0", &[]).unwrap(),
        0.75
    ));
    for c in ["cpu1", "cpu2", "cpu3"] {
        assert!(
            close(s1.find(Metric::Utilisation, c, &[]).unwrap(), 0.25),
            "{c}"
        );
    }
    let hz = rustix_hz();
    let user0 = s1
        .find(Metric::CpuTime, "cpu0", &[("mode", "user"), ("cpu", "0")])
        .unwrap();
    assert!(close(user0, 1453.0 / hz));
    assert_eq!(s1.of(Metric::CpuTime).count(), 4 * 8);

    // meminfo (kB are KiB).
    let mem = |f: &str| s1.find(Metric::Memory, "memory", &[("field", f)]).unwrap();
    assert_eq!(mem("MemTotal"), 32_657_508.0 * 1024.0);
    assert_eq!(mem("MemAvailable"), 27_093_924.0 * 1024.0);
    assert_eq!(mem("used"), (32_657_508.0 - 27_093_924.0) * 1024.0);
    assert_eq!(
        s1.find(Metric::Memory, "swap", &[("field", "used")]),
        Some((2_097_148.0 - 1_048_574.0) * 1024.0)
    );

    // cpufreq, kHz → Hz.
    assert_eq!(s1.find(Metric::Frequency, "cpu0", &[]), Some(4.7e9));
    assert_eq!(
        s1.find(Metric::Frequency, "cpu2", &[]),
        Some(3_600_123_000.0)
    );

    // hwmon and the thermal zone, m°C → °C; labels from the files.
    assert_eq!(
        s1.find(
            Metric::Temperature,
            "hwmon1/temp1",
            &[("chip", "coretemp"), ("label", "Package id 0")]
        ),
        Some(55.0)
    );
    assert_eq!(
        s1.find(
            Metric::Temperature,
            "hwmon2/temp1",
            &[("label", "Composite")]
        ),
        Some(38.85)
    );
    assert_eq!(
        s1.find(
            Metric::Temperature,
            "thermal_zone0",
            &[("type", "x86_pkg_temp")]
        ),
        Some(55.0)
    );
    assert_eq!(s1.of(Metric::Temperature).count(), 5);

    // RAPL: the package counter wraps between the samples.
    let p = |c: &str| s1.find(Metric::Power, c, &[]).unwrap();
    assert!(close(p("rapl:package-0"), 25.000001));
    assert!(close(p("rapl:package-0/core"), 18.0));
    assert!(close(p("rapl:package-0/uncore"), 0.5));
    assert!(close(p("rapl:package-0/dram"), 2.5));
    let e = s1
        .find(
            Metric::Energy,
            "rapl:package-0",
            &[
                ("zone", "package"),
                ("index", "0"),
                ("path", "/sys/class/powercap/intel-rapl:0"),
            ],
        )
        .unwrap();
    assert!(close(e, 25.000001));
    assert_eq!(s0.of(Metric::Power).count(), 0);
}

fn rustix_hz() -> f64 {
    // USER_HZ is 100 on every Linux architecture anekit runs on; the sources read it from
    // the kernel (AT_CLKTCK).
    100.0
}

#[test]
fn epyc_vm_real_files() {
    let tree = Tree::new("epyc-vm");
    let mut c = collector(&tree);
    let snaps = run(&tree, &mut c, 2);
    let s1 = &snaps[1];
    assert_eq!(state(s1, "proc_stat"), &SourceState::Ok);
    assert_eq!(state(s1, "meminfo"), &SourceState::Ok);
    assert_eq!(state(s1, "cpufreq"), &SourceState::Ok);
    // Expected values computed independently (python) from the two captures.
    assert!(close(
        s1.find(Metric::Utilisation, "cpu", &[]).unwrap(),
        200.0 / 201.0
    ));
    assert!(close(
        s1.find(Metric::Utilisation, "cpu0", &[]).unwrap(),
        1.0
    ));
    assert_eq!(
        s1.find(Metric::Memory, "memory", &[("field", "MemTotal")]),
        Some(24_684_084.0 * 1024.0)
    );
    assert_eq!(
        s1.find(Metric::Memory, "swap", &[("field", "used")]),
        Some(0.0)
    );
    // No cpufreq in this VM: `cpu MHz` of /proc/cpuinfo, labelled so.
    assert_eq!(
        s1.find(Metric::Frequency, "cpu1", &[("source", "cpuinfo")]),
        Some(2_596_140_000.0)
    );
    // The missing sources say why.
    match state(s1, "temperature") {
        SourceState::Unavailable { reason } => {
            assert!(reason.contains("no temperature sensors"), "{reason}")
        }
        s => panic!("{s:?}"),
    }
    match state(s1, "rapl") {
        SourceState::Unavailable { reason } => {
            assert!(reason.contains("no RAPL zones"), "{reason}");
            assert!(reason.contains("sys/class/powercap"), "{reason}");
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn h100_vm_real_files() {
    let tree = Tree::new("h100-vm");
    let mut c = collector(&tree);
    let s1 = run(&tree, &mut c, 2).pop().unwrap();
    // Expected values computed independently (python) from the two captures: idle.
    assert_eq!(s1.find(Metric::Utilisation, "cpu", &[]), Some(0.0));
    assert_eq!(s1.find(Metric::Utilisation, "cpu15", &[]), Some(0.0));
    assert_eq!(s1.of(Metric::CpuTime).count(), 16 * 8);
    assert_eq!(
        s1.find(Metric::Memory, "memory", &[("field", "MemTotal")]),
        Some(131_981_020.0 * 1024.0)
    );
    assert_eq!(s1.of(Metric::Frequency).count(), 16);
    assert_eq!(
        s1.find(Metric::Frequency, "cpu15", &[("source", "cpuinfo")]),
        Some(2.1e9)
    );
}

fn parse_error(tree: &Tree, rel: &str, content: &str) -> Error {
    tree.step(0);
    let mut s: Box<dyn Source> = match rel {
        "proc/stat" => Box::new(ProcStat::open(tree.root()).unwrap()),
        _ => unreachable!(),
    };
    tree.write(rel, content);
    let mut out = Vec::new();
    s.sample(std::time::Instant::now(), &mut out).unwrap_err()
}

#[test]
fn hostile_proc_stat_names_file_and_field() {
    let tree = Tree::new("intel-desktop");
    let _ = ProcStat::open(tree.root()).unwrap();
    let e = parse_error(&tree, "proc/stat", "cpu  1 2 3 4\ncpu0 1 2 x 4\n");
    let msg = e.to_string();
    assert!(msg.contains("proc/stat"), "{msg}");
    assert!(msg.contains("cpu0 system"), "{msg}");
    for (bad, field) in [
        ("cpu  1 2 3\n", "cpu"),
        ("cpu0 1 2 3 4\n", "cpu"),
        ("cpu  1 2 3 4\ncpuX 1 2 3 4\n", "cpuX"),
        ("cpu  99999999999999999999 2 3 4\n", "cpu user"),
        ("cpu  -1 2 3 4\n", "cpu user"),
    ] {
        let msg = parse_error(&tree, "proc/stat", bad).to_string();
        assert!(msg.contains(&format!("field `{field}`")), "{bad:?}: {msg}");
    }
}

#[test]
fn hostile_files_fail_one_source_not_the_collector() {
    let tree = Tree::new("intel-desktop");
    let mut c = collector(&tree);
    run(&tree, &mut c, 1);
    tree.write("proc/meminfo", "MemFree: 12 kB\n");
    tree.write("sys/class/powercap/intel-rapl:0/energy_uj", "lots\n");
    tree.write("sys/class/hwmon/hwmon1/temp1_input", "55.5\n");
    let s = c.sample();
    match state(&s, "meminfo") {
        SourceState::Error { message } => {
            assert!(message.contains("proc/meminfo"), "{message}");
            assert!(message.contains("MemTotal"), "{message}");
        }
        x => panic!("{x:?}"),
    }
    match state(&s, "rapl") {
        SourceState::Error { message } => {
            assert!(message.contains("intel-rapl:0/energy_uj"), "{message}");
            assert!(message.contains("field `energy_uj`"), "{message}");
        }
        x => panic!("{x:?}"),
    }
    match state(&s, "temperature") {
        SourceState::Error { message } => {
            assert!(message.contains("temp1_input"), "{message}")
        }
        x => panic!("{x:?}"),
    }
    // The failed sources gave nothing; the others still did.
    assert_eq!(s.of(Metric::Memory).count(), 0);
    assert_eq!(s.of(Metric::Energy).count(), 0);
    assert!(s.of(Metric::CpuTime).count() > 0);
    // A bad unit, a huge value.
    tree.write("proc/meminfo", "MemTotal: 12 MB\n");
    assert!(c.sample().sources.iter().any(|x| matches!(&x.state,
        SourceState::Error { message } if message.contains("unknown unit"))));
    tree.write("proc/meminfo", "MemTotal: 18446744073709551615 kB\n");
    assert!(c.sample().sources.iter().any(|x| matches!(&x.state,
        SourceState::Error { message } if message.contains("too large"))));
    // Recovery.
    tree.step(0);
    tree.write("proc/meminfo", "MemTotal: 1 kB\nMemFree: 1 kB\n");
    tree.write("sys/class/hwmon/hwmon1/temp1_input", "55000\n");
    let s = c.sample();
    assert_eq!(state(&s, "meminfo"), &SourceState::Ok);
    assert_eq!(state(&s, "temperature"), &SourceState::Ok);
    // Without MemAvailable (Linux < 3.14), available = free + buffers + cached.
    assert_eq!(
        s.find(Metric::Memory, "memory", &[("field", "used")]),
        Some(0.0)
    );
}

#[test]
fn rapl_unreadable_counter_is_unavailable_with_the_path() {
    let tree = Tree::new("intel-desktop");
    // A directory where the counter should be: reading fails (as root, a permission
    // error cannot be staged; `rapl::unreadable_reason` is unit-tested for that case).
    let p = tree
        .root()
        .join("sys/class/powercap/intel-rapl:0:1/energy_uj");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    let u = linux::rapl::Rapl::open(tree.root()).unwrap_err();
    assert_eq!(u.source, "rapl");
    assert!(
        u.reason.contains("intel-rapl:0:1/energy_uj"),
        "{}",
        u.reason
    );
}

#[test]
fn cpu_offline_between_samples_is_skipped() {
    let tree = Tree::new("intel-desktop");
    let mut c = collector(&tree);
    run(&tree, &mut c, 1);
    std::fs::remove_file(
        tree.root()
            .join("sys/devices/system/cpu/cpu3/cpufreq/scaling_cur_freq"),
    )
    .unwrap();
    let s = c.sample();
    assert_eq!(state(&s, "cpufreq"), &SourceState::Ok);
    assert_eq!(s.of(Metric::Frequency).count(), 3);
}

#[test]
fn counters_going_backwards_give_no_rate() {
    let tree = Tree::new("intel-desktop");
    let mut c = collector(&tree);
    let t = run(&tree, &mut c, 2);
    assert!(t[1].find(Metric::Utilisation, "cpu", &[]).is_some());
    // Back to the first capture: counters decreased (CPU hot-plug resets them).
    tree.step(0);
    let s = c.sample();
    assert_eq!(s.find(Metric::Utilisation, "cpu", &[]), None);
}
