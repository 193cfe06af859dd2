//! CPU frequency: cpufreq's `scaling_cur_freq` (kHz) per CPU, or, where the kernel has no
//! cpufreq driver (most virtual machines), the `cpu MHz` lines of `/proc/cpuinfo`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{entries, read, read_u64, under};
use crate::source::{Source, Unavailable};
use crate::{Error, Family, Metric, Reading};

#[derive(Debug)]
enum Mode {
    /// (cpu number, path of scaling_cur_freq)
    Cpufreq(Vec<(u32, PathBuf)>),
    Cpuinfo(PathBuf),
}

/// The CPU frequency source.
#[derive(Debug)]
pub struct CpuFreq {
    mode: Mode,
}

/// Parses the `processor` and `cpu MHz` lines of `/proc/cpuinfo` into (cpu, Hz).
pub fn parse_cpuinfo(text: &str, path: &Path) -> Result<Vec<(u32, f64)>, Error> {
    let mut out = Vec::new();
    let mut cpu: Option<u32> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "processor" {
            cpu = Some(value.parse().map_err(|_| {
                Error::parse(
                    path,
                    "processor",
                    format!("not a number: {:?}", super::truncate(value)),
                )
            })?);
        } else if key == "cpu MHz" {
            let mhz: f64 = value.parse().map_err(|_| {
                Error::parse(
                    path,
                    "cpu MHz",
                    format!("not a number: {:?}", super::truncate(value)),
                )
            })?;
            if !mhz.is_finite() || mhz < 0.0 {
                return Err(Error::parse(
                    path,
                    "cpu MHz",
                    format!("out of range: {mhz}"),
                ));
            }
            let n = cpu.ok_or_else(|| {
                Error::parse(path, "cpu MHz", "comes before any `processor` line")
            })?;
            out.push((n, mhz * 1e6));
        }
    }
    Ok(out)
}

impl CpuFreq {
    /// Finds `<root>/sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq`, or else the
    /// `cpu MHz` lines of `<root>/proc/cpuinfo`.
    pub fn open(root: &Path) -> Result<Self, Unavailable> {
        let cpu_dir = under(root, "/sys/devices/system/cpu");
        let mut files = Vec::new();
        if let Ok(list) = entries(&cpu_dir, "cpu") {
            for (name, dir) in list {
                let Some(n) = name.strip_prefix("cpu").and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let f = dir.join("cpufreq/scaling_cur_freq");
                if f.is_file() {
                    files.push((n, f));
                }
            }
        }
        if !files.is_empty() {
            return Ok(CpuFreq {
                mode: Mode::Cpufreq(files),
            });
        }
        let cpuinfo = under(root, "/proc/cpuinfo");
        match read(&cpuinfo).and_then(|t| parse_cpuinfo(&t, &cpuinfo)) {
            Ok(v) if !v.is_empty() => Ok(CpuFreq {
                mode: Mode::Cpuinfo(cpuinfo),
            }),
            Ok(_) => Err(Unavailable::new(
                "cpufreq",
                format!(
                    "no {}/cpu*/cpufreq (no cpufreq driver: usual in virtual machines) and no `cpu MHz` in {}",
                    cpu_dir.display(),
                    cpuinfo.display()
                ),
            )),
            Err(e) => Err(Unavailable::new(
                "cpufreq",
                format!(
                    "no {}/cpu*/cpufreq (no cpufreq driver: usual in virtual machines); {e}",
                    cpu_dir.display()
                ),
            )),
        }
    }

    /// Where the frequencies come from: `cpufreq` or `cpuinfo`.
    pub fn kind(&self) -> &'static str {
        match self.mode {
            Mode::Cpufreq(_) => "cpufreq",
            Mode::Cpuinfo(_) => "cpuinfo",
        }
    }
}

impl Source for CpuFreq {
    fn name(&self) -> &str {
        "cpufreq"
    }

    fn sample(&mut self, _at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        match &self.mode {
            Mode::Cpufreq(files) => {
                for (n, f) in files {
                    let khz = match read_u64(f) {
                        Ok(v) => v,
                        // The CPU went offline since discovery.
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    out.push(
                        Reading::new(Metric::Frequency, format!("cpu{n}"), khz as f64 * 1e3)
                            .label("cpu", n.to_string())
                            .family(Family::Node),
                    );
                }
            }
            Mode::Cpuinfo(path) => {
                for (n, hz) in parse_cpuinfo(&read(path)?, path)? {
                    out.push(
                        Reading::new(Metric::Frequency, format!("cpu{n}"), hz)
                            .label("source", "cpuinfo"),
                    );
                }
            }
        }
        Ok(())
    }
}
