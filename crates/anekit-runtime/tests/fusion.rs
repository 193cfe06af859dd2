//! The CPU plan's rewrites (elementwise fusion, in-place steps, conv epilogues, packed
//! weights) and its choice of threads change nothing: every fixture model
//! (coremltools-converted PyTorch networks, compressed ones included) gives the same outputs
//! with the rewrites on and off, and inline on the caller's thread as on the pool; the
//! rewrites do happen on the networks that have fusable chains. (The fixture test,
//! tests/fixtures.rs, checks the rewritten plan against PyTorch.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::model::Model;
use anekit_mil::types::{DataType, ValueType};
use anekit_runtime::Precision;
use anekit_runtime::cpu::exec;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::plan::{self, CompileOptions};
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

fn models() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mlpackage"))
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
    let mut ctx = RunCtx {
        precision: Precision::Fp32,
        numerics: None,
        numerics_warnings: Vec::new(),
        state: None,
        consts: &p.consts,
        state_types: &p.state_types,
    };
    exec::run(
        &p.main,
        args,
        Vec::new(),
        &mut ctx,
        &mut exec::Meter::default(),
    )
    .unwrap()
}

#[test]
fn rewrites_do_not_change_outputs() {
    let mut checked = 0;
    let mut fused_total = 0;
    let mut packed_total = 0;
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
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                match (x, y) {
                    (Value::F32(x), Value::F32(y)) => {
                        assert_eq!(x.shape(), y.shape(), "{}", path.display());
                        let m = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
                        let e = x.iter().zip(y).fold(0f32, |e, (p, q)| e.max((p - q).abs()));
                        assert!(
                            e <= 1e-6 * m,
                            "{} {fname}: fused plan differs by {e} (max {m})",
                            path.display()
                        );
                    }
                    (x, y) => assert_eq!(x, y, "{}", path.display()),
                }
            }
            fused_total += on.fused;
            packed_total += on.packed;
            assert_eq!(off.packed, 0);
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
            for (x, y) in a.iter().zip(&b) {
                match (x, y) {
                    (Value::F32(x), Value::F32(y)) => {
                        let m = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
                        let e = x.iter().zip(y).fold(0f32, |e, (p, q)| e.max((p - q).abs()));
                        assert!(
                            e <= 1e-6 * m,
                            "{} {fname}: inline differs by {e}",
                            path.display()
                        );
                    }
                    (x, y) => assert_eq!(x, y, "{}", path.display()),
                }
            }
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
