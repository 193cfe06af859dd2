//! One test per malformed input: each must give an error that names the file and the
//! field, never a panic. Packages are written by the crate's own writer, then damaged.
//!
//! The rules come from coremltools' `ModelPackage.cpp` (version, item keys, item existence,
//! root identifier), its MILBlob `StorageReader.cpp` (version 2, sentinel 0xDEADBEEF,
//! offsets inside the file), protobuf's 2 GiB limit, and our own path-safety rules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::fs;
use std::path::Path;

use anekit_format::{BlobSource, FormatError, ModelAsset};
use common::{WEIGHT_REF, layout, write_package};
use serde_json::Value;

/// A fresh, valid package in a temp dir; returns (tempdir, package path, blob offsets).
fn package() -> (tempfile::TempDir, std::path::PathBuf, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("m.mlpackage");
    let offsets = write_package(&pkg);
    (dir, pkg, offsets)
}

/// Assert that `err`'s message names `file` (a path suffix) and `field`.
fn assert_names(err: &FormatError, file: &str, field: &str) {
    let msg = err.to_string();
    assert!(msg.contains(file), "error should name file {file}: {msg}");
    assert!(
        msg.contains(field),
        "error should name field {field}: {msg}"
    );
}

fn open_err(pkg: &Path) -> FormatError {
    match ModelAsset::open(pkg) {
        Ok(_) => panic!("{} should not open", pkg.display()),
        Err(e) => e,
    }
}

/// Open the package and resolve the blob at `offset`: the error.
fn blob_err(pkg: &Path, offset: u64) -> FormatError {
    let asset = ModelAsset::open(pkg).unwrap();
    match asset.weights.blob(WEIGHT_REF, offset) {
        Ok(b) => panic!("blob at {offset} should not resolve: {b:?}"),
        Err(e) => e,
    }
}

fn edit_manifest(pkg: &Path, f: impl FnOnce(&mut Value)) {
    let path = layout(pkg).manifest;
    let mut v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn root_id(pkg: &Path) -> String {
    let v: Value = serde_json::from_slice(&fs::read(layout(pkg).manifest).unwrap()).unwrap();
    v["rootModelIdentifier"].as_str().unwrap().to_string()
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, b).unwrap();
}

#[test]
fn valid_package_opens() {
    // The baseline every damaged case starts from must itself be fine.
    let (_d, pkg, offsets) = package();
    let asset = ModelAsset::open(&pkg).unwrap();
    for o in offsets {
        asset.weights.blob(WEIGHT_REF, o).unwrap();
    }
}

#[test]
fn truncated_protobuf() {
    let (_d, pkg, _) = package();
    let model = layout(&pkg).model;
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() - 3]).unwrap();
    let err = open_err(&pkg);
    assert!(matches!(err, FormatError::Protobuf { .. }), "{err:?}");
    assert_names(&err, "model.mlmodel", "Model");
}

#[test]
fn truncated_protobuf_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mlmodel");
    let bytes = anekit_format::encode_model(&common::program_model(&[64]));
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = open_err(&path);
    assert!(matches!(err, FormatError::Protobuf { .. }), "{err:?}");
    assert_names(&err, "m.mlmodel", "CoreML.Specification.Model");
}

#[test]
fn blob_offset_past_end() {
    let (_d, pkg, _) = package();
    let len = fs::metadata(layout(&pkg).weights).unwrap().len();
    let err = blob_err(&pkg, len + 64);
    assert_names(&err, "weight.bin", &format!("blob_metadata@{}", len + 64));
    let err = blob_err(&pkg, u64::MAX - 10);
    assert_names(&err, "weight.bin", "blob_metadata@");
}

#[test]
fn blob_payload_offset_past_end() {
    let (_d, pkg, offsets) = package();
    let w = layout(&pkg).weights;
    // metadata.offset (at +16) pointing far past the end of the file.
    patch(&w, offsets[0] as usize + 16, &(1u64 << 40).to_le_bytes());
    let err = blob_err(&pkg, offsets[0]);
    assert_names(
        &err,
        "weight.bin",
        &format!("blob_metadata@{}.offset", offsets[0]),
    );
}

#[test]
fn blob_size_past_end() {
    let (_d, pkg, offsets) = package();
    let w = layout(&pkg).weights;
    // A huge claimed sizeInBytes (at +8): must be refused, not allocated or read.
    patch(&w, offsets[1] as usize + 8, &(u64::MAX - 1).to_le_bytes());
    let err = blob_err(&pkg, offsets[1]);
    assert_names(
        &err,
        "weight.bin",
        &format!("blob_metadata@{}.sizeInBytes", offsets[1]),
    );
    // One byte more than the file holds.
    let len = fs::metadata(&w).unwrap().len();
    patch(
        &w,
        offsets[1] as usize + 8,
        &(len - (offsets[1] + 64) + 1).to_le_bytes(),
    );
    let err = blob_err(&pkg, offsets[1]);
    assert_names(&err, "weight.bin", "sizeInBytes");
}

#[test]
fn wrong_sentinel() {
    let (_d, pkg, offsets) = package();
    patch(
        &layout(&pkg).weights,
        offsets[2] as usize,
        &0xCAFE_BABEu32.to_le_bytes(),
    );
    let err = blob_err(&pkg, offsets[2]);
    assert_names(
        &err,
        "weight.bin",
        &format!("blob_metadata@{}.sentinel", offsets[2]),
    );
    // A reference into the middle of a payload finds no sentinel either.
    let err = blob_err(&pkg, offsets[0] + 64);
    assert_names(&err, "weight.bin", "sentinel");
}

#[test]
fn unsupported_blob_version() {
    let (_d, pkg, offsets) = package();
    patch(&layout(&pkg).weights, 4, &1u32.to_le_bytes());
    let err = blob_err(&pkg, offsets[0]);
    assert_names(&err, "weight.bin", "storage_header.version");
}

#[test]
fn huge_blob_count() {
    let (_d, pkg, offsets) = package();
    patch(&layout(&pkg).weights, 0, &u32::MAX.to_le_bytes());
    let err = blob_err(&pkg, offsets[0]);
    assert_names(&err, "weight.bin", "storage_header.count");
}

#[test]
fn truncated_weight_file() {
    let (_d, pkg, offsets) = package();
    let w = layout(&pkg).weights;
    fs::write(&w, &fs::read(&w).unwrap()[..40]).unwrap();
    let err = blob_err(&pkg, offsets[0]);
    assert_names(&err, "weight.bin", "storage_header");
}

#[test]
fn manifest_item_with_parent_dir() {
    let (_d, pkg, _) = package();
    let id = root_id(&pkg);
    edit_manifest(&pkg, |v| {
        v["itemInfoEntries"][&id]["path"] = "com.apple.CoreML/../../../etc/passwd".into();
    });
    let err = open_err(&pkg);
    assert_names(
        &err,
        "Manifest.json",
        &format!("itemInfoEntries[{id:?}].path"),
    );
    assert!(err.to_string().contains(".."), "{err}");
}

#[test]
fn manifest_item_absolute() {
    let (_d, pkg, _) = package();
    let id = root_id(&pkg);
    let model = layout(&pkg).model;
    edit_manifest(&pkg, |v| {
        // An absolute path to a file that exists and is a valid model: still refused.
        v["itemInfoEntries"][&id]["path"] = model.to_str().unwrap().into();
    });
    let err = open_err(&pkg);
    assert_names(
        &err,
        "Manifest.json",
        &format!("itemInfoEntries[{id:?}].path"),
    );
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[cfg(unix)]
#[test]
fn manifest_item_symlink_leaving_package() {
    let (d, pkg, _) = package();
    let l = layout(&pkg);
    // A valid model file outside the package, reached through a symlink inside it.
    let outside = d.path().join("outside.mlmodel");
    fs::rename(&l.model, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &l.model).unwrap();
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "itemInfoEntries[");
    assert!(err.to_string().contains("outside the package"), "{err}");
}

#[cfg(unix)]
#[test]
fn symlink_inside_package_is_allowed() {
    let (_d, pkg, offsets) = package();
    let l = layout(&pkg);
    let moved = pkg.join("Data/elsewhere.bin");
    fs::rename(&l.weights, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &l.weights).unwrap();
    let asset = ModelAsset::open(&pkg).unwrap();
    assert!(asset.weights.blob(WEIGHT_REF, offsets[0]).is_ok());
}

#[cfg(unix)]
#[test]
fn weight_file_symlink_leaving_package() {
    let (d, pkg, offsets) = package();
    let l = layout(&pkg);
    let outside = d.path().join("weight.bin");
    fs::rename(&l.weights, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &l.weights).unwrap();
    let err = blob_err(&pkg, offsets[0]);
    assert_names(&err, "weight.bin", "BlobFileValue.fileName");
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn weight_reference_with_parent_dir() {
    let (_d, pkg, _) = package();
    let asset = ModelAsset::open(&pkg).unwrap();
    let err = asset
        .weights
        .blob("@model_path/../../weights/weight.bin", 64)
        .unwrap_err();
    assert_names(&err, "com.apple.CoreML", "BlobFileValue.fileName");
    let err = asset.weights.blob("/etc/passwd", 64).unwrap_err();
    assert_names(&err, "com.apple.CoreML", "BlobFileValue.fileName");
}

/// A missing weights folder (version control drops empty folders) opens; reading a blob
/// from it then fails and names the weight file.
#[test]
fn missing_item() {
    let (_d, pkg, _) = package();
    fs::remove_dir_all(pkg.join("Data/com.apple.CoreML/weights")).unwrap();
    let asset = ModelAsset::open(&pkg).unwrap();
    let err = asset
        .weights
        .blob("@model_path/weights/weight.bin", 64)
        .unwrap_err();
    assert!(err.to_string().contains("weight.bin"), "{err}");
}

/// A manifest item that is a dangling symlink is still refused.
#[cfg(unix)]
#[test]
fn dangling_symlink_item() {
    let (_d, pkg, _) = package();
    let w = pkg.join("Data/com.apple.CoreML/weights");
    fs::remove_dir_all(&w).unwrap();
    std::os::unix::fs::symlink(pkg.join("Data/no-such-folder"), &w).unwrap();
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "itemInfoEntries[");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn missing_root_model_identifier_target() {
    let (_d, pkg, _) = package();
    edit_manifest(&pkg, |v| v["rootModelIdentifier"] = "no-such-id".into());
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "rootModelIdentifier");
}

#[test]
fn missing_manifest_keys() {
    for key in [
        "fileFormatVersion",
        "itemInfoEntries",
        "rootModelIdentifier",
    ] {
        let (_d, pkg, _) = package();
        edit_manifest(&pkg, |v| {
            v.as_object_mut().unwrap().remove(key);
        });
        let err = open_err(&pkg);
        assert_names(&err, "Manifest.json", key);
    }
    for key in ["path", "name", "author", "description"] {
        let (_d, pkg, _) = package();
        let id = root_id(&pkg);
        edit_manifest(&pkg, |v| {
            v["itemInfoEntries"][&id]
                .as_object_mut()
                .unwrap()
                .remove(key);
        });
        let err = open_err(&pkg);
        assert_names(
            &err,
            "Manifest.json",
            &format!("itemInfoEntries[{id:?}].{key}"),
        );
    }
}

#[test]
fn manifest_version_too_new() {
    // ModelPackage.cpp: newer than 1.0.0 is "Unsupported version"; anything but three
    // non-negative numbers is refused too.
    for version in [
        "1.0.1", "1.1.0", "2.0.0", "1.0", "1.0.0.0", "-1.0.0", "x.y.z",
    ] {
        let (_d, pkg, _) = package();
        edit_manifest(&pkg, |v| v["fileFormatVersion"] = version.into());
        let err = open_err(&pkg);
        assert_names(&err, "Manifest.json", "fileFormatVersion");
    }
    let (_d, pkg, _) = package();
    edit_manifest(&pkg, |v| v["fileFormatVersion"] = "0.9.0".into());
    assert!(
        ModelAsset::open(&pkg).is_ok(),
        "older versions are accepted"
    );
}

#[test]
fn manifest_not_json() {
    let (_d, pkg, _) = package();
    fs::write(layout(&pkg).manifest, b"{\"fileFormatVersion\": ").unwrap();
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "json");
}

#[test]
fn manifest_too_large() {
    let (_d, pkg, _) = package();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(layout(&pkg).manifest)
        .unwrap();
    f.set_len(anekit_format::package::MAX_MANIFEST_SIZE + 1)
        .unwrap();
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "size");
}

#[test]
fn model_file_over_protobuf_limit() {
    // A sparse file just over 2 GiB: refused from its size, before anything is read.
    let (_d, pkg, _) = package();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(layout(&pkg).model)
        .unwrap();
    f.set_len(anekit_format::mlmodel::MAX_MODEL_FILE_SIZE + 1)
        .unwrap();
    let err = open_err(&pkg);
    assert_names(&err, "model.mlmodel", "size");
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn unknown_formats() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mlpackage");
    fs::create_dir(&empty).unwrap();
    assert!(matches!(
        open_err(&empty),
        FormatError::UnknownFormat { .. }
    ));
    let text = dir.path().join("notes.txt");
    fs::write(&text, "hello, this is not a model").unwrap();
    assert!(matches!(open_err(&text), FormatError::UnknownFormat { .. }));
    let zip = dir.path().join("model.zip");
    fs::write(&zip, b"PK\x03\x04 rest of a zip").unwrap();
    let err = open_err(&zip);
    assert!(err.to_string().contains("zip"), "{err}");
    let nothing = dir.path().join("empty.bin");
    fs::write(&nothing, b"").unwrap();
    assert!(matches!(
        open_err(&nothing),
        FormatError::UnknownFormat { .. }
    ));
}

#[test]
fn compiled_model_symlink_leaving_folder() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("m.mlmodelc");
    fs::create_dir(&c).unwrap();
    let outside = dir.path().join("secret.mil");
    fs::write(&outside, "program(1.0)\n{}\n").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, c.join("model.mil")).unwrap();
        let err = open_err(&c);
        assert_names(&err, "model.mil", "model.mil");
        assert!(err.to_string().contains("outside"), "{err}");
    }
}

#[test]
fn compiled_metadata_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("m.mlmodelc");
    fs::create_dir(&c).unwrap();
    fs::write(c.join("model.mil"), "program(1.0)\n{}\n").unwrap();
    fs::write(c.join("metadata.json"), "[]").unwrap();
    assert_names(&open_err(&c), "metadata.json", "[0]");
    fs::write(c.join("metadata.json"), "[{\"specificationVersion\": ").unwrap();
    assert_names(&open_err(&c), "metadata.json", "json");
    // Wrong types in known keys read as absent (lenient), unknown keys are kept.
    fs::write(
        c.join("metadata.json"),
        r#"[{"specificationVersion": "seven", "availability": 3, "newKey": [1]}]"#,
    )
    .unwrap();
    let asset = ModelAsset::open(&c).unwrap();
    let md = asset.compiled_metadata.unwrap();
    assert_eq!(md.specification_version, None);
    assert!(md.availability.is_empty());
    assert_eq!(md.other["newKey"], serde_json::json!([1]));
    fs::write(c.join("model.mil"), [0xff, 0xfe, 0x00]).unwrap();
    assert_names(&open_err(&c), "model.mil", "text");
}

#[test]
fn empty_blob_then_more_blobs_enumerate() {
    // A zero-length payload (legal: coremltools can write an empty tensor) must not break
    // walking to the next record.
    let mut w = anekit_format::BlobWriter::new(std::io::Cursor::new(Vec::new())).unwrap();
    let a = w
        .append(anekit_format::BlobDataType::Float16, &[], 0)
        .unwrap();
    let b = w
        .append(anekit_format::BlobDataType::Float16, &[1, 2], 0)
        .unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let f = anekit_format::BlobFile::from_bytes("w.bin", bytes.into()).unwrap();
    let offsets: Vec<u64> = f.blobs().map(|b| b.unwrap().metadata_offset).collect();
    assert_eq!(offsets, vec![a, b]);
}

#[cfg(unix)]
#[test]
fn manifest_symlink_leaving_package() {
    let (d, pkg, _) = package();
    let l = layout(&pkg);
    let outside = d.path().join("Manifest.json");
    fs::rename(&l.manifest, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &l.manifest).unwrap();
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "outside the package");
}

#[cfg(unix)]
#[test]
fn special_files_are_not_opened() {
    // A FIFO in place of Manifest.json or weight.bin would block a reader that opens it.
    let (_d, pkg, offsets) = package();
    let l = layout(&pkg);
    let mkfifo = |p: &Path| {
        fs::remove_file(p).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    mkfifo(&l.weights);
    let err = blob_err(&pkg, offsets[0]);
    assert_names(&err, "weight.bin", "not a regular file");
    mkfifo(&l.manifest);
    let err = open_err(&pkg);
    assert_names(&err, "Manifest.json", "not a regular file");
}
