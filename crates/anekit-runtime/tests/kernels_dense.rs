//! Dense-math CPU kernels on hostile or inconsistent arguments: errors, not panics or
//! aborts. (The oracle cases of the dense families — `tests/data/dense/*.json`, PyTorch and
//! coremltools' NumPy definitions — run in `tests/cases.rs`, through the test kit.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anekit_mil::program::Opset;
use anekit_mil::types::{DataType, TensorType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

mod common;
use common::{Bound, run_one_op};

/// Build a one-op function, compile it for the CPU backend and run it.
fn run_op(
    op_type: &str,
    opset: Opset,
    args: &[(String, Vec<Bound>)],
) -> Result<Vec<Value>, String> {
    run_one_op(op_type, opset, args, None)
}

// ------------------------------------------------------------------------------------------
// Errors: hostile or inconsistent shapes give messages, not panics.
// ------------------------------------------------------------------------------------------

fn lit_i32s(v: &[i64]) -> Vec<Bound> {
    vec![Bound::Literal(MilValue::tensor_bytes(
        TensorType::new(DataType::Int32, &[v.len() as u64]),
        v.iter()
            .flat_map(|&x| (x as i32).to_le_bytes())
            .collect::<Vec<u8>>(),
        Placement::Inline,
    ))]
}

fn input_f32(shape: &[usize]) -> Vec<Bound> {
    let n: usize = shape.iter().product();
    let ty = TensorType::new(
        DataType::Fp32,
        &shape.iter().map(|&d| d as u64).collect::<Vec<_>>(),
    );
    vec![Bound::Input(
        Value::F32(ArrayD::from_shape_vec(IxDyn(shape), vec![0.5; n]).unwrap()),
        ty,
    )]
}

#[test]
fn conv_with_huge_padding_is_an_error_not_an_abort() {
    // Type inference may already refuse it; either way it must be an error.
    let args = vec![
        ("x".to_string(), input_f32(&[1, 1, 4, 4])),
        ("weight".to_string(), input_f32(&[1, 1, 1, 1])),
        (
            "pad_type".to_string(),
            vec![Bound::Literal(MilValue::string("custom"))],
        ),
        (
            "pad".to_string(),
            lit_i32s(&[1 << 30, 1 << 30, 1 << 30, 1 << 30]),
        ),
    ];
    assert!(run_op("conv", Opset::Ios17, &args).is_err());
}
