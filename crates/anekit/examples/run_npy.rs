//! Run a model on inputs from `.npy` files and write its outputs as `.npy` files.
//!
//! ```sh
//! cargo run -p anekit --example run_npy -- MODEL.mlpackage x=x.npy [OUT_DIR]
//! cargo run -p anekit --example run_npy            # the bundled model and its sample input
//! ```

use std::path::PathBuf;

use anekit::{LoadOptions, Model, NamedTensors, npy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, inputs, out_dir) = match args.split_first() {
        None => (
            Model::open(anekit::bundled::path()?)?,
            anekit::bundled::sample_inputs()?,
            None,
        ),
        Some((path, rest)) => {
            let mut inputs = NamedTensors::new();
            let mut out_dir = None;
            for a in rest {
                match a.split_once('=') {
                    Some((name, file)) => {
                        inputs.insert(name.to_string(), npy::read(file)?);
                    }
                    None => out_dir = Some(PathBuf::from(a)),
                }
            }
            (Model::open(path)?, inputs, out_dir)
        }
    };
    let loaded = model.load(&LoadOptions::default())?;
    println!(
        "backend: {} ({})",
        loaded.selection().backend,
        loaded.selection().reasons.join("; ")
    );
    // Inputs are cast to the model's element types (npy files are often float32/int64).
    let inputs: NamedTensors = inputs
        .into_iter()
        .map(|(name, t)| {
            let want = loaded
                .inputs()
                .iter()
                .find(|s| s.name == name)
                .map_or(t.dtype(), |s| s.dtype);
            (name, t.cast(want))
        })
        .collect();
    let t0 = std::time::Instant::now();
    let outputs = anekit::run_loaded(&loaded, &inputs)?;
    println!("prediction: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3);
    for (name, t) in &outputs {
        let v = t.to_f32();
        let (lo, hi) = v
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        println!(
            "{name}: {} {:?}, min {lo:.4}, max {hi:.4}",
            t.dtype(),
            t.shape()
        );
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir)?;
            npy::write(dir.join(format!("{name}.npy")), t)?;
        }
    }
    Ok(())
}
