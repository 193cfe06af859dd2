//! `Precision::Fp16`: every fp16-typed op's output is rounded to fp16 as the Neural Engine
//! computes, and the first op whose output overflows is named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::{
    Argument, Binding, Block, DataType, Function, NamedValueType, Operation, Program, TensorType,
    Value, ValueType,
};
use anekit_runtime::{
    ComputeUnits, Engine, LoadOptions, NamedTensors, Precision, RuntimeError, Tensor, npy,
};

fn op(ty: &str, name: &str, inputs: &[(&str, &str)], out: &ValueType) -> Operation {
    let mut op = Operation::new(ty);
    for (p, n) in inputs {
        op.inputs
            .insert((*p).into(), Argument(vec![Binding::Name((*n).into())]));
    }
    op.outputs.push(NamedValueType::new(name, out.clone()));
    op.attributes.insert("name".into(), Value::string(name));
    op
}

/// y = relu(x · x) · 0.5 in fp16: x·x overflows fp16 (max 65504) when |x| > 256.
fn square_model() -> Model {
    let t = ValueType::Tensor(TensorType::new(DataType::Fp16, &[1, 4]));
    let half = Value::tensor_bytes(
        TensorType::scalar(DataType::Fp16),
        half::f16::from_f32(0.5).to_le_bytes().to_vec(),
        anekit_mil::Placement::Inline,
    );
    let mut c = Operation::new("const");
    c.outputs
        .push(NamedValueType::new("h", ValueType::scalar(DataType::Fp16)));
    c.attributes.insert("name".into(), Value::string("h"));
    c.attributes.insert("val".into(), half);
    let ops = vec![
        c,
        op("mul", "square_it", &[("x", "x"), ("y", "x")], &t),
        op("relu", "r", &[("x", "square_it")], &t),
        op("mul", "y", &[("x", "r"), ("y", "h")], &t),
    ];
    let block = Block {
        inputs: vec![],
        outputs: vec!["y".into()],
        operations: ops,
        attributes: BTreeMap::new(),
    };
    let f = Function {
        inputs: vec![NamedValueType::new("x", t)],
        opset: "CoreML6".into(),
        blocks: [("CoreML6".to_string(), block)].into(),
        attributes: BTreeMap::new(),
    };
    let program = Program {
        version: 1,
        functions: [("main".to_string(), f)].into(),
        ..Default::default()
    };
    Model::from_program(
        proto::Model {
            specification_version: 7,
            ..Default::default()
        },
        program,
    )
}

fn run(model: Model, precision: Precision, x: Tensor) -> anekit_runtime::Result<NamedTensors> {
    let options = LoadOptions {
        compute_units: ComputeUnits::CpuOnly,
        precision,
        ..Default::default()
    };
    let loaded = Engine::new().load(Arc::new(model), &options)?;
    loaded.predict(&[("x".to_string(), x)].into())
}

#[test]
fn names_the_first_op_that_overflows_fp16() {
    let x = Tensor::f32(&[1, 4], vec![1.0, 2.0, 300.0, -3.0])
        .unwrap()
        .cast(anekit_runtime::ElementType::F16);
    // fp32 arithmetic: 300² = 90000 fits f32; the output rounds to fp16 at the boundary.
    let y = run(square_model(), Precision::Fp32, x.clone()).unwrap();
    assert_eq!(y["y"].to_f32()[[0, 0]], 0.5);
    // fp16 arithmetic: square_it overflows to inf, and the error says so.
    match run(square_model(), Precision::Fp16, x) {
        Err(RuntimeError::NonFinite {
            op,
            op_type,
            what,
            max_input,
            ..
        }) => {
            assert_eq!(
                (op.as_str(), op_type.as_str(), what),
                ("square_it", "mul", "inf")
            );
            assert_eq!(max_input, 300.0);
        }
        other => panic!("expected an overflow error, got {other:?}"),
    }
}

#[test]
fn fp16_rounding_stays_close_to_pytorch_on_fp16_fixtures() {
    // Rounding every fp16 op's output is what the ANE does; the result must still match the
    // fp32 PyTorch reference within the fp16 bound of tests/fixtures.rs.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    for (name, network) in [
        ("transformer_encoder_fp16_ios17", "transformer_encoder"),
        ("decoder_sdpa_fp16_ios18", "decoder_sdpa"),
        ("convnet_fp16_ios16", "convnet"),
    ] {
        let model = Model::open(dir.join(format!("models/{name}.mlpackage"))).unwrap();
        let options = LoadOptions {
            compute_units: ComputeUnits::CpuOnly,
            precision: Precision::Fp16,
            ..Default::default()
        };
        let loaded = Engine::new().load(Arc::new(model), &options).unwrap();
        let data = dir.join("data").join(network);
        let inputs: NamedTensors = loaded
            .inputs()
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    npy::read(data.join(format!("inputs/{}.npy", s.name)))
                        .unwrap()
                        .cast(s.dtype),
                )
            })
            .collect();
        let outputs = loaded.predict(&inputs).unwrap();
        for (oname, t) in &outputs {
            let r = npy::read(data.join(format!("outputs/{oname}.npy")))
                .unwrap()
                .to_f32();
            let o = t.to_f32();
            let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = o
                .iter()
                .zip(r.iter())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err / scale < 1e-2,
                "{name} {oname}: relative error {}",
                err / scale
            );
        }
    }
}
