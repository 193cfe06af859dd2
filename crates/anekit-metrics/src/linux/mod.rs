//! Linux sources. Each takes a root directory (`/` normally; a fixture or recorded tree in
//! tests, or `/host` in a container that mounts the host's `/proc` and `/sys` there) and
//! reads `<root>/proc/...` and `<root>/sys/...`.
//!
//! File contents are input: every number is parsed defensively and errors name the file
//! and the field.

pub mod cpufreq;
pub mod hwmon;
pub mod meminfo;
pub mod nvml;
pub mod procstat;
pub mod rapl;

use std::path::{Path, PathBuf};

use crate::Error;
use crate::source::{Source, Unavailable};

/// Opens every file-based Linux source under `root` (`/proc/stat`, `/proc/meminfo`,
/// cpufreq, hwmon and thermal zones, RAPL).
pub fn open_files(root: &Path) -> Vec<Result<Box<dyn Source>, Unavailable>> {
    vec![
        procstat::ProcStat::open(root).map(boxed),
        meminfo::MemInfo::open(root).map(boxed),
        cpufreq::CpuFreq::open(root).map(boxed),
        hwmon::Temperatures::open(root).map(boxed),
        rapl::Rapl::open(root).map(boxed),
    ]
}

/// Opens every Linux source: the file-based ones under `root`, and NVML (which is not under
/// `root`: it loads `libnvidia-ml.so.1`).
pub fn open_all(root: &Path) -> Vec<Result<Box<dyn Source>, Unavailable>> {
    let mut v = open_files(root);
    v.push(nvml::Nvml::open().map(boxed));
    v
}

fn boxed<S: Source + 'static>(s: S) -> Box<dyn Source> {
    Box::new(s)
}

/// `root` joined with an absolute path like `/proc/stat`.
pub(crate) fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Reads a sysfs file holding one unsigned integer.
pub(crate) fn read_u64(path: &Path) -> Result<u64, Error> {
    let text = read(path)?;
    parse_u64(text.trim(), path, file_field(path))
}

/// Reads a sysfs file holding one signed integer.
pub(crate) fn read_i64(path: &Path) -> Result<i64, Error> {
    let text = read(path)?;
    let t = text.trim();
    t.parse::<i64>()
        .map_err(|_| Error::parse(path, file_field(path), format!("not an integer: {t:?}")))
}

pub(crate) fn parse_u64(text: &str, path: &Path, field: &str) -> Result<u64, Error> {
    text.parse::<u64>().map_err(|_| {
        Error::parse(
            path,
            field,
            format!("not an unsigned integer: {:?}", truncate(text)),
        )
    })
}

/// The file name, which is the field name of a sysfs attribute.
pub(crate) fn file_field(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
}

pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Entries of `dir` whose name starts with `prefix`, sorted by name with numbers in
/// numeric order (`hwmon2` before `hwmon10`).
pub(crate) fn entries(dir: &Path, prefix: &str) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(name) = e.file_name().to_str()
            && name.starts_with(prefix)
        {
            v.push((name.to_string(), e.path()));
        }
    }
    v.sort_by_key(|a| natural_key(&a.0));
    Ok(v)
}

fn natural_key(s: &str) -> (String, Vec<u64>) {
    let text: String = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    let nums = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    (text, nums)
}
