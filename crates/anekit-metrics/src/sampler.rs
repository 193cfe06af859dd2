//! The sampler: a collector run on its own thread at a fixed interval, with history,
//! subscribers and span attribution.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::span::{ComponentEnergy, PowerInterval, Span, SpanEnergy, attribute};
use crate::{Collector, Error, History, Metric, Snapshot, SpanRecorder};

/// How a [`Sampler`] runs.
#[derive(Debug, Clone, Copy)]
pub struct SamplerConfig {
    /// Time between samples. Values under 10 ms are raised to 10 ms.
    pub interval: Duration,
    /// Snapshots kept in the history (sparklines, min/mean/max, span attribution).
    pub history: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            interval: Duration::from_secs(1),
            history: 300,
        }
    }
}

struct Shared {
    collector: Mutex<Collector>,
    history: Mutex<History>,
    subscribers: Mutex<Vec<Sender<Arc<Snapshot>>>>,
    spans: SpanRecorder,
    stop: Mutex<bool>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock stays usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Samples, records in the history, attributes spans and notifies subscribers.
    fn sample(&self, precise: bool) -> Arc<Snapshot> {
        let snap = {
            let mut c = lock(&self.collector);
            Arc::new(if precise {
                c.sample_precise()
            } else {
                c.sample()
            })
        };
        let intervals: Vec<PowerInterval> = {
            let mut h = lock(&self.history);
            h.push(Arc::clone(&snap));
            if self.spans.pending() > 0 {
                h.snapshots()
                    .filter_map(|s| PowerInterval::from_snapshot(s))
                    .collect()
            } else {
                Vec::new()
            }
        };
        if !intervals.is_empty() {
            self.spans.resolve(&intervals, snap.at);
        }
        lock(&self.subscribers).retain(|tx| tx.send(Arc::clone(&snap)).is_ok());
        snap
    }
}

/// Runs a [`Collector`] on its own thread (`anekit-sampler`).
///
/// The first sample is taken when the sampler starts (it has counters but no rates yet);
/// the thread then samples every `interval`, on a fixed schedule (a late sample does not
/// shift the following ones; missed ones are skipped). Stopped on [`Sampler::stop`] or drop.
pub struct Sampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    interval: Duration,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// Starts sampling `collector`.
    pub fn start(collector: Collector, config: SamplerConfig) -> Result<Sampler, Error> {
        let interval = config.interval.max(Duration::from_millis(10));
        let shared = Arc::new(Shared {
            collector: Mutex::new(collector),
            history: Mutex::new(History::new(config.history)),
            subscribers: Mutex::new(Vec::new()),
            spans: SpanRecorder::new(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        shared.sample(false);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("anekit-sampler".into())
            .spawn(move || run(&thread_shared, interval))
            .map_err(|e| Error::Sampler(format!("cannot start the sampler thread: {e}")))?;
        Ok(Sampler {
            shared,
            thread: Some(thread),
            interval,
        })
    }

    /// The sample interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The newest snapshot.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        lock(&self.shared.history).latest().cloned()
    }

    /// Runs `f` on the history (keep it short: the sampler waits for it).
    pub fn with_history<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        f(&lock(&self.shared.history))
    }

    /// A receiver of every snapshot from now on (periodic and on-demand ones). Dropping the
    /// receiver unsubscribes.
    pub fn subscribe(&self) -> Receiver<Arc<Snapshot>> {
        let (tx, rx) = mpsc::channel();
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// The recorder that inference spans are marked in; its spans are attributed as samples
    /// arrive.
    pub fn spans(&self) -> SpanRecorder {
        self.shared.spans.clone()
    }

    /// Takes a sample now, outside the schedule, reading every counter
    /// ([`crate::Source::sample_precise`]), and returns it.
    pub fn sample_now(&self) -> Arc<Snapshot> {
        self.shared.sample(true)
    }

    /// Runs `f` between two on-demand samples and returns its result with the energy and
    /// mean power attributed to it. Where a component has an energy counter (RAPL, NVML,
    /// IOReport Energy Model), its energy is the counter's increase between the two samples,
    /// scaled from the sampled window to the span (the window exceeds the span only by the
    /// time the samples themselves take); other components get the mean of their power
    /// readings over the span. A benchmark runs its whole loop inside one `measure` and
    /// divides by the iteration count.
    pub fn measure<R>(
        &self,
        model: impl Into<String>,
        backend: impl Into<String>,
        f: impl FnOnce() -> R,
    ) -> (R, SpanEnergy) {
        let before = self.sample_now();
        let start = Instant::now();
        let r = f();
        let end = Instant::now();
        let after = self.sample_now();
        let span = Span {
            id: u64::MAX,
            model: model.into(),
            backend: backend.into(),
            start,
            end,
        };
        let intervals: Vec<PowerInterval> = self.with_history(|h| {
            h.snapshots()
                .filter(|s| s.at > before.at && s.at <= after.at)
                .filter_map(|s| PowerInterval::from_snapshot(s))
                .collect()
        });
        // The samples bracket the work, so the intervals cover [before, after] ⊇ [start, end];
        // the little time outside the span is not counted.
        let mut e = attribute(&span, &intervals);
        let window = after.at.saturating_duration_since(before.at).as_secs_f64();
        if window > 0.0 {
            for r1 in after.of(Metric::Energy) {
                let Some(r0) = before
                    .of(Metric::Energy)
                    .find(|r0| r0.component == r1.component && r0.labels == r1.labels)
                else {
                    continue;
                };
                let joules = r1.value - r0.value;
                if !(joules >= 0.0 && joules.is_finite()) {
                    continue;
                }
                let mean_power_w = joules / window;
                let c = ComponentEnergy {
                    component: r1.component.clone(),
                    energy_j: mean_power_w * e.duration_s,
                    mean_power_w,
                };
                match e.components.iter_mut().find(|x| x.component == c.component) {
                    Some(x) => *x = c,
                    None => e.components.push(c),
                }
            }
            if !e.components.is_empty() {
                e.coverage = 1.0;
            }
        }
        (r, e)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the sampler thread panicked");
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(shared: &Shared, interval: Duration) {
    let mut next = Instant::now() + interval;
    loop {
        {
            let mut stop = lock(&shared.stop);
            loop {
                if *stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stop = shared
                    .wake
                    .wait_timeout(stop, next - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        shared.sample(false);
        next += interval;
        let now = Instant::now();
        if next <= now {
            // Fell behind (machine suspended, a slow source): skip the missed ticks.
            let behind = now.duration_since(next).as_nanos() / interval.as_nanos().max(1);
            next += interval * (u32::try_from(behind).unwrap_or(u32::MAX - 1) + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metric, Reading, Source};

    /// A source whose energy counter grows by exactly 1 J per millisecond of the instants it
    /// is given (1000 W), so attributed energies are checkable against elapsed time.
    struct Kilowatt {
        first: Option<Instant>,
        counter: crate::counter::EnergyCounter,
    }

    impl Source for Kilowatt {
        fn name(&self) -> &str {
            "kilowatt"
        }
        fn sample(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
            let first = *self.first.get_or_insert(at);
            let raw = at.duration_since(first).as_nanos() as u64; // µJ at 1000 W
            let u = self.counter.update(raw, at);
            if let Some(p) = u.power_w {
                out.push(Reading::new(Metric::Power, "heater", p));
            }
            out.push(Reading::new(Metric::Energy, "heater", u.total_j));
            Ok(())
        }
    }

    fn kilowatt() -> Collector {
        let mut c = Collector::new();
        c.add(Kilowatt {
            first: None,
            counter: crate::counter::EnergyCounter::new(crate::counter::Wrap::Never, 1e-6),
        });
        c
    }

    #[test]
    fn measure_brackets_the_work() {
        let s = Sampler::start(
            kilowatt(),
            SamplerConfig {
                interval: Duration::from_secs(3600),
                history: 16,
            },
        )
        .unwrap();
        let (v, e) = s.measure("m", "cpu", || {
            std::thread::sleep(Duration::from_millis(20));
            42
        });
        assert_eq!(v, 42);
        assert_eq!(e.coverage, 1.0);
        let c = &e.components[0];
        assert_eq!(c.component, "heater");
        // 1000 W exactly, so energy = 1000 * duration.
        assert!((c.mean_power_w - 1000.0).abs() < 1e-6, "{c:?}");
        assert!((c.energy_j - 1000.0 * e.duration_s).abs() < 1e-6);
        assert!(e.duration_s >= 0.02);
        s.stop();
    }

    /// A source whose energy counter (1000 W) is read only on precise samples, as NVML's
    /// is most of the time; between, it reports a wrong instantaneous power (1 W).
    struct Lazy(Kilowatt);

    impl Source for Lazy {
        fn name(&self) -> &str {
            "lazy"
        }
        fn sample(&mut self, _at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
            out.push(Reading::new(Metric::Power, "heater", 1.0));
            Ok(())
        }
        fn sample_precise(&mut self, at: Instant, out: &mut Vec<Reading>) -> Result<(), Error> {
            self.0.sample(at, out)
        }
    }

    #[test]
    fn measure_uses_counters_read_at_both_ends() {
        let mut c = Collector::new();
        c.add(Lazy(Kilowatt {
            first: None,
            counter: crate::counter::EnergyCounter::new(crate::counter::Wrap::Never, 1e-6),
        }));
        // Periodic samples every 10 ms fall inside the measured work and carry 1 W.
        let s = Sampler::start(
            c,
            SamplerConfig {
                interval: Duration::from_millis(10),
                history: 1000,
            },
        )
        .unwrap();
        let ((), e) = s.measure("m", "cpu", || std::thread::sleep(Duration::from_millis(50)));
        let c = &e.components[0];
        assert!((c.mean_power_w - 1000.0).abs() < 1e-6, "{c:?}");
        assert_eq!(e.coverage, 1.0);
    }

    #[test]
    fn periodic_samples_reach_subscribers_and_spans() {
        let s = Sampler::start(
            kilowatt(),
            SamplerConfig {
                interval: Duration::from_millis(10),
                history: 1000,
            },
        )
        .unwrap();
        let rx = s.subscribe();
        let spans = s.spans();
        let ((), _) = spans.measure("m", "cpu", || std::thread::sleep(Duration::from_millis(5)));
        // Wait (bounded by samples, not time) until the span is attributed.
        let mut got = Vec::new();
        for _ in 0..1000 {
            let snap = rx.recv().unwrap();
            assert!(snap.seq >= 1);
            got = spans.take_completed();
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1);
        assert!((got[0].components[0].mean_power_w - 1000.0).abs() < 1e-6);
        assert!(s.with_history(|h| h.len()) >= 2);
        drop(s);
    }
}
