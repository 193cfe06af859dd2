//! The cost model: FLOPs and bytes of every op, and its time on each compute unit.
//!
//! Per op: FLOPs from the analysed shapes (2 per multiply-accumulate); bytes of the run-time
//! inputs and outputs; weight bytes as stored (compressed weights at their stored size when
//! the generation streams that encoding natively, else expanded to dense fp16). On the
//! Neural Engine every activation's last axis is padded to the generation's alignment
//! (64 bytes; `APPLE-ART` Principle 1), so a `[…, 1]` tensor costs 32× its size in fp16.
//!
//! Time on a unit is a roofline: `max(flops / peak, bytes / bandwidth)` plus a per-op
//! overhead (GPU, CPU). On the Neural Engine, weights always stream from DRAM; activations
//! stay in the on-chip buffer when an op's working set fits (`TG`, `ANEINFER`) and are then
//! charged at a multiple of the DRAM bandwidth (catalog constant
//! `ane_onchip_bandwidth_factor`, an assumption), otherwise at DRAM bandwidth.

use anekit_mil::{DataType, TensorType};
use serde::Serialize;

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
    /// Shapes and element sizes of run-time inputs and outputs, for the padded layout.
    #[serde(skip)]
    pub activations: Vec<(Vec<u64>, f64)>,
    /// Weight bytes as stored in the model.
    pub weight_bytes: f64,
    /// Weight bytes once expanded to dense fp16.
    pub weight_dense_bytes: f64,
    /// Compression encoding of the weights (`int4`, `int8`, `sparse`, `blockwise`), if any.
    pub weight_encoding: Option<String>,
    /// A pure data-movement op (reshape, transpose, concat, slice, …).
    pub data_movement: bool,
    /// A unary activation applied to the only use of a conv/linear/matmul output: the Neural
    /// Engine applies it on the way out of the producer, with no activation traffic of its own.
    pub fused: bool,
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
    for (_, t) in &ins {
        c.input_bytes += count(t) * elem_bytes(t.dtype);
        if let Some(s) = t.fixed_shape() {
            c.activations.push((s, ane_elem(t.dtype)));
        }
    }
    for t in &outs {
        c.output_bytes += count(t) * elem_bytes(t.dtype);
        if let Some(s) = t.fixed_shape() {
            c.activations.push((s, ane_elem(t.dtype)));
        }
    }
    weights(g, n, &mut c);
    c.data_movement = class == CostClass::DataMovement;
    c.fused = matches!(class, CostClass::PerElement { fusable: true, .. })
        && ins.len() == 1
        && n.inputs.iter().any(|(_, v)| {
            g.values
                .get(v)
                .and_then(|v| v.producer)
                .and_then(|p| g.nodes.get(p))
                .is_some_and(|p| {
                    p.consumers.len() == 1 && FUSION_PRODUCERS.contains(&p.op.op_type.as_str())
                })
        });
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
/// the activations fit on chip).
pub fn ane_bytes(c: &OpCost, generation: &Generation) -> (f64, f64, bool) {
    let native = c.weight_encoding.as_ref().is_none_or(|e| {
        generation
            .native_weight_streams
            .value
            .iter()
            .any(|s| s == e)
    });
    let w = if native {
        c.weight_bytes
    } else {
        c.weight_dense_bytes
    };
    let align = generation.last_axis_alignment_bytes.value;
    let act: f64 = if c.fused {
        0.0
    } else {
        c.activations
            .iter()
            .map(|(s, e)| padded_bytes(s, *e, align))
            .sum()
    };
    (w, act, act <= generation.sram_bytes.value as f64)
}

/// Time of `c` on `unit`.
pub fn op_time(
    c: &OpCost,
    unit: Unit,
    perf: &ChipPerf,
    generation: &Generation,
    k: &Constants,
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
        Unit::Ane => {
            let (w, act, on_chip) = ane_bytes(c, generation);
            let bw = perf.ane_bandwidth_gbs * 1e3;
            let act_bw = if on_chip {
                bw * k.ane_onchip_bandwidth_factor.value
            } else {
                bw
            };
            let compute_us = c.flops / (perf.ane_tflops * 1e6);
            let memory_us = w / bw + act / act_bw;
            OpTime {
                us: compute_us.max(memory_us),
                compute_us,
                memory_us,
            }
        }
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
