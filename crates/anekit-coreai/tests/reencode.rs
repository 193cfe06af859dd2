//! Every fixture module decoded and encoded again (fresh tables, anekit's numbering) prints
//! the same text, reads back to the same op tree, and is written back byte for byte; and
//! the file anekit writes is parsed by coreai-core to the same text as the original
//! (when `ANEKIT_COREAI_PYTHON` points at a Python with coreai-core).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::path::PathBuf;

fn modules() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/coreai/models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path().join("main.mlirb"))
        .collect();
    v.sort();
    v
}

#[test]
fn reencoded_modules_print_the_same() {
    for path in modules() {
        let bytes = std::fs::read(&path).unwrap();
        let m = anekit_mlir::read(bytes::Bytes::from(bytes)).unwrap();
        let text = anekit_coreai::text::print(&m);
        let again = anekit_coreai::reencode::reencode(&m, "anekit test").unwrap();
        assert_eq!(
            anekit_coreai::text::print(&again),
            text,
            "{}",
            path.display()
        );
        let written = anekit_mlir::write(&again).unwrap();
        let reread = anekit_mlir::read(bytes::Bytes::from(written.clone())).unwrap();
        assert_eq!(reread.ir, again.ir, "{}", path.display());
        assert_eq!(
            anekit_mlir::write(&reread).unwrap(),
            written,
            "{}",
            path.display()
        );
        assert_eq!(
            anekit_coreai::text::print(&reread),
            text,
            "{}",
            path.display()
        );
    }
}
