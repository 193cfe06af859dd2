//! The CPU plan's rewrites (elementwise fusion, in-place steps, conv epilogues, packed
//! weights) and its choice of threads change nothing: every fixture model
//! (coremltools-converted PyTorch networks, compressed ones included) gives the same outputs
//! with the rewrites on and off, and inline on the caller's thread as on the pool; the
//! rewrites do happen on the networks that have fusable chains. (The fixture test,
//! tests/fixtures.rs, checks the rewritten plan against PyTorch.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_mil::types::{DataType, ValueType};
use anekit_runtime::cpu::plan::{self, CompileOptions};
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

fn models() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "mlpackage" || e == "mlmodel")
        })
        .collect();
    v.sort();
    v
}

/// Deterministic inputs for a function: small floats, token ids in [0, 16).
fn inputs(f: &anekit_mil::Function) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    for (k, i) in f.inputs.iter().enumerate() {
        let ValueType::Tensor(t) = &i.ty else {
            return None; // states: not this test's business
        };
        let shape: Vec<usize> = t
            .shape
            .as_ref()?
            .iter()
            .map(|d| d.fixed().unwrap_or(4) as usize)
            .collect();
        let n: usize = shape.iter().product();
        let v = if t.dtype.is_float() {
            let data = (0..n)
                .map(|j| (((j * 7919 + k * 104_729) % 2003) as f32 / 1001.5 - 1.0) * 2.0)
                .collect();
            Value::F32(ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap())
        } else if t.dtype == DataType::Bool {
            return None;
        } else {
            let data = (0..n).map(|j| ((j * 5 + k) % 16) as i32).collect();
            Value::I32(ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap())
        };
        out.push(v);
    }
    Some(out)
}

fn run(p: &plan::Plan, args: Vec<Value>) -> Vec<Value> {
    common::run_plan(p, args).unwrap()
}

/// `a` equals `b` value by value (float tensors within 1e-6 of the largest magnitude).
fn assert_same(a: &[Value], b: &[Value], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: output count");
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Value::F32(x), Value::F32(y)) => {
                assert_eq!(x.shape(), y.shape(), "{what}");
                let m = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
                let e = x.iter().zip(y).fold(0f32, |e, (p, q)| e.max((p - q).abs()));
                assert!(e <= 1e-6 * m, "{what} differs by {e} (max {m})");
            }
            (x, y) => assert_eq!(x, y, "{what}"),
        }
    }
}

#[test]
fn rewrites_do_not_change_outputs() {
    let mut checked = 0;
    let mut fused_total = 0;
    let mut packed_total = 0;
    let mut blocked_total = 0;
    for path in models() {
        let model = Model::open(&path).unwrap();
        let Ok(program) = model.require_program() else {
            continue;
        };
        for (fname, f) in &program.functions {
            let Some(args) = inputs(f) else { continue };
            let on = plan::compile_with(fname, f, CompileOptions::default()).unwrap();
            let off = plan::compile_with(fname, f, CompileOptions::unoptimized()).unwrap();
            assert_eq!(off.fused, 0);
            let (a, b) = (run(&on, args.clone()), run(&off, args));
            assert_same(
                &a,
                &b,
                &format!("{} {fname}: the fused plan", path.display()),
            );
            fused_total += on.fused;
            packed_total += on.packed;
            blocked_total += on.blocked;
            eprintln!(
                "{} {fname}: {} convolutions blocked",
                path.display(),
                on.blocked
            );
            assert_eq!(off.packed, 0);
            assert_eq!(off.blocked, 0);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} functions checked");
    // mlp_big (fp16), the int8 / int4-per-block / palettized compressed ones
    assert!(
        packed_total >= 8,
        "only {packed_total} weights kept packed over all fixtures"
    );
    assert!(
        fused_total >= 10,
        "only {fused_total} ops fused over all fixtures"
    );
    // the NeuralNetwork MobileNetV2 and conv nets
    assert!(
        blocked_total >= 10,
        "only {blocked_total} convolutions ran channel-blocked over all fixtures"
    );
}

/// Small plans run inline on the caller's thread (kernels then see one thread); their
/// outputs are the pool's. Plans with packed weights stay on the pool.
#[test]
fn small_plans_run_inline_with_the_pools_outputs() {
    use anekit_runtime::cpu::kernels;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let (mut inline, mut pooled) = (0, 0);
    for path in models() {
        let model = Model::open(&path).unwrap();
        let Ok(program) = model.require_program() else {
            continue;
        };
        for (fname, f) in &program.functions {
            let Some(args) = inputs(f) else { continue };
            let p = plan::compile_with(fname, f, CompileOptions::default()).unwrap();
            if !anekit_runtime::cpu::runs_inline(&p) {
                pooled += 1;
                continue;
            }
            inline += 1;
            let a = kernels::inline(|| {
                assert_eq!(kernels::threads(), 1);
                run(&p, args.clone())
            });
            let b = pool.install(|| run(&p, args));
            assert_same(&a, &b, &format!("{} {fname}: inline", path.display()));
        }
    }
    assert!(inline >= 10, "only {inline} fixture functions run inline");
    assert!(
        pooled >= 3,
        "only {pooled} fixture functions run on the pool"
    );
}

/// One thread runs on the caller's thread whatever the plan; more go to the pool unless the
/// plan is small. (mlp_big keeps its fp16 weights packed: never small.)
#[test]
fn one_thread_runs_on_the_callers_thread() {
    use anekit_runtime::LoadOptions;
    use anekit_runtime::cpu::CpuModel;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models/mlp_big_fp16_ios18.mlpackage");
    let model = Model::open(&path).unwrap();
    let load = |threads| {
        let options = LoadOptions {
            threads: Some(threads),
            ..LoadOptions::default()
        };
        CpuModel::load(&model, &options).unwrap()
    };
    let (one, two) = (load(1), load(2));
    assert!(one.plan().packed > 0);
    assert!(!anekit_runtime::cpu::runs_inline(one.plan()));
    assert!(one.runs_inline());
    assert!(!two.runs_inline());
}

/// A shape-only op whose input dies gives that buffer its new shape (no copy); when the
/// input lives on, the kernel copies it. Both give the kernel's values.
#[test]
fn shape_only_ops_reuse_a_dying_input() {
    let text = "program(1.0)\n{\n    func main<ios15>(tensor<fp32, [2, 3, 4]> x) {\n            tensor<int32, [2]> s = const()[name = string(\"s\"), val = tensor<int32, [2]>([6, 4])];\n            tensor<fp32, [6, 4]> y = reshape(x = x, shape = s)[name = string(\"y\")];\n            tensor<int32, [1]> a = const()[name = string(\"a\"), val = tensor<int32, [1]>([0])];\n            tensor<fp32, [1, 6, 4]> e = expand_dims(x = y, axes = a)[name = string(\"e\")];\n            tensor<fp32, [1, 6, 4]> z = add(x = e, y = e)[name = string(\"z\")];\n            tensor<fp32, [6, 4]> q = squeeze(x = z, axes = a)[name = string(\"q\")];\n            tensor<fp32, [1, 6, 4]> w = add(x = q, y = z)[name = string(\"w\")];\n        } -> (e, w);\n}\n";
    let program = anekit_mil::text::parse_without_weights(text, "views").unwrap();
    let f = &program.functions["main"];
    let p = plan::compile_with("main", f, CompileOptions::default()).unwrap();
    let views = |name: &str| {
        p.main
            .steps
            .iter()
            .find(|s| s.op_name == name)
            .map(|s| s.dying_view_input().is_some())
            .unwrap()
    };
    // x dies at y; y dies at e; z lives on after q (w reads it).
    // x dies at y, y at e; z dies at q but q's fused add reads it too.
    assert!(views("y") && views("e") && !views("q"));
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3, 4]), (0..24).map(|v| v as f32).collect()).unwrap();
    let ptr = x.as_ptr();
    let outs = run(&p, vec![Value::F32(x)]);
    let (Value::F32(e), Value::F32(w)) = (&outs[0], &outs[1]) else {
        panic!("{outs:?}")
    };
    assert_eq!(e.shape(), &[1, 6, 4]);
    assert_eq!(e.as_ptr(), ptr, "the input's buffer, reshaped twice");
    assert_eq!(w.shape(), &[1, 6, 4]);
    let want: Vec<f32> = (0..24).map(|v| 4.0 * v as f32).collect();
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), want);
}

/// `predict_owned` runs on the caller's input buffer (here it becomes the reshaped output:
/// no copy in, none out); `predict` copies it. Both give the same values.
#[test]
fn owned_inputs_are_not_copied() {
    use std::sync::Arc;

    use anekit_runtime::{ComputeUnits, Engine, LoadOptions, NamedTensors, Tensor};
    let text = "program(1.0)\n{\n    func main<ios15>(tensor<fp32, [2, 3, 4]> x) {\n            tensor<int32, [2]> s = const()[name = string(\"s\"), val = tensor<int32, [2]>([6, 4])];\n            tensor<fp32, [6, 4]> y = reshape(x = x, shape = s)[name = string(\"y\")];\n        } -> (y);\n}\n";
    let program = anekit_mil::text::parse_without_weights(text, "owned").unwrap();
    let model = anekit_testkit::case::model_of(program, anekit_mil::Opset::Ios15);
    for threads in [1, 2] {
        let loaded = Engine::new()
            .load(
                Arc::new(model.clone()),
                &LoadOptions {
                    compute_units: ComputeUnits::CpuOnly,
                    threads: Some(threads),
                    ..Default::default()
                },
            )
            .unwrap();
        let x =
            ArrayD::from_shape_vec(IxDyn(&[2, 3, 4]), (0..24).map(|v| v as f32).collect()).unwrap();
        let ptr = x.as_ptr();
        let mut inputs = NamedTensors::new();
        inputs.insert("x".into(), Tensor::F32(x));
        let copied = loaded.predict(&inputs).unwrap();
        let owned = loaded.predict_owned(inputs).unwrap();
        let (Some(Tensor::F32(a)), Some(Tensor::F32(b))) = (copied.get("y"), owned.get("y")) else {
            panic!("{owned:?}")
        };
        assert_eq!(a, b);
        assert_eq!(b.shape(), &[6, 4]);
        assert_eq!(b.as_ptr(), ptr, "{threads} threads: the caller's buffer");
        assert_ne!(a.as_ptr(), ptr, "{threads} threads: predict copies");
    }
}
