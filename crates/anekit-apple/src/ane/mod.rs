//! The direct Neural Engine path: portable preparation here (always built), the backend over
//! the private framework with the cargo feature `private-ane` on macOS.
//!
//! Our IR is printed as MIL text with its constants in one weight blob ([`export`]); the
//! private AppleNeuralEngine framework compiles it (`_ANEInMemoryModelDescriptor` →
//! `_ANEInMemoryModel` → `compileWithQoS:` → `loadWithQoS:`), and each prediction writes the
//! inputs into IOSurfaces wrapped by `_ANEIOSurfaceObject`, evaluates an `_ANERequest` and
//! reads the outputs back (maderix/ANE `training/ane_runtime.h`; docs/apple.md). Three guards
//! sit around it, all
//! portable and tested on any OS:
//!
//! - [`CompileBudget`]: the framework leaks per compile and fails after ~119 compiles in a
//!   process; the budget (default 100, `ANEKIT_ANE_MAX_COMPILES`) refuses compiles past it
//!   with a typed error instead of crashing into the wall;
//! - [`CacheIndex`]: a persistent index keyed by the hashes of the MIL text and the weights.
//!   The compiled program itself is kept by the system (`aned`'s cache, asked through
//!   `compiledModelExists`); the index records what was compiled for which OS build, and a
//!   cached program is loaded without compiling (and without spending budget);
//! - [`AneStage`] and [`hint`]: framework errors become [`AppleError::Ane`] with the stage
//!   that failed and, for known status codes, what usually causes them.
//!
//! Nothing of the private path has been run (no Mac was available); see docs/apple.md.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anekit_format::BlobWriter;
use anekit_format::weights::BlobSource;
use anekit_mil::program::{Binding, Block, Program};
use anekit_mil::text::{Dialect, PrintOptions};
use anekit_mil::value::{BlobRef, Placement, Storage, Value, ValueData};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AppleError, Result};

pub mod layout;
pub mod target;

#[cfg(all(target_os = "macos", feature = "private-ane"))]
mod backend;

#[cfg(all(target_os = "macos", feature = "private-ane"))]
pub use backend::{AneBackend, AneModel};

/// The weight-file name the MIL text refers to (and the key of the descriptor's weights
/// dictionary).
pub const WEIGHT_FILE: &str = "@model_path/weights/weight.bin";

/// The compile budget when `ANEKIT_ANE_MAX_COMPILES` is not set.
pub const DEFAULT_COMPILE_LIMIT: u32 = 100;

/// The stage of the private path that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AneStage {
    /// Building the descriptor or model object.
    Describe,
    /// `compileWithQoS:options:error:`.
    Compile,
    /// `loadWithQoS:options:error:`.
    Load,
    /// Creating IOSurfaces or the request.
    Prepare,
    /// `evaluateWithQoS:options:request:error:`.
    Evaluate,
    /// `unloadWithQoS:error:`.
    Unload,
}

impl std::fmt::Display for AneStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AneStage::Describe => "describe",
            AneStage::Compile => "compile",
            AneStage::Load => "load",
            AneStage::Prepare => "prepare",
            AneStage::Evaluate => "evaluate",
            AneStage::Unload => "unload",
        })
    }
}

/// What usually causes a failure, from the framework's message (status codes seen by
/// others: `ANEProgramProcessRequestDirect() Failed with status=0x1d` in maderix/ANE's README
/// and the `ane` crate's width check, `ANECCompile() FAILED` in ncdrone/rustane#11).
pub fn hint(stage: AneStage, description: &str) -> Option<&'static str> {
    let d = description.to_ascii_lowercase();
    if d.contains("0x1d") {
        Some(
            "status 0x1d: an input or output narrower than 64 elements in its last axis, \
             several inputs on older chips, or an earlier `tile` op in this process",
        )
    } else if d.contains("anecccompile") || d.contains("aneccompile") {
        Some("the ANE compiler rejected the program (unsupported op, shape or size for this chip)")
    } else if d.contains("entitlement") || d.contains("not entitled") {
        Some("this macOS version requires an entitlement for this call")
    } else if d.contains("0x16") || d.contains("program inference error") {
        Some("status 0x16: the program failed on the Neural Engine (inputs out of the fp16 range?)")
    } else if stage == AneStage::Compile && d.contains("leak") {
        Some("too many compiles in this process; restart it")
    } else {
        None
    }
}

/// The process-wide compile counter behind [`CompileBudget`].
static COMPILES: AtomicU32 = AtomicU32::new(0);

/// The per-process compile budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    limit: u32,
}

impl CompileBudget {
    /// A budget of `limit` compiles per process.
    pub fn new(limit: u32) -> Self {
        Self { limit }
    }

    /// The budget from `ANEKIT_ANE_MAX_COMPILES`, else [`DEFAULT_COMPILE_LIMIT`].
    pub fn from_env() -> Self {
        Self::new(parse_limit(
            std::env::var("ANEKIT_ANE_MAX_COMPILES").ok().as_deref(),
        ))
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Compiles made so far in this process.
    pub fn used() -> u32 {
        COMPILES.load(Ordering::SeqCst)
    }

    /// Takes one compile from the process's budget, or says the budget is spent.
    pub fn acquire(&self) -> Result<u32> {
        Self::acquire_from(&COMPILES, self.limit)
    }

    fn acquire_from(counter: &AtomicU32, limit: u32) -> Result<u32> {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|n| n + 1)
            .map_err(|used| AppleError::CompileBudget { used, limit })
    }
}

/// Parses `ANEKIT_ANE_MAX_COMPILES` (a positive integer; anything else means the default).
pub fn parse_limit(v: Option<&str>) -> u32 {
    v.and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_COMPILE_LIMIT)
}

/// One weight file of an exported program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightFile {
    /// The path the MIL text refers to (`@model_path/weights/weight.bin`).
    pub path: String,
    /// The file (`weights/weight.bin` layout: 64-byte header, 64-byte aligned blobs).
    pub bytes: Vec<u8>,
}

impl WeightFile {
    /// The path relative to the model folder (`weights/weight.bin`).
    pub fn relative_path(&self) -> &str {
        self.path.strip_prefix("@model_path/").unwrap_or(&self.path)
    }
}

/// A program prepared for the private compiler: MIL text and the weight files it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The function that was exported.
    pub function: String,
    /// MIL text (Apple's syntax, no anekit extensions).
    pub mil: String,
    /// The weight files (none when the program has no blob constants).
    pub weights: Vec<WeightFile>,
}

impl Exported {
    /// The cache key: SHA-256 over the MIL text and every weight file's path and bytes.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"anekit-ane-v2\0");
        h.update(Sha256::digest(self.mil.as_bytes()));
        for w in &self.weights {
            h.update(w.path.as_bytes());
            h.update([0]);
            h.update((w.bytes.len() as u64).to_le_bytes());
            h.update(Sha256::digest(&w.bytes));
        }
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The build information the ANE's MIL parser requires (it fails without a
/// `coremlc-version`; maderix/ANE `training/stories_mil.h` and the `ane` crate's
/// `ops/mil.rs` write the same header).
const BUILD_INFO_PROGRAM: &str = r#"program(1.3)
[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}})]
{
}
"#;

fn default_build_info() -> Option<Value> {
    anekit_mil::text::parse_without_weights(BUILD_INFO_PROGRAM, "<anekit build info>")
        .ok()?
        .attributes
        .remove("buildInfo")
}

/// Prepares `function` of `program` for the private compiler with the profile of an unknown
/// (newest) chip: [`export_for`] with [`target::profile_for`]`(None)`.
pub fn export(program: &Program, function: &str) -> Result<Exported> {
    export_for(program, function, &target::profile_for(None))
}

/// Prepares `function` of `program` for the private compiler of the chip `profile`
/// describes: keeps only that function (renamed `main`, which the compiler expects), caps
/// its opset where the chip needs it (refusing, before any compile, a program whose ops do
/// not exist in the capped opset), moves every tensor constant that goes to a weight file
/// (blob-placed ones, and coremltools' rule for the others: ≥ 10 elements of fp16, fp32,
/// int8 or uint8, or sub-byte) into one weight file or one file per weight, adds the build
/// information when missing, and prints the text in the profile's dialect without anekit
/// extensions.
pub fn export_for(
    program: &Program,
    function: &str,
    profile: &target::MilProfile,
) -> Result<Exported> {
    let f = program.functions.get(function).ok_or_else(|| {
        let names: Vec<&str> = program.functions.keys().map(String::as_str).collect();
        AppleError::invalid(
            "function",
            format!(
                "the program has no function {function:?} (its functions: {})",
                names.join(", ")
            ),
        )
    })?;
    let mut f = f.clone();
    if let (Some(cap), Some(own)) = (profile.opset_cap, f.known_opset())
        && own > cap
    {
        cap_opset(&mut f, cap, profile.generation.as_deref())?;
    }
    let mut p = Program {
        version: program.version,
        functions: [("main".to_string(), f)].into_iter().collect(),
        doc: String::new(),
        attributes: program.attributes.clone(),
    };
    if !p.attributes.contains_key("buildInfo")
        && let Some(b) = default_build_info()
    {
        p.attributes.insert("buildInfo".into(), b);
    }
    let mut sink = WeightSink::new(profile.weights)?;
    let mut failure: Option<AppleError> = None;
    let mut visit = |v: &mut Value| {
        if failure.is_some() {
            return;
        }
        if let Err(e) = externalize(v, &mut sink) {
            failure = Some(e);
        }
    };
    for func in p.functions.values_mut() {
        for block in func.blocks.values_mut() {
            visit_block(block, &mut visit);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let weights = sink.finish()?;
    let dialect = profile.dialect.unwrap_or_else(|| {
        p.functions
            .values()
            .next()
            .and_then(|f| f.known_opset())
            .map_or_else(
                || Dialect::for_program(&p),
                |o| Dialect::for_spec_version(o.spec_version()),
            )
    });
    let mil = anekit_mil::text::print_with(
        &p,
        &PrintOptions {
            dialect: Some(dialect),
            extensions: false,
        },
    );
    Ok(Exported {
        function: function.to_string(),
        mil,
        weights,
    })
}

/// Re-tags `f` to opset `cap` when every op of it exists there with the same signature
/// (checked by anekit-mil's validator); otherwise says which ops do not.
fn cap_opset(
    f: &mut anekit_mil::program::Function,
    cap: anekit_mil::program::Opset,
    generation: Option<&str>,
) -> Result<()> {
    let block = f
        .blocks
        .remove(&f.opset)
        .ok_or_else(|| AppleError::invalid("function", "no block for its opset"))?;
    let from = f.opset.clone();
    f.blocks.clear();
    f.blocks.insert(cap.proto_name().to_string(), block);
    f.opset = cap.proto_name().to_string();
    let report = anekit_mil::validate::check_function("main", f);
    if !report.is_ok() {
        let problems: Vec<String> = report
            .diagnostics
            .iter()
            .take(5)
            .map(|d| d.to_string())
            .collect();
        return Err(AppleError::invalid(
            "program",
            format!(
                "the Neural Engine compiler of {} takes {} programs, and this {from} function \
                 does not fit that opset: {}",
                generation.unwrap_or("this chip"),
                cap.text_name(),
                problems.join("; ")
            ),
        ));
    }
    Ok(())
}

/// Where externalized constants go: one blob file, or one file per constant.
enum WeightSink {
    Single(BlobWriter<std::io::Cursor<Vec<u8>>>),
    PerTensor(Vec<WeightFile>),
}

impl WeightSink {
    fn new(layout: target::WeightLayout) -> Result<Self> {
        Ok(match layout {
            target::WeightLayout::Single => Self::Single(
                BlobWriter::new(std::io::Cursor::new(Vec::new()))
                    .map_err(|e| AppleError::invalid("weight blob", e.to_string()))?,
            ),
            target::WeightLayout::PerTensor => Self::PerTensor(Vec::new()),
        })
    }

    /// Appends a blob; returns the file it went to and its offset there.
    fn append(
        &mut self,
        blob_type: anekit_format::BlobDataType,
        bytes: &[u8],
        padding: u64,
    ) -> Result<(String, u64)> {
        let err = |e: std::io::Error| AppleError::invalid("weight blob", e.to_string());
        match self {
            Self::Single(w) => Ok((
                WEIGHT_FILE.to_string(),
                w.append(blob_type, bytes, padding).map_err(err)?,
            )),
            Self::PerTensor(files) => {
                let mut w = BlobWriter::new(std::io::Cursor::new(Vec::new())).map_err(err)?;
                let offset = w.append(blob_type, bytes, padding).map_err(err)?;
                let path = format!("@model_path/weights/w{}.bin", files.len());
                files.push(WeightFile {
                    path: path.clone(),
                    bytes: w.finish().map_err(err)?.into_inner(),
                });
                Ok((path, offset))
            }
        }
    }

    fn finish(self) -> Result<Vec<WeightFile>> {
        match self {
            Self::Single(w) => {
                let count = w.count();
                let bytes = w
                    .finish()
                    .map_err(|e| AppleError::invalid("weight blob", e.to_string()))?
                    .into_inner();
                Ok(if count == 0 {
                    Vec::new()
                } else {
                    vec![WeightFile {
                        path: WEIGHT_FILE.to_string(),
                        bytes,
                    }]
                })
            }
            Self::PerTensor(files) => Ok(files),
        }
    }
}

fn visit_block(b: &mut Block, f: &mut impl FnMut(&mut Value)) {
    for op in &mut b.operations {
        for v in op.attributes.values_mut() {
            f(v);
        }
        for arg in op.inputs.values_mut() {
            for binding in &mut arg.0 {
                if let Binding::Value(v) = binding {
                    f(v);
                }
            }
        }
        for nested in &mut op.blocks {
            visit_block(nested, f);
        }
    }
}

fn externalize(v: &mut Value, w: &mut WeightSink) -> Result<()> {
    let Some(tt) = v.ty.as_tensor().cloned() else {
        return Ok(());
    };
    let ValueData::Tensor(td) = &mut v.data else {
        return Ok(());
    };
    let Some(blob_type) = tt.dtype.blob_type() else {
        return Ok(());
    };
    let Storage::Bytes(bytes) = &td.storage else {
        return Ok(());
    };
    let n = tt.element_count().unwrap_or(0);
    // Blob-placed tensors stay in the blob; inline and undecided ones follow coremltools'
    // rule for weights (≥ 10 elements of fp16, fp32, int8 or uint8, and every sub-byte
    // tensor): large literals in the text would only slow the compiler's parser down.
    use anekit_mil::types::DataType as D;
    let to_blob = match td.placement {
        Placement::Blob { .. } => true,
        Placement::Inline | Placement::Auto => {
            tt.dtype.is_sub_byte()
                || (n >= 10 && matches!(tt.dtype, D::Fp16 | D::Fp32 | D::Int8 | D::Uint8))
        }
    };
    if !to_blob {
        return Ok(());
    }
    let padding = if blob_type.is_sub_byte() {
        anekit_format::subbyte::padding_bits(n as usize, blob_type.bits())
    } else {
        0
    };
    let (file, offset) = w.append(blob_type, bytes, padding)?;
    td.placement = Placement::Blob {
        source: Some(BlobRef { file, offset }),
    };
    Ok(())
}

/// A [`BlobSource`] over an export's weight files (to parse exported text back, and to
/// check an export).
pub fn weight_source(weights: &[WeightFile]) -> Result<impl BlobSource> {
    struct Source(Vec<(String, anekit_format::BlobFile)>);
    impl BlobSource for Source {
        fn blob(
            &self,
            file: &str,
            offset: u64,
        ) -> anekit_format::Result<anekit_format::blob::Blob> {
            match self.0.iter().find(|(p, _)| p == file) {
                Some((_, f)) => f.blob(offset),
                None => Err(anekit_format::FormatError::invalid(
                    std::path::Path::new(file),
                    "file",
                    format!(
                        "not one of the exported weight files ({})",
                        self.0
                            .iter()
                            .map(|(p, _)| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
    }
    weights
        .iter()
        .map(|w| {
            anekit_format::BlobFile::from_bytes(
                w.relative_path(),
                bytes::Bytes::copy_from_slice(&w.bytes),
            )
            .map(|f| (w.path.clone(), f))
            .map_err(|e| AppleError::invalid("weight blob", e.to_string()))
        })
        .collect::<Result<Vec<_>>>()
        .map(Source)
}

/// One entry of the [`CacheIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// [`Exported::key`].
    pub key: String,
    /// The framework's identifier of the compiled program (`hexStringIdentifier`).
    pub identifier: String,
    /// The OS build it was compiled on.
    pub os_build: String,
    /// The exported function.
    pub function: String,
    /// Where the framework keeps the program's files (`localModelPath`), when known.
    #[serde(default)]
    pub local_path: Option<String>,
    /// When the program was last compiled or loaded, seconds since the Unix epoch.
    #[serde(default)]
    pub last_used: u64,
}

/// The persistent index of programs compiled by the private path, one JSON file per key in
/// a folder (`$ANEKIT_CACHE_DIR/ane`, else next to the Core ML cache).
#[derive(Debug, Clone)]
pub struct CacheIndex {
    dir: PathBuf,
}

impl CacheIndex {
    /// An index in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The index next to the Core ML compile cache.
    pub fn default_location() -> Self {
        let coreml = crate::coreml::default_cache_dir();
        Self::new(
            coreml
                .parent()
                .map_or_else(|| coreml.clone(), Path::to_path_buf)
                .join("ane"),
        )
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The entry for `key` compiled on `os_build`, if recorded (an entry from another OS
    /// build is not returned: the system purges compiled programs on OS updates).
    pub fn lookup(&self, key: &str, os_build: &str) -> Option<CacheEntry> {
        let text = std::fs::read_to_string(self.path(key)).ok()?;
        let e: CacheEntry = serde_json::from_str(&text).ok()?;
        (e.key == key && e.os_build == os_build).then_some(e)
    }

    /// Records an entry (written to a temporary sibling, then renamed).
    pub fn record(&self, entry: &CacheEntry) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| AppleError::io(&self.dir, e))?;
        let dest = self.path(&entry.key);
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", entry.key, std::process::id()));
        let json = serde_json::to_vec_pretty(entry)
            .map_err(|e| AppleError::invalid("ANE cache entry", e.to_string()))?;
        std::fs::write(&tmp, json).map_err(|e| AppleError::io(&tmp, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| AppleError::io(&dest, e))
    }

    /// Removes an entry (when the system no longer has the compiled program).
    pub fn forget(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
    }

    /// Every readable entry, least recently used first.
    pub fn entries(&self) -> Vec<CacheEntry> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<CacheEntry> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<CacheEntry>(&t).ok())
            .collect();
        out.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.key.cmp(&b.key)));
        out
    }

    /// Keeps the `keep` most recently used entries; removes the others from the index and
    /// returns them, so that their files can be purged.
    pub fn trim(&self, keep: usize) -> Vec<CacheEntry> {
        let all = self.entries();
        let n = all.len().saturating_sub(keep);
        let old: Vec<CacheEntry> = all.into_iter().take(n).collect();
        for e in &old {
            self.forget(&e.key);
        }
        old
    }
}

/// The number of compiled programs the index keeps (`ANEKIT_ANE_CACHE_ENTRIES`, default
/// 256); older ones are purged when a new one is compiled.
pub fn cache_limit() -> usize {
    std::env::var("ANEKIT_ANE_CACHE_ENTRIES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(256)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the direct Neural Engine backend cannot run here (`None` when it can): the build
/// (not macOS, or without the `private-ane` feature), the OS version, or the private
/// classes and selectors it calls. `anekit devices`, the feature table and the backend's
/// own availability all ask this one function, so they agree.
pub fn availability_reason() -> Option<String> {
    if let Some(r) = crate::status::reason_in_this_build(crate::status::Feature::DirectAne) {
        return Some(r);
    }
    #[cfg(all(target_os = "macos", feature = "private-ane"))]
    {
        backend::api_reason()
    }
    #[cfg(not(all(target_os = "macos", feature = "private-ane")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_past_its_limit() {
        let counter = AtomicU32::new(0);
        assert_eq!(CompileBudget::acquire_from(&counter, 2).unwrap(), 1);
        assert_eq!(CompileBudget::acquire_from(&counter, 2).unwrap(), 2);
        match CompileBudget::acquire_from(&counter, 2) {
            Err(AppleError::CompileBudget { used: 2, limit: 2 }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            counter.load(Ordering::SeqCst),
            2,
            "a refusal does not count"
        );
    }

    #[test]
    fn the_limit_comes_from_the_environment_value() {
        assert_eq!(parse_limit(None), DEFAULT_COMPILE_LIMIT);
        assert_eq!(parse_limit(Some("50")), 50);
        assert_eq!(parse_limit(Some(" 7 ")), 7);
        assert_eq!(parse_limit(Some("0")), DEFAULT_COMPILE_LIMIT);
        assert_eq!(parse_limit(Some("many")), DEFAULT_COMPILE_LIMIT);
    }

    #[test]
    fn hints_for_known_statuses() {
        assert!(
            hint(
                AneStage::Evaluate,
                "ANEProgramProcessRequestDirect() Failed with status=0x1d"
            )
            .unwrap()
            .contains("64")
        );
        assert!(
            hint(
                AneStage::Compile,
                "_ANECompiler : ANECCompile() FAILED (11)"
            )
            .is_some()
        );
        assert_eq!(hint(AneStage::Load, "something else"), None);
    }

    fn sample_program() -> Program {
        let weights: Vec<String> = (0..16).map(|i| format!("{}", i as f32 / 4.0)).collect();
        let text = format!(
            r#"program(1.3)
{{
    func main<ios18>(tensor<fp16, [1, 4, 1, 64]> x) {{
            tensor<fp16, [4, 4, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [4, 4, 1, 1]>([{w}])];
            tensor<fp16, [1, 4, 1, 64]> y = conv(x = x, weight = w, pad_type = string("valid"), strides = tensor<int32, [2]>([1, 1]), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string("y")];
            tensor<fp16, [1, 4, 1, 64]> z = add(x = y, y = fp16(0x1p+0))[name = string("z")];
        }} -> (z);
    func other<ios18>(tensor<fp16, [1, 64]> a) {{
            tensor<fp16, [1, 64]> b = relu(x = a)[name = string("b")];
        }} -> (b);
}}
"#,
            w = weights
                .chunks(1)
                .map(|c| format!("[[{}]]", c[0]))
                .collect::<Vec<_>>()
                .chunks(4)
                .map(|r| format!("[{}]", r.join(", ")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        anekit_mil::text::parse_without_weights(&text, "<test>").expect("parses")
    }

    #[test]
    fn export_moves_constants_to_the_blob_and_round_trips() {
        let p = sample_program();
        let e = export(&p, "main").unwrap();
        assert!(e.mil.starts_with("program(1.3)"), "{}", e.mil);
        assert!(e.mil.contains("coremlc-version"), "build info added");
        assert!(
            e.mil
                .contains("BLOBFILE(path = string(\"@model_path/weights/weight.bin\")"),
            "{}",
            e.mil
        );
        assert!(!e.mil.contains("func other"), "only the chosen function");
        // One file: header 64 + metadata 64 + 16 fp16 values.
        assert_eq!(e.weights.len(), 1);
        let w = &e.weights[0].bytes;
        assert_eq!(e.weights[0].path, WEIGHT_FILE);
        assert_eq!(w.len(), 160);
        assert_eq!(&w[0..4], &1u32.to_le_bytes(), "one blob");
        assert_eq!(&w[64..68], &0xDEAD_BEEFu32.to_le_bytes());
        // The text parses back against the blob into the same function.
        let src = weight_source(&e.weights).unwrap();
        let back = anekit_mil::text::parse(&e.mil, "<export>", &src).unwrap();
        // Equal to the original but for the weight's placement (inline → blob).
        let mut expected = p.functions["main"].clone();
        let block = expected.block_mut().unwrap();
        let val = block.operations[0].attributes.get_mut("val").unwrap();
        if let ValueData::Tensor(td) = &mut val.data {
            td.placement = Placement::Blob { source: None };
        }
        assert_eq!(back.functions["main"], expected);
        // Deterministic, and the key changes with the content.
        let again = export(&p, "main").unwrap();
        assert_eq!(again, e);
        assert_eq!(again.key(), e.key());
        let other = export(&p, "other").unwrap();
        assert!(other.weights.is_empty(), "no blob constants");
        assert!(other.mil.contains("func main<ios18>"), "renamed to main");
        assert_ne!(other.key(), e.key());
        assert!(
            export(&p, "nope")
                .unwrap_err()
                .to_string()
                .contains("its functions: main, other")
        );
    }

    #[test]
    fn m1_and_m2_get_program_1_0_ios16_and_one_file_per_weight() {
        let p = sample_program();
        let legacy = target::profile_for(Some("h13"));
        let e = export_for(&p, "main", &legacy).unwrap();
        assert!(e.mil.starts_with("program(1.0)"), "{}", e.mil);
        assert!(e.mil.contains("func main<ios16>"), "{}", e.mil);
        // The verbose scalar syntax of program(1.0).
        assert!(e.mil.contains("tensor<string, []>(\"valid\")"), "{}", e.mil);
        assert_eq!(e.weights.len(), 1);
        assert_eq!(e.weights[0].path, "@model_path/weights/w0.bin");
        assert!(
            e.mil.contains("BLOBFILE(path = tensor<string, []>(\"@model_path/weights/w0.bin\"), offset = tensor<uint64, []>(64))"),
            "{}",
            e.mil
        );
        // The text parses back against its files into the same function, now in ios16.
        let src = weight_source(&e.weights).unwrap();
        let back = anekit_mil::text::parse(&e.mil, "<export>", &src).unwrap();
        assert_eq!(back.functions["main"].opset, "CoreML6");
        assert_ne!(
            e.key(),
            export(&p, "main").unwrap().key(),
            "another chip, another key"
        );
    }

    #[test]
    fn an_op_newer_than_ios16_is_refused_for_m1_before_compiling() {
        // `slice_update` exists only from iOS18 on.
        let text = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 128]> x, tensor<fp16, [1, 64]> u) {\n            tensor<int32, [2]> b = const()[name = string(\"b\"), val = tensor<int32, [2]>([0, 0])];\n            tensor<int32, [2]> e = const()[name = string(\"e\"), val = tensor<int32, [2]>([1, 64])];\n            tensor<fp16, [1, 128]> y = slice_update(x = x, update = u, begin = b, end = e)[name = string(\"y\")];\n        } -> (y);\n}\n";
        let p = anekit_mil::text::parse_without_weights(text, "<t>").unwrap();
        let err = export_for(&p, "main", &target::profile_for(Some("h14")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes ios16 programs"), "{err}");
        assert!(err.contains("slice_update"), "{err}");
        // The modern profile exports it unchanged.
        assert!(export_for(&p, "main", &target::profile_for(Some("h16"))).is_ok());
    }

    #[test]
    fn the_cache_index_is_keyed_by_content_and_os_build() {
        let dir = tempfile::tempdir().unwrap();
        let idx = CacheIndex::new(dir.path());
        let e = CacheEntry {
            key: "abc".into(),
            identifier: "DEADBEEF".into(),
            os_build: "24D70".into(),
            function: "main".into(),
            local_path: None,
            last_used: 10,
        };
        assert_eq!(idx.lookup("abc", "24D70"), None);
        idx.record(&e).unwrap();
        assert_eq!(idx.lookup("abc", "24D70"), Some(e.clone()));
        assert_eq!(idx.lookup("abc", "25A1"), None, "another OS build");
        idx.forget("abc");
        assert_eq!(idx.lookup("abc", "24D70"), None);
        // Trimming keeps the most recently used entries and hands back the others.
        for (k, t) in [("a", 3), ("b", 1), ("c", 2)] {
            idx.record(&CacheEntry {
                key: k.into(),
                last_used: t,
                ..e.clone()
            })
            .unwrap();
        }
        // An entry of the previous format (no local path, no time) still reads.
        std::fs::write(
            dir.path().join("old.json"),
            r#"{"key":"old","identifier":"X","os_build":"24D70","function":"main"}"#,
        )
        .unwrap();
        assert_eq!(idx.entries().len(), 4);
        let gone: Vec<String> = idx.trim(2).into_iter().map(|e| e.key).collect();
        assert_eq!(gone, ["old", "b"]);
        let left: Vec<String> = idx.entries().into_iter().map(|e| e.key).collect();
        assert_eq!(left, ["c", "a"]);
    }
}
