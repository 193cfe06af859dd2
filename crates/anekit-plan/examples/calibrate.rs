//! Fit the Neural Engine cost model on the micro-benchmarks of `data/measurements.json` and
//! write `data/calibration.json` (see `anekit_plan::calibration`).
//!
//! ```text
//! cargo run -p anekit-plan --example calibrate            # rewrite data/calibration.json
//! cargo run -p anekit-plan --example calibrate -- --check # exit 1 if it is out of date
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anekit_plan::Catalog;
use anekit_plan::calibration::{Measurements, fit};

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let run = || -> Result<String, Box<dyn std::error::Error>> {
        let m = Measurements::builtin()?;
        let cal = fit(&m, Catalog::builtin())?;
        for p in cal.fit.latency.iter().filter(|_| !check) {
            eprintln!(
                "{:<60} {:>10.1} {:>10.1} {:>+7.1}%",
                p.id,
                p.measured,
                p.model,
                p.error * 100.0
            );
        }
        eprintln!(
            "latency: median |error| {:.1}%, max {:.1}% over {} points; energy: median {:.1}%, max {:.1}% over {} points",
            cal.fit.latency_median_abs_error * 100.0,
            cal.fit.latency_max_abs_error * 100.0,
            cal.fit.latency.len(),
            cal.fit.energy_median_abs_error * 100.0,
            cal.fit.energy_max_abs_error * 100.0,
            cal.fit.energy.len()
        );
        let obj: f64 = cal
            .fit
            .latency
            .iter()
            .map(|p| (p.model / p.measured).ln().powi(2))
            .sum();
        eprintln!("objective (sum of squared log errors): {obj:.3}");
        eprintln!("model: {:?}\nenergy: {:?}", cal.ane, cal.energy);
        Ok(serde_json::to_string_pretty(&cal)? + "\n")
    };
    let text = match run() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("calibrate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/calibration.json");
    if check {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != text {
            eprintln!(
                "calibrate: {} is out of date; run scripts/calibrate.sh",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("calibrate: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", path.display());
    ExitCode::SUCCESS
}
