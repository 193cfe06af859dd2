//! Renderings of snapshots: JSON lines and Prometheus text format, and the HTTP endpoint.

mod prometheus;
mod serve;

pub use prometheus::{PromSample, prometheus_sample, prometheus_text};
pub use serve::MetricsServer;

use crate::{Error, Snapshot};

/// One snapshot as one line of JSON (no newline): `seq`, `time` (`mono_s`, `unix_s`),
/// `interval_s`, `readings` (`metric`, `component`, `labels`, `value`) and `sources`.
pub fn json_line(snapshot: &Snapshot) -> Result<String, Error> {
    serde_json::to_string(snapshot).map_err(|e| Error::source("json", e.to_string()))
}
