//! Inference spans and the energy attributed to them.
//!
//! The runtime marks each inference (or a benchmark's loop) as a span: model, backend, start
//! and end instants. Each sample interval carries the mean power of every component (from
//! energy counters where the hardware has them). A span's energy per component is the sum
//! over the intervals it overlaps of that interval's power times the overlap; its mean power
//! is that energy over the covered time. Spans much shorter than the sample interval get the
//! interval's mean power (the hardware gives nothing finer); to measure a short piece of work
//! exactly, use [`crate::Sampler::measure`], which samples at the span's start and end.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{Metric, Snapshot, time};

/// A marked piece of work.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Id given by the recorder.
    pub id: u64,
    /// The model that ran.
    pub model: String,
    /// The backend it ran on (`cpu`, `coreml`, `ane`, `cuda`, ...).
    pub backend: String,
    /// When it started.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
}

/// Mean power per component over one sample interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerInterval {
    /// Start of the interval (the previous sample).
    pub start: Instant,
    /// End of the interval (this sample).
    pub end: Instant,
    /// (component, mean watts).
    pub power_w: Vec<(String, f64)>,
}

impl PowerInterval {
    /// The interval that ends at `snap` with its power readings; `None` for a first sample
    /// (no interval) or a snapshot without power readings.
    pub fn from_snapshot(snap: &Snapshot) -> Option<Self> {
        let dt = snap.interval_s?;
        let start = snap
            .at
            .checked_sub(std::time::Duration::from_secs_f64(dt))?;
        let power_w: Vec<(String, f64)> = snap
            .of(Metric::Power)
            .filter(|r| r.value.is_finite())
            .map(|r| (r.component.clone(), r.value))
            .collect();
        if power_w.is_empty() {
            return None;
        }
        Some(PowerInterval {
            start,
            end: snap.at,
            power_w,
        })
    }
}

/// Energy and mean power of one component during a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentEnergy {
    /// The component (`gpu0`, `rapl:package-0`, `ane`, ...).
    pub component: String,
    /// Energy over the whole span, joules (mean power times duration).
    pub energy_j: f64,
    /// Mean power over the covered part of the span, watts.
    pub mean_power_w: f64,
}

/// What a span cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEnergy {
    /// The span's id.
    pub id: u64,
    /// The model.
    pub model: String,
    /// The backend.
    pub backend: String,
    /// Start, monotonic seconds (same clock as snapshots' `time.mono_s`).
    pub start_mono_s: f64,
    /// Duration, seconds.
    pub duration_s: f64,
    /// Share of the span covered by sample intervals with power readings (1 when fully
    /// covered; less for spans older than the history or newer than the last sample).
    pub coverage: f64,
    /// Energy and mean power per component.
    pub components: Vec<ComponentEnergy>,
}

impl SpanEnergy {
    /// Energy of `component`, joules.
    pub fn energy_j(&self, component: &str) -> Option<f64> {
        self.components
            .iter()
            .find(|c| c.component == component)
            .map(|c| c.energy_j)
    }
}

fn overlap_s(a0: Instant, a1: Instant, b0: Instant, b1: Instant) -> f64 {
    let s = a0.max(b0);
    let e = a1.min(b1);
    e.saturating_duration_since(s).as_secs_f64()
}

/// Attributes energy to `span` from sample `intervals` (any order; they must not overlap).
pub fn attribute(span: &Span, intervals: &[PowerInterval]) -> SpanEnergy {
    let duration_s = span.end.saturating_duration_since(span.start).as_secs_f64();
    // component -> (joules over covered time, covered seconds)
    let mut acc: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut covered = 0.0;
    for iv in intervals {
        let w = if duration_s > 0.0 {
            overlap_s(span.start, span.end, iv.start, iv.end)
        } else if iv.start <= span.start && span.start <= iv.end {
            // An instantaneous span takes the power of the interval it falls in.
            1.0
        } else {
            0.0
        };
        if w <= 0.0 {
            continue;
        }
        covered += w;
        for (component, p) in &iv.power_w {
            let e = acc.entry(component.as_str()).or_insert((0.0, 0.0));
            e.0 += p * w;
            e.1 += w;
        }
    }
    let coverage = if duration_s > 0.0 {
        (covered / duration_s).min(1.0)
    } else if covered > 0.0 {
        1.0
    } else {
        0.0
    };
    let components = acc
        .into_iter()
        .map(|(component, (j, t))| {
            let mean_power_w = if t > 0.0 { j / t } else { 0.0 };
            ComponentEnergy {
                component: component.to_string(),
                energy_j: mean_power_w * duration_s,
                mean_power_w,
            }
        })
        .collect();
    SpanEnergy {
        id: span.id,
        model: span.model.clone(),
        backend: span.backend.clone(),
        start_mono_s: time::mono_s(span.start),
        duration_s,
        coverage,
        components,
    }
}

/// Per model and backend: how many spans, how long, how much energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTotals {
    /// The model.
    pub model: String,
    /// The backend.
    pub backend: String,
    /// Number of attributed spans.
    pub count: u64,
    /// Their total duration, seconds.
    pub duration_s: f64,
    /// Their total energy per component, joules.
    pub energy_j: BTreeMap<String, f64>,
}

impl SpanTotals {
    /// Mean energy per span (per inference) of `component`, joules.
    pub fn energy_per_span_j(&self, component: &str) -> Option<f64> {
        (self.count > 0).then_some(())?;
        Some(self.energy_j.get(component)? / self.count as f64)
    }
}

const COMPLETED_CAP: usize = 4096;

#[derive(Debug, Default)]
struct Book {
    next_id: u64,
    pending: Vec<Span>,
    completed: VecDeque<SpanEnergy>,
    totals: BTreeMap<(String, String), SpanTotals>,
}

/// Where the runtime marks inference spans; cheap to clone and share between threads. The
/// sampler attributes energy to each span once a sample past its end exists.
#[derive(Debug, Clone, Default)]
pub struct SpanRecorder {
    book: Arc<Mutex<Book>>,
}

/// A span that ends when [`SpanGuard::end`] is called or the guard is dropped.
#[derive(Debug)]
pub struct SpanGuard {
    recorder: SpanRecorder,
    model: String,
    backend: String,
    start: Instant,
    done: bool,
}

impl SpanGuard {
    /// Ends the span now and returns its id.
    pub fn end(mut self) -> u64 {
        self.finish()
    }

    fn finish(&mut self) -> u64 {
        self.done = true;
        self.recorder.record(
            std::mem::take(&mut self.model),
            std::mem::take(&mut self.backend),
            self.start,
            Instant::now(),
        )
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if !self.done {
            self.finish();
        }
    }
}

impl SpanRecorder {
    /// A recorder with no spans.
    pub fn new() -> Self {
        SpanRecorder::default()
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock leaves the book consistent (every update is a
        // single push or insert), so a poisoned lock is still usable.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a finished span and returns its id.
    pub fn record(
        &self,
        model: impl Into<String>,
        backend: impl Into<String>,
        start: Instant,
        end: Instant,
    ) -> u64 {
        let mut book = self.lock();
        let id = book.next_id;
        book.next_id += 1;
        book.pending.push(Span {
            id,
            model: model.into(),
            backend: backend.into(),
            start,
            end: end.max(start),
        });
        id
    }

    /// Starts a span that ends when the guard is ended or dropped.
    pub fn begin(&self, model: impl Into<String>, backend: impl Into<String>) -> SpanGuard {
        SpanGuard {
            recorder: self.clone(),
            model: model.into(),
            backend: backend.into(),
            start: Instant::now(),
            done: false,
        }
    }

    /// Runs `f` as a span; returns its result and the span id.
    pub fn measure<R>(
        &self,
        model: impl Into<String>,
        backend: impl Into<String>,
        f: impl FnOnce() -> R,
    ) -> (R, u64) {
        let start = Instant::now();
        let r = f();
        let id = self.record(model, backend, start, Instant::now());
        (r, id)
    }

    /// Number of spans waiting for a sample past their end.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Attributes every pending span that ends at or before `covered_until` (the newest
    /// sample) using `intervals`; returns how many were attributed. The sampler calls this
    /// after each sample.
    pub fn resolve(&self, intervals: &[PowerInterval], covered_until: Instant) -> usize {
        let mut book = self.lock();
        let (ready, waiting): (Vec<Span>, Vec<Span>) = std::mem::take(&mut book.pending)
            .into_iter()
            .partition(|s| s.end <= covered_until);
        book.pending = waiting;
        let n = ready.len();
        for span in ready {
            let e = attribute(&span, intervals);
            let t = book
                .totals
                .entry((e.model.clone(), e.backend.clone()))
                .or_insert_with(|| SpanTotals {
                    model: e.model.clone(),
                    backend: e.backend.clone(),
                    count: 0,
                    duration_s: 0.0,
                    energy_j: BTreeMap::new(),
                });
            t.count += 1;
            t.duration_s += e.duration_s;
            for c in &e.components {
                *t.energy_j.entry(c.component.clone()).or_insert(0.0) += c.energy_j;
            }
            if book.completed.len() == COMPLETED_CAP {
                book.completed.pop_front();
            }
            book.completed.push_back(e);
        }
        n
    }

    /// Takes the attributed spans (the newest 4096 at most are kept until taken).
    pub fn take_completed(&self) -> Vec<SpanEnergy> {
        self.lock().completed.drain(..).collect()
    }

    /// Totals per model and backend since the recorder was made.
    pub fn totals(&self) -> Vec<SpanTotals> {
        self.lock().totals.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn iv(t0: Instant, a_ms: u64, b_ms: u64, p: &[(&str, f64)]) -> PowerInterval {
        PowerInterval {
            start: t0 + Duration::from_millis(a_ms),
            end: t0 + Duration::from_millis(b_ms),
            power_w: p.iter().map(|(c, w)| (c.to_string(), *w)).collect(),
        }
    }

    #[test]
    fn energy_is_power_times_overlap() {
        let t0 = Instant::now();
        // Two 1 s intervals: GPU at 100 W then 300 W; CPU package at 20 W, 40 W.
        let ivs = [
            iv(t0, 0, 1000, &[("gpu0", 100.0), ("rapl:package-0", 20.0)]),
            iv(t0, 1000, 2000, &[("gpu0", 300.0), ("rapl:package-0", 40.0)]),
        ];
        // Span from 0.5 s to 1.5 s: half of each interval.
        let span = Span {
            id: 7,
            model: "m".into(),
            backend: "cuda".into(),
            start: t0 + Duration::from_millis(500),
            end: t0 + Duration::from_millis(1500),
        };
        let e = attribute(&span, &ivs);
        assert_eq!(e.coverage, 1.0);
        assert!((e.duration_s - 1.0).abs() < 1e-9);
        assert!((e.energy_j("gpu0").unwrap() - 200.0).abs() < 1e-9);
        assert!((e.energy_j("rapl:package-0").unwrap() - 30.0).abs() < 1e-9);
        let gpu = &e.components.iter().find(|c| c.component == "gpu0").unwrap();
        assert!((gpu.mean_power_w - 200.0).abs() < 1e-9);
    }

    #[test]
    fn partial_coverage_extrapolates_mean_power() {
        let t0 = Instant::now();
        let ivs = [iv(t0, 1000, 2000, &[("ane", 2.0)])];
        // Span 0.5..1.5 s: only the second half is covered.
        let span = Span {
            id: 0,
            model: "m".into(),
            backend: "ane".into(),
            start: t0 + Duration::from_millis(500),
            end: t0 + Duration::from_millis(1500),
        };
        let e = attribute(&span, &ivs);
        assert!((e.coverage - 0.5).abs() < 1e-9);
        assert!((e.energy_j("ane").unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn short_spans_take_the_interval_mean_and_totals_accumulate() {
        let t0 = Instant::now();
        let ivs = [iv(t0, 0, 1000, &[("gpu0", 50.0)])];
        let rec = SpanRecorder::new();
        // Ten 10 ms inferences inside the interval, one after it.
        for i in 0..10u64 {
            let s = t0 + Duration::from_millis(100 + 20 * i);
            rec.record("resnet", "cuda", s, s + Duration::from_millis(10));
        }
        let late = t0 + Duration::from_millis(1500);
        rec.record("resnet", "cuda", late, late + Duration::from_millis(10));
        assert_eq!(rec.resolve(&ivs, t0 + Duration::from_millis(1000)), 10);
        assert_eq!(rec.pending(), 1);
        let done = rec.take_completed();
        assert_eq!(done.len(), 10);
        for e in &done {
            assert!((e.energy_j("gpu0").unwrap() - 0.5).abs() < 1e-9);
        }
        let totals = rec.totals();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].count, 10);
        assert!((totals[0].energy_per_span_j("gpu0").unwrap() - 0.5).abs() < 1e-9);
        assert!(rec.take_completed().is_empty());
    }

    #[test]
    fn guard_records_on_drop() {
        let rec = SpanRecorder::new();
        {
            let _g = rec.begin("m", "cpu");
        }
        let id = rec.begin("m", "cpu").end();
        assert_eq!(id, 1);
        let ((), id) = rec.measure("m", "cpu", || ());
        assert_eq!(id, 2);
        assert_eq!(rec.pending(), 3);
    }
}
