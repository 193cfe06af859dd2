//! The quantization engine of anekit: compresses the weights of Core ML ML Programs the way
//! `coremltools.optimize.coreml` does — with the same math where it is deterministic (linear
//! quantization is bit-exact with coremltools) and optimal where coremltools is heuristic
//! (k-means palettization is solved exactly on the value histogram) — and much faster
//! (parallel over weights and channel groups).
//!
//! - [`linear`]: linear quantization (int8/uint8/int4/uint4, `linear` and
//!   `linear_symmetric`, per tensor / channel / block).
//! - [`palettize`]: palettization (`kmeans`, `uniform`, `unique`; 1–8 bits; per tensor or
//!   per grouped channel; per-channel scale; vector palettization).
//! - [`kmeans`]: exact 1-D k-means by dynamic programming; vector k-means.
//! - [`neuralnetwork`]: NeuralNetwork models compressed in their own format, as
//!   coremltools' `quantize_weights` does (fp16, linear, k-means and linear LUTs).
//! - [`prune`]: magnitude (threshold, target sparsity, block-structured) and n:m pruning.
//! - [`config`]: what to compress (global / by op type / by op name), TOML form;
//!   [`flags`]: the flat command-line form and the decisions that make it a [`Config`].
//! - [`stage`]: prune, palettize and quantize as [`Stage`]s of one weight (select /
//!   compress / describe / emit), the joint iOS18 modes as their [`Composition`]s.
//! - [`pass`]: the program pass: selection, parallel compression, and replacement of each
//!   `const` by the `constexpr_*` ops of the function's opset ([`emit`]).
//! - [`fp16`]: fp32 → fp16 compute-precision conversion of fp32 models (anekit-mil's
//!   [`anekit_mil::passes::fp16`] pass with this crate's error type).
//!
//! Dependencies beyond the workspace's IR and format crates: `half` (fp16 rounding that
//! reproduces numpy's float16 arithmetic), `rayon` (parallelism over weights and groups),
//! `toml` + `serde` (configuration files), `thiserror`, `tracing`.

#![forbid(unsafe_code)]

pub mod config;
pub mod emit;
pub mod error;
pub mod flags;
pub mod fp16;
pub mod kmeans;
pub mod linear;
pub mod neuralnetwork;
pub mod palettize;
pub mod pass;
pub mod prune;
pub mod stage;
pub mod tensor;

pub use config::{
    Config, LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig, QuantGranularity,
    Selection,
};
pub use error::{CompressError, Result};
pub use flags::{Flags, Granularity, NOfM};
pub use linear::{QuantDtype, QuantMode};
pub use palettize::PaletteMode;
pub use pass::{NoProgress, Progress, Report, Skipped, WeightReport, compress_program};
pub use prune::PruneMethod;
pub use stage::{Composition, Stage};

use anekit_mil::model::Model;

/// Compress `model` in place as `config` says: the fp16 stage first (if asked: fp32 compute
/// precision becomes fp16, see [`fp16`]), then pruning, palettization and quantization of the
/// weights, which are then fp16. The model must be an ML Program.
pub fn compress_model(
    model: &mut Model,
    config: &Config,
    progress: &dyn Progress,
) -> Result<Report> {
    config.validate()?;
    let program = model
        .program
        .as_mut()
        .ok_or_else(|| CompressError::Unsupported("the model is not an ML Program".into()))?;
    let fp16 = if config.fp16 {
        Some(fp16::convert(program)?)
    } else {
        None
    };
    let mut report = compress_program(program, config, progress)?;
    report.fp16_ops = fp16.as_ref().map_or(0, |r| r.ops);
    report.fp16 = fp16;
    Ok(report)
}
