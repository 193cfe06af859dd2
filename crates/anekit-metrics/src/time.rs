//! Timestamps: every snapshot carries a monotonic time (for intervals and span
//! attribution; never jumps) and the wall-clock time (for humans and time-series databases),
//! both read at the same moment.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time, monotonic and wall-clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the process's metrics epoch (the first use of this crate's clock), from
    /// the monotonic clock.
    pub mono_s: f64,
    /// Seconds since 1970-01-01 UTC, from the wall clock.
    pub unix_s: f64,
}

/// The process-wide monotonic epoch that `mono_s` counts from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Seconds from the epoch to `at` (0 for instants before the epoch).
pub fn mono_s(at: Instant) -> f64 {
    at.saturating_duration_since(epoch()).as_secs_f64()
}

impl Timestamp {
    /// The timestamp of `at`, with the wall clock read now (call right after taking `at`).
    pub fn at(at: Instant) -> Self {
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        Timestamp {
            mono_s: mono_s(at),
            unix_s,
        }
    }

    /// The timestamp of now.
    pub fn now() -> (Instant, Self) {
        let _ = epoch();
        let at = Instant::now();
        (at, Timestamp::at(at))
    }
}
