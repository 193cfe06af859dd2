//! Renderings of a [`Report`]: a text summary, JSON, and a self-contained HTML page.

use std::fmt::Write as _;

use crate::cost::Unit;
use crate::report::Report;

/// The text report's columns: rows as left-aligned columns separated by two spaces,
/// indented by `indent`. Private to this report; the CLI has its own table renderer
/// (`anekit-cli`'s `output::table`) for everything else it prints.
fn table(rows: &[Vec<String>], indent: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        out.push_str(&" ".repeat(indent));
        let last = r.iter().rposition(|c| !c.is_empty()).unwrap_or(0);
        for (i, cell) in r.iter().enumerate().take(last + 1) {
            out.push_str(cell);
            if i < last {
                let w = widths.get(i).copied().unwrap_or(0);
                out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
            }
        }
        out.push('\n');
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// Human-readable FLOPs (`1.2 G`).
pub fn si(x: f64) -> String {
    let (v, u) = if x >= 1e12 {
        (x / 1e12, "T")
    } else if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{v:.1} {u}")
}

/// The text report. `all_ops` lists constants and Neural Engine ops too (otherwise only the
/// ops that do not land on the Neural Engine are listed).
pub fn text(r: &Report, all_ops: bool) -> String {
    let mut out = String::new();
    let m = &r.model;
    let _ = writeln!(
        out,
        "{} — function {} ({}), {} ops + {} constants, {}FLOP, {}B of weights",
        m.path.as_deref().unwrap_or("model"),
        m.function,
        m.opset,
        m.compute_ops,
        m.constant_ops,
        si(m.flops),
        si(m.weight_bytes)
    );
    let c = &r.chip_info;
    let _ = writeln!(
        out,
        "chip {} ({}, {} NE cores): NE {:.1} TFLOP/s fp16 GEMM, stream {:.0} GB/s, weights {:.0} GB/s, floor {:.0} µs; compute units {}",
        c.name,
        c.generation,
        c.ane_cores,
        c.ane_tflops,
        c.ane_stream_gbs,
        c.ane_bandwidth_gbs,
        c.ane_dispatch_us,
        r.compute_units.name()
    );
    if !r.invalid.is_empty() {
        let _ = writeln!(
            out,
            "\nINVALID PROGRAM: analysed anyway; ops of unknown types are not placed"
        );
        for p in &r.invalid {
            let _ = writeln!(out, "  {p}");
        }
    }
    let cov = &r.coverage;
    let _ = writeln!(
        out,
        "\nCoverage: {} of {} ops on the Neural Engine ({}), {} GPU, {} CPU; {} of FLOPs, {} of estimated time",
        cov.ane_ops,
        cov.compute_ops,
        pct(cov.ane_fraction_ops),
        cov.gpu_ops,
        cov.cpu_ops,
        pct(cov.ane_fraction_flops),
        pct(cov.ane_fraction_cost)
    );
    let e = &r.estimate;
    let path = |p: crate::placement::ExecPath| match p {
        crate::placement::ExecPath::CoreMl => "Core ML",
        crate::placement::ExecPath::Direct => "direct Neural Engine",
    };
    let _ = writeln!(
        out,
        "Estimate ({} path): {:.3} ms (NE {:.3}, GPU {:.3}, CPU {:.3}, floors {:.3}, Core ML {:.3}, fp32 I/O {:.3}, switches {:.3}); NE time {} memory-bound",
        path(e.path),
        e.latency_ms,
        e.ane_ms,
        e.gpu_ms,
        e.cpu_ms,
        e.dispatch_ms,
        e.overhead_ms,
        e.io_ms,
        e.switch_ms,
        pct(e.ane_memory_bound_fraction)
    );
    let _ = writeln!(
        out,
        "Energy: {:.2} mJ per prediction (NE {:.2}, GPU {:.2}, CPU {:.2})",
        e.energy.total_mj, e.energy.ane_mj, e.energy.gpu_mj, e.energy.cpu_mj
    );
    for p in &e.paths {
        let _ = writeln!(
            out,
            "  {:<27} {:>8.3} ms  {:>8.2} mJ  {} of ops on the NE",
            format!("{} path", path(p.path)),
            p.latency_ms,
            p.energy.total_mj,
            pct(p.ane_fraction_ops)
        );
    }

    let _ = writeln!(
        out,
        "\nSegments ({}, {} switches)",
        r.segments.len(),
        r.switches.count
    );
    let mut rows = vec![vec![
        "#".into(),
        "unit".into(),
        "ops".into(),
        "first".into(),
        "last".into(),
        "est. ms".into(),
    ]];
    for (i, s) in r.segments.iter().enumerate().take(40) {
        let name = |k: usize| r.ops.get(k).map(|o| o.name.clone()).unwrap_or_default();
        rows.push(vec![
            i.to_string(),
            s.unit.name().into(),
            s.ops.to_string(),
            name(s.first),
            name(s.last),
            format!("{:.3}", s.est_us / 1000.0),
        ]);
    }
    out.push_str(&table(&rows, 2));
    if r.segments.len() > 40 {
        let _ = writeln!(out, "  … {} more", r.segments.len() - 40);
    }

    let listed: Vec<_> = r
        .ops
        .iter()
        .filter(|o| all_ops || (o.unit != Unit::Ane && o.unit != Unit::None) || !o.notes.is_empty())
        .collect();
    if !listed.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            if all_ops {
                "Ops"
            } else {
                "Ops not on the Neural Engine (and notes)"
            }
        );
        let mut rows = vec![vec![
            "#".into(),
            "op".into(),
            "type".into(),
            "unit".into(),
            "output".into(),
            "µs".into(),
            "why".into(),
        ]];
        for o in listed.iter().take(200) {
            let mut why = o.reasons.clone();
            why.extend(o.notes.iter().map(|n| format!("note: {n}")));
            rows.push(vec![
                o.index.to_string(),
                o.name.clone(),
                o.op_type.clone(),
                o.unit.name().into(),
                o.output.clone(),
                format!("{:.1}", o.est_us),
                why.join("; "),
            ]);
        }
        out.push_str(&table(&rows, 2));
        if listed.len() > 200 {
            let _ = writeln!(out, "  … {} more (use --json)", listed.len() - 200);
        }
    }

    if !e.per_chip.is_empty() {
        let _ = writeln!(
            out,
            "\nEstimated latency and energy per chip ({}, {} path)",
            r.compute_units.name(),
            path(e.path)
        );
        let mut rows = vec![vec![
            "chip".into(),
            "gen".into(),
            "ms".into(),
            "mJ".into(),
            "NE ops".into(),
        ]];
        for c in &e.per_chip {
            rows.push(vec![
                c.chip.clone(),
                c.generation.clone(),
                format!("{:.3}", c.latency_ms),
                format!("{:.2}", c.energy_mj),
                pct(c.ane_fraction_ops),
            ]);
        }
        out.push_str(&table(&rows, 2));
        let _ = writeln!(out, "\n{} by compute units (Core ML path)", r.chip);
        let mut rows = vec![vec![
            "units".into(),
            "ms".into(),
            "mJ".into(),
            "NE ops".into(),
        ]];
        for u in &e.per_compute_units {
            rows.push(vec![
                u.compute_units.name().into(),
                format!("{:.3}", u.latency_ms),
                format!("{:.2}", u.energy_mj),
                pct(u.ane_fraction_ops),
            ]);
        }
        out.push_str(&table(&rows, 2));
    }

    if !r.findings.is_empty() {
        let _ = writeln!(out, "\nFindings");
        for f in &r.findings {
            let sev = match f.severity {
                crate::findings::Severity::Error => "error",
                crate::findings::Severity::Warning => "warning",
                crate::findings::Severity::Info => "info",
            };
            let _ = writeln!(out, "  [{sev}] {} ({})", f.title, f.id);
            let _ = writeln!(out, "      {}", f.detail);
            if !f.ops.is_empty() {
                let more = if f.op_count > f.ops.len() {
                    format!(" … ({} in all)", f.op_count)
                } else {
                    String::new()
                };
                let _ = writeln!(out, "      ops: {}{more}", f.ops.join(", "));
            }
            let _ = writeln!(out, "      fix: {}", f.fix);
            if let Some(a) = &f.auto_fix {
                let _ = writeln!(out, "      anekit optimize: {a}");
            }
            let _ = writeln!(out, "      source: {}", f.source);
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\nNotes");
        for n in &r.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    out
}

/// The JSON report.
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// JSON safe to embed in a `<script>` element.
fn script_json(r: &Report) -> String {
    serde_json::to_string(r)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

const HTML_TEMPLATE: &str = include_str!("report.html");

/// The HTML report: one self-contained file (inline CSS and JS, no network) that draws the
/// op graph coloured by predicted unit, with per-op details on click.
pub fn html(r: &Report) -> String {
    let title = format!(
        "anekit analyze — {} on {}",
        r.model.path.as_deref().unwrap_or("model"),
        r.chip
    );
    HTML_TEMPLATE
        .replace("__TITLE__", &escape(&title))
        .replace("__REPORT_JSON__", &script_json(r))
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
