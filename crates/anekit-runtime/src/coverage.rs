//! The CPU backend's column of the op coverage table (`docs/op-coverage.md`, rendered by the
//! workspace's `xtask` from the registry and every crate's column), derived from the kernel
//! registration table [`kernels::MODULES`].

use std::collections::BTreeMap;

use anekit_mil::ops::CoverageColumn;

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
