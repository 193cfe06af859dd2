//! Cumulative counters to rates: deltas over the measured interval, with wrap handling.

use std::time::Instant;

/// How a cumulative counter behaves when it passes its largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// The counter never wraps in practice (64-bit NVML energy, `/proc/stat` ticks); a smaller
    /// value than before means it was reset (driver reload, CPU hot-plug), and that
    /// interval is skipped.
    Never,
    /// The counter runs from 0 to this value inclusive and then starts again at 0
    /// (powercap's `max_energy_range_uj`).
    At(u64),
}

/// The increase of a counter from `prev` to `cur`, or `None` when it was reset.
///
/// With [`Wrap::At`]`(max)`, a smaller `cur` is one wrap: the counter went from `prev` up to
/// `max`, then from 0 to `cur`, so the increase is `max - prev + cur + 1` (the `+ 1` is the
/// step from `max` to 0; node_exporter and the powercap library leave it out, a 1 µJ
/// difference). A `prev` above `max` cannot come from a wrapping counter and counts as a
/// reset.
pub fn delta(prev: u64, cur: u64, wrap: Wrap) -> Option<u64> {
    if cur >= prev {
        return Some(cur - prev);
    }
    match wrap {
        Wrap::Never => None,
        Wrap::At(max) if prev <= max => Some((max - prev).saturating_add(cur).saturating_add(1)),
        Wrap::At(_) => None,
    }
}

/// An energy counter turned into joules since the first reading and mean power per interval.
#[derive(Debug, Clone)]
pub struct EnergyCounter {
    wrap: Wrap,
    joules_per_unit: f64,
    prev: Option<(u64, Instant)>,
    total_j: f64,
}

/// What one update of an [`EnergyCounter`] gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyUpdate {
    /// Joules since the first reading, wraps undone.
    pub total_j: f64,
    /// Mean power since the previous reading, watts; `None` on the first reading, after a
    /// reset, or when no time has passed.
    pub power_w: Option<f64>,
    /// When the previous reading was taken (the start of the interval `power_w` covers).
    pub since: Option<Instant>,
}

impl EnergyCounter {
    /// A counter whose raw unit is `joules_per_unit` joules (1e-6 for µJ, 1e-3 for mJ).
    pub fn new(wrap: Wrap, joules_per_unit: f64) -> Self {
        EnergyCounter {
            wrap,
            joules_per_unit,
            prev: None,
            total_j: 0.0,
        }
    }

    /// Feeds the raw counter value read at `at`.
    pub fn update(&mut self, raw: u64, at: Instant) -> EnergyUpdate {
        let mut power_w = None;
        let since = self.prev.map(|p| p.1);
        if let Some((prev_raw, prev_at)) = self.prev {
            let dt = at.saturating_duration_since(prev_at).as_secs_f64();
            if let Some(d) = delta(prev_raw, raw, self.wrap) {
                let joules = d as f64 * self.joules_per_unit;
                self.total_j += joules;
                if dt > 0.0 {
                    power_w = Some(joules / dt);
                }
            }
        }
        self.prev = Some((raw, at));
        EnergyUpdate {
            total_j: self.total_j,
            power_w,
            since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deltas() {
        assert_eq!(delta(10, 25, Wrap::Never), Some(15));
        assert_eq!(delta(25, 10, Wrap::Never), None);
        // RAPL-like counter with range 0..=999: 990 -> 5 is 9 (to 999) + 1 (to 0) + 5.
        assert_eq!(delta(990, 5, Wrap::At(999)), Some(15));
        assert_eq!(delta(5, 990, Wrap::At(999)), Some(985));
        // prev above the range: not a wrap.
        assert_eq!(delta(2000, 5, Wrap::At(999)), None);
        // Full 64-bit range.
        assert_eq!(delta(u64::MAX - 1, 3, Wrap::At(u64::MAX)), Some(5));
    }

    #[test]
    fn energy_counter_wraps_and_gives_power() {
        // A powercap zone with max_energy_range_uj = 262143328850 (a real value from an
        // Intel package zone), read every 500 ms.
        let max = 262_143_328_850u64;
        let t0 = Instant::now();
        let mut c = EnergyCounter::new(Wrap::At(max), 1e-6);
        let first = c.update(max - 10_000_000, t0);
        assert_eq!(first.power_w, None);
        assert_eq!(first.since, None);
        assert_eq!(first.total_j, 0.0);
        // 10 J to the top, 1 µJ to zero, then 5 J: 15.000001 J over 0.5 s.
        let second = c.update(5_000_000, t0 + Duration::from_millis(500));
        let p = second.power_w.unwrap();
        assert!((p - 30.000002).abs() < 1e-9, "{p}");
        assert!((second.total_j - 15.000001).abs() < 1e-9);
        // A reset is skipped: total unchanged, no power.
        let mut n = EnergyCounter::new(Wrap::Never, 1e-3);
        n.update(1_000, t0);
        let r = n.update(10, t0 + Duration::from_secs(1));
        assert_eq!(r.power_w, None);
        assert_eq!(r.total_j, 0.0);
        let r = n.update(2_010, t0 + Duration::from_secs(2));
        assert_eq!(r.power_w, Some(2.0));
        assert_eq!(r.total_j, 2.0);
    }
}
