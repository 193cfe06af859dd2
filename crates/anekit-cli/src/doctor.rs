//! `anekit doctor`: runs every path of this build on small bundled models and says, per
//! check, whether it works, how long it took, and — when it does not — the error with the
//! context needed to fix it.
//!
//! On a Mac it exercises the Apple layer end to end: device detection, Metal, an MPSGraph
//! matmul, Core ML load and predict with each compute-units setting (outputs compared with
//! the CPU backend), `MLComputePlan` against `analyze`'s prediction, the direct Neural
//! Engine backend on a one-op and a two-input program (with `--features private-ane`), and
//! one IOReport/SMC sample. Everywhere it runs the portable checks (the CPU backend against
//! PyTorch's outputs for the bundled model, the metric sources, the preparation the Apple
//! paths do before touching a framework) and lists the Apple checks as not applicable, with
//! the reason. `--json` gives the same as data: what a bug report should carry.
//!
//! The backend-against-CPU comparisons go through one function, [`compare::against_cpu`],
//! which the shared test kit (anekit-testkit, running its cases through `&dyn Backend`) is
//! meant to replace.

use std::sync::Arc;
use std::time::Instant;

use anekit_apple::status::Feature;
use anekit_mil::model::Model;
use anekit_runtime::{BackendChoice, ComputeUnits, NamedTensors, Tensor};
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

/// Arguments of `anekit doctor`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  anekit doctor\n  anekit doctor --json > doctor.json   \
                        # attach this file to a bug report"
)]
pub struct Args {
    /// Print the results as JSON (one object; attach it to a bug report).
    #[arg(long)]
    json: bool,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It worked.
    Pass,
    /// It failed (the error says how).
    Fail,
    /// It does not exist on this OS or in this build (the detail says why).
    NotApplicable,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Its name (`coreml.cpu-and-ne`).
    pub name: String,
    /// What it exercises.
    pub what: String,
    /// How it ended.
    pub status: Status,
    /// Wall-clock time, milliseconds.
    pub ms: f64,
    /// What it found (devices, numbers, deviations) or why it is not applicable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The error, with its causes, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `anekit doctor` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// anekit's version.
    pub version: &'static str,
    /// `std::env::consts::OS`.
    pub os: &'static str,
    /// `std::env::consts::ARCH`.
    pub arch: &'static str,
    /// Whether the direct Neural Engine backend is built in (`--features private-ane`).
    pub private_ane: bool,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Counts by status.
    pub passed: usize,
    /// Failed checks.
    pub failed: usize,
    /// Checks that do not apply here.
    pub not_applicable: usize,
}

/// Runs `f` as the check `name`; an error becomes a failed check with its whole chain.
fn check(name: &str, what: &str, f: impl FnOnce() -> Result<String>) -> Check {
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        Err(anyhow!("panicked: {msg}"))
    });
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    match r {
        Ok(detail) => Check {
            name: name.into(),
            what: what.into(),
            status: Status::Pass,
            ms,
            detail: Some(detail),
            error: None,
        },
        Err(e) => Check {
            name: name.into(),
            what: what.into(),
            status: Status::Fail,
            ms,
            detail: None,
            error: Some(format!("{e:#}")),
        },
    }
}

/// A check that does not apply here, with the reason.
fn not_applicable(name: &str, what: &str, why: String) -> Check {
    Check {
        name: name.into(),
        what: what.into(),
        status: Status::NotApplicable,
        ms: 0.0,
        detail: Some(why),
        error: None,
    }
}

/// The programs the doctor runs on the Neural Engine and the GPU: small, fixed-shape fp16
/// (and fp32 for the matmul), each input wider than the Neural Engine's 64-element minimum,
/// the two inputs of different sizes (the M1 rule of maderix/ANE#47).
pub mod programs {
    use anekit_mil::model::Model;

    /// `y = relu(x)`, x: fp16 [1, 64, 1, 64].
    pub const ONE_OP: &str = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 64, 1, 64]> x) {\n            tensor<fp16, [1, 64, 1, 64]> y = relu(x = x)[name = string(\"y\")];\n        } -> (y);\n}\n";

    /// `y = x + b` (broadcast), x: fp16 [1, 64, 1, 64], b: fp16 [1, 1, 1, 64].
    pub const TWO_INPUT: &str = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 64, 1, 64]> x, tensor<fp16, [1, 1, 1, 64]> b) {\n            tensor<fp16, [1, 64, 1, 64]> y = add(x = x, y = b)[name = string(\"y\")];\n        } -> (y);\n}\n";

    /// `y = a @ b`, a: fp32 [64, 32], b: fp32 [32, 16].
    pub const MATMUL: &str = "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [64, 32]> a, tensor<fp32, [32, 16]> b) {\n            tensor<fp32, [64, 16]> y = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string(\"y\")];\n        } -> (y);\n}\n";

    /// A model of one of the programs above.
    pub fn model(text: &str) -> anyhow::Result<Model> {
        let p = anekit_mil::text::parse_without_weights(text, "<doctor>")?;
        Ok(Model::from_program(
            anekit_format::proto::Model {
                specification_version: 9,
                ..Default::default()
            },
            p,
        ))
    }
}

/// Deterministic inputs for `model`'s inputs (values in [-1, 1)).
fn inputs_for(model: &Model) -> Result<NamedTensors> {
    let engine = anekit_runtime::Engine::new();
    let loaded = engine.load(
        Arc::new(model.clone()),
        &anekit_runtime::LoadOptions {
            compute_units: ComputeUnits::CpuOnly,
            ..Default::default()
        },
    )?;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    loaded
        .inputs()
        .iter()
        .map(|s| {
            let shape = s.shape.default_shape().to_vec();
            let n: usize = shape.iter().product();
            let t = Tensor::f32(&shape, (0..n).map(|_| next()).collect())?.cast(s.dtype);
            Ok((s.name.clone(), t))
        })
        .collect()
}

/// The comparison of a backend's outputs with the CPU backend's, in one place so that the
/// shared test kit (anekit-testkit: the CPU backend's cases run through `&dyn Backend`,
/// issue 11) can replace it.
pub mod compare {
    use std::sync::Arc;

    use anekit_mil::model::Model;
    use anekit_runtime::{BackendChoice, ComputeUnits, Engine, LoadOptions, NamedTensors};
    use anyhow::{Context, Result, bail};

    /// The largest relative error (max |a − b| / max |b|) accepted against the CPU backend:
    /// the Neural Engine and the GPU compute in fp16.
    pub const MAX_RELATIVE: f64 = 2e-2;

    /// Runs `model` on `choice` with `units` and on the CPU backend, and compares every
    /// output; returns a line per output (relative error, SNR) or the failure.
    pub fn against_cpu(
        engine: &Engine,
        model: &Model,
        choice: BackendChoice,
        units: ComputeUnits,
        inputs: &NamedTensors,
    ) -> Result<String> {
        let model = Arc::new(model.clone());
        let load = |backend, units| {
            engine.load(
                model.clone(),
                &LoadOptions {
                    compute_units: units,
                    backend,
                    ..Default::default()
                },
            )
        };
        let cpu = load(BackendChoice::Cpu, ComputeUnits::CpuOnly)?.predict(inputs)?;
        let other =
            load(choice, units).with_context(|| format!("loading with --backend {choice}"))?;
        let out = other
            .predict(inputs)
            .with_context(|| format!("predicting on {}", other.selection().backend))?;
        let mut lines = vec![format!(
            "{} ({})",
            other.selection().backend,
            units.coreml_name()
        )];
        for (name, reference) in &cpu {
            let got = out.get(name).with_context(|| {
                format!("no output {name:?} from {}", other.selection().backend)
            })?;
            let d = got.deviation(reference).with_context(|| {
                format!(
                    "output {name:?}: shape {:?}, the CPU backend gives {:?}",
                    got.shape(),
                    reference.shape()
                )
            })?;
            if d.relative() > MAX_RELATIVE {
                bail!(
                    "output {name:?}: relative error {:.2e} against the CPU backend (SNR {:.1} dB), more than {MAX_RELATIVE:.0e}",
                    d.relative(),
                    d.snr_db()
                );
            }
            lines.push(format!(
                "{name}: relative error {:.2e}, SNR {:.1} dB",
                d.relative(),
                d.snr_db()
            ));
        }
        Ok(lines.join("; "))
    }
}

fn portable_checks(out: &mut Vec<Check>) {
    out.push(check(
        "cpu.bundled-model",
        "anekit's CPU backend on the bundled model against PyTorch's outputs",
        || {
            let path = crate::bundled::path()?;
            let model =
                Model::open(&path).with_context(|| format!("reading {}", path.display()))?;
            let engine = anekit_runtime::Engine::new();
            let loaded = engine.load(
                Arc::new(model),
                &anekit_runtime::LoadOptions {
                    compute_units: ComputeUnits::CpuOnly,
                    ..Default::default()
                },
            )?;
            let out = loaded.predict(&crate::bundled::sample_inputs()?)?;
            let logits = out.get("logits").context("no output logits")?;
            let reference =
                anekit_runtime::npy::parse(crate::bundled::REFERENCE_LOGITS, "logits.npy")?;
            let d = logits
                .deviation(&reference)
                .context("logits: shape differs from PyTorch's")?;
            if d.relative() > 1e-2 {
                bail!(
                    "logits: relative error {:.2e} against PyTorch (SNR {:.1} dB)",
                    d.relative(),
                    d.snr_db()
                );
            }
            Ok(format!(
                "logits {:?}: relative error {:.2e}, SNR {:.1} dB against PyTorch",
                logits.shape(),
                d.relative(),
                d.snr_db()
            ))
        },
    ));
    out.push(check(
        "devices.detect",
        "device detection and the Apple feature table",
        || {
            let d = crate::devices::gather();
            let available: Vec<&str> = d
                .apple
                .features
                .iter()
                .filter(|f| f.available)
                .map(|f| f.name)
                .collect();
            Ok(format!(
                "{} {}; Apple features available: {}",
                d.host.os,
                d.host.arch,
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            ))
        },
    ));
    out.push(check(
        "metrics.sample",
        "one sample of every metric source of this OS",
        || {
            let mut c = anekit_metrics::system_collector(std::path::Path::new("/"));
            let _ = c.sample();
            std::thread::sleep(std::time::Duration::from_millis(200));
            let s = c.sample();
            let states: Vec<String> = s
                .sources
                .iter()
                .map(|src| format!("{}: {}", src.name, source_state(&src.state)))
                .collect();
            if s.readings.is_empty() {
                bail!("no reading at all ({})", states.join("; "));
            }
            Ok(format!(
                "{} readings; {}",
                s.readings.len(),
                states.join("; ")
            ))
        },
    ));
    out.push(check(
        "cpu.doctor-programs",
        "the doctor's Neural Engine and GPU programs on the CPU backend, through the comparison the Apple checks use",
        || {
            let engine = anekit_runtime::Engine::new();
            let mut lines = Vec::new();
            for text in [programs::ONE_OP, programs::TWO_INPUT, programs::MATMUL] {
                let model = programs::model(text)?;
                let inputs = inputs_for(&model)?;
                lines.push(compare::against_cpu(
                    &engine,
                    &model,
                    BackendChoice::Cpu,
                    ComputeUnits::CpuOnly,
                    &inputs,
                )?);
            }
            Ok(lines.join(" | "))
        },
    ));
    out.push(check(
        "ane.prepare",
        "the direct Neural Engine path's preparation of the doctor programs (export, checks) for M1 and M4",
        || {
            let mut lines = Vec::new();
            for text in [programs::ONE_OP, programs::TWO_INPUT] {
                let model = programs::model(text)?;
                let (ins, outs) = anekit_apple::ane::layout::ordered_specs(&model, "main")?;
                for g in ["h13", "h16"] {
                    let profile = anekit_apple::ane::target::profile_for(Some(g));
                    anekit_apple::ane::layout::plan_io(&ins, &outs, profile.io)?;
                    let program = model.require_program()?;
                    let e = anekit_apple::ane::export_for(program, "main", &profile)?;
                    let src = anekit_apple::ane::weight_source(&e.weights)?;
                    anekit_mil::text::parse(&e.mil, "<export>", &src)
                        .with_context(|| format!("the {g} export does not parse back"))?;
                }
                lines.push(format!("{} inputs, {} outputs", ins.len(), outs.len()));
            }
            Ok(format!("exports parse back; {}", lines.join(", ")))
        },
    ));
    out.push(check(
        "gpu.plan",
        "the MPSGraph planner on the doctor's matmul",
        || {
            let model = programs::model(programs::MATMUL)?;
            let p = model.require_program()?;
            let plan = anekit_apple::gpu_graph::plan_function(&p.functions["main"])?;
            let n = plan.nodes.first().context("no node")?;
            Ok(format!("{:?} → {} {:?}", n.op, n.dtype, n.shape))
        },
    ));
}

fn source_state(s: &anekit_metrics::SourceState) -> String {
    match s {
        anekit_metrics::SourceState::Ok => "ok".into(),
        anekit_metrics::SourceState::Unavailable { reason } => format!("unavailable ({reason})"),
        anekit_metrics::SourceState::Error { message } => format!("error ({message})"),
    }
}

/// The Apple checks: run on Apple platforms, listed as not applicable elsewhere; each with
/// the feature whose absence makes it not applicable.
const APPLE_CHECKS: &[(&str, Feature, &str)] = &[
    (
        "apple.devices",
        Feature::DeviceDetection,
        "chip, Neural Engine and GPUs as the OS reports them",
    ),
    (
        "apple.metal",
        Feature::Metal,
        "Metal devices and a command-queue round trip",
    ),
    (
        "apple.mpsgraph-matmul",
        Feature::MpsGraph,
        "an MPSGraph matmul against the CPU backend",
    ),
    (
        "coreml.all",
        Feature::CoreMl,
        "Core ML with compute units all, against the CPU backend",
    ),
    (
        "coreml.cpu-and-ne",
        Feature::CoreMl,
        "Core ML with cpu-and-ne, against the CPU backend",
    ),
    (
        "coreml.cpu-and-gpu",
        Feature::CoreMl,
        "Core ML with cpu-and-gpu, against the CPU backend",
    ),
    (
        "coreml.cpu-only",
        Feature::CoreMl,
        "Core ML with cpu-only, against the CPU backend",
    ),
    (
        "coreml.compute-plan",
        Feature::ComputePlan,
        "MLComputePlan against analyze's prediction",
    ),
    (
        "ane.one-op",
        Feature::DirectAne,
        "the direct Neural Engine backend on a one-op program, against the CPU",
    ),
    (
        "ane.two-input",
        Feature::DirectAne,
        "the direct Neural Engine backend on a two-input program, against the CPU",
    ),
    (
        "apple.ioreport",
        Feature::IoReport,
        "one IOReport sample (energy, residencies) through the metrics source",
    ),
    (
        "apple.smc",
        Feature::Smc,
        "the SMC: temperature keys and system power",
    ),
];

#[cfg(not(target_vendor = "apple"))]
fn apple_checks(out: &mut Vec<Check>) {
    for (name, feature, what) in APPLE_CHECKS {
        let why = anekit_apple::status::reason_in_this_build(*feature)
            .unwrap_or_else(|| "not an Apple platform".into());
        out.push(not_applicable(name, what, why));
    }
}

#[cfg(target_vendor = "apple")]
fn apple_checks(out: &mut Vec<Check>) {
    use anekit_apple::status::features;
    let feature = |f: Feature| features().into_iter().find(|s| s.feature == f);
    let missing = |f: Feature| feature(f).and_then(|s| s.reason);
    let what = |name: &str| {
        APPLE_CHECKS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or("", |(_, _, w)| *w)
    };
    let mut engine = anekit_runtime::Engine::new();
    anekit_apple::register(&mut engine);

    out.push(check("apple.devices", what("apple.devices"), || {
        let d = anekit_apple::detect();
        let chip = d
            .chip
            .as_ref()
            .and_then(|c| c.brand_string.clone())
            .unwrap_or_else(|| "unknown chip".into());
        let ne = d
            .neural_engine
            .as_ref()
            .map_or("not probed".to_string(), |n| {
                format!(
                    "Neural Engine {}{}",
                    if n.present { "present" } else { "not found" },
                    n.total_cores
                        .map(|c| format!(", {c} cores"))
                        .unwrap_or_default()
                )
            });
        Ok(format!(
            "{chip}; {ne}; {} Metal device(s); notes: {}",
            d.metal_devices.len(),
            if d.notes.is_empty() {
                "none".into()
            } else {
                d.notes.join(" | ")
            }
        ))
    }));

    match missing(Feature::Metal) {
        Some(why) => out.push(not_applicable("apple.metal", what("apple.metal"), why)),
        None => out.push(check("apple.metal", what("apple.metal"), || {
            let infos = anekit_apple::metal::device_infos();
            let dev = anekit_apple::metal::select(None)?;
            let q = anekit_apple::metal::Queue::new(&dev)?;
            let rt = q.round_trip_ms()?;
            Ok(format!(
                "{}; empty command buffer {}",
                infos
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                rt.map_or("not timed".into(), |ms| format!("{ms:.3} ms on the GPU"))
            ))
        })),
    }

    match missing(Feature::MpsGraph) {
        Some(why) => out.push(not_applicable(
            "apple.mpsgraph-matmul",
            what("apple.mpsgraph-matmul"),
            why,
        )),
        None => out.push(check(
            "apple.mpsgraph-matmul",
            what("apple.mpsgraph-matmul"),
            || {
                let model = programs::model(programs::MATMUL)?;
                let inputs = inputs_for(&model)?;
                let (gpu, timing, _) = anekit_apple::metal::run_function(
                    model.require_program()?,
                    "main",
                    &inputs,
                    None,
                )?;
                let cpu = anekit_runtime::Engine::new()
                    .load(
                        Arc::new(model),
                        &anekit_runtime::LoadOptions {
                            compute_units: ComputeUnits::CpuOnly,
                            ..Default::default()
                        },
                    )?
                    .predict(&inputs)?;
                let d = gpu["y"].deviation(&cpu["y"]).context("shapes differ")?;
                if d.relative() > compare::MAX_RELATIVE {
                    bail!(
                        "relative error {:.2e} against the CPU backend",
                        d.relative()
                    );
                }
                Ok(format!(
                    "relative error {:.2e}; run {:.2} ms",
                    d.relative(),
                    timing.run_ms
                ))
            },
        )),
    }

    let bundled = crate::bundled::path().and_then(|p| Model::open(&p).map_err(Into::into));
    for (name, units) in [
        ("coreml.all", ComputeUnits::All),
        ("coreml.cpu-and-ne", ComputeUnits::CpuAndNe),
        ("coreml.cpu-and-gpu", ComputeUnits::CpuAndGpu),
        ("coreml.cpu-only", ComputeUnits::CpuOnly),
    ] {
        match missing(Feature::CoreMl) {
            Some(why) => out.push(not_applicable(name, what(name), why)),
            None => out.push(check(name, what(name), || {
                let model = bundled.as_ref().map_err(|e| anyhow!("{e:#}"))?;
                compare::against_cpu(
                    &engine,
                    model,
                    BackendChoice::CoreMl,
                    units,
                    &crate::bundled::sample_inputs()?,
                )
            })),
        }
    }

    match missing(Feature::ComputePlan) {
        Some(why) => out.push(not_applicable(
            "coreml.compute-plan",
            what("coreml.compute-plan"),
            why,
        )),
        None => out.push(check(
            "coreml.compute-plan",
            what("coreml.compute-plan"),
            || {
                let model = bundled.as_ref().map_err(|e| anyhow!("{e:#}"))?;
                let report = anekit_plan::analyze_model(
                    model,
                    &anekit_plan::Options {
                        chip: "M1".into(),
                        compute_units: ComputeUnits::All,
                        function: None,
                        compare: false,
                        ..Default::default()
                    },
                )?;
                let (plan, comparison) = crate::devices::device_comparison(
                    model,
                    &report,
                    ComputeUnits::All,
                    None,
                    BackendChoice::CoreMl,
                )?;
                Ok(format!(
                    "{} ops in Core ML's plan, {:.0} % on the Neural Engine (predicted {:.0} %); \
                 {} of {} matched ops on the predicted unit",
                    plan.ops.len(),
                    comparison.coreml_ane_fraction * 100.0,
                    comparison.predicted_ane_fraction * 100.0,
                    comparison.agreeing,
                    comparison.matched
                ))
            },
        )),
    }

    for (name, text) in [
        ("ane.one-op", programs::ONE_OP),
        ("ane.two-input", programs::TWO_INPUT),
    ] {
        match anekit_apple::ane::availability_reason() {
            Some(why) => out.push(not_applicable(name, what(name), why)),
            None => out.push(check(name, what(name), || {
                let model = programs::model(text)?;
                let inputs = inputs_for(&model)?;
                compare::against_cpu(
                    &engine,
                    &model,
                    BackendChoice::Ane,
                    ComputeUnits::All,
                    &inputs,
                )
            })),
        }
    }

    #[cfg(target_os = "macos")]
    {
        match missing(Feature::IoReport) {
            Some(why) => out.push(not_applicable(
                "apple.ioreport",
                what("apple.ioreport"),
                why,
            )),
            None => out.push(check("apple.ioreport", what("apple.ioreport"), || {
                let mut c = anekit_metrics::system_collector(std::path::Path::new("/"));
                let _ = c.sample();
                std::thread::sleep(std::time::Duration::from_millis(300));
                let s = c.sample();
                let apple = s
                    .sources
                    .iter()
                    .find(|x| x.name == "apple")
                    .context("no apple source")?;
                if apple.state != anekit_metrics::SourceState::Ok {
                    bail!("apple source: {}", source_state(&apple.state));
                }
                let power: Vec<String> = s
                    .readings
                    .iter()
                    .filter(|r| r.metric == anekit_metrics::Metric::Power)
                    .map(|r| format!("{} {:.2} W", r.component, r.value))
                    .collect();
                Ok(format!(
                    "{} readings; power: {}",
                    s.readings.len(),
                    power.join(", ")
                ))
            })),
        }
        match missing(Feature::Smc) {
            Some(why) => out.push(not_applicable("apple.smc", what("apple.smc"), why)),
            None => out.push(check("apple.smc", what("apple.smc"), || {
                let smc = anekit_apple::smc::Smc::open()?;
                let t = smc.temperatures();
                let p = smc.system_power().ok();
                Ok(format!(
                    "{} temperature sensors; system power {}",
                    t.len(),
                    p.map_or("not readable".into(), |w| format!("{w:.2} W"))
                ))
            })),
        }
    }
    #[cfg(not(target_os = "macos"))]
    for name in ["apple.ioreport", "apple.smc"] {
        out.push(not_applicable(
            name,
            what(name),
            "IOReport and the SMC exist only on macOS".into(),
        ));
    }
}

/// Runs every check.
pub fn gather() -> Report {
    let mut checks = Vec::new();
    portable_checks(&mut checks);
    apple_checks(&mut checks);
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    Report {
        version: env!("CARGO_PKG_VERSION"),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        private_ane: cfg!(feature = "private-ane"),
        passed: count(Status::Pass),
        failed: count(Status::Fail),
        not_applicable: count(Status::NotApplicable),
        checks,
    }
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "anekit {} on {} {}{}\n\n",
        r.version,
        r.os,
        r.arch,
        if r.private_ane {
            " (with the direct Neural Engine backend)"
        } else {
            ""
        }
    );
    let rows: Vec<Vec<String>> = std::iter::once(vec![
        "check".into(),
        "status".into(),
        "time".into(),
        "result".into(),
    ])
    .chain(r.checks.iter().map(|c| {
        vec![
            c.name.clone(),
            match c.status {
                Status::Pass => "pass",
                Status::Fail => "FAIL",
                Status::NotApplicable => "n/a",
            }
            .to_string(),
            if c.status == Status::NotApplicable {
                String::new()
            } else {
                format!("{:.0} ms", c.ms)
            },
            c.error
                .clone()
                .or_else(|| c.detail.clone())
                .unwrap_or_default(),
        ]
    }))
    .collect();
    out.push_str(&crate::output::table(&rows, 0));
    out.push_str(&format!(
        "\n{} passed, {} failed, {} not applicable here.\n",
        r.passed, r.failed, r.not_applicable
    ));
    if r.failed > 0 {
        out.push_str(
            "Please attach the output of `anekit doctor --json` to a bug report \
             (https://github.com/anekit/anekit/issues).\n",
        );
    }
    out
}

/// Run `anekit doctor`.
pub fn run(args: &Args) -> Result<()> {
    let r = gather();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", text(&r));
    }
    if r.failed > 0 {
        bail!("{} of {} checks failed", r.failed, r.checks.len());
    }
    Ok(())
}
