//! `anekit bench`: latency after warm-up (median, p90), peak memory and thread count.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::inputs::{InputArg, gather};
use crate::output::{bytes, table};
use crate::run::LoadArgs;

/// Arguments of `anekit bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model (default: the bundled model).
    model: Option<PathBuf>,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// An input as NAME=FILE.npy (repeatable); inputs not given are random.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    inputs: Vec<InputArg>,
    /// Upper bound (exclusive) of random integer inputs.
    #[arg(long, default_value_t = 10)]
    int_high: i32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also measure energy and mean power of the timed runs, per component (where a power
    /// source is readable: NVIDIA GPUs, RAPL, Apple's IOReport).
    #[arg(long)]
    metrics: bool,
    #[command(flatten)]
    load: LoadArgs,
}

/// Energy of the timed runs.
#[derive(Debug, Serialize)]
pub struct EnergyReport {
    /// Per component: energy over all timed runs, per inference, and mean power.
    pub components: Vec<ComponentReport>,
    /// Power sources that could not be read, with the reason.
    pub unavailable: Vec<String>,
}

/// One component's energy.
#[derive(Debug, Serialize)]
pub struct ComponentReport {
    /// Component (`gpu0`, `rapl:package-0`, `ane`, ...).
    pub component: String,
    /// Joules over all timed runs.
    pub energy_j: f64,
    /// Joules per inference.
    pub energy_per_inference_j: f64,
    /// Mean watts over the timed runs.
    pub mean_power_w: f64,
}

/// The benchmark report.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The model.
    pub model: String,
    /// The function.
    pub function: String,
    /// The backend that ran.
    pub backend: String,
    /// Worker threads.
    pub threads: usize,
    /// Timed runs.
    pub runs: usize,
    /// Load (read + compile) time.
    pub load_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Median run.
    pub median_ms: f64,
    /// 90th-percentile run.
    pub p90_ms: f64,
    /// Mean run.
    pub mean_ms: f64,
    /// Most activation bytes held at once during a prediction.
    pub peak_activation_bytes: Option<usize>,
    /// Peak resident memory of the process (Linux: VmHWM).
    pub peak_rss_bytes: Option<u64>,
    /// Energy and power (`--metrics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyReport>,
}

/// Peak resident set size of this process, where the OS tells it.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Run `anekit bench`.
pub fn run(args: &Args) -> Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let path = crate::model_path(&args.model)?;
    let (loaded, load_ms) = args.load.load(&path)?;
    let sample = if args.model.is_none() {
        Some(crate::bundled::sample_inputs()?)
    } else {
        None
    };
    let images = crate::inputs::image_specs(&path);
    let (inputs, _) = gather(
        loaded.inputs(),
        &images,
        &args.inputs,
        true,
        0,
        args.int_high,
        sample.as_ref(),
    )?;
    let stateful = !loaded.instance().states().is_empty();
    let mut state = loaded.new_state();
    let mut once = || -> Result<f64> {
        let t0 = Instant::now();
        if stateful {
            loaded.predict_with_state(&inputs, &mut state)?;
        } else {
            loaded.predict(&inputs)?;
        }
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..args.warmup {
        once()?;
    }
    let sampler = if args.metrics {
        let collector = anekit_metrics::system_collector(std::path::Path::new("/"));
        Some(anekit_metrics::Sampler::start(
            collector,
            anekit_metrics::SamplerConfig::default(),
        )?)
    } else {
        None
    };
    let backend = loaded.selection().backend.to_string();
    let mut timed = || (0..args.runs).map(|_| once()).collect::<Result<Vec<_>>>();
    let (times, energy) = match &sampler {
        Some(s) => {
            let (times, span) = s.measure(path.display().to_string(), backend.clone(), timed);
            let unavailable = s
                .latest()
                .map(|snap| {
                    snap.sources
                        .iter()
                        .filter_map(|st| match &st.state {
                            anekit_metrics::SourceState::Ok => None,
                            anekit_metrics::SourceState::Unavailable { reason } => {
                                Some(format!("{}: {reason}", st.name))
                            }
                            anekit_metrics::SourceState::Error { message } => {
                                Some(format!("{}: {message}", st.name))
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let components = span
                .components
                .iter()
                .map(|c| ComponentReport {
                    component: c.component.clone(),
                    energy_j: c.energy_j,
                    energy_per_inference_j: c.energy_j / args.runs as f64,
                    mean_power_w: c.mean_power_w,
                })
                .collect();
            (
                times,
                Some(EnergyReport {
                    components,
                    unavailable,
                }),
            )
        }
        None => (timed(), None),
    };
    let mut times = times?;
    times.sort_by(f64::total_cmp);
    let threads = args
        .load
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = BenchReport {
        model: path.display().to_string(),
        function: loaded.instance().function().to_string(),
        backend: loaded.selection().backend.to_string(),
        threads,
        runs: args.runs,
        load_ms,
        min_ms: times[0],
        median_ms: percentile(&times, 50.0),
        p90_ms: percentile(&times, 90.0),
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        peak_activation_bytes: loaded.instance().peak_activation_bytes(),
        peak_rss_bytes: peak_rss(),
        energy,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let r = &report;
    let mut rows = vec![
        vec!["model".into(), r.model.clone()],
        vec!["function".into(), r.function.clone()],
        vec![
            "backend".into(),
            format!("{} ({} threads)", r.backend, r.threads),
        ],
        vec!["load".into(), format!("{:.1} ms", r.load_ms)],
        vec![
            "runs".into(),
            format!("{} after {} warm-up", r.runs, args.warmup),
        ],
        vec!["median".into(), format!("{:.3} ms", r.median_ms)],
        vec!["p90".into(), format!("{:.3} ms", r.p90_ms)],
        vec![
            "min / mean".into(),
            format!("{:.3} / {:.3} ms", r.min_ms, r.mean_ms),
        ],
        vec![
            "peak activations".into(),
            r.peak_activation_bytes
                .map_or("-".into(), |b| bytes(b as u64)),
        ],
        vec![
            "peak RSS".into(),
            r.peak_rss_bytes.map_or("-".into(), bytes),
        ],
    ];
    if let Some(e) = &r.energy {
        for c in &e.components {
            rows.push(vec![
                format!("energy {}", c.component),
                format!(
                    "{:.3} J ({:.2} mJ per inference, mean {:.2} W)",
                    c.energy_j,
                    c.energy_per_inference_j * 1e3,
                    c.mean_power_w
                ),
            ]);
        }
        if e.components.is_empty() {
            rows.push(vec![
                "energy".into(),
                "no power source is readable on this machine".into(),
            ]);
        }
        for u in &e.unavailable {
            rows.push(vec!["unavailable".into(), u.clone()]);
        }
    }
    print!("{}", table(&rows, 0));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(super::percentile(&v, 50.0), 5.0);
        assert_eq!(super::percentile(&v, 90.0), 9.0);
        assert_eq!(super::percentile(&[3.0], 90.0), 3.0);
    }
}
