//! The chip catalog: Apple chips with their Neural Engine generation, cores, peaks,
//! bandwidths and feature tiers, and the constants of the cost model.
//!
//! The catalog is data (`data/catalog.json`, embedded at build time), not code: every number
//! is a [`Fact`] carrying the one-line source it was taken from. [`Catalog::builtin`] parses it
//! once; lookups are by chip name, alias (SoC id, "Apple M1"), or device name ("iPhone 13").

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{PlanError, Result};

/// A value with the source it was taken from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact<T> {
    /// The value.
    pub value: T,
    /// Where it comes from: a key of [`Catalog::sources`] and the detail that locates it, or
    /// `derived:` with the arithmetic.
    pub source: String,
}

/// A Neural Engine generation (the compiler's architecture family, `h13` … `h17`) and the
/// limits and features that depend on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Architecture name (`h13`).
    pub name: String,
    /// Capability tier as ANEForge names it (`A13` … `A16`).
    pub tier: String,
    /// Largest extent of a spatial or contraction axis.
    pub max_tensor_dim: Fact<u64>,
    /// Largest channel extent.
    pub channel_extent: Fact<u64>,
    /// Largest convolution kernel width.
    pub conv_kernel_width_max: Fact<u64>,
    /// The last axis of an ANE buffer is padded to a multiple of this many bytes.
    pub last_axis_alignment_bytes: Fact<u64>,
    /// On-chip working set: the largest single operand (activation or weight) a layer keeps on
    /// chip; a larger one is tiled and streamed from DRAM (weights always stream from DRAM).
    pub sram_bytes: Fact<u64>,
    /// Whether int8 × int8 compute (int8 activations) is faster than fp16.
    pub int8_activations: Fact<bool>,
    /// Compressed-weight encodings streamed natively (others are expanded to dense fp16 at
    /// compile time): `int4`, `int8`, `sparse`, `blockwise`.
    pub native_weight_streams: Fact<Vec<String>>,
    /// Where fp16 arithmetic on this generation silently goes wrong (measured cliffs).
    pub numerics: Numerics,
}

/// The measured fp16 cliffs of a Neural Engine generation: magnitudes beyond which the engine
/// returns a wrong answer without any error (ANEForge `bench/numeric_cliffs.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Numerics {
    /// Largest finite magnitude of a matmul or linear output; larger results become inf
    /// (~fp16 max / 2, on every generation measured).
    pub matmul_max_finite: Fact<f64>,
    /// Largest magnitude a slice with a non-zero begin on the last axis passes through; larger
    /// values become inf (the pre-A16-tier crop DMA). `None`: no clamp.
    pub slice_max_finite: Fact<Option<f64>>,
    /// Largest integer row sum that is still exact (the fp16 grid coarsens past 2048).
    pub exact_integer_sum_max: Fact<f64>,
}

impl Generation {
    /// The generation number (`h13` → 13).
    pub fn number(&self) -> u32 {
        generation_number(&self.name).unwrap_or(0)
    }
}

/// The number of a generation name (`h17s` → 17).
pub fn generation_number(name: &str) -> Option<u32> {
    let digits: String = name
        .strip_prefix('h')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// One chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chip {
    /// Marketing name (`M1 Pro`, `A17 Pro`).
    pub name: String,
    /// Other names it is known by (SoC id, `Apple M1`).
    pub aliases: Vec<String>,
    /// `A` (iPhone/iPad) or `M` (Mac/iPad).
    pub family: String,
    /// Year of the first device.
    pub year: u32,
    /// Devices that use it.
    pub devices: Vec<String>,
    /// SoC id (`t8103`), if known.
    pub soc: Option<Fact<String>>,
    /// Neural Engine generation (`h13`).
    pub generation: Fact<String>,
    /// Neural Engine cores (all engines together).
    pub ane_cores: Fact<u32>,
    /// Number of Neural Engines (2 on Ultra parts).
    pub ane_engines: Fact<u32>,
    /// Apple's marketed trillions of operations per second, if disclosed.
    pub ane_marketed_tops: Option<Fact<f64>>,
    /// What the marketed figure counts: `fp16` or `int8` operations.
    pub ane_marketed_precision: Option<Fact<String>>,
    /// Measured peak fp16 GEMM (a linear layer with constant weights), TFLOP/s.
    #[serde(default)]
    pub ane_gemm_tflops_measured: Option<Fact<f64>>,
    /// Measured peak of a convolution stack or sweep, TFLOP/s (methods differ between
    /// publishers; shown, not used by the cost model).
    #[serde(default)]
    pub ane_conv_tflops_measured: Option<Fact<f64>>,
    /// Measured streaming bandwidth of a one-op elementwise program (input and output bytes
    /// in DRAM), GB/s.
    #[serde(default)]
    pub ane_stream_gbs_measured: Option<Fact<f64>>,
    /// Measured peak GEMM GFLOP/s per watt of package power.
    #[serde(default)]
    pub ane_perf_per_w_measured: Option<Fact<f64>>,
    /// A measured speed-up of this chip's Neural Engine over another chip's, for chips with no
    /// absolute measurement.
    #[serde(default)]
    pub ane_speedup_over: Option<Fact<SpeedupOver>>,
    /// A measured int8 (W8A8) peak, TOPS, if someone published one.
    #[serde(default)]
    pub ane_int8_tops_measured: Option<Fact<f64>>,
    /// DRAM bandwidth the Neural Engine reaches, GB/s, if measured.
    pub ane_bandwidth_gbs: Option<Fact<f64>>,
    /// Headline unified-memory bandwidth, GB/s.
    pub memory_bandwidth_gbs: Option<Fact<f64>>,
    /// Per-dispatch overhead of the Neural Engine, µs, if measured on this chip.
    pub ane_dispatch_us: Option<Fact<f64>>,
    /// GPU cores (largest configuration).
    pub gpu_cores: Option<Fact<u32>>,
    /// CPU performance cores (largest configuration).
    pub cpu_performance_cores: Option<Fact<u32>>,
    /// The OS release it first shipped with.
    pub first_os: Option<Fact<String>>,
}

/// "This chip's Neural Engine is `factor` times as fast as `chip`'s."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedupOver {
    /// The reference chip.
    pub chip: String,
    /// The measured ratio.
    pub factor: f64,
}

/// The cost-model constants of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constants {
    /// Achievable share of the marketed fp16 peak, for chips without a measured peak.
    pub ane_utilisation_of_marketed: Fact<f64>,
    /// Default Neural Engine dispatch overhead, µs.
    pub ane_dispatch_us: Fact<f64>,
    /// Fixed cost of one engine switch (synchronisation, layout conversion), µs.
    pub engine_switch_us: Fact<f64>,
    /// Per-prediction GPU overhead, µs.
    pub gpu_dispatch_us: Fact<f64>,
    /// Per-op GPU overhead, µs.
    pub gpu_op_overhead_us: Fact<f64>,
    /// Per-op CPU overhead, µs.
    pub cpu_op_overhead_us: Fact<f64>,
    /// Share of the headline DRAM bandwidth a CPU or GPU stream reaches.
    pub dram_achievable_fraction: Fact<f64>,
    /// Models with fewer FLOPs than this are predicted to stay on the CPU.
    pub tiny_model_flops: Fact<f64>,
    /// GPU fp32 TFLOP/s per GPU core.
    pub gpu_fp32_tflops_per_core: Fact<f64>,
    /// CPU fp32 GFLOP/s per performance core.
    pub cpu_fp32_gflops_per_performance_core: Fact<f64>,
    /// On-chip activation traffic moves at this multiple of the Neural Engine's DRAM
    /// bandwidth.
    pub ane_onchip_bandwidth_factor: Fact<f64>,
    /// Streaming GB/s per GEMM TF/s, for chips without a streaming measurement.
    pub ane_stream_per_gemm: Fact<f64>,
    /// Peak GEMM GFLOP/s per package watt, for chips without a measurement.
    pub ane_perf_per_w_default: Fact<f64>,
    /// GPU power per core at full load, W.
    pub gpu_w_per_core: Fact<f64>,
    /// CPU power per performance core at full load, W.
    pub cpu_w_per_performance_core: Fact<f64>,
    /// Core ML's own work per prediction on top of the Neural Engine floor, µs.
    pub coreml_prediction_us: Fact<f64>,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Format version.
    pub schema: u32,
    /// A note on how the catalog is written.
    pub note: String,
    /// Source key → one-line reference.
    pub sources: BTreeMap<String, String>,
    /// Cost-model constants.
    pub constants: Constants,
    /// Neural Engine generations.
    pub generations: Vec<Generation>,
    /// Chips, oldest family member first.
    pub chips: Vec<Chip>,
}

/// The catalog's JSON text.
pub const CATALOG_JSON: &str = include_str!("../data/catalog.json");

/// Resolved performance and power figures of a chip, with how each was obtained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChipPerf {
    /// Neural Engine fp16 roof for matrix products (the measured GEMM peak), TFLOP/s.
    pub ane_tflops: f64,
    /// How `ane_tflops` was obtained.
    pub ane_tflops_basis: String,
    /// Streaming bandwidth of the Neural Engine for activations read from or written to
    /// DRAM, GB/s (one-op elementwise programs).
    pub ane_stream_gbs: f64,
    /// How `ane_stream_gbs` was obtained.
    pub ane_stream_basis: String,
    /// Base of the rate at which tensors kept inside a Neural Engine program move (the cost
    /// model multiplies it by the calibrated on-chip factor), GB/s: the fastest streaming
    /// bandwidth measured on a chip of the same generation. The on-chip buffer belongs to the
    /// engine, which every chip of a generation shares; the streaming figure also carries the
    /// SoC's DRAM path and dispatch (docs/analyze.md, calibration round 4).
    pub ane_onchip_base_gbs: f64,
    /// How `ane_onchip_base_gbs` was obtained.
    pub ane_onchip_basis: String,
    /// Neural Engine DRAM bandwidth for weights, GB/s.
    pub ane_bandwidth_gbs: f64,
    /// How `ane_bandwidth_gbs` was obtained.
    pub ane_bandwidth_basis: String,
    /// Neural Engine per-program floor on the direct path (one dispatch), µs.
    pub ane_dispatch_us: f64,
    /// How `ane_dispatch_us` was obtained.
    pub ane_dispatch_basis: String,
    /// Peak GEMM GFLOP/s per package watt.
    pub ane_perf_per_w: f64,
    /// How `ane_perf_per_w` was obtained.
    pub ane_perf_per_w_basis: String,
    /// GPU fp16/fp32 compute roof, TFLOP/s.
    pub gpu_tflops: f64,
    /// GPU DRAM bandwidth, GB/s.
    pub gpu_bandwidth_gbs: f64,
    /// GPU power at full load, W.
    pub gpu_w: f64,
    /// CPU compute roof, GFLOP/s.
    pub cpu_gflops: f64,
    /// CPU DRAM bandwidth, GB/s.
    pub cpu_bandwidth_gbs: f64,
    /// CPU power at full load of its performance cores, W.
    pub cpu_w: f64,
}

impl Catalog {
    /// The catalog built into anekit (parsed once).
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| match Catalog::parse(CATALOG_JSON) {
            Ok(c) => c,
            Err(e) => {
                // The embedded file is checked by the test suite; an empty catalog keeps a
                // broken build usable instead of panicking.
                tracing::error!("built-in chip catalog is invalid: {e}");
                Catalog::empty()
            }
        })
    }

    fn empty() -> Catalog {
        let f = |v: f64| Fact {
            value: v,
            source: String::new(),
        };
        Catalog {
            schema: 1,
            note: String::new(),
            sources: BTreeMap::new(),
            constants: Constants {
                ane_utilisation_of_marketed: f(0.6),
                ane_dispatch_us: f(100.0),
                engine_switch_us: f(50.0),
                gpu_dispatch_us: f(50.0),
                gpu_op_overhead_us: f(4.0),
                cpu_op_overhead_us: f(1.0),
                dram_achievable_fraction: f(0.8),
                tiny_model_flops: f(4096.0),
                gpu_fp32_tflops_per_core: f(0.325),
                cpu_fp32_gflops_per_performance_core: f(100.0),
                ane_onchip_bandwidth_factor: f(4.0),
                ane_stream_per_gemm: f(1.76),
                ane_perf_per_w_default: f(918.0),
                gpu_w_per_core: f(1.4),
                cpu_w_per_performance_core: f(2.0),
                coreml_prediction_us: f(280.0),
            },
            generations: Vec::new(),
            chips: Vec::new(),
        }
    }

    /// Parse a catalog from JSON and check its references (every chip's generation exists,
    /// every source key is declared).
    pub fn parse(json: &str) -> Result<Catalog> {
        let c: Catalog =
            serde_json::from_str(json).map_err(|e| PlanError::Catalog(e.to_string()))?;
        for chip in &c.chips {
            if c.generation(&chip.generation.value).is_none() {
                return Err(PlanError::Catalog(format!(
                    "chip {} names unknown generation {}",
                    chip.name, chip.generation.value
                )));
            }
        }
        for (field, source) in c.all_sources() {
            let key = source_key(&source);
            if key != "derived" && key != "assumption" && key != "heuristic" {
                // Every other source must start with a declared key.
                if !c.sources.contains_key(key) {
                    return Err(PlanError::Catalog(format!(
                        "{field}: source `{source}` does not start with a declared source key"
                    )));
                }
            }
        }
        Ok(c)
    }

    /// Every (field path, source) pair of the catalog.
    pub fn all_sources(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let v = serde_json::to_value(self).unwrap_or_default();
        collect_sources(&v, String::new(), &mut out);
        out
    }

    /// The generation named `name` (`h17s` finds `h17`).
    pub fn generation(&self, name: &str) -> Option<&Generation> {
        let n = generation_number(&name.to_ascii_lowercase())?;
        self.generations.iter().find(|g| g.number() == n)
    }

    /// Find a chip by name, alias or device name, ignoring case, spaces, dashes and an
    /// `Apple ` prefix (`m1pro`, `Apple M1 Pro`, `t6000`, `iPhone 13`).
    pub fn chip(&self, query: &str) -> Option<&Chip> {
        let q = normalize(query);
        let q = q.strip_prefix("apple").unwrap_or(&q).to_string();
        self.chips
            .iter()
            .find(|c| normalize(&c.name) == q)
            .or_else(|| {
                self.chips
                    .iter()
                    .find(|c| c.aliases.iter().any(|a| normalize(a) == q))
            })
            .or_else(|| {
                self.chips
                    .iter()
                    .find(|c| c.devices.iter().any(|d| normalize(d) == q))
            })
    }

    /// The generation of a chip.
    pub fn generation_of(&self, chip: &Chip) -> Option<&Generation> {
        self.generation(&chip.generation.value)
    }

    /// The resolved performance and power figures of `chip`. Each figure is, in this order:
    /// measured on the chip; derived from a measured speed-up over another chip; measured on
    /// a chip of the same generation; derived from a catalog ratio (marketed TOPS × the
    /// median measured/marketed ratio, streaming bandwidth per GEMM TF/s, …); a stated
    /// default. The `*_basis` strings say which.
    pub fn perf(&self, chip: &Chip) -> ChipPerf {
        self.perf_depth(chip, 0)
    }

    fn perf_depth(&self, chip: &Chip, depth: u32) -> ChipPerf {
        let k = &self.constants;
        // One prediction runs on one Neural Engine: an Ultra's second engine does not speed
        // up a single model (whisper.cpp: tiny encoder 30 ms on M1 Pro, 29.4 ms on M2 Ultra).
        let engines = f64::from(chip.ane_engines.value.max(1));
        // A figure measured on another chip of the same generation: the one whose system
        // memory bandwidth is closest (by ratio) to this chip's, so a phone borrows from the
        // base Mac of its generation and a Pro, Max or Ultra from its own die class (the
        // compiler's targets split a generation into a base die and a Pro/Max/Ultra die:
        // ane-guide, chapter 34), independently of the catalog's order (ties: the first).
        let my_mem = chip.memory_bandwidth_gbs.as_ref().map(|m| m.value);
        let distance = |c: &Chip| match (my_mem, c.memory_bandwidth_gbs.as_ref()) {
            (Some(a), Some(b)) if a > 0.0 && b.value > 0.0 => (a / b.value).ln().abs(),
            _ => f64::INFINITY,
        };
        let sibling = |f: &dyn Fn(&Chip) -> Option<f64>| {
            self.chips
                .iter()
                .filter(|c| c.generation.value == chip.generation.value && c.name != chip.name)
                .filter_map(|c| f(c).map(|v| (v, c)))
                .fold(None, |best: Option<(f64, &Chip)>, (v, c)| match best {
                    Some((_, b)) if distance(b) <= distance(c) => best,
                    _ => Some((v, c)),
                })
                .map(|(v, c)| (v, c.name.clone()))
        };
        // A measured speed-up over another chip (the reference resolved without recursion
        // beyond one level).
        let speedup = chip
            .ane_speedup_over
            .as_ref()
            .filter(|_| depth == 0)
            .and_then(|s| {
                let other = self.chip(&s.value.chip)?;
                Some((
                    self.perf_depth(other, depth + 1),
                    s.value.factor,
                    s.source.clone(),
                    other.name.clone(),
                ))
            });
        let fp16_marketed = chip.ane_marketed_tops.as_ref().map(|t| {
            let int8 = chip
                .ane_marketed_precision
                .as_ref()
                .is_some_and(|p| p.value == "int8");
            let fp16 = if int8 { t.value / 2.0 } else { t.value };
            fp16 / engines
        });
        let (ane_tflops, ane_tflops_basis) = if let Some(m) = &chip.ane_gemm_tflops_measured {
            (m.value, format!("measured ({})", m.source))
        } else if let Some((p, f, src, other)) = &speedup {
            (
                p.ane_tflops * f,
                format!("derived: {other}'s {:.2} x {f} ({src})", p.ane_tflops),
            )
        } else if let Some((v, name)) =
            sibling(&|c| c.ane_gemm_tflops_measured.as_ref().map(|m| m.value))
        {
            (v, format!("measured on {name} (same generation)"))
        } else if let Some(t) = fp16_marketed {
            (
                t * k.ane_utilisation_of_marketed.value,
                format!(
                    "derived: marketed fp16-equivalent {t} TOPS per engine x {} (catalog constant ane_utilisation_of_marketed)",
                    k.ane_utilisation_of_marketed.value
                ),
            )
        } else {
            (5.0, "no data: 5 TFLOP/s assumed".into())
        };
        let (ane_stream_gbs, ane_stream_basis) = if let Some(m) = &chip.ane_stream_gbs_measured {
            (m.value, format!("measured ({})", m.source))
        } else if let Some((p, f, src, other)) = &speedup {
            (
                p.ane_stream_gbs * f,
                format!("derived: {other}'s {:.1} x {f} ({src})", p.ane_stream_gbs),
            )
        } else if let Some((v, name)) =
            sibling(&|c| c.ane_stream_gbs_measured.as_ref().map(|m| m.value))
        {
            (v, format!("measured on {name} (same generation)"))
        } else {
            (
                ane_tflops * k.ane_stream_per_gemm.value,
                format!(
                    "derived: {ane_tflops:.2} TF/s x {} GB/s per TF/s (catalog constant ane_stream_per_gemm)",
                    k.ane_stream_per_gemm.value
                ),
            )
        };
        let mem = chip.memory_bandwidth_gbs.as_ref().map(|m| m.value);
        let (ane_bandwidth_gbs, ane_bandwidth_basis) = if let Some(b) = &chip.ane_bandwidth_gbs {
            (b.value, format!("measured ({})", b.source))
        } else if let Some((p, _, _, other)) = speedup.as_ref().filter(|_| mem.is_none()) {
            // A phone's memory is its predecessor's class, not a same-generation Mac's.
            (
                p.ane_bandwidth_gbs,
                format!("derived: {other}'s figure ({})", p.ane_bandwidth_basis),
            )
        } else if let Some((v, name)) = sibling(&|c| c.ane_bandwidth_gbs.as_ref().map(|b| b.value))
        {
            match mem {
                Some(m) if m < v => (
                    m * k.dram_achievable_fraction.value,
                    format!(
                        "derived: system bandwidth {m} GB/s x {} (below {name}'s ANE figure)",
                        k.dram_achievable_fraction.value
                    ),
                ),
                _ => (v, format!("measured on {name} (same generation)")),
            }
        } else if let Some(m) = mem {
            (
                m * k.dram_achievable_fraction.value,
                format!(
                    "derived: system bandwidth {m} GB/s x {}",
                    k.dram_achievable_fraction.value
                ),
            )
        } else {
            (60.0, "no data: 60 GB/s assumed".into())
        };
        let (ane_dispatch_us, ane_dispatch_basis) = if let Some(d) = &chip.ane_dispatch_us {
            (d.value, format!("measured ({})", d.source))
        } else if let Some((v, name)) = sibling(&|c| c.ane_dispatch_us.as_ref().map(|d| d.value)) {
            (v, format!("measured on {name} (same generation)"))
        } else {
            (
                k.ane_dispatch_us.value,
                format!("catalog default ({})", k.ane_dispatch_us.source),
            )
        };
        let (ane_perf_per_w, ane_perf_per_w_basis) = if let Some(m) = &chip.ane_perf_per_w_measured
        {
            (m.value, format!("measured ({})", m.source))
        } else if let Some((v, name)) =
            sibling(&|c| c.ane_perf_per_w_measured.as_ref().map(|m| m.value))
        {
            (v, format!("measured on {name} (same generation)"))
        } else {
            (
                k.ane_perf_per_w_default.value,
                format!(
                    "derived: catalog default ({})",
                    k.ane_perf_per_w_default.source
                ),
            )
        };
        let gpu_cores = chip
            .gpu_cores
            .as_ref()
            .map(|g| f64::from(g.value))
            .or_else(|| sibling(&|c| c.gpu_cores.as_ref().map(|g| f64::from(g.value))).map(|v| v.0))
            .unwrap_or(8.0);
        let dram = mem.unwrap_or(ane_bandwidth_gbs / k.dram_achievable_fraction.value)
            * k.dram_achievable_fraction.value;
        let p_cores = chip
            .cpu_performance_cores
            .as_ref()
            .map(|c| f64::from(c.value))
            .unwrap_or(4.0);
        // The engine's on-chip rate: the generation's fastest measured streaming bandwidth
        // (ANEForge's streaming figures also carry each SoC's DRAM path and dispatch: M1
        // 5.4 GB/s against the M1 Max's 7.44 on one engine whose GEMM peaks are 6% apart).
        let fastest = self
            .chips
            .iter()
            .filter(|c| c.generation.value == chip.generation.value)
            .filter_map(|c| {
                c.ane_stream_gbs_measured
                    .as_ref()
                    .map(|m| (m.value, c.name.as_str()))
            })
            .fold(None, |best: Option<(f64, &str)>, (v, n)| match best {
                Some((b, _)) if b >= v => best,
                _ => Some((v, n)),
            });
        let (ane_onchip_base_gbs, ane_onchip_basis) = match fastest {
            Some((v, name)) if v > ane_stream_gbs => (
                v,
                format!(
                    "streaming measured on {name}, the fastest of generation {}",
                    chip.generation.value
                ),
            ),
            _ => (ane_stream_gbs, "the chip's streaming bandwidth".to_string()),
        };
        ChipPerf {
            ane_tflops,
            ane_tflops_basis,
            ane_stream_gbs,
            ane_stream_basis,
            ane_onchip_base_gbs,
            ane_onchip_basis,
            ane_bandwidth_gbs,
            ane_bandwidth_basis,
            ane_dispatch_us,
            ane_dispatch_basis,
            ane_perf_per_w,
            ane_perf_per_w_basis,
            gpu_tflops: gpu_cores * k.gpu_fp32_tflops_per_core.value,
            gpu_bandwidth_gbs: dram,
            gpu_w: gpu_cores * k.gpu_w_per_core.value,
            cpu_gflops: p_cores * k.cpu_fp32_gflops_per_performance_core.value,
            cpu_bandwidth_gbs: dram,
            cpu_w: p_cores * k.cpu_w_per_performance_core.value,
        }
    }

    /// Whether a fact was derived or assumed rather than measured or documented (its source
    /// starts with `derived:`, `assumption:` or `heuristic`).
    pub fn is_derived(source: &str) -> bool {
        matches!(source_key(source), "derived" | "assumption" | "heuristic")
    }
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The key a source string starts with (`HOL`, `derived`, …).
pub fn source_key(source: &str) -> &str {
    let end = source
        .find([' ', ':', ';', '(', ',', '/'])
        .unwrap_or(source.len());
    &source[..end]
}

fn collect_sources(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let (Some(serde_json::Value::String(s)), true) =
                (m.get("source"), m.contains_key("value"))
            {
                out.push((path.clone(), s.clone()));
            }
            for (k, x) in m {
                if path.is_empty() && k == "sources" {
                    continue;
                }
                collect_sources(x, format!("{path}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let name = x
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map_or_else(|| i.to_string(), str::to_string);
                collect_sources(x, format!("{path}/{name}"), out);
            }
        }
        _ => {}
    }
}
