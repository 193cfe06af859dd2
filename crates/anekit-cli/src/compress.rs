//! `anekit compress`: quantize, palettize and/or prune a model's weights, write the result,
//! and measure what it costs: size before/after and, through the CPU backend, the output
//! SNR and max error against the uncompressed model.

use std::path::{Path, PathBuf};

use anekit_compress::config::Config;
use anekit_compress::{Flags, Granularity, NOfM, PaletteMode, QuantDtype, QuantMode, Report};
use anekit_runtime::{ComputeUnits, LoadOptions};
use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::inputs::{InputArg, gather};
use crate::output::{bytes, table};

/// Arguments of `anekit compress`. They are only parsed here: which stage a flag belongs to,
/// the defaults and the contradictions are decided by [`anekit_compress::Flags::resolve`].
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to compress (.mlpackage, .mlmodel, .mlmodelc or a Core AI .aimodel).
    model: PathBuf,
    /// Where to write the compressed model (never the input): an .mlpackage, or an .aimodel
    /// (quantized weights become Core AI's blockwise_shift_scale_v2 ops, palettized ones
    /// lut_to_dense_v1; pruning has no Core AI form).
    #[arg(short, long, value_name = "OUT.mlpackage|OUT.aimodel")]
    output: PathBuf,
    /// Linear quantization to this type.
    #[arg(long, value_name = "int8|uint8|int4|uint4", value_parser = parse::<QuantDtype>)]
    quantize: Option<QuantDtype>,
    /// Quantization mode [default: linear-symmetric].
    #[arg(long, value_name = "linear|linear-symmetric", value_parser = parse::<QuantMode>)]
    mode: Option<QuantMode>,
    /// per-tensor, per-channel, per-block (quantization) or per-grouped-channel
    /// (palettization). Defaults: per-channel for quantization, per-tensor for palettization
    /// and for the LUT quantized after palettization.
    #[arg(long, value_parser = parse::<Granularity>)]
    granularity: Option<Granularity>,
    /// Block size of per-block quantization (alone it means --granularity per-block)
    /// [default: 32].
    #[arg(long, value_name = "N")]
    block_size: Option<usize>,
    /// Only compress weights with more elements than this [default: 2048].
    #[arg(long, value_name = "N")]
    weight_threshold: Option<usize>,
    /// Palettize to this many bits per index (1, 2, 3, 4, 6, 8).
    #[arg(long, value_name = "NBITS")]
    palettize: Option<u8>,
    /// Palettization mode [default: kmeans] (unique: lossless with the fewest bits; no NBITS
    /// then).
    #[arg(long, value_name = "kmeans|uniform|unique", value_parser = parse::<PaletteMode>)]
    palettize_mode: Option<PaletteMode>,
    /// Channels per LUT of per-grouped-channel palettization (alone it means
    /// --granularity per-grouped-channel) [default: 32].
    #[arg(long, value_name = "N")]
    group_size: Option<usize>,
    /// Vector palettization: elements per LUT entry along the output channels (iOS18)
    /// [default: 1].
    #[arg(long, value_name = "N")]
    cluster_dim: Option<usize>,
    /// Palettize weights divided by their per-channel maximum (iOS18).
    #[arg(long)]
    per_channel_scale: bool,
    /// Magnitude pruning to this fraction of zeros (0..1).
    #[arg(long, value_name = "SPARSITY", conflicts_with_all = ["prune_nm", "prune_threshold"])]
    prune: Option<f64>,
    /// n:m pruning (n zeros in every m consecutive weights along input channels).
    #[arg(long, value_name = "N:M", conflicts_with = "prune_threshold", value_parser = parse::<NOfM>)]
    prune_nm: Option<NOfM>,
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
    /// NeuralNetwork models only: linear quantization to this many bits (1-8, unsigned, as
    /// coremltools' `quantize_weights(nbits=N)`), with `--quantize uint8`.
    #[arg(long, value_name = "N", requires = "quantize")]
    nbits: Option<u8>,
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

/// A clap value parser from a [`std::str::FromStr`] of anekit-compress.
fn parse<T: std::str::FromStr<Err = anekit_compress::CompressError>>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|e: anekit_compress::CompressError| e.to_string())
}

impl Args {
    /// The flags as anekit-compress takes them.
    fn flags(&self) -> Flags {
        Flags {
            quantize: self.quantize,
            mode: self.mode,
            granularity: self.granularity,
            block_size: self.block_size,
            weight_threshold: self.weight_threshold,
            palettize: self.palettize,
            palettize_mode: self.palettize_mode,
            group_size: self.group_size,
            cluster_dim: self.cluster_dim,
            per_channel_scale: self.per_channel_scale,
            prune: self.prune,
            prune_nm: self.prune_nm,
            prune_threshold: self.prune_threshold,
            prune_block_size: self.prune_block_size,
            prune_dim: self.prune_dim,
            op_types: self.op_types.clone(),
            skip: self.skip.clone(),
            fp16: self.fp16,
        }
    }
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
    outputs: Vec<anekit::OutputError>,
    eval_error: Option<String>,
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

/// The accuracy report of the library ([`anekit::Compressed::accuracy`]): the original and
/// the package just written run on the same inputs on the CPU backend (the compressed one at
/// fp16 precision if its compute precision was converted, as the Neural Engine computes);
/// SNR and max error per output.
fn evaluate(
    original: &anekit::Model,
    compressed: anekit::Compressed,
    a: &Args,
) -> Result<Vec<anekit::OutputError>> {
    let written = crate::coreai::open_model(&a.output)
        .map(anekit::Model::from_mil)
        .with_context(|| format!("cannot read back {}", a.output.display()))?;
    let compressed = anekit::Compressed {
        model: written,
        ..compressed
    };
    let loaded = original
        .load(&LoadOptions {
            compute_units: ComputeUnits::CpuOnly,
            ..LoadOptions::default()
        })
        .context("the CPU backend cannot load the original model")?;
    let images = crate::inputs::image_specs(&a.model);
    let (inputs, _) = gather(loaded.inputs(), &images, &a.inputs, true, a.seed, 10, None)?;
    Ok(compressed.accuracy(original, &inputs)?)
}

/// Run `anekit compress`.
pub fn run(a: &Args) -> Result<()> {
    let config = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Config::from_toml(&text, &p.display().to_string())?
        }
        None => a.flags().resolve()?,
    };
    let t0 = std::time::Instant::now();
    let model = anekit::Model::from_mil(crate::coreai::open_model(&a.model)?);
    if model.mil().is_translated() || model.mil().untranslated.is_some() {
        return run_neuralnetwork(a, model.mil().clone(), t0);
    }
    if a.nbits.is_some() {
        bail!(
            "--nbits is for NeuralNetwork models; ML Programs take --quantize int8|uint8|int4|uint4"
        );
    }
    crate::validation::require_valid(model.mil(), &a.model)?;
    let to_aimodel = a.output.extension().is_some_and(|e| e == "aimodel");
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
    let compressed = model
        .compress_with_progress(&config, &Bar(bar.clone()))
        .with_context(|| format!("cannot compress {}", a.model.display()))?;
    bar.finish_and_clear();
    crate::validation::require_valid_output(compressed.model.mil(), &a.output)?;
    if to_aimodel {
        crate::coreai::save_aimodel(compressed.model.mil(), &a.model, &a.output)?;
    } else {
        compressed
            .model
            .save(&a.output)
            .with_context(|| format!("cannot write {}", a.output.display()))?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let report = compressed.report.clone();
    let (outputs, eval_error) = if a.no_eval {
        (Vec::new(), None)
    } else {
        match evaluate(&model, compressed, a) {
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

/// NeuralNetwork models are compressed in their own format, as coremltools'
/// `quantize_weights` does: `--fp16` (nbits 16), `--quantize int8|uint8|int4|uint4` (or
/// `--quantize uint8 --nbits 1…8`) with `--mode linear|linear-symmetric` (per output
/// channel; linear by default, as `quantize_weights`), `--palettize N` with
/// `--palettize-mode kmeans|uniform` (a 2^N-entry lookup table; uniform = coremltools'
/// `linear_lut`). The result is a NeuralNetwork model: `.mlmodel` when OUT ends so, else an
/// `.mlpackage` holding it.
fn run_neuralnetwork(
    a: &Args,
    mut model: anekit_mil::model::Model,
    t0: std::time::Instant,
) -> Result<()> {
    use anekit_compress::neuralnetwork::{NnMode, quantize_spec};
    if let Some(why) = &model.untranslated {
        tracing::warn!(
            "{} cannot be translated to MIL ({why}); its weights are compressed but the accuracy check cannot run",
            a.model.display()
        );
    }
    let unsupported = [
        (
            a.prune.is_some() || a.prune_nm.is_some() || a.prune_threshold.is_some(),
            "pruning",
        ),
        (a.config.is_some(), "--config"),
        (
            !a.op_types.is_empty() || !a.skip.is_empty(),
            "--op-type/--skip",
        ),
        (a.granularity.is_some(), "--granularity"),
        (
            a.block_size.is_some()
                || a.group_size.is_some()
                || a.cluster_dim.is_some()
                || a.per_channel_scale,
            "--block-size/--group-size/--cluster-dim/--per-channel-scale",
        ),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
        bail!(
            "{what} is not available for NeuralNetwork models (coremltools' quantize_weights offers fp16, linear and lookup-table quantization)"
        );
    }
    let (mode, nbits) = match (a.fp16, a.quantize, a.palettize) {
        (true, None, None) => (NnMode::Fp16, 16),
        (false, Some(q), None) => {
            let bits = match a.nbits {
                Some(n) if u32::from(n) == q.bits() => q.bits(),
                Some(n) if (1..=8).contains(&n) && !q.signed() => u32::from(n),
                Some(n) if (1..=8).contains(&n) => bail!(
                    "--nbits {n}: NeuralNetwork linear quantization below 8 bits is unsigned (--quantize uint8 --nbits {n})"
                ),
                Some(n) => bail!("--nbits {n}: NeuralNetwork weights take 1 to 8 bits"),
                None => q.bits(),
            };
            let mode = match a.mode.unwrap_or(QuantMode::Linear) {
                QuantMode::LinearSymmetric if bits == 8 => NnMode::LinearSymmetric,
                _ => NnMode::Linear,
            };
            (mode, bits)
        }
        (false, None, Some(n)) => {
            let mode = match a.palettize_mode.unwrap_or(PaletteMode::Kmeans) {
                PaletteMode::Kmeans => NnMode::Kmeans,
                PaletteMode::Uniform => NnMode::LinearLut,
                PaletteMode::Unique => {
                    bail!("--palettize-mode unique: NeuralNetwork models take kmeans or uniform")
                }
            };
            if !(1..=8).contains(&n) {
                bail!("--palettize {n}: NeuralNetwork lookup tables take 1 to 8 bits");
            }
            (mode, u32::from(n))
        }
        (false, None, None) => bail!("nothing to do: give --fp16, --quantize or --palettize"),
        _ => bail!("NeuralNetwork models take one of --fp16, --quantize, --palettize"),
    };
    let report = quantize_spec(&mut model.spec, mode, nbits)
        .with_context(|| format!("cannot compress {}", a.model.display()))?;
    if let Some(src) = &model.source {
        anekit_format::package::check_output_path(&a.output, src)?;
    }
    if a.output.extension().is_some_and(|e| e == "mlmodel") {
        // Written to a sibling, then renamed into place.
        let tmp = a.output.with_extension("mlmodel.tmp");
        anekit_format::mlmodel::write_model(&tmp, &model.spec)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &a.output)
            .with_context(|| format!("cannot write {}", a.output.display()))?;
    } else {
        // A translated model is written as its (compressed) NeuralNetwork specification.
        model
            .save_mlpackage(&a.output)
            .with_context(|| format!("cannot write {}", a.output.display()))?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let (outputs, eval_error) = if a.no_eval {
        (Vec::new(), None)
    } else {
        // `evaluate` reads the written model back in place of the `model` given here.
        let evaluated = anekit::Model::open(&a.model)
            .with_context(|| format!("cannot read {}", a.model.display()))
            .and_then(|original| {
                let compressed = anekit::Compressed {
                    model: original.clone(),
                    report: anekit_compress::Report::default(),
                    fp16: false,
                };
                evaluate(&original, compressed, a)
            });
        match evaluated {
            Ok(o) => (o, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        }
    };
    #[derive(Serialize)]
    struct NnCompressReport {
        model: String,
        output: String,
        mode: NnMode,
        nbits: u32,
        size_before: u64,
        size_after: u64,
        seconds: f64,
        compression: anekit_compress::neuralnetwork::NnReport,
        outputs: Vec<anekit::OutputError>,
        eval_error: Option<String>,
    }
    let r = NnCompressReport {
        model: a.model.display().to_string(),
        output: a.output.display().to_string(),
        mode,
        nbits,
        size_before: disk_size(&a.model),
        size_after: disk_size(&a.output),
        seconds,
        compression: report,
        outputs,
        eval_error,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{} → {} (NeuralNetwork, {mode:?} {nbits}-bit, as coremltools' quantize_weights)",
        r.model, r.output
    );
    println!(
        "  size {} → {}; weights {} → {} in {} weight fields ({:.2} s)",
        bytes(r.size_before),
        bytes(r.size_after),
        bytes(r.compression.bytes_before as u64),
        bytes(r.compression.bytes_after as u64),
        r.compression.weights.len(),
        r.seconds
    );
    for o in &r.outputs {
        println!(
            "  output {}: SNR {} vs the uncompressed model, max |error| {:.4e} (CPU backend)",
            o.name,
            db(o.snr_db),
            o.max_abs_error
        );
    }
    if let Some(e) = &r.eval_error {
        println!("  accuracy check not run: {e}");
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
