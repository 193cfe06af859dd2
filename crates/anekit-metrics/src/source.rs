//! The [`Source`] trait every metric source implements, and source availability.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{Error, Reading};

/// A metric source: something that reads the hardware (or a recorded tree) and appends
/// [`Reading`]s. Sources keep what they need between samples (previous counter values) to
/// turn counters into rates over the measured interval.
///
/// The macOS adapter (over `anekit-apple`) implements [`crate::apple::AppleProvider`], which
/// [`crate::apple::AppleSource`] turns into a `Source`; any other platform source implements
/// this trait directly.
pub trait Source: Send {
    /// A short stable name (`proc_stat`, `rapl`, `nvml`, ...).
    fn name(&self) -> &str;

    /// Takes one sample at `at` (the instant the collector stamps the snapshot with) and
    /// appends the readings to `out`.
    fn sample(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error>;

    /// Like [`Source::sample`], but reads every counter now even where the source reads an
    /// expensive one only every few samples (NVML's energy counter costs milliseconds of
    /// CPU per read). [`crate::Sampler::measure`] samples this way at both ends of the
    /// work it measures, so its energy comes from counters read at those instants.
    fn sample_precise(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
        self.sample(at, out)
    }
}

/// A source that could not be opened, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// The source's name.
    pub source: String,
    /// Why it is not available, for humans (what is missing, what would make it work).
    pub reason: String,
}

impl Unavailable {
    /// A source `source` that is unavailable because of `reason`.
    pub fn new(source: impl Into<String>, reason: impl Into<String>) -> Self {
        Unavailable {
            source: source.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// How a source fared in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceState {
    /// It gave its readings.
    Ok,
    /// It could not be opened; it is not asked again.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// It was opened but this sample failed; it is asked again next time.
    Error {
        /// The error.
        message: String,
    },
}

/// A source's name and state in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source's name.
    pub name: String,
    /// Its state.
    #[serde(flatten)]
    pub state: SourceState,
}
