//! The oracle test of the op registry: every op of every fixture program (Core ML models
//! that coremltools 9.0 converted from PyTorch, `fixtures/manifest.json`) re-infers to the
//! output types coremltools declared, with zero diagnostics, no op left unverified, and (for
//! fixed-shape models) no dimension left unknown that coremltools knew.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_mil::types::{Dim, ValueType};
use anekit_mil::validate::{DiagnosticKind, check};
use anekit_mil::{Opset, Program};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

struct Fixture {
    name: String,
    path: PathBuf,
    flexible: bool,
    op_counts: BTreeMap<String, BTreeMap<String, usize>>,
}

fn fixtures() -> Vec<Fixture> {
    let text = std::fs::read_to_string(fixtures_dir().join("manifest.json"))
        .expect("fixtures/manifest.json");
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = m["fixtures"].as_array().expect("fixtures list");
    assert!(
        list.len() >= 20,
        "expected the full fixture set, found {}",
        list.len()
    );
    list.iter()
        .map(|f| Fixture {
            name: f["name"].as_str().unwrap().to_string(),
            path: fixtures_dir().join(f["path"].as_str().unwrap()),
            flexible: f["inputs"]
                .as_array()
                .is_some_and(|ins| ins.iter().any(|i| !i["flexible"].is_null())),
            op_counts: serde_json::from_value(f["coremltools_op_counts"].clone())
                .unwrap_or_default(),
        })
        .collect()
}

fn programs() -> Vec<(Fixture, Program)> {
    fixtures()
        .into_iter()
        .filter_map(|f| {
            let model = Model::open(&f.path).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            // Programs coremltools wrote (a NeuralNetwork's translation is checked by
            // tests/neuralnetwork.rs; its manifest counts layers, not ops).
            let translated = model.is_translated();
            model.program.filter(|_| !translated).map(|p| (f, p))
        })
        .collect()
}

fn total_outputs(p: &Program) -> usize {
    let mut n = 0;
    for f in p.functions.values() {
        for b in f.blocks.values() {
            b.visit_ops(&mut |op| n += op.outputs.len());
        }
    }
    n
}

#[test]
fn every_fixture_program_validates_and_reinfers_coremltools_types() {
    let progs = programs();
    assert!(progs.len() >= 20, "only {} fixture programs", progs.len());
    let mut failures = Vec::new();
    let mut opsets = std::collections::BTreeSet::new();
    for (f, p) in &progs {
        for func in p.functions.values() {
            opsets.insert(func.opset.clone());
        }
        let r = check(p);
        for d in &r.diagnostics {
            failures.push(format!("{}: {d}", f.name));
        }
        for u in &r.unverified {
            failures.push(format!(
                "{}: unverified {} ({}): {}",
                f.name, u.op, u.op_type, u.reason
            ));
        }
        if !f.flexible {
            for i in &r.imprecise {
                failures.push(format!(
                    "{}: {} ({}) output {}: declared {}, inferred only {}",
                    f.name, i.op, i.op_type, i.output, i.declared, i.inferred
                ));
            }
        }
        // every output of every op was compared with an inferred type
        assert_eq!(
            r.outputs_compared,
            total_outputs(p),
            "{}: not every op output was compared",
            f.name
        );
        // the ops checked are the ops coremltools counted (const ops folded into constexpr
        // parameters are not serialized and not counted by either)
        let counted: usize = f.op_counts.values().flat_map(|m| m.values()).sum();
        if counted > 0 {
            assert_eq!(
                r.ops, counted,
                "{}: ops checked vs coremltools' op count",
                f.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // the fixtures exercise every ML Program opset
    for o in [Opset::Ios15, Opset::Ios16, Opset::Ios17, Opset::Ios18] {
        assert!(opsets.contains(o.proto_name()), "no fixture in {o}");
    }
}

/// Change the first fixed dimension of some op output's declared type: the check must
/// report exactly that op and output. This proves the oracle test above can fail.
#[test]
fn a_wrong_declared_output_type_is_reported() {
    let mut tried = 0;
    for (f, mut p) in programs() {
        let Some((fname, func)) = p.functions.iter_mut().next() else {
            continue;
        };
        let fname = fname.clone();
        let Some(block) = func.blocks.values_mut().next() else {
            continue;
        };
        // the first non-const op with a fixed output dim
        let Some(op) = block.operations.iter_mut().find(|o| {
            o.op_type != "const"
                && o.outputs.first().is_some_and(|out| match &out.ty {
                    ValueType::Tensor(t) => t
                        .shape
                        .as_ref()
                        .is_some_and(|s| s.iter().any(|d| d.fixed().is_some())),
                    _ => false,
                })
        }) else {
            continue;
        };
        let (op_name, out_name, op_type) = (
            op.display_name().to_string(),
            op.outputs[0].name.clone(),
            op.op_type.clone(),
        );
        let out = &mut op.outputs[0];
        if let ValueType::Tensor(t) = &mut out.ty
            && let Some(d) = t
                .shape
                .as_mut()
                .and_then(|s| s.iter_mut().find(|d| d.fixed().is_some()))
        {
            *d = Dim::Fixed(d.fixed().unwrap() + 7);
        }
        let r = check(&p);
        let hits: Vec<_> = r
            .diagnostics
            .iter()
            .filter(|d| d.kind == DiagnosticKind::OutputType)
            .collect();
        assert!(
            !hits.is_empty(),
            "{}: changed {op_name} ({op_type}) but nothing reported",
            f.name
        );
        let d = hits[0];
        assert_eq!(d.function, fname, "{}", f.name);
        assert_eq!(d.op.as_deref(), Some(op_name.as_str()), "{}: {d}", f.name);
        assert_eq!(
            d.param.as_deref(),
            Some(out_name.as_str()),
            "{}: {d}",
            f.name
        );
        tried += 1;
    }
    assert!(tried >= 20, "only {tried} fixtures mutated");
}
