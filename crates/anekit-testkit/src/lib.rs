//! The test kit of anekit: one suite that every backend runs.
//!
//! - [`case`]: the one JSON schema of op test cases (one op, or a whole MIL program, with
//!   arguments and expected outputs from an oracle nobody here wrote) and how a case
//!   becomes a model with a description, so that any backend can load it;
//! - [`compare`]: the one tolerance rule;
//! - [`run`]: running cases through `&dyn Backend` ([`run_case`], [`run_suite`]), with
//!   per-case pass / fail / skip, time and outputs — the API tools use to compare a backend
//!   with the CPU backend;
//! - [`fixture`]: the coremltools-written fixtures against their PyTorch references, on
//!   any backend;
//! - [`harness`]: one named test per case and per fixture (`libtest-mimic`);
//! - [`programs`]: whole-program cases (control flow, lists) in MIL text;
//! - [`manifest`]: the typed fixture manifest (`fixtures/manifest.json`);
//! - [`python`]: the Python oracle runner (`ANEKIT_PYTHON`, `ANEKIT_REQUIRE_INTEROP`).
//!
//! The CPU backend runs the suite in `crates/anekit-runtime/tests/cases.rs`; on a Mac the
//! Core ML and direct Neural Engine backends run the same suite with one command (see
//! `docs/testing.md`):
//!
//! ```sh
//! cargo test -p anekit-apple --test backend_cases --features private-ane
//! ```
//!
//! Dependencies: `libtest-mimic` (a test binary with one named test per data-driven case,
//! filterable like any `cargo test`), `serde` / `serde_json` (the case and manifest files).

pub mod case;
pub mod compare;
pub mod fixture;
pub mod harness;
pub mod manifest;
pub mod programs;
pub mod python;
pub mod repo;
pub mod run;

pub use case::{Case, CaseFile, CaseModel};
pub use manifest::{Fixture, Manifest};
pub use python::Python;
pub use run::{CaseResult, Outcome, RunOptions, Suite, run_case, run_suite};
