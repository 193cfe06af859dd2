//! The Core ML backend: compile `.mlpackage`/`.mlmodel` to `.mlmodelc` (cached), load with
//! compute units, predict (single, batch, async, stateful), and extract `MLComputePlan`.
//!
//! The portable parts live here and are tested on any OS: the compile cache keyed by the
//! model's content hash and the OS build ([`CompileCache`]), the compute-unit mapping
//! (`ComputeUnits::coreml_value`), the I/O specs of a function ([`io_specs`]), the layout of
//! IOSurface-backed fp16 buffers ([`pixel_buffer_layout`]) and the gathering of strided
//! `MLMultiArray` bytes ([`gather_strided`]). The Objective-C side (Apple platforms) is in
//! `backend` and `compute_plan`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anekit_mil::model::Model;
use anekit_mil::summary::ModelSummary;
use anekit_runtime::engine::{ComputeUnits, FeatureSpec};
use sha2::{Digest, Sha256};

use crate::error::{AppleError, Result};

#[cfg(target_vendor = "apple")]
mod backend;
#[cfg(target_vendor = "apple")]
pub mod compute_plan;

#[cfg(target_vendor = "apple")]
pub use backend::{AsyncPrediction, CoreMlBackend, CoreMlModel, compile, compile_cached, os_build};

/// Core ML's own plan for `model` with `units` (`MLComputePlan`, macOS 14.4 / iOS 17.4): the
/// model is compiled (through the default compile cache) and its plan read as plain records.
/// Elsewhere: [`AppleError::Unavailable`] saying why.
pub fn compute_plan_records(
    model: &Model,
    units: ComputeUnits,
) -> Result<Vec<anekit_plan::device_plan::DeviceOpRecord>> {
    if let Some(reason) = crate::status::reason_in_this_build(crate::status::Feature::ComputePlan) {
        return Err(AppleError::Unavailable {
            feature: "MLComputePlan",
            reason,
        });
    }
    #[cfg(target_vendor = "apple")]
    {
        let compiled = CoreMlBackend::new().compiled_path(model)?;
        compute_plan::compute_plan(&compiled, units)
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        let _ = (model, units);
        Err(AppleError::Unavailable {
            feature: "MLComputePlan",
            reason: "Core ML exists only on Apple platforms".into(),
        })
    }
}

/// The inputs, outputs and states of one function.
#[derive(Debug, Clone)]
pub struct IoSpecs {
    /// The function's name.
    pub function: String,
    /// Inputs.
    pub inputs: Vec<FeatureSpec>,
    /// Outputs.
    pub outputs: Vec<FeatureSpec>,
    /// States (stateful models).
    pub states: Vec<FeatureSpec>,
}

/// The inputs, outputs and states of `function` of `model` (default function: `None`), from
/// the model description where it covers the function, else from the program's
/// declarations. Features whose type cannot be exchanged as a tensor are left out.
pub fn io_specs(model: &Model, function: Option<&str>) -> Result<IoSpecs> {
    let summary = ModelSummary::of(model);
    let default = summary.default_function.clone();
    let name = match (function, &default) {
        (Some(f), _) => f.to_string(),
        (None, Some(d)) => d.clone(),
        (None, None) => {
            // Non-program models (neuralNetwork, pipelines): the description is the I/O.
            let specs = |fs: &[anekit_mil::summary::FeatureSummary]| {
                fs.iter().filter_map(FeatureSpec::from_summary).collect()
            };
            return Ok(IoSpecs {
                function: "main".to_string(),
                inputs: specs(&summary.inputs),
                outputs: specs(&summary.outputs),
                states: specs(&summary.states),
            });
        }
    };
    let specs = |fs: &[anekit_mil::summary::FeatureSummary]| -> Vec<FeatureSpec> {
        fs.iter().filter_map(FeatureSpec::from_summary).collect()
    };
    if default.as_deref() == Some(name.as_str()) {
        return Ok(IoSpecs {
            function: name,
            inputs: specs(&summary.inputs),
            outputs: specs(&summary.outputs),
            states: specs(&summary.states),
        });
    }
    let f = summary
        .functions
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = summary.functions.iter().map(|f| f.name.as_str()).collect();
            AppleError::invalid(
                "function",
                format!(
                    "the model has no function {name:?} (its functions: {})",
                    names.join(", ")
                ),
            )
        })?;
    let (states, inputs): (Vec<_>, Vec<_>) =
        f.inputs.iter().cloned().partition(|i| i.kind == "state");
    Ok(IoSpecs {
        function: name,
        inputs: specs(&inputs),
        outputs: specs(&f.outputs),
        states: specs(&states),
    })
}

/// An output Core ML may write into a pre-allocated IOSurface-backed buffer (an "output
/// backing", `MLPredictionOptions.outputBackings`): a name, its fixed shape and the
/// pixel-buffer layout (width, height) of [`pixel_buffer_layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingPlan {
    /// The output.
    pub name: String,
    /// Its fixed shape.
    pub shape: Vec<usize>,
    /// Pixel-buffer width and height.
    pub layout: (usize, usize),
}

/// The outputs that get an output backing: fp16 outputs of a fixed, non-empty shape (the
/// `OneComponent16Half` pixel buffers Core ML writes without a copy, Apple's "Reducing the
/// memory footprint of Core ML models", WWDC 2023). A backing is a proposal: Core ML may
/// ignore it, and a backing that cannot be created does not fail the prediction.
pub fn backing_plans(outputs: &[FeatureSpec]) -> Vec<BackingPlan> {
    outputs
        .iter()
        .filter(|s| s.dtype == anekit_runtime::ElementType::F16)
        .filter_map(|s| {
            let anekit_runtime::ShapeSpec::Fixed { shape } = &s.shape else {
                return None;
            };
            Some(BackingPlan {
                name: s.name.clone(),
                shape: shape.clone(),
                layout: pixel_buffer_layout(shape)?,
            })
        })
        .collect()
}

/// A key of a classifier's probability dictionary.
#[derive(Debug, Clone, PartialEq)]
pub enum DictKey {
    /// A string label.
    Str(String),
    /// An integer label.
    Int(i64),
}

/// A classifier's probabilities as a [`anekit_runtime::Dictionary`]: Core ML's dictionary
/// has no order, so the keys come sorted; a dictionary mixing string and integer keys is an
/// error.
pub fn dictionary_from_entries(
    entries: Vec<(DictKey, f64)>,
    what: &str,
) -> Result<anekit_runtime::Dictionary> {
    use anekit_runtime::{DictKeys, Dictionary};
    let mut strs = Vec::new();
    let mut ints = Vec::new();
    for (k, v) in entries {
        match k {
            DictKey::Str(s) => strs.push((s, v)),
            DictKey::Int(i) => ints.push((i, v)),
        }
    }
    let d = if ints.is_empty() {
        strs.sort_by(|a, b| a.0.cmp(&b.0));
        let (k, v) = strs.into_iter().unzip();
        Dictionary::new(DictKeys::Str(k), v)
    } else if strs.is_empty() {
        ints.sort_by_key(|e| e.0);
        let (k, v) = ints.into_iter().unzip();
        Dictionary::new(DictKeys::Int(k), v)
    } else {
        return Err(AppleError::invalid(
            what.to_string(),
            "a dictionary with both string and integer keys",
        ));
    };
    d.map_err(|e| AppleError::invalid(what.to_string(), e.to_string()))
}

/// `MLMultiArrayDataType` raw values (Apple's `MLMultiArrayDataType`: the type class in bits
/// 16+, the bit width below).
pub mod multi_array_type {
    /// `Float64` / `Double`.
    pub const FLOAT64: isize = 0x10000 | 64;
    /// `Float32`.
    pub const FLOAT32: isize = 0x10000 | 32;
    /// `Float16`.
    pub const FLOAT16: isize = 0x10000 | 16;
    /// `Int32`.
    pub const INT32: isize = 0x20000 | 32;
    /// `Int8` (macOS 26 / iOS 26).
    pub const INT8: isize = 0x20000 | 8;
}

/// Element size and the tensor type an `MLMultiArray` of data type `raw` becomes (Float64
/// arrays become f32 tensors).
pub fn multi_array_element(raw: isize) -> Option<(usize, anekit_runtime::ElementType)> {
    use anekit_runtime::ElementType as E;
    use multi_array_type as T;
    Some(match raw {
        T::FLOAT32 => (4, E::F32),
        T::FLOAT16 => (2, E::F16),
        T::INT32 => (4, E::I32),
        T::FLOAT64 => (8, E::F32),
        T::INT8 => (1, E::I8),
        _ => return None,
    })
}

/// The tensor an `MLMultiArray` holds: its bytes (as `getBytesWithHandler:` hands them),
/// data type, shape and element strides, gathered into row-major order with every index
/// checked against the bytes.
pub fn tensor_from_multi_array(
    raw: &[u8],
    data_type: isize,
    shape: &[usize],
    strides: &[usize],
    what: &str,
) -> Result<anekit_runtime::Tensor> {
    use anekit_runtime::Tensor;
    use ndarray::{ArrayD, IxDyn};
    let (elem, et) = multi_array_element(data_type).ok_or_else(|| {
        AppleError::invalid(what.to_string(), format!("data type {data_type:#x}"))
    })?;
    let bytes = gather_strided(raw, elem, shape, strides)?;
    let bad = |e: ndarray::ShapeError| AppleError::invalid(what.to_string(), e.to_string());
    let s = IxDyn(shape);
    use anekit_runtime::ElementType as E;
    Ok(match (et, elem) {
        (E::F32, 8) => Tensor::F32(
            ArrayD::from_shape_vec(
                s,
                bytes
                    .chunks_exact(8)
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect(),
            )
            .map_err(bad)?,
        ),
        (E::F32, _) => Tensor::F32(
            ArrayD::from_shape_vec(
                s,
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
            .map_err(bad)?,
        ),
        (E::F16, _) => Tensor::F16(
            ArrayD::from_shape_vec(
                s,
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
            .map_err(bad)?,
        ),
        (E::I32, _) => Tensor::I32(
            ArrayD::from_shape_vec(
                s,
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
            .map_err(bad)?,
        ),
        _ => Tensor::I8(
            ArrayD::from_shape_vec(s, bytes.iter().map(|&b| b as i8).collect()).map_err(bad)?,
        ),
    })
}

/// The compute device an `MLComputePlan` reports, from its class and superclasses (most
/// derived first): the first class Core ML documents decides, as `isKindOfClass:` would —
/// a subclass Apple adds later (`MLNeuralEngineComputeDeviceV2 : MLNeuralEngineComputeDevice`)
/// still counts as its family, not as an unknown device (which placement counts as the CPU).
pub fn device_kind_of(class_chain: &[String]) -> anekit_plan::device_plan::DeviceKind {
    use anekit_plan::device_plan::DeviceKind;
    class_chain
        .iter()
        .map(|c| DeviceKind::from_class(c))
        .find(|k| !matches!(k, DeviceKind::Other(_)))
        .unwrap_or_else(|| DeviceKind::Other(class_chain.first().cloned().unwrap_or_default()))
}

/// How an fp16 tensor of `shape` is laid out in an IOSurface-backed
/// `kCVPixelFormatType_OneComponent16Half` pixel buffer for
/// `-[MLMultiArray initWithPixelBuffer:shape:]`: width = last dimension, height = product
/// of the others (Apple's `MLMultiArray.init(pixelBuffer:shape:)`: the last dimension is the
/// buffer's width). `None` for rank 0 or an empty tensor.
pub fn pixel_buffer_layout(shape: &[usize]) -> Option<(usize, usize)> {
    let (&width, rest) = shape.split_last()?;
    let height: usize = rest.iter().product();
    (width > 0 && height > 0).then_some((width, height))
}

/// Copies a strided array into row-major order: `bytes` holds elements of `elem` bytes at
/// element `strides` (as `MLMultiArray.strides` gives them); the result has
/// `shape.product() * elem` bytes. Every index is checked against `bytes`.
pub fn gather_strided(
    bytes: &[u8],
    elem: usize,
    shape: &[usize],
    strides: &[usize],
) -> Result<Vec<u8>> {
    if shape.len() != strides.len() {
        return Err(AppleError::invalid(
            "MLMultiArray",
            format!("shape {shape:?} and strides {strides:?} differ in rank"),
        ));
    }
    let count: usize = shape.iter().product();
    let mut out = Vec::with_capacity(count * elem);
    if count == 0 {
        return Ok(out);
    }
    // The furthest element must lie inside the buffer.
    let last: usize = shape
        .iter()
        .zip(strides)
        .map(|(&d, &s)| (d - 1).saturating_mul(s))
        .fold(0usize, usize::saturating_add);
    if last.saturating_add(1).saturating_mul(elem) > bytes.len() {
        return Err(AppleError::invalid(
            "MLMultiArray",
            format!(
                "shape {shape:?} with strides {strides:?} reaches past its {} bytes",
                bytes.len()
            ),
        ));
    }
    let contiguous = {
        let mut expect = 1usize;
        shape.iter().zip(strides).rev().all(|(&d, &s)| {
            let ok = d == 1 || s == expect;
            expect *= d;
            ok
        })
    };
    if contiguous {
        out.extend_from_slice(&bytes[..count * elem]);
        return Ok(out);
    }
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let off: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&bytes[off * elem..(off + 1) * elem]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

/// Copies row-major `src` (elements of `elem` bytes, `shape`) into a strided array `dst`
/// (element `strides`, as `MLMultiArray` gives them); every index is checked against
/// `dst`. The inverse of [`gather_strided`].
pub fn scatter_strided(
    dst: &mut [u8],
    src: &[u8],
    elem: usize,
    shape: &[usize],
    strides: &[usize],
) -> Result<()> {
    if shape.len() != strides.len() {
        return Err(AppleError::invalid(
            "MLMultiArray",
            format!("shape {shape:?} and strides {strides:?} differ in rank"),
        ));
    }
    let count: usize = shape.iter().product();
    if src.len() != count * elem {
        return Err(AppleError::invalid(
            "MLMultiArray",
            format!(
                "{} bytes given for {count} elements of {elem} bytes",
                src.len()
            ),
        ));
    }
    if count == 0 {
        return Ok(());
    }
    let last: usize = shape
        .iter()
        .zip(strides)
        .map(|(&d, &s)| (d - 1).saturating_mul(s))
        .fold(0usize, usize::saturating_add);
    if last.saturating_add(1).saturating_mul(elem) > dst.len() {
        return Err(AppleError::invalid(
            "MLMultiArray",
            format!(
                "shape {shape:?} with strides {strides:?} reaches past its {} bytes",
                dst.len()
            ),
        ));
    }
    let mut index = vec![0usize; shape.len()];
    for chunk in src.chunks_exact(elem) {
        let off: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        dst[off * elem..(off + 1) * elem].copy_from_slice(chunk);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(())
}

/// Where compiled models are kept: `$ANEKIT_CACHE_DIR/coreml`, else
/// `~/Library/Caches/anekit/coreml` on macOS, else `$XDG_CACHE_HOME/anekit/coreml` or
/// `~/.cache/anekit/coreml`, else a folder in the temporary directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ANEKIT_CACHE_DIR") {
        return PathBuf::from(d).join("coreml");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if cfg!(target_vendor = "apple")
        && let Some(h) = &home
    {
        return h.join("Library/Caches/anekit/coreml");
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(x).join("anekit/coreml");
    }
    match home {
        Some(h) => h.join(".cache/anekit/coreml"),
        None => std::env::temp_dir().join("anekit-cache/coreml"),
    }
}

/// A content hash of a model file or folder: SHA-256 over every regular file's relative
/// path, length and bytes, in sorted path order (so two copies of a package hash alike and
/// any edit changes the hash). Symbolic links are hashed as their target path, never
/// followed.
pub fn content_hash(source: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let meta = std::fs::symlink_metadata(source).map_err(|e| AppleError::io(source, e))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_files(source, source, &mut files, 0)?;
        files.sort();
        for rel in files {
            let p = source.join(&rel);
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            hash_file(&p, &mut h)?;
        }
    } else {
        hash_file(source, &mut h)?;
    }
    Ok(hex(&h.finalize()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(AppleError::invalid(
            dir.display().to_string(),
            "folder nesting deeper than 32 levels",
        ));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| AppleError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| AppleError::io(dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| AppleError::io(&path, e))?;
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if ft.is_dir() {
            collect_files(root, &path, out, depth + 1)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

fn hash_file(p: &Path, h: &mut Sha256) -> Result<()> {
    let meta = std::fs::symlink_metadata(p).map_err(|e| AppleError::io(p, e))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(p).map_err(|e| AppleError::io(p, e))?;
        h.update(b"symlink:");
        h.update(target.to_string_lossy().as_bytes());
        return Ok(());
    }
    h.update(meta.len().to_le_bytes());
    let mut f = std::fs::File::open(p).map_err(|e| AppleError::io(p, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| AppleError::io(p, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The cache of compiled models: `<dir>/<key>.mlmodelc`, keyed by the source's content hash
/// and the OS build (Core ML's compiler changes with the OS; a model compiled by another
/// build is compiled again). A finished entry has a `<key>.done` marker, written after the
/// compiled folder has been renamed into place, so an interrupted compile is never used.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir` (created on first insert).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache in [`default_cache_dir`].
    pub fn default_location() -> Self {
        Self::new(default_cache_dir())
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `source` compiled on OS build `os_build`.
    pub fn key(source: &Path, os_build: &str) -> Result<String> {
        Ok(Self::key_of_hash(&content_hash(source)?, os_build))
    }

    /// The key for a content hash and an OS build.
    pub fn key_of_hash(content_hash: &str, os_build: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"anekit-coreml-cache-v1\0");
        h.update(content_hash.as_bytes());
        h.update([0]);
        h.update(os_build.as_bytes());
        hex(&h.finalize()[..16])
    }

    /// Where the compiled model of `key` lives.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.mlmodelc"))
    }

    fn marker(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.done"))
    }

    /// The compiled model of `key`, if a finished entry exists.
    pub fn lookup(&self, key: &str) -> Option<PathBuf> {
        let p = self.path(key);
        (p.is_dir() && self.marker(key).is_file()).then_some(p)
    }

    /// Moves a freshly compiled `.mlmodelc` folder (Core ML leaves it in a temporary
    /// folder) into the cache under `key` and returns its new path. The folder goes to a
    /// sibling first (a rename when possible, else a copy) and is renamed into place; the
    /// marker is written last, itself through a renamed sibling. A finished entry (one with
    /// its marker) is never deleted: when another process finished first, its entry is kept
    /// and ours discarded. An unfinished one (no marker, an interrupted insert no reader
    /// uses) is moved aside before ours takes its place.
    pub fn insert(&self, key: &str, compiled: &Path) -> Result<PathBuf> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir).map_err(|e| AppleError::io(&self.dir, e))?;
        let dest = self.path(key);
        let unique = format!(
            "{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let tmp = self.dir.join(format!(".{key}.{unique}.tmp"));
        if std::fs::rename(compiled, &tmp).is_err() {
            copy_dir(compiled, &tmp, 0)?;
        }
        if self.lookup(key).is_some() {
            // Another process finished first: keep its entry.
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(dest);
        }
        if dest.exists() {
            let stale = self.dir.join(format!(".{key}.{unique}.stale"));
            std::fs::rename(&dest, &stale).map_err(|e| AppleError::io(&dest, e))?;
            let _ = std::fs::remove_dir_all(&stale);
        }
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Lost a race to another process that renamed its folder first.
            if dest.is_dir() {
                tracing::debug!(key, "another process cached this model first");
            } else {
                return Err(AppleError::io(&dest, e));
            }
        }
        let marker = self.marker(key);
        let marker_tmp = self.dir.join(format!(".{key}.{unique}.done"));
        std::fs::write(&marker_tmp, b"").map_err(|e| AppleError::io(&marker_tmp, e))?;
        std::fs::rename(&marker_tmp, &marker).map_err(|e| AppleError::io(&marker, e))?;
        tracing::debug!(key, path = %dest.display(), "compiled model cached");
        Ok(dest)
    }
}

fn copy_dir(src: &Path, dst: &Path, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(AppleError::invalid(
            src.display().to_string(),
            "folder nesting deeper than 32 levels",
        ));
    }
    std::fs::create_dir_all(dst).map_err(|e| AppleError::io(dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| AppleError::io(src, e))? {
        let entry = entry.map_err(|e| AppleError::io(src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ft = entry.file_type().map_err(|e| AppleError::io(&from, e))?;
        if ft.is_dir() {
            copy_dir(&from, &to, depth + 1)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| AppleError::io(&from, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_plans_are_unavailable_off_apple() {
        if cfg!(target_vendor = "apple") {
            return;
        }
        let p = anekit_mil::text::parse_without_weights(
            "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n            tensor<fp32, [2]> y = relu(x = x)[name = string(\"y\")];\n        } -> (y);\n}\n",
            "<test>",
        )
        .unwrap();
        let m = Model::from_program(Default::default(), p);
        let e = compute_plan_records(&m, ComputeUnits::All).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("MLComputePlan is unavailable: Core ML exists only on"),
            "{e}"
        );
    }

    #[test]
    fn pixel_buffer_layout_is_last_dim_by_rest() {
        assert_eq!(pixel_buffer_layout(&[1, 3, 8, 64]), Some((64, 24)));
        assert_eq!(pixel_buffer_layout(&[5]), Some((5, 1)));
        assert_eq!(pixel_buffer_layout(&[]), None);
        assert_eq!(pixel_buffer_layout(&[2, 0]), None);
    }

    #[test]
    fn strided_arrays_are_gathered_row_major() {
        // A 2x3 array of u16 stored with rows padded to 4 elements.
        let stored: Vec<u8> = [1u16, 2, 3, 0, 4, 5, 6, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = gather_strided(&stored, 2, &[2, 3], &[4, 1]).unwrap();
        let vals: Vec<u16> = out
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(vals, [1, 2, 3, 4, 5, 6]);
        // Contiguous: a plain copy.
        let c = gather_strided(&stored, 2, &[2, 4], &[4, 1]).unwrap();
        assert_eq!(c, stored);
        // A transposed view.
        let t = gather_strided(&stored, 2, &[3, 2], &[1, 4]).unwrap();
        let vals: Vec<u16> = t
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(vals, [1, 4, 2, 5, 3, 6]);
        // Out of bounds strides are refused, not read.
        assert!(gather_strided(&stored, 2, &[2, 3], &[8, 1]).is_err());
        assert!(gather_strided(&stored, 2, &[2], &[1, 1]).is_err());
        assert!(gather_strided(&[], 4, &[0, 3], &[3, 1]).unwrap().is_empty());
    }

    #[test]
    fn scatter_is_the_inverse_of_gather() {
        let src: Vec<u8> = [1u16, 2, 3, 4, 5, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut dst = vec![0u8; 16];
        scatter_strided(&mut dst, &src, 2, &[2, 3], &[4, 1]).unwrap();
        let vals: Vec<u16> = dst
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(vals, [1, 2, 3, 0, 4, 5, 6, 0]);
        assert_eq!(gather_strided(&dst, 2, &[2, 3], &[4, 1]).unwrap(), src);
        assert!(scatter_strided(&mut dst, &src, 2, &[2, 3], &[8, 1]).is_err());
        assert!(scatter_strided(&mut dst, &src[..4], 2, &[2, 3], &[4, 1]).is_err());
    }

    #[test]
    fn content_hash_follows_content_not_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("m.mlpackage/Data/com.apple.CoreML/weights")).unwrap();
            std::fs::write(d.join("m.mlpackage/Manifest.json"), b"{}").unwrap();
            std::fs::write(
                d.join("m.mlpackage/Data/com.apple.CoreML/weights/weight.bin"),
                [1u8, 2, 3],
            )
            .unwrap();
        }
        let ha = content_hash(&a.path().join("m.mlpackage")).unwrap();
        let hb = content_hash(&b.path().join("m.mlpackage")).unwrap();
        assert_eq!(ha, hb);
        std::fs::write(
            b.path()
                .join("m.mlpackage/Data/com.apple.CoreML/weights/weight.bin"),
            [1u8, 2, 4],
        )
        .unwrap();
        assert_ne!(ha, content_hash(&b.path().join("m.mlpackage")).unwrap());
        // A renamed file changes the hash too.
        std::fs::rename(
            a.path().join("m.mlpackage/Manifest.json"),
            a.path().join("m.mlpackage/manifest.json"),
        )
        .unwrap();
        assert_ne!(ha, content_hash(&a.path().join("m.mlpackage")).unwrap());
    }

    #[test]
    fn cache_keys_change_with_os_build_and_entries_need_their_marker() {
        let k1 = CompileCache::key_of_hash("abc", "24D70");
        let k2 = CompileCache::key_of_hash("abc", "24E248");
        let k3 = CompileCache::key_of_hash("abd", "24D70");
        assert_ne!(k1, k2);
        assert_ne!(k1, k3);
        assert_eq!(k1, CompileCache::key_of_hash("abc", "24D70"));
        assert_eq!(k1.len(), 32);

        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        assert_eq!(cache.lookup(&k1), None);
        let compiled = dir.path().join("tmp/model.mlmodelc");
        std::fs::create_dir_all(compiled.join("weights")).unwrap();
        std::fs::write(compiled.join("model.mil"), b"program(1.3)").unwrap();
        std::fs::write(compiled.join("weights/weight.bin"), [0u8; 64]).unwrap();
        let p = cache.insert(&k1, &compiled).unwrap();
        assert_eq!(cache.lookup(&k1), Some(p.clone()));
        assert_eq!(std::fs::read(p.join("model.mil")).unwrap(), b"program(1.3)");
        assert!(!compiled.exists(), "moved, not copied");
        // An entry without its marker (interrupted insert) is not used.
        std::fs::remove_file(dir.path().join(format!("cache/{k1}.done"))).unwrap();
        assert_eq!(cache.lookup(&k1), None);
    }

    #[test]
    fn a_finished_cache_entry_is_never_replaced_and_an_unfinished_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path().join("cache"));
        let key = CompileCache::key_of_hash("h", "24D70");
        let compiled = |tag: &str| {
            let p = dir.path().join(format!("{tag}/model.mlmodelc"));
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("model.mil"), tag).unwrap();
            p
        };
        let first = cache.insert(&key, &compiled("first")).unwrap();
        // A second process compiling the same model: the finished entry stays.
        let again = cache.insert(&key, &compiled("second")).unwrap();
        assert_eq!(first, again);
        assert_eq!(std::fs::read(first.join("model.mil")).unwrap(), b"first");
        // An interrupted insert left a folder without its marker: replaced.
        std::fs::remove_file(dir.path().join(format!("cache/{key}.done"))).unwrap();
        let third = cache.insert(&key, &compiled("third")).unwrap();
        assert_eq!(std::fs::read(third.join("model.mil")).unwrap(), b"third");
        assert_eq!(cache.lookup(&key), Some(third));
        // No temporary siblings are left behind.
        let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn only_fixed_shape_fp16_outputs_get_backings() {
        use anekit_runtime::{ElementType, ShapeSpec};
        let spec = |name: &str, dtype, shape: ShapeSpec| FeatureSpec {
            name: name.into(),
            dtype,
            shape,
        };
        let fixed = |s: &[usize]| ShapeSpec::Fixed { shape: s.to_vec() };
        let plans = backing_plans(&[
            spec("a", ElementType::F16, fixed(&[1, 3, 8, 64])),
            spec("b", ElementType::F32, fixed(&[1, 64])),
            spec("c", ElementType::F16, fixed(&[2, 0])),
            spec(
                "d",
                ElementType::F16,
                ShapeSpec::Range {
                    ranges: vec![(1, None)],
                    default: vec![1],
                },
            ),
            spec("e", ElementType::F16, fixed(&[])),
        ]);
        assert_eq!(
            plans,
            [BackingPlan {
                name: "a".into(),
                shape: vec![1, 3, 8, 64],
                layout: (64, 24)
            }]
        );
    }

    #[test]
    fn dictionaries_come_sorted_and_mixed_keys_are_refused() {
        let d = dictionary_from_entries(
            vec![
                (DictKey::Str("dog".into()), 0.7),
                (DictKey::Str("cat".into()), 0.3),
            ],
            "output",
        )
        .unwrap();
        assert_eq!(
            d.entries(),
            [("cat".to_string(), 0.3), ("dog".to_string(), 0.7)]
        );
        let i = dictionary_from_entries(
            vec![(DictKey::Int(5), 0.1), (DictKey::Int(-2), 0.9)],
            "output",
        )
        .unwrap();
        assert_eq!(i.entries()[0].0, "-2");
        assert!(
            dictionary_from_entries(
                vec![(DictKey::Int(1), 0.5), (DictKey::Str("x".into()), 0.5)],
                "output"
            )
            .is_err()
        );
    }

    #[test]
    fn multi_arrays_become_tensors_through_their_strides() {
        use anekit_runtime::Tensor;
        // A 2x2 Float32 array stored column-major (strides [1, 2]).
        let raw: Vec<u8> = [1.0f32, 3.0, 2.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = tensor_from_multi_array(&raw, multi_array_type::FLOAT32, &[2, 2], &[1, 2], "x")
            .unwrap();
        assert_eq!(t, Tensor::f32(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
        // Float64 becomes f32; Int32 stays.
        let d: Vec<u8> = [0.5f64, 1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = tensor_from_multi_array(&d, multi_array_type::FLOAT64, &[2], &[1], "x").unwrap();
        assert_eq!(t, Tensor::f32(&[2], vec![0.5, 1.5]).unwrap());
        let i: Vec<u8> = [7i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = tensor_from_multi_array(&i, multi_array_type::INT32, &[2], &[1], "x").unwrap();
        assert_eq!(t, Tensor::i32(&[2], vec![7, -1]).unwrap());
        // Unknown types and strides past the bytes are errors, not reads.
        assert!(tensor_from_multi_array(&raw, 0x30000 | 8, &[4], &[1], "x").is_err());
        assert!(
            tensor_from_multi_array(&raw, multi_array_type::FLOAT32, &[2, 2], &[4, 1], "x")
                .is_err()
        );
        assert_eq!(
            multi_array_element(multi_array_type::INT8).map(|e| e.0),
            Some(1)
        );
    }

    #[test]
    fn compute_devices_are_matched_like_is_kind_of_class() {
        use anekit_plan::device_plan::DeviceKind;
        let chain = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            device_kind_of(&chain(&["MLNeuralEngineComputeDevice", "NSObject"])),
            DeviceKind::NeuralEngine
        );
        // A subclass Apple might add counts as its family, not as an unknown device.
        assert_eq!(
            device_kind_of(&chain(&[
                "MLNeuralEngineComputeDeviceV2",
                "MLNeuralEngineComputeDevice",
                "NSObject"
            ])),
            DeviceKind::NeuralEngine
        );
        assert_eq!(
            device_kind_of(&chain(&["_MLPrivateGPU", "MLGPUComputeDevice", "NSObject"])),
            DeviceKind::Gpu
        );
        assert_eq!(
            device_kind_of(&chain(&["MLFutureDevice", "NSObject"])),
            DeviceKind::Other("MLFutureDevice".into())
        );
    }

    #[test]
    fn default_cache_dir_honours_the_environment_variable() {
        // Only read here (setting variables in tests races other tests).
        let d = default_cache_dir();
        assert!(d.ends_with("coreml"), "{}", d.display());
    }
}
