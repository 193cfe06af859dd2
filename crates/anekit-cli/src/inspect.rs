//! `anekit inspect`: what a model contains.

use std::fmt::Write as _;
use std::path::PathBuf;

use anekit_mil::summary::{FeatureSummary, ModelSummary};
use anyhow::Result;
use serde::Serialize;

use crate::output::{bytes, table, thousands};

/// Arguments of `anekit inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  anekit inspect model.mlpackage              the report, with a Validation section
  anekit inspect --json model.mlpackage       the same as JSON (validation.problems lists each one)
  anekit inspect --mil model.mlmodelc | less  the program as MIL text
  anekit inspect --no-validate broken.mlpackage
                                              show what can be shown of an invalid model

Exit status: 0 for a valid model, 1 when the program is invalid (each problem is named with its
function, op, parameter and reason) or cannot be read.")]
pub struct Args {
    /// The model: a .mlpackage or .mlmodelc folder, or a .mlmodel file (default: the bundled
    /// model).
    model: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "mil")]
    json: bool,
    /// Print the ML Program as MIL text (the `model.mil` syntax) instead of the report; for
    /// a Core AI model, the program it translates to.
    #[arg(long, conflicts_with = "mlir")]
    mil: bool,
    /// Core AI models: print the module as MLIR text (as coreai-core prints it).
    #[arg(long)]
    mlir: bool,
    /// Do not validate the program: show what can be shown of an invalid one and exit 0
    /// (by default an invalid program is reported with each problem and the exit status
    /// is 1).
    #[arg(long)]
    no_validate: bool,
}

/// The validation section of the report.
#[derive(Debug, Serialize)]
struct Validation {
    /// Whether the program passed (Core ML would accept it as far as the registry knows).
    valid: bool,
    /// Ops checked, nested ones included.
    ops: usize,
    /// Op outputs whose declared type was compared with the registry's inference.
    outputs_compared: usize,
    /// Ops whose outputs could not be re-inferred (accepted as declared).
    unverified: usize,
    /// The problems, each with its function, op, parameter and reason.
    problems: Vec<anekit_mil::validate::Diagnostic>,
}

impl From<anekit_mil::validate::Report> for Validation {
    fn from(r: anekit_mil::validate::Report) -> Self {
        Validation {
            valid: r.is_ok(),
            ops: r.ops,
            outputs_compared: r.outputs_compared,
            unverified: r.unverified.len(),
            problems: r.diagnostics,
        }
    }
}

/// The JSON report: the model summary with where it came from.
#[derive(Debug, Serialize)]
struct Report<'a> {
    path: String,
    format: &'a str,
    #[serde(flatten)]
    summary: ModelSummary,
    /// Absent with `--no-validate` and for models without an ML Program.
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<Validation>,
}

/// Run `anekit inspect`.
pub fn run(args: &Args) -> Result<()> {
    let path = crate::model_path(&args.model)?;
    if crate::coreai::is_aimodel(&path) && !args.mil {
        return crate::coreai::inspect(&path, args.json, args.mlir);
    }
    if args.mlir {
        anyhow::bail!("--mlir applies to Core AI models (.aimodel); use --mil for Core ML models");
    }
    let model = crate::coreai::open_model(&path)?;
    if args.mil {
        let program = model.require_program()?;
        if !args.no_validate {
            crate::validation::require_valid(&model, &path)?;
        }
        print!("{}", anekit_mil::text::print(program));
        return Ok(());
    }
    let validation = if args.no_validate {
        None
    } else {
        crate::validation::check(&model).map(Validation::from)
    };
    let report = Report {
        path: path.display().to_string(),
        format: model.format_name(),
        summary: ModelSummary::of(&model),
        validation,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if let Some(v) = &report.validation
        && !v.valid
    {
        if args.json {
            // The JSON went to stdout; say what is wrong on stderr too.
            anyhow::bail!(
                "{} is not a valid ML Program, Core ML will refuse to compile it:\n{}",
                path.display(),
                anekit_mil::validate::summarize(&v.problems, crate::validation::SHOWN)
            );
        }
        let n = v.problems.len();
        anyhow::bail!(
            "{} is not a valid ML Program: {n} problem{} (listed in the report; \
             --no-validate shows the model without checking it)",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn validation_section(v: &Validation, out: &mut String) {
    if v.valid {
        let _ = writeln!(
            out,
            "\nValidation  valid: {} ops checked, {} output types compared with the op registry's inference{}",
            thousands(v.ops as u64),
            thousands(v.outputs_compared as u64),
            if v.unverified > 0 {
                format!(", {} accepted as declared", v.unverified)
            } else {
                String::new()
            }
        );
        return;
    }
    let n = v.problems.len();
    let _ = writeln!(
        out,
        "\nValidation  INVALID: Core ML will refuse to compile this program ({n} problem{})",
        if n == 1 { "" } else { "s" }
    );
    let shown = crate::validation::SHOWN;
    for d in v.problems.iter().take(shown) {
        let _ = writeln!(out, "  {d}");
    }
    if n > shown {
        let _ = writeln!(out, "  … and {} more (--json lists them all)", n - shown);
    }
}

fn features(title: &str, fs: &[FeatureSummary], out: &mut String) {
    if fs.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    let rows: Vec<Vec<String>> = fs
        .iter()
        .map(|f| {
            let mut r = vec![
                f.name.clone(),
                f.kind.clone(),
                f.dtype.clone(),
                f.shape_text(),
            ];
            let mut notes = Vec::new();
            if f.optional {
                notes.push("optional".to_string());
            }
            if let Some(fl) = &f.flexible {
                notes.push(match fl {
                    anekit_mil::summary::Flexibility::Range { .. } => "flexible: range".into(),
                    anekit_mil::summary::Flexibility::Enumerated { shapes } => {
                        format!("flexible: {} shapes", shapes.len())
                    }
                });
            }
            if !f.description.is_empty() {
                notes.push(f.description.clone());
            }
            r.push(notes.join("; "));
            r
        })
        .collect();
    out.push_str(&table(&rows, 2));
}

fn render(r: &Report<'_>) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(out, "Model       {}", r.path);
    let _ = writeln!(
        out,
        "Format      {} · {} · specification version {} ({})",
        r.format, s.model_type, s.spec_version, s.minimum_os
    );
    if !s.functions.is_empty() {
        let fns: Vec<String> = s
            .functions
            .iter()
            .map(|f| {
                format!(
                    "{} ({}{}, {} ops){}",
                    f.name,
                    f.opset,
                    f.opset_os
                        .as_deref()
                        .map(|o| format!(" = {o}"))
                        .unwrap_or_default(),
                    thousands(f.op_count as u64),
                    if f.is_default && s.functions.len() > 1 {
                        " [default]"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let _ = writeln!(out, "Functions   {}", fns.join(", "));
    }
    let _ = writeln!(out);
    features("Inputs", &s.inputs, &mut out);
    features("Outputs", &s.outputs, &mut out);
    features("States", &s.states, &mut out);
    let m = &s.metadata;
    let mut meta: Vec<Vec<String>> = Vec::new();
    for (k, v) in [
        ("description", &m.short_description),
        ("author", &m.author),
        ("license", &m.license),
        ("version", &m.version),
    ] {
        if !v.is_empty() {
            meta.push(vec![k.to_string(), v.clone()]);
        }
    }
    meta.extend(
        m.user_defined
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()]),
    );
    if !meta.is_empty() {
        let _ = writeln!(out, "Metadata");
        out.push_str(&table(&meta, 2));
    }
    let p = &s.parameters;
    if s.model_type == "mlProgram" {
        let by: Vec<String> = p
            .bytes_by_dtype
            .iter()
            .map(|(t, b)| format!("{t} {}", bytes(*b)))
            .collect();
        let _ = writeln!(out, "\nParameters  {}", thousands(p.count));
        let _ = writeln!(
            out,
            "Weights     {}{}",
            bytes(p.total_bytes),
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            }
        );
        let comp: Vec<String> = s
            .compression
            .iter()
            .map(|(t, n)| format!("{t} ×{n}"))
            .collect();
        let _ = writeln!(
            out,
            "Compression {}",
            if comp.is_empty() {
                "none".to_string()
            } else {
                comp.join(", ")
            }
        );
    }
    if !s.op_counts.is_empty() {
        let total: usize = s.op_counts.values().sum();
        let what = if s.model_type == "mlProgram" {
            "Ops"
        } else {
            "Layers"
        };
        let _ = writeln!(
            out,
            "\n{what} ({}{})",
            s.default_function
                .as_deref()
                .map(|f| format!("{f}, "))
                .unwrap_or_default(),
            thousands(total as u64)
        );
        let mut counts: Vec<(&String, &usize)> = s.op_counts.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|(t, n)| vec![(*t).clone(), n.to_string()])
            .collect();
        out.push_str(&table(&rows, 2));
    }
    if let Some(v) = &r.validation {
        validation_section(v, &mut out);
    }
    out
}
