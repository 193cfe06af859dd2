//! The memory planner frees activations by lifetime: on a deep chain, the peak is a few
//! activations, not the sum of all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::{
    Argument, Binding, Block, DataType, Function, NamedValueType, Operation, Program, TensorType,
    Value, ValueType,
};
use anekit_runtime::{ComputeUnits, Engine, LoadOptions, NamedTensors, Tensor};

const WIDTH: u64 = 4096;
const DEPTH: usize = 200;

/// x → (relu → sub x_prev) × DEPTH: every op makes a new [1, WIDTH] fp32 activation.
fn chain() -> Model {
    let ty = ValueType::Tensor(TensorType::new(DataType::Fp32, &[1, WIDTH]));
    let mut ops = Vec::new();
    let mut prev = "x".to_string();
    for i in 0..DEPTH {
        let r = format!("r{i}");
        let mut op = Operation::new("relu");
        op.inputs
            .insert("x".into(), Argument(vec![Binding::Name(prev.clone())]));
        op.outputs.push(NamedValueType::new(r.clone(), ty.clone()));
        op.attributes
            .insert("name".into(), Value::string(r.clone()));
        ops.push(op);
        let a = format!("a{i}");
        let mut op = Operation::new("sub");
        op.inputs
            .insert("x".into(), Argument(vec![Binding::Name(r)]));
        op.inputs
            .insert("y".into(), Argument(vec![Binding::Name(prev)]));
        op.outputs.push(NamedValueType::new(a.clone(), ty.clone()));
        op.attributes
            .insert("name".into(), Value::string(a.clone()));
        ops.push(op);
        prev = a;
    }
    let block = Block {
        inputs: vec![],
        outputs: vec![prev],
        operations: ops,
        attributes: BTreeMap::new(),
    };
    let f = Function {
        inputs: vec![NamedValueType::new("x", ty)],
        opset: "CoreML5".into(),
        blocks: [("CoreML5".to_string(), block)].into(),
        attributes: BTreeMap::new(),
    };
    let program = Program {
        version: 1,
        functions: [("main".to_string(), f)].into(),
        ..Default::default()
    };
    let spec = proto::Model {
        specification_version: 6,
        ..Default::default()
    };
    Model::from_program(spec, program)
}

#[test]
fn peak_is_far_below_the_sum_of_activations() {
    let model = Arc::new(chain());
    let loaded = Engine::new()
        .load(
            model,
            &LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                ..Default::default()
            },
        )
        .unwrap();
    let act = (WIDTH * 4) as usize;
    let cpu = anekit_runtime::cpu::CpuModel::load(&chain(), &LoadOptions::default()).unwrap();
    let (planned_peak, total) = cpu.plan().main.planned_memory();
    // Each `sub` reads the `relu` before it and nothing else does: it is fused into the
    // relu's step (cpu::fuse), so every pair makes one activation.
    assert_eq!(cpu.plan().fused, DEPTH, "every sub fused into its relu");
    assert_eq!(
        total,
        act * (DEPTH + 1),
        "every activation counted once in the total"
    );
    assert!(
        planned_peak <= 3 * act,
        "planned peak {planned_peak} B for {act}-byte activations"
    );

    let x: Vec<f32> = (0..WIDTH).map(|i| (i as f32 - 2000.0) / 1000.0).collect();
    let inputs: NamedTensors = [(
        "x".to_string(),
        Tensor::f32(&[1, WIDTH as usize], x.clone()).unwrap(),
    )]
    .into();
    let out = loaded.predict(&inputs).unwrap();
    let measured = loaded.instance().peak_activation_bytes().unwrap();
    assert!(measured <= 3 * act, "measured peak {measured} B");
    assert!(
        measured * 100 < total,
        "peak {measured} B vs {total} B of activations in all"
    );
    // And the chain computed the right thing: a_i = relu(a_{i-1}) - a_{i-1}.
    let expect: Vec<f32> = x
        .iter()
        .map(|&v| (0..DEPTH).fold(v, |a, _| a.max(0.0) - a))
        .collect();
    let got = out["a199"].to_f32();
    for (g, e) in got.iter().zip(&expect) {
        assert!((g - e).abs() <= 1e-6 * e.abs().max(1.0), "{g} vs {e}");
    }
}
