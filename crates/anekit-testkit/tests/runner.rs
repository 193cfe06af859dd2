//! The runner fails what it must: wrong values, missing errors, NaN where none is expected,
//! float outputs where integers are expected; and passes the same cases when right.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use anekit_runtime::cpu::CpuBackend;
use anekit_testkit::{Outcome, RunOptions, Suite, run_suite};

fn outcomes(json: &str) -> Vec<Outcome> {
    let suite = Suite::from_json("t", json).unwrap();
    run_suite(&CpuBackend, &suite, &RunOptions::default())
        .into_iter()
        .map(|r| r.outcome)
        .collect()
}

const RELU: &str = r#"{"cases": [
  {"name": "right", "op": "relu", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [3], "data": [-1, 0.5, "nan"], "runtime": true}},
   "outputs": [{"shape": [3], "data": [0, 0.5, "nan"]}], "atol": 0, "rtol": 0},
  {"name": "wrong", "op": "relu", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [3], "data": [-1, 0.5, 2], "runtime": true}},
   "outputs": [{"shape": [3], "data": [0, 0.5, 2.001]}], "atol": 1e-4, "rtol": 0},
  {"name": "unexpected_nan", "op": "relu", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [1], "data": ["nan"], "runtime": true}},
   "outputs": [{"shape": [1], "data": [0.0]}], "atol": 1, "rtol": 1},
  {"name": "wrong_shape", "op": "relu", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [2], "data": [1, 2], "runtime": true}},
   "outputs": [{"shape": [1, 2], "data": [1, 2]}], "atol": 0, "rtol": 0},
  {"name": "float_for_int", "op": "relu", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [2], "data": [1, 2], "runtime": true}},
   "outputs": [{"shape": [2], "data": [1, 2]}], "atol": 0, "rtol": 0},
  {"name": "int_ok", "op": "identity", "opset": "iOS15",
   "inputs": {"x": {"dtype": "int32", "shape": [2], "data": [-1, 2], "runtime": true}},
   "outputs": [{"shape": [2], "data": [-1, 2]}], "atol": 0, "rtol": 0},
  {"name": "no_error", "op": "relu", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [1], "data": [1], "runtime": true}},
   "error": "anything", "untyped_outputs": 1, "atol": 0, "rtol": 0},
  {"name": "bad_argument", "op": "reshape", "opset": "iOS15",
   "inputs": {"x": {"dtype": "fp32", "shape": [2], "data": [1, 2], "runtime": true},
              "shape": {"dtype": "int32", "shape": [1], "data": [3]}},
   "error": "type inference", "atol": 0, "rtol": 0}
]}"#;

#[test]
fn failures_are_failures() {
    let o = outcomes(RELU);
    let fail = |i: usize, needle: &str| match &o[i] {
        Outcome::Fail(m) => assert!(m.contains(needle), "case {i}: {m}"),
        other => panic!("case {i}: {other:?}"),
    };
    assert_eq!(o[0], Outcome::Pass);
    fail(1, "element 2");
    fail(2, "element 0");
    fail(3, "shape");
    fail(4, "integer");
    assert_eq!(o[5], Outcome::Pass);
    fail(6, "expected an error");
    assert_eq!(o[7], Outcome::Pass, "{:?}", o[7]);
}

#[test]
fn every_kernel_case_file_parses_with_the_one_schema() {
    let suites = Suite::kernel_suites().unwrap();
    assert!(suites.len() >= 15, "{} suites", suites.len());
    let cases: usize = suites.iter().map(|s| s.file.cases.len()).sum();
    assert!(cases >= 740, "{cases} cases");
}
