//! CPU-backend behaviour of whole programs beyond the oracle cases: a runaway `while_loop`
//! stops with a clear error, reads of list holes and hostile list lengths fail, and states
//! are read, written and rounded across calls. (The oracle cases of the tensor families —
//! `tests/data/tensor/*.json`, coremltools 9.0's value inference, ONNX Runtime, PyTorch and
//! NumPy, made by `make_tensor.py` — and the control-flow / list programs run in
//! `tests/cases.rs`, through the test kit.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anekit_runtime::cpu::exec;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::kernels::control::set_max_loop_iterations;
use anekit_runtime::cpu::plan;
use anekit_runtime::cpu::value::Value;
use anekit_runtime::{ElementType, FeatureSpec, Precision, ShapeSpec, State, Tensor};
use ndarray::{ArrayD, IxDyn};

mod common;
use common::f64_of;

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
        assert_eq!(
            f64_of(&out[0]),
            (vec![1, 3, 2], want),
            "output of call {call}"
        );
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
