//! The model bundled with anekit, used when a command is given no MODEL.
//!
//! The package's files are compiled into the binary and written once to the user's cache
//! folder (`$XDG_CACHE_HOME/anekit`, `~/.cache/anekit`, or the temporary folder), under a name
//! that includes a hash of their content, so an upgraded binary never reads a stale copy.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use anyhow::{Context, Result};

/// Name of the bundled model.
pub const NAME: &str = "decoder_sdpa_fp16_ios18";

macro_rules! fixture {
    ($rel:literal) => {
        (
            $rel,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/models/decoder_sdpa_fp16_ios18.mlpackage/",
                $rel
            ))
            .as_slice(),
        )
    };
}

/// The package's files, relative to the package folder.
const FILES: &[(&str, &[u8])] = &[
    fixture!("Manifest.json"),
    fixture!("Data/com.apple.CoreML/model.mlmodel"),
    fixture!("Data/com.apple.CoreML/weights/weight.bin"),
];

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("anekit");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".cache").join("anekit");
    }
    std::env::temp_dir().join("anekit")
}

/// The path of the bundled model, writing it to the cache folder on first use.
pub fn path() -> Result<PathBuf> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    FILES.hash(&mut h);
    let dir = cache_dir().join("bundled");
    let dest = dir.join(format!("{NAME}-{:016x}.mlpackage", h.finish()));
    if dest.join("Manifest.json").is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{NAME}.tmp-{}", std::process::id()));
    for (rel, bytes) in FILES {
        let p = tmp.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => {}
        // Another process won the race: use its copy.
        Err(_) if dest.join("Manifest.json").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("moving the bundled model to {}", dest.display()));
        }
    }
    tracing::debug!(path = %dest.display(), "wrote the bundled model");
    Ok(dest)
}

/// Sample inputs of the bundled model (the fixture's recorded token ids).
const SAMPLE_INPUTS: &[(&str, &[u8])] = &[(
    "input_ids",
    include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/data/decoder_sdpa/inputs/input_ids.npy"
    )),
)];

/// The bundled model's sample inputs.
pub fn sample_inputs() -> Result<anekit_runtime::NamedTensors> {
    SAMPLE_INPUTS
        .iter()
        .map(|(name, bytes)| Ok((name.to_string(), anekit_runtime::npy::parse(bytes, name)?)))
        .collect()
}

/// PyTorch's `logits` for the sample inputs (what coremltools' converter was checked
/// against; `anekit doctor` compares the CPU backend with it).
pub const REFERENCE_LOGITS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/data/decoder_sdpa/outputs/logits.npy"
));
