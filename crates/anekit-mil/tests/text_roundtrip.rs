//! The text form over every ML Program that coremltools 9.0 wrote (`fixtures/manifest.json`):
//! `parse(print(p)) == p` with the weights resolved through the model's own weight file, in
//! the dialect Apple's compiler would use for the model's specification version and in the
//! other one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_mil::text::{self, Dialect, PrintOptions};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// (name, path, model_type) of every fixture in the manifest.
fn fixtures() -> Vec<(String, PathBuf, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("manifest.json"))
        .expect("fixtures/manifest.json");
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["fixtures"]
        .as_array()
        .expect("fixtures list")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                fixtures_dir().join(f["path"].as_str().unwrap()),
                f["model_type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn print_in(p: &anekit_mil::Program, dialect: Dialect, extensions: bool) -> String {
    text::print_with(
        p,
        &PrintOptions {
            dialect: Some(dialect),
            extensions,
        },
    )
}

#[test]
fn every_fixture_program_round_trips_through_text() {
    let mut programs = 0;
    let mut texts = Vec::new();
    for (name, path, model_type) in fixtures() {
        let model = Model::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(p) = &model.program else {
            assert_ne!(model_type, "mlProgram", "{name}: no program");
            continue;
        };
        programs += 1;
        let native = Dialect::for_spec_version(model.spec_version());
        let other = match native {
            Dialect::Legacy => Dialect::Modern,
            Dialect::Modern => Dialect::Legacy,
        };
        for dialect in [native, other] {
            let t = print_in(p, dialect, true);
            let back = text::parse(&t, &name, model.weights.as_ref())
                .unwrap_or_else(|e| panic!("{name} ({dialect:?}): {e}"));
            assert!(back == *p, "{name} ({dialect:?}): parse(print(p)) != p");
            assert_eq!(
                print_in(&back, dialect, true),
                t,
                "{name}: not a fixed point"
            );
            // A program coremltools wrote needs none of anekit's extensions: the text is
            // plain Apple syntax. (A NeuralNetwork's translation holds its weights in memory,
            // bound for the weight file: `@blob`.)
            if model.is_translated() {
                continue;
            }
            assert_eq!(
                print_in(p, dialect, false),
                t,
                "{name} ({dialect:?}): needed anekit extensions"
            );
        }
        texts.push((name, print_in(p, native, true)));
    }
    assert!(programs >= 20, "only {programs} ML Program fixtures found");

    let find = |n: &str| {
        texts
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("fixture {n} missing"))
    };
    // iOS16 constexpr ops carry every parameter as an attribute, iOS18 ones as parameters.
    let t = find("mlp_int8_per_channel_ios16");
    assert!(t.starts_with("program(1.0)\n"));
    assert!(
        t.contains("= constexpr_affine_dequantize()[axis = tensor<int32, []>("),
        "{t}"
    );
    assert!(t.contains("quantized_data = tensor<int8, ["), "{t}");
    let t = find("mlp_int8_per_channel_ios18");
    assert!(t.starts_with("program(1.3)\n"));
    assert!(
        t.contains("constexpr_blockwise_shift_scale(data = tensor<int8, ["),
        "{t}"
    );
    // States, several functions, flexible dimensions.
    assert!(find("stateful_fp16_ios18").contains(", state<tensor<fp16, ["));
    assert!(
        find("multifunction_fp16_ios18")
            .matches("\n    func ")
            .count()
            >= 2
    );
    assert!(find("flexible_range_fp16_ios17").contains(", ?"));
}

/// The compiled sample opens through `Model::open` (which parses its model.mil) and prints
/// back to the file Apple's compiler wrote.
#[test]
fn compiled_sample_prints_back_to_apples_text() {
    let dir = fixtures_dir().join("external/add_model.mlmodelc");
    let apple = std::fs::read_to_string(dir.join("model.mil")).unwrap();
    let model = Model::open(&dir).unwrap();
    let p = model.program.as_ref().unwrap();
    assert_eq!(model.spec_version(), 7);
    assert_eq!(
        print_in(p, Dialect::for_spec_version(model.spec_version()), false),
        apple
    );
    let f = &p.functions["main"];
    assert_eq!(f.opset, "CoreML6");
    let ops = &f.block().unwrap().operations;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].op_type, "mul");
    assert_eq!(ops[0].name(), Some("op_3_cast_fp16"));
    let build = &p.attributes["buildInfo"];
    match &build.data {
        anekit_mil::ValueData::Dict(kv) => {
            assert_eq!(kv.len(), 5);
            assert_eq!(kv[1].0.as_str(), Some("coremlc-version"));
            assert_eq!(kv[1].1.as_str(), Some("3402.4.1"));
        }
        other => panic!("{other:?}"),
    }
}
