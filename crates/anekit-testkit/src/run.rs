//! Running cases on a backend: the API behind the test harness and behind tools such as
//! `anekit doctor` (compare a backend with the CPU backend on the same cases).
//!
//! ```no_run
//! use anekit_runtime::cpu::CpuBackend;
//! use anekit_testkit::{RunOptions, Suite, run_suite};
//!
//! let suites = Suite::kernel_suites().unwrap();
//! let results = run_suite(&CpuBackend, &suites[0], &RunOptions::default());
//! let failed = results.iter().filter(|r| r.outcome.is_fail()).count();
//! println!("{} cases, {failed} failed", results.len());
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anekit_runtime::{Backend, ComputeUnits, LoadOptions, NamedTensors, Precision};

use crate::case::{Case, CaseError, CaseFile, CaseModel};
use crate::compare::compare;

/// A named collection of cases: one case file.
#[derive(Debug, Clone)]
pub struct Suite {
    /// `<folder>/<file stem>`, e.g. `dense/conv`.
    pub name: String,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// The cases.
    pub file: CaseFile,
}

impl Suite {
    /// The suite of one case file, named `<parent folder>/<stem>`.
    pub fn read(path: &Path) -> Result<Self, CaseError> {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let parent = path
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned());
        Ok(Self {
            name: format!(
                "{}/{}",
                parent.unwrap_or_default(),
                stem.unwrap_or_default()
            ),
            path: Some(path.to_path_buf()),
            file: CaseFile::read(path)?,
        })
    }

    /// A suite from JSON text (a case file embedded in a binary, say).
    pub fn from_json(name: &str, json: &str) -> Result<Self, CaseError> {
        let file = serde_json::from_str(json).map_err(|e| CaseError {
            case: name.into(),
            message: e.to_string(),
            unsupported: false,
        })?;
        Ok(Self {
            name: name.into(),
            path: None,
            file,
        })
    }

    /// Every case file of the CPU kernels' oracle data ([`crate::repo::case_dirs`]), sorted
    /// by name. Files that are not case files (`tensor/control.json`, the data of program
    /// cases) are left out; the program cases ([`crate::programs`]) are included.
    pub fn kernel_suites() -> Result<Vec<Self>, CaseError> {
        let mut out = Vec::new();
        for dir in crate::repo::case_dirs() {
            let entries = std::fs::read_dir(&dir).map_err(|e| CaseError {
                case: dir.display().to_string(),
                message: e.to_string(),
                unsupported: false,
            })?;
            let mut paths: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .filter(|p| p.file_stem().is_some_and(|s| s != "control"))
                .collect();
            paths.sort();
            for p in paths {
                out.push(Self::read(&p)?);
            }
        }
        out.push(crate::programs::program_suite()?);
        Ok(out)
    }
}

/// How to run cases.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Compute units asked of the backend.
    pub compute_units: ComputeUnits,
    /// Worker threads of the CPU backend.
    pub threads: Option<usize>,
    /// Check that a case expected to fail fails with its message (anekit's own messages:
    /// the CPU backend). Other backends only need to fail.
    pub check_error_messages: bool,
    /// Run only cases whose `<suite>::<case>` name contains this.
    pub filter: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            compute_units: ComputeUnits::All,
            threads: Some(2),
            check_error_messages: true,
            filter: None,
        }
    }
}

impl RunOptions {
    /// The options for `backend`: error messages checked on the CPU backend only.
    pub fn for_backend(backend: &dyn Backend) -> Self {
        Self {
            check_error_messages: backend.kind() == anekit_runtime::BackendKind::Cpu,
            ..Self::default()
        }
    }
}

/// How a case went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every output within tolerance (or the expected failure happened).
    Pass,
    /// It did not; why.
    Fail(String),
    /// Not run on this backend; why (e.g. a type Core ML cannot exchange).
    Skip(String),
}

impl Outcome {
    /// Whether the case failed.
    pub fn is_fail(&self) -> bool {
        matches!(self, Self::Fail(_))
    }
}

/// The result of one case on one backend.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `<suite>::<case>`.
    pub name: String,
    /// How it went.
    pub outcome: Outcome,
    /// Load (compile) plus prediction time.
    pub time: Duration,
    /// The outputs it produced, in the case's order (empty if it failed before).
    pub outputs: Vec<anekit_runtime::Tensor>,
}

/// Load `model` on `backend` and run one prediction.
pub fn predict(
    backend: &dyn Backend,
    cm: &CaseModel,
    options: &RunOptions,
) -> Result<NamedTensors, String> {
    let load = LoadOptions {
        compute_units: options.compute_units,
        function: None,
        precision: Precision::Fp32,
        threads: options.threads,
        ..LoadOptions::default()
    };
    let instance = backend
        .load(cm.model.clone(), &load)
        .map_err(|e| format!("load: {e}"))?;
    instance.predict(&cm.inputs).map_err(|e| e.to_string())
}

/// Run one case of `file` on `backend`.
pub fn run_case(
    backend: &dyn Backend,
    suite: &str,
    file: &CaseFile,
    case: &Case,
    options: &RunOptions,
) -> CaseResult {
    let t0 = Instant::now();
    let name = format!("{suite}::{}", case.name);
    let (outcome, outputs) = match case.model(file, backend.kind()) {
        Err(e) if e.unsupported => (Outcome::Skip(e.message), Vec::new()),
        Err(e) => match &case.error {
            // A case meant to fail may fail while it is built (type inference).
            Some(_) if !options.check_error_messages => (Outcome::Pass, Vec::new()),
            Some(needle) if e.message.contains(needle.as_str()) => (Outcome::Pass, Vec::new()),
            _ => (Outcome::Fail(e.message), Vec::new()),
        },
        Ok(cm) => check(case, file, &cm, predict(backend, &cm, options), options),
    };
    CaseResult {
        name,
        outcome,
        time: t0.elapsed(),
        outputs,
    }
}

fn check(
    case: &Case,
    file: &CaseFile,
    cm: &CaseModel,
    result: Result<NamedTensors, String>,
    options: &RunOptions,
) -> (Outcome, Vec<anekit_runtime::Tensor>) {
    if let Some(needle) = &case.error {
        let outcome = match result {
            Err(e) if !options.check_error_messages || e.contains(needle.as_str()) => Outcome::Pass,
            Err(e) => Outcome::Fail(format!("error {e:?} does not mention {needle:?}")),
            Ok(_) => Outcome::Fail(format!("expected an error mentioning {needle:?}")),
        };
        return (outcome, Vec::new());
    }
    let mut got = match result {
        Ok(o) => o,
        Err(e) => return (Outcome::Fail(e), Vec::new()),
    };
    let outputs: Vec<_> = cm.outputs.iter().filter_map(|n| got.remove(n)).collect();
    if outputs.len() != case.outputs.len() {
        return (
            Outcome::Fail(format!(
                "{} outputs, expected {}",
                outputs.len(),
                case.outputs.len()
            )),
            outputs,
        );
    }
    let mut errors = Vec::new();
    for (k, (o, w)) in outputs.iter().zip(&case.outputs).enumerate() {
        let Some(w) = file.expected(w) else {
            errors.push(format!("output {k}: unknown shared tensor"));
            continue;
        };
        if let Err(e) = compare(o, w, case.atol, case.rtol, case.untyped_outputs.is_none()) {
            let oracle = case
                .oracle
                .as_deref()
                .map_or(String::new(), |o| format!(" (oracle: {o})"));
            errors.push(format!("output {k}{oracle}: {e}"));
        }
    }
    let outcome = if errors.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(errors.join("; "))
    };
    (outcome, outputs)
}

/// Run every case of `suite` on `backend` (in order, on this thread).
pub fn run_suite(backend: &dyn Backend, suite: &Suite, options: &RunOptions) -> Vec<CaseResult> {
    suite
        .file
        .cases
        .iter()
        .filter(|c| {
            options
                .filter
                .as_deref()
                .is_none_or(|f| format!("{}::{}", suite.name, c.name).contains(f))
        })
        .map(|c| run_case(backend, &suite.name, &suite.file, c, options))
        .collect()
}
