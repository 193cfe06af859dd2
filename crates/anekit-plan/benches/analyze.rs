//! Benchmark: `analyze` of a 2,000-op transformer-like model (the target: < 100 ms),
//! with and without the per-chip comparison, and end to end from an .mlpackage on disk.
//! Prints a table (min / median of N runs); no assertions.
//!
//! Run: `cargo bench -p anekit-plan --bench analyze`
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anekit_mil::value::{Placement, Value};
use anekit_mil::{
    Argument, Binding, Block, DataType, Function, NamedValueType, Operation, Program, TensorType,
    ValueType,
};
use anekit_plan::{ComputeUnits, Options, analyze_program};

const D: u64 = 256;
const S: u64 = 128;

struct B {
    ops: Vec<Operation>,
    n: usize,
}

impl B {
    fn name(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}_{}", self.n)
    }
    fn konst(&mut self, shape: &[u64]) -> String {
        let name = self.name("w");
        let t = TensorType::new(DataType::Fp16, shape);
        let bytes = vec![0u8; (t.element_count().unwrap_or(0) * 2) as usize];
        let mut op = Operation::new("const");
        op.attributes.insert("name".into(), Value::string(&name));
        op.attributes.insert(
            "val".into(),
            Value::tensor_bytes(t.clone(), bytes, Placement::Auto),
        );
        op.outputs
            .push(NamedValueType::new(&name, ValueType::Tensor(t)));
        self.ops.push(op);
        name
    }
    fn op(&mut self, ty: &str, inputs: &[(&str, Binding)], out: &[u64]) -> String {
        let name = self.name(ty);
        let mut op = Operation::new(ty);
        op.attributes.insert("name".into(), Value::string(&name));
        for (k, v) in inputs {
            op.inputs.insert((*k).into(), Argument(vec![v.clone()]));
        }
        op.outputs.push(NamedValueType::new(
            &name,
            ValueType::tensor(DataType::Fp16, out),
        ));
        self.ops.push(op);
        name
    }
}

fn n(s: &str) -> Binding {
    Binding::Name(s.into())
}

fn ints(v: &[i32]) -> Binding {
    Binding::Value(Value::int32_tensor(&[v.len() as u64], v))
}

/// A transformer-like encoder with `layers` layers (about 16 computing ops per layer).
fn model(layers: usize) -> Program {
    let mut b = B {
        ops: Vec::new(),
        n: 0,
    };
    let mut x = "x".to_string();
    for _ in 0..layers {
        let w = b.konst(&[3 * D, D]);
        let bias = b.konst(&[3 * D]);
        let qkv = b.op(
            "linear",
            &[("x", n(&x)), ("weight", n(&w)), ("bias", n(&bias))],
            &[1, S, 3 * D],
        );
        let r = b.op(
            "reshape",
            &[("x", n(&qkv)), ("shape", ints(&[1, 128, 12, 64]))],
            &[1, S, 12, 64],
        );
        let t = b.op(
            "transpose",
            &[("x", n(&r)), ("perm", ints(&[0, 2, 1, 3]))],
            &[1, 12, S, 64],
        );
        let s = b.op(
            "matmul",
            &[
                ("x", n(&t)),
                ("y", n(&t)),
                ("transpose_y", Binding::Value(Value::bool(true))),
            ],
            &[1, 12, S, S],
        );
        let sm = b.op(
            "softmax",
            &[("x", n(&s)), ("axis", Binding::Value(Value::int32(-1)))],
            &[1, 12, S, S],
        );
        let a = b.op("matmul", &[("x", n(&sm)), ("y", n(&t))], &[1, 12, S, 64]);
        let t2 = b.op(
            "transpose",
            &[("x", n(&a)), ("perm", ints(&[0, 2, 1, 3]))],
            &[1, S, 12, 64],
        );
        let r2 = b.op(
            "reshape",
            &[("x", n(&t2)), ("shape", ints(&[1, 128, 768]))],
            &[1, S, 3 * D],
        );
        let wo = b.konst(&[D, 3 * D]);
        let o = b.op("linear", &[("x", n(&r2)), ("weight", n(&wo))], &[1, S, D]);
        let res = b.op("add", &[("x", n(&x)), ("y", n(&o))], &[1, S, D]);
        let g = b.konst(&[D]);
        let ln = b.op(
            "layer_norm",
            &[
                ("x", n(&res)),
                ("axes", ints(&[-1])),
                ("gamma", n(&g)),
                ("beta", n(&g)),
            ],
            &[1, S, D],
        );
        let w1 = b.konst(&[4 * D, D]);
        let h = b.op(
            "linear",
            &[("x", n(&ln)), ("weight", n(&w1))],
            &[1, S, 4 * D],
        );
        let ge = b.op("gelu", &[("x", n(&h))], &[1, S, 4 * D]);
        let w2 = b.konst(&[D, 4 * D]);
        let h2 = b.op("linear", &[("x", n(&ge)), ("weight", n(&w2))], &[1, S, D]);
        let res2 = b.op("add", &[("x", n(&ln)), ("y", n(&h2))], &[1, S, D]);
        x = b.op(
            "layer_norm",
            &[
                ("x", n(&res2)),
                ("axes", ints(&[-1])),
                ("gamma", n(&g)),
                ("beta", n(&g)),
            ],
            &[1, S, D],
        );
    }
    let block = Block {
        inputs: Vec::new(),
        outputs: vec![x],
        operations: b.ops,
        attributes: BTreeMap::new(),
    };
    let f = Function {
        inputs: vec![NamedValueType::new(
            "x",
            ValueType::tensor(DataType::Fp16, &[1, S, D]),
        )],
        opset: "CoreML7".into(),
        blocks: [("CoreML7".to_string(), block)].into_iter().collect(),
        attributes: BTreeMap::new(),
    };
    Program {
        version: 1,
        functions: [("main".to_string(), f)].into_iter().collect(),
        doc: String::new(),
        attributes: BTreeMap::new(),
    }
}

fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    (t[0], t[t.len() / 2])
}

fn main() {
    let p = model(125);
    let block = p.functions["main"]
        .block()
        .map(|b| b.operations.len())
        .unwrap_or(0);
    let compute = p.functions["main"]
        .block()
        .map(|b| b.operations.iter().filter(|o| o.op_type != "const").count())
        .unwrap_or(0);
    let opts = |compare| Options {
        chip: "M4".into(),
        compute_units: ComputeUnits::All,
        function: None,
        compare,
        ..Options::default()
    };
    let report = analyze_program(&p, &[], None, &opts(true)).expect("analysis");
    println!(
        "model: {block} ops ({compute} computing), {:.1} GFLOP; estimate on M4 {:.2} ms, {} of {} ops on the NE",
        report.model.flops / 1e9,
        report.estimate.latency_ms,
        report.coverage.ane_ops,
        report.coverage.compute_ops
    );
    println!("{:<52} {:>10} {:>10}", "case", "min ms", "median ms");
    let (mn, md) = time(20, || {
        let _ = analyze_program(&p, &[], None, &opts(false));
    });
    println!(
        "{:<52} {:>10.2} {:>10.2}",
        "analyze, one chip",
        mn.as_secs_f64() * 1e3,
        md.as_secs_f64() * 1e3
    );
    let (mn, md) = time(10, || {
        let _ = analyze_program(&p, &[], None, &opts(true));
    });
    println!(
        "{:<52} {:>10.2} {:>10.2}",
        "analyze + 24 chips + 4 compute-unit settings",
        mn.as_secs_f64() * 1e3,
        md.as_secs_f64() * 1e3
    );
    let (mn, md) = time(10, || {
        let r = analyze_program(&p, &[], None, &opts(true)).expect("analysis");
        let _ = anekit_plan::render::json(&r);
        let _ = anekit_plan::render::html(&r);
    });
    println!(
        "{:<52} {:>10.2} {:>10.2}",
        "analyze + comparison + JSON + HTML",
        mn.as_secs_f64() * 1e3,
        md.as_secs_f64() * 1e3
    );
    // End to end from disk.
    let dir = std::env::temp_dir().join(format!("anekit-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let pkg = dir.join("m.mlpackage");
    let spec = anekit_format::proto::Model {
        specification_version: 8,
        ..Default::default()
    };
    let m = anekit_mil::model::Model::from_program(spec, p);
    let saved = m.save_mlpackage(&pkg);
    if let Err(e) = &saved {
        println!("(cannot write the package: {e})");
    }
    if saved.is_ok() {
        let (mn, md) = time(10, || {
            let m = anekit_mil::model::Model::open(&pkg).expect("open");
            let _ = anekit_plan::analyze_model(&m, &opts(true));
        });
        println!(
            "{:<52} {:>10.2} {:>10.2}",
            "open .mlpackage + analyze + comparison",
            mn.as_secs_f64() * 1e3,
            md.as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
