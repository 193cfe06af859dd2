//! The analysis report: plain serde data. Text, JSON and HTML are renderings of it
//! ([`crate::render`]).

use serde::Serialize;

use crate::cost::Unit;
use crate::findings::Finding;
use crate::graph::InputInfo;
use crate::placement::{ComputeUnits, EnergyEstimate, ExecPath};

/// Everything `anekit analyze` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The model analysed.
    pub model: ModelInfo,
    /// The chip the placement and estimate are for.
    pub chip: String,
    /// That chip's figures as the cost model uses them.
    pub chip_info: ChipInfo,
    /// The compute units asked for.
    pub compute_units: ComputeUnits,
    /// Every op in execution order, constants included (unit `none`).
    pub ops: Vec<OpReport>,
    /// How much of the model lands on each unit.
    pub coverage: Coverage,
    /// Runs of consecutive ops on one unit.
    pub segments: Vec<Segment>,
    /// Engine switches between segments.
    pub switches: Switches,
    /// Estimated latency.
    pub estimate: Estimate,
    /// Problems found, with fixes.
    pub findings: Vec<Finding>,
    /// Caveats of this analysis.
    pub notes: Vec<String>,
    /// Validation problems of a program analysed although it is invalid
    /// ([`crate::Options::allow_invalid`]): "Core ML will refuse to compile: …". Empty for a
    /// valid program.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
}

/// The analysed model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Where it was read from.
    pub path: Option<String>,
    /// The function analysed.
    pub function: String,
    /// Its opset.
    pub opset: String,
    /// Ops that compute (not constants).
    pub compute_ops: usize,
    /// Constant ops (`const`, `constexpr_*`, folded ops).
    pub constant_ops: usize,
    /// Inputs and the shapes analysed.
    pub inputs: Vec<InputInfo>,
    /// Total FLOPs.
    pub flops: f64,
    /// Weight bytes as stored.
    pub weight_bytes: f64,
}

/// The chip's figures as used.
#[derive(Debug, Clone, Serialize)]
pub struct ChipInfo {
    /// Name.
    pub name: String,
    /// Neural Engine generation.
    pub generation: String,
    /// Neural Engine cores.
    pub ane_cores: u32,
    /// Neural Engine fp16 roof, TFLOP/s.
    pub ane_tflops: f64,
    /// How it was obtained.
    pub ane_tflops_basis: String,
    /// Neural Engine bandwidth, GB/s.
    pub ane_bandwidth_gbs: f64,
    /// How it was obtained.
    pub ane_bandwidth_basis: String,
    /// Streaming bandwidth for program inputs and outputs, GB/s.
    pub ane_stream_gbs: f64,
    /// How it was obtained.
    pub ane_stream_basis: String,
    /// Base of the on-chip rate for tensors kept inside a program, GB/s (× the calibrated
    /// on-chip factor).
    pub ane_onchip_base_gbs: f64,
    /// How it was obtained.
    pub ane_onchip_basis: String,
    /// Neural Engine per-program floor (direct path), µs.
    pub ane_dispatch_us: f64,
    /// How it was obtained.
    pub ane_dispatch_basis: String,
    /// Peak GEMM GFLOP/s per package watt.
    pub ane_perf_per_w: f64,
    /// How it was obtained.
    pub ane_perf_per_w_basis: String,
    /// GPU power at full load, W.
    pub gpu_w: f64,
    /// CPU power at full load of the performance cores, W.
    pub cpu_w: f64,
    /// GPU roof, TFLOP/s.
    pub gpu_tflops: f64,
    /// GPU bandwidth, GB/s.
    pub gpu_bandwidth_gbs: f64,
    /// CPU roof, GFLOP/s.
    pub cpu_gflops: f64,
    /// Last-axis alignment of ANE buffers, bytes.
    pub last_axis_alignment_bytes: u64,
}

/// One op.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Position in execution order.
    pub index: usize,
    /// The op's name.
    pub name: String,
    /// The op type.
    #[serde(rename = "type")]
    pub op_type: String,
    /// Predicted unit.
    pub unit: Unit,
    /// Why it is not on the Neural Engine (empty when it is, and for constants).
    pub reasons: Vec<String>,
    /// Rules that fired (ids), notes included.
    pub rules: Vec<String>,
    /// Notes: hazards that do not change the unit.
    pub notes: Vec<String>,
    /// The first output's type at the analysed shape.
    pub output: String,
    /// Ops whose outputs it reads (indices).
    pub inputs: Vec<usize>,
    /// The edges into it: `[producer index, producer output index]`, each once.
    pub edges_in: Vec<[usize; 2]>,
    /// How many outputs it has.
    pub num_outputs: usize,
    /// Nesting depth (inside control flow when > 0).
    pub depth: usize,
    /// FLOPs.
    pub flops: f64,
    /// Bytes moved on its unit (padded layout on the Neural Engine).
    pub bytes: f64,
    /// Estimated time on its unit, µs.
    pub est_us: f64,
    /// The segment it belongs to.
    pub segment: Option<usize>,
}

/// Coverage by op count, FLOPs and time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// Ops that compute.
    pub compute_ops: usize,
    /// Of which on the Neural Engine.
    pub ane_ops: usize,
    /// On the GPU.
    pub gpu_ops: usize,
    /// On the CPU.
    pub cpu_ops: usize,
    /// `ane_ops / compute_ops`.
    pub ane_fraction_ops: f64,
    /// Share of FLOPs on the Neural Engine.
    pub ane_fraction_flops: f64,
    /// Share of the estimated op time spent on the Neural Engine (Core ML's cost weights
    /// measure the same thing).
    pub ane_fraction_cost: f64,
}

/// A run of consecutive ops on one unit.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// The unit.
    pub unit: Unit,
    /// First op index.
    pub first: usize,
    /// Last op index.
    pub last: usize,
    /// Compute ops in it.
    pub ops: usize,
    /// Estimated time, µs (dispatch included).
    pub est_us: f64,
}

/// Engine switches.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Switches {
    /// Number of boundaries between segments on different units.
    pub count: usize,
    /// Bytes handed from one unit to another.
    pub bytes: f64,
    /// Their estimated cost, µs.
    pub cost_us: f64,
}

/// The latency estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Estimated latency of one prediction, ms.
    pub latency_ms: f64,
    /// Of which Neural Engine op time, ms.
    pub ane_ms: f64,
    /// GPU op time, ms.
    pub gpu_ms: f64,
    /// CPU op time, ms.
    pub cpu_ms: f64,
    /// Dispatch overheads (one floor per Neural Engine program), ms.
    pub dispatch_ms: f64,
    /// Core ML's own work per prediction, ms (zero on the direct path).
    pub overhead_ms: f64,
    /// fp32 feature conversion, ms (Core ML path).
    pub io_ms: f64,
    /// Engine switches, ms.
    pub switch_ms: f64,
    /// The execution path of this estimate and of the per-op report.
    pub path: ExecPath,
    /// Estimated energy of one prediction on that path.
    pub energy: EnergyEstimate,
    /// Both execution paths.
    pub paths: Vec<PathEstimate>,
    /// Share of the Neural Engine time that is memory-bound.
    pub ane_memory_bound_fraction: f64,
    /// The same model on every chip of the catalog (with the same compute units).
    pub per_chip: Vec<ChipEstimate>,
    /// This chip with every compute-units setting.
    pub per_compute_units: Vec<UnitsEstimate>,
}

/// The estimate on one execution path.
#[derive(Debug, Clone, Serialize)]
pub struct PathEstimate {
    /// The path.
    pub path: ExecPath,
    /// Latency, ms.
    pub latency_ms: f64,
    /// Neural Engine floors and GPU dispatch, ms.
    pub dispatch_ms: f64,
    /// Core ML's own work, ms.
    pub overhead_ms: f64,
    /// fp32 feature conversion, ms.
    pub io_ms: f64,
    /// Engine switches, ms.
    pub switch_ms: f64,
    /// Energy per prediction.
    pub energy: EnergyEstimate,
    /// Share of compute ops on the Neural Engine.
    pub ane_fraction_ops: f64,
}

/// The estimate for one chip.
#[derive(Debug, Clone, Serialize)]
pub struct ChipEstimate {
    /// Chip.
    pub chip: String,
    /// Generation.
    pub generation: String,
    /// Latency, ms.
    pub latency_ms: f64,
    /// Energy per prediction, mJ.
    pub energy_mj: f64,
    /// Share of compute ops on the Neural Engine.
    pub ane_fraction_ops: f64,
}

/// The estimate for one compute-units setting.
#[derive(Debug, Clone, Serialize)]
pub struct UnitsEstimate {
    /// Compute units.
    pub compute_units: ComputeUnits,
    /// Latency, ms.
    pub latency_ms: f64,
    /// Energy per prediction, mJ.
    pub energy_mj: f64,
    /// Share of compute ops on the Neural Engine.
    pub ane_fraction_ops: f64,
}
