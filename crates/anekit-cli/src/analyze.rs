//! `anekit analyze`: predict where Core ML places every op (Neural Engine, GPU, CPU), what
//! it costs per chip, and what to change.

use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_plan::render;
use anekit_plan::{Catalog, ComputeUnits, ExecPath, Options, analyze_model};
use anyhow::{Context, Result, bail};

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
    /// 14.4+ / iOS 17.4+) and show it beside the prediction.
    #[arg(long)]
    device: bool,
}

fn parse_path(s: &str) -> Result<ExecPath, String> {
    ExecPath::parse(s).ok_or_else(|| format!("unknown path `{s}` (coreml, direct)"))
}

fn parse_units(s: &str) -> Result<ComputeUnits, String> {
    ComputeUnits::parse(s).ok_or_else(|| {
        format!("unknown compute units `{s}` (all, cpu-and-ne, cpu-and-gpu, cpu-only)")
    })
}

fn list_chips() -> String {
    let c = Catalog::builtin();
    let rows: Vec<Vec<String>> = std::iter::once(vec![
        "chip".into(),
        "gen".into(),
        "NE cores".into(),
        "marketed TOPS".into(),
        "fp16 TFLOP/s used".into(),
        "NE GB/s used".into(),
        "devices".into(),
    ])
    .chain(c.chips.iter().map(|chip| {
        let perf = c.perf(chip);
        vec![
            chip.name.clone(),
            chip.generation.value.clone(),
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
            format!("{:.1}", perf.ane_tflops),
            format!("{:.0}", perf.ane_bandwidth_gbs),
            chip.devices.first().cloned().unwrap_or_default(),
        ]
    }))
    .collect();
    crate::output::table(&rows, 0)
}

/// Run `anekit analyze`.
pub fn run(args: &Args) -> Result<()> {
    if args.chip.eq_ignore_ascii_case("list") {
        print!("{}", list_chips());
        return Ok(());
    }
    let path = crate::model_path(&args.model)?;
    let model =
        Model::open(&path).with_context(|| format!("cannot read model {}", path.display()))?;
    if model.program.is_none() {
        bail!(
            "{} is a {} model; analyze works on ML Programs (convert with coremltools' mlprogram target)",
            path.display(),
            model.type_name()
        );
    }
    let options = Options {
        chip: args.chip.clone(),
        compute_units: args.compute_units,
        function: args.function.clone(),
        compare: !args.no_compare,
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
        )?)
    } else {
        None
    };
    if let Some((plan, comparison)) = &device
        && args.json
    {
        let report: serde_json::Value = serde_json::from_str(&render::json(&report))?;
        let all =
            serde_json::json!({"report": report, "device_plan": plan, "comparison": comparison});
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
