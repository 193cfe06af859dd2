//! `anekit run`: one prediction, with a summary of each output and the time it took.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anekit_runtime::{
    AneNumerics, BackendChoice, ComputeUnits, Engine, LoadOptions, LoadedModel, Precision, Tensor,
};
use anyhow::{Context, Result};
use serde::Serialize;

use crate::inputs::{InputArg, describe, gather};

/// Arithmetic precision, as accepted on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    /// f32 arithmetic.
    Fp32,
    /// Round every fp16-typed op's output to fp16 as the Neural Engine does; stop at the first
    /// op that overflows. With `--chip`, also that chip's Neural Engine cliffs.
    Fp16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
        }
    }
}

/// Options shared by `run` and `bench` for loading a model.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Compute units: all, cpu-and-ne, cpu-and-gpu, cpu-only (Core ML's meaning; without
    /// Core ML everything runs on anekit's CPU backend).
    #[arg(long, default_value = "all")]
    pub compute_units: ComputeUnits,
    /// Backend: auto (Core ML when present, else the CPU backend), coreml, ane (the direct
    /// Neural Engine backend: macOS, built with --features private-ane), cpu. A named
    /// backend that cannot run here is an error, never a silent fallback.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Arithmetic precision of the CPU backend.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// With `--precision fp16`: emulate this chip's Neural Engine numerics too (matmul and
    /// linear outputs above 32752 become inf on every chip; slices at a last-axis offset
    /// clamp above 4094 before the A16 tier; row sums are exact only to 2048) and name the
    /// first op where the engine would silently go wrong. A chip name, SoC id or device, as
    /// `anekit analyze --chip` takes.
    #[arg(long, value_name = "CHIP")]
    pub chip: Option<String>,
    /// The function to run (multifunction models; default: the model's default function).
    #[arg(long)]
    pub function: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl LoadArgs {
    /// Open and load `path`; returns the model and the load time.
    pub fn load(&self, path: &std::path::Path) -> Result<(LoadedModel, f64)> {
        let ane_numerics = match &self.chip {
            Some(chip) => {
                if !matches!(self.precision, PrecisionArg::Fp16) {
                    anyhow::bail!(
                        "--chip {chip} emulates Neural Engine numerics: add --precision fp16"
                    );
                }
                Some(ane_numerics(chip)?)
            }
            None => None,
        };
        let t0 = Instant::now();
        let model = crate::coreai::open_model(path)?;
        let options = LoadOptions {
            compute_units: self.compute_units,
            backend: self.backend,
            function: self.function.clone(),
            precision: self.precision.into(),
            ane_numerics,
            threads: self.threads,
        };
        let mut engine = Engine::new();
        anekit_apple::register(&mut engine);
        let loaded = engine
            .load(Arc::new(model), &options)
            .with_context(|| format!("cannot load {}", path.display()))?;
        Ok((loaded, t0.elapsed().as_secs_f64() * 1e3))
    }
}

/// The measured Neural Engine cliffs of `chip` (from the chip catalog's generation entry).
pub fn ane_numerics(chip: &str) -> Result<AneNumerics> {
    let catalog = anekit_plan::Catalog::builtin();
    let c = anekit_plan::analyze::find_chip(catalog, chip)?;
    let g = catalog
        .generation_of(c)
        .with_context(|| format!("the catalog has no generation for {}", c.name))?;
    let n = &g.numerics;
    Ok(AneNumerics {
        chip: c.name.clone(),
        matmul_max_finite: n.matmul_max_finite.value as f32,
        slice_max_finite: n.slice_max_finite.value.map(|v| v as f32),
        exact_integer_sum_max: n.exact_integer_sum_max.value as f32,
    })
}

/// Arguments of `anekit run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model (default: the bundled model, with its sample input).
    model: Option<PathBuf>,
    /// An input as NAME=FILE.npy, or NAME=IMAGE.png/.jpg for an image input (decoded, resized
    /// to the input size, in its colour order; the model applies its own preprocessing)
    /// (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE")]
    inputs: Vec<InputArg>,
    /// Random values for inputs not given (floats ~ N(0, 1), integers in [0, --int-high)).
    #[arg(long)]
    random: bool,
    /// Seed of --random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Upper bound (exclusive) of random integer inputs.
    #[arg(long, default_value_t = 10)]
    int_high: i32,
    /// Write each output to DIR/<output name>.npy.
    #[arg(long, short = 'o', value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Serialize)]
struct OutputReport {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    min: f32,
    max: f32,
    mean: f64,
    /// String outputs: the string (an array of them if not a scalar); dictionaries: an
    /// object label (as text) → value.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<serde_json::Value>,
    file: Option<String>,
}

/// The value of a string or dictionary output as JSON (`None` for numeric tensors).
fn json_value(t: &Tensor) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    match t {
        Tensor::Str(a) if a.ndim() == 0 => a.iter().next().map(|s| J::String(s.clone())),
        Tensor::Str(a) => Some(J::Array(a.iter().map(|s| J::String(s.clone())).collect())),
        Tensor::Dict(d) => Some(J::Object(
            d.entries()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        serde_json::Number::from_f64(v).map_or(J::Null, J::Number),
                    )
                })
                .collect(),
        )),
        _ => None,
    }
}

#[derive(Serialize)]
struct RunReport<'a> {
    model: String,
    function: &'a str,
    selection: &'a anekit_runtime::Selection,
    inputs: Vec<String>,
    load_ms: f64,
    predict_ms: f64,
    peak_activation_bytes: Option<usize>,
    /// The chip whose Neural Engine numerics were emulated.
    #[serde(skip_serializing_if = "Option::is_none")]
    ane_numerics: Option<&'a AneNumerics>,
    /// Non-fatal Neural Engine numerics events (row sums past the exact range).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    numerics_warnings: Vec<String>,
    outputs: Vec<OutputReport>,
}

/// Run `anekit run`.
pub fn run(args: &Args) -> Result<()> {
    let path = crate::model_path(&args.model)?;
    let (loaded, load_ms) = args.load.load(&path)?;
    let numerics = args.load.chip.as_deref().map(ane_numerics).transpose()?;
    let sample = if args.model.is_none() {
        Some(crate::bundled::sample_inputs()?)
    } else {
        None
    };
    let images = crate::inputs::image_specs(&path);
    let (inputs, notes) = gather(
        loaded.inputs(),
        &images,
        &args.inputs,
        args.random,
        args.seed,
        args.int_high,
        sample.as_ref(),
    )?;
    let t0 = Instant::now();
    let outputs = if loaded.instance().states().is_empty() {
        // The inputs are not needed afterwards: the CPU backend runs on their buffers.
        loaded.predict_owned(inputs)?
    } else {
        let mut state = loaded.new_state();
        loaded.predict_with_state(&inputs, &mut state)?
    };
    let predict_ms = t0.elapsed().as_secs_f64() * 1e3;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut reports = Vec::new();
    for (name, t) in &outputs {
        let file = match &args.output_dir {
            // A dictionary as `<name>.json` (an object label → value); everything else as
            // `.npy` (strings as a numpy unicode array).
            Some(dir) if matches!(t, Tensor::Dict(_)) => {
                let p = dir.join(format!("{}.json", sanitize(name)));
                let text = serde_json::to_string_pretty(&json_value(t))?;
                std::fs::write(&p, text + "\n")
                    .with_context(|| format!("writing {}", p.display()))?;
                Some(p.display().to_string())
            }
            Some(dir) => {
                let p = dir.join(format!("{}.npy", sanitize(name)));
                anekit_runtime::npy::write(&p, t)?;
                Some(p.display().to_string())
            }
            None => None,
        };
        let f = t.to_f32();
        let finite: Vec<f32> = f.iter().copied().filter(|v| v.is_finite()).collect();
        reports.push(OutputReport {
            name: name.clone(),
            dtype: t.dtype().to_string(),
            shape: t.shape().to_vec(),
            min: finite.iter().copied().fold(f32::INFINITY, f32::min),
            max: finite.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            mean: finite.iter().map(|&v| f64::from(v)).sum::<f64>() / finite.len().max(1) as f64,
            value: json_value(t),
            file,
        });
    }
    let report = RunReport {
        model: path.display().to_string(),
        function: loaded.instance().function(),
        selection: loaded.selection(),
        inputs: notes,
        load_ms,
        predict_ms,
        peak_activation_bytes: loaded.instance().peak_activation_bytes(),
        ane_numerics: numerics.as_ref(),
        numerics_warnings: loaded.instance().numerics_warnings(),
        outputs: reports,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Model     {} (function {})", report.model, report.function);
    println!("Backend   {}", loaded.selection().backend);
    for r in &loaded.selection().reasons {
        println!("          {r}");
    }
    for n in &report.inputs {
        println!("Input     {n}");
    }
    if let Some(n) = &report.ane_numerics {
        println!(
            "Numerics  fp16 with the {} Neural Engine's cliffs: matmul/linear inf above {}, {}, integer sums exact to {}",
            n.chip,
            n.matmul_max_finite,
            n.slice_max_finite
                .map_or("slices exact".to_string(), |s| format!(
                    "last-axis-offset slices inf above {s}"
                )),
            n.exact_integer_sum_max
        );
        if report.numerics_warnings.is_empty() {
            println!("          no op crossed a cliff");
        }
        for w in &report.numerics_warnings {
            println!("warning   {w}");
        }
    }
    println!();
    for (name, t) in &outputs {
        println!("{name}  {} {:?}", t.dtype(), t.shape());
        println!("  {}", describe(t));
    }
    for r in &report.outputs {
        if let Some(f) = &r.file {
            println!("wrote {f}");
        }
    }
    println!();
    println!(
        "load {:.1} ms · predict {:.2} ms{}",
        load_ms,
        predict_ms,
        report
            .peak_activation_bytes
            .map(|b| format!(" · peak activations {}", crate::output::bytes(b as u64)))
            .unwrap_or_default()
    );
    Ok(())
}

/// A file name for an output name (path separators and other awkward characters replaced).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
