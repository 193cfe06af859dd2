//! `Precision::Fp16` with a chip's [`AneNumerics`]: tensors crafted to cross each measured
//! Neural Engine cliff (ANEForge `bench/numeric_cliffs.py`: the matmul inf cliff at ~32759,
//! the pre-A16-tier width-offset slice clamp at 4094, integer row sums exact to 2048) give the
//! predicted inf or warning on the chips that have the cliff and not on the others, and the
//! error names the op, the chip and the cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::text::parse_without_weights;
use anekit_runtime::{
    AneNumerics, ComputeUnits, ElementType, Engine, LoadOptions, LoadedModel, NamedTensors,
    Precision, RuntimeError, Tensor,
};

/// The cliffs the chip catalog records for an h13/h14 chip (M1, M2: slice clamp) and for an
/// h16/h17 chip (M4, M5: no clamp).
fn chip(name: &str) -> AneNumerics {
    let pre_a16 = matches!(name, "M1" | "M2 Pro" | "A15");
    AneNumerics {
        chip: name.into(),
        matmul_max_finite: 32752.0,
        slice_max_finite: pre_a16.then_some(4094.0),
        exact_integer_sum_max: 2048.0,
    }
}

fn model(inputs: &str, body: &str, output: &str) -> Model {
    let text = format!(
        "program(1.3)\n[buildInfo = dict<string, string>({{}})]\n{{\n  func main<ios17>({inputs}) {{\n{body}\n  }} -> ({output});\n}}\n"
    );
    let program = parse_without_weights(&text, "test.mil").expect("program parses");
    Model::from_program(
        proto::Model {
            specification_version: 8,
            ..Default::default()
        },
        program,
    )
}

fn load(m: Model, numerics: Option<AneNumerics>) -> LoadedModel {
    let options = LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        precision: Precision::Fp16,
        ane_numerics: numerics,
        ..Default::default()
    };
    Engine::new().load(Arc::new(m), &options).expect("loads")
}

fn input(shape: &[usize], data: Vec<f32>) -> NamedTensors {
    [(
        "x".to_string(),
        Tensor::f32(shape, data).unwrap().cast(ElementType::F16),
    )]
    .into()
}

/// ANEForge's probe: x[1, K] of K equal terms times a [K, 16] matrix of ones, so every output
/// is the sum `total`.
fn matmul_model() -> Model {
    model(
        "tensor<fp16, [1, 8]> x",
        &format!(
            "    tensor<fp16, [8, 16]> w = const()[name = string(\"w\"), val = tensor<fp16, [8, 16]>([{}])];\n    tensor<fp16, [1, 16]> y = matmul(x = x, y = w, transpose_x = bool(false), transpose_y = bool(false))[name = string(\"y\")];",
            vec!["1"; 128].join(", ")
        ),
        "y",
    )
}

fn sum_to(total: f32) -> NamedTensors {
    input(&[1, 8], vec![total / 8.0; 8])
}

#[test]
fn matmul_outputs_past_the_cliff_are_inf_on_every_chip() {
    for c in ["M1", "M4", "M5", "M6"] {
        // 32000 is below the cliff: finite on the engine.
        let y = load(matmul_model(), Some(chip(c)))
            .predict(&sum_to(32000.0))
            .unwrap();
        assert_eq!(y["y"].to_f32()[[0, 0]], 32000.0, "{c}");
        // 33024 is a finite fp16 number, but above the engine's matmul cliff.
        match load(matmul_model(), Some(chip(c))).predict(&sum_to(33024.0)) {
            Err(e @ RuntimeError::NonFinite { .. }) => {
                let RuntimeError::NonFinite {
                    op, op_type, cause, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((op.as_str(), op_type.as_str()), ("y", "matmul"));
                assert!(cause.contains(c) && cause.contains("32752"), "{cause}");
                assert!(e.to_string().contains("first non-finite value"), "{e}");
            }
            other => panic!("{c}: expected the matmul cliff, got {other:?}"),
        }
    }
    // Plain fp16 (no chip) keeps 33024: fp16 itself reaches 65504.
    let y = load(matmul_model(), None)
        .predict(&sum_to(33024.0))
        .unwrap();
    assert_eq!(y["y"].to_f32()[[0, 3]], 33024.0);
}

fn slice_model(begin_last: i32) -> Model {
    model(
        "tensor<fp16, [1, 1, 1, 8]> x",
        &format!(
            "    tensor<fp16, [1, 1, 1, {}]> y = slice_by_index(x = x, begin = tensor<int32, [4]>([0, 0, 0, {begin_last}]), end = tensor<int32, [4]>([1, 1, 1, 8]))[name = string(\"y\")];",
            8 - begin_last
        ),
        "y",
    )
}

#[test]
fn width_offset_slices_clamp_only_before_the_a16_tier() {
    let mut data = vec![0.0f32; 8];
    data[4] = 5000.0;
    let x = input(&[1, 1, 1, 8], data);
    for c in ["M1", "M2 Pro", "A15"] {
        match load(slice_model(1), Some(chip(c))).predict(&x) {
            Err(RuntimeError::NonFinite { op_type, cause, .. }) => {
                assert_eq!(op_type, "slice_by_index");
                assert!(cause.contains(c) && cause.contains("4094"), "{cause}");
            }
            other => panic!("{c}: expected the slice clamp, got {other:?}"),
        }
        // A slice that starts at 0 on the last axis does not go through the crop DMA.
        let y = load(slice_model(0), Some(chip(c))).predict(&x).unwrap();
        assert_eq!(y["y"].to_f32()[[0, 0, 0, 4]], 5000.0, "{c}");
        // Below the clamp: exact.
        let mut small = vec![0.0f32; 8];
        small[4] = 4000.0;
        let y = load(slice_model(1), Some(chip(c)))
            .predict(&input(&[1, 1, 1, 8], small))
            .unwrap();
        assert_eq!(y["y"].to_f32()[[0, 0, 0, 3]], 4000.0, "{c}");
    }
    // M4 and M5 (A16 tier): exact.
    for c in ["M4", "M5"] {
        let y = load(slice_model(1), Some(chip(c))).predict(&x).unwrap();
        assert_eq!(y["y"].to_f32()[[0, 0, 0, 3]], 5000.0, "{c}");
    }
}

fn reduce_model() -> Model {
    model(
        "tensor<fp16, [1, 8]> x",
        "    tensor<fp16, [1]> y = reduce_sum(x = x, axes = tensor<int32, [1]>([1]), keep_dims = bool(false))[name = string(\"y\")];",
        "y",
    )
}

#[test]
fn row_sums_past_2048_warn_and_smaller_ones_do_not() {
    // ANEForge's probe: 8 small integers summing to 2049 read 2050 on the engine.
    let mut row = vec![256.0f32; 8];
    row[0] = 257.0;
    let loaded = load(reduce_model(), Some(chip("M5")));
    let y = loaded.predict(&input(&[1, 8], row)).unwrap();
    // fp16 has no 2049: the sum lands on the grid.
    assert_ne!(y["y"].to_f32()[[0]], 2049.0);
    let w = loaded.instance().numerics_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("reduce_sum") && w[0].contains("2048") && w[0].contains("M5"));
    // 2000 is exact: no warning.
    let y = loaded.predict(&input(&[1, 8], vec![250.0; 8])).unwrap();
    assert_eq!(y["y"].to_f32()[[0]], 2000.0);
    assert!(loaded.instance().numerics_warnings().is_empty());
    // Without a chip: no numerics warnings at all.
    let plain = load(reduce_model(), None);
    plain.predict(&input(&[1, 8], vec![300.0; 8])).unwrap();
    assert!(plain.instance().numerics_warnings().is_empty());
}
