//! `anekit analyze`: predict where Core ML places every op (Neural Engine, GPU, CPU), what
//! it costs per chip, and what to change.

use std::path::PathBuf;

use anekit_plan::render;
use anekit_plan::{Catalog, ComputeUnits, ExecPath, Options, analyze_model};
use anekit_runtime::BackendChoice;
use anyhow::{Context, Result};

/// Arguments of `anekit analyze`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  anekit analyze model.mlpackage --chip M4                 placement, latency and energy on an M4
  anekit analyze model.mlpackage --chip M1 --path direct   the direct Neural Engine path (one program, no Core ML)
  anekit analyze model.mlpackage --chip \"iPhone 17 Pro\" --html report.html
  anekit analyze model.mlpackage --json | jq .estimate.paths
  anekit analyze --chip list                               the chip catalog (measured vs derived figures)

Latency and energy come from a cost model calibrated on public micro-benchmarks (ANEForge) and \
validated on whole models it never saw; docs/analyze.md gives the errors per model and chip.")]
pub struct Args {
    /// The model: a .mlpackage or .mlmodelc folder, or a .mlmodel file (default: the bundled
    /// model).
    model: Option<PathBuf>,
    /// The chip to place and estimate for: a name (M1, "M3 Max", A17 Pro), a SoC id (t8103)
    /// or a device ("iPhone 13"). `--chip list` lists the catalog.
    #[arg(long, default_value = "M1")]
    chip: String,
    /// Which compute units the model may use.
    #[arg(long, default_value = "all", value_parser = parse_units)]
    compute_units: ComputeUnits,
    /// The execution path to estimate in detail: `coreml` (Core ML's per-prediction work,
    /// fp32 feature conversion, one program per Neural Engine segment) or `direct` (one
    /// Neural Engine program per segment through the private framework, no GPU). Both paths
    /// are always estimated; this one drives the per-op table.
    #[arg(long, default_value = "coreml", value_parser = parse_path)]
    path: ExecPath,
    /// The function of a multifunction model (default: the default function).
    #[arg(long)]
    function: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as a self-contained HTML page (graph coloured by unit).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// List every op in the text report, not only those off the Neural Engine.
    #[arg(long)]
    all_ops: bool,
    /// Skip the per-chip and per-compute-units comparison.
    #[arg(long)]
    no_compare: bool,
    /// Also ask Core ML for its own plan of this model on this machine (MLComputePlan; macOS
    /// 14.4+ / iOS 17.4+) and show it beside the prediction; then run the model there
    /// (`--runs` times, random inputs) and, where the metrics sources read power (IOReport on
    /// a Mac), put the measured latency and energy per prediction beside the estimate.
    #[arg(long)]
    device: bool,
    /// Analyse a program that fails validation instead of refusing it: each problem is
    /// listed as "Core ML will refuse to compile: …" and ops of unknown types are not placed.
    #[arg(long)]
    no_validate: bool,
    /// With --device, which backend's placement to show: auto or coreml (MLComputePlan),
    /// ane (the direct Neural Engine backend compiles the whole program or refuses it),
    /// cpu (every op on the CPU).
    #[arg(long, default_value = "auto", requires = "device")]
    backend: BackendChoice,
    /// Timed runs of the on-device measurement (`--device`).
    #[arg(long, default_value_t = 30, requires = "device")]
    runs: usize,
}

/// Measured on this machine (`--device`): latency and energy per prediction, per component,
/// beside the estimate.
#[derive(Debug, serde::Serialize)]
pub struct DeviceMeasurement {
    /// The backend that ran.
    pub backend: String,
    /// Timed runs.
    pub runs: usize,
    /// Median latency, ms.
    pub median_ms: f64,
    /// Energy per prediction per power component, mJ.
    pub components: Vec<(String, f64)>,
    /// Their sum, mJ (`None` when no power source was readable).
    pub total_mj: Option<f64>,
    /// The estimate for the same compute units, ms.
    pub estimate_ms: f64,
    /// The estimated energy, mJ.
    pub estimate: anekit_plan::placement::EnergyEstimate,
    /// Power sources that could not be read, with the reason.
    pub unavailable: Vec<String>,
}

/// Run `model` on this machine's engine (Core ML on a Mac) `runs` times under the metrics
/// sampler and compare with `report`'s estimate.
fn measure_on_device(
    path: &std::path::Path,
    report: &anekit_plan::Report,
    units: ComputeUnits,
    backend: BackendChoice,
    function: Option<&str>,
    runs: usize,
) -> Result<DeviceMeasurement> {
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    let model = crate::coreai::open_model(path)?;
    let options = anekit_runtime::LoadOptions {
        compute_units: units,
        backend,
        function: function.map(str::to_string),
        ..Default::default()
    };
    let mut engine = anekit_runtime::Engine::new();
    anekit_apple::register(&mut engine);
    let loaded = engine
        .load(std::sync::Arc::new(model), &options)
        .with_context(|| format!("cannot load {}", path.display()))?;
    let (inputs, _) = crate::inputs::gather(
        loaded.inputs(),
        &crate::inputs::image_specs(path),
        &[],
        true,
        0,
        10,
        None,
    )?;
    let stateful = !loaded.instance().states().is_empty();
    let mut state = loaded.new_state();
    let mut once = || -> Result<f64> {
        let t0 = std::time::Instant::now();
        if stateful {
            loaded.predict_with_state(&inputs, &mut state)?;
        } else {
            loaded.predict(&inputs)?;
        }
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..5 {
        once()?;
    }
    let backend = loaded.selection().backend.to_string();
    let sampler = anekit_metrics::Sampler::start(
        anekit_metrics::system_collector(std::path::Path::new("/")),
        anekit_metrics::SamplerConfig::default(),
    )?;
    let (times, span) = sampler.measure(path.display().to_string(), backend.clone(), || {
        (0..runs).map(|_| once()).collect::<Result<Vec<_>>>()
    });
    let mut times = times?;
    times.sort_by(f64::total_cmp);
    let unavailable = sampler
        .latest()
        .map(|snap| {
            snap.sources
                .iter()
                .filter_map(|st| match &st.state {
                    anekit_metrics::SourceState::Ok => None,
                    anekit_metrics::SourceState::Unavailable { reason } => {
                        Some(format!("{}: {reason}", st.name))
                    }
                    anekit_metrics::SourceState::Error { message } => {
                        Some(format!("{}: {message}", st.name))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let components: Vec<(String, f64)> = span
        .components
        .iter()
        .map(|c| (c.component.clone(), c.energy_j / runs as f64 * 1e3))
        .collect();
    let total_mj = (!components.is_empty()).then(|| components.iter().map(|c| c.1).sum());
    Ok(DeviceMeasurement {
        backend,
        runs,
        median_ms: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        components,
        total_mj,
        estimate_ms: report.estimate.latency_ms,
        estimate: report.estimate.energy,
        unavailable,
    })
}

fn measurement_text(m: &DeviceMeasurement) -> String {
    let mut out = format!(
        "\nMeasured on this machine ({}, {} runs) beside the estimate\n",
        m.backend, m.runs
    );
    let mut rows = vec![vec![
        "".to_string(),
        "measured".to_string(),
        "estimated".to_string(),
    ]];
    rows.push(vec![
        "latency".into(),
        format!("{:.3} ms", m.median_ms),
        format!("{:.3} ms", m.estimate_ms),
    ]);
    let est_for = |name: &str| {
        let n = name.to_ascii_lowercase();
        if n.contains("ane") {
            Some(m.estimate.ane_mj)
        } else if n.contains("gpu") {
            Some(m.estimate.gpu_mj)
        } else if n.contains("cpu") {
            Some(m.estimate.cpu_mj)
        } else {
            None
        }
    };
    for (c, mj) in &m.components {
        rows.push(vec![
            format!("energy {c}"),
            format!("{mj:.3} mJ"),
            est_for(c).map_or("-".into(), |e| format!("{e:.3} mJ")),
        ]);
    }
    rows.push(vec![
        "energy, all".into(),
        m.total_mj
            .map_or("no power source".into(), |t| format!("{t:.3} mJ")),
        format!("{:.3} mJ", m.estimate.total_mj),
    ]);
    out.push_str(&crate::output::table(&rows, 2));
    for u in &m.unavailable {
        out.push_str(&format!("  unavailable: {u}\n"));
    }
    out
}

fn parse_path(s: &str) -> Result<ExecPath, String> {
    ExecPath::parse(s).ok_or_else(|| format!("unknown path `{s}` (coreml, direct)"))
}

fn parse_units(s: &str) -> Result<ComputeUnits, String> {
    ComputeUnits::parse(s).ok_or_else(|| {
        format!("unknown compute units `{s}` (all, cpu-and-ne, cpu-and-gpu, cpu-only)")
    })
}

/// How a resolved figure was obtained, in one letter: m(easured on the chip), g(eneration
/// sibling measured), d(erived), a(ssumed).
fn basis(b: &str) -> &'static str {
    if b.starts_with("measured (") {
        "m"
    } else if b.starts_with("measured on") {
        "g"
    } else if b.starts_with("derived") {
        "d"
    } else {
        "a"
    }
}

fn list_chips(json: bool) -> Result<String> {
    let c = Catalog::builtin();
    if json {
        let chips: Vec<serde_json::Value> = c
            .chips
            .iter()
            .map(|chip| {
                serde_json::json!({
                    "chip": chip,
                    "resolved": c.perf(chip),
                    "generation": c.generation_of(chip),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "sources": c.sources,
            "constants": c.constants,
            "chips": chips,
        }))? + "\n");
    }
    let rows: Vec<Vec<String>> = std::iter::once(vec![
        "chip".into(),
        "gen".into(),
        "NE cores".into(),
        "marketed TOPS".into(),
        "GEMM TF/s".into(),
        "stream GB/s".into(),
        "weights GB/s".into(),
        "floor µs".into(),
        "GF/s/W".into(),
        "devices".into(),
    ])
    .chain(c.chips.iter().map(|chip| {
        let p = c.perf(chip);
        vec![
            chip.name.clone(),
            chip.generation.value.clone()
                + if anekit_plan::Catalog::is_derived(&chip.generation.source) {
                    " d"
                } else {
                    ""
                },
            chip.ane_cores.value.to_string(),
            chip.ane_marketed_tops.as_ref().map_or("-".into(), |t| {
                format!(
                    "{} ({})",
                    t.value,
                    chip.ane_marketed_precision
                        .as_ref()
                        .map_or("?", |p| p.value.as_str())
                )
            }),
            format!("{:.1} {}", p.ane_tflops, basis(&p.ane_tflops_basis)),
            format!("{:.1} {}", p.ane_stream_gbs, basis(&p.ane_stream_basis)),
            format!(
                "{:.0} {}",
                p.ane_bandwidth_gbs,
                basis(&p.ane_bandwidth_basis)
            ),
            format!("{:.0} {}", p.ane_dispatch_us, basis(&p.ane_dispatch_basis)),
            format!("{:.0} {}", p.ane_perf_per_w, basis(&p.ane_perf_per_w_basis)),
            chip.devices.first().cloned().unwrap_or_default(),
        ]
    }))
    .collect();
    Ok(crate::output::table(&rows, 0)
        + "\nm measured on the chip, g measured on a chip of the same generation, d derived, a assumed \
           (--chip list --json gives every source).\n")
}

/// Run `anekit analyze`.
pub fn run(args: &Args) -> Result<()> {
    if args.chip.eq_ignore_ascii_case("list") {
        print!("{}", list_chips(args.json)?);
        return Ok(());
    }
    let path = crate::model_path(&args.model)?;
    let model = crate::coreai::open_model(&path)?;
    // NeuralNetwork models are analysed through their MIL translation; require_program
    // names the layer that could not be translated.
    model
        .require_program()
        .with_context(|| format!("cannot analyse {}", path.display()))?;
    let options = Options {
        chip: args.chip.clone(),
        compute_units: args.compute_units,
        function: args.function.clone(),
        compare: !args.no_compare,
        allow_invalid: args.no_validate,
        path: args.path,
    };
    let report = analyze_model(&model, &options)
        .with_context(|| format!("cannot analyse {}", path.display()))?;
    if let Some(html) = &args.html {
        write_atomic(html, render::html(&report).as_bytes())
            .with_context(|| format!("cannot write {}", html.display()))?;
    }
    let device = if args.device {
        Some(crate::devices::device_comparison(
            &model,
            &report,
            args.compute_units,
            args.function.as_deref(),
            args.backend,
        )?)
    } else {
        None
    };
    let measured = if args.device {
        Some(measure_on_device(
            &path,
            &report,
            args.compute_units,
            args.backend,
            args.function.as_deref(),
            args.runs,
        )?)
    } else {
        None
    };
    if let Some((plan, comparison)) = &device
        && args.json
    {
        let report: serde_json::Value = serde_json::from_str(&render::json(&report))?;
        let all = serde_json::json!({"report": report, "device_plan": plan, "comparison": comparison, "measured": measured});
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if args.json {
        println!("{}", render::json(&report));
    } else {
        print!("{}", render::text(&report, args.all_ops));
        if let Some((_, comparison)) = &device {
            print!(
                "\n{}",
                anekit_plan::device_plan::comparison_text(comparison, args.all_ops)
            );
        }
        if let Some(m) = &measured {
            print!("{}", measurement_text(m));
        }
        if let Some(html) = &args.html {
            println!("\nHTML report: {}", html.display());
        }
    }
    Ok(())
}

/// Write through a temporary sibling renamed into place.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_energy_sits_beside_the_estimate_per_unit() {
        let m = DeviceMeasurement {
            backend: "Core ML".into(),
            runs: 30,
            median_ms: 1.25,
            components: vec![
                ("ane".into(), 2.5),
                ("cpu".into(), 0.75),
                ("gpu".into(), 0.0),
            ],
            total_mj: Some(3.25),
            estimate_ms: 1.0,
            estimate: anekit_plan::placement::EnergyEstimate {
                ane_mj: 2.0,
                gpu_mj: 0.0,
                cpu_mj: 0.5,
                total_mj: 2.5,
            },
            unavailable: vec!["smc: not readable".into()],
        };
        let t = measurement_text(&m);
        for needle in [
            "Core ML, 30 runs",
            "1.250 ms",
            "1.000 ms",
            "energy ane",
            "2.500 mJ",
            "2.000 mJ",
            "energy cpu",
            "0.750 mJ",
            "0.500 mJ",
            "3.250 mJ",
            "unavailable: smc",
        ] {
            assert!(t.contains(needle), "{needle}: {t}");
        }
        let none = DeviceMeasurement {
            components: Vec::new(),
            total_mj: None,
            ..m
        };
        assert!(measurement_text(&none).contains("no power source"));
    }
}
