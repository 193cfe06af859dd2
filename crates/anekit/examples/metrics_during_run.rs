//! Sample hardware metrics (power, utilisation, memory, temperatures) while a model runs,
//! and attribute energy to the predictions.
//!
//! ```sh
//! cargo run -p anekit --example metrics_during_run -- MODEL.mlpackage [RUNS]
//! cargo run -p anekit --example metrics_during_run     # the bundled model, 50 runs
//! ```
//!
//! Sources that need privileges or hardware this machine lacks (RAPL readable only by root,
//! no NVIDIA driver, a virtual machine without hwmon) are listed with the reason.

use std::time::Duration;

use anekit::Model;
use anekit::metrics::{Sampler, SamplerConfig, system_collector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (model, inputs) = match args.next() {
        Some(p) => {
            let model = Model::open(p)?;
            let specs = model
                .load(&anekit::LoadOptions::default())?
                .inputs()
                .to_vec();
            let inputs = anekit::inputs::random_inputs(&specs, 0)?;
            (model, inputs)
        }
        None => (
            Model::open(anekit::bundled::path()?)?,
            anekit::bundled::sample_inputs()?,
        ),
    };
    let runs: usize = args.next().map_or(Ok(50), |s| s.parse())?;
    let loaded = model.load(&anekit::LoadOptions::default())?;
    let sampler = Sampler::start(
        system_collector(std::path::Path::new("/")),
        SamplerConfig {
            interval: Duration::from_millis(50),
            history: 1000,
        },
    )?;
    let backend = loaded.selection().backend.to_string();
    let (result, energy) = sampler.measure("model", backend, || -> anekit::Result<()> {
        for _ in 0..runs {
            anekit::run_loaded(&loaded, &inputs)?;
        }
        Ok(())
    });
    result?;
    println!(
        "{runs} predictions in {:.3} s ({:.2} ms each)",
        energy.duration_s,
        energy.duration_s * 1e3 / runs as f64
    );
    for c in &energy.components {
        println!(
            "  {}: {:.3} J, {:.2} W mean, {:.4} J per prediction",
            c.component,
            c.energy_j,
            c.mean_power_w,
            c.energy_j / runs as f64
        );
    }
    if energy.components.is_empty() {
        println!("  no power source on this machine");
    }
    let last = sampler.sample_now();
    for r in last.readings.iter().take(12) {
        println!("  {:?} {} = {:.3}", r.metric, r.component, r.value);
    }
    for s in &last.sources {
        println!("  source {s:?}");
    }
    sampler.stop();
    Ok(())
}
