//! Resolution of `BlobFileValue` references (`@model_path/weights/weight.bin` + offset) to
//! blobs, with every weight file opened (mapped) once.
//!
//! `@model_path` stands for the folder that holds the root model file (Core ML's rule; the
//! Chromium WebNN writer relies on it). A reference must stay inside the model: absolute
//! paths, `..` components and symlinks that lead outside the model's folder are refused.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::blob::{Blob, BlobFile};
use crate::error::{FormatError, Result};

/// Something that can resolve a blob reference.
pub trait BlobSource {
    /// The blob whose metadata is at `offset` in the weight file named `file` (as written in
    /// the model, e.g. `@model_path/weights/weight.bin`).
    fn blob(&self, file: &str, offset: u64) -> Result<Blob>;
}

/// The weight files of one model, opened on first use and shared afterwards.
#[derive(Debug, Default)]
pub struct WeightStore {
    /// Folder that `@model_path` stands for; `None` for a model without a folder.
    model_dir: Option<PathBuf>,
    /// Folder that references may not leave (the package root).
    boundary: Option<PathBuf>,
    files: Mutex<HashMap<PathBuf, Arc<BlobFile>>>,
}

impl WeightStore {
    /// A store for a model whose root model file lies in `model_dir`; references may not
    /// leave `boundary` (the package or compiled-model folder).
    pub fn new(model_dir: impl Into<PathBuf>, boundary: impl Into<PathBuf>) -> Self {
        Self {
            model_dir: Some(model_dir.into()),
            boundary: Some(boundary.into()),
            files: Mutex::default(),
        }
    }

    /// A store that holds no files (a single `.mlmodel` file, or an in-memory program);
    /// every reference fails with an error naming it.
    pub fn none() -> Self {
        Self::default()
    }

    /// Add an already opened weight file under the path a reference resolves to.
    pub fn insert(&self, path: PathBuf, file: BlobFile) {
        if let Ok(mut files) = self.files.lock() {
            files.insert(path, Arc::new(file));
        }
    }

    /// The folder that `@model_path` stands for.
    pub fn model_dir(&self) -> Option<&Path> {
        self.model_dir.as_deref()
    }

    /// The checked file-system path of the weight file named `file`.
    pub fn resolve_path(&self, file: &str) -> Result<PathBuf> {
        let field = format!("BlobFileValue.fileName {file:?}");
        let (Some(dir), Some(boundary)) = (&self.model_dir, &self.boundary) else {
            return Err(FormatError::invalid(
                "<model>",
                field,
                "the model refers to a weight file but has no weights folder",
            ));
        };
        let rel = file.strip_prefix("@model_path/").unwrap_or(file);
        let rel_path = Path::new(rel);
        if rel.is_empty()
            || !rel_path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(FormatError::invalid(
                dir,
                field,
                "weight file path must be relative to @model_path and must not contain `..`",
            ));
        }
        let path = dir.join(rel_path);
        let real = path
            .canonicalize()
            .map_err(|e| FormatError::io(&path, "resolving weight file", e))?;
        let real_boundary = boundary
            .canonicalize()
            .map_err(|e| FormatError::io(boundary, "resolving model folder", e))?;
        if !real.starts_with(&real_boundary) {
            return Err(FormatError::invalid(
                &path,
                field,
                format!("resolves to {} outside the model folder", real.display()),
            ));
        }
        // Not a FIFO or device (opening one could block) and not a folder.
        if !real.is_file() {
            return Err(FormatError::invalid(
                &path,
                field,
                "weight file is not a regular file",
            ));
        }
        Ok(path)
    }

    /// The opened weight file named `file` (mapped on first use).
    pub fn file(&self, file: &str) -> Result<Arc<BlobFile>> {
        let path = self.resolve_path(file)?;
        let mut files = self.files.lock().map_err(|_| {
            FormatError::invalid(
                &path,
                "weights",
                "weight store lock poisoned by an earlier panic",
            )
        })?;
        if let Some(f) = files.get(&path) {
            return Ok(f.clone());
        }
        let f = Arc::new(BlobFile::open(&path)?);
        files.insert(path, f.clone());
        Ok(f)
    }
}

impl BlobSource for WeightStore {
    fn blob(&self, file: &str, offset: u64) -> Result<Blob> {
        self.file(file)?.blob(offset)
    }
}
