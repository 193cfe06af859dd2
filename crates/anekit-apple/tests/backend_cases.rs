//! The test-kit suite (`anekit-testkit`: every JSON op case, the program cases and every
//! fixture, one named test each) on the Apple backends: Core ML on macOS and iOS, and the
//! direct Neural Engine backend on macOS with the `private-ane` feature — the same cases the
//! CPU backend runs in `crates/anekit-runtime/tests/cases.rs`. On a Mac:
//!
//! ```sh
//! cargo test -p anekit-apple --test backend_cases --features private-ane
//! cargo test -p anekit-apple --test backend_cases -- coreml::dense/conv   # a subset
//! ```
//!
//! Core ML runs each case with compute units `all`; fp32 fixtures are then held to the fp16
//! bound. Cases whose inputs or outputs Core ML cannot exchange (bool, uint8, int16
//! tensors) are skipped, and cases expected to fail need only fail (their messages are
//! anekit's own). Elsewhere this binary has no tests.

#[allow(unused_mut)]
fn main() {
    let mut trials: Vec<libtest_mimic::Trial> = Vec::new();
    #[cfg(target_vendor = "apple")]
    trials.extend(anekit_testkit::harness::all_trials(std::sync::Arc::new(
        anekit_apple::coreml::CoreMlBackend::new(),
    )));
    #[cfg(all(target_os = "macos", feature = "private-ane"))]
    trials.extend(anekit_testkit::harness::all_trials(std::sync::Arc::new(
        anekit_apple::ane::AneBackend::new(),
    )));
    anekit_testkit::harness::main(trials)
}
