//! The op-zoo oracle: for each opset, a program that calls (nearly) every op of the opset in
//! several configurations (fixed and flexible dims, every parameter form), built with
//! coremltools 9.0's pymil and serialized with an empty pass pipeline
//! (`validate_oracle_data/generate.py`). Every declared output type there is what
//! coremltools' `type_inference` computed; our inference must reproduce each one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_mil::ops::{InferenceStatus, registry};
use anekit_mil::validate::check;
use anekit_mil::{Opset, Program};

fn zoo(name: &str) -> Program {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validate_oracle_data")
        .join(format!("{name}.mlpackage"));
    Model::open(&path)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .program
        .expect("an ML Program")
}

fn op_types(p: &Program) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for f in p.functions.values() {
        for b in f.blocks.values() {
            b.visit_ops(&mut |op| {
                s.insert(op.op_type.clone());
            });
        }
    }
    s
}

#[test]
fn zoo_programs_reinfer_every_declared_type() {
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for (name, opset) in [
        ("zoo_ios15", Opset::Ios15),
        ("zoo_ios16", Opset::Ios16),
        ("zoo_ios17", Opset::Ios17),
        ("zoo_ios18", Opset::Ios18),
    ] {
        let p = zoo(name);
        assert_eq!(p.functions["main"].known_opset(), Some(opset), "{name}");
        let r = check(&p);
        assert!(r.ops > 300, "{name}: only {} ops", r.ops);
        for d in &r.diagnostics {
            failures.push(format!("{name}: {d}"));
        }
        for u in &r.unverified {
            failures.push(format!(
                "{name}: unverified {} ({}): {}",
                u.op, u.op_type, u.reason
            ));
        }
        // less precise than coremltools only where the registry says inference is partial
        for i in &r.imprecise {
            let def = registry().get(&i.op_type, opset).unwrap();
            if def.inference == InferenceStatus::Full {
                failures.push(format!(
                    "{name}: {} ({}) output {}: declared {}, inferred only {}",
                    i.op, i.op_type, i.output, i.declared, i.inferred
                ));
            }
        }
        covered.extend(op_types(&p));
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // coverage: every op type except classify (only valid as the last op of a classifier)
    let all: BTreeSet<String> = registry().iter().map(|(n, _)| n.to_string()).collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.iter().all(|m| *m == "classify"),
        "op types without an oracle case: {missing:?}"
    );
}

/// Every op's check can fail: changing a single op's declared output type (one fixed dim off
/// by one, or the element type) is reported on that op and output — for up to three
/// configurations of every op type, in the iOS15 and iOS18 zoos.
#[test]
fn every_zoo_op_detects_a_wrong_declared_type() {
    use anekit_mil::types::{DataType, Dim, ValueType};
    use anekit_mil::validate::DiagnosticKind;
    let mut mutated = 0;
    for name in ["zoo_ios15", "zoo_ios18"] {
        let base = zoo(name);
        let imprecise: BTreeSet<String> = check(&base)
            .imprecise
            .into_iter()
            .map(|i| i.output)
            .collect();
        let n = base.functions["main"].block().unwrap().operations.len();
        // up to three configurations of each op type (keeps the test fast)
        let mut per_type: std::collections::BTreeMap<String, usize> = Default::default();
        for i in 0..n {
            let op_type = base.functions["main"].block().unwrap().operations[i]
                .op_type
                .clone();
            let seen = per_type.entry(op_type).or_default();
            *seen += 1;
            if *seen > 3 {
                continue;
            }
            let mut p = base.clone();
            let op = &mut p
                .functions
                .get_mut("main")
                .unwrap()
                .block_mut()
                .unwrap()
                .operations[i];
            if op.op_type == "const"
                || op.outputs.is_empty()
                || imprecise.contains(&op.outputs[0].name)
            {
                continue;
            }
            let (op_name, out_name) = (op.display_name().to_string(), op.outputs[0].name.clone());
            match &mut op.outputs[0].ty {
                ValueType::Tensor(t) => {
                    match t
                        .shape
                        .as_mut()
                        .and_then(|s| s.iter_mut().find(|d| d.fixed().is_some()))
                    {
                        Some(d) => *d = Dim::Fixed(d.fixed().unwrap() + 1),
                        None => {
                            t.dtype = if t.dtype == DataType::Fp32 {
                                DataType::Int32
                            } else {
                                DataType::Fp32
                            }
                        }
                    }
                }
                ValueType::List { element, .. } => {
                    if let ValueType::Tensor(t) = element.as_mut() {
                        t.dtype = if t.dtype == DataType::Fp32 {
                            DataType::Int32
                        } else {
                            DataType::Fp32
                        };
                    }
                }
                _ => continue,
            }
            let r = check(&p);
            assert!(
                r.diagnostics
                    .iter()
                    .any(|d| d.kind == DiagnosticKind::OutputType
                        && d.op.as_deref() == Some(op_name.as_str())
                        && d.param.as_deref() == Some(out_name.as_str())),
                "{name}: changing the output of {op_name} went unnoticed: {:#?}",
                r.diagnostics
            );
            mutated += 1;
        }
    }
    assert!(mutated > 400, "only {mutated} ops mutated");
}
