//! The bundled model is the repository's fixture of that name, byte for byte (regenerating
//! the fixtures must not leave a stale copy in the library).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

#[test]
fn bundled_model_is_the_fixture() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(format!("{}.mlpackage", anekit::bundled::NAME));
    for (rel, bytes) in anekit::bundled::FILES {
        let want = std::fs::read(fixture.join(rel)).unwrap();
        assert!(
            want == *bytes,
            "{rel} differs from the fixture: copy it to crates/anekit/bundled"
        );
    }
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/data/decoder_sdpa/inputs/input_ids.npy");
    assert!(std::fs::read(input).unwrap() == anekit::bundled::SAMPLE_INPUT_IDS);
}

/// The bundled model runs and gives the fixture's PyTorch reference (fp16 bound).
#[test]
fn bundled_model_runs_to_its_reference() {
    let model = anekit::open(anekit::bundled::path().unwrap()).unwrap();
    let out = model
        .run(&anekit::bundled::sample_inputs().unwrap())
        .unwrap();
    let reference = anekit::npy::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/data/decoder_sdpa/outputs/logits.npy"),
    )
    .unwrap();
    let d = out["logits"]
        .cast(anekit::ElementType::F32)
        .deviation(&reference)
        .unwrap();
    assert!(d.relative() < 1e-2, "relative error {}", d.relative());
}
