//! Fuzzing entry points: one function per parser, each taking arbitrary bytes, and one for
//! a whole model ([`model`]: parse → validate → analyze → CPU run, with a structure-aware
//! mutator of MIL programs).
//!
//! A function must return normally for every input: parsers answer hostile input with an
//! error, so a panic, an abort (e.g. an allocation the input does not justify) or a hang
//! here is a bug. Where a parser also writes, the function checks that what was written
//! parses back to the same thing. Each returns whether the input was accepted as a whole
//! (the corpus test uses this to check that valid seeds are accepted and malformed ones
//! refused).
//!
//! The cargo-fuzz project in `fuzz/` has one target per entry of [`TARGETS`], and
//! `tests/corpus.rs` replays every file of `fuzz/corpus/<target>/` through it (that is what
//! CI runs). See `docs/fuzzing.md`.

#![forbid(unsafe_code)]

pub mod model;

use std::path::Path;

use anekit_format::mlmodelc::{CompiledMetadata, CoreMlData};
use anekit_format::package::Manifest;
use anekit_format::{BlobFile, BlobSource, ModelAsset, blob_references, subbyte};
use bytes::Bytes;

/// Separates the member files in a [`mlpackage`] or [`mlmodelc`] input.
pub const SEPARATOR: &[u8] = b"--anekit-fuzz--";

/// An entry function: `true` if the input was accepted as a whole.
pub type Entry = fn(&[u8]) -> bool;

/// Every fuzz target: (name, entry). The name is the cargo-fuzz target and the corpus folder.
pub const TARGETS: &[(&str, Entry)] = &[
    ("blob_file", blob_file),
    ("manifest", manifest),
    ("mlmodel", mlmodel),
    ("mlpackage", mlpackage),
    ("mlmodelc", mlmodelc),
    ("mil_text", mil_text),
    ("model", model::model),
    ("neuralnetwork", neuralnetwork),
    ("mlir_bytecode", mlir_bytecode),
];

/// Most blob lookups tried per input (keeps each run fast on large inputs).
const MAX_LOOKUPS: usize = 256;

/// The weight-blob reader: header, every record in file order, lookups at every 64-byte
/// boundary and at offsets taken from the input itself, and sub-byte unpacking of what it
/// finds.
pub fn blob_file(data: &[u8]) -> bool {
    let Ok(file) = BlobFile::from_bytes("fuzz/weight.bin", Bytes::copy_from_slice(data)) else {
        return false;
    };
    let mut accepted = true;
    for blob in file.blobs().take(MAX_LOOKUPS) {
        match blob {
            Ok(blob) => check_blob(&blob),
            Err(_) => accepted = false,
        }
    }
    let aligned = (0..data.len() as u64).step_by(64);
    let claimed = data
        .chunks_exact(8)
        .filter_map(|c| <[u8; 8]>::try_from(c).ok())
        .map(u64::from_le_bytes);
    for offset in aligned.chain(claimed).take(MAX_LOOKUPS) {
        if let Ok(blob) = file.blob(offset) {
            check_blob(&blob);
        }
    }
    accepted
}

fn check_blob(blob: &anekit_format::Blob) {
    let count = blob.element_count();
    if blob.dtype.is_sub_byte() {
        let Ok(count) = usize::try_from(count) else {
            return;
        };
        // Every element fits in the payload the record claims.
        let unpacked = subbyte::unpack(&blob.data, blob.dtype.bits(), count);
        assert!(
            unpacked.is_some_and(|v| v.len() == count),
            "{count} elements of {:?} do not unpack from {} bytes",
            blob.dtype,
            blob.data.len()
        );
    } else {
        let width = u64::from(blob.dtype.bits() / 8);
        assert_eq!(count * width, blob.data.len() as u64);
    }
}

/// The Manifest.json parser; a manifest that parses must write and re-parse to itself.
pub fn manifest(data: &[u8]) -> bool {
    let Ok(m) = Manifest::parse(Path::new("fuzz/Manifest.json"), data) else {
        return false;
    };
    let text = m.to_json();
    match Manifest::parse(Path::new("fuzz/Manifest.json"), text.as_bytes()) {
        Ok(again) => assert_eq!(again, m, "manifest changed through to_json"),
        Err(e) => panic!("re-parsing our own manifest failed: {e}\n{text}"),
    }
    true
}

/// The `.mlmodel` (protobuf `Model`) decoder, the blob-reference walker, and re-encoding.
pub fn mlmodel(data: &[u8]) -> bool {
    let path = Path::new("fuzz/model.mlmodel");
    let Ok(model) = anekit_format::decode_model(path, data) else {
        return false;
    };
    let refs = blob_references(&model);
    let bytes = anekit_format::encode_model(&model);
    match anekit_format::decode_model(path, &bytes) {
        // NaN floats make `==` on models unusable; compare what does not involve floats.
        Ok(again) => {
            assert_eq!(again.specification_version, model.specification_version);
            assert_eq!(blob_references(&again).len(), refs.len());
        }
        Err(e) => panic!("re-decoding our own encoding failed: {e}"),
    }
    true
}

/// A NeuralNetwork `.mlmodel` translated into MIL (`anekit_mil::frontend::neuralnetwork`):
/// accepted when it translates, in which case the program must validate.
pub fn neuralnetwork(data: &[u8]) -> bool {
    let path = Path::new("fuzz/model.mlmodel");
    let Ok(spec) = anekit_format::decode_model(path, data) else {
        return false;
    };
    let Ok(model) = anekit_mil::model::Model::from_spec(
        spec,
        std::sync::Arc::new(anekit_format::WeightStore::none()),
    ) else {
        return false;
    };
    match &model.program {
        Some(p) if model.is_translated() => {
            if let Err(d) = anekit_mil::validate::validate(p) {
                panic!("a translated NeuralNetwork does not validate: {}", d[0]);
            }
            true
        }
        _ => false,
    }
}

/// A whole package on disk: the input is split at [`SEPARATOR`] into `Manifest.json`,
/// `Data/com.apple.CoreML/model.mlmodel` and `Data/com.apple.CoreML/weights/weight.bin`
/// (missing parts are missing files), opened with [`ModelAsset::open`], and every blob
/// reference resolved. Accepted if it opens and every reference resolves.
pub fn mlpackage(data: &[u8]) -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let root = dir.path().join("f.mlpackage");
    let model_dir = root.join("Data/com.apple.CoreML");
    let files = [
        root.join("Manifest.json"),
        model_dir.join("model.mlmodel"),
        model_dir.join("weights/weight.bin"),
    ];
    if std::fs::create_dir_all(model_dir.join("weights")).is_err() {
        return false;
    }
    for (part, path) in split(data).zip(&files) {
        if std::fs::write(path, part).is_err() {
            return false;
        }
    }
    open_and_resolve(&root)
}

/// A compiled model's `metadata.json` and `coremldata.bin` (the input split at
/// [`SEPARATOR`]), parsed in memory. Accepted if the metadata parses and the embedded
/// model description is found.
pub fn mlmodelc(data: &[u8]) -> bool {
    let mut parts = split(data);
    let metadata_ok = parts
        .next()
        .is_some_and(|md| CompiledMetadata::parse(Path::new("fuzz/metadata.json"), md).is_ok());
    let description_ok = parts.next().is_some_and(|cd| {
        let parsed = CoreMlData::parse(Bytes::copy_from_slice(cd));
        assert_eq!(parsed.raw.as_ref(), cd);
        parsed.description.is_some()
    });
    metadata_ok && description_ok
}

/// The MIL text parser (`model.mil`). The input is the text, optionally followed by
/// [`SEPARATOR`] and a weight file that its BLOBFILE references resolve against. Accepted if
/// the text parses; whatever parses must print and parse back to the same program in both
/// dialects.
pub fn mil_text(data: &[u8]) -> bool {
    use anekit_mil::text::{self, Dialect, PrintOptions};
    let mut parts = split(data);
    let Some(Ok(source)) = parts.next().map(std::str::from_utf8) else {
        return false;
    };
    let weights = mil_weights(parts.next());
    let Ok(program) = text::parse(source, "fuzz/model.mil", &weights) else {
        return false;
    };
    for dialect in [Dialect::Legacy, Dialect::Modern] {
        let options = PrintOptions {
            dialect: Some(dialect),
            extensions: true,
        };
        let printed = text::print_with(&program, &options);
        match text::parse(&printed, "fuzz/printed.mil", &weights) {
            Ok(again) => assert!(
                again == program,
                "program changed through print ({dialect:?}):\n{printed}"
            ),
            Err(e) => panic!("re-parsing our own text failed: {e}\n{printed}"),
        }
    }
    true
}

fn mil_weights(file: Option<&[u8]>) -> MilWeights {
    MilWeights(file.and_then(|w| {
        BlobFile::from_bytes("fuzz/weights/weight.bin", Bytes::copy_from_slice(w)).ok()
    }))
}

/// The program of a MIL-text input (text, optionally [`SEPARATOR`] and a weight file).
pub fn parse_mil(data: &[u8]) -> Option<anekit_mil::Program> {
    let mut parts = split(data);
    let source = std::str::from_utf8(parts.next()?).ok()?;
    anekit_mil::text::parse(source, "fuzz/model.mil", &mil_weights(parts.next())).ok()
}

/// The program of MIL `text` whose blob references resolve in the weight file `weights`.
pub fn parse_mil_with(text: &str, weights: &[u8]) -> Option<anekit_mil::Program> {
    anekit_mil::text::parse(text, "fuzz/model.mil", &mil_weights(Some(weights))).ok()
}

/// The weight file of a [`mil_text`] input, whatever name a reference uses.
struct MilWeights(Option<BlobFile>);

impl BlobSource for MilWeights {
    fn blob(&self, _file: &str, offset: u64) -> anekit_format::Result<anekit_format::Blob> {
        match &self.0 {
            Some(f) => f.blob(offset),
            None => Err(anekit_format::FormatError::invalid(
                "fuzz/weights/weight.bin",
                "weights",
                "the input has no weight file",
            )),
        }
    }
}

fn open_and_resolve(path: &Path) -> bool {
    let Ok(asset) = ModelAsset::open(path) else {
        return false;
    };
    let mut accepted = true;
    if let Some(spec) = &asset.spec {
        for r in blob_references(spec).iter().take(MAX_LOOKUPS) {
            match asset.weights.blob(&r.file_name, r.offset) {
                Ok(blob) => check_blob(&blob),
                Err(_) => accepted = false,
            }
        }
    }
    accepted
}

/// The parts of `data` between separators.
pub fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match find(r, SEPARATOR) {
            Some(i) => {
                rest = r.get(i + SEPARATOR.len()..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Join parts with [`SEPARATOR`] (the inverse of [`split`]; used to build seeds).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(SEPARATOR)
}

/// The MLIR bytecode reader and writer (`.aimodel`'s `main.mlirb`), and everything built
/// on the op tree: a module that reads must write, read back to the same op tree and write
/// the same bytes again; its `aicode` attributes, types and properties are decoded and the
/// module printed as text; it is translated to MIL (answering with a translation or an
/// error). Accepted: the module reads.
pub fn mlir_bytecode(data: &[u8]) -> bool {
    let Ok(m) = anekit_mlir::read(Bytes::copy_from_slice(data)) else {
        return false;
    };
    let written = match anekit_mlir::write(&m) {
        Ok(w) => w,
        Err(e) => panic!("a module that reads must write: {e}"),
    };
    let again = match anekit_mlir::read(Bytes::from(written.clone())) {
        Ok(a) => a,
        Err(e) => panic!("written bytecode must read: {e}"),
    };
    assert!(again.ir == m.ir, "the op tree changed in a round trip");
    assert!(
        anekit_mlir::write(&again).ok().as_deref() == Some(&written[..]),
        "second write differs"
    );
    let text = anekit_coreai::text::print(&m);
    assert!(text.starts_with("module {"));
    let _ = anekit_coreai::model::graphs(&m);
    if let Ok(re) = anekit_coreai::reencode::reencode(&m, "fuzz") {
        // What re-encodes prints the same and writes.
        assert_eq!(
            anekit_coreai::text::print(&re),
            text,
            "re-encoding changed the text"
        );
        let _ = anekit_mlir::write(&re);
    }
    let _ = anekit_coreai::to_mil::translate(&m, anekit_coreai::to_mil::Options::default());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join() {
        let parts: [&[u8]; 3] = [b"a", b"", b"ccc"];
        let joined = join(&parts);
        assert_eq!(split(&joined).collect::<Vec<_>>(), parts);
        assert_eq!(split(b"").collect::<Vec<_>>(), vec![b"" as &[u8]]);
    }
}
