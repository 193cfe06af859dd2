//! One test per op-support rule: a program where the rule must fire and one where it must
//! not, on the chips whose generation decides it. The expectation of each test is the
//! published fact the rule encodes; its source is named above the test (keys resolve in
//! `data/catalog.json` `sources`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anekit_plan::ComputeUnits;
use anekit_plan::cost::Unit;
use anekit_plan::graph::InputFlex;
use anekit_plan::rules::{Confidence, Effect, RULES, rule_info};
use support::*;

fn unary(opset: &str, dtype: &str, shape: &str, op: &str, extra: &str) -> String {
    program(
        opset,
        &format!("tensor<{dtype}, [{shape}]> x"),
        &format!("    tensor<{dtype}, [{shape}]> y = {op}(x = x{extra})[name = string(\"y\")];"),
        "y",
    )
}

/// Every rule has a source naming a catalog source key or a URL, and a test below.
#[test]
fn every_rule_is_sourced_and_tested() {
    let catalog = anekit_plan::Catalog::builtin();
    let tests = include_str!("rules.rs");
    for r in RULES {
        let i = &r.info;
        let first = anekit_plan::catalog::source_key(i.source);
        assert!(
            catalog.sources.contains_key(first) || i.source.starts_with("http"),
            "rule {} cites `{}`, not a catalog source key",
            i.id,
            i.source
        );
        assert!(
            tests.contains(&format!("\"{}\"", i.id)),
            "rule {} has no test",
            i.id
        );
        assert!(rule_info(i.id).is_some());
    }
    // Community-list rules never move an op.
    for r in RULES
        .iter()
        .filter(|r| r.info.confidence == Confidence::Community)
    {
        assert_eq!(r.info.effect, Effect::Note, "{}", r.info.id);
    }
}

/// Source: ANEFORGE-SWEEP (cond/while_loop compile-walled); the fixture runs a while_loop
/// and a cond.
#[test]
fn control_flow() {
    let r = fixture("control_flow_fp32_ios17", "M4", ComputeUnits::All);
    let wl = r.ops.iter().find(|o| o.op_type == "while_loop").unwrap();
    assert!(wl.rules.contains(&"control-flow".to_string()));
    assert_eq!(wl.unit, Unit::Cpu);
    // ops nested inside the loop body run on the CPU too
    assert!(
        r.ops
            .iter()
            .filter(|o| o.depth > 0 && o.unit != Unit::None)
            .all(|o| o.unit == Unit::Cpu)
    );
    let plain = analyze(&unary("ios18", "fp16", "1, 64", "relu", ""), "M4");
    assert!(!fired(&plain, "y", "control-flow"));
}

/// Source: coremltools#1780 (Apple engineer: RNN/LSTM not supported on the neural engine).
#[test]
fn recurrent() {
    let r = fixture("lstm_fp32_ios15", "M1", ComputeUnits::CpuAndNe);
    let lstm = r.ops.iter().find(|o| o.op_type == "lstm").unwrap();
    assert!(lstm.rules.contains(&"recurrent".to_string()));
    assert_eq!(lstm.unit, Unit::Cpu);
    // CPU even when the GPU is allowed
    let r = fixture("lstm_fp32_ios15", "M1", ComputeUnits::CpuAndGpu);
    assert_eq!(
        r.ops.iter().find(|o| o.op_type == "lstm").unwrap().unit,
        Unit::Cpu
    );
}

/// Source: CT-TYPED (fp32-typed programs run on GPU/CPU only; fp16 ones are NE-eligible).
#[test]
fn fp32_compute() {
    let r = analyze(&unary("ios16", "fp32", "1, 64, 1, 64", "relu", ""), "M2");
    assert!(fired(&r, "y", "fp32-compute"));
    assert_eq!(unit(&r, "y"), Unit::Gpu);
    let r = analyze(&unary("ios16", "fp16", "1, 64, 1, 64", "relu", ""), "M2");
    assert!(!fired(&r, "y", "fp32-compute"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEMLL-PROF ("Unsupported tensor data type: int32").
#[test]
fn int_compute() {
    let p = program(
        "ios17",
        "tensor<int32, [1, 64]> x",
        "    tensor<int32, [1, 64]> y = add(x = x, y = int32(1))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M3");
    assert!(fired(&r, "y", "int-compute"));
    assert_eq!(unit(&r, "y"), Unit::Cpu);
    // integer arithmetic on constants is folded at compile time: no rule, no unit
    let p = program(
        "ios17",
        "tensor<fp16, [1, 8192]> x",
        "    tensor<int32, [2]> s = add(x = tensor<int32, [2]>([8192, 1]), y = int32(0))[name = string(\"s\")];\n    tensor<fp16, [8192, 1]> r = reshape(x = x, shape = s)[name = string(\"r\")];\n    tensor<fp16, [8192, 1]> y = relu(x = r)[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M3");
    assert!(!fired(&r, "s", "int-compute"));
    assert_eq!(unit(&r, "s"), Unit::None);
    assert_eq!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEFORGE-CAP bf16_compute (bf16 cleanly rejected).
#[test]
fn bf16_fp8_compute() {
    // No op of the registry takes bf16 (coremltools rejects this program too): the rule
    // still fires when an invalid program is analysed anyway.
    let r = analyze_invalid(&unary("ios18", "bf16", "1, 64", "relu", ""), "M5");
    assert!(!r.invalid.is_empty());
    assert!(fired(&r, "y", "bf16-fp8-compute"));
    assert_ne!(unit(&r, "y"), Unit::Ane);
    let r = analyze(&unary("ios18", "fp16", "1, 64", "relu", ""), "M5");
    assert!(!fired(&r, "y", "bf16-fp8-compute"));
}

/// Source: ANEFORGE-SWEEP (cast not implemented on the ANE) and MAD-README (the ANE
/// converts fp32 I/O): a cast at the input is fine, one inside the graph is not.
#[test]
fn cast_inside_graph() {
    let p = program(
        "ios16",
        "tensor<fp32, [1, 8192]> x",
        "    tensor<fp16, [1, 8192]> h = cast(x = x, dtype = string(\"fp16\"))[name = string(\"h\")];\n    tensor<fp16, [1, 8192]> r = relu(x = h)[name = string(\"r\")];\n    tensor<fp32, [1, 8192]> m = cast(x = r, dtype = string(\"fp32\"))[name = string(\"m\")];\n    tensor<fp16, [1, 8192]> y = cast(x = m, dtype = string(\"fp16\"))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M1");
    assert!(!fired(&r, "h", "cast-inside-graph"));
    assert!(!fired(&r, "y", "cast-inside-graph"));
    assert!(fired(&r, "m", "cast-inside-graph"));
    assert_ne!(unit(&r, "m"), Unit::Ane);
}

/// Source: ANEFORGE-SWEEP (gather not implemented), MLANE README (embeddings on the CPU).
#[test]
fn gather() {
    let p = program(
        "ios17",
        "tensor<fp16, [100, 64]> table, tensor<int32, [1, 8]> ids",
        "    tensor<fp16, [1, 8, 64]> y = gather(x = table, indices = ids, axis = int32(0), batch_dims = int32(0), validate_indices = bool(false))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M2");
    assert!(fired(&r, "y", "gather"));
    assert_ne!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEFORGE-SWEEP / ANEFORGE-CAP scatter.
#[test]
fn scatter() {
    let p = program(
        "ios17",
        "tensor<fp16, [8, 64]> data, tensor<int32, [2]> idx, tensor<fp16, [2, 64]> upd",
        "    tensor<fp16, [8, 64]> y = scatter(data = data, indices = idx, updates = upd, axis = int32(0), mode = string(\"update\"), validate_indices = bool(false))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M4");
    assert!(fired(&r, "y", "scatter"));
    assert_ne!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEMLL-PROF ("Cannot support standalone slice_update").
#[test]
fn slice_update() {
    let p = program(
        "ios18",
        "tensor<fp16, [1, 8, 16]> x, tensor<fp16, [1, 1, 16]> u",
        "    tensor<fp16, [1, 8, 16]> y = slice_update(x = x, update = u, begin = tensor<int32, [3]>([0, 0, 0]), end = tensor<int32, [3]>([1, 1, 16]))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M4");
    assert!(fired(&r, "y", "slice-update"));
    assert_ne!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEFORGE-SWEEP (read_state compile-walled); the fixture reads and writes states.
#[test]
fn state_ops() {
    let r = fixture("stateful_fp16_ios18", "M4", ComputeUnits::CpuAndNe);
    let reads: Vec<_> = r.ops.iter().filter(|o| o.op_type == "read_state").collect();
    assert!(!reads.is_empty());
    for o in reads {
        assert!(o.rules.contains(&"state-ops".to_string()));
        assert_eq!(o.unit, Unit::Cpu);
    }
}

/// Source: ANEFORGE-SWEEP (cumsum not implemented on the ANE; reduce_sum is).
#[test]
fn not_implemented() {
    let r = analyze(
        &unary("ios17", "fp16", "1, 64", "cumsum", ", axis = int32(1)"),
        "M4",
    );
    assert!(fired(&r, "y", "not-implemented"));
    assert_ne!(unit(&r, "y"), Unit::Ane);
    let p = program(
        "ios17",
        "tensor<fp16, [1, 8192]> x",
        "    tensor<fp16, [1, 1]> y = reduce_sum(x = x, axes = tensor<int32, [1]>([1]), keep_dims = bool(true))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M4");
    assert!(!fired(&r, "y", "not-implemented"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEFORGE-TARGETS _OP_FLOOR: sin/cos native from A15 tier (h15), topk from A14
/// tier (h14).
#[test]
fn generation_floor() {
    let sin = unary("ios17", "fp16", "1, 8192", "sin", "");
    assert!(fired(&analyze(&sin, "M1"), "y", "generation-floor")); // h13
    assert!(fired(&analyze(&sin, "A15"), "y", "generation-floor")); // h14
    assert!(!fired(&analyze(&sin, "M3"), "y", "generation-floor")); // h15
    assert_eq!(unit(&analyze(&sin, "M3"), "y"), Unit::Ane);
    let topk = program(
        "ios17",
        "tensor<fp16, [1, 64]> x",
        "    tensor<fp16, [1, 8]> v, tensor<int32, [1, 8]> i = topk(x = x, k = int32(8), axis = int32(-1))[name = string(\"t\")];",
        "v",
    );
    assert!(fired(&analyze(&topk, "A14"), "t", "generation-floor")); // h13
    assert!(!fired(&analyze(&topk, "M2"), "t", "generation-floor")); // h14
}

/// Source: ANEFORGE-SWEEP (non_zero not implemented; data-dependent output size).
#[test]
fn dynamic_output() {
    let p = program(
        "ios17",
        "tensor<fp16, [1, 64]> x",
        "    tensor<int32, [?, 2]> y = non_zero(x = x)[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M4");
    assert!(fired(&r, "y", "dynamic-output"));
    assert_eq!(unit(&r, "y"), Unit::Cpu);
}

/// Source: ANEFORGE-CAP (rank > 5 rejected).
#[test]
fn rank_over_5() {
    let six = program(
        "ios17",
        "tensor<fp16, [1, 2, 2, 2, 2, 8]> x",
        "    tensor<fp16, [1, 2, 2, 2, 2, 8]> y = relu(x = x)[name = string(\"y\")];",
        "y",
    );
    assert!(fired(&analyze(&six, "M4"), "y", "rank-over-5"));
    let five = unary("ios17", "fp16", "2, 2, 2, 2, 8", "relu", "");
    assert!(!fired(&analyze(&five, "M4"), "y", "rank-over-5"));
}

/// Source: ANEFORGE-CAP rank5_transpose_matmul (fails at rank >= 5).
#[test]
fn matmul_rank_5() {
    let mm = |shape: &str| {
        program(
            "ios17",
            &format!("tensor<fp16, [{shape}, 16, 16]> a, tensor<fp16, [{shape}, 16, 16]> b"),
            &format!(
                "    tensor<fp16, [{shape}, 16, 16]> y = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string(\"y\")];"
            ),
            "y",
        )
    };
    assert!(fired(&analyze(&mm("1, 2, 2"), "M4"), "y", "matmul-rank-5"));
    let r = analyze(&mm("1, 2"), "M4");
    assert!(!fired(&r, "y", "matmul-rank-5"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
}

/// Source: ANEFORGE-TARGETS _LIMITS: max_tensor_dim 16384 (A13 tier) → 65536 (A16 tier);
/// channel_extent 65536.
#[test]
fn axis_extent() {
    let long = unary("ios17", "fp16", "1, 20000", "relu", "");
    assert!(fired(&analyze(&long, "M1"), "y", "axis-extent")); // h13: 16384
    assert!(fired(&analyze(&long, "M3"), "y", "axis-extent")); // h15: 16384
    assert!(!fired(&analyze(&long, "M4"), "y", "axis-extent")); // h16: 65536
    let ok = unary("ios17", "fp16", "1, 16384", "relu", "");
    assert!(!fired(&analyze(&ok, "M1"), "y", "axis-extent"));
    let channels = unary("ios17", "fp16", "1, 70000, 1, 1", "relu", "");
    assert!(fired(&analyze(&channels, "M5"), "y", "axis-extent"));
}

fn conv(kw: usize) -> String {
    let w = vec!["0.5"; 8 * 8 * kw].join(", ");
    program(
        "ios17",
        "tensor<fp16, [1, 8, 1, 512]> x",
        &format!(
            "    tensor<fp16, [8, 8, 1, {kw}]> w = const()[name = string(\"w\"), val = tensor<fp16, [8, 8, 1, {kw}]>([{w}])];\n    tensor<fp16, [1, 8, 1, {out}]> y = conv(x = x, weight = w, strides = tensor<int32, [2]>([1, 1]), pad_type = string(\"valid\"), pad = tensor<int32, [4]>([0, 0, 0, 0]), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string(\"y\")];",
            out = 512 - kw + 1
        ),
        "y",
    )
}

/// Source: ANEFORGE-TARGETS conv_kw_max: 13 (A13 tier) → 15 (A16 tier); ANEFORGE-CAP
/// conv_kernel_ge16 (K >= 16 fails on M5).
#[test]
fn conv_kernel_width() {
    assert!(!fired(&analyze(&conv(13), "M1"), "y", "conv-kernel-width"));
    assert!(fired(&analyze(&conv(14), "M1"), "y", "conv-kernel-width"));
    assert!(!fired(&analyze(&conv(14), "M4"), "y", "conv-kernel-width"));
    assert!(!fired(&analyze(&conv(15), "M5"), "y", "conv-kernel-width"));
    assert!(fired(&analyze(&conv(16), "M5"), "y", "conv-kernel-width"));
}

/// Source: FORUM-724930 (range-flexible inputs: ANE only at the default shape; enumerated
/// shapes can all use it).
#[test]
fn range_flexible() {
    let p = program(
        "ios17",
        "tensor<fp16, [1, 64, ?]> x",
        "    tensor<fp16, [1, 64, ?]> y = relu(x = x)[name = string(\"y\")];",
        "y",
    );
    let range = analyze_with(
        &p,
        "M2",
        ComputeUnits::All,
        &[flex("x", &[1, 64, 128], InputFlex::Range)],
    );
    assert!(fired(&range, "y", "range-flexible"));
    assert_eq!(unit(&range, "y"), Unit::Gpu);
    // analysed at the default shape
    assert_eq!(op(&range, "y").output, "tensor<fp16, [1, 64, 128]>");
    let en = analyze_with(
        &p,
        "M2",
        ComputeUnits::All,
        &[flex("x", &[1, 64, 128], InputFlex::Enumerated)],
    );
    assert!(!fired(&en, "y", "range-flexible"));
    assert_eq!(unit(&en, "y"), Unit::Ane);
}

/// Source: SKY (a conv whose weight is a runtime input compiles but ignores it).
#[test]
fn runtime_weight() {
    let p = program(
        "ios17",
        "tensor<fp16, [1, 8, 1, 64]> x, tensor<fp16, [8, 8, 1, 1]> w",
        "    tensor<fp16, [1, 8, 1, 64]> y = conv(x = x, weight = w, strides = tensor<int32, [2]>([1, 1]), pad_type = string(\"valid\"), pad = tensor<int32, [4]>([0, 0, 0, 0]), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string(\"y\")];",
        "y",
    );
    let r = analyze(&p, "M4");
    assert!(fired(&r, "y", "runtime-weight"));
    assert_ne!(unit(&r, "y"), Unit::Ane);
    assert!(!fired(&analyze(&conv(3), "M4"), "y", "runtime-weight"));
}

fn topk(k: i32) -> String {
    program(
        "ios17",
        "tensor<fp16, [1, 64]> x",
        &format!(
            "    tensor<fp16, [1, {k}]> v, tensor<int32, [1, {k}]> i = topk(x = x, k = int32({k}), axis = int32(-1))[name = string(\"t\")];"
        ),
        "v",
    )
}

/// Source: ANEFORGE-CAP topk_k3_k4 (K in {3, 4} fails; 1, 2 and >= 5 work).
#[test]
fn topk_k3_k4() {
    assert!(fired(&analyze(&topk(3), "M5"), "t", "topk-k3-k4"));
    assert!(fired(&analyze(&topk(4), "M5"), "t", "topk-k3-k4"));
    assert!(!fired(&analyze(&topk(2), "M5"), "t", "topk-k3-k4"));
    assert!(!fired(&analyze(&topk(5), "M5"), "t", "topk-k3-k4"));
}

/// Source: ANEFORGE-CAP lrn_channels_ge16.
#[test]
fn lrn_channels() {
    let lrn = |size: i32| {
        unary(
            "ios17",
            "fp16",
            "1, 32, 8, 8",
            "local_response_norm",
            &format!(", size = int32({size})"),
        )
    };
    assert!(fired(&analyze(&lrn(16), "M4"), "y", "lrn-channels"));
    assert!(!fired(&analyze(&lrn(5), "M4"), "y", "lrn-channels"));
}

/// Source: ANEFORGE-CAP batch_to_space_indivisible.
#[test]
fn batch_to_space_indivisible() {
    let b2s = |n: u64| {
        program(
            "ios17",
            &format!("tensor<fp16, [{n}, 4, 8, 8]> x"),
            "    tensor<fp16, [1, 4, 16, 16]> y = batch_to_space(x = x, block_shape = tensor<int32, [2]>([2, 2]), crops = tensor<int32, [2, 2]>([[0, 0], [0, 0]]))[name = string(\"y\")];",
            "y",
        )
    };
    // coremltools' type inference rejects an indivisible batch too: the program is invalid,
    // and the rule still fires when it is analysed anyway.
    assert!(fired(
        &analyze_invalid(&b2s(6), "M4"),
        "y",
        "batch-to-space-indivisible"
    ));
    assert!(!fired(
        &analyze(&b2s(4), "M4"),
        "y",
        "batch-to-space-indivisible"
    ));
}

/// Source: MAD-README (SDPA ignores attn_mask on the direct path) — a note, the op stays.
#[test]
fn sdpa_mask() {
    let sdpa = |mask: bool| {
        program(
            "ios18",
            "tensor<fp16, [1, 4, 16, 16]> q, tensor<fp16, [1, 4, 16, 16]> k, tensor<fp16, [1, 4, 16, 16]> v, tensor<fp16, [1, 1, 16, 16]> m",
            &format!(
                "    tensor<fp16, [1, 4, 16, 16]> y = scaled_dot_product_attention(query = q, key = k, value = v{})[name = string(\"y\")];",
                if mask { ", attn_mask = m" } else { "" }
            ),
            "y",
        )
    };
    let r = analyze(&sdpa(true), "M4");
    assert!(fired(&r, "y", "sdpa-mask"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
    assert!(!fired(&analyze(&sdpa(false), "M4"), "y", "sdpa-mask"));
}

/// Source: CT-QPERF (int8-int8 compute faster from A17 Pro/M4 on).
#[test]
fn int8_activations() {
    let p = program(
        "ios17",
        "tensor<fp16, [1, 64]> x",
        "    tensor<int8, [1, 64]> y = quantize(input = x, scale = fp16(0.1), output_dtype = string(\"int8\"))[name = string(\"y\")];",
        "y",
    );
    assert!(fired(&analyze(&p, "M2"), "y", "int8-activations"));
    assert!(!fired(&analyze(&p, "M4"), "y", "int8-activations"));
    assert!(!fired(&analyze(&p, "A17 Pro"), "y", "int8-activations"));
}

/// Source: HOL unsupported-layers.md (community list: pooling kernel > 13 / stride > 2) —
/// noted, not applied.
#[test]
fn pool_kernel() {
    let pool = |k: i32| {
        let o = 32 - k + 1;
        program(
            "ios17",
            "tensor<fp16, [1, 64, 32, 32]> x",
            &format!(
                "    tensor<fp16, [1, 64, {o}, {o}]> y = max_pool(x = x, kernel_sizes = tensor<int32, [2]>([{k}, {k}]), strides = tensor<int32, [2]>([1, 1]), pad_type = string(\"valid\"), pad = tensor<int32, [4]>([0, 0, 0, 0]), ceil_mode = bool(false))[name = string(\"y\")];"
            ),
            "y",
        )
    };
    let r = analyze(&pool(14), "M1");
    assert!(fired(&r, "y", "pool-kernel"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
    assert!(!fired(&analyze(&pool(3), "M1"), "y", "pool-kernel"));
}

/// Source: HOL unsupported-layers.md (upsampling > 2x) — noted, not applied.
#[test]
fn upsample_factor() {
    let up = |f: f32| {
        let o = (8.0 * f) as u32;
        program(
            "ios17",
            "tensor<fp16, [1, 8, 8, 8]> x",
            &format!(
                "    tensor<fp16, [1, 8, {o}, {o}]> y = upsample_nearest_neighbor(x = x, scale_factor_height = fp32({f:?}), scale_factor_width = fp32({f:?}))[name = string(\"y\")];"
            ),
            "y",
        )
    };
    let r = analyze(&up(4.0), "M1");
    assert!(fired(&r, "y", "upsample-factor"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
    assert!(!fired(&analyze(&up(2.0), "M1"), "y", "upsample-factor"));
}

/// Source: HOL unsupported-layers.md (dilated convolutions) — noted, not applied.
#[test]
fn dilated_conv() {
    let p = conv(3)
        .replace(
            "dilations = tensor<int32, [2]>([1, 1])",
            "dilations = tensor<int32, [2]>([1, 2])",
        )
        .replace("[1, 8, 1, 510]", "[1, 8, 1, 508]");
    let r = analyze(&p, "M1");
    assert!(fired(&r, "y", "dilated-conv"));
    assert_eq!(unit(&r, "y"), Unit::Ane);
    assert!(!fired(&analyze(&conv(3), "M1"), "y", "dilated-conv"));
}
