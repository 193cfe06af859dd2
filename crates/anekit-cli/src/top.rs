//! `anekit top`: live hardware metrics — a terminal view, JSON lines, or a Prometheus
//! endpoint — from one sampler (`anekit-metrics`).

mod tui;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anekit_metrics::export::{MetricsServer, json_line};
use anekit_metrics::{Sampler, SamplerConfig};
use anyhow::{Context, Result};

/// The default address of `--serve`: loopback only.
pub const DEFAULT_SERVE_ADDR: &str = "127.0.0.1:9090";

/// Arguments of `anekit top`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  anekit top                                   live view (q or Esc quits)
  anekit top --json --count 5                  five JSON lines, one per second
  anekit top --json --interval-ms 200 | jq .   stream every 200 ms
  anekit top --serve                           Prometheus text at http://127.0.0.1:9090/metrics
  anekit top --serve 0.0.0.0:9100              serve on every interface (anyone who can reach it can read it)

Sources: /proc/stat, /proc/meminfo, cpufreq, hwmon and thermal zones, RAPL (root only since \
Linux 5.10), NVIDIA GPUs through NVML; on macOS, IOReport/IOKit/SMC through anekit-apple. A \
source that cannot be read is listed with the reason (JSON `sources`, Prometheus \
`anekit_source_up`, the live view's last box). Power comes from energy counters over the \
measured interval; rates need two samples, so the first JSON line comes one interval after \
the start.")]
pub struct Args {
    /// Time between samples, in milliseconds (at least 100).
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub interval_ms: u64,

    /// Print one JSON object per sample on stdout (timestamp, interval, readings, source
    /// states) instead of the live view.
    #[arg(long, conflicts_with = "serve")]
    pub json: bool,

    /// With --json: stop after N samples (default: run until interrupted).
    #[arg(long, value_name = "N", requires = "json",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Serve the metrics in Prometheus text format at http://ADDR/metrics (and the newest
    /// sample as JSON at /json). ADDR defaults to 127.0.0.1:9090 (loopback only); port 0
    /// picks a free port.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = DEFAULT_SERVE_ADDR)]
    pub serve: Option<SocketAddr>,

    /// Read /proc and /sys under DIR instead of / (e.g. /host in a container that mounts
    /// the host's /proc and /sys there, or a recorded tree).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Samples kept for the live view's sparklines and min/mean/max.
    #[arg(long, value_name = "N", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub history: u64,
}

/// Runs `anekit top`.
pub fn run(args: &Args) -> Result<()> {
    let collector = anekit_metrics::system_collector(&args.root);
    let config = SamplerConfig {
        interval: Duration::from_millis(args.interval_ms),
        history: usize::try_from(args.history).unwrap_or(300),
    };
    let sampler = Sampler::start(collector, config).context("starting the sampler")?;
    if args.json {
        run_json(&sampler, args.count)
    } else if let Some(addr) = args.serve {
        run_serve(sampler, addr)
    } else {
        tui::run(&sampler, args.interval_ms)
    }
}

fn run_json(sampler: &Sampler, count: Option<u64>) -> Result<()> {
    let rx = sampler.subscribe();
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let snap = rx.recv().context("the sampler stopped")?;
        let line = json_line(&snap)?;
        if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            // A closed pipe (`| head`) ends the stream quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing to stdout");
        }
        printed += 1;
    }
    Ok(())
}

fn run_serve(sampler: Sampler, addr: SocketAddr) -> Result<()> {
    let sampler = Arc::new(sampler);
    let latest = Arc::clone(&sampler);
    let server = MetricsServer::start(addr, 4, move || latest.latest())
        .with_context(|| format!("serving metrics on {addr}"))?;
    let bound = server.local_addr();
    if !bound.ip().is_loopback() {
        eprintln!(
            "warning: serving on {bound}, which is not a loopback address: anyone who can reach it can read these metrics"
        );
    }
    eprintln!("serving http://{bound}/metrics (Prometheus) and http://{bound}/json; Ctrl-C stops");
    loop {
        std::thread::park();
    }
}
