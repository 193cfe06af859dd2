//! `anekit optimize`: apply the Neural Engine rewrites to a model and write a new package.

use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_plan::flexible::{EnumerateChange, EnumerateRequest, enumerate_input};
use anekit_plan::{ComputeUnits, OptimizeOptions, Options, analyze_model, optimize_passes};
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Arguments of `anekit optimize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  anekit optimize model.mlpackage -o model-ane.mlpackage
  anekit optimize fp32.mlpackage -o fp16.mlpackage --fp16 --chip M4
  anekit optimize crepe.mlpackage -o crepe-enum.mlpackage --enumerate frames=1x1024,16x1024,64x1024
  anekit optimize model.mlpackage -o out.mlpackage --linear-to-conv --json

The input is never overwritten; the output is written to a temporary sibling and renamed.")]
pub struct Args {
    /// The model to rewrite (.mlpackage, .mlmodel or .mlmodelc).
    model: PathBuf,
    /// Where to write the rewritten .mlpackage (never the input).
    #[arg(short, long)]
    output: PathBuf,
    /// Compute in fp16 (an fp32-typed model cannot use the Neural Engine): coremltools'
    /// fp16 compute-precision conversion, the same as `anekit compress --fp16`. Inputs and
    /// outputs keep their types; results change within fp16 precision.
    #[arg(long)]
    fp16: bool,
    /// Rewrite linear layers on rank-2/3 activations as exact 1x1 convolutions.
    #[arg(long)]
    linear_to_conv: bool,
    /// Keep normalisation epsilons that are zero in fp16 (raised to 1e-7 by default).
    #[arg(long)]
    keep_epsilon: bool,
    /// Make a range-flexible input enumerate these shapes (coremltools' EnumeratedShapes:
    /// the default shape is kept and listed first), so Core ML can place its ops on the
    /// Neural Engine. Dimensions separated by `x`, shapes by `,`; repeatable, e.g.
    /// `--enumerate frames=1x1024,16x1024,64x1024`.
    #[arg(long, value_name = "NAME=SHAPE[,SHAPE...]")]
    enumerate: Vec<String>,
    /// The chip to compare the analysis before and after on.
    #[arg(long, default_value = "M1")]
    chip: String,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Summary {
    input: String,
    output: String,
    passes: Vec<anekit_mil::passes::PassRun>,
    enumerated: Vec<EnumerateChange>,
    chip: String,
    before: Side,
    after: Side,
}

#[derive(Debug, Serialize)]
struct Side {
    compute_ops: usize,
    ane_ops: usize,
    latency_ms: f64,
}

fn side(m: &Model, chip: &str) -> Result<Side> {
    let r = analyze_model(
        m,
        &Options {
            chip: chip.into(),
            compute_units: ComputeUnits::All,
            function: None,
            compare: false,
            ..Options::default()
        },
    )?;
    Ok(Side {
        compute_ops: r.coverage.compute_ops,
        ane_ops: r.coverage.ane_ops,
        latency_ms: r.estimate.latency_ms,
    })
}

/// Run `anekit optimize`.
pub fn run(args: &Args) -> Result<()> {
    let model = Model::open(&args.model)
        .with_context(|| format!("cannot read model {}", args.model.display()))?;
    let Some(program) = model.program.as_ref() else {
        bail!("{} is not an ML Program", args.model.display());
    };
    crate::validation::require_valid(&model, &args.model)?;
    let requests = args
        .enumerate
        .iter()
        .map(|a| EnumerateRequest::parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    let before = side(&model, &args.chip)?;
    let mut program = program.clone();
    let pm = optimize_passes(&OptimizeOptions {
        fp16: args.fp16,
        linear_to_conv: args.linear_to_conv,
        keep_epsilon: args.keep_epsilon,
    });
    let passes = pm
        .run(&mut program)
        .with_context(|| format!("cannot rewrite {}", args.model.display()))?;
    let mut out = model.clone();
    out.program = Some(program);
    let mut enumerated = Vec::new();
    for r in &requests {
        enumerated.extend(
            enumerate_input(&mut out.spec, r)
                .with_context(|| format!("cannot rewrite {}", args.model.display()))?,
        );
    }
    crate::validation::require_valid_output(&out, &args.output)?;
    let written = out
        .save_mlpackage(&args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let reread =
        Model::open(&written).with_context(|| format!("cannot read back {}", written.display()))?;
    let after = side(&reread, &args.chip)?;
    let s = Summary {
        input: args.model.display().to_string(),
        output: written.display().to_string(),
        passes,
        enumerated,
        chip: args.chip.clone(),
        before,
        after,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("{} -> {}", s.input, s.output);
        for p in &s.passes {
            println!("  {:<24} {} change(s)", p.pass, p.changes);
        }
        for e in &s.enumerated {
            let text = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join("x");
            println!(
                "  {:<24} {}{}: range {} -> {} (default {}{})",
                "enumerate",
                e.input,
                e.function
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default(),
                e.range
                    .iter()
                    .map(|(lo, hi)| if hi < &0 {
                        format!("{lo}..")
                    } else if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}..{hi}")
                    })
                    .collect::<Vec<_>>()
                    .join("x"),
                e.shapes
                    .iter()
                    .map(|s| text(s))
                    .collect::<Vec<_>>()
                    .join(", "),
                text(&e.default),
                if e.added_default { ", added" } else { "" }
            );
        }
        println!(
            "  on {}: Neural Engine ops {}/{} -> {}/{}, estimated {:.3} ms -> {:.3} ms",
            s.chip,
            s.before.ane_ops,
            s.before.compute_ops,
            s.after.ane_ops,
            s.after.compute_ops,
            s.before.latency_ms,
            s.after.latency_ms
        );
    }
    Ok(())
}
