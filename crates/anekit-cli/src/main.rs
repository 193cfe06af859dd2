//! `anekit`: inspect, analyze, compress and run Core ML models, on any OS.

#![forbid(unsafe_code)]

mod analyze;
mod bench;
mod bundled;
mod compress;
mod convert;
mod coreai;
mod devices;
mod doctor;
mod inputs;
mod inspect;
mod optimize;
mod output;
mod run;
mod top;
mod validation;

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
    /// metadata, op histogram, parameters, compression, and whether the program is valid.
    Inspect(inspect::Args),
    /// Predict where Core ML places every op (Neural Engine, GPU or CPU) on a given chip,
    /// with reasons, segments, engine switches, an estimated latency per chip and fixes.
    Analyze(analyze::Args),
    /// Rewrite a model for the Neural Engine (no-op removal, fp16 epsilons; optionally fp16
    /// compute and linear-to-conv) and write a new .mlpackage, validated after every pass.
    Optimize(optimize::Args),
    /// Run a model on the CPU backend (or Core ML on a Mac) and summarise its outputs.
    ///
    /// Inputs come from .npy files (--input NAME=FILE.npy), images for image inputs
    /// (--input image=photo.png), or are random (--random); outputs can be written as .npy
    /// files (--output-dir). NeuralNetwork models (.mlmodel) run through their MIL translation. With --precision fp16 every fp16-typed op
    /// rounds to fp16 as the Neural Engine does, and the first op that overflows is named.
    Run(run::Args),
    /// Compress a model's weights: linear quantization (--quantize), palettization
    /// (--palettize), pruning (--prune, --prune-nm), alone or jointly (iOS18), as
    /// coremltools.optimize.coreml does; report sizes and, through the CPU backend, the
    /// output SNR against the uncompressed model. NeuralNetwork models are compressed as
    /// coremltools' quantize_weights does (--fp16, --quantize uint1..uint8, --palettize N)
    /// and stay NeuralNetwork models (e.g. `anekit compress m.mlmodel -o m8.mlmodel
    /// --quantize uint8 --mode linear`).
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
    /// Check every path of this build on small bundled models: on a Mac, device detection,
    /// Metal, MPSGraph, Core ML with each compute-units setting, MLComputePlan, the direct
    /// Neural Engine backend and an IOReport/SMC sample, each compared with the CPU backend;
    /// elsewhere the portable checks. Run it first on a new machine; attach `--json` to bug
    /// reports.
    Doctor(doctor::Args),
}

fn main() -> std::process::ExitCode {
    quiet_broken_pipe();
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
        Command::Doctor(args) => doctor::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`anekit inspect --mil | head`): stop quietly, as a pipe
        // expects (ripgrep does the same).
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `print!` panics when stdout is a closed pipe (Rust ignores SIGPIPE, so the write fails
/// with EPIPE and std turns that into "failed printing to stdout: Broken pipe"). Output that
/// goes through `print!` ends here: the process exits 0 without a message, as it would have
/// been killed quietly by SIGPIPE in a C tool. Every other panic keeps the default report.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
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
