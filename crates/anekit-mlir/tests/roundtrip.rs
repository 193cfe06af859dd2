//! Every bytecode file that coreai-core wrote for the fixtures reads and writes back byte
//! for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is a test failure

use std::path::PathBuf;

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/coreai/models");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/coreai/models")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("main.mlirb"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no .aimodel fixtures under {}",
        root.display()
    );
    out
}

#[test]
fn read_write_is_byte_identical() {
    for path in fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let module = anekit_mlir::read(bytes::Bytes::from(bytes.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = anekit_mlir::write(&module).unwrap();
        assert!(
            again == bytes,
            "{}: {} bytes in, {} out, first difference at {:?}",
            path.display(),
            bytes.len(),
            again.len(),
            bytes.iter().zip(&again).position(|(a, b)| a != b)
        );
        // And the written bytes read to the same module.
        let module2 = anekit_mlir::read(bytes::Bytes::from(again)).unwrap();
        assert_eq!(module.ir, module2.ir);
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let path = fixtures().into_iter().next().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        let r = anekit_mlir::read(bytes::Bytes::copy_from_slice(&bytes[..cut]));
        assert!(r.is_err(), "{} cut at {cut} was accepted", path.display());
    }
}

/// Regions nested past the limit are refused when written (and when read: the
/// `seed-deep-nesting` seed of the `mlir_bytecode` fuzz corpus), not a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    use anekit_mlir::builder::Builder;
    use anekit_mlir::{AttrId, Block, Operation, Region};
    let mut b = Builder::new(6, "test");
    let d = b.dialect("t", None);
    let name = b.op_name(d, "op", true);
    let loc = b.attr(d, true, bytes::Bytes::from_static(&[1]));
    assert_eq!(loc, AttrId(0));
    let mut m = b.finish();
    let depth = anekit_mlir::read::MAX_REGION_DEPTH + 10;
    // Build from the innermost op outwards: op_i has one region holding op_{i+1}.
    let mut inner: Option<anekit_mlir::OpId> = None;
    for _ in 0..depth {
        let mut regions = Vec::new();
        if let Some(child) = inner {
            let blk = m.ir.push_block(Block {
                ops: vec![child],
                ..Block::default()
            });
            regions.push(m.ir.push_region(Region { blocks: vec![blk] }));
        }
        inner = Some(m.ir.push_op(Operation {
            name,
            location: loc,
            attributes: None,
            properties: None,
            result_types: Vec::new(),
            operands: Vec::new(),
            successors: Vec::new(),
            use_list_orders: Vec::new(),
            isolated: !regions.is_empty(),
            regions,
        }));
    }
    m.ir.top = vec![inner.unwrap()];
    // The writer refuses it too.
    let e = anekit_mlir::write(&m).unwrap_err();
    assert!(e.to_string().contains("nested deeper"), "{e}");
}
