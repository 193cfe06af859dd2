//! The model bundled with anekit, used when a command is given no MODEL: the library's
//! [`anekit::bundled`] model (written once to the user's cache folder).

use std::path::PathBuf;

use anyhow::Result;

/// The path of the bundled model, writing it to the cache folder on first use.
pub fn path() -> Result<PathBuf> {
    Ok(anekit::bundled::path()?)
}

/// The bundled model's sample inputs.
pub fn sample_inputs() -> Result<anekit_runtime::NamedTensors> {
    Ok(anekit::bundled::sample_inputs()?)
}

/// PyTorch's `logits` for the sample inputs (what coremltools' converter was checked
/// against; `anekit doctor` compares the CPU backend with it).
pub const REFERENCE_LOGITS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/data/decoder_sdpa/outputs/logits.npy"
));
