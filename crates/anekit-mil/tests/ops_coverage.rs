//! The coverage table's rows and rendering. The committed `docs/op-coverage.md` carries the
//! columns of other crates too (the CPU backend's kernels), so it is written by
//! `cargo xtask gen-docs` and checked by anekit-runtime's `tests/coverage.rs`; this crate
//! checks its own part: one row per registered op type with the right revisions, and extra
//! columns rendered in place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use anekit_mil::ops::{
    CoverageColumn, coverage_markdown, coverage_markdown_with, coverage_rows, registry,
};

#[test]
fn one_row_per_op_type() {
    let rows = coverage_rows();
    assert_eq!(rows.len(), registry().iter().count());
    let md = coverage_markdown();
    for r in &rows {
        assert!(md.contains(&format!("| `{}` |", r.op)), "{} missing", r.op);
    }
    let gather = rows.iter().find(|r| r.op == "gather").unwrap();
    assert_eq!(gather.introduced, anekit_mil::Opset::Ios15);
    assert_eq!(
        gather.revised,
        [anekit_mil::Opset::Ios16, anekit_mil::Opset::Ios17]
    );
    let reshape = rows.iter().find(|r| r.op == "reshape").unwrap();
    assert!(!reshape.inference_full && !reshape.inference_note.is_empty());
    assert!(md.contains("| `reshape` | tensor_transformation | iOS15 | iOS17 | partial: "));
}

#[test]
fn extra_columns_render_after_the_registry_columns() {
    let col = |header: &str, cells: &[(&str, &str)]| CoverageColumn {
        header: header.into(),
        legend: format!("what {header} means."),
        cells: cells
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    let md = coverage_markdown_with(&[
        col(
            "CPU kernel",
            &[("relu", "yes"), ("scaled_dot_product_attention", "yes")],
        ),
        col("ANE rule", &[("relu", "a|b")]),
    ]);
    assert!(md.contains("\n*CPU kernel*: what CPU kernel means.\n"));
    assert!(md.contains("| op | family | introduced | revised | type inference | CPU kernel | ANE rule |\n|---|---|---|---|---|---|---|\n"));
    assert!(md.contains("| `relu` | activation | iOS15 | — | full | yes | a\\|b |\n"));
    assert!(md.contains("| `gelu` | activation | iOS15 | — | full | — | — |\n"));
    // Per-opset counts: relu exists from iOS15, SDPA from iOS18.
    assert!(
        md.contains("| opset | ops available | new ops | revised ops | CPU kernel | ANE rule |")
    );
    assert!(md.contains("| iOS15 | 151 | 151 | 0 | 1 | 1 |"));
    assert!(md.contains("| iOS18 | 168 | 7 | 4 | 2 | 1 |"));
    assert!(md.contains("; CPU kernel for 2; ANE rule for 1.\n"));
}
