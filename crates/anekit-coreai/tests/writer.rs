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
