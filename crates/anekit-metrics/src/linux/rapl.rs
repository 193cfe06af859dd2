//! RAPL energy counters through the powercap interface
//! (`/sys/class/powercap/intel-rapl:<pkg>[:<sub>]/{name,energy_uj,max_energy_range_uj}`;
//! kernel Documentation/power/powercap/powercap.rst). Intel CPUs and AMD Zen
//! (`intel_rapl_msr`) have it. `energy_uj` wraps at `max_energy_range_uj`; the wrap is
//! undone by [`crate::counter::EnergyCounter`].
//!
//! Since Linux 5.10 `energy_uj` is readable only by root (CVE-2020-8694, "PLATYPUS"), so for
//! an ordinary user the source is unavailable and says why.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{entries, read, read_u64, under};
use crate::counter::{EnergyCounter, Wrap};
use crate::source::{Source, Unavailable};
use crate::{Error, Family, Metric, Reading};

#[derive(Debug)]
struct Zone {
    energy: PathBuf,
    component: String,
    /// node_exporter's zone name (`package`, `core`, `dram`, `psys`, ...), its index and path.
    zone: String,
    index: String,
    sys_path: String,
    counter: EnergyCounter,
}

/// The RAPL source.
#[derive(Debug)]
pub struct Rapl {
    zones: Vec<Zone>,
}

/// Why a RAPL `energy_uj` file could not be read, for humans.
pub fn unreadable_reason(path: &Path, err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::PermissionDenied => format!(
            "{} is readable only by root (Linux 5.10 and later, CVE-2020-8694); run as root, \
             or make it readable (a udev rule setting mode 0444), or grant CAP_DAC_READ_SEARCH",
            path.display()
        ),
        _ => format!("{}: {err}", path.display()),
    }
}

/// Splits a powercap zone name like `package-0` into (`package`, `0`).
fn split_name(name: &str) -> (String, Option<String>) {
    if let Some((base, idx)) = name.rsplit_once('-')
        && !idx.is_empty()
        && idx.bytes().all(|b| b.is_ascii_digit())
    {
        return (base.to_string(), Some(idx.to_string()));
    }
    (name.to_string(), None)
}

impl Rapl {
    /// Lists the zones under `<root>/sys/class/powercap` and checks that their energy
    /// counters can be read.
    pub fn open(root: &Path) -> Result<Self, Unavailable> {
        let dir = under(root, "/sys/class/powercap");
        let none = || {
            Unavailable::new(
                "rapl",
                format!(
                    "no RAPL zones in {}: the kernel has no RAPL powercap driver here (not an \
                     Intel or AMD Zen CPU, intel_rapl_msr not loaded, or a virtual machine \
                     that does not pass RAPL through)",
                    dir.display()
                ),
            )
        };
        let list = entries(&dir, "intel-rapl:").map_err(|_| none())?;
        let mut zones = Vec::new();
        for (dirname, path) in &list {
            let name = read(&path.join("name"))
                .map(|s| s.trim().to_string())
                .map_err(|e| Unavailable::new("rapl", e.to_string()))?;
            let energy = path.join("energy_uj");
            if let Err(e) = std::fs::read_to_string(&energy) {
                return Err(Unavailable::new("rapl", unreadable_reason(&energy, &e)));
            }
            let max_path = path.join("max_energy_range_uj");
            let max = read_u64(&max_path).map_err(|e| Unavailable::new("rapl", e.to_string()))?;
            // intel-rapl:0 is a top zone; intel-rapl:0:1 a subzone of intel-rapl:0.
            let parts: Vec<&str> = dirname.split(':').collect();
            let component = if parts.len() > 2 {
                let parent_dir = parts[..parts.len() - 1].join(":");
                let parent = list
                    .iter()
                    .find(|(d, _)| *d == parent_dir)
                    .and_then(|(_, p)| read(&p.join("name")).ok())
                    .map(|s| s.trim().to_string())
                    .unwrap_or(parent_dir);
                format!("rapl:{parent}/{name}")
            } else {
                format!("rapl:{name}")
            };
            let (zone, idx) = split_name(&name);
            let index = idx.unwrap_or_else(|| parts.last().copied().unwrap_or("0").to_string());
            zones.push(Zone {
                energy,
                component,
                zone,
                index,
                sys_path: format!("/sys/class/powercap/{dirname}"),
                counter: EnergyCounter::new(Wrap::At(max), 1e-6),
            });
        }
        if zones.is_empty() {
            return Err(none());
        }
        Ok(Rapl { zones })
    }

    /// The components (`rapl:package-0`, `rapl:package-0/dram`, ...).
    pub fn components(&self) -> Vec<&str> {
        self.zones.iter().map(|z| z.component.as_str()).collect()
    }
}

impl Source for Rapl {
    fn name(&self) -> &str {
        "rapl"
    }

    fn sample(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        for z in &mut self.zones {
            let raw = read_u64(&z.energy)?;
            let u = z.counter.update(raw, at);
            if let Some(p) = u.power_w {
                out.push(Reading::new(Metric::Power, z.component.clone(), p));
            }
            out.push(
                Reading::new(Metric::Energy, z.component.clone(), u.total_j)
                    .label("zone", z.zone.clone())
                    .label("index", z.index.clone())
                    .label("path", z.sys_path.clone())
                    .family(Family::Node),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_names_the_cause() {
        let e = std::io::Error::from(ErrorKind::PermissionDenied);
        let r = unreadable_reason(Path::new("/sys/class/powercap/intel-rapl:0/energy_uj"), &e);
        assert!(r.contains("readable only by root"), "{r}");
        assert!(r.contains("CVE-2020-8694"));
        assert!(r.starts_with("/sys/class/powercap/intel-rapl:0/energy_uj"));
    }

    #[test]
    fn zone_names() {
        assert_eq!(
            split_name("package-0"),
            ("package".into(), Some("0".into()))
        );
        assert_eq!(split_name("dram"), ("dram".into(), None));
        assert_eq!(split_name("psys"), ("psys".into(), None));
    }
}
