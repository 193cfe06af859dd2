//! The calibration: reproducible from the cited data, fitted on micro-benchmarks only, its
//! micro-benchmark workloads costed exactly as `op_cost` costs the same MIL ops, and the rules
//! in agreement with ANEForge's hardware sweep of the MIL vocabulary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anekit_plan::Catalog;
use anekit_plan::calibration::{
    Calibration, Measurements, conv_op, fit, linear_op, matmul_op, micro_points, sweep_agreement,
};
use anekit_plan::cost::OpCost;
use support::*;

/// `data/calibration.json` is what the fit gives on `data/measurements.json` and the catalog
/// today (rerun `scripts/calibrate.sh` after changing either).
#[test]
fn committed_calibration_is_reproducible() {
    let m = Measurements::builtin().unwrap();
    let fresh = fit(&m, Catalog::builtin()).unwrap();
    let committed = Calibration::builtin();
    assert_eq!(
        &fresh, committed,
        "data/calibration.json is stale: run scripts/calibrate.sh"
    );
    // The fit stays honest about what it fitted.
    assert!(
        fresh.fit.latency.len() >= 100,
        "{}",
        fresh.fit.latency.len()
    );
    assert!(fresh.fit.energy.len() >= 40);
    assert!(fresh.fit.latency_median_abs_error < 0.2);
}

/// Whole models never enter the fit: every fitted point is a one-op program or a synthetic
/// block, and no point names a whole model.
#[test]
fn whole_models_are_never_fitted() {
    let m = Measurements::builtin().unwrap();
    let (points, excluded) = micro_points(&m);
    assert_eq!(
        points.len() + excluded.len(),
        m.one_op.len() + m.blocks.len()
    );
    let whole: Vec<String> = m
        .whole_models
        .iter()
        .map(|w| w["model"].as_str().unwrap().to_string())
        .collect();
    assert!(whole.len() >= 6);
    for p in &Calibration::builtin().fit.latency {
        for w in &whole {
            assert!(!p.id.contains(w.as_str()), "{} is a whole model", p.id);
        }
    }
    // Every measurement names a declared source.
    for r in m.one_op.iter().chain(&m.blocks).chain(&m.whole_models) {
        let s = r["source"].as_str().unwrap();
        assert!(m.sources.contains_key(s), "{s}");
    }
}

fn costs_of(text: &str) -> Vec<OpCost> {
    let p = anekit_mil::text::parse_without_weights(text, "t.mil").unwrap();
    let (_, f) = p.main_function().unwrap();
    let g = anekit_plan::graph::Graph::build("main", f, &[]);
    g.nodes
        .iter()
        .filter(|n| !n.constant)
        .map(|n| anekit_plan::cost::op_cost(&g, n))
        .collect()
}

fn same(a: &OpCost, b: &OpCost) {
    assert_eq!(a.flops, b.flops);
    assert_eq!(a.weight_bytes, b.weight_bytes);
    assert_eq!(a.class, b.class);
    let shapes = |c: &OpCost| {
        c.activations
            .iter()
            .map(|x| (x.shape.clone(), x.output))
            .collect::<Vec<_>>()
    };
    assert_eq!(shapes(a), shapes(b));
}

/// The micro-benchmark constructors give the same cost facts as `op_cost` on the MIL op.
#[test]
fn micro_workloads_cost_like_the_mil_ops() {
    let w = vec!["0.5"; 6 * 4].join(", ");
    let text = program(
        "ios17",
        "tensor<fp16, [3, 4]> x",
        &format!(
            "    tensor<fp16, [6, 4]> w = const()[name = string(\"w\"), val = tensor<fp16, [6, 4]>([{w}])];\n    tensor<fp16, [3, 6]> y = linear(x = x, weight = w)[name = string(\"y\")];"
        ),
        "y",
    );
    same(&costs_of(&text)[0], &linear_op(3, 4, 6, "x", "y"));

    let w = vec!["0.5"; 8 * 2 * 9].join(", ");
    let text = program(
        "ios17",
        "tensor<fp16, [1, 2, 10, 10]> x",
        &format!(
            "    tensor<fp16, [8, 2, 3, 3]> w = const()[name = string(\"w\"), val = tensor<fp16, [8, 2, 3, 3]>([{w}])];\n    tensor<fp16, [1, 8, 5, 5]> y = conv(x = x, weight = w, strides = tensor<int32, [2]>([2, 2]), pad_type = string(\"same\"), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string(\"y\")];"
        ),
        "y",
    );
    same(
        &costs_of(&text)[0],
        &conv_op(1, 2, 8, 10, 10, 3, 2, "x", "y"),
    );

    let text = program(
        "ios17",
        "tensor<fp16, [2, 3, 4]> a, tensor<fp16, [2, 4, 5]> b",
        "    tensor<fp16, [2, 3, 5]> y = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string(\"y\")];",
        "y",
    );
    same(&costs_of(&text)[0], &matmul_op(2, 3, 4, 5, "a", "b", "y"));
}

/// Source: ANEForge's full MIL vocabulary sweep (AF-SWEEP). 161 of the 164 MIL op types it
/// compiled agree with anekit's per-op-type prediction; the three that do not are explained
/// in docs/analyze.md.
#[test]
fn rules_agree_with_the_hardware_sweep() {
    let m = Measurements::builtin().unwrap();
    let (agree, compared, disagreements) = sweep_agreement(&m.vocabulary_sweep);
    assert_eq!(compared, 164);
    assert!(agree >= 161, "{agree}/{compared}: {disagreements:?}");
    for (op, _, _) in &disagreements {
        assert!(
            ["cast", "identity", "non_maximum_suppression"].contains(&op.as_str()),
            "unexplained disagreement: {op}"
        );
    }
}

/// The validation error quoted in every report's notes is the one in
/// docs/analyze-estimates.json (written by scripts/make_estimator_models.py).
#[test]
fn quoted_validation_error_matches_the_docs() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/analyze-estimates.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let median = v["summary"]["all"]["median_abs_error_pct"]
        .as_f64()
        .unwrap();
    assert_eq!(
        anekit_plan::analyze::VALIDATION_MEDIAN_ERROR_PCT.round(),
        median.round(),
        "update VALIDATION_MEDIAN_ERROR_PCT after rerunning scripts/make_estimator_models.py"
    );
    let points = v["summary"]["all"]["points"].as_u64().unwrap();
    let chips = v["summary"]["all"]["chips"].as_u64().unwrap();
    assert!(
        points >= 12 && chips >= 3,
        "{points} points on {chips} chips"
    );
}

/// Source: ANEForge's watt-complete Jacobi runs (AF-DEV-M1/M2/M5): 25 iterations of a
/// 1×512 · 512×512 product, one linear op per iteration. The time per iteration above the
/// chip's program floor is the 512×512 fp16 weight read at the chip's Neural Engine weight
/// bandwidth (catalog), within 25% on all three machines — which is why the Jacobi block is
/// costed with the weights streamed by every iteration (`calibration::micro_points`).
#[test]
fn jacobi_iterations_cost_their_weight_stream() {
    let m = Measurements::builtin().unwrap();
    let catalog = Catalog::builtin();
    let mut seen = 0;
    for r in m.blocks.iter().filter(|r| r["block"] == "jacobi") {
        let chip = catalog.chip(r["chip"].as_str().unwrap()).unwrap();
        let perf = catalog.perf(chip);
        let (n, iters) = (r["n"].as_f64().unwrap(), r["iters"].as_f64().unwrap());
        let per_iter_us = (r["us"].as_f64().unwrap() - perf.ane_dispatch_us) / iters;
        let stream_us = 2.0 * n * n / (perf.ane_bandwidth_gbs * 1e3);
        let ratio = per_iter_us / stream_us;
        assert!(
            (0.8..1.25).contains(&ratio),
            "{}: {per_iter_us:.1} µs per iteration vs {stream_us:.1} µs of weights",
            chip.name
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
}

/// Source: ANEForge's chaining demo (AF-CHAIN, M1: one 3×3 conv 222 µs per call, 32 of them
/// fused ~190 µs per call) and the other micro-benchmarks: a fused op costs no measurable
/// fixed time of its own, so the fitted per-op overhead stays under 1 µs.
#[test]
fn fused_ops_have_no_fixed_cost() {
    let c = Calibration::builtin();
    assert!(c.ane.op_overhead_us < 1.0, "{}", c.ane.op_overhead_us);
    let chain = |depth: &str| {
        c.fit
            .latency
            .iter()
            .find(|p| p.id.starts_with("conv chain") && p.id.contains(depth))
            .unwrap()
            .model
    };
    // 31 more convs cost less than a third of the one-conv program.
    assert!(chain("x32") < 1.33 * chain("x1 "));
}

/// Source: ANEForge's per-rail watts (AF-ROOF-M1AIR, AF-ROOF-M5, AF-DEV-*): convolutions
/// reach about twice the GEMM peak at a similar package power, so the energy fit charges a
/// convolution FLOP less than a matrix-product FLOP.
#[test]
fn convolution_flops_cost_less_energy_than_matrix_products() {
    let e = Calibration::builtin().energy;
    assert!(
        e.conv_flop_factor > 0.0 && e.conv_flop_factor < 0.75 * e.flop_factor,
        "{e:?}"
    );
}

/// Source: ANEForge's watt-complete runs (AF-DEV-M2): the M2 Pro's 32-step stencil has a
/// 371 µs minimum latency but runs at 238 µs per call in the ≥ 6 s energy loop. A loop cannot
/// average below the fastest call at the same clocks, so the fit takes the lower of the two
/// as the time per call; where the minimum is the lower (most points), it stays.
#[test]
fn micro_points_take_the_fastest_observed_time_per_call() {
    use anekit_plan::calibration::per_call_us;
    assert!((per_call_us(371.417, Some(0.238497)) - 238.497).abs() < 1e-9);
    assert_eq!(per_call_us(222.708, Some(0.250239)), 222.708);
    assert_eq!(per_call_us(85.0, None), 85.0);
    let m = Measurements::builtin().unwrap();
    let (points, _) = micro_points(&m);
    let stencil = points
        .iter()
        .find(|p| p.id.starts_with("stencil") && p.chip == "M2 Pro")
        .unwrap();
    assert!((stencil.us - 238.497).abs() < 1e-6, "{}", stencil.us);
    // The M1 Max's stencil keeps its 222.7 µs minimum (its loop ran at 250 µs per call).
    let stencil = points
        .iter()
        .find(|p| p.id.starts_with("stencil") && p.chip == "M1 Max")
        .unwrap();
    assert!((stencil.us - 222.708).abs() < 1e-6, "{}", stencil.us);
}

/// Source: ANE-GUIDE (chapter 21): a layer stays on chip while its largest single operand
/// fits the working set (2 MB on the M1); the test is on one tensor, not on the sum.
#[test]
fn activations_stay_on_chip_while_the_largest_tensor_fits() {
    use anekit_plan::calibration::unary_op;
    use anekit_plan::cost::{AneClass, activations_fit};
    let h13 = Catalog::builtin().generation("h13").unwrap();
    let h17 = Catalog::builtin().generation("h17").unwrap();
    // Two 1.5 MB tensors (3 MB together) fit; one 4 MB tensor does not on the M1's engine
    // but does on the M5's (4.72 MB).
    let two = unary_op(AneClass::Elementwise, &[1, 384, 32, 64], &["x"], "y");
    assert!(activations_fit(&two, h13));
    let big = unary_op(AneClass::Elementwise, &[1, 512, 64, 64], &["x"], "y");
    assert!(!activations_fit(&big, h13));
    assert!(activations_fit(&big, h17));
}

/// Source: ANE-GUIDE (chapter 9): a fused chain of matrix products with its activations on
/// chip runs at ~12 TFLOP/s on the M1 against 4.8 for one large matmul (2.5×), 19.6 against
/// 9.5 on the M5 (2.1×). The fitted in-program factor speeds such layers up, never slows
/// them, and stays within those measured ratios; a one-op program (its tensors cross the
/// program boundary) and a layer whose weights exceed the working set keep the class roof.
#[test]
fn fused_layers_compute_faster_than_one_op_programs() {
    use anekit_plan::cost::ane_op_time;
    let cal = Calibration::builtin();
    let phi = cal.ane.fused_vs_single;
    assert!(phi > 1.0 && phi <= 2.5, "{phi}");
    let catalog = Catalog::builtin();
    let chip = catalog.chip("M5 Pro").unwrap();
    let perf = catalog.perf(chip);
    let g = catalog.generation_of(chip).unwrap();
    // 256 -> 256 3x3 at 32x32: 1.2 GFLOP, 1.2 MB of weights, 512 KB tensors.
    let conv = conv_op(1, 256, 256, 32, 32, 3, 1, "a", "b");
    let inside = ane_op_time(&conv, &perf, g, &cal.ane, &|_| false);
    let alone = ane_op_time(&conv, &perf, g, &cal.ane, &|_| true);
    assert!((alone.compute_us / inside.compute_us - phi).abs() < 1e-9);
    // 2048 x 2048 weights (8 MB) exceed the working set: no fused rate.
    let big = linear_op(512, 2048, 2048, "a", "b");
    let inside = ane_op_time(&big, &perf, g, &cal.ane, &|_| false);
    let alone = ane_op_time(&big, &perf, g, &cal.ane, &|_| true);
    assert_eq!(inside.compute_us, alone.compute_us);
}
