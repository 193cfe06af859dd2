//! `docs/coreai-ops.md` is generated (`cargo xtask gen-docs`) from
//! `anekit_coreai::coverage`; it must be current, and every op of the Core AI fixtures must
//! be listed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::path::PathBuf;

#[test]
fn docs_are_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/coreai-ops.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == anekit_coreai::coverage::coverage_markdown(),
        "{} is stale: run `cargo xtask gen-docs`",
        path.display()
    );
}

#[test]
fn every_fixture_op_is_listed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/coreai/models");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let file = e.unwrap().path().join("main.mlirb");
        let m = anekit_mlir::read(bytes::Bytes::from(std::fs::read(&file).unwrap())).unwrap();
        for op in anekit_coreai::model::op_counts(&m).keys() {
            let short = op.strip_prefix("aicode.").unwrap_or(op);
            if !anekit_coreai::coverage::ROWS.iter().any(|r| r.op == short) && !missing.contains(op)
            {
                missing.push(op.clone());
            }
        }
    }
    assert!(missing.is_empty(), "not in the coverage table: {missing:?}");
}
