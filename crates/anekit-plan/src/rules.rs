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
        },
        check,
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
    ),
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
    ),
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
    ),
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
    ),
    rule(
        "topk-k3-k4",
        "topk with k = 3 or 4 fails to compile for the Neural Engine",
        NotAne,
        Measured,
        "ANEFORGE-CAP topk_k3_k4 (M5)",
        check_topk,
    ),
    rule(
        "lrn-channels",
        "local response normalisation over 16 or more channels fails to compile",
        NotAne,
        Measured,
        "ANEFORGE-CAP lrn_channels_ge16",
        check_lrn,
    ),
    rule(
        "batch-to-space-indivisible",
        "batch_to_space with a batch not divisible by the block size fails to compile",
        NotAne,
        Measured,
        "ANEFORGE-CAP batch_to_space_indivisible",
        check_batch_to_space,
    ),
    rule(
        "sdpa-mask",
        "scaled_dot_product_attention with attn_mask: the ANE kernel ignores the mask on the direct path",
        Note,
        Reported,
        "MAD-README (SDPA ignores attn_mask; decompose causal attention)",
        check_sdpa_mask,
    ),
    rule(
        "int8-activations",
        "activation quantization (W8A8) is faster only from A17 Pro/M4 (h16) on",
        Note,
        Documented,
        "CT-QPERF",
        check_int8_act,
    ),
    rule(
        "pool-kernel",
        "pooling with a kernel above 13 or a stride above 2 may fall back",
        Note,
        Community,
        "HOL unsupported-layers.md (flagged 'possibly wrong')",
        check_pool,
    ),
    rule(
        "upsample-factor",
        "upsampling by more than 2x may fall back",
        Note,
        Community,
        "HOL unsupported-layers.md (flagged 'possibly wrong')",
        check_upsample,
    ),
    rule(
        "dilated-conv",
        "dilated convolutions may fall back",
        Note,
        Community,
        "HOL unsupported-layers.md (flagged 'possibly wrong')",
        check_dilated,
    ),
];

/// The rule with identifier `id`.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().map(|r| &r.info).find(|r| r.id == id)
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
    RULES
        .iter()
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
    if matches!(t, "cond" | "while_loop") || t.starts_with("list_") || t == "make_list" {
        return Some(format!("`{t}` is control flow / a list op"));
    }
    if c.node.depth > 0 {
        return Some("inside a control-flow block".into());
    }
    None
}

fn check_recurrent(c: &Ctx<'_, '_>) -> Option<String> {
    matches!(ty(c), "lstm" | "gru" | "rnn").then(|| format!("`{}` is a recurrent layer", ty(c)))
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
    (ty(c) == "cast" && !is_edge_cast(c))
        .then(|| "a cast that is not an fp16/fp32 conversion at a model input or output".into())
}

fn check_gather(c: &Ctx<'_, '_>) -> Option<String> {
    matches!(ty(c), "gather" | "gather_along_axis" | "gather_nd")
        .then(|| format!("`{}` has no Neural Engine implementation", ty(c)))
}

fn check_scatter(c: &Ctx<'_, '_>) -> Option<String> {
    matches!(ty(c), "scatter" | "scatter_along_axis" | "scatter_nd")
        .then(|| format!("`{}` has no Neural Engine implementation", ty(c)))
}

fn check_slice_update(c: &Ctx<'_, '_>) -> Option<String> {
    (ty(c) == "slice_update").then(|| "standalone slice_update".into())
}

fn check_state(c: &Ctx<'_, '_>) -> Option<String> {
    matches!(ty(c), "read_state" | "write_state" | "coreml_update_state")
        .then(|| format!("`{}` accesses a model state", ty(c)))
}

/// Ops the ANEForge sweep found not implemented or compile-walled on the ANE, other than
/// those with their own rule.
const NOT_IMPLEMENTED: &[&str] = &[
    "acos",
    "asin",
    "atanh",
    "band_part",
    "cosh",
    "crop_resize",
    "cumsum",
    "logical_and",
    "logical_or",
    "logical_xor",
    "mod",
    "one_hot",
    "random_bernoulli",
    "random_categorical",
    "random_normal",
    "random_uniform",
    "reduce_argmax",
    "reduce_argmin",
    "reduce_prod",
    "reverse_sequence",
    "shape",
    "sinh",
    "sliding_windows",
    "tan",
    "argsort",
    "classify",
    "conv_quantized",
    "reshape_like",
];

fn check_not_implemented(c: &Ctx<'_, '_>) -> Option<String> {
    NOT_IMPLEMENTED
        .contains(&ty(c))
        .then(|| format!("`{}` has no Neural Engine implementation", ty(c)))
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
    matches!(ty(c), "non_zero" | "non_maximum_suppression")
        .then(|| format!("`{}` has a data-dependent output size", ty(c)))
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
    if !matches!(ty(c), "matmul") {
        return None;
    }
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
    if !matches!(ty(c), "conv" | "conv_transpose") {
        return None;
    }
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
    if !matches!(ty(c), "conv" | "conv_transpose" | "linear") {
        return None;
    }
    (!c.graph.param_is_constant(c.node, "weight"))
        .then(|| "its weight is computed at run time, not a constant".into())
}

fn check_topk(c: &Ctx<'_, '_>) -> Option<String> {
    if ty(c) != "topk" {
        return None;
    }
    let k = c.graph.param_ints(c.node, "k")?;
    matches!(k.as_slice(), [3] | [4]).then(|| format!("k = {}", k.first().copied().unwrap_or(0)))
}

fn check_lrn(c: &Ctx<'_, '_>) -> Option<String> {
    if ty(c) != "local_response_norm" {
        return None;
    }
    let size = c.graph.param_ints(c.node, "size")?;
    let s = *size.first()?;
    (s >= 16).then(|| format!("size {s}"))
}

fn check_batch_to_space(c: &Ctx<'_, '_>) -> Option<String> {
    if ty(c) != "batch_to_space" {
        return None;
    }
    let block = c.graph.param_ints(c.node, "block_shape")?;
    let x = c.graph.input_tensor(c.node, "x")?;
    let n = *x.fixed_shape()?.first()?;
    let f = block.iter().try_fold(1i64, |a, b| a.checked_mul(*b))?;
    let f = u64::try_from(f).ok()?;
    (f > 0 && n % f != 0).then(|| format!("batch {n} is not divisible by {f}"))
}

fn check_sdpa_mask(c: &Ctx<'_, '_>) -> Option<String> {
    (ty(c) == "scaled_dot_product_attention" && c.node.op.inputs.contains_key("attn_mask"))
        .then(|| "has an attn_mask".into())
}

fn check_int8_act(c: &Ctx<'_, '_>) -> Option<String> {
    (matches!(ty(c), "quantize" | "dequantize") && c.generation.number() < 16).then(|| {
        format!(
            "{} has no int8-int8 fast path; W8A8 saves bandwidth only",
            c.generation.name
        )
    })
}

fn check_pool(c: &Ctx<'_, '_>) -> Option<String> {
    if !matches!(ty(c), "max_pool" | "avg_pool" | "l2_pool") {
        return None;
    }
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
    if !ty(c).starts_with("upsample") {
        return None;
    }
    ["scale_factor_height", "scale_factor_width"]
        .iter()
        .filter_map(|p| c.graph.param_f32(c.node, p))
        .find(|f| *f > 2.0)
        .map(|f| format!("scale factor {f}"))
}

fn check_dilated(c: &Ctx<'_, '_>) -> Option<String> {
    if ty(c) != "conv" {
        return None;
    }
    let d = c.graph.param_ints(c.node, "dilations")?;
    d.iter().any(|x| *x > 1).then(|| format!("dilations {d:?}"))
}

/// Op-specific conditions of the rules above, for the coverage table.
const CONDITIONS: &[(&str, &str)] = &[
    ("conv", "constant weight; kernel width ≤ 13 (≤ 15 from h16)"),
    (
        "conv_transpose",
        "constant weight; kernel width ≤ 13 (≤ 15 from h16)",
    ),
    ("linear", "constant weight"),
    ("matmul", "rank < 5"),
    ("topk", "h14+; k not 3 or 4"),
    ("local_response_norm", "size < 16"),
    ("batch_to_space", "batch divisible by the block size"),
    (
        "scaled_dot_product_attention",
        "attn_mask ignored on the direct path (note)",
    ),
    ("quantize", "int8 compute pays off from h16"),
    ("dequantize", "int8 compute pays off from h16"),
    ("cast", "fp16<->fp32 at a model input/output only"),
    ("sin", "h15+"),
    ("cos", "h15+"),
    ("affine", "h14+"),
    ("resample", "h14+"),
];

/// The `Neural Engine` column of `docs/op-coverage.md`: what the rules say about each op
/// type, independent of shapes and dtypes (which the legend states).
pub fn coverage_column() -> anekit_mil::ops::CoverageColumn {
    use std::collections::BTreeMap;
    let mut cells = BTreeMap::new();
    for (op, _) in anekit_mil::ops::registry().iter() {
        let cell = if op == "const" || op.starts_with("constexpr_") {
            "compile time".to_string()
        } else if matches!(
            op,
            "lstm" | "gru" | "rnn" | "cond" | "while_loop" | "make_list"
        ) || op.starts_with("list_")
            || matches!(op, "non_zero" | "non_maximum_suppression")
        {
            "CPU".to_string()
        } else if NOT_IMPLEMENTED.contains(&op)
            || matches!(
                op,
                "gather"
                    | "gather_along_axis"
                    | "gather_nd"
                    | "scatter"
                    | "scatter_along_axis"
                    | "scatter_nd"
                    | "slice_update"
                    | "read_state"
                    | "write_state"
                    | "coreml_update_state"
            )
        {
            "no".to_string()
        } else if let Some((_, c)) = CONDITIONS.iter().find(|(o, _)| *o == op) {
            format!("yes: {c}")
        } else {
            "yes".to_string()
        };
        cells.insert(op.to_string(), cell);
    }
    anekit_mil::ops::CoverageColumn {
        header: "Neural Engine".into(),
        legend: "what `anekit analyze` predicts for the op type (`anekit_plan::rules`, each rule \
                 with its source): **yes** (with the op's own conditions), **no** (runs on the \
                 GPU or CPU), **CPU** (CPU only), **compile time** (folded when Core ML compiles \
                 the model). For every op: fp16 tensors only (fp32 and integer tensors keep an \
                 op off the Neural Engine), rank ≤ 5, axes ≤ 16384 elements before h16 and \
                 ≤ 65536 from h16, no range-flexible shapes."
            .into(),
        cells,
    }
}
