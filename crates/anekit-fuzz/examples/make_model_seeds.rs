//! Writes the seeds of the `model` fuzz target into `fuzz/corpus/model/`: one MIL program
//! per op type of the test kit's cases (one-op programs with inline literals, written by
//! the same code that runs them on every backend), the program cases (control flow, lists),
//! and the ML Program fixtures with weight files under 64 KiB (text, separator, weight.bin).
//! A seed the target accepts is named `seed-valid-*`, any other `input-*`.
//!
//! ```sh
//! cargo run -p anekit-fuzz --example make_model_seeds
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use anekit_runtime::BackendKind;
use anekit_testkit::{Manifest, Suite};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/model");
    std::fs::create_dir_all(&out)?;
    let mut written = 0;
    let mut valid = 0;
    let mut write = |name: &str, data: Vec<u8>| -> std::io::Result<()> {
        let ok = anekit_fuzz::model::model(&data);
        let prefix = if ok { "seed-valid" } else { "input" };
        std::fs::write(out.join(format!("{prefix}-{name}")), data)?;
        written += 1;
        valid += usize::from(ok);
        Ok(())
    };
    let mut seen = BTreeSet::new();
    for suite in Suite::kernel_suites()? {
        for case in &suite.file.cases {
            let key = case.op.clone().unwrap_or_else(|| case.name.clone());
            if case.error.is_some() || !seen.insert(key.clone()) {
                continue;
            }
            let Ok(cm) = case.model(&suite.file, BackendKind::Cpu) else {
                continue;
            };
            let Some(program) = cm.model.program.as_ref() else {
                continue;
            };
            let text = anekit_mil::text::print(program);
            if text.len() > 64 * 1024 {
                continue;
            }
            write(&format!("case-{key}"), text.into_bytes())?;
        }
    }
    let manifest = Manifest::load()?;
    for f in manifest.fixtures.iter().filter(|f| f.is_ml_program()) {
        let dir = manifest.resolve(&f.path);
        let weights = dir.join("Data/com.apple.CoreML/weights/weight.bin");
        let w = std::fs::read(&weights).unwrap_or_default();
        if w.len() > 64 * 1024 {
            continue;
        }
        let Ok(model) = anekit_mil::model::Model::open(&dir) else {
            continue;
        };
        let Some(program) = model.program.as_ref() else {
            continue;
        };
        let mut data = anekit_mil::text::print(program).into_bytes();
        if !w.is_empty() {
            data.extend_from_slice(anekit_fuzz::SEPARATOR);
            data.extend_from_slice(&w);
        }
        write(&format!("fixture-{}", f.name), data)?;
    }
    println!("{written} seeds, {valid} accepted, in {}", out.display());
    Ok(())
}
