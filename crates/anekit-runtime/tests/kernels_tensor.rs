//! CPU kernels of the tensor families — tensor transformation, tensor operation,
//! gather/scatter, states, control flow and lists — against oracles nobody here wrote:
//! coremltools 9.0's own value inference (the NumPy semantics it ships with every op),
//! ONNX Runtime, PyTorch and NumPy, and the expected numbers of coremltools' op tests, all
//! made by `tests/data/make_tensor.py` (JSON under `tests/data/tensor/`).
//!
//! Each JSON case is a one-op MIL function: arguments marked `runtime` are function inputs
//! (so the kernel runs at prediction time, not folded at load), the others literals, `tuple`
//! ones variadic; the op's output types come from anekit-mil's type inference (coremltools'
//! `type_inference`), so a case also checks that its arguments are valid for the op.
//! Control flow, lists and states are whole programs in MIL text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::program::Opset;
use anekit_mil::types::{DataType, TensorType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::cpu::exec;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::kernels::control::set_max_loop_iterations;
use anekit_runtime::cpu::plan;
use anekit_runtime::cpu::value::Value;
use anekit_runtime::{ElementType, FeatureSpec, Precision, ShapeSpec, State, Tensor};
use ndarray::{ArrayD, IxDyn};
use serde_json::Value as Json;

mod common;
use common::{Bound, f64_of, le_bytes, run_one_op, value_of};

// ------------------------------------------------------------------------------------------
// One-op harness
// ------------------------------------------------------------------------------------------

/// One argument of a test op.
#[derive(Clone, Debug)]
enum In {
    /// A function input with this value.
    Runtime(Value, TensorType),
    /// A literal.
    Lit(MilValue),
    /// A variadic argument.
    Tuple(Vec<In>),
}

fn json_data(j: &Json) -> (DataType, Vec<usize>, Vec<f64>) {
    let dtype = DataType::from_name(j["dtype"].as_str().unwrap()).unwrap();
    let shape = j["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = j["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Json::Bool(b) => f64::from(u8::from(*b)),
            v => v.as_f64().unwrap(),
        })
        .collect();
    (dtype, shape, data)
}

/// An argument from its JSON description (see make_tensor.py).
fn from_json(j: &Json) -> In {
    if let Some(items) = j.get("tuple") {
        return In::Tuple(items.as_array().unwrap().iter().map(from_json).collect());
    }
    if let Some(v) = j.get("str") {
        return In::Lit(MilValue::string(v.as_str().unwrap()));
    }
    let (dtype, shape, data) = json_data(j);
    if j.get("runtime").and_then(Json::as_bool) == Some(true) {
        let ty = TensorType::new(dtype, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
        In::Runtime(value_of(dtype, &shape, &data), ty)
    } else {
        let s: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        In::Lit(MilValue::tensor_bytes(
            TensorType::new(dtype, &s),
            le_bytes(dtype, &data),
            Placement::Inline,
        ))
    }
}

/// Build a one-op function, compile it for the CPU backend and run it. The output types
/// come from type inference, or, with `n_outputs` (cases that must fail in the kernel, whose
/// arguments inference may already reject), are `n_outputs` fp32 tensors of unknown shape.
fn run_op(
    op_type: &str,
    opset: Opset,
    args: &[(String, In)],
    n_outputs: Option<usize>,
) -> Result<Vec<Value>, String> {
    let bound = |item: &In| match item {
        In::Runtime(v, ty) => Bound::Input(v.clone(), ty.clone()),
        In::Lit(v) => Bound::Literal(v.clone()),
        In::Tuple(_) => panic!("nested tuples"),
    };
    let args: Vec<(String, Vec<Bound>)> = args
        .iter()
        .map(|(param, a)| {
            let items = match a {
                In::Tuple(items) => items.iter().map(bound).collect(),
                a => vec![bound(a)],
            };
            (param.clone(), items)
        })
        .collect();
    run_one_op(op_type, opset, &args, n_outputs)
}

/// Compare `got` with an expected tensor; an error message on mismatch.
fn compare(got: &Value, shape: &[usize], want: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    let (gs, g) = f64_of(got);
    if gs != shape {
        return Err(format!("shape {gs:?}, expected {shape:?}"));
    }
    // Expected f32 values went through JSON as decimals: round them back to f32.
    let is_f32 = matches!(got, Value::F32(_));
    for (k, (a, &b)) in g.iter().zip(want).enumerate() {
        let b = &if is_f32 { f64::from(b as f32) } else { b };
        let bad = if b.is_nan() {
            !a.is_nan()
        } else {
            (a - b).abs() > atol + rtol * b.abs() || a.is_nan()
        };
        if bad {
            return Err(format!(
                "element {k}: got {a}, expected {b} (atol {atol:e}, rtol {rtol:e})"
            ));
        }
    }
    Ok(())
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tensor")
}

fn load(family: &str) -> Json {
    let path = data_dir().join(format!("{family}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Run every case of `tests/data/tensor/<family>.json`; returns (cases run, op types seen).
fn run_family(family: &str) -> (usize, Vec<String>) {
    let doc = load(family);
    let only = std::env::var("ANEKIT_CASE").ok();
    let mut failures = Vec::new();
    let mut n = 0;
    let mut ops = Vec::new();
    for c in doc["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        n += 1;
        let op = c["op"].as_str().unwrap();
        ops.push(op.to_string());
        let opset = Opset::parse(c["opset"].as_str().unwrap()).unwrap();
        let args: Vec<(String, In)> = c["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), from_json(v)))
            .collect();
        let n_outputs = c
            .get("n_outputs")
            .and_then(Json::as_u64)
            .map(|n| n as usize);
        let result = run_op(op, opset, &args, n_outputs);
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
            failures.push(format!(
                "{name}: {} outputs, expected {}",
                outs.len(),
                want.len()
            ));
            continue;
        }
        let (atol, rtol) = (c["atol"].as_f64().unwrap(), c["rtol"].as_f64().unwrap());
        for (k, (o, w)) in outs.iter().zip(want).enumerate() {
            let (_, shape, data) = json_data(w);
            if let Err(e) = compare(o, &shape, &data, atol, rtol) {
                failures.push(format!(
                    "{name} output {k} (oracle: {}): {e}",
                    c["oracle"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} {family} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ops.sort();
    ops.dedup();
    (n, ops)
}

fn assert_covers(family: &str, ops: &[String], expected: &[&str]) {
    if std::env::var("ANEKIT_CASE").is_ok() {
        return;
    }
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|e| !ops.iter().any(|o| o == *e))
        .collect();
    assert!(missing.is_empty(), "{family}: no case for {missing:?}");
}

#[test]
fn tensor_transformations_match_oracles() {
    let (n, ops) = run_family("shape");
    assert!(
        n >= 50 || std::env::var("ANEKIT_CASE").is_ok(),
        "ran {n} cases"
    );
    assert_covers("shape", &ops, anekit_runtime::cpu::kernels::shape::OPS);
}

#[test]
fn tensor_operations_match_oracles() {
    let (n, ops) = run_family("tensor_op");
    assert!(
        n >= 50 || std::env::var("ANEKIT_CASE").is_ok(),
        "ran {n} cases"
    );
    assert_covers(
        "tensor_op",
        &ops,
        anekit_runtime::cpu::kernels::tensor_op::OPS,
    );
}

#[test]
fn gather_scatter_match_oracles() {
    let (n, ops) = run_family("gather");
    assert!(
        n >= 30 || std::env::var("ANEKIT_CASE").is_ok(),
        "ran {n} cases"
    );
    assert_covers("gather", &ops, anekit_runtime::cpu::kernels::gather::OPS);
}

// ------------------------------------------------------------------------------------------
// Whole programs in MIL text: control flow, lists, states
// ------------------------------------------------------------------------------------------

fn compile_text(text: &str) -> plan::Plan {
    let program = anekit_mil::text::parse_without_weights(text, "test.mil")
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let f = program.functions.get("main").expect("main");
    plan::compile("main", f).unwrap_or_else(|e| panic!("compile: {e}\n{text}"))
}

fn run_plan(
    p: &plan::Plan,
    inputs: Vec<Value>,
    state: Option<&mut State>,
) -> Result<Vec<Value>, String> {
    let mut ctx = RunCtx {
        precision: Precision::Fp32,
        numerics: None,
        numerics_warnings: Vec::new(),
        state,
        consts: &p.consts,
        state_types: &p.state_types,
    };
    let mut meter = exec::Meter::default();
    exec::run(&p.main, inputs, Vec::new(), &mut ctx, &mut meter).map_err(|e| e.to_string())
}

fn control_case(name: &str) -> Json {
    let doc = load("control");
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no control case {name}"))
        .clone()
}

fn json_value(j: &Json) -> Value {
    let (dtype, shape, data) = json_data(j);
    value_of(dtype, &shape, &data)
}

fn assert_close(got: &Value, want: &Json, tol: f64) {
    let (_, shape, data) = json_data(want);
    if let Err(e) = compare(got, &shape, &data, tol, tol) {
        panic!("{e}");
    }
}

/// The control_flow fixture's program: `while i < 3: x = 0.5 x + sin x`, then
/// `relu(x) if sum(x) > 0 else -x`.
const LOOP_AND_COND: &str = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [1, 4]> x) {
            int32 i0 = const()[name = string("i0"), val = int32(0)];
            int32 n, tensor<fp32, [1, 4]> y = while_loop(loop_vars = (i0, x))[name = string("loop")] (int32 i_c, tensor<fp32, [1, 4]> x_c) {
                    bool go = less(x = i_c, y = int32(3))[name = string("go")];
                } -> (go) (int32 i_c, tensor<fp32, [1, 4]> x_c) {
                    int32 i_next = add(x = i_c, y = int32(1))[name = string("i_next")];
                    tensor<fp32, [1, 4]> h = mul(x = x_c, y = fp32(0.5))[name = string("h")];
                    tensor<fp32, [1, 4]> s = sin(x = x_c)[name = string("s")];
                    tensor<fp32, [1, 4]> x_next = add(x = h, y = s)[name = string("x_next")];
                } -> (i_next, x_next);
            tensor<fp32, [1, 4]> out = identity(x = y)[name = string("out")];
        } -> (n, out);
}
"#;

const COND: &str = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [1, 4]> x, bool p) {
            tensor<fp32, [1, 4]> y = cond(pred = p)[name = string("c")] {
                    tensor<fp32, [1, 4]> r = relu(x = x)[name = string("r")];
                } -> (r) {
                    tensor<fp32, [1, 4]> m = mul(x = x, y = fp32(-1))[name = string("m")];
                } -> (m);
        } -> (y);
}
"#;

#[test]
fn while_loop_matches_numpy() {
    let c = control_case("while_loop_sin");
    let p = compile_text(LOOP_AND_COND);
    let out = run_plan(&p, vec![json_value(&c["x"])], None).unwrap();
    assert_eq!(out[0], Value::I32(ArrayD::from_elem(IxDyn(&[]), 3)));
    assert_close(&out[1], &c["y"], 1e-6);
}

#[test]
fn cond_takes_either_branch() {
    let p = compile_text(COND);
    for name in ["cond_0", "cond_1"] {
        let c = control_case(name);
        let x = json_value(&c["x"]);
        let sum: f32 = match &x {
            Value::F32(a) => a.sum(),
            _ => unreachable!(),
        };
        let pred = Value::Bool(ArrayD::from_elem(IxDyn(&[]), sum > 0.0));
        let out = run_plan(&p, vec![x, pred], None).unwrap();
        assert_close(&out[0], &c["y"], 0.0);
    }
}

#[test]
fn runaway_while_loop_stops_with_a_clear_error() {
    set_max_loop_iterations(Some(1000));
    let text = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [2]> x) {
            int32 i0 = const()[name = string("i0"), val = int32(0)];
            int32 n, tensor<fp32, [2]> y = while_loop(loop_vars = (i0, x))[name = string("forever")] (int32 i_c, tensor<fp32, [2]> x_c) {
                    bool go = greater_equal(x = i_c, y = int32(0))[name = string("go")];
                } -> (go) (int32 i_c, tensor<fp32, [2]> x_c) {
                    int32 i_next = add(x = i_c, y = int32(1))[name = string("i_next")];
                } -> (i_next, x_c);
        } -> (n, y);
}
"#;
    let p = compile_text(text);
    let x = Value::F32(ArrayD::zeros(IxDyn(&[2])));
    let err = run_plan(&p, vec![x], None).unwrap_err();
    assert!(
        err.contains("forever")
            && err.contains("1000 iterations")
            && err.contains("ANEKIT_MAX_LOOP_ITERATIONS"),
        "{err}"
    );
}

/// Lists in a loop: write the rows of x into a list, then gather them back reversed.
#[test]
fn lists_in_a_loop() {
    let c = control_case("list_loop");
    let text = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [3, 2]> x) {
            list<tensor<fp32, [2]>, ?> empty = make_list(init_length = int32(1), dynamic_length = bool(true), elem_shape = (int32(2)), dtype = string("fp32"))[name = string("empty")];
            int32 i0 = const()[name = string("i0"), val = int32(0)];
            int32 n, list<tensor<fp32, [2]>, ?> full = while_loop(loop_vars = (i0, empty))[name = string("fill")] (int32 i_c, list<tensor<fp32, [2]>, ?> l_c) {
                    bool go = less(x = i_c, y = int32(3))[name = string("go")];
                } -> (go) (int32 i_c, list<tensor<fp32, [2]>, ?> l_c) {
                    tensor<fp32, [2]> row = gather(x = x, indices = i_c, axis = int32(0))[name = string("row")];
                    list<tensor<fp32, [2]>, ?> l_next = list_write(ls = l_c, index = i_c, value = row)[name = string("w")];
                    int32 i_next = add(x = i_c, y = int32(1))[name = string("i_next")];
                } -> (i_next, l_next);
            int32 len = list_length(ls = full)[name = string("len")];
            tensor<fp32, [2]> last = list_read(ls = full, index = int32(2))[name = string("last")];
            tensor<fp32, [3, 2]> rev = list_gather(ls = full, indices = tensor<int32, [3]>([2, 1, 0]))[name = string("rev")];
            list<tensor<fp32, [2]>, ?> swapped = list_scatter(ls = full, indices = tensor<int32, [3]>([4, 0, 1]), value = rev)[name = string("sc")];
            int32 len2 = list_length(ls = swapped)[name = string("len2")];
            tensor<fp32, [2]> first = list_read(ls = swapped, index = int32(0))[name = string("first")];
        } -> (len, last, rev, len2, first);
}
"#;
    let p = compile_text(text);
    let x = json_value(&c["x"]);
    let out = run_plan(&p, vec![x.clone()], None).unwrap();
    let scalar = |v: i32| Value::I32(ArrayD::from_elem(IxDyn(&[]), v));
    assert_eq!(out[0], scalar(3));
    let Value::F32(xa) = &x else { unreachable!() };
    assert_eq!(
        out[1],
        Value::F32(xa.index_axis(ndarray::Axis(0), 2).to_owned())
    );
    assert_close(&out[2], &c["y"], 0.0);
    // list_scatter wrote rev[0] (= x[2]) to index 4 (growing the list), rev[1] (= x[1]) to
    // index 0 and rev[2] to index 1.
    assert_eq!(out[3], scalar(5));
    assert_eq!(
        out[4],
        Value::F32(xa.index_axis(ndarray::Axis(0), 1).to_owned())
    );
}

#[test]
fn list_reads_of_holes_and_hostile_lengths_fail() {
    let text = |len: &str, read: i32| {
        format!(
            r#"program(1.3)
{{
    func main<ios17>(int32 n) {{
            list<tensor<fp32, [?]>, ?> l = make_list(init_length = {len}, elem_shape = (string("s")), dtype = string("fp32"))[name = string("l")];
            tensor<fp32, [?]> r = list_read(ls = l, index = int32({read}))[name = string("r")];
        }} -> (r);
}}
"#
        )
    };
    let n = Value::I32(ArrayD::from_elem(IxDyn(&[]), 2));
    let p = compile_text(&text("n", 1));
    let err = run_plan(&p, vec![n], None).unwrap_err();
    assert!(err.contains("never written"), "{err}");
    let huge = Value::I32(ArrayD::from_elem(IxDyn(&[]), i32::MAX));
    let p = compile_text(&text("n", 0));
    let err = run_plan(&p, vec![huge], None).unwrap_err();
    assert!(err.contains("init_length"), "{err}");
}

/// The stateful fixture's pattern: a ring buffer updated through `write_state` (what
/// coremltools writes for `coreml_update_state`) and read back; fp16 states round to fp16.
#[test]
fn states_are_read_written_and_rounded() {
    let text = r#"program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 2]> x, state<tensor<fp16, [1, 3, 2]>> cache) {
            tensor<fp16, [1, 3, 2]> old = read_state(input = cache)[name = string("old")];
            tensor<fp16, [1, 2, 2]> tail = slice_by_index(x = old, begin = tensor<int32, [3]>([0, 1, 0]), end = tensor<int32, [3]>([1, 3, 2]), end_mask = tensor<bool, [3]>([true, true, true]))[name = string("tail")];
            tensor<fp16, [1, 3, 2]> shifted = slice_update(x = old, update = tail, begin = tensor<int32, [3]>([0, 0, 0]), end = tensor<int32, [3]>([0, 2, 0]), end_mask = tensor<bool, [3]>([true, false, true]))[name = string("shifted")];
            write_state(data = shifted, input = cache)[name = string("w1")];
            tensor<fp16, [1, 3, 2]> again = read_state(input = cache)[name = string("again")];
            tensor<fp16, [1, 1, 2]> row = expand_dims(x = x, axes = tensor<int32, [1]>([0]))[name = string("row")];
            tensor<fp16, [1, 3, 2]> updated = slice_update(x = again, update = row, begin = tensor<int32, [3]>([0, -1, 0]), end = tensor<int32, [3]>([0, 0, 0]), end_mask = tensor<bool, [3]>([true, true, true]))[name = string("updated")];
            write_state(data = updated, input = cache)[name = string("w2")];
            tensor<fp16, [1, 3, 2]> now = read_state(input = cache)[name = string("now")];
        } -> (now);
}
"#;
    let p = compile_text(text);
    let spec = FeatureSpec {
        name: "cache".into(),
        dtype: ElementType::F16,
        shape: ShapeSpec::Fixed {
            shape: vec![1, 3, 2],
        },
    };
    let mut state = State::new(&[spec]);
    let mut expect = vec![0.0f32; 6];
    for call in 0..4 {
        // 0.1 + call is not an fp16 number: the state keeps its fp16 rounding.
        let v = [0.1 + call as f32, -1.0 - call as f32];
        let x = Value::F32(ArrayD::from_shape_vec(IxDyn(&[1, 2]), v.to_vec()).unwrap());
        let out = run_plan(&p, vec![x, Value::State("cache".into())], Some(&mut state)).unwrap();
        expect.rotate_left(2);
        expect[4] = half::f16::from_f32(v[0]).to_f32();
        expect[5] = half::f16::from_f32(v[1]).to_f32();
        let want: Vec<f64> = expect.iter().map(|&v| f64::from(v)).collect();
        compare(&out[0], &[1, 3, 2], &want, 0.0, 0.0).unwrap();
        let Tensor::F16(stored) = state.read("cache").unwrap() else {
            panic!("state is not fp16")
        };
        let stored: Vec<f32> = stored.iter().map(|v| v.to_f32()).collect();
        assert_eq!(stored, expect, "state after call {call}");
    }
    // Without a state the prediction fails with a message naming the state.
    let x = Value::F32(ArrayD::zeros(IxDyn(&[1, 2])));
    let err = run_plan(&p, vec![x, Value::State("cache".into())], None).unwrap_err();
    assert!(err.contains("cache") && err.contains("no state"), "{err}");
}
