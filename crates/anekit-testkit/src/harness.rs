//! One named test per case, on every backend given: a `libtest-mimic` harness
//! (`harness = false` test targets call [`main`]).
//!
//! Test names are `<backend>::<suite>::<case>` (`cpu::dense/conv::conv2d_valid_bias`) and
//! `<backend>::fixture::<name>`; the usual filters work
//! (`cargo test -p anekit-runtime --test cases -- dense/conv`).

use std::sync::Arc;

use anekit_runtime::{Backend, BackendKind};
use libtest_mimic::{Arguments, Failed, Trial};

use crate::manifest::Manifest;
use crate::run::{Outcome, RunOptions, Suite, run_case};

/// The short name of a backend in test names (`cpu`, `coreml`, `ane`).
pub fn label(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Cpu => "cpu",
        BackendKind::CoreMl => "coreml",
        BackendKind::Ane => "ane",
    }
}

fn trial_result(o: Outcome) -> Result<(), Failed> {
    match o {
        Outcome::Pass | Outcome::Skip(_) => Ok(()),
        Outcome::Fail(m) => Err(m.into()),
    }
}

/// One trial per case of `suites` on `backend`.
pub fn case_trials(
    backend: Arc<dyn Backend>,
    suites: &[Arc<Suite>],
    options: &RunOptions,
) -> Vec<Trial> {
    let mut out = Vec::new();
    for suite in suites {
        for (i, case) in suite.file.cases.iter().enumerate() {
            let name = format!("{}::{}::{}", label(backend.kind()), suite.name, case.name);
            let (backend, suite, options) = (backend.clone(), suite.clone(), options.clone());
            out.push(Trial::test(name, move || {
                let case = &suite.file.cases[i];
                let r = run_case(backend.as_ref(), &suite.name, &suite.file, case, &options);
                trial_result(r.outcome)
            }));
        }
    }
    out
}

/// One trial per fixture of `manifest` on `backend` ([`crate::fixture::run_fixture`]):
/// ML Programs, and NeuralNetwork models, classifiers and pipelines through their MIL
/// translation.
pub fn fixture_trials(
    backend: Arc<dyn Backend>,
    manifest: Arc<Manifest>,
    options: &RunOptions,
) -> Vec<Trial> {
    (0..manifest.fixtures.len())
        .map(|i| {
            let name = format!(
                "{}::fixture::{}",
                label(backend.kind()),
                manifest.fixtures[i].name
            );
            let (backend, manifest, options) = (backend.clone(), manifest.clone(), options.clone());
            Trial::test(name, move || {
                let f = &manifest.fixtures[i];
                trial_result(
                    crate::fixture::run_fixture(backend.as_ref(), &manifest, f, &options).0,
                )
            })
        })
        .collect()
}

/// The whole suite on `backend`: every kernel case file ([`Suite::kernel_suites`]) and
/// every fixture, with [`RunOptions::for_backend`]. Panics if the data cannot be read.
pub fn all_trials(backend: Arc<dyn Backend>) -> Vec<Trial> {
    let options = RunOptions::for_backend(backend.as_ref());
    #[allow(clippy::expect_used)]
    let suites: Vec<Arc<Suite>> = Suite::kernel_suites()
        .expect("reading the kernel case files")
        .into_iter()
        .map(Arc::new)
        .collect();
    #[allow(clippy::expect_used)]
    let manifest = Arc::new(Manifest::load().expect("reading fixtures/manifest.json"));
    let mut trials = case_trials(backend.clone(), &suites, &options);
    trials.extend(fixture_trials(backend, manifest, &options));
    trials
}

/// Run `trials` as the test binary's tests (command-line arguments as `cargo test` passes
/// them) and exit.
pub fn main(trials: Vec<Trial>) -> ! {
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}
