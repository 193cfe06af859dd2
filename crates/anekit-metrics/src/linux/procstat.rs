//! `/proc/stat`: CPU time per mode, total and per core, and utilisation over the interval.
//!
//! Format (proc_stat(5)): lines `cpu` (all CPUs) and `cpuN`, then the cumulative time in
//! USER_HZ ticks spent in user, nice, system, idle, iowait, irq, softirq, steal, guest,
//! guest_nice (guest time is already counted in user and nice). Kernels before 2.6 have
//! only the first four columns; missing columns read as 0.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{parse_u64, read, under};
use crate::source::{Source, Unavailable};
use crate::{Error, Family, Metric, Reading};

/// The modes of the first eight columns, as node_exporter names them.
pub const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// One `cpu` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuLine {
    /// The CPU number; `None` for the `cpu` (all CPUs) line.
    pub cpu: Option<u32>,
    /// Ticks per mode, in the order of [`MODES`].
    pub ticks: [u64; 8],
}

impl CpuLine {
    fn total(&self) -> u64 {
        self.ticks.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Idle and iowait: time the CPU had nothing to run.
    fn idle(&self) -> u64 {
        self.ticks[3].saturating_add(self.ticks[4])
    }

    fn component(&self) -> String {
        match self.cpu {
            None => "cpu".to_string(),
            Some(n) => format!("cpu{n}"),
        }
    }
}

/// Parses the `cpu` lines of `/proc/stat` (`path` names the file in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<CpuLine>, Error> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut cols = line.split_ascii_whitespace();
        let Some(name) = cols.next() else { continue };
        let Some(suffix) = name.strip_prefix("cpu") else {
            continue;
        };
        let cpu = if suffix.is_empty() {
            None
        } else {
            Some(suffix.parse::<u32>().map_err(|_| {
                Error::parse(
                    path,
                    name,
                    "CPU line name is not `cpu` followed by a number",
                )
            })?)
        };
        let mut ticks = [0u64; 8];
        let mut n = 0;
        for (i, col) in cols.take(8).enumerate() {
            ticks[i] = parse_u64(col, path, &format!("{name} {}", MODES[i]))?;
            n += 1;
        }
        if n < 4 {
            return Err(Error::parse(
                path,
                name,
                format!("{n} columns; at least 4 (user nice system idle) expected"),
            ));
        }
        out.push(CpuLine { cpu, ticks });
    }
    if !out.iter().any(|l| l.cpu.is_none()) {
        return Err(Error::parse(path, "cpu", "no `cpu` (all CPUs) line"));
    }
    Ok(out)
}

/// The `/proc/stat` source.
#[derive(Debug)]
pub struct ProcStat {
    path: PathBuf,
    tick_s: f64,
    prev: Vec<CpuLine>,
}

impl ProcStat {
    /// Opens `<root>/proc/stat` (it must be readable and parse).
    pub fn open(root: &Path) -> Result<Self, Unavailable> {
        let path = under(root, "/proc/stat");
        let text = read(&path).map_err(|e| Unavailable::new("proc_stat", e.to_string()))?;
        parse(&text, &path).map_err(|e| Unavailable::new("proc_stat", e.to_string()))?;
        let hz = rustix::param::clock_ticks_per_second();
        Ok(ProcStat {
            path,
            tick_s: 1.0 / hz.max(1) as f64,
            prev: Vec::new(),
        })
    }

    /// Sets the tick length (USER_HZ) explicitly (tests; recorded trees from other machines).
    pub fn with_ticks_per_second(mut self, hz: u64) -> Self {
        self.tick_s = 1.0 / hz.max(1) as f64;
        self
    }
}

impl Source for ProcStat {
    fn name(&self) -> &str {
        "proc_stat"
    }

    fn sample(&mut self, _at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        let lines = parse(&read(&self.path)?, &self.path)?;
        for line in &lines {
            let component = line.component();
            if let Some(prev) = self.prev.iter().find(|p| p.cpu == line.cpu) {
                let total = line.total().checked_sub(prev.total());
                let idle = line.idle().checked_sub(prev.idle());
                // A counter that went backwards (CPU taken offline and back) gives no rate.
                if let (Some(total), Some(idle)) = (total, idle)
                    && total > 0
                {
                    let busy = total.saturating_sub(idle);
                    out.push(Reading::new(
                        Metric::Utilisation,
                        component.clone(),
                        busy as f64 / total as f64,
                    ));
                }
            }
            if let Some(n) = line.cpu {
                for (mode, ticks) in MODES.iter().zip(line.ticks) {
                    out.push(
                        Reading::new(
                            Metric::CpuTime,
                            component.clone(),
                            ticks as f64 * self.tick_s,
                        )
                        .label("cpu", n.to_string())
                        .label("mode", *mode)
                        .family(Family::Node),
                    );
                }
            }
        }
        self.prev = lines;
        Ok(())
    }
}
