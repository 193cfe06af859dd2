//! The Python oracle runner: the interpreter of the oracle venv and JSON from its scripts.
//!
//! Python is only an oracle (coremltools, PyTorch, numpy): tests find it through
//! `ANEKIT_PYTHON` (set by `scripts/test.sh`) or `<repo>/.venv/bin/python`
//! (`scripts/setup-python.sh`). Without it, an interop test says so and passes — unless
//! `ANEKIT_REQUIRE_INTEROP=1` (CI), where a missing interpreter is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo;

/// What went wrong running an oracle script.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    /// The interpreter could not be started.
    #[error("cannot run {python} {script}: {source}")]
    Spawn {
        /// The interpreter.
        python: String,
        /// The script.
        script: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The script failed.
    #[error("{script} {args} failed ({status}):\n{stdout}\n{stderr}")]
    Failed {
        /// The script.
        script: String,
        /// Its arguments, joined.
        args: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        stdout: String,
        /// Its error output.
        stderr: String,
    },
    /// Its output is not JSON.
    #[error("{script} printed no JSON ({message}):\n{stdout}")]
    Json {
        /// The script.
        script: String,
        /// serde_json's message.
        message: String,
        /// What it printed.
        stdout: String,
    },
}

/// The oracle interpreter.
#[derive(Debug, Clone)]
pub struct Python {
    exe: PathBuf,
}

impl Python {
    /// The interpreter, or `None` (with a note on stderr naming `what` is skipped) when it
    /// is missing.
    ///
    /// # Panics
    /// When it is missing and `ANEKIT_REQUIRE_INTEROP=1`: the interop tests must run.
    pub fn find(what: &str) -> Option<Self> {
        let exe = std::env::var_os("ANEKIT_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo::root().join(".venv/bin/python"));
        if exe.exists() {
            return Some(Self { exe });
        }
        assert!(
            !required(),
            "ANEKIT_REQUIRE_INTEROP=1 but {} does not exist: run scripts/setup-python.sh",
            exe.display()
        );
        eprintln!(
            "skipping {what}: {} not found (run scripts/setup-python.sh)",
            exe.display()
        );
        None
    }

    /// The interpreter's path.
    pub fn path(&self) -> &Path {
        &self.exe
    }

    /// A command running `script` (relative to the repository root) with this interpreter.
    pub fn command(&self, script: &str) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg(repo::root().join(script));
        c
    }

    /// Run `script` with `args` and parse what it prints as JSON.
    pub fn json<S: AsRef<std::ffi::OsStr>>(
        &self,
        script: &str,
        args: &[S],
    ) -> Result<serde_json::Value, OracleError> {
        let out =
            self.command(script)
                .args(args)
                .output()
                .map_err(|source| OracleError::Spawn {
                    python: self.exe.display().to_string(),
                    script: script.into(),
                    source,
                })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(OracleError::Failed {
                script: script.into(),
                args: args
                    .iter()
                    .map(|a| a.as_ref().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                status: out.status.to_string(),
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        serde_json::from_str(&stdout).map_err(|e| OracleError::Json {
            script: script.into(),
            message: e.to_string(),
            stdout,
        })
    }

    /// Whether `import module` works.
    pub fn has_module(&self, module: &str) -> bool {
        Command::new(&self.exe)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Whether interop tests must run (`ANEKIT_REQUIRE_INTEROP=1`).
pub fn required() -> bool {
    std::env::var("ANEKIT_REQUIRE_INTEROP").as_deref() == Ok("1")
}

/// The coreai-core interpreter (`ANEKIT_COREAI_PYTHON`, set by `scripts/test.sh`; the venv
/// of `scripts/setup-python.sh --coreai`), or `None` (skip) when interop is not required.
///
/// # Panics
/// When it is not set and `ANEKIT_REQUIRE_INTEROP` is.
pub fn coreai_python() -> Option<PathBuf> {
    match std::env::var_os("ANEKIT_COREAI_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("ANEKIT_REQUIRE_INTEROP").is_none(),
                "ANEKIT_REQUIRE_INTEROP is set but ANEKIT_COREAI_PYTHON is not (scripts/setup-python.sh --coreai)"
            );
            eprintln!("skipped: ANEKIT_COREAI_PYTHON is not set");
            None
        }
    }
}

/// The message of coreai-core 1.0.0b3's Linux runtime when it aborts: about one run in
/// eight of the same file and input, whatever the model (a C++ exception inside the Swift
/// runtime). Such a run is tried again, at most [`COREAI_TRIES`] times in all.
pub const COREAI_FLAKY_ABORT: &str = "C++ exception handling detected";

/// Runs of an oracle command that aborted with [`COREAI_FLAKY_ABORT`], in all.
pub const COREAI_TRIES: usize = 4;

/// `scripts/coreai_oracle.py ARGS` with coreai-core's interpreter `py`: its stdout, or its
/// stderr (without coreai-core's `ODIE` log lines) when it fails.
pub fn coreai_oracle(py: &Path, args: &[&str]) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..COREAI_TRIES {
        let out = Command::new(py)
            .arg(repo::root().join("scripts/coreai_oracle.py"))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        last = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with("ODIE"))
            .collect::<Vec<_>>()
            .join("\n");
        if !last.contains(COREAI_FLAKY_ABORT) {
            break;
        }
    }
    Err(last)
}
