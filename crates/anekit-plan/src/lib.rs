//! anekit-plan: the offline compute plan. Predicts, on any OS and before deployment, where
//! Core ML will place each operation of an ML Program (Neural Engine, GPU or CPU) on a given
//! Apple chip, what it will cost, and what to change; rewrites models to suit the Neural
//! Engine.
//!
//! - [`catalog`]: chips (A14 … A19 Pro, M1 … M6 with Pro/Max/Ultra), Neural Engine
//!   generations with their numeric cliffs, and cost constants — data with a source for every
//!   value, measured and derived figures told apart.
//! - [`calibration`]: the public hardware measurements (`data/measurements.json`) and the
//!   cost-model constants fitted on their micro-benchmarks only (`data/calibration.json`).
//! - [`rules`]: when an op cannot use the Neural Engine, per generation, with reason and
//!   source.
//! - [`graph`]: the op graph with shapes resolved at the inputs' default shapes.
//! - [`cost`]: FLOPs and bytes per op (padded Neural Engine layout), the calibrated Neural
//!   Engine time per op, roofline for GPU and CPU.
//! - [`placement`]: units per op for a compute-units setting, segments, switches, latency and
//!   energy on the Core ML or the direct Neural Engine path.
//! - [`flexible`]: range-flexible inputs made enumerated (`anekit optimize --enumerate`).
//! - [`device_plan`]: Core ML's own plan (`MLComputePlan`, read on a Mac) as placements,
//!   compared with the prediction.
//! - [`findings`]: problems with fixes.
//! - [`analyze`](mod@analyze): the whole analysis → [`report::Report`], rendered by
//!   [`render`] as text, JSON or a self-contained HTML page.
//! - [`rewrite`]: the Neural Engine rewrites behind `anekit optimize`.
//!
//! ```no_run
//! use anekit_mil::model::Model;
//! use anekit_plan::{Options, analyze_model};
//! let model = Model::open("model.mlpackage")?;
//! let report = analyze_model(&model, &Options { chip: "A15".into(), ..Options::default() })?;
//! println!("{:.2} ms, {:.0}% of ops on the ANE", report.estimate.latency_ms, 100.0 * report.coverage.ane_fraction_ops);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod analyze;
pub mod calibration;
pub mod catalog;
pub mod cost;
pub mod device_plan;
pub mod error;
pub mod findings;
pub mod flexible;
pub mod graph;
pub mod placement;
pub mod render;
pub mod report;
pub mod rewrite;
pub mod rules;

pub use analyze::{Options, analyze_model, analyze_program};
pub use catalog::Catalog;
pub use error::{PlanError, Result};
pub use placement::{ComputeUnits, ExecPath};
pub use report::Report;

/// The rewrites `anekit optimize` applies, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptimizeOptions {
    /// Convert an fp32-typed program to fp16 compute precision
    /// ([`anekit_mil::passes::Fp16ComputePrecision`], coremltools' `add_fp16_cast`; the same
    /// pass as `anekit compress --fp16`).
    pub fp16: bool,
    /// Rewrite linear layers as 1x1 convolutions ([`rewrite::LinearToConv`]).
    pub linear_to_conv: bool,
    /// Leave normalisation epsilons alone ([`rewrite::RaiseNormEpsilon`] is on by default).
    pub keep_epsilon: bool,
}

/// The pass pipeline for `options`: no-op removal, the chosen rewrites, dead-code
/// elimination; the program is validated after every pass.
pub fn optimize_passes(options: &OptimizeOptions) -> anekit_mil::passes::PassManager {
    use anekit_mil::passes::{DeadCodeElimination, Fp16ComputePrecision, PassManager, RemoveNoOps};
    let mut pm = PassManager::new();
    pm.add(RemoveNoOps);
    if options.fp16 {
        pm.add(Fp16ComputePrecision);
    }
    if !options.keep_epsilon {
        pm.add(rewrite::RaiseNormEpsilon::default());
    }
    if options.linear_to_conv {
        pm.add(rewrite::LinearToConv);
    }
    pm.add(DeadCodeElimination);
    pm
}
