//! The coverage table's rows. The committed `docs/op-coverage.md` carries the columns of
//! other crates too, so it is rendered by `cargo xtask gen-docs` and checked by xtask's
//! tests; this crate checks its own part: one row per registered op type with the right
//! revisions and inference status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anekit_mil::ops::{coverage_rows, registry};

#[test]
fn one_row_per_op_type() {
    let rows = coverage_rows();
    assert_eq!(rows.len(), registry().iter().count());
    let mut names: Vec<&str> = rows.iter().map(|r| r.op).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rows.len());
    let gather = rows.iter().find(|r| r.op == "gather").unwrap();
    assert_eq!(gather.introduced, anekit_mil::Opset::Ios15);
    assert_eq!(
        gather.revised,
        [anekit_mil::Opset::Ios16, anekit_mil::Opset::Ios17]
    );
    let reshape = rows.iter().find(|r| r.op == "reshape").unwrap();
    assert!(!reshape.inference_full && !reshape.inference_note.is_empty());
    assert_eq!(reshape.family, "tensor_transformation");
}
