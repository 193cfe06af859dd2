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
