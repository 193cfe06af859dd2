//! Temperatures: hwmon sensors (`/sys/class/hwmon/hwmon*/temp*_input`, millidegrees Celsius,
//! with the chip's `name` and optional `temp*_label`; kernel
//! Documentation/hwmon/sysfs-interface) and thermal zones
//! (`/sys/class/thermal/thermal_zone*/{type,temp}`, millidegrees Celsius).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{entries, read, read_i64, under};
use crate::source::{Source, Unavailable};
use crate::{Error, Family, Metric, Reading};

#[derive(Debug, Clone)]
struct Sensor {
    input: PathBuf,
    component: String,
    labels: Vec<(&'static str, String)>,
}

/// The temperature source (hwmon and thermal zones).
#[derive(Debug)]
pub struct Temperatures {
    sensors: Vec<Sensor>,
}

fn trimmed(path: &Path) -> Option<String> {
    read(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Temperatures {
    /// Lists the sensors under `<root>/sys/class/hwmon` and `<root>/sys/class/thermal`.
    pub fn open(root: &Path) -> Result<Self, Unavailable> {
        let mut sensors = Vec::new();
        let hwmon_dir = under(root, "/sys/class/hwmon");
        for (hwmon, dir) in entries(&hwmon_dir, "hwmon").unwrap_or_default() {
            let chip = trimmed(&dir.join("name")).unwrap_or_else(|| hwmon.clone());
            let Ok(files) = entries(&dir, "temp") else {
                continue;
            };
            for (file, path) in files {
                let Some(sensor) = file.strip_suffix("_input") else {
                    continue;
                };
                let mut labels = vec![
                    ("chip", chip.clone()),
                    ("hwmon", hwmon.clone()),
                    ("sensor", sensor.to_string()),
                ];
                if let Some(l) = trimmed(&dir.join(format!("{sensor}_label"))) {
                    labels.push(("label", l));
                }
                sensors.push(Sensor {
                    input: path,
                    component: format!("{hwmon}/{sensor}"),
                    labels,
                });
            }
        }
        let thermal_dir = under(root, "/sys/class/thermal");
        for (zone, dir) in entries(&thermal_dir, "thermal_zone").unwrap_or_default() {
            let temp = dir.join("temp");
            if !temp.is_file() {
                continue;
            }
            let kind = trimmed(&dir.join("type")).unwrap_or_else(|| zone.clone());
            let index = zone.trim_start_matches("thermal_zone").to_string();
            sensors.push(Sensor {
                input: temp,
                component: zone.clone(),
                labels: vec![("zone", index), ("type", kind)],
            });
        }
        if sensors.is_empty() {
            return Err(Unavailable::new(
                "temperature",
                format!(
                    "no temperature sensors: nothing in {} or {} (virtual machines and containers usually have none)",
                    hwmon_dir.display(),
                    thermal_dir.display()
                ),
            ));
        }
        Ok(Temperatures { sensors })
    }

    /// Number of sensors found.
    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    /// True when no sensor was found (never, for an opened source).
    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }
}

impl Source for Temperatures {
    fn name(&self) -> &str {
        "temperature"
    }

    fn sample(&mut self, _at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        for s in &self.sensors {
            let milli = match read_i64(&s.input) {
                Ok(v) => v,
                // Some drivers return an error (ENODATA, EAGAIN) while a sensor is not
                // ready; skip it this time.
                Err(Error::Io { .. }) => continue,
                Err(e) => return Err(e),
            };
            let mut r = Reading::new(
                Metric::Temperature,
                s.component.clone(),
                milli as f64 / 1000.0,
            )
            .family(Family::Node);
            for (k, v) in &s.labels {
                r = r.label(*k, v.clone());
            }
            out.push(r);
        }
        Ok(())
    }
}
