//! `docs/op-coverage.md` is generated (`cargo xtask gen-docs`) from the op registry and the
//! CPU backend's kernel list; this test fails when the committed file is stale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use anekit_runtime::coverage::{cpu_column, op_coverage_markdown};

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/op-coverage.md")
}

#[test]
fn op_coverage_doc_is_up_to_date() {
    let want = op_coverage_markdown();
    let path = doc_path();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let first = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "the line counts differ".to_string(),
                |i| {
                    format!(
                        "line {}:\n  committed: {}\n  generated: {}",
                        i + 1,
                        have.lines().nth(i).unwrap_or(""),
                        want.lines().nth(i).unwrap_or("")
                    )
                },
            );
        panic!(
            "{} is out of date; regenerate it with `cargo xtask gen-docs` ({first})",
            path.display()
        );
    }
}

#[test]
fn cpu_column_lists_every_kernel() {
    let col = cpu_column();
    for op in anekit_runtime::cpu::kernels::supported_ops() {
        assert!(
            col.cells.contains_key(op),
            "{op} missing from the CPU column"
        );
    }
    assert_eq!(col.cell("const"), "at load");
    assert_eq!(col.cell("lstm"), "yes");
    let md = op_coverage_markdown();
    assert!(md.contains("| `lstm` | recurrent | iOS15 | iOS17 | full | yes |"));
}
