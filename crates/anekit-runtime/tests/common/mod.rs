//! The one-op harness the kernel tests share: build a MIL function of one op whose
//! arguments are function inputs or literals, compile it for the CPU backend and run it; plus
//! the small helpers around it (running a compiled plan, literal bytes, run-time values,
//! numeric views of outputs).
//! Each test file uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use anekit_mil::ops::{Arg, infer};
use anekit_mil::program::{Argument, Binding, Block, Function, Operation, Opset};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};
use anekit_mil::value::Value as MilValue;
use anekit_runtime::Precision;
use anekit_runtime::cpu::exec;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::plan;
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

/// One bound value of an op argument.
#[derive(Clone, Debug)]
pub enum Bound {
    /// A function input with this value and type (the kernel runs at prediction time).
    Input(Value, TensorType),
    /// A literal.
    Literal(MilValue),
}

/// `data` as the little-endian bytes of a `dtype` literal (the test kit's rule).
pub fn le_bytes(dtype: DataType, data: &[f64]) -> Vec<u8> {
    anekit_testkit::case::le_bytes(dtype, data)
        .unwrap_or_else(|| panic!("unsupported literal dtype {dtype}"))
}

/// A CPU value of `dtype` (floats as f32, integers as i32) with this shape and data.
pub fn value_of(dtype: DataType, shape: &[usize], data: &[f64]) -> Value {
    if dtype.is_float() {
        Value::F32(
            ArrayD::from_shape_vec(IxDyn(shape), data.iter().map(|&v| v as f32).collect()).unwrap(),
        )
    } else if dtype == DataType::Bool {
        Value::Bool(
            ArrayD::from_shape_vec(IxDyn(shape), data.iter().map(|&v| v != 0.0).collect()).unwrap(),
        )
    } else {
        Value::I32(
            ArrayD::from_shape_vec(IxDyn(shape), data.iter().map(|&v| v as i32).collect()).unwrap(),
        )
    }
}

/// Build a one-op function, compile it for the CPU backend and run it. `args` binds each
/// parameter to one value, or several for a variadic parameter. The output types come from
/// type inference, or, with `untyped: Some(n)` (cases that must fail in the kernel, whose
/// arguments inference may already reject), are `n` fp32 tensors of unknown shape.
pub fn run_one_op(
    op_type: &str,
    opset: Opset,
    args: &[(String, Vec<Bound>)],
    untyped: Option<usize>,
) -> Result<Vec<Value>, String> {
    let mut inputs = Vec::new();
    let mut values = Vec::new();
    let mut op = Operation::new(op_type);
    let mut infer_args: BTreeMap<String, Vec<Arg>> = BTreeMap::new();
    for (param, items) in args {
        let mut bindings = Vec::new();
        let mut iargs = Vec::new();
        for (k, item) in items.iter().enumerate() {
            match item {
                Bound::Input(v, ty) => {
                    let name = format!("in_{param}_{k}");
                    inputs.push(NamedValueType::new(&name, ValueType::Tensor(ty.clone())));
                    values.push(v.clone());
                    bindings.push(Binding::Name(name));
                    iargs.push(Arg::var(ValueType::Tensor(ty.clone())));
                }
                Bound::Literal(v) => {
                    bindings.push(Binding::Value(v.clone()));
                    iargs.push(Arg::literal(v.clone()));
                }
            }
        }
        op.inputs.insert(param.clone(), Argument(bindings));
        infer_args.insert(param.clone(), iargs);
    }
    let types = match untyped {
        Some(n) => vec![
            ValueType::Tensor(TensorType {
                dtype: DataType::Fp32,
                shape: None,
                attributes: BTreeMap::new(),
            });
            n
        ],
        None => {
            infer(op_type, opset, &infer_args, &[])
                .map_err(|e| format!("type inference: {e}"))?
                .outputs
        }
    };
    op.outputs = types
        .iter()
        .enumerate()
        .map(|(i, t)| NamedValueType::new(format!("out{i}"), t.clone()))
        .collect();
    op.attributes
        .insert("name".into(), MilValue::string(format!("{op_type}_0")));
    let block = Block {
        inputs: Vec::new(),
        outputs: op.outputs.iter().map(|o| o.name.clone()).collect(),
        operations: vec![op],
        attributes: BTreeMap::new(),
    };
    let function = Function {
        inputs,
        opset: opset.proto_name().to_string(),
        blocks: BTreeMap::from([(opset.proto_name().to_string(), block)]),
        attributes: BTreeMap::new(),
    };
    let plan = plan::compile("main", &function).map_err(|e| format!("compile: {e}"))?;
    run_plan(&plan, values)
}

/// Run a compiled plan's main block in f32 on `inputs` (on the current rayon pool).
pub fn run_plan(plan: &plan::Plan, inputs: Vec<Value>) -> Result<Vec<Value>, String> {
    let mut ctx = RunCtx {
        precision: Precision::Fp32,
        numerics: None,
        numerics_warnings: Vec::new(),
        state: None,
        consts: &plan.consts,
        state_types: &plan.state_types,
    };
    let mut meter = exec::Meter::default();
    exec::run(&plan.main, inputs, Vec::new(), &mut ctx, &mut meter).map_err(|e| e.to_string())
}

/// The shape and values (as f64) of a numeric tensor output; panics on anything else.
pub fn f64_of(v: &Value) -> (Vec<usize>, Vec<f64>) {
    match v {
        Value::F32(a) => (
            a.shape().to_vec(),
            a.iter().map(|&x| f64::from(x)).collect(),
        ),
        Value::I32(a) => (
            a.shape().to_vec(),
            a.iter().map(|&x| f64::from(x)).collect(),
        ),
        Value::Bool(a) => (
            a.shape().to_vec(),
            a.iter().map(|&x| f64::from(u8::from(x))).collect(),
        ),
        v => panic!("not a numeric tensor: {v:?}"),
    }
}
