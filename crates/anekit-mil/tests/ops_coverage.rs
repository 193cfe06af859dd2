//! `docs/op-coverage.md` is generated from the registry: this test fails when the committed
//! file is out of date, and rewrites it when `UPDATE_DOCS=1` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_mil::ops::{coverage_markdown, coverage_rows, registry};

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/op-coverage.md")
}

#[test]
fn op_coverage_doc_is_up_to_date() {
    let want = coverage_markdown();
    let path = doc_path();
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date; regenerate with `UPDATE_DOCS=1 cargo test -p anekit-mil --test ops_coverage`",
        path.display()
    );
}

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
}
