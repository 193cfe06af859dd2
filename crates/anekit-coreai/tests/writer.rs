//! Limits of the Core AI writer on hostile programs (no Python needed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use anekit_coreai::from_mil::{ConvertError, MAX_UNROLLED_STEPS, from_mil};

#[test]
fn an_overlong_recurrent_sequence_is_refused_not_unrolled() {
    let steps = MAX_UNROLLED_STEPS + 1;
    let text = format!(
        "program(1.3)\n[buildInfo = dict<string, string>({{}})]\n{{\n  func main<ios18>(tensor<fp32, [{steps}, 1, 1]> x) {{\n    tensor<fp32, [{steps}, 1, 1]> y, tensor<fp32, [1, 1]> hn = rnn(x = x, weight_ih = tensor<fp32, [1, 1]>([0.5]), weight_hh = tensor<fp32, [1, 1]>([0.5]), output_sequence = bool(true))[name = string(\"y\")];\n  }} -> (y);\n}}\n"
    );
    let program = anekit_mil::text::parse_without_weights(&text, "long.mil").unwrap();
    match from_mil(&program, "test") {
        Err(ConvertError::Unsupported(list)) => {
            assert_eq!(list.len(), 1, "{list:?}");
            assert!(list[0].3.contains("not unrolled"), "{list:?}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

/// The reason `from_mil` gives for the one op of `body` it refuses (a MIL function
/// `main(tensor<fp32, [2, 3]> x)` ending in `-> (y)`, or with the inputs `inputs`).
fn refusal(inputs: &str, body: &str) -> String {
    let text = format!(
        "program(1.3)\n[buildInfo = dict<string, string>({{}})]\n{{\n  func main<ios18>({inputs}) {{\n{body}\n  }} -> (y);\n}}\n"
    );
    let program = anekit_mil::text::parse_without_weights(&text, "cf.mil").unwrap();
    match from_mil(&program, "test") {
        Err(ConvertError::Unsupported(list)) => {
            assert_eq!(list.len(), 1, "{list:?}");
            list[0].3.clone()
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn control_flow_that_core_ai_cannot_express_is_refused_by_name() {
    // A loop that never ends.
    let why = refusal(
        "tensor<fp32, [2, 3]> x",
        "    tensor<fp32, [2, 3]> y = while_loop(loop_vars = (x))[name = string(\"y\")] (tensor<fp32, [2, 3]> x_c) {
            bool go = const()[name = string(\"go\"), val = bool(true)];
        } -> (go) (tensor<fp32, [2, 3]> x_b) {
            tensor<fp32, [2, 3]> x_next = mul(x = x_b, y = fp32(2.0))[name = string(\"x_next\")];
        } -> (x_next);",
    );
    assert!(why.contains("never ends"), "{why}");
    // A state written inside a branch (its token chain would have to cross the region).
    let why = refusal(
        "state<tensor<fp32, [2, 3]>> s, tensor<fp32, [2, 3]> x, bool p",
        "    tensor<fp32, [2, 3]> y = cond(pred = p)[name = string(\"y\")] {
            write_state(input = s, data = x)[name = string(\"w\")];
            tensor<fp32, [2, 3]> a = mul(x = x, y = fp32(2.0))[name = string(\"a\")];
        } -> (a) {
        } -> (x);",
    );
    assert!(
        why.contains("state access inside a control-flow block"),
        "{why}"
    );
    // A predicate that is not one value.
    let why = refusal(
        "tensor<fp32, [2, 3]> x, tensor<bool, [2]> p",
        "    tensor<fp32, [2, 3]> y = cond(pred = p)[name = string(\"y\")] {
        } -> (x) {
        } -> (x);",
    );
    assert!(why.contains("not one value"), "{why}");
}
