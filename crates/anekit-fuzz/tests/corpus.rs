//! Replays every file of `fuzz/corpus/<target>/` through its entry function: the seeds
//! and every crasher the fuzzer ever found must keep passing without a panic. Seeds named
//! `seed-valid-*` (cut from coremltools-written fixtures) must be accepted, every other
//! `seed-*` (one per malformed case) refused. A target without corpus files fails the test.

use std::path::Path;

#[test]
fn corpus_replays() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut total = 0;
    for (name, entry) in anekit_fuzz::TARGETS {
        let dir = corpus.join(name);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        assert!(!files.is_empty(), "no corpus files in {}", dir.display());
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| entry(&data));
            let Ok(accepted) = r else {
                panic!("{name}: {} panics", f.display());
            };
            let file = f.file_name().unwrap().to_string_lossy();
            if file.starts_with("seed-valid-") {
                assert!(accepted, "{name}: valid seed {file} refused");
            } else if file.starts_with("seed-") {
                assert!(!accepted, "{name}: malformed seed {file} accepted");
            }
        }
        println!("{name}: {} files", files.len());
        total += files.len();
    }
    assert!(total > 0);
}
