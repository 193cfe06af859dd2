//! Calibration of the Neural Engine cost model on public hardware measurements, with an
//! honest split: the constants are fitted on micro-benchmarks only (one-op programs and
//! synthetic stacks of one repeated op, `data/measurements.json`: `one_op` and `blocks`),
//! and whole models (`whole_models`, Apple's published Core ML latencies) are kept for
//! validation, never fitted (`scripts/make_estimator_models.py` reports those errors in
//! `docs/analyze.md`).
//!
//! - [`Measurements`]: the public numbers, transcribed with their sources (ANEForge's
//!   rooflines, one-op curves and watt-complete runs; maderix's community results).
//! - [`micro_points`]: each micro-benchmark as the Neural Engine program anekit would cost —
//!   the same [`OpCost`] values [`crate::cost::op_cost`] derives from a MIL program, checked
//!   against it in `tests/calibration.rs`.
//! - [`fit`]: a Nelder–Mead search for the [`AneModel`] constants that minimise the squared
//!   log error of the predicted latencies, and a least-squares fit of the [`EnergyModel`] on
//!   the measured package energy of the same micro-benchmarks.
//! - [`Calibration::builtin`]: the committed result (`data/calibration.json`), written by
//!   `cargo run -p anekit-plan --example calibrate` (`scripts/calibrate.sh`).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value as J;

use crate::catalog::{Catalog, Chip, ChipPerf, Generation};
use crate::cost::{Act, AneClass, OpCost, ane_op_time, ane_weight_bytes};
use crate::error::{PlanError, Result};

/// The calibrated constants of the Neural Engine latency model ([`crate::cost::ane_op_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AneModel {
    /// Linear layers (a constant operand) reach this multiple of the measured GEMM peak.
    pub linear_vs_gemm: f64,
    /// Convolutions reach this multiple of the measured GEMM peak.
    pub conv_vs_gemm: f64,
    /// Products of two run-time tensors reach this multiple of the measured GEMM peak.
    pub matmul_vs_gemm: f64,
    /// Tensors of convolutions and matrix products kept inside a program (while the op's
    /// tensors fit the on-chip buffer) move at this multiple of the streaming bandwidth.
    pub onchip_factor: f64,
    /// The same for element-wise, normalisation, softmax, pooling and data-movement ops.
    pub onchip_factor_elementwise: f64,
    /// Fixed cost of every op inside a program, µs.
    pub op_overhead_us: f64,
    /// Traffic factor of layer normalisation (1 = one streaming pass per tensor).
    pub layer_norm: f64,
    /// Traffic factor of instance, batch and group normalisation.
    pub group_norm: f64,
    /// Traffic factor of L2 and local-response normalisation.
    pub l2_norm: f64,
    /// Traffic factor of softmax.
    pub softmax: f64,
    /// Traffic factor of pooling.
    pub pool: f64,
    /// Traffic factor of reductions. No one-op measurement of a bare reduction is public:
    /// fixed at 1 (one streaming pass), not fitted.
    pub reduce: f64,
    /// Traffic factor of data movement (fitted on pixel shuffle).
    pub data_movement: f64,
    /// A convolution or matrix product inside a program, with none of its tensors crossing
    /// the program boundary and its largest operand (weights included) in the on-chip
    /// working set, computes at this multiple of its class roof (a fused chain runs above
    /// the rate of the same layer as a one-op program: ane-guide, chapter 9). Bounded to
    /// 1–4; 1 in calibrations written before round 5.
    #[serde(default = "unity")]
    pub fused_vs_single: f64,
}

fn unity() -> f64 {
    1.0
}

impl AneModel {
    /// The traffic factor of `class` (element-wise ops are the unit).
    pub fn traffic(&self, class: AneClass) -> f64 {
        match class {
            AneClass::LayerNorm => self.layer_norm,
            AneClass::GroupNorm => self.group_norm,
            AneClass::L2Norm => self.l2_norm,
            AneClass::Softmax | AneClass::Attention => self.softmax,
            AneClass::Pool => self.pool,
            AneClass::Reduce => self.reduce,
            AneClass::DataMovement => self.data_movement,
            AneClass::Conv | AneClass::Linear | AneClass::Matmul | AneClass::Elementwise => 1.0,
        }
    }

    /// Model constants before fitting (the starting point of the search).
    pub fn initial() -> Self {
        Self {
            linear_vs_gemm: 1.5,
            conv_vs_gemm: 2.5,
            matmul_vs_gemm: 1.0,
            onchip_factor: 8.0,
            onchip_factor_elementwise: 8.0,
            op_overhead_us: 2.0,
            layer_norm: 3.0,
            group_norm: 2.0,
            l2_norm: 1.5,
            softmax: 1.5,
            pool: 1.5,
            reduce: 1.0,
            data_movement: 1.0,
            fused_vs_single: 1.5,
        }
    }
}

/// The calibrated energy model: package energy of a Neural Engine prediction.
///
/// ```text
/// E = t · active_w  +  (flops · flop_factor + conv flops · conv_flop_factor) / (perf_per_w · 1e9)
///                   +  weight bytes · weight_pj · 1e-12   [J]
/// ```
/// `active_w` covers the Neural Engine's own base power while it runs and the CPU that
/// dispatches to it; `perf_per_w` is the chip's measured peak GEMM GFLOP/s per package watt.
/// Convolution FLOPs have their own factor: a convolution reaches about twice the GEMM
/// peak at a similar power (ANEForge's conv and GEMM sweeps with per-rail watts), so a
/// convolution's FLOP costs less energy than a matrix product's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyModel {
    /// Package power while a Neural Engine program runs, independent of its work, W.
    pub active_w: f64,
    /// Energy per FLOP of everything but convolutions, as a multiple of the chip's
    /// peak-GEMM energy per FLOP.
    pub flop_factor: f64,
    /// Energy per convolution FLOP, as a multiple of the chip's peak-GEMM energy per FLOP.
    #[serde(default)]
    pub conv_flop_factor: f64,
    /// DRAM energy per weight byte streamed, pJ.
    pub weight_pj_per_byte: f64,
}

/// One micro-benchmark's fit result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitPoint {
    /// What was measured (`linear 64x256x256 on M5`).
    pub id: String,
    /// The chip.
    pub chip: String,
    /// Source key of `data/measurements.json`.
    pub source: String,
    /// Measured value (µs, or mJ for energy).
    pub measured: f64,
    /// The calibrated model's value.
    pub model: f64,
    /// `model / measured − 1`.
    pub error: f64,
}

/// The fit errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// Latency points.
    pub latency: Vec<FitPoint>,
    /// Median absolute relative latency error.
    pub latency_median_abs_error: f64,
    /// Largest absolute relative latency error.
    pub latency_max_abs_error: f64,
    /// Energy points.
    pub energy: Vec<FitPoint>,
    /// Median absolute relative energy error.
    pub energy_median_abs_error: f64,
    /// Largest absolute relative energy error.
    pub energy_max_abs_error: f64,
    /// Measurements left out of the fit, and why.
    pub excluded: Vec<String>,
}

/// The committed calibration (`data/calibration.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Format version.
    pub schema: u32,
    /// How it was made.
    pub note: String,
    /// Neural Engine latency constants.
    pub ane: AneModel,
    /// Neural Engine energy constants.
    pub energy: EnergyModel,
    /// Errors of the fit on the micro-benchmarks it was fitted on.
    pub fit: FitSummary,
}

/// The calibration's JSON text.
pub const CALIBRATION_JSON: &str = include_str!("../data/calibration.json");

/// The measurements' JSON text.
pub const MEASUREMENTS_JSON: &str = include_str!("../data/measurements.json");

impl Calibration {
    /// The calibration built into anekit (parsed once).
    pub fn builtin() -> &'static Calibration {
        static CAL: OnceLock<Calibration> = OnceLock::new();
        CAL.get_or_init(|| match serde_json::from_str(CALIBRATION_JSON) {
            Ok(c) => c,
            Err(e) => {
                // The embedded file is checked by the test suite; the starting constants
                // keep a broken build usable instead of panicking.
                tracing::error!("built-in calibration is invalid: {e}");
                Calibration {
                    schema: 1,
                    note: String::new(),
                    ane: AneModel::initial(),
                    energy: EnergyModel {
                        active_w: 3.0,
                        flop_factor: 1.0,
                        conv_flop_factor: 1.0,
                        weight_pj_per_byte: 0.0,
                    },
                    fit: FitSummary::default(),
                }
            }
        })
    }
}

/// The public measurements (`data/measurements.json`), kept as JSON rows: their fields differ
/// per workload.
#[derive(Debug, Clone, Deserialize)]
pub struct Measurements {
    /// Source key → reference (repository, commit, path).
    pub sources: std::collections::BTreeMap<String, String>,
    /// Per-machine headline figures.
    pub machines: Vec<J>,
    /// One-op programs.
    pub one_op: Vec<J>,
    /// Synthetic multi-op programs (stacks of one op, an attention block).
    pub blocks: Vec<J>,
    /// Whole real models (validation only).
    pub whole_models: Vec<J>,
    /// ANEForge's sweep of the MIL vocabulary: which op types compile and run as one-op
    /// Neural Engine programs.
    pub vocabulary_sweep: VocabularySweep,
}

/// Which MIL op types compiled and ran as one-op Neural Engine programs (ANEForge).
#[derive(Debug, Clone, Deserialize)]
pub struct VocabularySweep {
    /// Source key.
    pub source: String,
    /// Compiled and ran.
    pub reachable: Vec<String>,
    /// Did not compile (not implemented on the ANE, or compile-walled).
    pub not_reachable: Vec<String>,
}

/// The per-op-type agreement of `anekit_plan::rules` (the `Neural Engine` column of
/// docs/op-coverage.md) with the hardware sweep: `(agreeing op types, compared op types,
/// disagreements as (op, anekit's cell, reachable on hardware))`. ANEForge's three GELU
/// variants are MIL's one `gelu` op.
pub fn sweep_agreement(sweep: &VocabularySweep) -> (usize, usize, Vec<(String, String, bool)>) {
    let column = crate::rules::coverage_column();
    let mut seen = std::collections::BTreeMap::new();
    let all = sweep
        .reachable
        .iter()
        .map(|o| (o, true))
        .chain(sweep.not_reachable.iter().map(|o| (o, false)));
    for (op, reachable) in all {
        let op = if op.starts_with("gelu_") {
            "gelu"
        } else {
            op.as_str()
        };
        seen.entry(op.to_string()).or_insert(reachable);
    }
    let mut agree = 0;
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for (op, reachable) in seen {
        let Some(cell) = column.cells.get(&op) else {
            continue;
        };
        compared += 1;
        let ours = cell.starts_with("yes") || cell == "compile time";
        if ours == reachable {
            agree += 1;
        } else {
            disagreements.push((op, cell.clone(), reachable));
        }
    }
    (agree, compared, disagreements)
}

impl Measurements {
    /// Parse the measurements.
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| PlanError::Catalog(format!("measurements: {e}")))
    }

    /// The built-in measurements.
    pub fn builtin() -> Result<Self> {
        Self::parse(MEASUREMENTS_JSON)
    }
}

/// A Neural Engine workload as anekit costs it: programs of ops, each program paying one
/// dispatch floor; tensors named in `external` are program inputs or outputs.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// The programs, in order.
    pub programs: Vec<Vec<OpCost>>,
    /// Values that cross a program boundary.
    pub external: BTreeSet<String>,
}

/// A micro-benchmark: the workload, where it ran, what was measured.
#[derive(Debug, Clone)]
pub struct MicroPoint {
    /// Description.
    pub id: String,
    /// Catalog chip name.
    pub chip: String,
    /// Source key.
    pub source: String,
    /// The workload.
    pub workload: Workload,
    /// Measured time per call, µs: the minimum latency, or the sustained-loop time per call
    /// where that is lower ([`per_call_us`]).
    pub us: f64,
    /// Measured package energy per call (package W × sustained-loop time), mJ, if measured.
    pub energy_mj: Option<f64>,
    /// The sustained-loop time per call, µs, if measured.
    pub iter_us: Option<f64>,
}

fn act(value: &str, shape: &[u64], output: bool) -> Act {
    Act {
        value: value.to_string(),
        shape: shape.to_vec(),
        elem: 2.0,
        output,
    }
}

fn elems(shape: &[u64]) -> f64 {
    shape.iter().map(|d| *d as f64).product()
}

/// A linear layer `y[m, n] = x[m, k] · W[n, k]ᵀ` with fp16 weights.
pub fn linear_op(m: u64, k: u64, n: u64, x: &str, y: &str) -> OpCost {
    OpCost {
        flops: 2.0 * (m * k * n) as f64,
        input_bytes: 2.0 * (m * k) as f64,
        output_bytes: 2.0 * (m * n) as f64,
        activations: vec![act(x, &[m, k], false), act(y, &[m, n], true)],
        weight_bytes: 2.0 * (k * n) as f64,
        weight_dense_bytes: 2.0 * (k * n) as f64,
        class: AneClass::Linear,
        ..OpCost::default()
    }
}

/// A convolution (`groups` = 1, same padding) with fp16 weights.
#[allow(clippy::too_many_arguments)]
pub fn conv_op(
    b: u64,
    cin: u64,
    cout: u64,
    h: u64,
    w: u64,
    k: u64,
    stride: u64,
    x: &str,
    y: &str,
) -> OpCost {
    let s = stride.max(1);
    let (ho, wo) = (h.div_ceil(s), w.div_ceil(s));
    let out = [b, cout, ho, wo];
    OpCost {
        flops: 2.0 * elems(&out) * (cin * k * k) as f64,
        input_bytes: 2.0 * (b * cin * h * w) as f64,
        output_bytes: 2.0 * elems(&out),
        activations: vec![act(x, &[b, cin, h, w], false), act(y, &out, true)],
        weight_bytes: 2.0 * (cout * cin * k * k) as f64,
        weight_dense_bytes: 2.0 * (cout * cin * k * k) as f64,
        class: AneClass::Conv,
        ..OpCost::default()
    }
}

/// A product of two run-time tensors `y[b, m, n] = a[b, m, k] · c[b, k, n]`.
pub fn matmul_op(batch: u64, m: u64, k: u64, n: u64, a: &str, c: &str, y: &str) -> OpCost {
    OpCost {
        flops: 2.0 * (batch * m * k * n) as f64,
        input_bytes: 2.0 * (batch * m * k + batch * k * n) as f64,
        output_bytes: 2.0 * (batch * m * n) as f64,
        activations: vec![
            act(a, &[batch, m, k], false),
            act(c, &[batch, k, n], false),
            act(y, &[batch, m, n], true),
        ],
        class: AneClass::Matmul,
        ..OpCost::default()
    }
}

/// A one-input, one-output op of `class` over `shape` (`inputs` extra same-shape inputs).
pub fn unary_op(class: AneClass, shape: &[u64], inputs: &[&str], y: &str) -> OpCost {
    let n = elems(shape);
    let mut activations: Vec<Act> = inputs.iter().map(|x| act(x, shape, false)).collect();
    activations.push(act(y, shape, true));
    OpCost {
        flops: n,
        input_bytes: 2.0 * n * inputs.len() as f64,
        output_bytes: 2.0 * n,
        activations,
        class,
        data_movement: class == AneClass::DataMovement,
        ..OpCost::default()
    }
}

/// An activation fused into its producer.
pub fn fused_op() -> OpCost {
    OpCost {
        fused: true,
        ..OpCost::default()
    }
}

/// The predicted time of `w` on `chip`, µs.
pub fn workload_us(
    w: &Workload,
    perf: &ChipPerf,
    generation: &Generation,
    model: &AneModel,
) -> f64 {
    let ext = |a: &Act| w.external.contains(&a.value);
    w.programs
        .iter()
        .map(|p| {
            perf.ane_dispatch_us
                + p.iter()
                    .map(|c| ane_op_time(c, perf, generation, model, &ext).us)
                    .sum::<f64>()
        })
        .sum()
}

/// The work of a Neural Engine run, as the energy model counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// FLOPs of every op but convolutions.
    pub flops: f64,
    /// FLOPs of convolutions.
    pub conv_flops: f64,
    /// Weight bytes streamed.
    pub weight_bytes: f64,
}

impl Work {
    /// Count `c` (on `generation`).
    pub fn add(&mut self, c: &OpCost, generation: &Generation) {
        if c.class == AneClass::Conv {
            self.conv_flops += c.flops;
        } else {
            self.flops += c.flops;
        }
        self.weight_bytes += ane_weight_bytes(c, generation);
    }
}

/// The work of `w`.
pub fn workload_work(w: &Workload, generation: &Generation) -> Work {
    let mut work = Work::default();
    for c in w.programs.iter().flatten() {
        work.add(c, generation);
    }
    work
}

/// The package energy of a Neural Engine run of `t_us` doing `work`, mJ.
pub fn energy_mj(e: &EnergyModel, perf: &ChipPerf, t_us: f64, work: &Work) -> f64 {
    let j_per_gemm_flop = 1.0 / (perf.ane_perf_per_w.max(1.0) * 1e9);
    t_us * 1e-3 * e.active_w
        + (work.flops * e.flop_factor + work.conv_flops * e.conv_flop_factor)
            * j_per_gemm_flop
            * 1e3
        + work.weight_bytes * e.weight_pj_per_byte * 1e-9
}

fn num(r: &J, k: &str) -> Option<f64> {
    r.get(k).and_then(J::as_f64)
}

fn int(r: &J, k: &str) -> Option<u64> {
    r.get(k).and_then(J::as_u64)
}

fn shape_of(r: &J) -> Option<Vec<u64>> {
    r.get("shape")?
        .as_array()?
        .iter()
        .map(J::as_u64)
        .collect::<Option<Vec<u64>>>()
}

fn ext(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn one_program(ops: Vec<OpCost>, external: &[&str]) -> Workload {
    Workload {
        programs: vec![ops],
        external: ext(external),
    }
}

/// A one-op row as a workload, or why it is left out.
fn one_op_workload(r: &J) -> std::result::Result<(String, Workload), String> {
    let op = r.get("op").and_then(J::as_str).unwrap_or("?");
    let need = |k: &str| int(r, k).ok_or_else(|| format!("{op}: no `{k}`"));
    Ok(match op {
        "linear" => {
            let (m, k, n) = (need("m")?, need("k")?, need("n")?);
            (
                format!("linear {m}x{k}x{n}"),
                one_program(vec![linear_op(m, k, n, "x", "y")], &["x", "y"]),
            )
        }
        "conv" => {
            let (b, cin, cout, h, w, k, s) = (
                need("b")?,
                need("cin")?,
                need("cout")?,
                need("h")?,
                need("w")?,
                need("k")?,
                need("stride")?,
            );
            let mut ops = vec![conv_op(b, cin, cout, h, w, k, s, "x", "y")];
            if r.get("relu").and_then(J::as_bool) == Some(true) {
                ops.push(fused_op());
            }
            (
                format!("conv {cin}->{cout} {k}x{k}/{s} {h}x{w} b{b}"),
                one_program(ops, &["x", "y"]),
            )
        }
        "sdpa" => {
            return Err(format!(
                "sdpa H={} S={} D={}: runs through ANEForge's netplist bridge, not a lowered MIL program",
                int(r, "heads").unwrap_or(0),
                int(r, "seq").unwrap_or(0),
                int(r, "head_dim").unwrap_or(0)
            ));
        }
        _ => {
            let shape = shape_of(r).ok_or_else(|| format!("{op}: no shape"))?;
            let class = match op {
                "relu" | "gelu" | "sigmoid" => AneClass::Elementwise,
                "softmax" => AneClass::Softmax,
                "layer_norm" => AneClass::LayerNorm,
                "group_norm" => AneClass::GroupNorm,
                "l2_norm" => AneClass::L2Norm,
                "max_pool" | "avg_pool" => AneClass::Pool,
                "pixel_shuffle" => AneClass::DataMovement,
                "rms_norm" => {
                    return Err(format!(
                        "rms_norm {shape:?}: MIL has no RMS-norm op (coremltools lowers it to element-wise ops and a reduction, each costed on its own)"
                    ));
                }
                other => {
                    return Err(format!(
                        "{other} {shape:?}: runs through ANEForge's netplist bridge, not a lowered MIL program"
                    ));
                }
            };
            (
                format!("{op} {shape:?}"),
                one_program(vec![unary_op(class, &shape, &["x"], "y")], &["x", "y"]),
            )
        }
    })
}

/// A block row as a workload (the op sequence ANEForge's harness builds, `AF-DEV-SCRIPT`).
fn block_workload(r: &J) -> std::result::Result<(String, Workload), String> {
    let name = r.get("block").and_then(J::as_str).unwrap_or("?");
    let need = |k: &str| int(r, k).ok_or_else(|| format!("{name}: no `{k}`"));
    Ok(match name {
        "conv_stack" => {
            let (cin, cout, h, w, k, depth) = (
                need("cin")?,
                need("cout")?,
                need("h")?,
                need("w")?,
                need("k")?,
                need("depth")?,
            );
            let mut ops = Vec::new();
            for d in 0..depth {
                let ci = if d == 0 { cin } else { cout };
                ops.push(conv_op(
                    1,
                    ci,
                    cout,
                    h,
                    w,
                    k,
                    1,
                    &format!("t{d}"),
                    &format!("t{}", d + 1),
                ));
                ops.push(fused_op());
            }
            (
                format!("conv stack {cin}->{cout} x{depth} {h}x{w}"),
                one_program(ops, &["t0", &format!("t{depth}")]),
            )
        }
        "attention" => {
            let (s, d, h) = (need("seq")?, need("dim")?, need("heads")?);
            let dh = d / h.max(1);
            // As coremltools lowers multi-head attention: projections, heads split by
            // reshape + transpose, two products, heads merged back.
            let dm =
                |x: &str, y: &str, shape: &[u64]| unary_op(AneClass::DataMovement, shape, &[x], y);
            let ops = vec![
                linear_op(s, d, d, "x", "q"),
                linear_op(s, d, d, "x", "k"),
                linear_op(s, d, d, "x", "v"),
                dm("q", "qr", &[s, h, dh]),
                dm("qr", "qh", &[h, s, dh]),
                dm("k", "kr", &[s, h, dh]),
                dm("kr", "kh", &[h, s, dh]),
                dm("v", "vr", &[s, h, dh]),
                dm("vr", "vh", &[h, s, dh]),
                matmul_op(h, s, dh, s, "qh", "kh", "scores"),
                unary_op(AneClass::Softmax, &[h, s, s], &["scores"], "p"),
                matmul_op(h, s, s, dh, "p", "vh", "oh"),
                dm("oh", "ot", &[s, h, dh]),
                dm("ot", "o", &[s, d]),
                linear_op(s, d, d, "o", "y"),
            ];
            (
                format!("attention S={s} D={d} H={h}"),
                one_program(ops, &["x", "y"]),
            )
        }
        "dft_matmul" => {
            let n = need("n")?;
            (
                format!("DFT as two {n}x{n} linear programs"),
                Workload {
                    programs: vec![
                        vec![linear_op(1, n, n, "x", "re")],
                        vec![linear_op(1, n, n, "x", "im")],
                    ],
                    external: ext(&["x", "re", "im"]),
                },
            )
        }
        "stencil" => {
            let (h, w, steps) = (need("h")?, need("w")?, need("steps")?);
            let ops = (0..steps)
                .map(|i| {
                    conv_op(
                        1,
                        1,
                        1,
                        h,
                        w,
                        3,
                        1,
                        &format!("u{i}"),
                        &format!("u{}", i + 1),
                    )
                })
                .collect();
            (
                format!("stencil {h}x{w} x{steps}"),
                one_program(ops, &["u0", &format!("u{steps}")]),
            )
        }
        "jacobi" => {
            let (n, iters) = (need("n")?, need("iters")?);
            let mut ops = Vec::new();
            for i in 0..iters {
                // Every iteration streams R again: ANEForge's graph has one linear op per
                // iteration, and the measured time per iteration is R's bytes at the chip's
                // Neural Engine weight bandwidth on all three machines (M1 Max 11.4 µs vs
                // 0.52 MB / 55 GB/s = 9.5 µs, M2 Pro 9.7 vs 8.7, M5 Pro 3.8 vs 3.4).
                ops.push(linear_op(1, n, n, &format!("x{i}"), &format!("r{i}")));
                // b - R·x and its scale by D⁻¹ ride on the linear's output (fused).
                let mut sub = unary_op(
                    AneClass::Elementwise,
                    &[1, n],
                    &["b", &format!("r{i}")],
                    &format!("s{i}"),
                );
                sub.fused = true;
                sub.fused_input = Some(format!("r{i}"));
                ops.push(sub);
                let mut scale = unary_op(
                    AneClass::Elementwise,
                    &[1, n],
                    &[&format!("s{i}"), "d"],
                    &format!("x{}", i + 1),
                );
                scale.fused = true;
                scale.fused_input = Some(format!("s{i}"));
                ops.push(scale);
            }
            (
                format!("jacobi n={n} x{iters}"),
                one_program(ops, &["x0", "b", "d", &format!("x{iters}")]),
            )
        }
        "conv_norm_gelu" => {
            // ANEForge's below-ridge fusion block: a 1x1 conv, a group norm and two GELUs on
            // [1, C, H, W], fused into one program.
            let (c, h, w) = (need("c")?, need("h")?, need("w")?);
            let shape = [1, c, h, w];
            let ops = vec![
                conv_op(1, c, c, h, w, 1, 1, "x", "a"),
                unary_op(AneClass::GroupNorm, &shape, &["a"], "b"),
                unary_op(AneClass::Elementwise, &shape, &["b"], "g"),
                unary_op(AneClass::Elementwise, &shape, &["g"], "y"),
            ];
            (
                format!("conv1x1+group_norm+gelu+gelu {c}ch {h}x{w}"),
                one_program(ops, &["x", "y"]),
            )
        }
        "conv_chain" => {
            // ANEForge's chaining demo: `depth` 3x3 convs with ReLU on [1, C, H, W], then a
            // spatial mean, fused into one program.
            let (c, h, w, depth) = (need("c")?, need("h")?, need("w")?, need("depth")?);
            let mut ops = Vec::new();
            for d in 0..depth {
                ops.push(conv_op(
                    1,
                    c,
                    c,
                    h,
                    w,
                    3,
                    1,
                    &format!("t{d}"),
                    &format!("t{}", d + 1),
                ));
                ops.push(fused_op());
            }
            let last = format!("t{depth}");
            let mut mean = unary_op(AneClass::Reduce, &[1, c, h, w], &[&last], "m");
            if let Some(out) = mean.activations.last_mut() {
                out.shape = vec![1, c, 1, 1];
            }
            mean.output_bytes = 2.0 * c as f64;
            ops.push(mean);
            (
                format!("conv chain {c}ch {h}x{w} x{depth}"),
                one_program(ops, &["t0", "m"]),
            )
        }
        other => return Err(format!("unknown block {other}")),
    })
}

/// Every micro-benchmark of `m` as a costed workload, and the rows left out with the reason.
pub fn micro_points(m: &Measurements) -> (Vec<MicroPoint>, Vec<String>) {
    let mut out = Vec::new();
    let mut excluded = Vec::new();
    let rows = m
        .one_op
        .iter()
        .map(|r| (r, one_op_workload(r)))
        .chain(m.blocks.iter().map(|r| (r, block_workload(r))));
    for (r, w) in rows {
        let chip = r.get("chip").and_then(J::as_str).unwrap_or("?").to_string();
        let source = r
            .get("source")
            .and_then(J::as_str)
            .unwrap_or("?")
            .to_string();
        match w {
            Ok((id, workload)) => {
                let energy_mj = match (num(r, "pkg_w"), num(r, "iter_ms")) {
                    (Some(w), Some(t)) => Some(w * t),
                    _ => None,
                };
                out.push(MicroPoint {
                    id: format!("{id} on {chip}"),
                    chip,
                    source,
                    workload,
                    us: per_call_us(num(r, "us").unwrap_or(0.0), num(r, "iter_ms")),
                    energy_mj,
                    iter_us: num(r, "iter_ms").map(|t| t * 1e3),
                });
            }
            Err(why) => excluded.push(format!("{why} ({chip}, {source})")),
        }
    }
    (out, excluded)
}

/// The time per call of a micro-benchmark: its measured minimum latency, or its sustained-loop
/// time per call (`iter_ms`) where that is lower. ANEForge's watt-complete harness reports
/// the minimum over a few repetitions as the latency and times the same call in a loop of at
/// least 6 s for the energy; a loop cannot average below the fastest single call at the same
/// clocks, so where it does (the M2 Pro's stencil: 371 µs minimum, 238 µs per call in the
/// loop) the short run did not reach the loop's steady state, and the loop is the better
/// measure of what the engine does. The whole-model validation rows keep their published
/// latencies.
pub fn per_call_us(min_us: f64, iter_ms: Option<f64>) -> f64 {
    match iter_ms {
        Some(t) if t > 0.0 => min_us.min(t * 1e3),
        _ => min_us,
    }
}

fn chip_and_generation<'c>(catalog: &'c Catalog, name: &str) -> Option<(&'c Chip, &'c Generation)> {
    let c = catalog.chip(name)?;
    Some((c, catalog.generation_of(c)?))
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The parameter vector of the search (log of every positive constant, the overhead as is).
fn to_vec(m: &AneModel) -> Vec<f64> {
    vec![
        m.linear_vs_gemm.ln(),
        m.conv_vs_gemm.ln(),
        m.matmul_vs_gemm.ln(),
        m.onchip_factor.ln(),
        m.onchip_factor_elementwise.ln(),
        m.op_overhead_us.max(1e-3).ln(),
        m.layer_norm.ln(),
        m.group_norm.ln(),
        m.l2_norm.ln(),
        m.softmax.ln(),
        m.pool.ln(),
        m.reduce.ln(),
        m.data_movement.ln(),
        m.fused_vs_single.ln(),
    ]
}

/// Bounds of every constant (physically plausible ranges; the search cannot leave them).
const BOUNDS: [(f64, f64); 14] = [
    (0.2, 10.0),  // linear_vs_gemm
    (0.2, 10.0),  // conv_vs_gemm
    (0.2, 1.0),   // matmul_vs_gemm: no faster than the measured GEMM peak
    (1.0, 100.0), // onchip_factor
    (1.0, 100.0), // onchip_factor_elementwise
    (0.01, 50.0), // op_overhead_us
    (0.2, 20.0),  // layer_norm
    (0.2, 20.0),  // group_norm
    (0.2, 20.0),  // l2_norm
    (0.2, 20.0),  // softmax
    (0.2, 20.0),  // pool
    (1.0, 1.0),   // reduce: not fitted (no measurement)
    (0.2, 20.0),  // data_movement
    (1.0, 4.0),   // fused_vs_single: fusion never slows a layer down
];

fn from_vec(v: &[f64]) -> AneModel {
    let e = |i: usize| {
        let (lo, hi) = BOUNDS.get(i).copied().unwrap_or((1e-6, 1e6));
        v.get(i).copied().unwrap_or(0.0).exp().clamp(lo, hi)
    };
    AneModel {
        linear_vs_gemm: e(0),
        conv_vs_gemm: e(1),
        matmul_vs_gemm: e(2),
        onchip_factor: e(3),
        onchip_factor_elementwise: e(4),
        op_overhead_us: e(5),
        layer_norm: e(6),
        group_norm: e(7),
        l2_norm: e(8),
        softmax: e(9),
        pool: e(10),
        reduce: e(11),
        data_movement: e(12),
        fused_vs_single: e(13),
    }
}

/// Nelder–Mead minimisation of `f` from `x0` (standard coefficients; `iters` evaluations at
/// most).
fn nelder_mead(f: &dyn Fn(&[f64]) -> f64, x0: &[f64], step: f64, iters: usize) -> Vec<f64> {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((x0.to_vec(), f(x0)));
    for i in 0..n {
        let mut x = x0.to_vec();
        if let Some(v) = x.get_mut(i) {
            *v += step;
        }
        let fx = f(&x);
        simplex.push((x, fx));
    }
    let mut evals = n + 1;
    while evals < iters {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if (worst - best).abs() < 1e-12 * (1.0 + best.abs()) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let along = |t: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[n].0)
                .map(|(c, w)| c + t * (w - c))
                .collect()
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        evals += 1;
        if fr < simplex[0].1 {
            let xe = along(-2.0);
            let fe = f(&xe);
            evals += 1;
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let xc = if fr < worst { along(-0.5) } else { along(0.5) };
            let fc = f(&xc);
            evals += 1;
            if fc < worst.min(fr) {
                simplex[n] = (xc, fc);
            } else {
                let x0 = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    s.0 = x0
                        .iter()
                        .zip(&s.0)
                        .map(|(a, b)| a + 0.5 * (b - a))
                        .collect();
                    s.1 = f(&s.0);
                    evals += 1;
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0).0
}

/// Fit the model on the micro-benchmarks of `m` with the chip figures of `catalog`.
pub fn fit(m: &Measurements, catalog: &Catalog) -> Result<Calibration> {
    let (points, mut excluded) = micro_points(m);
    let mut usable = Vec::new();
    for p in points {
        match chip_and_generation(catalog, &p.chip) {
            Some((chip, generation)) if p.us > 0.0 => {
                usable.push((p, catalog.perf(chip), generation.clone()));
            }
            _ => excluded.push(format!("{}: chip not in the catalog or no time", p.id)),
        }
    }
    if usable.len() < 12 {
        return Err(PlanError::Catalog(format!(
            "only {} usable micro-benchmarks",
            usable.len()
        )));
    }
    let loss = |v: &[f64]| -> f64 {
        let model = from_vec(v);
        usable
            .iter()
            .map(|(p, perf, g)| {
                let t = workload_us(&p.workload, perf, g, &model);
                (t / p.us).ln().powi(2)
            })
            .sum()
    };
    // Restarts from the best point so far shrink the simplex around it again.
    let mut x = to_vec(&AneModel::initial());
    for _ in 0..6 {
        x = nelder_mead(&loss, &x, 0.5, 6000);
    }
    let model = from_vec(&x);

    let mut latency = Vec::new();
    for (p, perf, g) in &usable {
        let t = workload_us(&p.workload, perf, g, &model);
        latency.push(FitPoint {
            id: p.id.clone(),
            chip: p.chip.clone(),
            source: p.source.clone(),
            measured: round(p.us, 3),
            model: round(t, 1),
            error: round(t / p.us - 1.0, 4),
        });
    }

    // Energy: linear least squares in (active_w, flop_factor, weight_pj), on the measured
    // sustained-loop time per call (so latency errors do not leak into the power fit).
    let rows: Vec<(f64, [f64; NE], String, String, String)> = usable
        .iter()
        .filter_map(|(p, perf, g)| {
            let (e, t) = (p.energy_mj?, p.iter_us?);
            let w = workload_work(&p.workload, g);
            let gemm = 1.0 / (perf.ane_perf_per_w.max(1.0) * 1e9) * 1e3;
            let x = [
                t * 1e-3,
                w.flops * gemm,
                w.conv_flops * gemm,
                w.weight_bytes * 1e-9,
            ];
            Some((e, x, p.id.clone(), p.chip.clone(), p.source.clone()))
        })
        .collect();
    let energy = fit_energy(&rows);
    let energy_points: Vec<FitPoint> = rows
        .iter()
        .map(|(e, x, id, chip, src)| {
            let model_mj = energy.active_w * x[0]
                + energy.flop_factor * x[1]
                + energy.conv_flop_factor * x[2]
                + energy.weight_pj_per_byte * x[3];
            FitPoint {
                id: id.clone(),
                chip: chip.clone(),
                source: src.clone(),
                measured: round(*e, 4),
                model: round(model_mj, 4),
                error: round(model_mj / e - 1.0, 4),
            }
        })
        .collect();

    let abs = |v: &[FitPoint]| v.iter().map(|p| p.error.abs()).collect::<Vec<f64>>();
    let mut la = abs(&latency);
    let mut ea = abs(&energy_points);
    let fit = FitSummary {
        latency_median_abs_error: round(median(&mut la), 4),
        latency_max_abs_error: round(la.iter().copied().fold(0.0, f64::max), 4),
        energy_median_abs_error: round(median(&mut ea), 4),
        energy_max_abs_error: round(ea.iter().copied().fold(0.0, f64::max), 4),
        latency,
        energy: energy_points,
        excluded,
    };
    Ok(Calibration {
        schema: 1,
        note: "Written by `cargo run -p anekit-plan --example calibrate` (scripts/calibrate.sh) from data/measurements.json and data/catalog.json: the Neural Engine constants are fitted on the one-op and synthetic multi-op micro-benchmarks only; whole models are validation (docs/analyze.md). Do not edit by hand.".into(),
        ane: round_model(&model),
        energy,
        fit,
    })
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

fn round_model(m: &AneModel) -> AneModel {
    let r = |v: f64| {
        // Four significant digits.
        if v == 0.0 {
            0.0
        } else {
            let d = 3 - v.abs().log10().floor() as i32;
            round(v, d)
        }
    };
    AneModel {
        linear_vs_gemm: r(m.linear_vs_gemm),
        conv_vs_gemm: r(m.conv_vs_gemm),
        matmul_vs_gemm: r(m.matmul_vs_gemm),
        onchip_factor: r(m.onchip_factor),
        onchip_factor_elementwise: r(m.onchip_factor_elementwise),
        op_overhead_us: r(m.op_overhead_us),
        layer_norm: r(m.layer_norm),
        group_norm: r(m.group_norm),
        l2_norm: r(m.l2_norm),
        softmax: r(m.softmax),
        pool: r(m.pool),
        reduce: r(m.reduce),
        data_movement: r(m.data_movement),
        fused_vs_single: r(m.fused_vs_single),
    }
}

/// Coefficients of the energy fit: active power, non-conv FLOPs, conv FLOPs, weight bytes.
const NE: usize = 4;

/// Non-negative least squares for the energy coefficients by solving the normal equations
/// on every active set and keeping the best non-negative solution (small problem: exact
/// enumeration of the active sets).
fn fit_energy(rows: &[(f64, [f64; NE], String, String, String)]) -> EnergyModel {
    // Minimise relative error: weight each row by 1/measured.
    let solve = |mask: [bool; NE]| -> Option<[f64; NE]> {
        let idx: Vec<usize> = (0..NE).filter(|i| mask[*i]).collect();
        let k = idx.len();
        if k == 0 {
            return Some([0.0; NE]);
        }
        let mut a = vec![vec![0.0; k + 1]; k];
        for (e, x, ..) in rows {
            let w = 1.0 / (e * e).max(1e-12);
            for (r, &i) in idx.iter().enumerate() {
                for (c, &j) in idx.iter().enumerate() {
                    a[r][c] += w * x[i] * x[j];
                }
                a[r][k] += w * x[i] * e;
            }
        }
        // Gaussian elimination with partial pivoting.
        for col in 0..k {
            let piv = (col..k).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
            a.swap(col, piv);
            let pivot = a.get(col)?.clone();
            let d = *pivot.get(col)?;
            if d.abs() < 1e-300 {
                return None;
            }
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let f = row.get(col).copied().unwrap_or(0.0) / d;
                    for (x, p) in row.iter_mut().zip(&pivot).skip(col) {
                        *x -= f * p;
                    }
                }
            }
        }
        let mut out = [0.0; NE];
        for (r, &i) in idx.iter().enumerate() {
            out[i] = a[r][k] / a[r][r];
        }
        Some(out)
    };
    let err = |c: &[f64; NE]| -> f64 {
        rows.iter()
            .map(|(e, x, ..)| {
                let m: f64 = c.iter().zip(x).map(|(c, x)| c * x).sum();
                ((m - e) / e).powi(2)
            })
            .sum()
    };
    let mut best: Option<([f64; NE], f64)> = None;
    for bits in 1..(1u8 << NE) {
        let mask: [bool; NE] = std::array::from_fn(|i| bits & (1 << i) != 0);
        if let Some(c) = solve(mask)
            && c.iter().all(|v| *v >= 0.0)
        {
            let e = err(&c);
            if best.is_none_or(|(_, b)| e < b) {
                best = Some((c, e));
            }
        }
    }
    let c = best.map_or([3.0, 1.0, 1.0, 0.0], |b| b.0);
    EnergyModel {
        active_w: round(c[0], 4),
        flop_factor: round(c[1], 4),
        conv_flop_factor: round(c[2], 4),
        weight_pj_per_byte: round(c[3], 2),
    }
}
