//! Analyses of the Core ML fixtures (coremltools 9.0 conversions) against expectations
//! derived by hand from the published rules: an LSTM runs on the CPU (coremltools#1780), an
//! fp32-typed model puts nothing on the Neural Engine (CT-TYPED), a range-shaped input keeps
//! its ops off it (FORUM-724930) while enumerated shapes do not, and a small fp16 conv net
//! runs entirely on it. FLOP counts are derived by hand from the layer shapes in
//! `fixtures/manifest.json` notes and the models' MIL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anekit_plan::ComputeUnits;
use anekit_plan::cost::Unit;
use support::*;

fn compute_units(r: &anekit_plan::Report) -> Vec<Unit> {
    r.ops
        .iter()
        .filter(|o| o.unit != Unit::None)
        .map(|o| o.unit)
        .collect()
}

#[test]
fn small_fp16_convnet_runs_entirely_on_the_neural_engine() {
    for chip in ["A14", "A15", "A17 Pro", "M1", "M2 Max", "M3", "M4", "M5"] {
        for units in [ComputeUnits::All, ComputeUnits::CpuAndNe] {
            let r = fixture("convnet_fp16_ios16", chip, units);
            let u = compute_units(&r);
            assert_eq!(u.len(), 10, "{chip}");
            assert!(u.iter().all(|u| *u == Unit::Ane), "{chip} {units:?}: {u:?}");
            assert_eq!(r.segments.len(), 1);
            assert_eq!(r.switches.count, 0);
            assert!((r.coverage.ane_fraction_ops - 1.0).abs() < 1e-9);
        }
    }
}

#[test]
fn convnet_flops_match_the_layer_shapes() {
    let r = fixture("convnet_fp16_ios16", "M1", ComputeUnits::All);
    let convs: Vec<f64> = r
        .ops
        .iter()
        .filter(|o| o.op_type == "conv")
        .map(|o| o.flops)
        .collect();
    // conv1: 3→16 channels, 3x3, 32x32 output: 2·16·32·32·(3·3·3)
    // conv2: 16→32 channels, 3x3, 16x16 output: 2·32·16·16·(16·3·3)
    assert_eq!(
        convs,
        vec![2.0 * 16.0 * 1024.0 * 27.0, 2.0 * 32.0 * 256.0 * 144.0]
    );
    let linear = r.ops.iter().find(|o| o.op_type == "linear").unwrap();
    assert_eq!(linear.flops, 2.0 * 10.0 * 32.0);
    let pool = r.ops.iter().find(|o| o.op_type == "max_pool").unwrap();
    assert_eq!(pool.flops, 16.0 * 16.0 * 16.0 * 4.0); // 2x2 window per output
}

#[test]
fn lstm_runs_on_the_cpu() {
    for units in [
        ComputeUnits::All,
        ComputeUnits::CpuAndNe,
        ComputeUnits::CpuAndGpu,
    ] {
        let r = fixture("lstm_fp32_ios15", "M2", units);
        let lstm = r.ops.iter().find(|o| o.op_type == "lstm").unwrap();
        assert_eq!(lstm.unit, Unit::Cpu, "{units:?}");
        assert!(!lstm.reasons.is_empty());
        // x [8, 1, 16], hidden 32, 4 gates: 2·T·B·4H·(I+H) plus the gate arithmetic
        assert!(lstm.flops >= 2.0 * 8.0 * 4.0 * 32.0 * 48.0);
    }
}

#[test]
fn fp32_models_put_nothing_on_the_neural_engine() {
    for m in [
        "convnet_fp32_ios15",
        "mlp_fp32_ios15",
        "two_io_fp32_ios16",
        "lstm_fp32_ios15",
    ] {
        for chip in ["A14", "M1", "M4", "M5"] {
            let r = fixture(m, chip, ComputeUnits::All);
            assert_eq!(r.coverage.ane_ops, 0, "{m} on {chip}");
            assert!(r.findings.iter().any(|f| f.id == "fp32-program"), "{m}");
            for o in r.ops.iter().filter(|o| o.unit != Unit::None) {
                assert!(!o.reasons.is_empty(), "{m}: {} has no reason", o.name);
            }
        }
    }
}

#[test]
fn range_shaped_input_keeps_ops_off_the_neural_engine() {
    let r = fixture("flexible_range_fp16_ios17", "M3", ComputeUnits::All);
    assert_eq!(r.coverage.ane_ops, 0);
    assert!(
        r.ops
            .iter()
            .filter(|o| o.unit != Unit::None)
            .all(|o| o.rules.contains(&"range-flexible".to_string()))
    );
    assert!(r.findings.iter().any(|f| f.id == "range-flexible-input"));
    // The enumerated twin of the same network stays on the Neural Engine.
    let e = fixture("flexible_enum_fp16_ios17", "M3", ComputeUnits::All);
    assert_eq!(e.coverage.ane_ops, e.coverage.compute_ops);
    assert!(e.coverage.compute_ops > 0);
}

#[test]
fn transformer_encoder_is_all_neural_engine_with_layout_findings() {
    let r = fixture("transformer_encoder_fp16_ios17", "A15", ComputeUnits::All);
    assert_eq!(r.coverage.ane_ops, r.coverage.compute_ops);
    assert!(r.findings.iter().any(|f| f.id == "linear-not-conv"));
    assert!(r.findings.iter().any(|f| f.id == "attention-not-split"));
}

#[test]
fn decoder_embedding_lookup_runs_on_the_cpu_then_one_switch() {
    let r = fixture("decoder_sdpa_fp16_ios18", "M4", ComputeUnits::All);
    let g = r.ops.iter().find(|o| o.op_type == "gather").unwrap();
    assert_eq!(g.unit, Unit::Cpu);
    let sdpa: Vec<_> = r
        .ops
        .iter()
        .filter(|o| o.op_type == "scaled_dot_product_attention")
        .collect();
    assert!(!sdpa.is_empty());
    assert!(sdpa.iter().all(|o| o.unit == Unit::Ane));
    assert_eq!(r.switches.count, 1);
    assert_eq!(r.segments.first().unwrap().unit, Unit::Cpu);
}

#[test]
fn compute_unit_settings_are_respected() {
    let r = fixture("convnet_fp16_ios16", "M2", ComputeUnits::CpuOnly);
    assert!(compute_units(&r).iter().all(|u| *u == Unit::Cpu));
    let r = fixture("convnet_fp16_ios16", "M2", ComputeUnits::CpuAndGpu);
    assert!(compute_units(&r).iter().all(|u| *u == Unit::Gpu));
    for o in r.ops.iter().filter(|o| o.unit != Unit::None) {
        assert!(
            o.reasons
                .iter()
                .any(|x| x.contains("exclude the Neural Engine"))
        );
    }
}

#[test]
fn every_fixture_analyses_on_every_chip() {
    let dir = fixtures().join("models");
    let catalog = anekit_plan::Catalog::builtin();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let m = match anekit_mil::model::Model::open(&p) {
            Ok(m) if m.program.is_some() => m,
            _ => continue,
        };
        let r = anekit_plan::analyze_model(&m, &anekit_plan::Options::default()).unwrap();
        assert_eq!(r.estimate.per_chip.len(), catalog.chips.len());
        assert!(
            r.estimate.latency_ms.is_finite() && r.estimate.latency_ms >= 0.0,
            "{}",
            p.display()
        );
        for c in &r.estimate.per_chip {
            assert!(c.latency_ms.is_finite() && c.latency_ms >= 0.0);
        }
        // The JSON has the keys the issue names.
        let j: serde_json::Value = serde_json::from_str(&anekit_plan::render::json(&r)).unwrap();
        assert!(j["chip"].is_string());
        assert!(j["coverage"].is_object());
        assert!(j["estimate"]["latency_ms"].is_number());
        for o in j["ops"].as_array().unwrap() {
            assert!(o["name"].is_string() && o["type"].is_string() && o["reasons"].is_array());
            assert!(["ane", "gpu", "cpu", "none"].contains(&o["unit"].as_str().unwrap()));
        }
    }
}
