//! A set of sources sampled together into [`Snapshot`]s.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::source::{Source, SourceState, SourceStatus, Unavailable};
use crate::{Metric, Reading, Timestamp};

/// Everything measured at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Sequence number: 0 for the first sample of a collector, then 1, 2, ...
    pub seq: u64,
    /// When the sample was taken.
    pub time: Timestamp,
    /// Measured seconds since the previous sample (`None` for the first), the interval that
    /// rates (power, utilisation) in this snapshot are averages over.
    pub interval_s: Option<f64>,
    /// The readings.
    pub readings: Vec<Reading>,
    /// Each source's state in this sample.
    pub sources: Vec<SourceStatus>,
    /// The monotonic instant of the sample (not serialized; `time.mono_s` is its rendering).
    #[serde(skip, default = "Instant::now")]
    pub at: Instant,
}

impl Snapshot {
    /// The readings of one metric.
    pub fn of(&self, metric: Metric) -> impl Iterator<Item = &Reading> {
        self.readings.iter().filter(move |r| r.metric == metric)
    }

    /// The reading of `metric` for `component` whose labels include all of `labels`.
    pub fn find(&self, metric: Metric, component: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.readings
            .iter()
            .find(|r| {
                r.metric == metric
                    && r.component == component
                    && labels.iter().all(|(k, v)| r.get_label(k) == Some(*v))
            })
            .map(|r| r.value)
    }
}

enum Entry {
    Open {
        source: Box<dyn Source>,
        last_error: Option<String>,
    },
    Unavailable(Unavailable),
}

/// A set of sources, sampled together.
#[derive(Default)]
pub struct Collector {
    entries: Vec<Entry>,
    seq: u64,
    last: Option<Instant>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("sources", &self.statuses())
            .field("seq", &self.seq)
            .finish()
    }
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Collector::default()
    }

    /// Adds an opened source, or records one that could not be opened (it is listed in every
    /// snapshot with its reason).
    pub fn push(&mut self, opened: Result<Box<dyn Source>, Unavailable>) {
        match opened {
            Ok(source) => {
                tracing::debug!(source = source.name(), "metric source opened");
                self.entries.push(Entry::Open {
                    source,
                    last_error: None,
                })
            }
            Err(u) => {
                tracing::info!(source = %u.source, reason = %u.reason, "metric source unavailable");
                self.entries.push(Entry::Unavailable(u))
            }
        }
    }

    /// Adds an opened source.
    pub fn add(&mut self, source: impl Source + 'static) {
        self.push(Ok(Box::new(source)));
    }

    /// Every source's state as of the last sample.
    pub fn statuses(&self) -> Vec<SourceStatus> {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Open { source, last_error } => SourceStatus {
                    name: source.name().to_string(),
                    state: match last_error {
                        None => SourceState::Ok,
                        Some(m) => SourceState::Error { message: m.clone() },
                    },
                },
                Entry::Unavailable(u) => SourceStatus {
                    name: u.source.clone(),
                    state: SourceState::Unavailable {
                        reason: u.reason.clone(),
                    },
                },
            })
            .collect()
    }

    /// True when at least one source is open.
    pub fn has_sources(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Open { .. }))
    }

    /// Samples every open source now.
    pub fn sample(&mut self) -> Snapshot {
        let (at, time) = Timestamp::now();
        self.sample_at(at, time)
    }

    /// Samples every open source now, reading every counter (see
    /// [`Source::sample_precise`]).
    pub fn sample_precise(&mut self) -> Snapshot {
        let (at, time) = Timestamp::now();
        self.take(at, time, true)
    }

    /// Samples every open source, stamping the snapshot with `at` and `time` (tests pass
    /// constructed instants to get exact intervals).
    pub fn sample_at(&mut self, at: Instant, time: Timestamp) -> Snapshot {
        self.take(at, time, false)
    }

    fn take(&mut self, at: Instant, time: Timestamp, precise: bool) -> Snapshot {
        let mut readings = Vec::with_capacity(128);
        for entry in &mut self.entries {
            if let Entry::Open { source, last_error } = entry {
                let before = readings.len();
                let result = if precise {
                    source.sample_precise(at, &mut readings)
                } else {
                    source.sample(at, &mut readings)
                };
                match result {
                    Ok(()) => {
                        if last_error.take().is_some() {
                            tracing::info!(source = source.name(), "metric source recovered");
                        }
                    }
                    Err(e) => {
                        readings.truncate(before);
                        let message = e.to_string();
                        if last_error.as_deref() != Some(message.as_str()) {
                            tracing::warn!(source = source.name(), error = %message, "metric source failed");
                        }
                        *last_error = Some(message);
                    }
                }
            }
        }
        let interval_s = self
            .last
            .map(|prev| at.saturating_duration_since(prev).as_secs_f64());
        self.last = Some(at);
        let seq = self.seq;
        self.seq += 1;
        Snapshot {
            seq,
            time,
            interval_s,
            readings,
            sources: self.statuses(),
            at,
        }
    }
}
