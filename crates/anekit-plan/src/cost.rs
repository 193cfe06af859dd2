//! The cost model: FLOPs and bytes of every op, and its time on each compute unit.
//!
//! Per op: FLOPs from the analysed shapes (2 per multiply-accumulate); bytes of the run-time
//! inputs and outputs; weight bytes as stored (compressed weights at their stored size when
//! the generation streams that encoding natively, else expanded to dense fp16). On the
//! Neural Engine every activation's last axis is padded to the generation's alignment
//! (64 bytes; `APPLE-ART` Principle 1), so a `[…, 1]` tensor costs 32× its size in fp16.
//!
//! On the Neural Engine an op's time ([`ane_op_time`]) is the longest of its compute at the
//! class roof (the chip's measured GEMM peak × a calibrated factor for convolutions, linear
//! layers and run-time matrix products, × a further calibrated factor when the layer runs
//! fused inside a program with its operands in the on-chip working set), its weight stream
//! and its activation traffic: tensors that cross the program boundary move at the chip's
//! measured streaming bandwidth, tensors kept inside the program at a calibrated multiple of
//! the engine's (the fastest streaming measured on its generation: the on-chip buffer is the
//! engine's) while the op's largest tensor fits the working set, each weighted by a
//! per-class traffic factor (normalisations cost more than a copy). The constants are fitted
//! on one-op and synthetic micro-benchmarks only (`crate::calibration`). GPU and CPU keep a
//! roofline: `max(flops / peak, bytes / bandwidth)` plus a per-op overhead.

use anekit_mil::{DataType, TensorType};
use serde::Serialize;

use crate::calibration::AneModel;
use crate::catalog::{ChipPerf, Constants, Generation};
use crate::graph::{Graph, Node};

/// A compute unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// The Neural Engine.
    Ane,
    /// The GPU.
    Gpu,
    /// The CPU.
    Cpu,
    /// Nothing runs (constants, folded at compile time).
    None,
}

impl Unit {
    /// Lower-case name (`ane`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Ane => "ane",
            Unit::Gpu => "gpu",
            Unit::Cpu => "cpu",
            Unit::None => "none",
        }
    }
}

/// Cost facts of one op, independent of the chip.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OpCost {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes of the run-time inputs, unpadded.
    pub input_bytes: f64,
    /// Bytes of the outputs, unpadded.
    pub output_bytes: f64,
    /// Run-time inputs and outputs (value, shape, element size on the Neural Engine), for
    /// the padded layout and for telling program inputs and outputs from values kept inside
    /// a Neural Engine program.
    #[serde(skip)]
    pub activations: Vec<Act>,
    /// Weight bytes as stored in the model.
    pub weight_bytes: f64,
    /// Weight bytes once expanded to dense fp16.
    pub weight_dense_bytes: f64,
    /// Compression encoding of the weights (`int4`, `int8`, `sparse`, `blockwise`), if any.
    pub weight_encoding: Option<String>,
    /// A pure data-movement op (reshape, transpose, concat, slice, …).
    pub data_movement: bool,
    /// Applied on the way out of a convolution or matrix product (an activation, or a binary
    /// element-wise op on its only use): no op of its own on the Neural Engine, and no traffic
    /// but the other operand of a binary op.
    pub fused: bool,
    /// The input it fuses through (not read separately).
    pub fused_input: Option<String>,
    /// How the Neural Engine spends time on it.
    pub class: AneClass,
}

/// One run-time tensor an op reads or writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Act {
    /// The value's name.
    pub value: String,
    /// Its shape at the analysed input shapes.
    pub shape: Vec<u64>,
    /// Bytes per element on the Neural Engine.
    pub elem: f64,
    /// Written (an output) rather than read.
    pub output: bool,
}

/// What limits an op on the Neural Engine; each class has its own calibrated constants
/// (`data/calibration.json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AneClass {
    /// Convolutions: compute at the conv roof.
    Conv,
    /// A matrix product with a constant operand (linear, matmul or einsum with weights).
    Linear,
    /// A matrix product of two run-time tensors (attention scores and mixing).
    Matmul,
    /// Scaled dot-product attention: two run-time matrix products and a softmax.
    Attention,
    /// Layer normalisation (one pass for mean and variance, one to normalise).
    LayerNorm,
    /// Instance, batch and group normalisation.
    GroupNorm,
    /// L2 and local-response normalisation.
    L2Norm,
    /// Softmax (and log-softmax).
    Softmax,
    /// Pooling.
    Pool,
    /// Reductions.
    Reduce,
    /// Pure data movement (reshape, transpose, slice, concat, …).
    DataMovement,
    /// Element-wise arithmetic and activations.
    #[default]
    Elementwise,
}

/// Bytes per element on the Neural Engine (fp16, or 1 for 8-bit types).
fn ane_elem(dtype: DataType) -> f64 {
    match dtype.bits() {
        Some(b) if b <= 8 => 1.0,
        _ => 2.0,
    }
}

fn elem_bytes(dtype: DataType) -> f64 {
    f64::from(dtype.bits().unwrap_or(8)) / 8.0
}

fn count(t: &TensorType) -> f64 {
    t.element_count().map_or(0.0, |n| n as f64)
}

/// Bytes of a tensor in the Neural Engine layout: the last axis padded to `align` bytes.
pub fn padded_bytes(shape: &[u64], elem: f64, align: u64) -> f64 {
    let Some((last, rest)) = shape.split_last() else {
        return align as f64;
    };
    let row = (*last as f64 * elem).max(1.0);
    let a = align.max(1) as f64;
    let padded_row = (row / a).ceil() * a;
    rest.iter().map(|d| *d as f64).product::<f64>() * padded_row
}

/// An op-specific FLOP formula of [`op_cost`] ([`CostClass::Compute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    /// `2 · output elements · (weight elements per output channel)`.
    Conv,
    /// `2 · input elements · (weight elements per input channel)`.
    ConvTranspose,
    /// `2 · output elements · input features`.
    Linear,
    /// `2 · output elements · inner dimension`.
    Matmul,
    /// `2 · product of every index extent`.
    Einsum,
    /// `QKᵀ` and `AV` (`2·L·S·E` each) and the softmax (`5·L·S` per batch-head).
    Attention,
    /// `gates` × (input and hidden products) per time step and direction (LSTM 4, GRU 3,
    /// RNN 1).
    Recurrent {
        /// Gates per cell.
        gates: u8,
    },
    /// `output elements · kernel elements`.
    Pool,
    /// One FLOP per input element.
    Reduction,
    /// Four FLOPs per output element (interpolation).
    Resize,
}

/// The Neural Engine class of an op type; `has_weights`: one of its floating-point operands
/// is a constant (a matmul with a constant operand is a linear layer).
pub fn ane_class(op: &str, has_weights: bool) -> AneClass {
    match op {
        "conv" | "conv_transpose" => AneClass::Conv,
        "linear" => AneClass::Linear,
        "matmul" | "einsum" if has_weights => AneClass::Linear,
        "matmul" | "einsum" => AneClass::Matmul,
        "scaled_dot_product_attention" => AneClass::Attention,
        "layer_norm" => AneClass::LayerNorm,
        "batch_norm" | "instance_norm" => AneClass::GroupNorm,
        "l2_norm" | "local_response_norm" => AneClass::L2Norm,
        "softmax" | "log_softmax" => AneClass::Softmax,
        "max_pool" | "avg_pool" | "l2_pool" => AneClass::Pool,
        o if o.starts_with("reduce_") => AneClass::Reduce,
        o if cost_class(o) == Some(CostClass::DataMovement) => AneClass::DataMovement,
        _ => AneClass::Elementwise,
    }
}

impl Formula {
    /// A short name (`conv`, `lstm (4 gates)`).
    pub fn name(self) -> &'static str {
        match self {
            Formula::Conv => "conv",
            Formula::ConvTranspose => "conv_transpose",
            Formula::Linear => "linear",
            Formula::Matmul => "matmul",
            Formula::Einsum => "einsum",
            Formula::Attention => "attention",
            Formula::Recurrent { gates: 4 } => "recurrent, 4 gates",
            Formula::Recurrent { gates: 3 } => "recurrent, 3 gates",
            Formula::Recurrent { .. } => "recurrent",
            Formula::Pool => "pool",
            Formula::Reduction => "reduction",
            Formula::Resize => "resize",
        }
    }
}

/// How the cost model counts an op type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CostClass {
    /// Moves data only (reshape, transpose, concat, slice, gather, …): no FLOPs; on the CPU
    /// only the output's bytes are charged.
    DataMovement,
    /// Element-wise: `flops` per output element (or per input element when an input is
    /// larger); transcendentals count more. `fusable`: an activation the Neural Engine
    /// applies to a producer's output on its way out (`EILN-DOCS`: each core is a MADD array
    /// with an accumulator and post-processing), with no activation traffic of its own.
    PerElement {
        /// FLOPs per element.
        flops: f64,
        /// Fused into a convolution / linear / matmul producer.
        fusable: bool,
    },
    /// FLOPs from an op-specific formula.
    Compute(Formula),
    /// FLOPs not modelled (counted as zero): only the bytes it moves are charged.
    BytesOnly,
    /// Folded when Core ML compiles the model (`const`, `constexpr_*`): free at run time.
    Constant,
}

/// Every registry op type and how the cost model counts it. A test checks that the table
/// classifies every op of the registry once; an op type not in it (one Core ML does not
/// know) is not costed.
pub static OP_COSTS: &[(&str, CostClass)] = {
    use CostClass::{BytesOnly, Compute, Constant, DataMovement, PerElement};
    &[
        (
            "abs",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "acos",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "add",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("affine", BytesOnly),
        ("argsort", BytesOnly),
        (
            "asin",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "atan",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "atanh",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("avg_pool", Compute(Formula::Pool)),
        ("band_part", DataMovement),
        (
            "batch_norm",
            PerElement {
                flops: 8.0,
                fusable: false,
            },
        ),
        ("batch_to_space", DataMovement),
        ("cast", DataMovement),
        (
            "ceil",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "clamped_relu",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("classify", BytesOnly),
        (
            "clip",
            PerElement {
                flops: 1.0,
                fusable: true,
            },
        ),
        ("concat", DataMovement),
        ("cond", BytesOnly),
        ("const", Constant),
        ("constexpr_affine_dequantize", Constant),
        ("constexpr_blockwise_shift_scale", Constant),
        ("constexpr_cast", Constant),
        ("constexpr_lut_to_dense", Constant),
        ("constexpr_lut_to_sparse", Constant),
        ("constexpr_sparse_blockwise_shift_scale", Constant),
        ("constexpr_sparse_to_dense", Constant),
        ("conv", Compute(Formula::Conv)),
        ("conv_quantized", Compute(Formula::Conv)),
        ("conv_transpose", Compute(Formula::ConvTranspose)),
        (
            "cos",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "cosh",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("crop", DataMovement),
        ("crop_resize", Compute(Formula::Resize)),
        ("cumsum", BytesOnly),
        ("depth_to_space", DataMovement),
        ("dequantize", BytesOnly),
        ("einsum", Compute(Formula::Einsum)),
        (
            "elu",
            PerElement {
                flops: 4.0,
                fusable: true,
            },
        ),
        (
            "equal",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "erf",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "exp",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "exp2",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("expand_dims", DataMovement),
        ("fill", DataMovement),
        ("fill_like", DataMovement),
        ("flatten2d", DataMovement),
        (
            "floor",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "floor_div",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("gather", DataMovement),
        ("gather_along_axis", DataMovement),
        ("gather_nd", DataMovement),
        (
            "gelu",
            PerElement {
                flops: 8.0,
                fusable: true,
            },
        ),
        (
            "greater",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "greater_equal",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("gru", Compute(Formula::Recurrent { gates: 3 })),
        ("identity", DataMovement),
        (
            "instance_norm",
            PerElement {
                flops: 8.0,
                fusable: false,
            },
        ),
        (
            "inverse",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "l2_norm",
            PerElement {
                flops: 8.0,
                fusable: false,
            },
        ),
        ("l2_pool", Compute(Formula::Pool)),
        (
            "layer_norm",
            PerElement {
                flops: 8.0,
                fusable: false,
            },
        ),
        (
            "leaky_relu",
            PerElement {
                flops: 1.0,
                fusable: true,
            },
        ),
        (
            "less",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "less_equal",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("linear", Compute(Formula::Linear)),
        (
            "linear_activation",
            PerElement {
                flops: 1.0,
                fusable: true,
            },
        ),
        ("list_gather", BytesOnly),
        ("list_length", BytesOnly),
        ("list_read", BytesOnly),
        ("list_scatter", BytesOnly),
        ("list_write", BytesOnly),
        (
            "local_response_norm",
            PerElement {
                flops: 8.0,
                fusable: false,
            },
        ),
        (
            "log",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "logical_and",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "logical_not",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "logical_or",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "logical_xor",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("lstm", Compute(Formula::Recurrent { gates: 4 })),
        ("make_list", BytesOnly),
        ("matmul", Compute(Formula::Matmul)),
        ("max_pool", Compute(Formula::Pool)),
        (
            "maximum",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "minimum",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "mod",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "mul",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("non_maximum_suppression", BytesOnly),
        ("non_zero", BytesOnly),
        (
            "not_equal",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("one_hot", BytesOnly),
        ("pad", DataMovement),
        ("pixel_shuffle", DataMovement),
        ("pixel_unshuffle", DataMovement),
        (
            "pow",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "prelu",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("quantize", BytesOnly),
        ("random_bernoulli", BytesOnly),
        ("random_categorical", BytesOnly),
        ("random_normal", BytesOnly),
        ("random_uniform", BytesOnly),
        ("range_1d", BytesOnly),
        ("read_state", DataMovement),
        (
            "real_div",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("reduce_argmax", Compute(Formula::Reduction)),
        ("reduce_argmin", Compute(Formula::Reduction)),
        ("reduce_l1_norm", Compute(Formula::Reduction)),
        ("reduce_l2_norm", Compute(Formula::Reduction)),
        ("reduce_log_sum", Compute(Formula::Reduction)),
        ("reduce_log_sum_exp", Compute(Formula::Reduction)),
        ("reduce_max", Compute(Formula::Reduction)),
        ("reduce_mean", Compute(Formula::Reduction)),
        ("reduce_min", Compute(Formula::Reduction)),
        ("reduce_prod", Compute(Formula::Reduction)),
        ("reduce_sum", Compute(Formula::Reduction)),
        ("reduce_sum_square", Compute(Formula::Reduction)),
        (
            "relu",
            PerElement {
                flops: 1.0,
                fusable: true,
            },
        ),
        (
            "relu6",
            PerElement {
                flops: 1.0,
                fusable: true,
            },
        ),
        ("resample", BytesOnly),
        ("reshape", DataMovement),
        ("reshape_like", BytesOnly),
        ("resize", Compute(Formula::Resize)),
        ("resize_bilinear", Compute(Formula::Resize)),
        ("resize_nearest_neighbor", Compute(Formula::Resize)),
        ("reverse", DataMovement),
        ("reverse_sequence", BytesOnly),
        ("rnn", Compute(Formula::Recurrent { gates: 1 })),
        (
            "round",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "rsqrt",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("scaled_dot_product_attention", Compute(Formula::Attention)),
        (
            "scaled_tanh",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("scatter", DataMovement),
        ("scatter_along_axis", DataMovement),
        ("scatter_nd", DataMovement),
        (
            "select",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("shape", DataMovement),
        (
            "sigmoid",
            PerElement {
                flops: 4.0,
                fusable: true,
            },
        ),
        (
            "sigmoid_hard",
            PerElement {
                flops: 4.0,
                fusable: true,
            },
        ),
        (
            "sign",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "silu",
            PerElement {
                flops: 4.0,
                fusable: true,
            },
        ),
        (
            "sin",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "sinh",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("slice_by_index", DataMovement),
        ("slice_by_size", DataMovement),
        ("slice_update", DataMovement),
        ("sliding_windows", DataMovement),
        (
            "softmax",
            PerElement {
                flops: 5.0,
                fusable: false,
            },
        ),
        (
            "softplus",
            PerElement {
                flops: 4.0,
                fusable: true,
            },
        ),
        (
            "softplus_parametric",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "softsign",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        ("space_to_batch", DataMovement),
        ("space_to_depth", DataMovement),
        ("split", DataMovement),
        (
            "sqrt",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "square",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("squeeze", DataMovement),
        ("stack", DataMovement),
        (
            "sub",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "tan",
            PerElement {
                flops: 4.0,
                fusable: false,
            },
        ),
        (
            "tanh",
            PerElement {
                flops: 4.0,
                fusable: true,
            },
        ),
        (
            "threshold",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        (
            "thresholded_relu",
            PerElement {
                flops: 1.0,
                fusable: false,
            },
        ),
        ("tile", DataMovement),
        ("topk", BytesOnly),
        ("transpose", DataMovement),
        ("upsample_bilinear", Compute(Formula::Resize)),
        ("upsample_nearest_neighbor", Compute(Formula::Resize)),
        ("while_loop", BytesOnly),
        ("write_state", DataMovement),
    ]
};

/// The cost class of `op_type`; `None` for an op type the registry does not know.
pub fn cost_class(op_type: &str) -> Option<CostClass> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, CostClass>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| OP_COSTS.iter().copied().collect())
        .get(op_type)
        .copied()
}

/// The `cost class` column of `docs/op-coverage.md`: [`OP_COSTS`] per op type.
pub fn coverage_column() -> anekit_mil::ops::CoverageColumn {
    let cells = OP_COSTS
        .iter()
        .map(|(op, class)| {
            let cell = match class {
                CostClass::DataMovement => "data movement".to_string(),
                CostClass::PerElement { flops, fusable } => format!(
                    "{flops} FLOP/element{}",
                    if *fusable { ", fusable" } else { "" }
                ),
                CostClass::Compute(f) => f.name().to_string(),
                CostClass::BytesOnly => "bytes only".to_string(),
                CostClass::Constant => "compile time".to_string(),
            };
            ((*op).to_string(), cell)
        })
        .collect();
    anekit_mil::ops::CoverageColumn {
        header: "cost class".into(),
        legend: "how `anekit analyze` costs the op type (`anekit_plan::cost::OP_COSTS`): **data \
                 movement** (no FLOPs; on the CPU only the output's bytes), **n FLOP/element** \
                 (**fusable**: applied by the Neural Engine on the way out of a conv, linear or \
                 matmul producer, with no activation traffic of its own), an op-specific formula \
                 (conv, linear, matmul, attention, recurrent, pool, reduction, resize, …), \
                 **bytes only** (FLOPs not modelled), **compile time** (free at run time)."
            .into(),
        cells,
    }
}

/// Producers whose output a [`CostClass::PerElement`] `fusable` activation is fused into.
pub const FUSION_PRODUCERS: &[&str] = &[
    "conv",
    "conv_transpose",
    "linear",
    "matmul",
    "einsum",
    "batch_norm",
];

/// Binary element-wise ops the engine's post-processing applies to a producer's output (a
/// residual add after a convolution, a scale), reading their other operand.
const FUSABLE_BINARY: &[&str] = &["add", "sub", "mul", "maximum", "minimum"];

/// The input through which node `n` fuses into its producer: the producer is a convolution
/// or matrix product (or an op already fused into one, at most 4 deep) and `n` is its only
/// consumer; `n` is a fusable activation ([`OP_COSTS`]) or a binary element-wise op (`FUSABLE_BINARY`)
/// — each core is a multiply-accumulate array with an accumulator and post-processing
/// (`EILN-DOCS`).
fn fused_input(g: &Graph<'_>, n: &Node<'_>, depth: u32) -> Option<String> {
    let op = n.op.op_type.as_str();
    let runtime = g.runtime_inputs(n).len();
    let activation = matches!(
        cost_class(op),
        Some(CostClass::PerElement { fusable: true, .. })
    );
    let eligible = (activation && runtime == 1)
        || (FUSABLE_BINARY.contains(&op) && (1..=2).contains(&runtime));
    if !eligible || depth > 4 {
        return None;
    }
    n.inputs.iter().find_map(|(_, v)| {
        let value = g.values.get(v)?;
        if value.constant {
            return None;
        }
        let p = g.nodes.get(value.producer?)?;
        let tail = FUSION_PRODUCERS.contains(&p.op.op_type.as_str())
            || fused_input(g, p, depth + 1).is_some();
        (p.consumers.len() == 1 && tail).then(|| v.clone())
    })
}

/// The cost facts of node `n`.
pub fn op_cost(g: &Graph<'_>, n: &Node<'_>) -> OpCost {
    let mut c = OpCost::default();
    if n.constant {
        return c;
    }
    let op = n.op.op_type.as_str();
    let Some(class) = cost_class(op) else {
        return c;
    };
    let ins = g.runtime_inputs(n);
    let outs = g.output_tensors(n);
    for (_, name) in &n.inputs {
        let Some(t) = g
            .values
            .get(name)
            .filter(|v| !v.constant)
            .and_then(|v| v.ty.as_tensor())
        else {
            continue;
        };
        c.input_bytes += count(t) * elem_bytes(t.dtype);
        if let Some(s) = t.fixed_shape() {
            c.activations.push(Act {
                value: name.clone(),
                shape: s,
                elem: ane_elem(t.dtype),
                output: false,
            });
        }
    }
    for name in &n.outputs {
        let Some(t) = g.values.get(name).and_then(|v| v.ty.as_tensor()) else {
            continue;
        };
        c.output_bytes += count(t) * elem_bytes(t.dtype);
        if let Some(s) = t.fixed_shape() {
            c.activations.push(Act {
                value: name.clone(),
                shape: s,
                elem: ane_elem(t.dtype),
                output: true,
            });
        }
    }
    weights(g, n, &mut c);
    c.class = ane_class(op, c.weight_bytes > 0.0);
    c.data_movement = class == CostClass::DataMovement;
    if let Some(input) = fused_input(g, n, 0) {
        c.fused = true;
        c.fused_input = Some(input);
    }
    let out_elems: f64 = outs.first().map_or(0.0, |t| count(t));
    let shape = |p: &str| g.input_tensor(n, p).and_then(|t| t.fixed_shape());
    c.flops = match class {
        CostClass::Compute(Formula::Conv) => {
            let k: f64 = shape("weight")
                .map(|w| w.iter().skip(1).map(|d| *d as f64).product())
                .unwrap_or(0.0);
            2.0 * out_elems * k
        }
        CostClass::Compute(Formula::ConvTranspose) => {
            let k: f64 = shape("weight")
                .map(|w| w.iter().skip(1).map(|d| *d as f64).product())
                .unwrap_or(0.0);
            let in_elems = shape("x").map_or(0.0, |s| s.iter().map(|d| *d as f64).product());
            2.0 * in_elems * k
        }
        CostClass::Compute(Formula::Linear) => {
            let k = shape("weight").and_then(|w| w.last().copied()).unwrap_or(0) as f64;
            2.0 * out_elems * k
        }
        CostClass::Compute(Formula::Matmul) => {
            let x = shape("x").unwrap_or_default();
            let tx = g
                .param_value(n, "transpose_x")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let k = if x.len() >= 2 && tx {
                x.get(x.len() - 2).copied()
            } else {
                x.last().copied()
            }
            .unwrap_or(0) as f64;
            2.0 * out_elems * k
        }
        CostClass::Compute(Formula::Einsum) => einsum_flops(g, n).unwrap_or(2.0 * out_elems),
        CostClass::Compute(Formula::Attention) => {
            let q = shape("query").unwrap_or_default();
            let k = shape("key").unwrap_or_default();
            let l_e: f64 = q.iter().map(|d| *d as f64).product();
            let s = k
                .len()
                .checked_sub(2)
                .and_then(|i| k.get(i))
                .copied()
                .unwrap_or(0) as f64;
            // QK^T and AV: 2·L·S·E each; softmax 5·L·S per batch-head.
            let e = q.last().copied().unwrap_or(1).max(1) as f64;
            4.0 * l_e * s + 5.0 * (l_e / e) * s
        }
        CostClass::Compute(Formula::Recurrent { gates }) => {
            let gates = f64::from(gates);
            let x = shape("x").unwrap_or_default();
            let (t, b, i) = match x.as_slice() {
                [t, b, i] => (*t as f64, *b as f64, *i as f64),
                _ => (0.0, 0.0, 0.0),
            };
            let h = shape("weight_hh")
                .and_then(|w| w.last().copied())
                .unwrap_or(0) as f64;
            let dirs = if g.param_str(n, "direction").as_deref() == Some("bidirectional") {
                2.0
            } else {
                1.0
            };
            dirs * 2.0 * t * b * gates * h * (i + h) + dirs * t * b * h * gates * 4.0
        }
        CostClass::Compute(Formula::Pool) => {
            let k: f64 = g
                .param_ints(n, "kernel_sizes")
                .map(|k| k.iter().map(|v| *v as f64).product())
                .unwrap_or(1.0);
            out_elems * k
        }
        CostClass::Compute(Formula::Reduction) => ins.first().map_or(0.0, |(_, t)| count(t)),
        CostClass::Compute(Formula::Resize) => out_elems * 4.0,
        CostClass::PerElement { flops, .. } => {
            let in_max = ins.iter().map(|(_, t)| count(t)).fold(0.0, f64::max);
            flops * out_elems.max(in_max)
        }
        CostClass::DataMovement | CostClass::BytesOnly | CostClass::Constant => 0.0,
    };
    c
}

fn einsum_flops(g: &Graph<'_>, n: &Node<'_>) -> Option<f64> {
    let eq = g.param_str(n, "equation")?;
    let (lhs, _) = eq.split_once("->")?;
    let names: Vec<&str> = n
        .inputs
        .iter()
        .filter(|(p, _)| p == "values")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut dims: std::collections::BTreeMap<char, u64> = Default::default();
    for (term, name) in lhs.split(',').zip(names) {
        let shape = g.values.get(name)?.ty.as_tensor()?.fixed_shape()?;
        let letters: Vec<char> = term
            .trim()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect();
        if letters.len() != shape.len() {
            return None;
        }
        for (l, d) in letters.into_iter().zip(shape) {
            dims.insert(l, d);
        }
    }
    Some(2.0 * dims.values().map(|d| *d as f64).product::<f64>())
}

/// The compression encoding of a `constexpr_*` op type.
pub fn encoding_of(op_type: &str) -> Option<&'static str> {
    Some(match op_type {
        "constexpr_lut_to_dense" | "constexpr_lut_to_sparse" => "int4",
        "constexpr_affine_dequantize" => "int8",
        "constexpr_sparse_to_dense" | "constexpr_sparse_blockwise_shift_scale" => "sparse",
        "constexpr_blockwise_shift_scale" => "blockwise",
        _ => return None,
    })
}

/// Stored bytes of a constant value and of its constant ancestors (through `constexpr_*`
/// chains, at most 4 levels), and the first encoding met.
fn stored(g: &Graph<'_>, name: &str, depth: u32) -> (f64, Option<&'static str>) {
    let Some(v) = g.values.get(name) else {
        return (0.0, None);
    };
    if let Some(val) = &v.value {
        return (val.bytes().map_or(0.0, |b| b.len() as f64), None);
    }
    let Some(p) = v.producer.and_then(|p| g.nodes.get(p)) else {
        return (0.0, None);
    };
    if depth > 4 {
        return (0.0, None);
    }
    let mut total = 0.0;
    let mut enc = encoding_of(&p.op.op_type);
    for (_, input) in &p.inputs {
        let (b, e) = stored(g, input, depth + 1);
        total += b;
        enc = enc.or(e);
    }
    // iOS16/17 constexpr ops carry their data as attributes.
    for (k, a) in &p.op.attributes {
        if k != "name" {
            total += a.bytes().map_or(0.0, |b| b.len() as f64);
        }
    }
    (total, enc)
}

fn weights(g: &Graph<'_>, n: &Node<'_>, c: &mut OpCost) {
    for (_, name) in &n.inputs {
        let Some(v) = g.values.get(name) else {
            continue;
        };
        if !v.constant {
            continue;
        }
        let Some(t) = v.ty.as_tensor() else {
            continue;
        };
        // Shape-like (integer, bool, string) parameters are not weights.
        if !t.dtype.is_float() {
            continue;
        }
        let (bytes, enc) = stored(g, name, 0);
        c.weight_bytes += bytes;
        c.weight_dense_bytes += count(t) * 2.0;
        if let Some(e) = enc {
            c.weight_encoding = Some(e.to_string());
        }
    }
}

/// Time of an op on one unit, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OpTime {
    /// Total.
    pub us: f64,
    /// The compute part.
    pub compute_us: f64,
    /// The memory part.
    pub memory_us: f64,
}

/// Bytes the Neural Engine moves for `c` on `generation`: (weights, activations, whether
/// the activations stay in the on-chip working set, [`activations_fit`]).
pub fn ane_bytes(c: &OpCost, generation: &Generation) -> (f64, f64, bool) {
    let w = ane_weight_bytes(c, generation);
    let align = generation.last_axis_alignment_bytes.value;
    let act: f64 = if c.fused {
        0.0
    } else {
        c.activations
            .iter()
            .map(|a| padded_bytes(&a.shape, a.elem, align))
            .sum()
    };
    (w, act, activations_fit(c, generation))
}

/// The padded size of the largest run-time tensor `c` reads or writes on `generation`.
fn largest_activation(c: &OpCost, generation: &Generation) -> f64 {
    let align = generation.last_axis_alignment_bytes.value;
    c.activations
        .iter()
        .map(|a| padded_bytes(&a.shape, a.elem, align))
        .fold(0.0, f64::max)
}

/// Whether `c`'s activations stay in the engine's on-chip working set: the compiler keeps a
/// layer on chip while its largest single operand fits the working-set size
/// (`generation.sram_bytes`, the hardware table's `MemCacheSize`: 2 MB on the M1, 4.72 MB
/// measured on the M5) and tiles and streams it from DRAM beyond (ane-guide, chapter 21,
/// `ZinMirMatMul::LowerNEMatMulToNEConv`). The test is on the size of one tensor, not on the
/// sum of the operands.
pub fn activations_fit(c: &OpCost, generation: &Generation) -> bool {
    largest_activation(c, generation) <= generation.sram_bytes.value as f64
}

/// Whether a convolution or matrix product runs at the fused in-program rate: none of its
/// tensors crosses the program boundary and its largest operand, weights included, fits the
/// working set. A fused chain of such layers runs well above the rate of the same layer as a
/// one-op program (ane-guide, chapter 9: a fused matmul chain ~12 TFLOP/s on the M1 against
/// 4.8 for one large matmul past the working set; 19.6 against 9.5 on the M5).
fn runs_fused(c: &OpCost, generation: &Generation, external: &dyn Fn(&Act) -> bool) -> bool {
    matches!(
        c.class,
        AneClass::Conv | AneClass::Linear | AneClass::Matmul
    ) && !c.activations.iter().any(external)
        && largest_activation(c, generation).max(ane_weight_bytes(c, generation))
            <= generation.sram_bytes.value as f64
}

/// Weight bytes the Neural Engine streams for `c`: as stored when the generation streams the
/// encoding natively, else expanded to dense fp16.
pub fn ane_weight_bytes(c: &OpCost, generation: &Generation) -> f64 {
    let native = c.weight_encoding.as_ref().is_none_or(|e| {
        generation
            .native_weight_streams
            .value
            .iter()
            .any(|s| s == e)
    });
    if native {
        c.weight_bytes
    } else {
        c.weight_dense_bytes
    }
}

/// The Neural Engine time of `c` inside a program on a chip with figures `perf`, with the
/// calibrated constants `model` (`data/calibration.json`, fitted on one-op and synthetic
/// micro-benchmarks by `scripts/calibrate.sh`).
///
/// `external(act)` says whether a tensor crosses the program boundary (a program input or
/// output, read or written through DRAM at the streaming bandwidth) rather than staying
/// inside the program (moved at `onchip_factor` × the generation's fastest measured
/// streaming bandwidth, `perf.ane_onchip_base_gbs`, while the op's largest tensor fits the
/// on-chip working set, [`activations_fit`]). A convolution or matrix product entirely
/// inside a program whose operands fit the working set computes at `fused_vs_single` × its
/// class roof.
///
/// ```text
/// t = overhead + max(flops / (κ_class · [fused] · gemm roof), weight bytes / weight bandwidth,
///                    Σ tensors  padded bytes · traffic_class / (stream or on-chip bandwidth))
/// ```
pub fn ane_op_time(
    c: &OpCost,
    perf: &ChipPerf,
    generation: &Generation,
    model: &AneModel,
    external: &dyn Fn(&Act) -> bool,
) -> OpTime {
    if c.fused {
        // Applied on the way out of its producer: no op of its own; a binary op still reads
        // its other operand.
        let align = generation.last_axis_alignment_bytes.value;
        let stream = (perf.ane_stream_gbs * 1e3).max(1e-9);
        let mut act_us = 0.0;
        for a in c
            .activations
            .iter()
            .filter(|a| !a.output && Some(&a.value) != c.fused_input.as_ref())
        {
            let rate = if external(a) {
                stream
            } else {
                (perf.ane_onchip_base_gbs * 1e3).max(1e-9) * model.onchip_factor_elementwise
            };
            act_us += padded_bytes(&a.shape, a.elem, align) / rate;
        }
        return OpTime {
            us: act_us,
            compute_us: 0.0,
            memory_us: act_us,
        };
    }
    let roof = perf.ane_tflops * 1e6; // FLOP per µs
    let kappa = match c.class {
        AneClass::Conv => model.conv_vs_gemm,
        AneClass::Linear => model.linear_vs_gemm,
        AneClass::Matmul | AneClass::Attention => model.matmul_vs_gemm,
        _ => 0.0,
    };
    let kappa = if runs_fused(c, generation, external) {
        kappa * model.fused_vs_single
    } else {
        kappa
    };
    let compute_us = if kappa > 0.0 && roof > 0.0 {
        c.flops / (kappa * roof)
    } else {
        0.0
    };
    let weight_us = if perf.ane_bandwidth_gbs > 0.0 {
        ane_weight_bytes(c, generation) / (perf.ane_bandwidth_gbs * 1e3)
    } else {
        0.0
    };
    let align = generation.last_axis_alignment_bytes.value;
    let stream = (perf.ane_stream_gbs * 1e3).max(1e-9); // bytes per µs
    let fits = activations_fit(c, generation);
    let onchip = (perf.ane_onchip_base_gbs * 1e3).max(1e-9);
    let traffic = model.traffic(c.class);
    // Inside a program, tensors move at the on-chip rate while the op's largest tensor fits
    // the on-chip working set; beyond it they are tiled through DRAM (at most the DRAM
    // bandwidth).
    let factor = match c.class {
        AneClass::Conv | AneClass::Linear | AneClass::Matmul => model.onchip_factor,
        _ => model.onchip_factor_elementwise,
    };
    let inner = if fits {
        onchip * factor
    } else {
        (onchip * factor).min(perf.ane_bandwidth_gbs * 1e3)
    };
    let mut act_us = 0.0;
    for a in &c.activations {
        let bytes = padded_bytes(&a.shape, a.elem, align);
        let rate = if external(a) { stream } else { inner.max(1e-9) };
        act_us += bytes * traffic / rate;
    }
    OpTime {
        us: model.op_overhead_us + compute_us.max(weight_us).max(act_us),
        compute_us,
        memory_us: weight_us + act_us,
    }
}

/// Time of `c` on `unit` (on the Neural Engine: every tensor inside the program).
pub fn op_time(
    c: &OpCost,
    unit: Unit,
    perf: &ChipPerf,
    generation: &Generation,
    k: &Constants,
    model: &AneModel,
) -> OpTime {
    let roof = |flops: f64, bytes: f64, flop_per_us: f64, bytes_per_us: f64, overhead: f64| {
        let compute_us = if flop_per_us > 0.0 {
            flops / flop_per_us
        } else {
            0.0
        };
        let memory_us = if bytes_per_us > 0.0 {
            bytes / bytes_per_us
        } else {
            0.0
        };
        OpTime {
            us: compute_us.max(memory_us) + overhead,
            compute_us,
            memory_us,
        }
    };
    match unit {
        Unit::None => OpTime::default(),
        Unit::Ane => ane_op_time(c, perf, generation, model, &|_| false),
        Unit::Gpu => roof(
            c.flops,
            c.input_bytes + c.output_bytes + c.weight_bytes,
            perf.gpu_tflops * 1e6,
            perf.gpu_bandwidth_gbs * 1e3,
            k.gpu_op_overhead_us.value,
        ),
        Unit::Cpu => {
            // Core ML's CPU path computes fp16 models in fp32: weights are read as stored.
            let bytes = if c.data_movement {
                c.output_bytes
            } else {
                c.input_bytes + c.output_bytes + c.weight_bytes
            };
            roof(
                c.flops,
                bytes,
                perf.cpu_gflops * 1e3,
                perf.cpu_bandwidth_gbs * 1e3,
                k.cpu_op_overhead_us.value,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anekit_mil::ops::audit;

    #[test]
    fn op_costs_classify_every_registry_op_once() {
        let a = audit(
            "anekit_plan::cost::OP_COSTS",
            OP_COSTS.iter().map(|(op, _)| *op),
        );
        assert!(a.is_complete(), "{a}");
        let p = audit(
            "anekit_plan::cost::FUSION_PRODUCERS",
            FUSION_PRODUCERS.iter().copied(),
        );
        assert!(p.names_registry_ops(), "{p}");
        assert_eq!(cost_class("frobnicate"), None);
    }

    #[test]
    fn constants_and_compile_time_ops_agree_with_the_rules() {
        for (op, class) in OP_COSTS {
            let compile_time =
                crate::rules::op_support(op) == Some(crate::rules::OpSupport::CompileTime);
            assert_eq!(*class == CostClass::Constant, compile_time, "{op}");
        }
    }
}
