//! Ring-buffer history: the last N snapshots, and per series the last N points with
//! min/mean/max.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Snapshot;

/// A fixed-capacity ring buffer: pushing onto a full ring drops the oldest element.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    buf: VecDeque<T>,
    cap: usize,
}

impl<T> Ring<T> {
    /// An empty ring holding at most `cap` elements (at least 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Ring {
            buf: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// Appends `v`, dropping the oldest element when full.
    pub fn push(&mut self, v: T) {
        if self.buf.len() == self.cap {
            self.buf.pop_front();
        }
        self.buf.push_back(v);
    }

    /// Oldest to newest.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.buf.iter()
    }

    /// The newest element.
    pub fn last(&self) -> Option<&T> {
        self.buf.back()
    }

    /// The oldest element.
    pub fn first(&self) -> Option<&T> {
        self.buf.front()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

/// Summary statistics of a series over the points in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Arithmetic mean of the values (samples are taken at a fixed interval, so this is the
    /// time mean too).
    pub mean: f64,
    /// Largest value.
    pub max: f64,
    /// Newest value.
    pub last: f64,
    /// Number of points.
    pub count: usize,
}

/// One series: (monotonic seconds, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    points: Ring<(f64, f64)>,
}

impl Series {
    fn new(cap: usize) -> Self {
        Series {
            points: Ring::new(cap),
        }
    }

    /// The points, oldest first: (monotonic seconds, value).
    pub fn points(&self) -> impl DoubleEndedIterator<Item = &(f64, f64)> + ExactSizeIterator {
        self.points.iter()
    }

    /// The values, oldest first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = f64> + ExactSizeIterator + '_ {
        self.points.iter().map(|p| p.1)
    }

    /// min/mean/max/last over the ring; `None` when empty. Non-finite values are ignored.
    pub fn stats(&self) -> Option<Stats> {
        let mut count = 0usize;
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        let mut last = None;
        for v in self.values().filter(|v| v.is_finite()) {
            count += 1;
            min = min.min(v);
            max = max.max(v);
            sum += v;
            last = Some(v);
        }
        Some(Stats {
            min,
            mean: sum / count as f64,
            max,
            last: last?,
            count,
        })
    }
}

/// The last `capacity` snapshots, and per series key ([`crate::Reading::key`]) its points.
#[derive(Debug, Clone)]
pub struct History {
    snapshots: Ring<Arc<Snapshot>>,
    series: HashMap<String, Series>,
}

impl History {
    /// An empty history keeping `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        History {
            snapshots: Ring::new(capacity),
            series: HashMap::new(),
        }
    }

    /// Adds a snapshot. Series with no point left in the window are dropped (a GPU that
    /// went away, a hot-unplugged CPU).
    pub fn push(&mut self, snap: Arc<Snapshot>) {
        let cap = self.snapshots.capacity();
        let t = snap.time.mono_s;
        for r in &snap.readings {
            self.series
                .entry(r.key())
                .or_insert_with(|| Series::new(cap))
                .points
                .push((t, r.value));
        }
        self.snapshots.push(snap);
        if let Some(oldest) = self.snapshots.first().map(|s| s.time.mono_s) {
            self.series
                .retain(|_, s| s.points.last().is_some_and(|p| p.0 >= oldest));
        }
    }

    /// The snapshots, oldest first.
    pub fn snapshots(&self) -> impl DoubleEndedIterator<Item = &Arc<Snapshot>> + ExactSizeIterator {
        self.snapshots.iter()
    }

    /// The newest snapshot.
    pub fn latest(&self) -> Option<&Arc<Snapshot>> {
        self.snapshots.last()
    }

    /// The series of `key`.
    pub fn series(&self, key: &str) -> Option<&Series> {
        self.series.get(key)
    }

    /// min/mean/max/last of `key`.
    pub fn stats(&self, key: &str) -> Option<Stats> {
        self.series(key)?.stats()
    }

    /// Number of snapshots kept.
    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    /// True when no snapshot was pushed.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// How many snapshots are kept at most.
    pub fn capacity(&self) -> usize {
        self.snapshots.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metric, Reading, Timestamp};
    use std::time::Instant;

    fn snap(seq: u64, readings: Vec<Reading>) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            seq,
            time: Timestamp {
                mono_s: seq as f64,
                unix_s: 1.7e9 + seq as f64,
            },
            interval_s: Some(1.0),
            readings,
            sources: vec![],
            at: Instant::now(),
        })
    }

    #[test]
    fn ring_drops_oldest_and_stats_cover_the_window() {
        let mut h = History::new(3);
        for (i, w) in [10.0, 20.0, 30.0, 40.0, 5.0].into_iter().enumerate() {
            h.push(snap(i as u64, vec![Reading::new(Metric::Power, "gpu0", w)]));
        }
        assert_eq!(h.len(), 3);
        let key = Reading::new(Metric::Power, "gpu0", 0.0).key();
        let s = h.stats(&key).unwrap();
        assert_eq!((s.min, s.max, s.last, s.count), (5.0, 40.0, 5.0, 3));
        assert!((s.mean - 25.0).abs() < 1e-12);
        assert_eq!(h.snapshots().next().unwrap().seq, 2);
    }

    #[test]
    fn vanished_series_are_dropped() {
        let mut h = History::new(2);
        h.push(snap(0, vec![Reading::new(Metric::Power, "gpu1", 1.0)]));
        h.push(snap(1, vec![]));
        let key = Reading::new(Metric::Power, "gpu1", 0.0).key();
        assert!(h.series(&key).is_some());
        h.push(snap(2, vec![]));
        assert!(h.series(&key).is_none());
    }

    #[test]
    fn non_finite_values_are_ignored_in_stats() {
        let mut h = History::new(4);
        h.push(snap(0, vec![Reading::new(Metric::Power, "x", f64::NAN)]));
        let key = Reading::new(Metric::Power, "x", 0.0).key();
        assert!(h.stats(&key).is_none());
        h.push(snap(1, vec![Reading::new(Metric::Power, "x", 2.0)]));
        assert_eq!(h.stats(&key).unwrap().count, 1);
    }
}
