//! Where the repository's test data lives.

use std::path::PathBuf;

/// The root of the anekit checkout: `$ANEKIT_REPO`, else the folder two levels above this
/// crate (`crates/anekit-testkit` in a checkout).
pub fn root() -> PathBuf {
    std::env::var_os("ANEKIT_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `fixtures/`: the Core ML models coremltools wrote, their data and `manifest.json`.
pub fn fixtures_dir() -> PathBuf {
    root().join("fixtures")
}

/// The folders of JSON op cases of the CPU kernels (`crates/anekit-runtime/tests/data/*`).
pub fn case_dirs() -> Vec<PathBuf> {
    let data = root().join("crates/anekit-runtime/tests/data");
    ["dense", "misc", "tensor"]
        .iter()
        .map(|d| data.join(d))
        .collect()
}
