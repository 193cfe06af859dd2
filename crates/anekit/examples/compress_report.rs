//! Compress a model's weights and measure what it costs: sizes, weight SNR, and the output
//! SNR against the uncompressed model (CPU backend).
//!
//! ```sh
//! cargo run -p anekit --example compress_report -- MODEL.mlpackage OUT.mlpackage int4
//! cargo run -p anekit --example compress_report    # the bundled model, int8, to a temp dir
//! ```
//!
//! Modes: `int8` (per channel), `int4` (per block of 32, iOS18), `palettize4` (4-bit
//! k-means), `prune50` (50% magnitude pruning).

use anekit::Model;
use anekit::compress::{Flags, QuantDtype};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, out, inputs) = match args.as_slice() {
        [m, o, ..] => {
            let model = Model::open(m)?;
            let specs = model
                .load(&anekit::LoadOptions::default())?
                .inputs()
                .to_vec();
            let inputs = anekit::inputs::random_inputs(&specs, 0)?;
            (model, std::path::PathBuf::from(o), inputs)
        }
        _ => (
            Model::open(anekit::bundled::path()?)?,
            std::env::temp_dir().join("anekit-compress-example.mlpackage"),
            anekit::bundled::sample_inputs()?,
        ),
    };
    let mode = args.get(2).map_or("int8", String::as_str);
    let flags = match mode {
        "int8" => Flags {
            quantize: Some(QuantDtype::Int8),
            ..Flags::default()
        },
        "int4" => Flags {
            quantize: Some(QuantDtype::Int4),
            block_size: Some(32),
            ..Flags::default()
        },
        "palettize4" => Flags {
            palettize: Some(4),
            ..Flags::default()
        },
        "prune50" => Flags {
            prune: Some(0.5),
            ..Flags::default()
        },
        other => {
            return Err(format!("unknown mode {other} (int8, int4, palettize4, prune50)").into());
        }
    };
    let compressed = model.compress(&flags.resolve()?)?;
    let r = &compressed.report;
    for w in &r.weights {
        println!(
            "{:<40} {:<24} {:>9} → {:>9} bytes, weight SNR {}",
            w.name,
            w.stages.join(" + "),
            w.bytes_before,
            w.bytes_after,
            w.snr_db.map_or("exact".into(), |s| format!("{s:.1} dB"))
        );
    }
    for s in &r.skipped {
        println!("skipped {}: {}", s.name, s.reason);
    }
    println!(
        "weights {} → {} bytes ({:.2}×) in {:.2} s",
        r.bytes_before(),
        r.bytes_after(),
        r.bytes_before() as f64 / r.bytes_after().max(1) as f64,
        r.seconds
    );
    let _ = std::fs::remove_dir_all(&out);
    compressed.model.save(&out)?;
    println!("wrote {}", out.display());
    for o in compressed.accuracy(&model, &inputs)? {
        println!(
            "output {}: SNR {} vs the uncompressed model, max |error| {:.3e}",
            o.name,
            o.snr_db.map_or("exact".into(), |s| format!("{s:.1} dB")),
            o.max_abs_error
        );
    }
    Ok(())
}
