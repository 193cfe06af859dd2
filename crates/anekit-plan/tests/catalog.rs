//! The chip catalog against the research facts it was written from (each expectation below
//! names its source), the padded-layout arithmetic, and the placement heuristics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anekit_plan::Catalog;
use anekit_plan::ComputeUnits;
use anekit_plan::catalog::source_key;
use anekit_plan::cost::{Unit, padded_bytes};
use support::*;

fn cat() -> &'static Catalog {
    Catalog::builtin()
}

#[test]
fn catalog_parses_and_every_value_has_a_declared_source() {
    let c = Catalog::parse(anekit_plan::catalog::CATALOG_JSON).unwrap();
    assert!(c.chips.len() >= 24);
    let sources = c.all_sources();
    assert!(sources.len() > 250, "{}", sources.len());
    for (field, src) in sources {
        assert!(!src.trim().is_empty(), "{field} has no source");
        let k = source_key(&src);
        assert!(
            c.sources.contains_key(k) || ["derived", "assumption", "heuristic"].contains(&k),
            "{field}: `{src}`"
        );
    }
    // A catalog naming an unknown generation is refused.
    let bad =
        anekit_plan::catalog::CATALOG_JSON.replacen("\"value\": \"h13\"", "\"value\": \"h99\"", 1);
    assert!(Catalog::parse(&bad).is_err());
}

#[test]
fn chips_of_the_issue_are_present() {
    for name in [
        "A14", "A15", "A16", "A17 Pro", "A18", "A18 Pro", "M1", "M1 Pro", "M1 Max", "M1 Ultra",
        "M2", "M2 Pro", "M2 Max", "M2 Ultra", "M3", "M3 Pro", "M3 Max", "M3 Ultra", "M4", "M4 Pro",
        "M4 Max", "M5", "M5 Pro", "M5 Max", "A19", "A19 Pro", "M6",
    ] {
        assert!(cat().chip(name).is_some(), "{name}");
    }
}

/// Source: HOL supported-devices.md (cores and marketed TOPS); PR-M4 (M4 38 TOPS).
#[test]
fn marketed_peaks_and_cores_match_hollance() {
    let tops = |n: &str| {
        cat()
            .chip(n)
            .unwrap()
            .ane_marketed_tops
            .as_ref()
            .unwrap()
            .value
    };
    let cores = |n: &str| cat().chip(n).unwrap().ane_cores.value;
    for (n, t) in [
        ("A14", 11.0),
        ("M1", 11.0),
        ("M1 Max", 11.0),
        ("M1 Ultra", 22.0),
        ("A15", 15.8),
        ("M2", 15.8),
        ("M2 Ultra", 31.6),
        ("A16", 17.0),
        ("A17 Pro", 35.0),
        ("A18", 35.0),
        ("M4", 38.0),
    ] {
        assert_eq!(tops(n), t, "{n}");
    }
    for n in ["A14", "M1", "M2 Max", "M3 Pro", "M4 Max", "M5"] {
        assert_eq!(cores(n), 16, "{n}");
    }
    // HOL does not list the M3 Ultra: 2 x M3 (derived, PR-M3).
    assert_eq!(tops("M3 Ultra"), 36.0);
    for n in ["M1 Ultra", "M2 Ultra", "M3 Ultra"] {
        assert_eq!(cores(n), 32, "{n}");
        assert_eq!(cat().chip(n).unwrap().ane_engines.value, 2);
    }
}

/// Source: ASAHI soc-codenames (docs/references.md#chips); ANEFORGE-TARGETS
/// (M-series Mn is H(n+12)).
#[test]
fn soc_ids_and_generations_match_asahi() {
    for (soc, name, generation) in [
        ("t8103", "M1", "h13"),
        ("t6000", "M1 Pro", "h13"),
        ("t6001", "M1 Max", "h13"),
        ("t6002", "M1 Ultra", "h13"),
        ("t8112", "M2", "h14"),
        ("t6020", "M2 Pro", "h14"),
        ("t6021", "M2 Max", "h14"),
        ("t6022", "M2 Ultra", "h14"),
        ("t8122", "M3", "h15"),
        ("t6030", "M3 Pro", "h15"),
        ("t8132", "M4", "h16"),
        ("t6040", "M4 Pro", "h16"),
        ("t6041", "M4 Max", "h16"),
        ("t8142", "M5", "h17"),
        ("t8140", "A18 Pro", "h17"),
    ] {
        let c = cat().chip(soc).unwrap_or_else(|| panic!("{soc}"));
        assert_eq!(c.name, name);
        assert_eq!(c.generation.value, generation, "{name}");
    }
}

/// Sources: ANEFORGE-ROOF (measured peak fp16 GEMM per machine), ANEMLL-BENCH (bandwidth),
/// ARGMAX-IP17 (A19 Pro 25% faster than A18 Pro); marketing where nothing is measured.
#[test]
fn resolved_peaks_use_measurements_then_derivations() {
    let perf = |n: &str| cat().perf(cat().chip(n).unwrap());
    // Measured GEMM peaks (ANEForge rooflines).
    for (n, tf) in [
        ("M1", 4.33),
        ("M1 Max", 4.59),
        ("M2 Pro", 4.2),
        ("M2 Max", 5.38),
        ("M4", 5.44),
        ("M4 Pro", 6.2),
        ("M4 Max", 8.87),
        ("M5", 8.71),
        ("M5 Pro", 10.04),
        ("M6", 10.77),
    ] {
        let p = perf(n);
        assert_eq!(p.ane_tflops, tf, "{n}");
        assert!(p.ane_tflops_basis.starts_with("measured"), "{n}");
    }
    // Conv-stack peaks are kept as facts (maderix): M4 18.6, M3 Pro 16.77.
    let m4 = cat().chip("M4").unwrap();
    assert_eq!(m4.ane_conv_tflops_measured.as_ref().unwrap().value, 18.6);
    assert_eq!(m4.ane_int8_tops_measured.as_ref().unwrap().value, 35.1);
    // A15: no measurement on the chip but one on its generation (h14: M2 Pro).
    assert!(perf("A15").ane_tflops_basis.contains("same generation"));
    // M3 family (h15): nothing measured: marketed 18 TOPS × the ratio.
    let u = cat().constants.ane_utilisation_of_marketed.value;
    assert!((perf("M3").ane_tflops - 18.0 * u).abs() < 1e-9);
    assert!(perf("M3").ane_tflops_basis.starts_with("derived"));
    // One prediction uses one of an Ultra's two engines: M3 Ultra 36 TOPS over 2 engines.
    assert!((perf("M3 Ultra").ane_tflops - 36.0 / 2.0 * u).abs() < 1e-9);
    // A19 Pro: 1.25 × A18 Pro (argmax's measured gain), flagged derived.
    let a18p = perf("A18 Pro");
    let a19p = perf("A19 Pro");
    assert!((a19p.ane_tflops - 1.25 * a18p.ane_tflops).abs() < 1e-9);
    assert!(a19p.ane_tflops_basis.starts_with("derived"));
    // Streaming bandwidth: measured, else GEMM × the catalog ratio.
    assert_eq!(perf("M5 Pro").ane_stream_gbs, 24.0);
    let k = cat().constants.ane_stream_per_gemm.value;
    let m3 = perf("M3");
    assert!((m3.ane_stream_gbs - m3.ane_tflops * k).abs() < 1e-9);
    // Bandwidth: anemll-bench M1 61, M4 Pro 126, M6 152 GB/s.
    assert_eq!(perf("M1").ane_bandwidth_gbs, 61.0);
    assert_eq!(perf("M4 Pro").ane_bandwidth_gbs, 126.0);
    assert_eq!(perf("M6").ane_bandwidth_gbs, 152.0);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The derived catalog ratios are what their sources say: medians over the chips that have
/// both figures.
#[test]
fn derived_ratios_are_the_medians_they_claim() {
    let c = cat();
    let mut marketed = Vec::new();
    let mut stream = Vec::new();
    for chip in &c.chips {
        let Some(g) = &chip.ane_gemm_tflops_measured else {
            continue;
        };
        if let Some(t) = &chip.ane_marketed_tops {
            let int8 = chip
                .ane_marketed_precision
                .as_ref()
                .is_some_and(|p| p.value == "int8");
            marketed.push(g.value / if int8 { t.value / 2.0 } else { t.value });
        }
        if let Some(s) = &chip.ane_stream_gbs_measured {
            stream.push(s.value / g.value);
        }
    }
    assert_eq!(marketed.len(), 7);
    assert_eq!(stream.len(), 9);
    let u = median(marketed);
    let k = median(stream);
    assert!(
        (c.constants.ane_utilisation_of_marketed.value - u).abs() < 0.005,
        "{u}"
    );
    assert!(
        (c.constants.ane_stream_per_gemm.value - k).abs() < 0.005,
        "{k}"
    );
    // Every measured GEMM peak is flagged measured in --chip list; derived ones say so.
    for chip in &c.chips {
        let p = c.perf(chip);
        if chip.ane_gemm_tflops_measured.is_some() {
            assert!(
                p.ane_tflops_basis.starts_with("measured ("),
                "{}",
                chip.name
            );
        }
    }
}

/// Source: ANEFORGE-CLIFFS: the matmul cliff on every machine, the pre-A16-tier slice clamp
/// on M1/M2 (h13/h14), none on M4/M5/M6 (h16/h17/h18), integer sums exact to 2048.
#[test]
fn numeric_cliffs_per_generation() {
    for g in &cat().generations {
        assert_eq!(g.numerics.matmul_max_finite.value, 32752.0, "{}", g.name);
        assert_eq!(g.numerics.exact_integer_sum_max.value, 2048.0, "{}", g.name);
        let clamp = g.numerics.slice_max_finite.value;
        match g.number() {
            13..=15 => assert_eq!(clamp, Some(4094.0), "{}", g.name),
            _ => assert_eq!(clamp, None, "{}", g.name),
        }
    }
    // h15 is derived (no M3 measured), h13 measured.
    let h15 = cat().generation("h15").unwrap();
    assert!(h15.numerics.slice_max_finite.source.starts_with("derived"));
    let h13 = cat().generation("h13").unwrap();
    assert!(!h13.numerics.slice_max_finite.source.starts_with("derived"));
}

/// Source: ASAHI soc-codenames (A19 H18A, A19 Pro H18P T8150, M5 Pro H17S T6050);
/// A19-SPECS (16-core NE); ANEFORGE-ROOF (M6 Mac18,5).
#[test]
fn chips_shipped_since_a18_pro_and_m5_max() {
    for (name, generation) in [("A19", "h18"), ("A19 Pro", "h18"), ("M6", "h18")] {
        let c = cat().chip(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(c.generation.value, generation, "{name}");
        assert_eq!(c.ane_cores.value, 16, "{name}");
    }
    assert_eq!(cat().chip("iPhone 17 Pro").unwrap().name, "A19 Pro");
    assert_eq!(cat().chip("iPhone 17").unwrap().name, "A19");
    assert_eq!(cat().chip("Mac18,5").unwrap().name, "M6");
    assert_eq!(cat().chip("t8150").unwrap().name, "A19 Pro");
    let m5p = cat().chip("M5 Pro").unwrap();
    assert_eq!(m5p.soc.as_ref().unwrap().value, "t6050");
    // The M6 generation is derived (no public codename), its peak measured.
    let m6 = cat().chip("M6").unwrap();
    assert!(m6.generation.source.starts_with("derived"));
    assert!(
        !m6.ane_gemm_tflops_measured
            .as_ref()
            .unwrap()
            .source
            .starts_with("derived")
    );
}

#[test]
fn chips_are_found_by_alias_and_device() {
    assert_eq!(cat().chip("iPhone 13").unwrap().name, "A15");
    assert_eq!(cat().chip("iphone16pro").unwrap().name, "A18 Pro");
    assert_eq!(cat().chip("Apple M1 Pro").unwrap().name, "M1 Pro");
    assert_eq!(cat().chip("m3max").unwrap().name, "M3 Max");
    assert!(cat().chip("M9").is_none());
}

/// Source: APPLE-ART Principle 1: the last axis is padded to 64 bytes; a singleton last
/// axis costs 32x in fp16 and 64x in 8-bit. MAD-M5: 128 bytes on M5.
#[test]
fn padded_layout_arithmetic() {
    assert_eq!(padded_bytes(&[1, 1], 2.0, 64), 64.0); // 2 bytes -> 64: 32x
    assert_eq!(padded_bytes(&[1, 1], 1.0, 64), 64.0); // 1 byte -> 64: 64x
    assert_eq!(padded_bytes(&[1, 64], 2.0, 64), 128.0); // already aligned
    assert_eq!(padded_bytes(&[3, 33], 2.0, 64), 3.0 * 128.0);
    assert_eq!(padded_bytes(&[1, 32], 2.0, 128), 128.0);
    let m5 = cat().generation("h17").unwrap();
    assert_eq!(m5.last_axis_alignment_bytes.value, 128);
}

#[test]
fn a_tiny_model_stays_on_the_cpu() {
    // vx-lang/Vx#436: a 4x4 matmul stayed on the CPU even with cpuAndNeuralEngine.
    let p = program(
        "ios17",
        "tensor<fp16, [4, 4]> a, tensor<fp16, [4, 4]> b",
        "    tensor<fp16, [4, 4]> y = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string(\"y\")];",
        "y",
    );
    let r = analyze_with(&p, "M2", ComputeUnits::CpuAndNe, &[]);
    assert_eq!(unit(&r, "y"), Unit::Cpu);
    assert!(op(&r, "y").reasons.iter().any(|x| x.contains("tiny-model")));
}

#[test]
fn short_islands_move_and_long_segments_stay() {
    // cumsum (not on the ANE) → one cheap relu → cumsum: the relu joins the CPU.
    let p = program(
        "ios17",
        "tensor<fp16, [1, 64, 64]> x",
        "    tensor<fp16, [1, 64, 64]> a = cumsum(x = x, axis = int32(2))[name = string(\"a\")];\n    tensor<fp16, [1, 64, 64]> b = relu(x = a)[name = string(\"b\")];\n    tensor<fp16, [1, 64, 64]> c = cumsum(x = b, axis = int32(2))[name = string(\"c\")];",
        "c",
    );
    let r = analyze_with(&p, "M1", ComputeUnits::CpuAndNe, &[]);
    assert_eq!(unit(&r, "b"), Unit::Cpu);
    assert!(op(&r, "b").reasons.iter().any(|x| x.contains("island")));
    assert_eq!(r.switches.count, 0);
    // A heavy matmul between the two stays on the Neural Engine: two switches.
    let p = program(
        "ios17",
        "tensor<fp16, [1, 512, 512]> x, tensor<fp16, [1, 512, 512]> w",
        "    tensor<fp16, [1, 512, 512]> a = cumsum(x = x, axis = int32(2))[name = string(\"a\")];\n    tensor<fp16, [1, 512, 512]> b = matmul(x = a, y = w, transpose_x = bool(false), transpose_y = bool(false))[name = string(\"b\")];\n    tensor<fp16, [1, 512, 512]> c = cumsum(x = b, axis = int32(2))[name = string(\"c\")];",
        "c",
    );
    let r = analyze_with(&p, "M1", ComputeUnits::CpuAndNe, &[]);
    assert_eq!(unit(&r, "b"), Unit::Ane);
    assert_eq!(r.switches.count, 2);
    assert!(r.switches.bytes >= 2.0 * 512.0 * 512.0 * 2.0);
}

/// Sources: ANEFORGE-ROOF. The M1 (MacBook Air) and the M1 Max share one Neural Engine
/// (h13): their measured GEMM peaks are 6% apart (4.33 and 4.59 TF/s) while their streaming
/// figures are 38% apart (5.4 and 7.44 GB/s), and the M4 family's streaming spans 3× on one
/// engine (7.67, 20.42, 23.02 GB/s). Streaming carries the SoC's DRAM path; the rate of
/// tensors kept on chip is the engine's, the same on every chip of a generation.
#[test]
fn onchip_rate_is_the_engines_not_the_socs() {
    let perf = |n: &str| cat().perf(cat().chip(n).unwrap());
    let (m1, m1max) = (perf("M1"), perf("M1 Max"));
    assert!(m1max.ane_tflops / m1.ane_tflops < 1.1);
    assert!(m1max.ane_stream_gbs / m1.ane_stream_gbs > 1.3);
    for n in ["M1", "M1 Pro", "M1 Max", "A14"] {
        assert_eq!(perf(n).ane_onchip_base_gbs, 7.44, "{n}");
    }
    // The DRAM path stays the chip's own (or its donor's).
    assert_eq!(perf("A14").ane_stream_gbs, 5.4);
    assert!(perf("A14").ane_onchip_basis.contains("M1 Max"));
    for n in ["M4", "M4 Pro", "M4 Max"] {
        assert_eq!(perf(n).ane_onchip_base_gbs, 23.02, "{n}");
    }
    assert_eq!(perf("M4").ane_stream_gbs, 7.67);
    // A generation with nothing measured keeps the chip's derived streaming figure.
    let m3 = perf("M3");
    assert_eq!(m3.ane_onchip_base_gbs, m3.ane_stream_gbs);
}

/// A figure a chip lacks is borrowed from the chip of its generation whose system memory
/// bandwidth is closest, whatever the catalog's order: a phone from the base Mac of its
/// generation, a Pro, Max or Ultra from its own die class (the compiler's targets: the M1
/// Pro, Max and Ultra share one die target, the M1 another; ane-guide, chapter 34).
#[test]
fn borrowed_figures_come_from_the_nearest_memory_class() {
    let perf = |n: &str| cat().perf(cat().chip(n).unwrap());
    // The A14 (34 GB/s) borrows the M1's (68 GB/s) streaming rate and floor ...
    let a14 = perf("A14");
    assert_eq!(a14.ane_stream_gbs, 5.4);
    assert_eq!(a14.ane_dispatch_us, 220.0);
    assert!(
        a14.ane_stream_basis.contains("on M1 ("),
        "{}",
        a14.ane_stream_basis
    );
    // ... the M1 Pro (200 GB/s) and M1 Ultra the M1 Max's (400 GB/s).
    for n in ["M1 Pro", "M1 Ultra"] {
        let p = perf(n);
        assert_eq!(p.ane_stream_gbs, 7.44, "{n}");
        assert_eq!(p.ane_dispatch_us, 164.0, "{n}");
        assert_eq!(p.ane_tflops, 4.59, "{n}");
    }
    // The A17 Pro borrows from the M4, not the M4 Max.
    assert_eq!(perf("A17 Pro").ane_tflops, 5.44);
}

/// Source: ANE-GUIDE (chapters 12 and 21). The on-chip working set is a bound on the largest
/// single operand of a layer: 2 MB on the M1 (the hardware table's MemCacheSize), 4.72 MB
/// measured on the M5; assumed the same across the generations without a figure.
#[test]
fn working_set_is_a_per_operand_bound() {
    let ws = |g: &str| cat().generation(g).unwrap().sram_bytes.value;
    assert_eq!(ws("h13"), 2 * 1024 * 1024);
    assert_eq!(ws("h17"), 4_720_000);
    assert_eq!(ws("h14"), ws("h13"));
    assert_eq!(ws("h15"), ws("h13"));
    assert_eq!(ws("h16"), ws("h17"));
    assert_eq!(ws("h18"), ws("h17"));
}
