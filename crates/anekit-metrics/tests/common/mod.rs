//! Helpers for the fixture-tree tests (see fixtures/README.md).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anekit_metrics::{Collector, Snapshot, Timestamp};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A writable copy of a fixture tree.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new(name: &str) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(name), dir.path());
        let t = Tree { dir };
        t.step(0);
        t
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Installs every `X.<n>` as `X`.
    pub fn step(&self, n: u32) {
        fn walk(dir: &Path, n: u32) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    walk(&p, n);
                } else if p.extension().and_then(|x| x.to_str()) == Some(&n.to_string()) {
                    std::fs::copy(&p, p.with_extension("")).unwrap();
                }
            }
        }
        walk(self.dir.path(), n);
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

/// Samples `steps` times, 1 s apart on constructed instants, installing step files first.
pub fn run(tree: &Tree, collector: &mut Collector, steps: u32) -> Vec<Snapshot> {
    let t0 = Instant::now();
    (0..steps)
        .map(|i| {
            tree.step(i);
            let at = t0 + Duration::from_secs(u64::from(i));
            collector.sample_at(
                at,
                Timestamp {
                    mono_s: f64::from(i),
                    unix_s: 1_764_090_000.0 + f64::from(i),
                },
            )
        })
        .collect()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}
