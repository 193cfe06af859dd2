//! Tests of the pass manager and the standard passes on small MIL programs: op counts after
//! each pass, derived by hand, and the program still validating.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::text::parse_without_weights;

fn prog(body: &str, outputs: &str) -> Program {
    let text = format!(
        "program(1.3)\n[buildInfo = dict<string, string>({{}})]\n{{\n  func main<ios17>(tensor<fp16, [1, 4, 8]> x) {{\n{body}\n  }} -> ({outputs});\n}}\n"
    );
    parse_without_weights(&text, "t.mil").unwrap()
}

fn ops(p: &Program) -> Vec<String> {
    p.functions["main"]
        .block()
        .unwrap()
        .operations
        .iter()
        .map(|o| o.op_type.clone())
        .collect()
}

#[test]
fn dead_code_is_removed_but_outputs_and_side_effects_stay() {
    let mut p = prog(
        "    tensor<fp16, [1, 4, 8]> a = relu(x = x)[name = string(\"a\")];\n    tensor<fp16, [1, 4, 8]> dead1 = sigmoid(x = a)[name = string(\"dead1\")];\n    tensor<fp16, [1, 4, 8]> dead2 = tanh(x = dead1)[name = string(\"dead2\")];\n    tensor<fp16, [1, 4, 8]> y = abs(x = a)[name = string(\"y\")];",
        "y",
    );
    let n = DeadCodeElimination.run(&mut p).unwrap();
    assert_eq!(n, 2);
    assert_eq!(ops(&p), ["relu", "abs"]);
    assert!(validate::check(&p).diagnostics.is_empty());
}

#[test]
fn no_ops_are_removed_and_transposes_fold() {
    let mut p = prog(
        "    tensor<fp16, [1, 4, 8]> i = identity(x = x)[name = string(\"i\")];\n    tensor<fp16, [1, 4, 8]> r = reshape(x = i, shape = tensor<int32, [3]>([1, 4, 8]))[name = string(\"r\")];\n    tensor<fp16, [1, 4, 8]> c = cast(x = r, dtype = string(\"fp16\"))[name = string(\"c\")];\n    tensor<fp16, [8, 4, 1]> t1 = transpose(x = c, perm = tensor<int32, [3]>([2, 1, 0]))[name = string(\"t1\")];\n    tensor<fp16, [1, 8, 4]> t2 = transpose(x = t1, perm = tensor<int32, [3]>([2, 0, 1]))[name = string(\"t2\")];\n    tensor<fp16, [1, 8, 4]> y = relu(x = t2)[name = string(\"y\")];",
        "y",
    );
    let mut pm = PassManager::new();
    pm.add(RemoveNoOps).add(DeadCodeElimination);
    let runs = pm.run(&mut p).unwrap();
    assert_eq!(runs.len(), 2);
    // identity, reshape and cast go; t2 becomes transpose(x, [0, 2, 1]) and t1 is dead.
    assert_eq!(ops(&p), ["transpose", "relu"]);
    let b = p.functions["main"].block().unwrap();
    let t = &b.operations[0];
    assert_eq!(t.input("x"), Some(&Binding::Name("x".into())));
    let perm = match t.input("perm") {
        Some(Binding::Value(v)) => v.to_i64_vec().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(perm, vec![0, 2, 1]);
    assert!(validate::check(&p).diagnostics.is_empty());
}

#[test]
fn function_outputs_are_never_renamed() {
    let mut p = prog(
        "    tensor<fp16, [1, 4, 8]> y = identity(x = x)[name = string(\"y\")];",
        "y",
    );
    assert_eq!(RemoveNoOps.run(&mut p).unwrap(), 0);
    assert_eq!(ops(&p), ["identity"]);
}

struct Breaker;
impl Pass for Breaker {
    fn name(&self) -> &str {
        "breaker"
    }
    fn run(&self, program: &mut Program) -> Result<usize> {
        for f in program.functions.values_mut() {
            if let Some(b) = f.block_mut() {
                b.operations.clear();
            }
        }
        Ok(1)
    }
}

#[test]
fn a_pass_that_breaks_the_program_is_named() {
    let mut p = prog(
        "    tensor<fp16, [1, 4, 8]> y = relu(x = x)[name = string(\"y\")];",
        "y",
    );
    let mut pm = PassManager::new();
    pm.add(Breaker);
    let e = pm.run(&mut p).unwrap_err().to_string();
    assert!(e.contains("pass breaker"), "{e}");
}

#[test]
fn names_are_unique() {
    let mut taken: BTreeSet<String> = ["a".to_string(), "a_1".to_string()].into_iter().collect();
    assert_eq!(unique_name("a", &mut taken), "a_2");
    assert_eq!(unique_name("b", &mut taken), "b");
}
