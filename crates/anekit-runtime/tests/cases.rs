//! The CPU backend on the whole test-kit suite (`anekit-testkit`): every JSON op case of
//! `tests/data/{dense,misc,tensor}` (PyTorch, coremltools' own value inference, ONNX Runtime
//! and NumPy oracles, written by the `make_*.py` scripts there), the program cases (control
//! flow, lists) and every fixture against its PyTorch reference — one named test each,
//! through `&dyn Backend`, the same suite the Core ML and direct-ANE backends run on a Mac.
//!
//! Filter as usual: `cargo test -p anekit-runtime --test cases -- dense/conv`.
//! Besides the cases, per family: a minimum number of cases, and for the tensor families a
//! case for every op of the family's kernel table.

use std::sync::Arc;

use anekit_runtime::cpu::CpuBackend;
use anekit_runtime::cpu::kernels::{gather, shape, tensor_op};
use anekit_testkit::Suite;
use anekit_testkit::harness::{all_trials, main as run};
use libtest_mimic::Trial;

/// (suite, at least this many cases, ops that must each have a case).
const FAMILIES: &[(&str, usize, &[&str])] = &[
    ("dense/conv", 28, &[]),
    ("dense/conv_transpose", 8, &[]),
    ("dense/pool", 44, &[]),
    ("dense/normalization", 23, &[]),
    ("dense/reduction", 99, &[]),
    ("dense/attention", 8, &[]),
    ("dense/linalg", 22, &[]),
    ("dense/activation", 30, &[]),
    ("misc/recurrent", 40, &[]),
    ("misc/image_resizing", 200, &[]),
    ("misc/quantization", 30, &[]),
    ("tensor/shape", 50, shape::OPS),
    ("tensor/tensor_op", 50, tensor_op::OPS),
    ("tensor/gather", 30, gather::OPS),
    ("tensor/programs", 4, &[]),
];

fn coverage_trials() -> Vec<Trial> {
    FAMILIES
        .iter()
        .map(|&(family, min, ops)| {
            Trial::test(format!("suite::{family}::coverage"), move || {
                let suites = Suite::kernel_suites().map_err(|e| e.to_string())?;
                let s = suites
                    .iter()
                    .find(|s| s.name == family)
                    .ok_or(format!("no suite {family}"))?;
                let n = s.file.cases.len();
                if n < min {
                    return Err(format!("{n} cases, expected at least {min}").into());
                }
                let missing: Vec<&&str> = ops
                    .iter()
                    .filter(|op| !s.file.cases.iter().any(|c| c.op.as_deref() == Some(**op)))
                    .collect();
                if !missing.is_empty() {
                    return Err(format!("no case for {missing:?}").into());
                }
                Ok(())
            })
        })
        .collect()
}

fn main() {
    let mut trials = all_trials(Arc::new(CpuBackend));
    trials.extend(coverage_trials());
    run(trials)
}
