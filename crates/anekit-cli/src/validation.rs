//! Validation as part of loading: every command that reads or writes an ML Program checks it
//! against the op registry (`anekit_mil::validate`) and refuses an invalid one with the
//! function, op, parameter and reason of each problem. Core ML refuses to compile such a
//! program, so nothing downstream (placement, costs, compression) would mean anything.

use std::path::Path;

use anekit_mil::model::Model;
use anekit_mil::validate::{self, Report};
use anyhow::{Result, bail};

/// Problems listed in an error message before "… and N more".
pub const SHOWN: usize = 10;

/// The validation report of the model's ML Program; `None` for a model without one
/// (NeuralNetwork and other legacy types are not validated here).
pub fn check(model: &Model) -> Option<Report> {
    model.program.as_ref().map(validate::check)
}

/// Fail, naming every problem (up to [`SHOWN`]), when `report` has any. `what` says which
/// model it is (`"model foo.mlpackage"`, `"the compressed program"`).
pub fn require(report: &Report, what: &str) -> Result<()> {
    if report.is_ok() {
        return Ok(());
    }
    let n = report.diagnostics.len();
    bail!(
        "{what} is not a valid ML Program, Core ML will refuse to compile it ({n} problem{}):\n{}",
        if n == 1 { "" } else { "s" },
        indent(&validate::summarize(&report.diagnostics, SHOWN))
    )
}

/// Fail when the model read from `path` has an invalid ML Program.
pub fn require_valid(model: &Model, path: &Path) -> Result<()> {
    match check(model) {
        Some(r) => require(&r, &format!("model {}", path.display())),
        None => Ok(()),
    }
}

/// Fail when the program about to be written to `path` is invalid (a bug of the command, not
/// of the input: the message says so).
pub fn require_valid_output(model: &Model, path: &Path) -> Result<()> {
    match check(model) {
        Some(r) => require(
            &r,
            &format!(
                "the program to be written to {} (a bug in anekit: please report it)",
                path.display()
            ),
        ),
        None => Ok(()),
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
