//! Op-support rules: when an operation cannot run on the Neural Engine (or only on the CPU),
//! per Neural Engine generation, each with its reason and source.
//!
//! Apple publishes no list ("support changes based on device generation, OS version, tensor
//! sizes" — coremltools#1780), so every rule is a fact someone published: Apple's
//! documentation and engineers, compiles on silicon by public projects (ANEForge's sweep
//! of the MIL vocabulary on the e5rt path that Core ML uses, ANE-only mask), or community
//! reports. A rule's [`Confidence`] says which; rules of [`Confidence::Community`] only add a
//! note to the op, they do not move it (the list they come from is flagged "possibly wrong"
//! by its author).

use anekit_mil::DataType;
use serde::Serialize;

use crate::catalog::Generation;
use crate::graph::{Graph, InputFlex, Node};

/// What a rule does to an op's placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The op cannot run on the Neural Engine (GPU or CPU take it).
    NotAne,
    /// The op runs on the CPU only (neither Neural Engine nor GPU).
    CpuOnly,
    /// A note: a performance or correctness hazard, placement unchanged.
    Note,
}

/// How well a rule is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// A list flagged "possibly wrong" by its author; reported, not applied.
    Community,
    /// One public report.
    Reported,
    /// Compiled or run on silicon by a public project (possibly on one chip only).
    Measured,
    /// Apple documentation or an Apple engineer.
    Documented,
}

/// A rule's static description.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleInfo {
    /// Stable identifier (`fp32-compute`).
    pub id: &'static str,
    /// What the rule says.
    pub title: &'static str,
    /// What it does to placement.
    pub effect: Effect,
    /// How well it is established.
    pub confidence: Confidence,
    /// Where it comes from (keys of the catalog's sources or URLs).
    pub source: &'static str,
    /// The op types the rule looks at (registry names); empty for a rule about every op
    /// (element types, ranks) or one that reads [`OP_SUPPORT`] or [`OP_FLOORS`].
    #[serde(skip)]
    pub ops: &'static [&'static str],
}

/// A rule that fired on an op.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The rule.
    pub rule: &'static str,
    /// What it does.
    pub effect: Effect,
    /// Why, for this op.
    pub reason: String,
}

/// What a rule looks at.
pub struct Ctx<'g, 'a> {
    /// The graph.
    pub graph: &'g Graph<'a>,
    /// The op.
    pub node: &'g Node<'a>,
    /// The Neural Engine generation.
    pub generation: &'g Generation,
}

type Check = fn(&Ctx<'_, '_>) -> Option<String>;

/// A rule: its description and its check (which returns the reason when it fires).
pub struct Rule {
    /// Description.
    pub info: RuleInfo,
    /// The check.
    pub check: Check,
}

const fn rule(
    id: &'static str,
    title: &'static str,
    effect: Effect,
    confidence: Confidence,
    source: &'static str,
    check: Check,
) -> Rule {
    Rule {
        info: RuleInfo {
            id,
            title,
            effect,
            confidence,
            source,
            ops: &[],
        },
        check,
    }
}

impl Rule {
    /// The same rule, looking only at `ops`.
    const fn on(mut self, ops: &'static [&'static str]) -> Rule {
        self.info.ops = ops;
        self
    }
}

use Confidence::*;
use Effect::*;

/// Every rule, in the order they are checked.
pub static RULES: &[Rule] = &[
    rule(
        "control-flow",
        "control flow (cond, while_loop, lists) and the ops inside it run on the CPU",
        CpuOnly,
        Measured,
        "ANEFORGE-SWEEP (cond, while_loop, list_* compile-walled on the ANE); ANEFORGE-CAP (no in-graph loops); GPU placement not documented, CPU assumed",
        check_control_flow,
    ),
    rule(
        "recurrent",
        "RNN, LSTM and GRU layers run on the CPU",
        CpuOnly,
        Documented,
        "https://github.com/apple/coremltools/issues/1780 (Apple engineer: not supported on the neural engine); ANEFORGE-SWEEP (lstm, gru, rnn not implemented on ANE)",
        check_recurrent,
    ),
    rule(
        "fp32-compute",
        "the Neural Engine computes in fp16 only: fp32-typed ops run on the GPU or CPU",
        NotAne,
        Documented,
        "CT-TYPED (fp32-typed ML programs run on GPU and CPU only); ANEFORGE-CAP fp32_compute",
        check_fp32,
    ),
    rule(
        "int-compute",
        "int16/int32/int64 tensors are not supported on the Neural Engine; integer index math runs on the CPU",
        CpuOnly,
        Measured,
        "ANEMLL-PROF (Espresso: 'Unsupported tensor data type: int32'); ANEFORGE-CAP int32_compute; CPU rather than GPU assumed, as for embedding lookups (MLANE README)",
        check_int,
    ),
    rule(
        "bf16-fp8-compute",
        "bf16 and fp8 tensors have no Neural Engine path",
        NotAne,
        Measured,
        "ANEFORGE-CAP bf16_compute",
        check_bf16,
    ),
    rule(
        "cast-inside-graph",
        "cast runs on the Neural Engine only as an fp16<->fp32 conversion at a model input or output",
        NotAne,
        Reported,
        "ANEFORGE-SWEEP (cast not implemented on ANE); MAD-README (the ANE converts fp32 I/O itself); CT-TYPED (fp16 models with fp32 I/O are NE-eligible)",
        check_cast,
    )
    .on(&["cast"]),
    rule(
        "gather",
        "gather, gather_along_axis and gather_nd (embedding lookups) do not run on the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-SWEEP (not implemented on ANE); HOL unsupported-layers.md; MLANE README (embedding lookups on CPU)",
        check_gather,
    ),
    rule(
        "scatter",
        "scatter ops do not run on the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-SWEEP (scatter, scatter_along_axis, scatter_nd not implemented); ANEFORGE-CAP scatter",
        check_scatter,
    ),
    rule(
        "slice-update",
        "a standalone slice_update does not run on the Neural Engine",
        NotAne,
        Measured,
        "ANEMLL-PROF ('Cannot support standalone slice_update'); ANEFORGE-SWEEP",
        check_slice_update,
    ),
    rule(
        "state-ops",
        "reading and writing model state (KV caches) does not compile for the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-SWEEP (read_state compile-walled on M5 Pro, ANE-only)",
        check_state,
    ),
    rule(
        "not-implemented",
        "ops with no Neural Engine implementation",
        NotAne,
        Measured,
        "ANEFORGE-SWEEP (M5 Pro, e5rt path, ANE-only mask 0x4: not-implemented-on-ANE / compile-walled)",
        check_not_implemented,
    ),
    rule(
        "generation-floor",
        "ops that need a newer Neural Engine generation (sin/cos: h15+, topk/affine/resample: h14+)",
        NotAne,
        Measured,
        "ANEFORGE-TARGETS _OP_FLOOR",
        check_floor,
    ),
    rule(
        "dynamic-output",
        "ops whose output size depends on the data run on the CPU",
        CpuOnly,
        Reported,
        "ANEFORGE-SWEEP (non_zero not implemented); assumption for the GPU",
        check_dynamic_output,
    ),
    rule(
        "rank-over-5",
        "tensors of rank above 5 do not run on the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-CAP (reshape rank > 5 rejected); TG (5-D tensors)",
        check_rank,
    ),
    rule(
        "matmul-rank-5",
        "matmul of rank-5 tensors fails to compile for the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-CAP rank5_transpose_matmul",
        check_matmul_rank,
    )
    .on(&["matmul"]),
    rule(
        "axis-extent",
        "an axis longer than the generation's limit (16384 before h16, 65536 from h16; channels 65536)",
        NotAne,
        Measured,
        "ANEFORGE-TARGETS _LIMITS max_tensor_dim, channel_extent",
        check_extent,
    ),
    rule(
        "conv-kernel-width",
        "convolution kernels wider than the generation's limit (13 before h16, 15 from h16)",
        NotAne,
        Measured,
        "ANEFORGE-TARGETS _LIMITS conv_kw_max; ANEFORGE-CAP conv_kernel_ge16",
        check_kernel_width,
    )
    .on(&["conv", "conv_transpose"]),
    rule(
        "range-flexible",
        "ops whose shape depends on a range-flexible input run on the GPU or CPU (the default shape may use the NE)",
        NotAne,
        Documented,
        "FORUM-724930 (Apple: range = ANE only for the default shape; use enumerated shapes); https://github.com/apple/coremltools/issues/1764",
        check_range,
    ),
    rule(
        "runtime-weight",
        "convolution/linear weights that are model inputs, not constants, are not used by the Neural Engine",
        NotAne,
        Reported,
        "SKY (a conv whose weight is a runtime input compiles but ignores it); MAD-M5 (weights baked at compile time)",
        check_runtime_weight,
    )
    .on(&["conv", "conv_transpose", "linear"]),
    rule(
        "topk-k3-k4",
        "topk with k = 3 or 4 fails to compile for the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-CAP topk_k3_k4 (M5)",
        check_topk,
    )
    .on(&["topk"]),
    rule(
        "lrn-channels",
        "local response normalisation over 16 or more channels fails to compile",
        NotAne,
        Measured,
        "ANEFORGE-CAP lrn_channels_ge16",
        check_lrn,
    )
    .on(&["local_response_norm"]),
    rule(
        "batch-to-space-indivisible",
        "batch_to_space with a batch not divisible by the block size fails to compile",
        NotAne,
        Measured,
        "ANEFORGE-CAP batch_to_space_indivisible",
        check_batch_to_space,
    )
    .on(&["batch_to_space"]),
    rule(
        "sdpa-mask",
        "scaled_dot_product_attention with attn_mask: the ANE kernel ignores the mask on the direct path",
        Note,
        Reported,
        "MAD-README (SDPA ignores attn_mask; decompose causal attention)",
        check_sdpa_mask,
    )
    .on(&["scaled_dot_product_attention"]),
    rule(
        "int8-activations",
        "activation quantization (W8A8) is faster only from A17 Pro/M4 (h16) on",
        Note,
        Documented,
        "CT-QPERF",
        check_int8_act,
    )
    .on(&["quantize", "dequantize"]),
    rule(
        "pool-kernel",
        "pooling with a kernel above 13 or a stride above 2 may fall back",
        Note,
        Community,
        "HOL unsupported-layers.md (flagged 'possibly wrong')",
        check_pool,
    )
    .on(&["max_pool", "avg_pool", "l2_pool"]),
    rule(
        "upsample-factor",
        "upsampling by more than 2x may fall back",
        Note,
        Community,
        "HOL unsupported-layers.md (flagged 'possibly wrong')",
        check_upsample,
    )
    .on(&["upsample_bilinear", "upsample_nearest_neighbor"]),
    rule(
        "dilated-conv",
        "dilated convolutions may fall back",
        Note,
        Community,
        "HOL unsupported-layers.md (flagged 'possibly wrong')",
        check_dilated,
    )
    .on(&["conv"]),
];

/// The rule with identifier `id`.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().map(|r| &r.info).find(|r| r.id == id)
}

/// What the Neural Engine does with an op type, before its shapes and element types are
/// looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpSupport {
    /// Runs on the Neural Engine when the rules about every op allow it (element types,
    /// rank, axis extents, flexible shapes).
    Yes,
    /// Runs on the Neural Engine under conditions of its own, checked by the rules that name
    /// the op ([`RuleInfo::ops`], [`OP_FLOORS`]); the text summarises them for the coverage
    /// table.
    When(&'static str),
    /// Kept off the Neural Engine, whatever its arguments, by the rule with this id.
    Off(&'static str),
    /// Folded when Core ML compiles the model (`const`, the `constexpr_*` decompressions).
    CompileTime,
}

/// Every registry op type and what the Neural Engine does with it (the sources are those of
/// the rules named). A test checks that the table classifies every op of the registry once:
/// an op missing here would otherwise be predicted to run on the Neural Engine. An op type
/// not in the table is not an op Core ML knows; the planner does not place it.
pub static OP_SUPPORT: &[(&str, OpSupport)] = {
    use OpSupport::{CompileTime, Off, When, Yes};
    &[
        ("abs", Yes),
        ("acos", Off("not-implemented")),
        ("add", Yes),
        ("affine", When("h14+")),
        ("argsort", Off("not-implemented")),
        ("asin", Off("not-implemented")),
        ("atan", Yes),
        ("atanh", Off("not-implemented")),
        ("avg_pool", Yes),
        ("band_part", Off("not-implemented")),
        ("batch_norm", Yes),
        ("batch_to_space", When("batch divisible by the block size")),
        ("cast", When("fp16<->fp32 at a model input/output only")),
        ("ceil", Yes),
        ("clamped_relu", Yes),
        ("classify", Off("not-implemented")),
        ("clip", Yes),
        ("concat", Yes),
        ("cond", Off("control-flow")),
        ("const", CompileTime),
        ("constexpr_affine_dequantize", CompileTime),
        ("constexpr_blockwise_shift_scale", CompileTime),
        ("constexpr_cast", CompileTime),
        ("constexpr_lut_to_dense", CompileTime),
        ("constexpr_lut_to_sparse", CompileTime),
        ("constexpr_sparse_blockwise_shift_scale", CompileTime),
        ("constexpr_sparse_to_dense", CompileTime),
        (
            "conv",
            When("constant weight; kernel width ≤ 13 (≤ 15 from h16)"),
        ),
        ("conv_quantized", Off("not-implemented")),
        (
            "conv_transpose",
            When("constant weight; kernel width ≤ 13 (≤ 15 from h16)"),
        ),
        ("cos", When("h15+")),
        ("cosh", Off("not-implemented")),
        ("crop", Yes),
        ("crop_resize", Off("not-implemented")),
        ("cumsum", Off("not-implemented")),
        ("depth_to_space", Yes),
        ("dequantize", When("int8 compute pays off from h16")),
        ("einsum", Yes),
        ("elu", Yes),
        ("equal", Yes),
        ("erf", Yes),
        ("exp", Yes),
        ("exp2", Yes),
        ("expand_dims", Yes),
        ("fill", Yes),
        ("fill_like", Yes),
        ("flatten2d", Yes),
        ("floor", Yes),
        ("floor_div", Yes),
        ("gather", Off("gather")),
        ("gather_along_axis", Off("gather")),
        ("gather_nd", Off("gather")),
        ("gelu", Yes),
        ("greater", Yes),
        ("greater_equal", Yes),
        ("gru", Off("recurrent")),
        ("identity", Yes),
        ("instance_norm", Yes),
        ("inverse", Yes),
        ("l2_norm", Yes),
        ("l2_pool", Yes),
        ("layer_norm", Yes),
        ("leaky_relu", Yes),
        ("less", Yes),
        ("less_equal", Yes),
        ("linear", When("constant weight")),
        ("linear_activation", Yes),
        ("list_gather", Off("control-flow")),
        ("list_length", Off("control-flow")),
        ("list_read", Off("control-flow")),
        ("list_scatter", Off("control-flow")),
        ("list_write", Off("control-flow")),
        ("local_response_norm", When("size < 16")),
        ("log", Yes),
        ("logical_and", Off("not-implemented")),
        ("logical_not", Yes),
        ("logical_or", Off("not-implemented")),
        ("logical_xor", Off("not-implemented")),
        ("lstm", Off("recurrent")),
        ("make_list", Off("control-flow")),
        ("matmul", When("rank < 5")),
        ("max_pool", Yes),
        ("maximum", Yes),
        ("minimum", Yes),
        ("mod", Off("not-implemented")),
        ("mul", Yes),
        ("non_maximum_suppression", Off("dynamic-output")),
        ("non_zero", Off("dynamic-output")),
        ("not_equal", Yes),
        ("one_hot", Off("not-implemented")),
        ("pad", Yes),
        ("pixel_shuffle", Yes),
        ("pixel_unshuffle", Yes),
        ("pow", Yes),
        ("prelu", Yes),
        ("quantize", When("int8 compute pays off from h16")),
        ("random_bernoulli", Off("not-implemented")),
        ("random_categorical", Off("not-implemented")),
        ("random_normal", Off("not-implemented")),
        ("random_uniform", Off("not-implemented")),
        ("range_1d", Yes),
        ("read_state", Off("state-ops")),
        ("real_div", Yes),
        ("reduce_argmax", Off("not-implemented")),
        ("reduce_argmin", Off("not-implemented")),
        ("reduce_l1_norm", Yes),
        ("reduce_l2_norm", Yes),
        ("reduce_log_sum", Yes),
        ("reduce_log_sum_exp", Yes),
        ("reduce_max", Yes),
        ("reduce_mean", Yes),
        ("reduce_min", Yes),
        ("reduce_prod", Off("not-implemented")),
        ("reduce_sum", Yes),
        ("reduce_sum_square", Yes),
        ("relu", Yes),
        ("relu6", Yes),
        ("resample", When("h14+")),
        ("reshape", Yes),
        ("reshape_like", Off("not-implemented")),
        ("resize", Yes),
        ("resize_bilinear", Yes),
        ("resize_nearest_neighbor", Yes),
        ("reverse", Yes),
        ("reverse_sequence", Off("not-implemented")),
        ("rnn", Off("recurrent")),
        ("round", Yes),
        ("rsqrt", Yes),
        (
            "scaled_dot_product_attention",
            When("attn_mask ignored on the direct path (note)"),
        ),
        ("scaled_tanh", Yes),
        ("scatter", Off("scatter")),
        ("scatter_along_axis", Off("scatter")),
        ("scatter_nd", Off("scatter")),
        ("select", Yes),
        ("shape", Off("not-implemented")),
        ("sigmoid", Yes),
        ("sigmoid_hard", Yes),
        ("sign", Yes),
        ("silu", Yes),
        ("sin", When("h15+")),
        ("sinh", Off("not-implemented")),
        ("slice_by_index", Yes),
        ("slice_by_size", Yes),
        ("slice_update", Off("slice-update")),
        ("sliding_windows", Off("not-implemented")),
        ("softmax", Yes),
        ("softplus", Yes),
        ("softplus_parametric", Yes),
        ("softsign", Yes),
        ("space_to_batch", Yes),
        ("space_to_depth", Yes),
        ("split", Yes),
        ("sqrt", Yes),
        ("square", Yes),
        ("squeeze", Yes),
        ("stack", Yes),
        ("sub", Yes),
        ("tan", Off("not-implemented")),
        ("tanh", Yes),
        ("threshold", Yes),
        ("thresholded_relu", Yes),
        ("tile", Yes),
        ("topk", When("h14+; k not 3 or 4")),
        ("transpose", Yes),
        ("upsample_bilinear", Yes),
        ("upsample_nearest_neighbor", Yes),
        ("while_loop", Off("control-flow")),
        ("write_state", Off("state-ops")),
    ]
};

/// What the Neural Engine does with `op_type`; `None` for an op type the registry does not
/// know (Core ML will not compile it).
pub fn op_support(op_type: &str) -> Option<OpSupport> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, OpSupport>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| OP_SUPPORT.iter().copied().collect())
        .get(op_type)
        .copied()
}

/// Whether [`OP_SUPPORT`] keeps the op off the Neural Engine by rule `id`.
fn off(c: &Ctx<'_, '_>, id: &str) -> bool {
    matches!(op_support(ty(c)), Some(OpSupport::Off(r)) if r == id)
}

/// Rules whose answer depends on the Neural Engine generation.
pub const PER_GENERATION: &[&str] = &[
    "generation-floor",
    "axis-extent",
    "conv-kernel-width",
    "int8-activations",
];

/// Run every rule on one op; returns the hits in rule order. Constants never hit.
pub fn check(ctx: &Ctx<'_, '_>) -> Vec<Hit> {
    check_some(ctx, |_| true)
}

/// Run the rules `select` accepts (by id) on one op, in rule order.
pub fn check_some(ctx: &Ctx<'_, '_>, select: impl Fn(&str) -> bool) -> Vec<Hit> {
    if ctx.node.constant {
        return Vec::new();
    }
    let op = ty(ctx);
    RULES
        .iter()
        .filter(|r| r.info.ops.is_empty() || r.info.ops.contains(&op))
        .filter(|r| select(r.info.id))
        .filter_map(|r| {
            (r.check)(ctx).map(|reason| Hit {
                rule: r.info.id,
                effect: r.info.effect,
                reason,
            })
        })
        .collect()
}

fn ty<'x>(c: &Ctx<'x, '_>) -> &'x str {
    c.node.op.op_type.as_str()
}

fn check_control_flow(c: &Ctx<'_, '_>) -> Option<String> {
    let t = ty(c);
    if off(c, "control-flow") {
        return Some(format!("`{t}` is control flow / a list op"));
    }
    if c.node.depth > 0 {
        return Some("inside a control-flow block".into());
    }
    None
}

fn check_recurrent(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "recurrent").then(|| format!("`{}` is a recurrent layer", ty(c)))
}

fn is_edge_cast(c: &Ctx<'_, '_>) -> bool {
    if ty(c) != "cast" {
        return false;
    }
    let g = c.graph;
    let ins = g.runtime_inputs(c.node);
    let outs = g.output_tensors(c.node);
    let (Some((_, i)), Some(o)) = (ins.first(), outs.first()) else {
        return false;
    };
    let floats = |a: DataType, b: DataType| {
        matches!(
            (a, b),
            (DataType::Fp32, DataType::Fp16) | (DataType::Fp16, DataType::Fp32)
        )
    };
    if !floats(i.dtype, o.dtype) {
        return false;
    }
    let from_input = g
        .input_name(c.node, "x")
        .is_some_and(|n| g.is_function_input(n));
    from_input || c.node.feeds_output
}

fn check_fp32(c: &Ctx<'_, '_>) -> Option<String> {
    if ty(c) == "cast" {
        return None;
    }
    c.graph
        .runtime_dtypes(c.node)
        .contains(&DataType::Fp32)
        .then(|| "computes in fp32".to_string())
}

fn check_int(c: &Ctx<'_, '_>) -> Option<String> {
    c.graph
        .runtime_dtypes(c.node)
        .into_iter()
        .find(|d| {
            matches!(
                d,
                DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Uint16
                    | DataType::Uint32
                    | DataType::Uint64
            )
        })
        .map(|d| format!("has a run-time {d} tensor"))
}

fn check_bf16(c: &Ctx<'_, '_>) -> Option<String> {
    c.graph
        .runtime_dtypes(c.node)
        .into_iter()
        .find(|d| matches!(d, DataType::Bf16 | DataType::Fp8E4M3Fn | DataType::Fp8E5M2))
        .map(|d| format!("has a run-time {d} tensor"))
}

fn check_cast(c: &Ctx<'_, '_>) -> Option<String> {
    (!is_edge_cast(c))
        .then(|| "a cast that is not an fp16/fp32 conversion at a model input or output".into())
}

fn check_gather(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "gather").then(|| format!("`{}` has no Neural Engine implementation", ty(c)))
}

fn check_scatter(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "scatter").then(|| format!("`{}` has no Neural Engine implementation", ty(c)))
}

fn check_slice_update(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "slice-update").then(|| "standalone slice_update".into())
}

fn check_state(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "state-ops").then(|| format!("`{}` accesses a model state", ty(c)))
}

fn check_not_implemented(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "not-implemented").then(|| format!("`{}` has no Neural Engine implementation", ty(c)))
}

/// Op → the first generation that runs it natively (ANEForge `_OP_FLOOR`, MIL names).
pub const OP_FLOORS: &[(&str, u32)] = &[
    ("sin", 15),
    ("cos", 15),
    ("topk", 14),
    ("affine", 14),
    ("resample", 14),
];

fn check_floor(c: &Ctx<'_, '_>) -> Option<String> {
    let (_, floor) = OP_FLOORS.iter().find(|(o, _)| *o == ty(c))?;
    (c.generation.number() < *floor).then(|| {
        format!(
            "`{}` needs h{floor} or newer; this chip is {}",
            ty(c),
            c.generation.name
        )
    })
}

fn check_dynamic_output(c: &Ctx<'_, '_>) -> Option<String> {
    off(c, "dynamic-output").then(|| format!("`{}` has a data-dependent output size", ty(c)))
}

fn all_tensors<'g>(c: &'g Ctx<'_, '_>) -> Vec<&'g anekit_mil::TensorType> {
    let mut v: Vec<_> = c
        .graph
        .runtime_inputs(c.node)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    v.extend(c.graph.output_tensors(c.node));
    v
}

fn check_rank(c: &Ctx<'_, '_>) -> Option<String> {
    all_tensors(c)
        .into_iter()
        .filter_map(|t| t.rank())
        .find(|r| *r > 5)
        .map(|r| format!("has a rank-{r} tensor"))
}

fn check_matmul_rank(c: &Ctx<'_, '_>) -> Option<String> {
    all_tensors(c)
        .into_iter()
        .filter_map(|t| t.rank())
        .find(|r| *r == 5)
        .map(|_| "matmul on rank-5 tensors".into())
}

fn check_extent(c: &Ctx<'_, '_>) -> Option<String> {
    let max = c.generation.max_tensor_dim.value;
    let chan = c.generation.channel_extent.value;
    for t in all_tensors(c) {
        let Some(shape) = t.fixed_shape() else {
            continue;
        };
        for (i, d) in shape.iter().enumerate() {
            let (limit, what) = if shape.len() == 4 && i == 1 {
                (chan, "channel")
            } else {
                (max, "axis")
            };
            if *d > limit {
                return Some(format!(
                    "{what} {i} has {d} elements, above the {} limit of {limit}",
                    c.generation.name
                ));
            }
        }
    }
    None
}

fn check_kernel_width(c: &Ctx<'_, '_>) -> Option<String> {
    let w = c.graph.input_tensor(c.node, "weight")?;
    let kw = *w.fixed_shape()?.last()?;
    let max = c.generation.conv_kernel_width_max.value;
    (w.rank()? >= 3 && kw > max).then(|| {
        format!(
            "kernel width {kw} is above the {} limit of {max}",
            c.generation.name
        )
    })
}

fn check_range(c: &Ctx<'_, '_>) -> Option<String> {
    (c.node.dynamic_shape && c.node.flex == InputFlex::Range)
        .then(|| "its shape depends on a range-flexible input".into())
}

fn check_runtime_weight(c: &Ctx<'_, '_>) -> Option<String> {
    (!c.graph.param_is_constant(c.node, "weight"))
        .then(|| "its weight is computed at run time, not a constant".into())
}

fn check_topk(c: &Ctx<'_, '_>) -> Option<String> {
    let k = c.graph.param_ints(c.node, "k")?;
    matches!(k.as_slice(), [3] | [4]).then(|| format!("k = {}", k.first().copied().unwrap_or(0)))
}

fn check_lrn(c: &Ctx<'_, '_>) -> Option<String> {
    let size = c.graph.param_ints(c.node, "size")?;
    let s = *size.first()?;
    (s >= 16).then(|| format!("size {s}"))
}

fn check_batch_to_space(c: &Ctx<'_, '_>) -> Option<String> {
    let block = c.graph.param_ints(c.node, "block_shape")?;
    let x = c.graph.input_tensor(c.node, "x")?;
    let n = *x.fixed_shape()?.first()?;
    let f = block.iter().try_fold(1i64, |a, b| a.checked_mul(*b))?;
    let f = u64::try_from(f).ok()?;
    (f > 0 && n % f != 0).then(|| format!("batch {n} is not divisible by {f}"))
}

fn check_sdpa_mask(c: &Ctx<'_, '_>) -> Option<String> {
    c.node
        .op
        .inputs
        .contains_key("attn_mask")
        .then(|| "has an attn_mask".into())
}

fn check_int8_act(c: &Ctx<'_, '_>) -> Option<String> {
    (c.generation.number() < 16).then(|| {
        format!(
            "{} has no int8-int8 fast path; W8A8 saves bandwidth only",
            c.generation.name
        )
    })
}

fn check_pool(c: &Ctx<'_, '_>) -> Option<String> {
    let k = c
        .graph
        .param_ints(c.node, "kernel_sizes")
        .unwrap_or_default();
    let s = c.graph.param_ints(c.node, "strides").unwrap_or_default();
    if let Some(k) = k.iter().find(|k| **k > 13) {
        return Some(format!("kernel {k}"));
    }
    s.iter().find(|s| **s > 2).map(|s| format!("stride {s}"))
}

fn check_upsample(c: &Ctx<'_, '_>) -> Option<String> {
    ["scale_factor_height", "scale_factor_width"]
        .iter()
        .filter_map(|p| c.graph.param_f32(c.node, p))
        .find(|f| *f > 2.0)
        .map(|f| format!("scale factor {f}"))
}

fn check_dilated(c: &Ctx<'_, '_>) -> Option<String> {
    let d = c.graph.param_ints(c.node, "dilations")?;
    d.iter().any(|x| *x > 1).then(|| format!("dilations {d:?}"))
}

/// The `Neural Engine` column of `docs/op-coverage.md`: what [`OP_SUPPORT`] says about each
/// op type, independent of shapes and dtypes (which the legend states).
pub fn coverage_column() -> anekit_mil::ops::CoverageColumn {
    let cells = OP_SUPPORT
        .iter()
        .map(|(op, support)| {
            let cell = match support {
                OpSupport::Yes => "yes".to_string(),
                OpSupport::When(c) => format!("yes: {c}"),
                OpSupport::Off(rule) => match rule_info(rule).map(|r| r.effect) {
                    Some(Effect::CpuOnly) => "CPU".to_string(),
                    _ => "no".to_string(),
                },
                OpSupport::CompileTime => "compile time".to_string(),
            };
            ((*op).to_string(), cell)
        })
        .collect();
    anekit_mil::ops::CoverageColumn {
        header: "Neural Engine".into(),
        legend:
            "what `anekit analyze` predicts for the op type (`anekit_plan::rules::OP_SUPPORT`, \
                 each rule with its source): **yes** (with the op's own conditions), **no** (runs \
                 on the GPU or CPU), **CPU** (CPU only), **compile time** (folded when Core ML \
                 compiles the model). For every op: fp16 tensors only (fp32 and integer tensors \
                 keep an op off the Neural Engine), rank ≤ 5, axes ≤ 16384 elements before h16 \
                 and ≤ 65536 from h16, no range-flexible shapes."
                .into(),
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anekit_mil::ops::audit;

    #[test]
    fn op_support_classifies_every_registry_op_once() {
        let a = audit(
            "anekit_plan::rules::OP_SUPPORT",
            OP_SUPPORT.iter().map(|(op, _)| *op),
        );
        assert!(a.is_complete(), "{a}");
        let floors = audit(
            "anekit_plan::rules::OP_FLOORS",
            OP_FLOORS.iter().map(|(op, _)| *op),
        );
        assert!(floors.names_registry_ops(), "{floors}");
        for r in RULES {
            let a = audit(
                &format!("ops of rule {}", r.info.id),
                r.info.ops.iter().copied(),
            );
            assert!(a.names_registry_ops(), "{a}");
        }
    }

    #[test]
    fn op_support_agrees_with_the_rules() {
        for (op, support) in OP_SUPPORT {
            let named_by_rule = RULES
                .iter()
                .any(|r| r.info.confidence != Confidence::Community && r.info.ops.contains(op))
                || OP_FLOORS.iter().any(|(o, _)| o == op);
            match support {
                OpSupport::Off(id) => {
                    let rule = rule_info(id).unwrap_or_else(|| panic!("{op}: no rule {id}"));
                    assert_ne!(rule.effect, Effect::Note, "{op}: {id} is a note");
                    assert!(rule.ops.is_empty(), "{op}: {id} reads OP_SUPPORT, not ops");
                    assert!(!named_by_rule, "{op} is off the NE yet has conditions");
                }
                OpSupport::When(_) => assert!(named_by_rule, "{op}: no rule checks its condition"),
                OpSupport::Yes | OpSupport::CompileTime => {
                    assert!(!named_by_rule, "{op} has conditions: make it When")
                }
            }
        }
    }

    #[test]
    fn unknown_op_types_have_no_support_entry() {
        assert_eq!(op_support("frobnicate"), None);
        assert_eq!(
            op_support("conv"),
            Some(OpSupport::When(
                "constant weight; kernel width ≤ 13 (≤ 15 from h16)"
            ))
        );
        assert_eq!(op_support("gather"), Some(OpSupport::Off("gather")));
    }
}
