//! `PackageWriter`: what it writes reads back, its Manifest has coremltools' exact shape,
//! and replacing or abandoning a package never loses the user's files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a test failure

mod common;

use std::fs;

use anekit_format::package::{Manifest, check_output_path, same_path};
use anekit_format::{AssetKind, BlobSource, ModelAsset, PackageWriter, blob_references};
use common::{WEIGHT_REF, layout, payloads, program_model, write_package};

/// Entries of a folder whose names start with `.` (temporary or moved-aside packages).
fn hidden_entries(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("m.mlpackage");
    let offsets = write_package(&pkg);
    // coremltools' first blob metadata is at 64 (research §3.1); each 16-byte payload then
    // pads to the next 64-byte boundary.
    assert_eq!(offsets, vec![64, 192, 320]);

    let asset = ModelAsset::open(&pkg).unwrap();
    assert_eq!(asset.kind, AssetKind::Package);
    assert_eq!(asset.spec.as_ref(), Some(&program_model(&offsets)));
    assert_eq!(
        asset.spec_path.as_deref(),
        Some(layout(&pkg).model.as_path())
    );
    assert_eq!(
        asset.weights_dir.as_deref(),
        Some(pkg.join("Data/com.apple.CoreML/weights").as_path())
    );
    assert_eq!(
        asset.weights.model_dir(),
        Some(pkg.join("Data/com.apple.CoreML").as_path())
    );
    let refs = blob_references(asset.spec.as_ref().unwrap());
    assert_eq!(refs.len(), 3);
    for (r, payload) in refs.iter().zip(payloads()) {
        assert_eq!(r.file_name, WEIGHT_REF);
        let blob = asset.weights.blob(&r.file_name, r.offset).unwrap();
        assert_eq!(blob.data.as_ref(), payload.as_slice());
        assert_eq!(blob.element_count(), 8);
    }
    assert!(
        refs[1].location.contains("op 1 (const)"),
        "{}",
        refs[1].location
    );
    assert!(
        hidden_entries(dir.path()).is_empty(),
        "temporary folder left behind"
    );
}

#[test]
fn manifest_has_coremltools_shape() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("m.mlpackage");
    write_package(&pkg);
    let text = fs::read_to_string(layout(&pkg).manifest).unwrap();
    // coremltools 9.0 writes a 617-byte Manifest for a model with weights (research §2.1,
    // and every fixture package): same keys, 4-space indentation, 36-char UUIDs.
    assert_eq!(text.len(), 617, "{text}");
    let m = Manifest::parse(&layout(&pkg).manifest, text.as_bytes()).unwrap();
    assert_eq!(m.file_format_version, "1.0.0");
    assert_eq!(m.item_info_entries.len(), 2);
    for id in m.item_info_entries.keys() {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is not a UUID");
        assert_eq!(id.to_lowercase(), *id);
    }
    let root = m.root_item().unwrap();
    assert_eq!(root.path, "com.apple.CoreML/model.mlmodel");
    assert_eq!(root.description, "CoreML Model Specification");
    let w = m.weights_item().unwrap();
    assert_eq!(
        (w.name.as_str(), w.author.as_str(), w.path.as_str()),
        ("weights", "com.apple.CoreML", "com.apple.CoreML/weights")
    );
    assert_eq!(m.to_json(), text);
    assert!(text.starts_with("{\n    \"fileFormatVersion\": \"1.0.0\",\n"));
    assert!(text.ends_with("}\n"));
}

#[test]
fn manifest_matches_fixture_byte_for_byte() {
    // Every coremltools-written fixture manifest, with its UUIDs swapped for ours, must be
    // exactly what we write.
    let models = common::fixtures_dir().join("models");
    let Ok(entries) = fs::read_dir(&models) else {
        panic!("fixtures missing at {}", models.display());
    };
    let mut checked = 0;
    for e in entries {
        let pkg = e.unwrap().path();
        if pkg.extension().is_none_or(|x| x != "mlpackage") {
            continue;
        }
        let theirs = fs::read_to_string(pkg.join("Manifest.json")).unwrap();
        let parsed = Manifest::parse(&pkg.join("Manifest.json"), theirs.as_bytes()).unwrap();
        let mut ours = Manifest::coremltools(parsed.weights_item().is_some());
        // Give ours their identifiers (same item in same role).
        let their_weights = parsed
            .item_info_entries
            .iter()
            .find(|(id, _)| **id != parsed.root_model_identifier)
            .map(|(id, _)| id.clone());
        let our_weights = ours
            .item_info_entries
            .iter()
            .find(|(id, _)| **id != ours.root_model_identifier)
            .map(|(id, i)| (id.clone(), i.clone()));
        let root = ours
            .item_info_entries
            .remove(&ours.root_model_identifier)
            .unwrap();
        ours.item_info_entries.clear();
        ours.item_info_entries
            .insert(parsed.root_model_identifier.clone(), root);
        if let (Some(id), Some((_, item))) = (their_weights, our_weights) {
            ours.item_info_entries.insert(id, item);
        }
        ours.root_model_identifier = parsed.root_model_identifier.clone();
        assert_eq!(ours.to_json(), theirs, "{}", pkg.display());
        checked += 1;
    }
    assert!(checked > 0, "no fixture packages in {}", models.display());
}

#[test]
fn replaces_existing_package() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("m.mlpackage");
    write_package(&pkg);
    fs::write(pkg.join("Data/stale.txt"), "old").unwrap();
    let first = fs::read_to_string(layout(&pkg).manifest).unwrap();
    write_package(&pkg);
    let second = fs::read_to_string(layout(&pkg).manifest).unwrap();
    assert_ne!(first, second, "new UUIDs expected");
    assert!(
        !pkg.join("Data/stale.txt").exists(),
        "old package content kept"
    );
    assert!(
        hidden_entries(dir.path()).is_empty(),
        "aside/temporary folder left behind"
    );
    ModelAsset::open(&pkg).unwrap();
}

#[test]
fn refuses_to_replace_what_is_not_a_package() {
    let dir = tempfile::tempdir().unwrap();
    // A file, and a folder of someone's work, at the destination: both kept, nothing written.
    let file = dir.path().join("m.mlpackage");
    fs::write(&file, "not a package").unwrap();
    let err = PackageWriter::create(&file).unwrap_err().to_string();
    assert!(err.contains("not a model package"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a package");
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    fs::write(work.join("thesis.tex"), "years of work").unwrap();
    assert!(PackageWriter::create(&work).is_err());
    assert!(work.join("thesis.tex").exists());
    // Someone puts a file there while we write: finish refuses too and keeps it.
    let later = dir.path().join("later.mlpackage");
    let w = PackageWriter::create(&later).unwrap();
    fs::write(&later, "appeared meanwhile").unwrap();
    assert!(w.finish(&program_model(&[])).is_err());
    assert_eq!(fs::read_to_string(&later).unwrap(), "appeared meanwhile");
    assert!(hidden_entries(dir.path()).is_empty());
    // An empty folder may be replaced.
    let empty = dir.path().join("empty.mlpackage");
    fs::create_dir(&empty).unwrap();
    write_package(&empty);
    ModelAsset::open(&empty).unwrap();
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("m.mlpackage");
    write_package(&pkg);
    let before = fs::read(layout(&pkg).manifest).unwrap();
    {
        let w = PackageWriter::create(&pkg).unwrap();
        fs::write(w.weight_file_path(), b"partial").unwrap();
        assert!(w.temp_dir().exists());
        assert_eq!(hidden_entries(dir.path()).len(), 1);
        // dropped without finish: e.g. an error while converting
    }
    assert!(
        hidden_entries(dir.path()).is_empty(),
        "temporary folder kept"
    );
    assert_eq!(
        fs::read(layout(&pkg).manifest).unwrap(),
        before,
        "existing package touched"
    );
}

#[test]
fn model_without_weights_has_no_weights_item() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("nn.mlpackage");
    let model = anekit_format::proto::Model {
        specification_version: 4,
        ..Default::default()
    };
    PackageWriter::create(&pkg).unwrap().finish(&model).unwrap();
    let asset = ModelAsset::open(&pkg).unwrap();
    let m = asset.manifest.as_ref().unwrap();
    assert_eq!(m.item_info_entries.len(), 1);
    assert!(asset.weights_dir.is_none());
    assert!(!pkg.join("Data/com.apple.CoreML/weights").exists());
    assert_eq!(asset.spec.unwrap().specification_version, 4);
}

#[test]
fn output_must_not_be_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("m.mlpackage");
    write_package(&pkg);
    assert!(same_path(&pkg, &dir.path().join("./m.mlpackage")));
    assert!(!same_path(&pkg, &dir.path().join("other.mlpackage")));
    assert!(check_output_path(&pkg, &pkg).is_err());
    fs::create_dir(dir.path().join("sub")).unwrap();
    assert!(check_output_path(&dir.path().join("sub/../m.mlpackage"), &pkg).is_err());
    // Replacing the folder that holds the input would delete the input too.
    assert!(check_output_path(dir.path(), &pkg).is_err());
    // Writing inside the input package is refused as well.
    assert!(check_output_path(&pkg.join("Data/new.mlpackage"), &pkg).is_err());
    let err = check_output_path(&pkg, &pkg).unwrap_err().to_string();
    assert!(
        err.contains("m.mlpackage") && err.contains("output path"),
        "{err}"
    );
    assert!(check_output_path(&dir.path().join("other.mlpackage"), &pkg).is_ok());
    #[cfg(unix)]
    {
        let link = dir.path().join("link.mlpackage");
        std::os::unix::fs::symlink(&pkg, &link).unwrap();
        assert!(check_output_path(&link, &pkg).is_err());
    }
}
