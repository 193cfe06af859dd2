//! CPU kernels of the recurrent, image-resizing, random, quantization and classify families
//! against oracles nobody here wrote: PyTorch / NumPy values made by `tests/data/make_misc.py`
//! (JSON under `tests/data/misc/`), and the expected numbers of coremltools' own op tests.
//!
//! Each case is a one-op MIL function: arguments marked `runtime` are function inputs (so
//! the kernel runs at prediction time, not folded at load), the others literals; the op's
//! output types come from anekit-mil's type inference (coremltools' `type_inference`), so a
//! case also checks that the arguments are valid for the op.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anekit_mil::ops::{Arg, infer};
use anekit_mil::program::{Argument, Binding, Block, Function, Operation, Opset};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::Precision;
use anekit_runtime::cpu::exec;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::plan;
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};
use serde_json::Value as Json;

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

/// One argument of a test op.
#[derive(Clone, Debug)]
enum In {
    /// A function input with this value.
    Runtime(Value, TensorType),
    /// A literal.
    Lit(MilValue),
}

fn le_bytes(dtype: DataType, data: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in data {
        match dtype {
            DataType::Fp32 => out.extend((v as f32).to_le_bytes()),
            DataType::Fp16 => out.extend(half::f16::from_f64(v).to_le_bytes()),
            DataType::Int32 => out.extend((v as i32).to_le_bytes()),
            DataType::Int16 => out.extend((v as i16).to_le_bytes()),
            DataType::Uint16 => out.extend((v as u16).to_le_bytes()),
            DataType::Uint32 => out.extend((v as u32).to_le_bytes()),
            DataType::Int64 => out.extend((v as i64).to_le_bytes()),
            DataType::Int8 => out.extend((v as i8).to_le_bytes()),
            DataType::Uint8 => out.extend((v as u8).to_le_bytes()),
            DataType::Bool => out.push(u8::from(v != 0.0)),
            d => panic!("unsupported literal dtype {d}"),
        }
    }
    out
}

/// A literal tensor of `dtype`.
fn lit(dtype: DataType, shape: &[usize], data: &[f64]) -> In {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    In::Lit(MilValue::tensor_bytes(
        TensorType::new(dtype, &shape),
        le_bytes(dtype, data),
        Placement::Inline,
    ))
}

/// A run-time f32 (or `dtype`) tensor.
fn rt(dtype: DataType, shape: &[usize], data: &[f64]) -> In {
    let ty = TensorType::new(dtype, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
    let v = if dtype.is_float() {
        Value::F32(
            ArrayD::from_shape_vec(IxDyn(shape), data.iter().map(|&v| v as f32).collect())
                .unwrap(),
        )
    } else if dtype == DataType::Bool {
        Value::Bool(
            ArrayD::from_shape_vec(IxDyn(shape), data.iter().map(|&v| v != 0.0).collect())
                .unwrap(),
        )
    } else {
        Value::I32(
            ArrayD::from_shape_vec(IxDyn(shape), data.iter().map(|&v| v as i32).collect())
                .unwrap(),
        )
    };
    In::Runtime(v, ty)
}

fn s(v: &str) -> In {
    In::Lit(MilValue::string(v))
}
fn b(v: bool) -> In {
    In::Lit(MilValue::bool(v))
}
fn i32s(v: i32) -> In {
    In::Lit(MilValue::int32(v))
}
fn f32s(v: f32) -> In {
    In::Lit(MilValue::fp32(v))
}

/// An argument from its JSON description (see make_misc.py).
fn from_json(j: &Json) -> In {
    if let Some(v) = j.get("str") {
        return s(v.as_str().unwrap());
    }
    if let Some(v) = j.get("bool") {
        return b(v.as_bool().unwrap());
    }
    let dtype = DataType::from_name(j["dtype"].as_str().unwrap()).unwrap();
    let shape: Vec<usize> = j["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f64> = j["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Json::Bool(b) => f64::from(u8::from(*b)),
            v => v.as_f64().unwrap(),
        })
        .collect();
    if j.get("runtime").and_then(Json::as_bool) == Some(true) {
        rt(dtype, &shape, &data)
    } else {
        lit(dtype, &shape, &data)
    }
}

/// Build a one-op function, compile it for the CPU backend and run it.
fn run_op(op_type: &str, opset: Opset, args: &[(&str, In)]) -> Result<Vec<Value>, String> {
    let mut inputs = Vec::new();
    let mut values = Vec::new();
    let mut op = Operation::new(op_type);
    let mut infer_args: BTreeMap<String, Vec<Arg>> = BTreeMap::new();
    for (param, a) in args {
        match a {
            In::Runtime(v, ty) => {
                let name = format!("in_{param}");
                inputs.push(NamedValueType::new(&name, ValueType::Tensor(ty.clone())));
                values.push(v.clone());
                op.inputs
                    .insert(param.to_string(), Argument(vec![Binding::Name(name)]));
                infer_args.insert(
                    param.to_string(),
                    vec![Arg::var(ValueType::Tensor(ty.clone()))],
                );
            }
            In::Lit(v) => {
                op.inputs
                    .insert(param.to_string(), Argument(vec![Binding::Value(v.clone())]));
                infer_args.insert(param.to_string(), vec![Arg::literal(v.clone())]);
            }
        }
    }
    let inferred =
        infer(op_type, opset, &infer_args, &[]).map_err(|e| format!("type inference: {e}"))?;
    op.outputs = inferred
        .outputs
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
    let mut ctx = RunCtx {
        precision: Precision::Fp32,
        state: None,
        consts: &plan.consts,
        state_types: &plan.state_types,
    };
    let mut meter = exec::Meter::default();
    exec::run(&plan.main, values, Vec::new(), &mut ctx, &mut meter).map_err(|e| e.to_string())
}

fn f32_of(v: &Value) -> (Vec<usize>, Vec<f64>) {
    match v {
        Value::F32(a) => (a.shape().to_vec(), a.iter().map(|&x| f64::from(x)).collect()),
        Value::I32(a) => (a.shape().to_vec(), a.iter().map(|&x| f64::from(x)).collect()),
        Value::Bool(a) => (
            a.shape().to_vec(),
            a.iter().map(|&x| f64::from(u8::from(x))).collect(),
        ),
        v => panic!("not a numeric tensor: {v:?}"),
    }
}

/// Compare `got` with an expected tensor; an error message on mismatch.
fn compare(got: &Value, shape: &[usize], want: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    let (gs, g) = f32_of(got);
    if gs != shape {
        return Err(format!("shape {gs:?}, expected {shape:?}"));
    }
    let mut worst = (0.0, 0usize);
    for (k, (a, b)) in g.iter().zip(want).enumerate() {
        let err = (a - b).abs();
        let excess = err - (atol + rtol * b.abs());
        if excess > worst.0 || a.is_nan() != b.is_nan() {
            worst = (excess.max(f64::MIN_POSITIVE), k);
        }
    }
    if worst.0 > 0.0 {
        let k = worst.1;
        return Err(format!(
            "element {k}: got {}, expected {} (atol {atol:e}, rtol {rtol:e})",
            g[k], want[k]
        ));
    }
    Ok(())
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/misc")
}

/// Run every case of `tests/data/misc/<family>.json`; returns the number run.
fn run_family(family: &str) -> usize {
    let path = data_dir().join(format!("{family}.json"));
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let only = std::env::var("ANEKIT_CASE").ok();
    let mut failures = Vec::new();
    let mut n = 0;
    for c in doc["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        n += 1;
        let opset = Opset::parse(c["opset"].as_str().unwrap()).unwrap();
        let args: Vec<(String, In)> = c["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), from_json(v)))
            .collect();
        let args: Vec<(&str, In)> = args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let result = run_op(c["op"].as_str().unwrap(), opset, &args);
        if let Some(msg) = c.get("error").and_then(Json::as_str) {
            match result {
                Err(e) if e.contains(msg) => {}
                Err(e) => failures.push(format!("{name}: error {e:?} does not mention {msg:?}")),
                Ok(_) => failures.push(format!("{name}: expected an error mentioning {msg:?}")),
            }
            continue;
        }
        let outs = match result {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let want = c["outputs"].as_array().unwrap();
        if outs.len() != want.len() {
            failures.push(format!("{name}: {} outputs, expected {}", outs.len(), want.len()));
            continue;
        }
        let (atol, rtol) = (c["atol"].as_f64().unwrap(), c["rtol"].as_f64().unwrap());
        for (k, (o, w)) in outs.iter().zip(want).enumerate() {
            let shape: Vec<usize> = w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let data: Vec<f64> = w["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Json::Bool(b) => f64::from(u8::from(*b)),
                    v => v.as_f64().unwrap(),
                })
                .collect();
            if let Err(e) = compare(o, &shape, &data, atol, rtol) {
                failures.push(format!("{name} output {k}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} {family} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

// ------------------------------------------------------------------------------------------
// Recurrent
// ------------------------------------------------------------------------------------------

#[test]
fn recurrent_matches_torch_and_numpy() {
    let n = run_family("recurrent");
    assert!(n >= 40 || std::env::var("ANEKIT_CASE").is_ok(), "ran {n} cases");
}
