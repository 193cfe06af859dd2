//! `anekit convert`: Core ML ↔ Core AI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anekit_coreai::CoreAiModel;
use anekit_coreai::OpenError;
use anekit_coreai::from_mil::{ConvertError, from_mil};
use anekit_coreai::to_mil::TranslateError;
use anekit_format::aimodel::{self, Metadata};
use anekit_format::package::check_output_path;
use anekit_mil::model::Model;
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Arguments of `anekit convert`.
///
/// Examples:
///
///   anekit convert model.mlpackage -o model.aimodel      # Core ML → Core AI
///   anekit convert model.aimodel -o model.mlpackage      # Core AI → Core ML
///   anekit convert model.mlpackage -o model.aimodel --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to convert: a Core ML model (.mlpackage, .mlmodel, .mlmodelc) becomes a
    /// Core AI model; a Core AI model (.aimodel) becomes an .mlpackage.
    model: PathBuf,
    /// Where to write the result (.aimodel or .mlpackage; never the input).
    #[arg(short, long)]
    output: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// One op that cannot be converted (`--json` prints them all before the error).
#[derive(Debug, Serialize)]
struct Refused {
    function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    op_type: Option<String>,
    /// The op's source location (`file:line:column`), where the model records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    reason: String,
}

/// What `--json` prints when the model cannot be converted.
#[derive(Debug, Serialize)]
struct Failure<'a> {
    input: String,
    output: String,
    direction: &'static str,
    converted: bool,
    unsupported: &'a [Refused],
}

fn print_failure(input: &Path, output: &Path, direction: &'static str, refused: &[Refused]) {
    let f = Failure {
        input: input.display().to_string(),
        output: output.display().to_string(),
        direction,
        converted: false,
        unsupported: refused,
    };
    if let Ok(s) = serde_json::to_string_pretty(&f) {
        println!("{s}");
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    input: String,
    output: String,
    direction: &'static str,
    functions: Vec<String>,
    ops: BTreeMap<String, usize>,
    bytes: u64,
}

/// Run `anekit convert`.
pub fn run(args: &Args) -> Result<()> {
    check_output_path(&args.output, &args.model)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let summary = if crate::coreai::is_aimodel(&args.model) {
        to_coreml(&args.model, &args.output, args.json)?
    } else {
        to_coreai(&args.model, &args.output, args.json)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} -> {} ({})",
            summary.input, summary.output, summary.direction
        );
        println!("  functions: {}", summary.functions.join(", "));
        let total: usize = summary.ops.values().sum();
        println!(
            "  {} ops written, {}",
            crate::output::thousands(total as u64),
            crate::output::bytes(summary.bytes)
        );
    }
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        dir_size(&path)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn to_coreai(input: &Path, output: &Path, json: bool) -> Result<Summary> {
    if output.extension().is_some_and(|e| e == "mlpackage") {
        bail!(
            "{} is a Core ML model; convert it to an .aimodel",
            input.display()
        );
    }
    let model =
        Model::open(input).with_context(|| format!("cannot read model {}", input.display()))?;
    let program = model.program.as_ref().with_context(|| {
        format!(
            "{} is not an ML Program (only ML Programs convert to Core AI)",
            input.display()
        )
    })?;
    let producer = format!("anekit {}", env!("CARGO_PKG_VERSION"));
    let module = match from_mil(program, &producer) {
        Ok(m) => m,
        Err(e @ ConvertError::Unsupported(_)) => {
            if let (true, ConvertError::Unsupported(list)) = (json, &e) {
                let refused: Vec<Refused> = list
                    .iter()
                    .map(|(f, n, t, r)| Refused {
                        function: f.clone(),
                        op: Some(n.clone()),
                        op_type: Some(t.clone()),
                        location: None,
                        reason: r.clone(),
                    })
                    .collect();
                print_failure(input, output, "Core ML -> Core AI", &refused);
            }
            bail!("{} cannot be converted to Core AI: {e}", input.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot convert {}", input.display())),
    };
    let bytes = anekit_mlir::write(&module).context("cannot encode the Core AI module")?;
    let written = aimodel::write(output, &bytes, &Metadata::anekit("2.0"))
        .with_context(|| format!("cannot write {}", output.display()))?;
    // Read back what was written: the container, the bytecode and the translation.
    let back = CoreAiModel::open(&written)
        .with_context(|| format!("cannot read back {}", written.display()))?;
    Ok(Summary {
        input: input.display().to_string(),
        output: written.display().to_string(),
        direction: "Core ML -> Core AI",
        functions: back.translation.program.functions.keys().cloned().collect(),
        ops: anekit_coreai::model::op_counts(&back.asset.module),
        bytes: dir_size(&written),
    })
}

fn to_coreml(input: &Path, output: &Path, json: bool) -> Result<Summary> {
    if output.extension().is_some_and(|e| e == "aimodel") {
        bail!(
            "{} is a Core AI model; convert it to an .mlpackage",
            input.display()
        );
    }
    // Every op that does not translate is named, in every function (none may be left out
    // of an .mlpackage).
    let (m, untranslated, other) = match CoreAiModel::open(input) {
        Ok(m) => {
            let failed = &m.translation.failed;
            let other: Vec<(String, String)> = failed
                .iter()
                .filter(|(f, _)| !m.translation.untranslated.iter().any(|u| &u.graph == *f))
                .map(|(f, why)| (f.clone(), why.clone()))
                .collect();
            let u = m.translation.untranslated.clone();
            (Some(m), u, other)
        }
        Err(OpenError::Translate {
            source: TranslateError::Untranslatable(list),
            ..
        }) => (None, list, Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read Core AI model {}", input.display()));
        }
    };
    if !untranslated.is_empty() || !other.is_empty() {
        if json {
            let refused: Vec<Refused> = untranslated
                .iter()
                .map(|u| Refused {
                    function: u.graph.clone(),
                    op: None,
                    op_type: Some(u.op.clone()),
                    location: u.location.clone(),
                    reason: u.reason.clone(),
                })
                .chain(other.iter().map(|(f, why)| Refused {
                    function: f.clone(),
                    op: None,
                    op_type: None,
                    location: None,
                    reason: why.clone(),
                }))
                .collect();
            print_failure(input, output, "Core AI -> Core ML", &refused);
        }
        let functions: std::collections::BTreeSet<&str> = untranslated
            .iter()
            .map(|u| u.graph.as_str())
            .chain(other.iter().map(|(f, _)| f.as_str()))
            .collect();
        let list: Vec<String> = untranslated
            .iter()
            .map(|u| format!("  {u}"))
            .chain(other.iter().map(|(f, why)| format!("  {f}: {why}")))
            .collect();
        bail!(
            "{} cannot be converted to Core ML: {} op(s) in {} function(s) have no MIL form:\n{}",
            input.display(),
            list.len(),
            functions.len(),
            list.join("\n")
        );
    }
    let Some(m) = m else {
        bail!("{}: nothing to convert", input.display());
    };
    let model = m.to_mil_model();
    let written = model
        .save_mlpackage(output)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let back =
        Model::open(&written).with_context(|| format!("cannot read back {}", written.display()))?;
    let mut ops = BTreeMap::new();
    if let Some(p) = &back.program {
        for f in p.functions.values() {
            if let Some(b) = f.block() {
                b.visit_ops(&mut |op| *ops.entry(op.op_type.clone()).or_default() += 1);
            }
        }
    }
    Ok(Summary {
        input: input.display().to_string(),
        output: written.display().to_string(),
        direction: "Core AI -> Core ML",
        functions: m.translation.program.functions.keys().cloned().collect(),
        ops,
        bytes: dir_size(&written),
    })
}
