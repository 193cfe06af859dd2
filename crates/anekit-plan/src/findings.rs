//! Findings: what keeps a model off the Neural Engine or slows it there, each with a fix
//! and, where `anekit optimize` can apply it safely, the rewrite that does.

use half::f16;
use serde::Serialize;

use crate::catalog::Generation;
use crate::cost::{OpCost, Unit, padded_bytes};
use crate::graph::{Graph, InputFlex};
use crate::placement::{ComputeUnits, Plan};
use crate::rules::Hit;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Costs performance.
    Warning,
    /// Keeps (much of) the model off the Neural Engine, or can give wrong results.
    Error,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier (`fp32-program`).
    pub id: String,
    /// How much it matters.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// The details for this model.
    pub detail: String,
    /// Ops concerned (names; at most 20 listed).
    pub ops: Vec<String>,
    /// Number of ops concerned.
    pub op_count: usize,
    /// How to fix it.
    pub fix: String,
    /// The `anekit optimize` option that applies the fix, if it can.
    pub auto_fix: Option<String>,
    /// Where the advice comes from.
    pub source: String,
}

struct Builder<'a> {
    graph: &'a Graph<'a>,
    out: Vec<Finding>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        id: &str,
        severity: Severity,
        title: String,
        detail: String,
        ops: &[usize],
        fix: &str,
        auto_fix: Option<&str>,
        source: &str,
    ) {
        self.out.push(Finding {
            id: id.into(),
            severity,
            title,
            detail,
            ops: ops
                .iter()
                .take(20)
                .filter_map(|&i| self.graph.nodes.get(i))
                .map(|n| n.op.display_name().to_string())
                .collect(),
            op_count: ops.len(),
            fix: fix.into(),
            auto_fix: auto_fix.map(str::to_string),
            source: source.into(),
        });
    }
}

fn with_rule(hits: &[Vec<Hit>], rule: &str) -> Vec<usize> {
    hits.iter()
        .enumerate()
        .filter(|(_, h)| h.iter().any(|h| h.rule == rule))
        .map(|(i, _)| i)
        .collect()
}

/// The smallest positive fp16 value (subnormal): anything below rounds to zero.
const FP16_MIN_SUBNORMAL: f32 = 5.960_464_5e-8;

/// Derive the findings of an analysis.
pub fn findings(
    g: &Graph<'_>,
    hits: &[Vec<Hit>],
    costs: &[OpCost],
    plan: &Plan,
    generation: &Generation,
    units: ComputeUnits,
) -> Vec<Finding> {
    let mut b = Builder {
        graph: g,
        out: Vec::new(),
    };
    let compute: Vec<usize> = g
        .nodes
        .iter()
        .filter(|n| !n.constant)
        .map(|n| n.index)
        .collect();
    let n_compute = compute.len().max(1);

    // fp32 program.
    let fp32 = with_rule(hits, "fp32-compute");
    if !fp32.is_empty() {
        let all = fp32.len() * 2 >= n_compute;
        b.add(
            "fp32-program",
            if all { Severity::Error } else { Severity::Warning },
            format!("{} of {} ops compute in fp32, which the Neural Engine cannot", fp32.len(), compute.len()),
            "Core ML runs fp32-typed ML Programs on the GPU and CPU only; the Neural Engine computes in fp16.".into(),
            &fp32,
            "Convert with compute_precision=ct.precision.FLOAT16 (the coremltools default), or run `anekit optimize --fp16` (inputs and outputs stay fp32; outputs change within fp16 precision).",
            Some("--fp16"),
            "CT-TYPED",
        );
    }

    // Range-flexible inputs.
    let range_inputs: Vec<&str> = g
        .inputs
        .iter()
        .filter(|i| i.flex == InputFlex::Range)
        .map(|i| i.name.as_str())
        .collect();
    if !range_inputs.is_empty() {
        let ops = with_rule(hits, "range-flexible");
        b.add(
            "range-flexible-input",
            Severity::Error,
            format!("input(s) {} have range-flexible shapes", range_inputs.join(", ")),
            format!("{} ops depend on the flexible dimension; Core ML runs them on the GPU or CPU except at the default shape.", ops.len()),
            &ops,
            "Use enumerated shapes (ct.EnumeratedShapes, up to 128) for the sizes you need: every enumerated shape can run on the Neural Engine.",
            None,
            "FORUM-724930; CT-FLEX; https://github.com/apple/coremltools/issues/1764",
        );
    }

    // Recurrent layers.
    let rec = with_rule(hits, "recurrent");
    if !rec.is_empty() {
        b.add(
            "recurrent-on-cpu",
            Severity::Error,
            format!("{} recurrent layer(s) (LSTM/GRU/RNN) run on the CPU", rec.len()),
            "The Neural Engine has no sequential recurrence; the layer and the engine switches around it run on the CPU.".into(),
            &rec,
            "Replace the recurrence by convolutions or attention, or unroll a short fixed-length recurrence into matmuls so it can stay on the Neural Engine.",
            None,
            "https://github.com/apple/coremltools/issues/1780; ANEFORGE-CAP scan",
        );
    }

    // Gather / embeddings.
    let gather = with_rule(hits, "gather");
    if !gather.is_empty() {
        b.add(
            "gather-off-ane",
            Severity::Info,
            format!("{} gather op(s) (embedding lookups) run off the Neural Engine", gather.len()),
            "Expected for token embeddings at the start of a model (Apple's optimised distilbert keeps 4 of 606 ops on the CPU for this); costly in the middle of a graph, where it adds two engine switches.".into(),
            &gather,
            "Keep lookups at the model's start; for gathers with constant indices use a one-hot matmul or slices.",
            None,
            "MLANE README; ANEFORGE-CAP gather",
        );
    }

    // Linear layers on sequence data.
    let linear_seq: Vec<usize> = compute
        .iter()
        .copied()
        .filter(|&i| {
            g.nodes.get(i).is_some_and(|n| {
                n.op.op_type == "linear"
                    && g.input_tensor(n, "x")
                        .and_then(|t| t.rank())
                        .is_some_and(|r| r >= 3)
            })
        })
        .collect();
    if !linear_seq.is_empty() {
        b.add(
            "linear-not-conv",
            Severity::Warning,
            format!("{} linear layer(s) on (batch, sequence, channels) data", linear_seq.len()),
            "The Neural Engine's native layout is channels-first (B, C, 1, S); linear layers over the last axis force layout changes.".into(),
            &linear_seq,
            "Use nn.Conv2d 1x1 on (B, C, 1, S) tensors instead of nn.Linear (weights unsqueezed twice), as in apple/ml-ane-transformers. `anekit optimize --linear-to-conv` rewrites each linear as an exact 1x1 conv (it adds transposes around each one; the full benefit needs the (B, C, 1, S) layout throughout).",
            Some("--linear-to-conv"),
            "APPLE-ART Principle 1; MLANE distilbert.py",
        );
    }

    // Last-axis padding waste.
    let align = generation.last_axis_alignment_bytes.value;
    let mut wasteful = Vec::new();
    let mut waste_bytes = 0.0;
    for &i in &compute {
        if plan.ops.get(i).map(|o| o.unit) != Some(Unit::Ane) {
            continue;
        }
        let Some(c) = costs.get(i) else { continue };
        let (mut real, mut padded) = (0.0, 0.0);
        for a in &c.activations {
            real += a.shape.iter().map(|d| *d as f64).product::<f64>() * a.elem;
            padded += padded_bytes(&a.shape, a.elem, align);
        }
        if real > 0.0 && padded >= 4.0 * real && padded - real >= 4096.0 {
            wasteful.push(i);
            waste_bytes += padded - real;
        }
    }
    if !wasteful.is_empty() {
        b.add(
            "last-axis-padding",
            Severity::Warning,
            format!("{} op(s) on the Neural Engine have a short last axis padded to {align} bytes", wasteful.len()),
            format!("Their tensors take at least 4x their size in the Neural Engine layout ({:.1} MiB of padding in all); a singleton last axis costs 32x in fp16.", waste_bytes / 1048576.0),
            &wasteful,
            "Put the sequence or spatial axis last ((B, C, 1, S) layout) so the last axis is long.",
            None,
            "APPLE-ART Principle 1",
        );
    }

    // Multi-head attention in one tensor.
    let mut attn = Vec::new();
    for &i in &compute {
        let Some(n) = g.nodes.get(i) else { continue };
        let heads = match n.op.op_type.as_str() {
            "scaled_dot_product_attention" => g
                .input_tensor(n, "query")
                .and_then(|t| t.fixed_shape())
                .and_then(|s| s.len().checked_sub(3).and_then(|k| s.get(k)).copied()),
            "softmax" => {
                // softmax between two batched matmuls (matmul -> softmax -> matmul)
                let fed_by_matmul = n.inputs.iter().any(|(_, v)| {
                    g.values
                        .get(v)
                        .and_then(|v| v.producer)
                        .and_then(|p| g.nodes.get(p))
                        .is_some_and(|p| p.op.op_type == "matmul")
                });
                let feeds_matmul = n
                    .consumers
                    .iter()
                    .any(|&c| g.nodes.get(c).is_some_and(|c| c.op.op_type == "matmul"));
                if fed_by_matmul && feeds_matmul {
                    g.output_tensors(n)
                        .first()
                        .and_then(|t| t.fixed_shape())
                        .and_then(|s| s.len().checked_sub(3).and_then(|k| s.get(k)).copied())
                } else {
                    None
                }
            }
            _ => None,
        };
        if heads.is_some_and(|h| h > 1) {
            attn.push(i);
        }
    }
    if !attn.is_empty() {
        b.add(
            "attention-not-split",
            Severity::Warning,
            format!("{} multi-head attention block(s) compute all heads in one tensor", attn.len()),
            "Large attention intermediates fall out of the Neural Engine's on-chip buffer.".into(),
            &attn,
            "Split queries, keys and values per head and compute single-head attention with einsum (bchq,bkhc->bkhq), as ml-ane-transformers' SPLIT_EINSUM does.",
            None,
            "APPLE-ART Principle 2; MLANE multihead_attention.py",
        );
    }

    // Reshape/transpose on the Neural Engine.
    let moves: Vec<usize> = compute
        .iter()
        .copied()
        .filter(|&i| {
            plan.ops.get(i).map(|o| o.unit) == Some(Unit::Ane)
                && g.nodes
                    .get(i)
                    .is_some_and(|n| matches!(n.op.op_type.as_str(), "transpose" | "reshape"))
        })
        .collect();
    if moves.len() >= 4 && moves.len() * 5 >= n_compute {
        b.add(
            "reshape-transpose-heavy",
            Severity::Info,
            format!("{} of {} ops on the Neural Engine are reshapes or transposes", moves.len(), compute.len()),
            "Each one copies memory on the Neural Engine because the last axis is stored unpacked.".into(),
            &moves,
            "Keep one layout ((B, C, 1, S)) through the model; use einsum for batched matmuls so only K needs one transpose.",
            None,
            "APPLE-ART Principle 3",
        );
    }

    // Normalisation epsilons that vanish in fp16.
    let mut eps_ops = Vec::new();
    for &i in &compute {
        let Some(n) = g.nodes.get(i) else { continue };
        let param = match n.op.op_type.as_str() {
            "layer_norm" | "batch_norm" | "instance_norm" | "l2_norm" | "rms_norm" => "epsilon",
            _ => continue,
        };
        let Some(v) = g.param_value(n, param) else {
            continue;
        };
        if v.tensor_type().and_then(|t| t.element_count()) != Some(1) {
            continue;
        }
        let Some(eps) = v.as_f32() else { continue };
        let fp16 = v
            .tensor_type()
            .is_some_and(|t| t.dtype == anekit_mil::DataType::Fp16);
        let in_fp16 = f16::from_f32(eps).to_f32();
        if (fp16 && in_fp16 == 0.0) || eps < FP16_MIN_SUBNORMAL {
            eps_ops.push(i);
        }
    }
    if !eps_ops.is_empty() {
        b.add(
            "epsilon-underflows-fp16",
            Severity::Error,
            format!("{} normalisation(s) have an epsilon that is zero in fp16", eps_ops.len()),
            "An epsilon below 6e-8 rounds to 0 in fp16; a constant row then divides by zero (inf/NaN) on the Neural Engine.".into(),
            &eps_ops,
            "Use an epsilon representable in fp16 (Apple's distilbert uses 1e-7 instead of 1e-12); `anekit optimize` raises it to 1e-7.",
            Some("(default)"),
            "MLANE distilbert.py; HOL 16-bit.md",
        );
    }

    // Engine switches.
    if plan.switches.count >= 2 && units.neural_engine() {
        b.add(
            "engine-switches",
            if plan.switches.count >= 6 { Severity::Error } else { Severity::Warning },
            format!("{} engine switches between {} segments", plan.switches.count, plan.segments.len()),
            format!("Each switch synchronises two units and converts {:.1} KiB of data in all; estimated {:.2} ms.", plan.switches.bytes / 1024.0, plan.switches.cost_us / 1000.0),
            &[],
            "Move unsupported ops to the start or end of the model, or replace them (see the other findings), so the Neural Engine part is one segment.",
            None,
            "HOL unsupported-layers.md; https://github.com/apple/coremltools/issues/1975",
        );
    }

    // SDPA with a mask.
    let sdpa = with_rule(hits, "sdpa-mask");
    if !sdpa.is_empty() {
        b.add(
            "sdpa-mask",
            Severity::Warning,
            format!("{} scaled_dot_product_attention op(s) with attn_mask", sdpa.len()),
            "On the direct ANE path the fused SDPA kernel ignores attn_mask; check outputs on device.".into(),
            &sdpa,
            "Decompose masked (causal) attention into matmul + add(mask) + softmax + matmul.",
            None,
            "MAD-README",
        );
    }

    // Activation quantization without int8 compute.
    let int8 = with_rule(hits, "int8-activations");
    if !int8.is_empty() {
        b.add(
            "int8-activations-no-gain",
            Severity::Info,
            format!("{} activation (de)quantize op(s) on a chip without int8-int8 compute", int8.len()),
            format!("{} computes in fp16; W8A8 only reduces memory traffic here.", generation.name),
            &int8,
            "Use weight-only compression (palettization or int8 weights) for chips before A17 Pro/M4.",
            None,
            "CT-QPERF",
        );
    }

    // Compressed weights that this generation expands.
    let mut folded = Vec::new();
    for (i, c) in costs.iter().enumerate() {
        if let Some(e) = &c.weight_encoding
            && !generation
                .native_weight_streams
                .value
                .iter()
                .any(|s| s == e)
        {
            folded.push(i);
        }
    }
    if !folded.is_empty() {
        b.add(
            "compressed-weights-expanded",
            Severity::Info,
            format!("{} op(s) use a weight encoding {} does not stream natively", folded.len(), generation.name),
            "These weights are expanded to dense fp16 when Core ML compiles the model: smaller file, no bandwidth saving.".into(),
            &folded,
            format!("Use an encoding this generation streams natively: {}.", generation.native_weight_streams.value.join(", ")).as_str(),
            None,
            "ANEFORGE-TARGETS _NATIVE_STREAMS",
        );
    }

    // fp32 I/O around an fp16 model.
    let edge_casts: Vec<usize> = compute
        .iter()
        .copied()
        .filter(|&i| {
            g.nodes.get(i).is_some_and(|n| n.op.op_type == "cast")
                && plan.ops.get(i).map(|o| o.unit) == Some(Unit::Ane)
        })
        .collect();
    if !edge_casts.is_empty() {
        b.add(
            "fp32-io",
            Severity::Info,
            format!("{} fp32<->fp16 conversion(s) at the model's inputs/outputs", edge_casts.len()),
            "The Neural Engine converts fp32 inputs and outputs itself; fp16 I/O avoids the conversion (reported ~37% faster I/O on the direct path).".into(),
            &edge_casts,
            "Declare fp16 inputs and outputs (ct.TensorType(dtype=np.float16), iOS 16+).",
            None,
            "MAD-README",
        );
    }

    // Whole model too large for one program.
    let weights: f64 = costs.iter().map(|c| c.weight_bytes).sum();
    if weights > 2e9 {
        b.add(
            "model-too-large",
            Severity::Warning,
            format!("{:.1} GB of weights", weights / 1e9),
            "Single Neural Engine programs are reported to fail above ~2 GB.".into(),
            &[],
            "Split the model into chunks (e.g. FFN chunking) or compress the weights.",
            None,
            "ANEForge README.md (auto-segmentation past ~2 GB per program); SKY",
        );
    }

    b.out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    b.out
}
