//! Wrong inputs and unsupported ops give errors that name the input or the op.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use anekit_mil::model::Model;
use anekit_runtime::{
    ComputeUnits, ElementType, Engine, LoadOptions, LoadedModel, NamedTensors, Tensor,
};

fn model(name: &str) -> Model {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(format!("{name}.mlpackage"));
    Model::open(&p).unwrap()
}

fn load(m: Model) -> anekit_runtime::Result<LoadedModel> {
    let options = LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        ..Default::default()
    };
    Engine::new().load(Arc::new(m), &options)
}

fn one(name: &str, t: Tensor) -> NamedTensors {
    [(name.to_string(), t)].into()
}

fn err(r: anekit_runtime::Result<NamedTensors>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn wrong_name_dtype_shape_and_missing_inputs_name_the_input() {
    // mlp_fp32_ios15: x fp32 [1, 64] -> y fp32 [1, 10].
    let m = load(model("mlp_fp32_ios15")).unwrap();
    let good = Tensor::f32(&[1, 64], vec![0.5; 64]).unwrap();
    assert_eq!(
        m.predict(&one("x", good.clone())).unwrap()["y"].shape(),
        &[1, 10]
    );

    let e = err(m.predict(&NamedTensors::new()));
    assert!(e.contains("\"x\""), "missing input: {e}");

    let e = err(m.predict(&one("nope", good.clone())));
    assert!(e.contains("\"nope\""), "unknown input: {e}");

    let e = err(m.predict(&one("x", Tensor::f32(&[1, 63], vec![0.5; 63]).unwrap())));
    assert!(e.contains("\"x\"") && e.contains("63"), "wrong shape: {e}");

    let e = err(m.predict(&one("x", Tensor::zeros(ElementType::I32, &[1, 64]))));
    assert!(
        e.contains("\"x\"") && e.contains("int32"),
        "wrong dtype: {e}"
    );
}

#[test]
fn flexible_shapes_are_checked_per_call() {
    // flexible_range_fp16_ios17: x [1, 8, 1..64].
    let m = load(model("flexible_range_fp16_ios17")).unwrap();
    let x = |t: usize| {
        Tensor::f32(&[1, 8, t], vec![0.25; 8 * t])
            .unwrap()
            .cast(ElementType::F16)
    };
    assert_eq!(
        m.predict(&one("x", x(64))).unwrap()["y"].shape(),
        &[1, 4, 64]
    );
    let e = err(m.predict(&one("x", x(65))));
    assert!(
        e.contains("\"x\"") && e.contains("65"),
        "outside the range: {e}"
    );

    // flexible_enum_fp16_ios17: x [1, 8, {8, 16, 32}].
    let m = load(model("flexible_enum_fp16_ios17")).unwrap();
    assert_eq!(
        m.predict(&one("x", x(16))).unwrap()["y"].shape(),
        &[1, 4, 16]
    );
    let e = err(m.predict(&one("x", x(12))));
    assert!(
        e.contains("\"x\"") && e.contains("12"),
        "not an enumerated shape: {e}"
    );
}

#[test]
fn an_unsupported_op_is_named_at_load() {
    let mut m = model("mlp_fp32_ios15");
    let program = m.program.as_mut().unwrap();
    let block = program
        .functions
        .get_mut("main")
        .unwrap()
        .blocks
        .values_mut()
        .next()
        .unwrap();
    let op = block
        .operations
        .iter_mut()
        .find(|o| o.op_type == "gelu")
        .expect("the mlp has a gelu");
    op.op_type = "my_custom_activation".into();
    let name = op.name().unwrap_or_default().to_string();
    let e = match load(m) {
        Ok(_) => panic!("an unknown op loaded"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("my_custom_activation") && e.contains(&name),
        "unsupported op: {e}"
    );
}
