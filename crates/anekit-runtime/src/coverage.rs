//! The CPU backend's column of the op coverage table, and the table itself.
//!
//! `docs/op-coverage.md` is [`op_coverage_markdown`]: anekit-mil's registry columns (op,
//! family, revisions, type inference) followed by the columns that other crates contribute.
//! `cargo xtask gen-docs` writes it; `tests/coverage.rs` fails when the committed file differs.
//! A further column (the compute plan's Neural Engine rules) is one more entry in the list
//! below.

use std::collections::BTreeMap;

use anekit_mil::ops::{CoverageColumn, coverage_markdown_with};

use crate::cpu::{kernels, plan};

/// The `CPU kernel` column: `yes` for the op types the CPU backend has a kernel for
/// ([`kernels::supported_ops`]), `at load` for those its compiler evaluates while loading
/// (`const`, the `constexpr_*` decompressions).
pub fn cpu_column() -> CoverageColumn {
    let cells: BTreeMap<String, String> = kernels::supported_ops()
        .into_iter()
        .map(|op| {
            let how = if plan::PLAN_OPS.contains(&op) {
                "at load"
            } else {
                "yes"
            };
            (op.to_string(), how.to_string())
        })
        .collect();
    CoverageColumn {
        header: "CPU kernel".into(),
        legend: "**yes** when the CPU backend (`anekit_runtime::cpu`) has a kernel for the op \
                 type, **at load** when its plan compiler evaluates the op while loading the \
                 model (constants and `constexpr_*` decompression), — when the op cannot run \
                 on the CPU backend yet."
            .into(),
        cells,
    }
}

/// The content of `docs/op-coverage.md`.
pub fn op_coverage_markdown() -> String {
    coverage_markdown_with(&[cpu_column(), anekit_plan::rules::coverage_column()])
}
