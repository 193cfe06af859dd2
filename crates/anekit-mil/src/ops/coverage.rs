//! The op coverage table (`docs/op-coverage.md`), generated from the registry.

use std::fmt::Write as _;

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

/// The coverage table as Markdown (the content of `docs/op-coverage.md`).
pub fn coverage_markdown() -> String {
    let rows = coverage_rows();
    let mut s = String::new();
    s.push_str("# MIL op coverage\n\n");
    s.push_str(
        "Generated from the op registry (`anekit_mil::ops::coverage_markdown`); do not edit by hand.\n\
         Regenerate with `UPDATE_DOCS=1 cargo test -p anekit-mil --test ops_coverage`.\n\n\
         Source of the op definitions: coremltools 9.0, `coremltools/converters/mil/mil/ops/defs/iOS15` … `iOS18`.\n\
         *Inference* is **full** when type inference reproduces coremltools' `type_inference` for the\n\
         latest revision, **partial** when some output dimensions that coremltools derives stay unknown.\n\n",
    );
    s.push_str("| opset | ops available | new ops | revised ops |\n|---|---:|---:|---:|\n");
    let reg = registry();
    for o in [Opset::Ios15, Opset::Ios16, Opset::Ios17, Opset::Ios18] {
        let avail = reg.op_types(o).len();
        let new = rows.iter().filter(|r| r.introduced == o).count();
        let revised = rows.iter().filter(|r| r.revised.contains(&o)).count();
        let _ = writeln!(s, "| {o} | {avail} | {new} | {revised} |");
    }
    let partial = rows.iter().filter(|r| !r.inference_full).count();
    let _ = writeln!(
        s,
        "\n{} op types; inference full for {}, partial for {partial}.\n",
        rows.len(),
        rows.len() - partial
    );
    s.push_str(
        "| op | family | introduced | revised | inference | note |\n|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let revised = if r.revised.is_empty() {
            "—".to_string()
        } else {
            r.revised
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} |",
            r.op,
            r.family,
            r.introduced,
            revised,
            if r.inference_full { "full" } else { "partial" },
            r.inference_note.replace('|', "\\|")
        );
    }
    s
}
