//! Dense-math CPU kernels (conv, conv_transpose, pooling, normalization, reductions,
//! attention, einsum/linear/matmul, activations) against oracles nobody here wrote:
//! PyTorch (float64) and coremltools' NumPy definitions, computed by
//! `tests/data/make_dense.py` into `tests/data/dense/<family>.json`, plus expected numbers
//! of coremltools' own op tests.
//!
//! Each case is a one-op MIL function: arguments marked `runtime` are function inputs (the
//! kernel runs at prediction time, not folded at load), the others literals; the op's output
//! types come from anekit-mil's type inference (coremltools' `type_inference`), so a case
//! also checks that its arguments are valid for the op. `ANEKIT_CASE=<substring>` runs a
//! subset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::program::Opset;
use anekit_mil::types::{DataType, TensorType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};
use serde_json::Value as Json;

mod common;
use common::{Bound, f64_of, le_bytes, run_one_op, value_of};

fn number(v: &Json) -> f64 {
    match v {
        Json::Bool(b) => f64::from(u8::from(*b)),
        Json::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            s => panic!("bad number {s:?}"),
        },
        v => v.as_f64().unwrap(),
    }
}

fn shape_of(j: &Json) -> Vec<usize> {
    j["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

/// The bound values of one argument from its JSON form (see make_dense.py).
fn bound(j: &Json) -> Vec<Bound> {
    if let Some(items) = j.get("tuple") {
        return items.as_array().unwrap().iter().flat_map(bound).collect();
    }
    if let Some(v) = j.get("str") {
        return vec![Bound::Literal(MilValue::string(v.as_str().unwrap()))];
    }
    if let Some(v) = j.get("bool") {
        return vec![Bound::Literal(MilValue::bool(v.as_bool().unwrap()))];
    }
    let dtype = DataType::from_name(j["dtype"].as_str().unwrap()).unwrap();
    let shape = shape_of(j);
    let data: Vec<f64> = j["data"].as_array().unwrap().iter().map(number).collect();
    let ty = TensorType::new(dtype, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
    if j.get("runtime").and_then(Json::as_bool) != Some(true) {
        return vec![Bound::Literal(MilValue::tensor_bytes(
            ty,
            le_bytes(dtype, &data),
            Placement::Inline,
        ))];
    }
    vec![Bound::Input(value_of(dtype, &shape, &data), ty)]
}

/// Build a one-op function, compile it for the CPU backend and run it.
fn run_op(
    op_type: &str,
    opset: Opset,
    args: &[(String, Vec<Bound>)],
) -> Result<Vec<Value>, String> {
    run_one_op(op_type, opset, args, None)
}

/// Shape, values and whether the output is an integer (or bool) tensor.
fn values_of(v: &Value) -> (Vec<usize>, Vec<f64>, bool) {
    let (shape, data) = f64_of(v);
    (shape, data, !matches!(v, Value::F32(_)))
}

/// Compare an output with the expected tensor: `|got − want| ≤ atol + rtol·|want|`
/// element-wise, NaN where NaN is expected, integers exactly.
fn compare(got: &Value, want: &Json, atol: f64, rtol: f64) -> Result<(), String> {
    let (gs, g, int) = values_of(got);
    let ws = shape_of(want);
    if gs != ws {
        return Err(format!("shape {gs:?}, expected {ws:?}"));
    }
    let w: Vec<f64> = want["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(number)
        .collect();
    let want_int = want["data"]
        .as_array()
        .unwrap()
        .first()
        .is_some_and(|v| v.is_i64() || v.is_u64());
    if want_int && !int {
        return Err("expected an integer tensor".into());
    }
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = if b.is_nan() {
            a.is_nan()
        } else if b.is_infinite() || int {
            a == b
        } else {
            (a - b).abs() <= atol + rtol * b.abs()
        };
        if !ok {
            return Err(format!(
                "element {k} of {}: got {a}, expected {b} (atol {atol:e}, rtol {rtol:e})",
                g.len()
            ));
        }
    }
    Ok(())
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dense")
}

/// Run every case of `tests/data/dense/<family>.json`; returns the number run.
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
        let args: Vec<(String, Vec<Bound>)> = c["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), bound(v)))
            .collect();
        let outs = match run_op(c["op"].as_str().unwrap(), opset, &args) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let want = c["outputs"].as_array().unwrap();
        if outs.len() != want.len() {
            failures.push(format!(
                "{name}: {} outputs, expected {}",
                outs.len(),
                want.len()
            ));
            continue;
        }
        let (atol, rtol) = (c["atol"].as_f64().unwrap(), c["rtol"].as_f64().unwrap());
        for (k, (o, w)) in outs.iter().zip(want).enumerate() {
            if let Err(e) = compare(o, w, atol, rtol) {
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

fn expect_cases(n: usize, min: usize) {
    assert!(
        n >= min || std::env::var("ANEKIT_CASE").is_ok(),
        "ran {n} cases, expected at least {min}"
    );
}

#[test]
fn conv_matches_torch() {
    expect_cases(run_family("conv"), 28);
}

#[test]
fn conv_transpose_matches_torch() {
    expect_cases(run_family("conv_transpose"), 8);
}

#[test]
fn pooling_matches_torch() {
    expect_cases(run_family("pool"), 44);
}

#[test]
fn normalization_matches_torch_and_coremltools() {
    expect_cases(run_family("normalization"), 23);
}

#[test]
fn reductions_match_numpy() {
    expect_cases(run_family("reduction"), 99);
}

#[test]
fn attention_matches_torch() {
    expect_cases(run_family("attention"), 8);
}

#[test]
fn einsum_linear_matmul_match_torch() {
    expect_cases(run_family("linalg"), 22);
}

#[test]
fn activations_match_torch() {
    expect_cases(run_family("activation"), 30);
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
