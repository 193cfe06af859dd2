//! The live view: power, utilisation and clocks, memory, temperatures — each row with its
//! value now, min/mean/max over the history, and a sparkline — and the sources that could
//! not be read, with the reason.
//!
//! [`view`] turns the history into plain rows; [`draw`] renders them. Tests render into
//! ratatui's `TestBackend`.

use std::time::Duration;

use anekit_metrics::{History, Metric, Reading, Sampler, SourceState, Stats};
use anyhow::{Context, Result};
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Wrap};

/// Sparkline resolution: values are scaled to 0..=SCALE.
const SCALE: f64 = 1000.0;

/// One row of a section.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row shows (`gpu0 NVIDIA H100`, `RAM`, `coretemp Package id 0`).
    pub label: String,
    /// The newest value, formatted.
    pub now: String,
    /// min/mean/max over the history, formatted (or other detail).
    pub stats: String,
    /// Sparkline points, oldest first, scaled to 0..=1000.
    pub spark: Vec<u64>,
}

/// A titled group of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Box title.
    pub title: &'static str,
    /// Rows.
    pub rows: Vec<Row>,
    /// Shown when there are no rows.
    pub empty: &'static str,
}

/// Everything the screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The top line.
    pub header: String,
    /// Power, utilisation, memory, temperatures.
    pub sections: Vec<Section>,
    /// One line per source that is unavailable or failed.
    pub problems: Vec<String>,
}

fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn fmt_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Utilisation | Metric::ActiveRatio | Metric::MemoryActivity => {
            format!("{:.1} %", v * 100.0)
        }
        Metric::Power | Metric::PowerLimit => format!("{v:.1} W"),
        Metric::Energy => format!("{v:.1} J"),
        Metric::Temperature => format!("{v:.1} °C"),
        Metric::Frequency if v >= 1e9 => format!("{:.2} GHz", v / 1e9),
        Metric::Frequency => format!("{:.0} MHz", v / 1e6),
        Metric::Memory => fmt_bytes(v),
        Metric::CpuTime => format!("{v:.1} s"),
    }
}

fn fmt_stats(metric: Metric, s: &Stats) -> String {
    format!(
        "{} / {} / {}",
        fmt_value(metric, s.min),
        fmt_value(metric, s.mean),
        fmt_value(metric, s.max)
    )
}

/// Scales a series to sparkline points: ratios against 1, others against their maximum.
fn spark(values: impl Iterator<Item = f64>, full: Option<f64>) -> Vec<u64> {
    let v: Vec<f64> = values
        .map(|x| if x.is_finite() { x.max(0.0) } else { 0.0 })
        .collect();
    let top = full.unwrap_or_else(|| v.iter().copied().fold(0.0, f64::max));
    if top <= 0.0 {
        return vec![0; v.len()];
    }
    v.iter()
        .map(|x| ((x / top).min(1.0) * SCALE).round() as u64)
        .collect()
}

fn label(r: &Reading) -> String {
    let mut l = r.component.clone();
    if let Some(c) = r.get_label("clock") {
        l = format!("{l} {c} clock");
    }
    if r.metric == Metric::MemoryActivity {
        l.push_str(" memory");
    }
    if let Some(m) = r.get_label("modelName")
        && r.get_label("clock").is_none()
        && r.metric != Metric::MemoryActivity
    {
        l = format!("{l} {m}");
    }
    if let Some(t) = r.get_label("label") {
        l = format!("{} {t}", r.get_label("chip").unwrap_or(&r.component));
    } else if let Some(t) = r.get_label("type") {
        l = format!("{} {t}", r.component);
    }
    l
}

fn row(h: &History, r: &Reading, full: Option<f64>) -> Row {
    let key = r.key();
    let series = h.series(&key);
    Row {
        label: label(r),
        now: fmt_value(r.metric, r.value),
        stats: h
            .stats(&key)
            .map(|s| fmt_stats(r.metric, &s))
            .unwrap_or_default(),
        spark: series.map(|s| spark(s.values(), full)).unwrap_or_default(),
    }
}

fn is_core(component: &str) -> bool {
    component
        .strip_prefix("cpu")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Memory row: used of total, with the used series as sparkline against the total.
fn memory_row(h: &History, label: &str, used: &Reading, total: Option<f64>) -> Row {
    let key = used.key();
    let now = match total {
        Some(t) if t > 0.0 => format!(
            "{} / {} ({:.0} %)",
            fmt_bytes(used.value),
            fmt_bytes(t),
            used.value / t * 100.0
        ),
        _ => fmt_bytes(used.value),
    };
    Row {
        label: label.to_string(),
        now,
        stats: h
            .stats(&key)
            .map(|s| format!("max {}", fmt_bytes(s.max)))
            .unwrap_or_default(),
        spark: h
            .series(&key)
            .map(|s| spark(s.values(), total))
            .unwrap_or_default(),
    }
}

fn clock(unix_s: f64) -> String {
    let s = unix_s.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The view of the newest snapshot and its history.
pub fn view(h: &History, interval_ms: u64) -> View {
    let Some(snap) = h.latest() else {
        return View {
            header: "anekit top — waiting for the first sample".into(),
            sections: vec![],
            problems: vec![],
        };
    };
    let header = format!(
        "anekit top · sample {} at {} UTC · every {} ms{} · q quits",
        snap.seq,
        clock(snap.time.unix_s),
        interval_ms,
        snap.interval_s
            .map(|s| format!(" (last {s:.3} s)"))
            .unwrap_or_default()
    );

    let power: Vec<Row> = snap.of(Metric::Power).map(|r| row(h, r, None)).collect();

    let mut util: Vec<Row> = snap
        .readings
        .iter()
        .filter(|r| {
            matches!(
                r.metric,
                Metric::Utilisation | Metric::ActiveRatio | Metric::MemoryActivity
            ) && !is_core(&r.component)
        })
        .map(|r| row(h, r, Some(1.0)))
        .collect();
    let cores: Vec<String> = snap
        .of(Metric::Utilisation)
        .filter(|r| is_core(&r.component))
        .map(|r| format!("{:.0}", r.value * 100.0))
        .collect();
    if !cores.is_empty() {
        util.push(Row {
            label: format!("{} cores (%)", cores.len()),
            now: String::new(),
            stats: cores.join(" "),
            spark: vec![],
        });
    }
    util.extend(
        snap.of(Metric::Frequency)
            .filter(|r| !is_core(&r.component))
            .map(|r| row(h, r, None)),
    );

    let mut memory = Vec::new();
    let mem_total = |component: &str| {
        snap.of(Metric::Memory)
            .find(|r| {
                r.component == component
                    && matches!(
                        r.get_label("field"),
                        Some("total" | "MemTotal" | "SwapTotal")
                    )
            })
            .map(|r| r.value)
    };
    for r in snap.of(Metric::Memory) {
        let field = r.get_label("field");
        match (r.component.as_str(), field) {
            ("memory", Some("used")) => {
                memory.push(memory_row(h, "RAM used", r, mem_total("memory")))
            }
            ("swap", Some("used")) => {
                let total = mem_total("swap")
                    .or_else(|| snap.find(Metric::Memory, "memory", &[("field", "SwapTotal")]));
                if total.is_some_and(|t| t > 0.0) {
                    memory.push(memory_row(h, "swap used", r, total));
                }
            }
            (c, Some("used")) => {
                let l = match r.get_label("modelName") {
                    Some(m) => format!("{c} {m}"),
                    None => c.to_string(),
                };
                memory.push(memory_row(h, &l, r, mem_total(c)));
            }
            (c, Some("in_use")) => memory.push(memory_row(h, &format!("{c} in use"), r, None)),
            _ => {}
        }
    }

    // Temperatures are drawn against 100 °C.
    let temps: Vec<Row> = snap
        .of(Metric::Temperature)
        .map(|r| row(h, r, Some(100.0)))
        .collect();

    let problems = snap
        .sources
        .iter()
        .filter_map(|s| match &s.state {
            SourceState::Ok => None,
            SourceState::Unavailable { reason } => Some(format!("{}: {reason}", s.name)),
            SourceState::Error { message } => Some(format!("{} failed: {message}", s.name)),
        })
        .collect();

    View {
        header,
        sections: vec![
            Section {
                title: "Power",
                rows: power,
                empty: "no power source is readable (see below)",
            },
            Section {
                title: "Utilisation and clocks",
                rows: util,
                empty: "no utilisation yet (rates need two samples)",
            },
            Section {
                title: "Memory",
                rows: memory,
                empty: "no memory source",
            },
            Section {
                title: "Temperatures",
                rows: temps,
                empty: "no temperature sensor is readable (see below)",
            },
        ],
        problems,
    }
}

/// `s` cut to `width` characters, with an ellipsis when cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn draw_section(f: &mut Frame, area: Rect, s: &Section) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Line::from(format!(" {} ", s.title)).bold());
    let inner = block.inner(area);
    f.render_widget(block, area);
    if s.rows.is_empty() {
        f.render_widget(Paragraph::new(s.empty).dark_gray(), inner);
        return;
    }
    let label_w = s
        .rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 34) as u16;
    let now_w = s
        .rows
        .iter()
        .map(|r| r.now.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, 30) as u16;
    let stats_w = s
        .rows
        .iter()
        .map(|r| r.stats.chars().count())
        .max()
        .unwrap_or(0)
        .min(36) as u16;
    let lines = Layout::vertical(vec![Constraint::Length(1); inner.height as usize]).split(inner);
    for (r, line) in s.rows.iter().zip(lines.iter()) {
        let [a, b, c, d] = Layout::horizontal([
            Constraint::Length(label_w + 1),
            Constraint::Length(now_w + 2),
            Constraint::Length(stats_w + 2),
            Constraint::Min(0),
        ])
        .areas(*line);
        f.render_widget(Paragraph::new(fit(&r.label, label_w as usize)), a);
        f.render_widget(Paragraph::new(r.now.as_str()).bold().cyan(), b);
        f.render_widget(Paragraph::new(r.stats.as_str()).dark_gray(), c);
        if !r.spark.is_empty() && d.width > 0 {
            let tail = &r.spark[r.spark.len().saturating_sub(d.width as usize)..];
            f.render_widget(
                Sparkline::default()
                    .data(tail)
                    .max(SCALE as u64)
                    .style(Style::default().fg(Color::Green)),
                d,
            );
        }
    }
}

/// Renders the view.
pub fn draw(f: &mut Frame, v: &View) {
    let area = f.area();
    let mut constraints = vec![Constraint::Length(1)];
    for s in &v.sections {
        constraints.push(Constraint::Length(s.rows.len().max(1) as u16 + 2));
    }
    constraints.push(Constraint::Min(3));
    let areas = Layout::vertical(constraints).split(area);
    f.render_widget(Paragraph::new(v.header.as_str()).reversed(), areas[0]);
    for (s, a) in v.sections.iter().zip(areas.iter().skip(1)) {
        draw_section(f, *a, s);
    }
    if let Some(a) = areas.last() {
        let text = if v.problems.is_empty() {
            "all sources readable".to_string()
        } else {
            v.problems.join("\n")
        };
        f.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" Sources not read "),
            ),
            *a,
        );
    }
}

/// Runs the live view until q, Esc or Ctrl-C.
pub fn run(sampler: &Sampler, interval_ms: u64) -> Result<()> {
    let rx = sampler.subscribe();
    let mut terminal = ratatui::try_init().context("starting the terminal view")?;
    let result = (|| -> Result<()> {
        let mut dirty = true;
        loop {
            if dirty {
                let v = sampler.with_history(|h| view(h, interval_ms));
                terminal.draw(|f| draw(f, &v)).context("drawing")?;
                dirty = false;
            }
            if event::poll(Duration::from_millis(100)).context("reading the terminal")? {
                match event::read().context("reading the terminal")? {
                    Event::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            return Ok(());
                        }
                        _ => {}
                    },
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
            }
            while rx.try_recv().is_ok() {
                dirty = true;
            }
        }
    })();
    ratatui::try_restore().context("restoring the terminal")?;
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use anekit_metrics::{Family, Snapshot, SourceStatus, Timestamp};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn gpu(m: Metric, v: f64) -> Reading {
        Reading::new(m, "gpu0", v)
            .label("gpu", "0")
            .label("modelName", "NVIDIA H100 80GB HBM3")
            .family(Family::Dcgm)
    }

    /// Five 1 s samples: GPU power 100..500 W, CPU busy 10..50 %, RAM, a hwmon sensor;
    /// RAPL unavailable.
    fn history() -> History {
        let mut h = History::new(60);
        for i in 0..5u32 {
            let x = f64::from(i + 1);
            h.push(Arc::new(Snapshot {
                seq: u64::from(i),
                time: Timestamp {
                    mono_s: f64::from(i),
                    // 2026-11-25 12:34:56 UTC + i
                    unix_s: 1_795_000_000.0 - 1_795_000_000.0 % 86_400.0 + 45_296.0 + f64::from(i),
                },
                interval_s: Some(1.0),
                readings: vec![
                    gpu(Metric::Power, 100.0 * x),
                    gpu(Metric::Utilisation, 0.2 * x - 0.01),
                    gpu(Metric::Memory, 8.0 * 1073741824.0).label("field", "used"),
                    gpu(Metric::Memory, 80.0 * 1073741824.0).label("field", "total"),
                    gpu(Metric::Frequency, 1.98e9).label("clock", "sm"),
                    Reading::new(Metric::Utilisation, "cpu", 0.1 * x),
                    Reading::new(Metric::Utilisation, "cpu0", 0.75),
                    Reading::new(Metric::Utilisation, "cpu1", 0.25),
                    Reading::new(Metric::Memory, "memory", 32.0 * 1073741824.0)
                        .label("field", "MemTotal")
                        .family(Family::Node),
                    Reading::new(Metric::Memory, "memory", 8.0 * 1073741824.0)
                        .label("field", "used"),
                    Reading::new(Metric::Temperature, "hwmon1/temp1", 50.0 + x)
                        .label("chip", "coretemp")
                        .label("label", "Package id 0")
                        .family(Family::Node),
                ],
                sources: vec![
                    SourceStatus {
                        name: "proc_stat".into(),
                        state: SourceState::Ok,
                    },
                    SourceStatus {
                        name: "rapl".into(),
                        state: SourceState::Unavailable {
                            reason: "energy_uj is readable only by root".into(),
                        },
                    },
                ],
                at: Instant::now(),
            }));
        }
        h
    }

    fn screen(v: &View, w: u16, h: u16) -> (String, ratatui::buffer::Buffer) {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, v)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        (s, buf)
    }

    fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"))
    }

    #[test]
    fn renders_every_section_with_stats_and_sparklines() {
        let v = view(&history(), 1000);
        let (s, _) = screen(&v, 120, 30);
        assert!(
            s.starts_with("anekit top · sample 4 at 12:35:00 UTC · every 1000 ms (last 1.000 s)"),
            "{s}"
        );
        for title in [
            " Power ",
            " Utilisation and clocks ",
            " Memory ",
            " Temperatures ",
            " Sources not read ",
        ] {
            assert!(s.contains(title), "{title}: {s}");
        }
        // Power row: now, min / mean / max over the five samples, and a sparkline rising to
        // a full block at the right (one-line sparklines have 8 levels: floor(v / max * 8),
        // so 100..500 W gives levels 1, 3, 4, 6, 8).
        let p = line_with(&s, "gpu0 NVIDIA H100 80GB HBM3");
        assert!(p.contains("500.0 W"), "{p}");
        assert!(p.contains("100.0 W / 300.0 W / 500.0 W"), "{p}");
        let bars: String = p.chars().filter(|c| ('▁'..='█').contains(c)).collect();
        assert_eq!(bars, "▁▃▄▆█", "{p}");
        // Utilisation: CPU total, the GPU, the per-core line and the SM clock.
        assert!(line_with(&s, "│cpu ").contains("50.0 %"));
        assert!(
            s.lines()
                .any(|l| l.contains("gpu0 NVIDIA") && l.contains("99.0 %")),
            "{s}"
        );
        assert!(line_with(&s, "2 cores (%)").contains("75 25"));
        assert!(line_with(&s, "gpu0 sm clock").contains("1.98 GHz"));
        // Memory against its total.
        assert!(line_with(&s, "RAM used").contains("8.0 GiB / 32.0 GiB (25 %)"));
        assert!(
            s.lines().any(|l| l.contains("gpu0 NVIDIA H100 80GB HBM3")
                && l.contains("8.0 GiB / 80.0 GiB (10 %)")),
            "{s}"
        );
        // The hwmon sensor by chip and label.
        let t = line_with(&s, "coretemp Package id 0");
        assert!(
            t.contains("55.0 °C") && t.contains("51.0 °C / 53.0 °C / 55.0 °C"),
            "{t}"
        );
        // Drawn against 100 °C: 51..55 % of 8 levels is level 4 throughout.
        assert!(t.contains("▄▄▄▄▄"), "{t}");
        // Long labels are cut with an ellipsis, never run into the value.
        assert_eq!(fit("abcdef", 4), "abc…");
        // The source that could not be read, with the reason.
        assert!(
            s.contains("rapl: energy_uj is readable only by root"),
            "{s}"
        );
    }

    #[test]
    fn empty_sections_say_why_and_small_terminals_do_not_panic() {
        let mut h = History::new(4);
        h.push(Arc::new(Snapshot {
            seq: 0,
            time: Timestamp {
                mono_s: 0.0,
                unix_s: 0.0,
            },
            interval_s: None,
            readings: vec![],
            sources: vec![],
            at: Instant::now(),
        }));
        let v = view(&h, 500);
        let (s, _) = screen(&v, 100, 20);
        assert!(s.contains("no power source is readable"), "{s}");
        assert!(s.contains("rates need two samples"), "{s}");
        assert!(s.contains("all sources readable"), "{s}");
        for (w, hgt) in [(20, 5), (1, 1), (200, 3)] {
            screen(&view(&history(), 1000), w, hgt);
        }
        assert!(view(&History::new(2), 1000).header.contains("waiting"));
    }
}
