//! `anekit devices`: what this machine has for running models — the host, the inference
//! backends and, on Apple platforms, the chip, Neural Engine and GPUs; elsewhere, which
//! Apple features are unavailable and why.

use anekit_apple::status::{Feature, reason_in_this_build};
use anekit_apple::{DeviceReport, FeatureStatus};
use anekit_plan::Catalog;
use anekit_runtime::Engine;
use anekit_runtime::engine::{Availability, BackendKind};
use anyhow::Result;
use serde::Serialize;

use crate::output::{bytes, table};

/// Arguments of `anekit devices`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The host as the standard library and (on Linux) `/proc` describe it.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Operating system (`linux`, `macos`).
    pub os: String,
    /// Architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// CPU model (`/proc/cpuinfo` on Linux; the brand string on macOS).
    pub cpu: Option<String>,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
    /// Installed memory, bytes.
    pub memory_bytes: Option<u64>,
    /// NVIDIA GPUs the driver lists (`/proc/driver/nvidia/gpus/*/information`).
    pub nvidia_gpus: Vec<String>,
}

/// One inference backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// The backend.
    pub backend: BackendKind,
    /// Its name.
    pub name: String,
    /// Whether it can run models here.
    pub available: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The chip as anekit's catalog knows it.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogChip {
    /// Marketing name (`M1 Pro`).
    pub name: String,
    /// Neural Engine generation (`h13`).
    pub generation: String,
    /// Neural Engine cores.
    pub ane_cores: u32,
    /// What it was found by (SoC id or brand string).
    pub matched_by: String,
}

/// Everything `anekit devices` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Devices {
    /// The host.
    pub host: Host,
    /// Inference backends.
    pub backends: Vec<BackendStatus>,
    /// The catalog entry of this chip (Apple platforms).
    pub chip: Option<CatalogChip>,
    /// What the Apple layer detected (features with reasons everywhere; hardware on Apple
    /// platforms).
    pub apple: DeviceReport,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `model name` of `/proc/cpuinfo` (or `Model` on some ARM boards).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        matches!(k.trim(), "model name" | "Model" | "cpu model")
            .then(|| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

/// `MemTotal` of `/proc/meminfo`, bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        kib.checked_mul(1024)
    })
}

fn nvidia_gpus() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("information")).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string()))
        })
        .collect();
    out.sort();
    out
}

fn host(apple: &DeviceReport) -> Host {
    let sysctl = apple.sysctl.as_ref();
    Host {
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpu: sysctl
            .and_then(|s| s.brand_string.clone())
            .or_else(|| read("/proc/cpuinfo").as_deref().and_then(cpu_model)),
        logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: sysctl
            .and_then(|s| s.memory_bytes)
            .or_else(|| read("/proc/meminfo").as_deref().and_then(mem_total)),
        nvidia_gpus: nvidia_gpus(),
    }
}

fn backends() -> Vec<BackendStatus> {
    let mut engine = Engine::new();
    anekit_apple::register(&mut engine);
    let registered = engine.backends();
    [BackendKind::Cpu, BackendKind::CoreMl, BackendKind::Ane]
        .into_iter()
        .map(|kind| {
            let reason = match registered.iter().find(|(k, _)| *k == kind) {
                Some((_, Availability::Available)) => None,
                Some((_, Availability::Unavailable(why))) => Some(why.clone()),
                // The direct backend's row says what the backend itself says (one function
                // decides for the backend, this table and the feature list).
                None if kind == BackendKind::Ane => Some(
                    anekit_apple::ane::availability_reason()
                        .unwrap_or_else(|| "not registered in this build".to_string()),
                ),
                None => Some(
                    reason_in_this_build(Feature::CoreMl)
                        .unwrap_or_else(|| "not registered in this build".to_string()),
                ),
            };
            BackendStatus {
                backend: kind,
                name: kind.to_string(),
                available: reason.is_none(),
                reason,
            }
        })
        .collect()
}

fn catalog_chip(apple: &DeviceReport) -> Option<CatalogChip> {
    let catalog = Catalog::builtin();
    let chip = apple.chip.as_ref()?;
    chip.lookup_keys().into_iter().find_map(|key| {
        catalog.chip(key).map(|c| CatalogChip {
            name: c.name.clone(),
            generation: c.generation.value.clone(),
            ane_cores: c.ane_cores.value,
            matched_by: key.to_string(),
        })
    })
}

/// Everything this machine has.
pub fn gather() -> Devices {
    let apple = anekit_apple::detect();
    Devices {
        host: host(&apple),
        backends: backends(),
        chip: catalog_chip(&apple),
        apple,
    }
}

fn feature_rows(features: &[FeatureStatus]) -> Vec<Vec<String>> {
    features
        .iter()
        .map(|f| {
            vec![
                f.name.to_string(),
                if f.available {
                    "available"
                } else {
                    "unavailable"
                }
                .to_string(),
                f.reason
                    .clone()
                    .unwrap_or_else(|| f.description.to_string()),
            ]
        })
        .collect()
}

/// The report as text.
pub fn text(d: &Devices) -> String {
    let mut out = String::new();
    let h = &d.host;
    out.push_str(&format!(
        "Host: {} {}, {} logical CPUs{}{}\n",
        h.os,
        h.arch,
        h.logical_cpus,
        h.cpu
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default(),
        h.memory_bytes
            .map(|m| format!(", {} memory", bytes(m)))
            .unwrap_or_default(),
    ));
    for g in &h.nvidia_gpus {
        out.push_str(&format!("  NVIDIA GPU: {g}\n"));
    }
    let a = &d.apple;
    if let Some(chip) = &a.chip {
        let mut line = format!(
            "Chip: {}",
            chip.brand_string.as_deref().unwrap_or("unknown")
        );
        if let Some(id) = &chip.soc.soc_id {
            line.push_str(&format!(" (SoC {id}"));
            if let Some(g) = &chip.soc.soc_generation {
                line.push_str(&format!(", {g}"));
            }
            line.push(')');
        }
        if let Some(c) = &d.chip {
            line.push_str(&format!(
                "; catalog: {}, Neural Engine {} with {} cores",
                c.name, c.generation, c.ane_cores
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(s) = &a.sysctl {
        for p in &s.perf_levels {
            out.push_str(&format!(
                "  CPU cluster {} ({}): {} cores{}\n",
                p.index,
                p.name,
                p.physical_cpus,
                p.l2_cache_bytes
                    .map(|b| format!(", L2 {}", bytes(b)))
                    .unwrap_or_default()
            ));
        }
        if let (Some(v), Some(b)) = (&s.os_version, &s.os_build) {
            out.push_str(&format!("  OS {v} ({b})\n"));
        }
    }
    if let Some(ne) = &a.neural_engine {
        let mut line = format!(
            "Neural Engine: {}",
            if ne.present { "present" } else { "not found" }
        );
        if let Some(c) = ne.total_cores {
            line.push_str(&format!(", {c} cores (Core ML)"));
        }
        if let Some(p) = &ne.private {
            if let Some(arch) = &p.architecture {
                line.push_str(&format!(", architecture {arch}"));
            }
            if let Some(n) = p.num_ane_cores {
                line.push_str(&format!(", {n} cores (_ANEDeviceInfo)"));
            }
            if let Some(b) = p.board_type {
                line.push_str(&format!(", board {b}"));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    for g in &a.metal_devices {
        out.push_str(&format!(
            "GPU: {}{} — working set {}, families {}{}\n",
            g.name,
            if g.is_default { " (default)" } else { "" },
            bytes(g.recommended_working_set_bytes),
            g.families.join(" "),
            if g.unified_memory {
                ", unified memory"
            } else {
                ""
            },
        ));
    }
    if !a.compute_devices.is_empty() {
        out.push_str(&format!(
            "Core ML compute devices: {}\n",
            a.compute_devices.join(", ")
        ));
    }
    out.push_str("\nBackends:\n");
    let rows: Vec<Vec<String>> = d
        .backends
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                if b.available {
                    "available"
                } else {
                    "unavailable"
                }
                .to_string(),
                b.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(&rows, 2));
    out.push_str("\nApple features:\n");
    out.push_str(&table(&feature_rows(&a.features), 2));
    for n in &a.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The placement `backend` gives `model` on this machine beside `report`'s prediction
/// (`anekit analyze --device --backend B`): Core ML's own plan (`MLComputePlan`) for `auto`
/// and `coreml`; for `ane`, every op on the Neural Engine when the direct backend compiles
/// the program (it runs whole programs or refuses them); for `cpu`, every op on the CPU.
/// Off Apple platforms, Core ML and the direct backend give an error saying why.
pub fn device_comparison(
    model: &anekit_mil::model::Model,
    report: &anekit_plan::Report,
    units: anekit_plan::ComputeUnits,
    function: Option<&str>,
    backend: anekit_runtime::BackendChoice,
) -> Result<(
    anekit_plan::device_plan::DevicePlan,
    anekit_plan::device_plan::Comparison,
)> {
    use anekit_plan::device_plan::DeviceKind;
    use anekit_runtime::BackendChoice as B;
    let function = match function {
        Some(f) => f.to_string(),
        None => anekit_mil::summary::ModelSummary::of(model)
            .default_function
            .unwrap_or_else(|| "main".to_string()),
    };
    let records = match backend {
        B::Auto | B::CoreMl => anekit_apple::coreml::compute_plan_records(model, units)
            .map_err(|e| anyhow::anyhow!("--device: {e}"))?,
        B::Cpu => anekit_apple::device_plan::uniform_records(model, &function, DeviceKind::Cpu)
            .map_err(|e| anyhow::anyhow!("--device --backend cpu: {e}"))?,
        B::Ane => anekit_apple::device_plan::ane_records(model, &function, units)
            .map_err(|e| anyhow::anyhow!("--device --backend ane: {e}"))?,
    };
    let plan = anekit_plan::device_plan::device_plan(&records, &function);
    let comparison = anekit_plan::device_plan::compare(report, &plan);
    Ok((plan, comparison))
}

/// Run `anekit devices`.
pub fn run(args: &Args) -> Result<()> {
    let d = gather();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", text(&d));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n").as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(
            mem_total("MemTotal:        8028152 kB\nMemFree: 1 kB\n"),
            Some(8_028_152 * 1024)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn the_cpu_backend_is_always_there() {
        let b = backends();
        assert_eq!(b.len(), 3);
        assert!(b[0].available, "{b:?}");
        #[cfg(not(target_vendor = "apple"))]
        {
            assert!(!b[1].available && !b[2].available);
            assert!(
                b[1].reason
                    .as_deref()
                    .unwrap()
                    .contains("Core ML exists only on")
            );
        }
    }
}
