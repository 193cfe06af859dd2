//! The structure-aware mutator of the `model` target: it turns every seed into programs that
//! still parse (it mutates the program, not bytes), and every mutant goes through the target
//! without a panic — a few thousand runs of the fuzz loop in `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

#[test]
fn mutants_parse_and_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/model");
    let rounds: u64 = std::env::var("ANEKIT_MUTATE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let (mut mutants, mut parsed, mut accepted) = (0, 0, 0);
    for f in std::fs::read_dir(&dir).unwrap() {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-valid-") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        for seed in 0..rounds {
            let Some(m) = anekit_fuzz::model::mutate(&data, seed) else {
                panic!("{name}: a valid seed does not parse");
            };
            mutants += 1;
            parsed += usize::from(anekit_fuzz::parse_mil(&m).is_some());
            let r = std::panic::catch_unwind(|| anekit_fuzz::model::model(&m));
            match r {
                Ok(ok) => accepted += usize::from(ok),
                Err(_) => {
                    let dump = std::env::temp_dir().join(format!("model-crash-{name}-{seed}"));
                    std::fs::write(&dump, &m).unwrap();
                    panic!(
                        "{name} mutant {seed} panics (written to {})",
                        dump.display()
                    );
                }
            }
        }
    }
    println!("{mutants} mutants, {parsed} parse again, {accepted} accepted");
    assert!(mutants >= 100, "{mutants} mutants");
    // Structure-aware: most mutants are programs, not noise.
    assert!(parsed * 10 >= mutants * 9, "{parsed} of {mutants} parse");
}
