//! `/proc/meminfo`: RAM and swap.
//!
//! Format (proc_meminfo(5)): `Name:   value kB` per line; amounts are in KiB despite the
//! "kB". `MemAvailable` exists since Linux 3.14; before it, available memory is estimated
//! as MemFree + Buffers + Cached.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{parse_u64, read, under};
use crate::source::{Source, Unavailable};
use crate::{Error, Family, Metric, Reading};

/// The fields exported (as `node_memory_<field>_bytes`).
pub const FIELDS: [&str; 9] = [
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "Shmem",
    "SwapTotal",
    "SwapFree",
    "SwapCached",
];

/// Parses the fields of [`FIELDS`] that are present, in bytes.
pub fn parse(text: &str, path: &Path) -> Result<Vec<(&'static str, u64)>, Error> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(field) = FIELDS.iter().find(|f| **f == name.trim()) else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let value = parse_u64(parts.next().unwrap_or(""), path, field)?;
        let bytes = match parts.next() {
            Some("kB") => value
                .checked_mul(1024)
                .ok_or_else(|| Error::parse(path, *field, "value too large"))?,
            None => value,
            Some(u) => {
                return Err(Error::parse(path, *field, format!("unknown unit {u:?}")));
            }
        };
        out.push((*field, bytes));
    }
    if !out.iter().any(|(f, _)| *f == "MemTotal") {
        return Err(Error::parse(path, "MemTotal", "missing"));
    }
    Ok(out)
}

/// The `/proc/meminfo` source.
#[derive(Debug)]
pub struct MemInfo {
    path: PathBuf,
}

impl MemInfo {
    /// Opens `<root>/proc/meminfo` (it must be readable and parse).
    pub fn open(root: &Path) -> Result<Self, Unavailable> {
        let path = under(root, "/proc/meminfo");
        let text = read(&path).map_err(|e| Unavailable::new("meminfo", e.to_string()))?;
        parse(&text, &path).map_err(|e| Unavailable::new("meminfo", e.to_string()))?;
        Ok(MemInfo { path })
    }
}

impl Source for MemInfo {
    fn name(&self) -> &str {
        "meminfo"
    }

    fn sample(&mut self, _at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        let fields = parse(&read(&self.path)?, &self.path)?;
        let get = |name: &str| fields.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
        for (field, bytes) in &fields {
            out.push(
                Reading::new(Metric::Memory, "memory", *bytes as f64)
                    .label("field", *field)
                    .family(Family::Node),
            );
        }
        let total = get("MemTotal").unwrap_or(0);
        let available = get("MemAvailable").unwrap_or_else(|| {
            get("MemFree").unwrap_or(0) + get("Buffers").unwrap_or(0) + get("Cached").unwrap_or(0)
        });
        out.push(
            Reading::new(
                Metric::Memory,
                "memory",
                total.saturating_sub(available) as f64,
            )
            .label("field", "used"),
        );
        if let (Some(st), Some(sf)) = (get("SwapTotal"), get("SwapFree")) {
            out.push(
                Reading::new(Metric::Memory, "swap", st.saturating_sub(sf) as f64)
                    .label("field", "used"),
            );
        }
        Ok(())
    }
}
