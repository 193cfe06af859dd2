//! `anekit compress`: quantize, palettize and/or prune a model's weights, write the result,
//! and measure what it costs: size before/after and, through the CPU backend, the output
//! SNR and max error against the uncompressed model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anekit_compress::config::{
    self, Config, LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig, QuantGranularity,
    Selection,
};
use anekit_compress::{PruneMethod, QuantDtype, Report};
use anekit_mil::model::Model;
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, NamedTensors, Precision};
use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::inputs::{InputArg, gather};
use crate::output::{bytes, table};

/// Arguments of `anekit compress`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to compress (.mlpackage, .mlmodel or .mlmodelc).
    model: PathBuf,
    /// Where to write the compressed .mlpackage (never the input).
    #[arg(short, long, value_name = "OUT.mlpackage")]
    output: PathBuf,
    /// Linear quantization to this type.
    #[arg(long, value_name = "int8|uint8|int4|uint4")]
    quantize: Option<String>,
    /// Quantization mode.
    #[arg(
        long,
        value_name = "linear|linear-symmetric",
        default_value = "linear-symmetric"
    )]
    mode: String,
    /// Granularity: per-tensor, per-channel, per-block (quantization) or per-tensor,
    /// per-grouped-channel (palettization). Defaults: per-channel for quantization alone,
    /// per-tensor for palettization and for a LUT quantized after palettization.
    #[arg(long)]
    granularity: Option<String>,
    /// Block size of per-block quantization.
    #[arg(long, default_value_t = 32)]
    block_size: usize,
    /// Only compress weights with more elements than this.
    #[arg(long, default_value_t = config::DEFAULT_WEIGHT_THRESHOLD)]
    weight_threshold: usize,
    /// Palettize to this many bits per index (1, 2, 3, 4, 6, 8).
    #[arg(long, value_name = "NBITS")]
    palettize: Option<u8>,
    /// Palettization mode (unique: lossless with the fewest bits; no NBITS then).
    #[arg(long, value_name = "kmeans|uniform|unique")]
    palettize_mode: Option<String>,
    /// Channels per LUT with per-grouped-channel palettization.
    #[arg(long, default_value_t = 32)]
    group_size: usize,
    /// Vector palettization: elements per LUT entry along the output channels (iOS18).
    #[arg(long, default_value_t = 1)]
    cluster_dim: usize,
    /// Palettize weights divided by their per-channel maximum (iOS18).
    #[arg(long)]
    per_channel_scale: bool,
    /// Magnitude pruning to this fraction of zeros (0..1).
    #[arg(long, value_name = "SPARSITY", conflicts_with_all = ["prune_nm", "prune_threshold"])]
    prune: Option<f64>,
    /// n:m pruning (n zeros in every m consecutive weights along input channels).
    #[arg(long, value_name = "N:M", conflicts_with = "prune_threshold")]
    prune_nm: Option<String>,
    /// Pruning of |w| ≤ this threshold.
    #[arg(long, value_name = "T")]
    prune_threshold: Option<f64>,
    /// Block-structured magnitude pruning: blocks of this many channels.
    #[arg(long, value_name = "N")]
    prune_block_size: Option<usize>,
    /// Axis of block/n:m pruning: 0 = output channels, 1 = input channels.
    #[arg(long)]
    prune_dim: Option<usize>,
    /// Only compress weights consumed by ops of this type (repeatable: linear, conv, ...).
    #[arg(long = "op-type", value_name = "T")]
    op_types: Vec<String>,
    /// Leave this weight (const or consuming op name) uncompressed (repeatable).
    #[arg(long = "skip", value_name = "NAME")]
    skip: Vec<String>,
    /// Convert an fp32 model to fp16 compute precision first.
    #[arg(long)]
    fp16: bool,
    /// Settings from a TOML file (see docs/compress.md); flags are not combined with it.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// An input for the accuracy check as NAME=FILE.npy (repeatable; others are random).
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    inputs: Vec<InputArg>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip the accuracy check on the CPU backend.
    #[arg(long)]
    no_eval: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Accuracy of one output.
#[derive(Debug, Serialize)]
struct OutputError {
    name: String,
    snr_db: Option<f64>,
    max_abs_error: f64,
}

#[derive(Debug, Serialize)]
struct CompressReport {
    model: String,
    output: String,
    size_before: u64,
    size_after: u64,
    weights_before: usize,
    weights_after: usize,
    seconds: f64,
    compression: Report,
    outputs: Vec<OutputError>,
    eval_error: Option<String>,
}

fn quant_granularity(
    g: Option<&str>,
    block: usize,
    default: QuantGranularity,
) -> Result<QuantGranularity> {
    Ok(match g {
        None => default,
        Some(g) => config::parse_quant_granularity(g, Some(block))?,
    })
}

fn selection<T: Clone>(c: T, op_types: &[String], skip: &[String]) -> Selection<T> {
    let mut s = if op_types.is_empty() {
        Selection::global(c)
    } else {
        Selection {
            global: None,
            op_type: op_types
                .iter()
                .map(|t| (t.clone(), Some(c.clone())))
                .collect(),
            op_name: BTreeMap::new(),
        }
    };
    for n in skip {
        s.op_name.insert(n.clone(), None);
    }
    s
}

/// The configuration the flags describe.
fn config_from_flags(a: &Args) -> Result<Config> {
    let gran = a.granularity.as_deref().map(|g| g.replace('-', "_"));
    let pal_gran = matches!(gran.as_deref(), Some("per_grouped_channel"));
    let mut c = Config {
        fp16: a.fp16,
        ..Config::default()
    };
    if a.palettize.is_some() || a.palettize_mode.is_some() {
        let mode = config::parse_palette_mode(a.palettize_mode.as_deref().unwrap_or("kmeans"))?;
        let granularity = match gran.as_deref() {
            Some("per_grouped_channel") => PaletteGranularity::PerGroupedChannel(a.group_size),
            Some("per_tensor") | None => PaletteGranularity::PerTensor,
            Some(g) if a.quantize.is_none() => bail!(
                "palettization granularity must be per-tensor or per-grouped-channel, not {g}"
            ),
            Some(_) => PaletteGranularity::PerTensor,
        };
        let p = PaletteConfig {
            mode,
            nbits: a.palettize,
            granularity,
            channel_axis: None,
            cluster_dim: a.cluster_dim,
            per_channel_scale: a.per_channel_scale,
            weight_threshold: a.weight_threshold,
        };
        c.palettize = Some(selection(p, &a.op_types, &a.skip));
    }
    if let Some(q) = &a.quantize {
        let dtype = QuantDtype::parse(q)
            .with_context(|| format!("--quantize {q}: expected int8, uint8, int4 or uint4"))?;
        let default = if c.palettize.is_some() {
            QuantGranularity::PerTensor
        } else {
            QuantGranularity::PerChannel
        };
        let g = if pal_gran || (c.palettize.is_some() && gran.as_deref() != Some("per_tensor")) {
            None
        } else {
            gran.as_deref()
        };
        let l = LinearConfig {
            dtype,
            mode: config::parse_quant_mode(&a.mode)?,
            granularity: quant_granularity(g, a.block_size, default)?,
            weight_threshold: a.weight_threshold,
        };
        c.quantize = Some(selection(l, &a.op_types, &a.skip));
    }
    let method = match (a.prune, &a.prune_nm, a.prune_threshold) {
        (Some(s), None, None) => Some(PruneMethod::Magnitude {
            target_sparsity: s,
            block_size: a.prune_block_size,
            dim: a.prune_dim.unwrap_or(0),
        }),
        (None, Some(nm), None) => {
            let (n, m) = nm
                .split_once(':')
                .and_then(|(n, m)| Some((n.trim().parse().ok()?, m.trim().parse().ok()?)))
                .with_context(|| format!("--prune-nm {nm}: expected N:M, e.g. 2:4"))?;
            Some(PruneMethod::NOfM {
                n,
                m,
                dim: a.prune_dim.unwrap_or(1),
            })
        }
        (None, None, Some(t)) => Some(PruneMethod::Threshold {
            threshold: t,
            min_sparsity: 0.0,
        }),
        (None, None, None) => None,
        _ => bail!("give one of --prune, --prune-nm, --prune-threshold"),
    };
    if let Some(method) = method {
        let p = PruneConfig {
            method,
            weight_threshold: a.weight_threshold,
        };
        c.prune = Some(selection(p, &a.op_types, &a.skip));
    }
    c.validate()?;
    Ok(c)
}

/// Total size of the files under `p`.
fn disk_size(p: &Path) -> u64 {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| disk_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// The indicatif progress bar as a compression progress sink.
struct Bar(indicatif::ProgressBar);

impl anekit_compress::Progress for Bar {
    fn start(&self, total: usize) {
        self.0.set_length(total as u64);
    }
    fn advance(&self, weight: &str) {
        self.0.set_message(weight.to_string());
        self.0.inc(1);
    }
}

/// Run both models on the same inputs; SNR and max error per output. A model converted to
/// fp16 compute precision runs with fp16 precision (every fp16 op's output rounded to fp16,
/// as the Neural Engine computes).
fn evaluate(original: &Path, compressed: &Path, a: &Args, fp16: bool) -> Result<Vec<OutputError>> {
    let options = |precision| LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        function: None,
        precision,
        threads: None,
        ..LoadOptions::default()
    };
    let engine = Engine::new();
    let load = |p: &Path, precision| -> Result<anekit_runtime::LoadedModel> {
        let m = Model::open(p).with_context(|| format!("cannot read {}", p.display()))?;
        engine
            .load(Arc::new(m), &options(precision))
            .with_context(|| format!("the CPU backend cannot load {}", p.display()))
    };
    let comp_precision = if fp16 {
        Precision::Fp16
    } else {
        Precision::Fp32
    };
    let (base, comp) = (
        load(original, Precision::Fp32)?,
        load(compressed, comp_precision)?,
    );
    let (inputs, _) = gather(base.inputs(), &a.inputs, true, a.seed, 10, None)?;
    let run = |m: &anekit_runtime::LoadedModel| -> Result<NamedTensors> {
        if m.instance().states().is_empty() {
            Ok(m.predict(&inputs)?)
        } else {
            let mut st = m.new_state();
            Ok(m.predict_with_state(&inputs, &mut st)?)
        }
    };
    let (ya, yb) = (run(&base)?, run(&comp)?);
    let mut out = Vec::new();
    for (name, ta) in &ya {
        let Some(tb) = yb.get(name) else { continue };
        let d = tb.deviation(ta).with_context(|| {
            format!(
                "output {name}: the compressed model gives shape {:?}, the original {:?}",
                tb.shape(),
                ta.shape()
            )
        })?;
        out.push(OutputError {
            name: name.clone(),
            snr_db: (d.noise > 0.0).then(|| d.snr_db()),
            max_abs_error: d.max_abs,
        });
    }
    Ok(out)
}

/// Run `anekit compress`.
pub fn run(a: &Args) -> Result<()> {
    let config = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Config::from_toml(&text, &p.display().to_string())?
        }
        None => config_from_flags(a)?,
    };
    let t0 = std::time::Instant::now();
    let mut model = Model::open(&a.model)
        .with_context(|| format!("cannot read model {}", a.model.display()))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} compressing [{bar:30}] {pos}/{len} weights {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = anekit_compress::compress_model(&mut model, &config, &Bar(bar.clone()))
        .with_context(|| format!("cannot compress {}", a.model.display()))?;
    bar.finish_and_clear();
    model
        .save_mlpackage(&a.output)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let (outputs, eval_error) = if a.no_eval {
        (Vec::new(), None)
    } else {
        match evaluate(&a.model, &a.output, a, config.fp16) {
            Ok(o) => (o, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        }
    };
    let r = CompressReport {
        model: a.model.display().to_string(),
        output: a.output.display().to_string(),
        size_before: disk_size(&a.model),
        size_after: disk_size(&a.output),
        weights_before: report.bytes_before(),
        weights_after: report.bytes_after(),
        seconds,
        compression: report,
        outputs,
        eval_error,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    Ok(())
}

fn db(v: Option<f64>) -> String {
    v.map_or("exact".into(), |v| format!("{v:.1} dB"))
}

fn print_report(r: &CompressReport) {
    let c = &r.compression;
    println!("{} → {}", r.model, r.output);
    let mut rows = vec![vec![
        "weight".to_string(),
        "shape".into(),
        "compression".into(),
        "ops".into(),
        "before".into(),
        "after".into(),
        "weight SNR".into(),
    ]];
    for w in &c.weights {
        rows.push(vec![
            w.name.clone(),
            format!("{:?}", w.shape),
            w.stages.join(" + "),
            w.ops.join(" → "),
            bytes(w.bytes_before as u64),
            bytes(w.bytes_after as u64),
            db(w.snr_db),
        ]);
    }
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    if !c.weights.is_empty() {
        print!("{}", table(&rows, 2));
    } else if c.fp16.is_none() {
        println!("  no weight was compressed");
    }
    if let Some(f) = &c.fp16 {
        println!(
            "  fp16: {} ops converted to fp16 compute precision, {} fp32 constants made fp16, \
             {:+} casts; constants {} → {} ({:.2}×)",
            f.ops,
            f.consts,
            f.casts_added,
            bytes(f.weight_bytes_before as u64),
            bytes(f.weight_bytes_after as u64),
            ratio(f.weight_bytes_before as u64, f.weight_bytes_after as u64),
        );
        for s in &f.skipped {
            println!("  fp16: {} ({}) stays fp32: {}", s.op, s.op_type, s.reason);
        }
    }
    for s in &c.skipped {
        println!("  skipped {}: {}", s.name, s.reason);
    }
    let package = format!(
        "package: {} → {} ({:.2}×), {:.2} s",
        bytes(r.size_before),
        bytes(r.size_after),
        ratio(r.size_before, r.size_after),
        r.seconds
    );
    if c.weights.is_empty() {
        println!("  {package}");
    } else {
        println!(
            "  weights: {} → {} ({:.2}×), {package}",
            bytes(r.weights_before as u64),
            bytes(r.weights_after as u64),
            ratio(r.weights_before as u64, r.weights_after as u64),
        );
    }
    for o in &r.outputs {
        println!(
            "  output {}: SNR {} vs the uncompressed model, max |error| {:.4e} (CPU backend{})",
            o.name,
            db(o.snr_db),
            o.max_abs_error,
            if c.fp16.is_some() {
                ", fp16 precision"
            } else {
                ""
            }
        );
    }
    if let Some(e) = &r.eval_error {
        println!("  accuracy check not run: {e}");
    }
}
