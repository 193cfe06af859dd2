//! `anekit`: inspect, analyze, compress and run Core ML models, on any OS.

mod analyze;
mod bench;
mod bundled;
mod compress;
mod convert;
mod coreai;
mod devices;
mod inputs;
mod inspect;
mod optimize;
mod output;
mod run;
mod top;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// anekit — a toolkit and runtime for Apple's Neural Engine and Core ML models.
///
/// Reads .mlpackage, .mlmodel and compiled .mlmodelc models, and Core AI .aimodel models,
/// on any OS. Without a MODEL
/// argument, commands use the small model bundled with anekit.
#[derive(Debug, Parser)]
#[command(name = "anekit", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a model contains: format, version, functions, inputs, outputs, states,
    /// metadata, op histogram, parameters and compression.
    Inspect(inspect::Args),
    /// Predict where Core ML places every op (Neural Engine, GPU or CPU) on a given chip,
    /// with reasons, segments, engine switches, an estimated latency per chip and fixes.
    Analyze(analyze::Args),
    /// Rewrite a model for the Neural Engine (no-op removal, fp16 epsilons; optionally fp16
    /// compute and linear-to-conv) and write a new .mlpackage, validated after every pass.
    Optimize(optimize::Args),
    /// Run a model on the CPU backend (or Core ML on a Mac) and summarise its outputs.
    ///
    /// Inputs come from .npy files (--input NAME=FILE.npy) or are random (--random); outputs
    /// can be written as .npy files (--output-dir). With --precision fp16 every fp16-typed op
    /// rounds to fp16 as the Neural Engine does, and the first op that overflows is named.
    Run(run::Args),
    /// Compress a model's weights: linear quantization (--quantize), palettization
    /// (--palettize), pruning (--prune, --prune-nm), alone or jointly (iOS18), as
    /// coremltools.optimize.coreml does; report sizes and, through the CPU backend, the
    /// output SNR against the uncompressed model.
    Compress(Box<compress::Args>),
    /// Convert between Core ML and Core AI: a .mlpackage (or .mlmodel / .mlmodelc) becomes
    /// an .aimodel, an .aimodel becomes an .mlpackage. Ops that cannot be converted are all
    /// named, with the reason.
    Convert(convert::Args),
    /// Measure prediction latency (median and p90 after warm-up), peak memory and threads.
    Bench(bench::Args),
    /// What this machine has for running models: host, backends and, on Apple platforms,
    /// the chip, Neural Engine and GPUs (elsewhere: which Apple features are unavailable and
    /// why).
    Devices(devices::Args),
    /// Live hardware metrics: power, utilisation, memory and temperatures per unit (CPU,
    /// GPUs, ANE), as a terminal view, JSON lines (--json) or a Prometheus endpoint (--serve).
    Top(top::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result: Result<()> = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Analyze(args) => analyze::run(&args),
        Command::Optimize(args) => optimize::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Compress(args) => compress::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Devices(args) => devices::run(&args),
        Command::Top(args) => top::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// The model a command works on: the given path, or the bundled model.
fn model_path(path: &Option<PathBuf>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.clone()),
        None => bundled::path(),
    }
}
