//! The model bundled with anekit: `decoder_sdpa_fp16_ios18`, a small transformer decoder
//! (scaled-dot-product attention, fp16, iOS18) that coremltools 9.0 converted from PyTorch
//! — the repository's fixture of that name — with its recorded sample input.
//!
//! The package's files are compiled into the binary and written once to the user's cache
//! folder (`$XDG_CACHE_HOME/anekit`, `~/.cache/anekit`, or the temporary folder), under a
//! name that includes a hash of their content, so an upgraded binary never reads a stale
//! copy.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use crate::{Error, NamedTensors, Result};

/// Name of the bundled model.
pub const NAME: &str = "decoder_sdpa_fp16_ios18";

macro_rules! file {
    ($rel:literal) => {
        (
            $rel,
            include_bytes!(concat!(
                "../bundled/decoder_sdpa_fp16_ios18.mlpackage/",
                $rel
            ))
            .as_slice(),
        )
    };
}

/// The package's files, relative to the package folder.
pub const FILES: &[(&str, &[u8])] = &[
    file!("Manifest.json"),
    file!("Data/com.apple.CoreML/model.mlmodel"),
    file!("Data/com.apple.CoreML/weights/weight.bin"),
];

/// The sample input (`input_ids`, the fixture's recorded token ids) as `.npy` bytes.
pub const SAMPLE_INPUT_IDS: &[u8] = include_bytes!("../bundled/input_ids.npy");

fn cache_dir() -> PathBuf {
    let var = |k| {
        std::env::var_os(k)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("XDG_CACHE_HOME") {
        return d.join("anekit");
    }
    if let Some(h) = var("HOME") {
        return h.join(".cache").join("anekit");
    }
    std::env::temp_dir().join("anekit")
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
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
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(format!(".{NAME}.tmp-{}", std::process::id()));
    for (rel, bytes) in FILES {
        let p = tmp.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&p, bytes).map_err(io(&p))?;
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => {}
        // Another process won the race: use its copy.
        Err(_) if dest.join("Manifest.json").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(io(&dest)(e)),
    }
    tracing::debug!(path = %dest.display(), "wrote the bundled model");
    Ok(dest)
}

/// The bundled model's sample inputs.
pub fn sample_inputs() -> Result<NamedTensors> {
    let t = crate::npy::parse(SAMPLE_INPUT_IDS, "input_ids")?;
    Ok(NamedTensors::from([("input_ids".to_string(), t)]))
}
