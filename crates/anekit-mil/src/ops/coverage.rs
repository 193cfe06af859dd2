//! The data of the op coverage table (`docs/op-coverage.md`).
//!
//! This crate knows each op's revisions and how complete its type inference is
//! ([`coverage_rows`]); other crates know what they do with an op (the CPU backend's kernels,
//! the compute plan's Neural Engine rules and cost classes, the fp16 pass, the MPSGraph
//! path) and contribute a [`CoverageColumn`] each, derived from their per-op tables. The
//! workspace's `xtask` renders the document (`cargo xtask gen-docs`) and fails a test when
//! the committed file is stale.

use std::collections::BTreeMap;

use crate::program::Opset;

use super::{Family, InferenceStatus, registry};

/// One row of the coverage table: one op type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CoverageRow {
    /// The op type.
    pub op: &'static str,
    /// Its family (coremltools defs file).
    pub family: &'static str,
    /// The opset that introduced it.
    pub introduced: Opset,
    /// Later opsets that revised it.
    pub revised: Vec<Opset>,
    /// Whether the latest revision's inference is complete.
    pub inference_full: bool,
    /// What partial inference leaves out (empty when full).
    pub inference_note: &'static str,
}

/// A column of the coverage table contributed by another crate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoverageColumn {
    /// The column header (`CPU kernel`).
    pub header: String,
    /// What the column's values mean: one Markdown paragraph printed above the table.
    pub legend: String,
    /// The cell of each op type it has something to say about; the others show `—`.
    pub cells: BTreeMap<String, String>,
}

impl CoverageColumn {
    /// The cell for `op` (`—` when the column has none).
    pub fn cell(&self, op: &str) -> &str {
        self.cells.get(op).map_or("—", String::as_str)
    }
}

/// One row per op type, ordered by family then name.
pub fn coverage_rows() -> Vec<CoverageRow> {
    let mut rows: Vec<(Family, CoverageRow)> = registry()
        .iter()
        .filter_map(|(name, revs)| {
            let first = revs.first()?;
            let last = revs.last()?;
            let (full, note) = match last.inference {
                InferenceStatus::Full => (true, ""),
                InferenceStatus::Partial(n) => (false, n),
            };
            Some((
                first.family,
                CoverageRow {
                    op: name,
                    family: first.family.name(),
                    introduced: first.opset,
                    revised: revs.iter().skip(1).map(|d| d.opset).collect(),
                    inference_full: full,
                    inference_note: note,
                },
            ))
        })
        .collect();
    rows.sort_by(|a, b| (a.0, a.1.op).cmp(&(b.0, b.1.op)));
    rows.into_iter().map(|(_, r)| r).collect()
}
