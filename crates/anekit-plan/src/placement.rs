//! Placement: which unit runs every op for a compute-units setting, the segments that
//! follow, the engine switches between them and the estimated latency.
//!
//! Per op: the Neural Engine if the setting includes it and no rule forbids it, else the
//! GPU if the setting includes it and no rule keeps the op on the CPU, else the CPU. Then
//! two documented heuristics: a model with almost no work stays on the CPU (vx-lang#436),
//! and a short Neural Engine or GPU island between ops of another unit moves to that unit when
//! the two switches it causes cost more than it saves (Core ML weighs switch costs; the
//! exact policy is not published — `HOL` unsupported-layers.md describes the behaviour).

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Chip, ChipPerf, Generation};
use crate::cost::{Act, OpCost, Unit, ane_op_time, op_time};
use crate::graph::Graph;
use crate::report::{Segment, Switches};
use crate::rules::{Effect, Hit};

/// Longest run of ops the island heuristic moves to a neighbouring unit.
pub const MAX_ISLAND_OPS: usize = 4;

pub use anekit_mil::ComputeUnits;

/// The placement of one op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpPlace {
    /// The unit.
    pub unit: Unit,
    /// Why not the Neural Engine.
    pub reasons: Vec<String>,
}

/// A complete placement with its costs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Per op.
    pub ops: Vec<OpPlace>,
    /// Per op, time on its unit, µs.
    pub op_us: Vec<f64>,
    /// Per op, the memory-bound part of that time, µs.
    pub op_memory_us: Vec<f64>,
    /// Per op, bytes moved on its unit.
    pub op_bytes: Vec<f64>,
    /// Segments.
    pub segments: Vec<Segment>,
    /// Per op, its segment.
    pub op_segment: Vec<Option<usize>>,
    /// Switches.
    pub switches: Switches,
    /// Total dispatch overhead (one floor per Neural Engine program), µs.
    pub dispatch_us: f64,
    /// Core ML's own work per prediction (zero on the direct path), µs.
    pub overhead_us: f64,
    /// Conversion of fp32 inputs and outputs to and from fp16 (Core ML path), µs.
    pub io_us: f64,
    /// Estimated energy of one prediction.
    pub energy: EnergyEstimate,
    /// The execution path costed.
    pub path: ExecPath,
    /// Latency, µs.
    pub latency_us: f64,
}

/// How a prediction reaches the Neural Engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecPath {
    /// Core ML (`MLModel.prediction`): its per-prediction work, fp32 feature conversion,
    /// one program per Neural Engine segment, GPU and CPU segments as placed.
    #[default]
    CoreMl,
    /// The direct Neural Engine path (one compiled program per segment driven through the
    /// private framework, as ANEForge and maderix do): no Core ML overhead, no GPU; ops the
    /// engine cannot run stay on the CPU.
    Direct,
}

impl ExecPath {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::CoreMl => "coreml",
            Self::Direct => "direct",
        }
    }

    /// Parse the command-line spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "coreml" => Some(Self::CoreMl),
            "direct" | "ane" | "directane" => Some(Self::Direct),
            _ => None,
        }
    }
}

/// Estimated energy of one prediction per unit, mJ (package energy: the Neural Engine's
/// includes the CPU that dispatches to it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EnergyEstimate {
    /// Neural Engine segments.
    pub ane_mj: f64,
    /// GPU segments.
    pub gpu_mj: f64,
    /// CPU segments, Core ML's own work and conversions.
    pub cpu_mj: f64,
    /// All of it.
    pub total_mj: f64,
}

/// Everything placement needs about the chip.
pub struct Target<'c> {
    /// The chip.
    pub chip: &'c Chip,
    /// Its generation.
    pub generation: &'c Generation,
    /// Its resolved figures.
    pub perf: ChipPerf,
    /// The catalog (for constants).
    pub catalog: &'c Catalog,
    /// The execution path to cost.
    pub path: ExecPath,
}

fn units_reason(units: ComputeUnits) -> String {
    format!("compute units `{}` exclude the Neural Engine", units.name())
}

/// Place every op of `g` (with its rule hits and costs) on `target` for `units`.
pub fn place(
    g: &Graph<'_>,
    hits: &[Vec<Hit>],
    costs: &[OpCost],
    target: &Target<'_>,
    units: ComputeUnits,
) -> Plan {
    let k = &target.catalog.constants;
    let model = &crate::calibration::Calibration::builtin().ane;
    let n = g.nodes.len();
    let mut ops: Vec<OpPlace> = Vec::with_capacity(n);
    for (i, node) in g.nodes.iter().enumerate() {
        if node.constant {
            ops.push(OpPlace {
                unit: Unit::None,
                reasons: Vec::new(),
            });
            continue;
        }
        // An op type Core ML does not know is not placed anywhere: the model will not compile.
        if crate::rules::op_support(&node.op.op_type).is_none() {
            ops.push(OpPlace {
                unit: Unit::None,
                reasons: vec![format!(
                    "`{}` is not an op of any Core ML opset: not placed (Core ML will refuse to compile the model)",
                    node.op.op_type
                )],
            });
            continue;
        }
        let h = hits.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let blocking: Vec<&Hit> = h.iter().filter(|h| h.effect != Effect::Note).collect();
        let cpu_only = blocking.iter().any(|h| h.effect == Effect::CpuOnly);
        let mut reasons: Vec<String> = Vec::new();
        let unit = if units.neural_engine() && blocking.is_empty() {
            Unit::Ane
        } else {
            if units.neural_engine() {
                reasons.extend(
                    blocking
                        .iter()
                        .map(|h| format!("{} [{}]", h.reason, h.rule)),
                );
            } else {
                reasons.push(units_reason(units));
            }
            if units.gpu() && !cpu_only {
                Unit::Gpu
            } else {
                if units.gpu() {
                    reasons.push("kept on the CPU, not the GPU, by a CPU-only rule".into());
                }
                Unit::Cpu
            }
        };
        ops.push(OpPlace { unit, reasons });
    }

    // Heuristic 1: a model with almost no work stays on the CPU.
    let total_flops: f64 = costs.iter().map(|c| c.flops).sum();
    let tiny = k.tiny_model_flops.value;
    if total_flops < tiny && ops.iter().any(|o| o.unit == Unit::Ane) {
        for o in ops.iter_mut().filter(|o| o.unit == Unit::Ane) {
            o.unit = Unit::Cpu;
            o.reasons.push(format!(
                "the whole model is {total_flops:.0} FLOPs (< {tiny:.0}): Core ML tends to keep such models on the CPU [heuristic tiny-model]"
            ));
        }
    }

    // Heuristic 2: Neural Engine or GPU islands whose switches cost more than they save.
    for _ in 0..64 {
        let segs = segments(g, &ops);
        let mut changed = false;
        for (si, s) in segs.iter().enumerate() {
            let own = s.0;
            if !matches!(own, Unit::Ane | Unit::Gpu) || segs.len() < 2 || s.1.len() > MAX_ISLAND_OPS
            {
                continue;
            }
            let prev = si.checked_sub(1).and_then(|p| segs.get(p)).map(|p| p.0);
            let next = segs.get(si + 1).map(|p| p.0);
            let other = match (prev, next) {
                (Some(a), Some(b)) if a == b => a,
                (Some(a), None) | (None, Some(a)) => a,
                _ => continue,
            };
            // Ops may move to the CPU, and Neural Engine ops to the GPU, nothing else.
            if !(other == Unit::Cpu || (own == Unit::Ane && other == Unit::Gpu && units.gpu())) {
                continue;
            }
            let switches = usize::from(prev.is_some()) + usize::from(next.is_some());
            let dispatch = if own == Unit::Ane {
                target.perf.ane_dispatch_us
            } else {
                k.gpu_dispatch_us.value
            };
            let mut own_us = dispatch + switches as f64 * k.engine_switch_us.value;
            let mut other_us = 0.0;
            for &i in &s.1 {
                if let Some(c) = costs.get(i) {
                    own_us += op_time(c, own, &target.perf, target.generation, k, model).us;
                    other_us += op_time(c, other, &target.perf, target.generation, k, model).us;
                }
            }
            if other_us < own_us {
                let what = if own == Unit::Ane {
                    "Neural Engine"
                } else {
                    "GPU"
                };
                for &i in &s.1 {
                    if let Some(o) = ops.get_mut(i) {
                        o.unit = other;
                        o.reasons.push(format!(
                            "a short {what} island ({own_us:.0} µs with dispatch and switches) is cheaper on the {} ({other_us:.0} µs) [heuristic island]",
                            other.name(),
                        ));
                    }
                }
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    cost_plan(g, costs, target, ops)
}

/// Segments as (unit, op indices), constants skipped.
fn segments(g: &Graph<'_>, ops: &[OpPlace]) -> Vec<(Unit, Vec<usize>)> {
    let mut out: Vec<(Unit, Vec<usize>)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        if o.unit == Unit::None {
            continue;
        }
        // Ops inside control flow belong to their enclosing op's segment.
        if g.nodes.get(i).is_some_and(|n| n.depth > 0)
            && let Some(last) = out.last_mut()
        {
            last.1.push(i);
            continue;
        }
        match out.last_mut() {
            Some(last) if last.0 == o.unit => last.1.push(i),
            _ => out.push((o.unit, vec![i])),
        }
    }
    out
}

fn cost_plan(g: &Graph<'_>, costs: &[OpCost], target: &Target<'_>, ops: Vec<OpPlace>) -> Plan {
    let k = &target.catalog.constants;
    let cal = crate::calibration::Calibration::builtin();
    let model = &cal.ane;
    let n = ops.len();
    let unit_of = |i: usize| ops.get(i).map_or(Unit::None, |o| o.unit);
    // A Neural Engine op's tensor crosses its program's boundary when it is a function input
    // or output, or is produced or consumed by an op of another unit.
    let external = |a: &Act| -> bool {
        let Some(v) = g.values.get(&a.value) else {
            return true;
        };
        if a.output {
            g.outputs.iter().any(|o| o == &a.value)
                || v.producer.and_then(|p| g.nodes.get(p)).is_some_and(|p| {
                    p.consumers
                        .iter()
                        .any(|&c| !matches!(unit_of(c), Unit::Ane | Unit::None))
                })
        } else {
            v.function_input || v.producer.is_none_or(|p| unit_of(p) != Unit::Ane)
        }
    };
    let mut op_us = vec![0.0; n];
    let mut op_memory_us = vec![0.0; n];
    let mut op_bytes = vec![0.0; n];
    for (i, o) in ops.iter().enumerate() {
        let Some(c) = costs.get(i) else { continue };
        let t = if o.unit == Unit::Ane {
            ane_op_time(c, &target.perf, target.generation, model, &external)
        } else {
            op_time(c, o.unit, &target.perf, target.generation, k, model)
        };
        op_us[i] = t.us;
        op_memory_us[i] = t.memory_us.min(t.us);
        op_bytes[i] = match o.unit {
            Unit::Ane => {
                let (w, a, _) = crate::cost::ane_bytes(c, target.generation);
                w + a
            }
            Unit::None => 0.0,
            _ => c.input_bytes + c.output_bytes + c.weight_bytes,
        };
    }
    let segs = segments(g, &ops);
    let mut op_segment = vec![None; n];
    let mut segments_out = Vec::with_capacity(segs.len());
    let mut dispatch_us = 0.0;
    let mut energy = EnergyEstimate::default();
    for (si, (unit, idx)) in segs.iter().enumerate() {
        let d = match unit {
            Unit::Ane => target.perf.ane_dispatch_us,
            Unit::Gpu => k.gpu_dispatch_us.value,
            _ => 0.0,
        };
        dispatch_us += d;
        let mut est = d;
        let mut work = crate::calibration::Work::default();
        for &i in idx {
            if let Some(s) = op_segment.get_mut(i) {
                *s = Some(si);
            }
            est += op_us.get(i).copied().unwrap_or(0.0);
            if let Some(c) = costs.get(i) {
                work.add(c, target.generation);
            }
        }
        match unit {
            Unit::Ane => {
                energy.ane_mj +=
                    crate::calibration::energy_mj(&cal.energy, &target.perf, est, &work);
            }
            Unit::Gpu => energy.gpu_mj += est * 1e-3 * target.perf.gpu_w,
            Unit::Cpu => energy.cpu_mj += est * 1e-3 * target.perf.cpu_w,
            Unit::None => {}
        }
        segments_out.push(Segment {
            unit: *unit,
            first: idx.first().copied().unwrap_or(0),
            last: idx.last().copied().unwrap_or(0),
            ops: idx.len(),
            est_us: est,
        });
    }
    // Data handed between units: every run-time value consumed on another unit.
    let mut bytes = 0.0;
    let mut transfer_us = 0.0;
    for (i, node) in g.nodes.iter().enumerate() {
        let pu = unit_of(i);
        if pu == Unit::None {
            continue;
        }
        for out in &node.outputs {
            let Some(t) = g.values.get(out).and_then(|v| v.ty.as_tensor()) else {
                continue;
            };
            let size = t.element_count().unwrap_or(0) as f64
                * f64::from(t.dtype.bits().unwrap_or(16))
                / 8.0;
            let mut seen: Vec<Unit> = Vec::new();
            for &c in &node.consumers {
                let cu = unit_of(c);
                if cu != pu && cu != Unit::None && !seen.contains(&cu) {
                    seen.push(cu);
                    // A conversion is read and written once at the slower side's bandwidth.
                    let bw = match (pu, cu) {
                        (Unit::Ane, _) | (_, Unit::Ane) => target.perf.ane_bandwidth_gbs,
                        _ => target.perf.cpu_bandwidth_gbs,
                    };
                    bytes += size;
                    transfer_us += 2.0 * size / (bw * 1e3);
                }
            }
        }
    }
    let count = segs.len().saturating_sub(1);
    let switch_us = count as f64 * k.engine_switch_us.value + transfer_us;
    // Core ML's own work per prediction, and the conversion of fp32 features to and from the
    // Neural Engine's fp16 (read and written once by the CPU).
    let (overhead_us, io_us) = match target.path {
        ExecPath::Direct => (0.0, 0.0),
        ExecPath::CoreMl => {
            let mut io = 0.0;
            let fp32_bytes = |name: &str| -> f64 {
                g.values
                    .get(name)
                    .and_then(|v| v.ty.as_tensor())
                    .filter(|t| t.dtype == anekit_mil::DataType::Fp32)
                    .map_or(0.0, |t| t.element_count().unwrap_or(0) as f64 * 4.0)
            };
            for inp in &g.inputs {
                let touches_ane = g.nodes.iter().enumerate().any(|(i, nd)| {
                    unit_of(i) == Unit::Ane && nd.inputs.iter().any(|(_, v)| v == &inp.name)
                });
                if touches_ane {
                    io += 1.5 * fp32_bytes(&inp.name);
                }
            }
            for out in &g.outputs {
                let from_ane = g
                    .values
                    .get(out)
                    .and_then(|v| v.producer)
                    .is_some_and(|p| unit_of(p) == Unit::Ane);
                if from_ane {
                    io += 1.5 * fp32_bytes(out);
                }
            }
            let has_ane = ops.iter().any(|o| o.unit == Unit::Ane);
            (
                if has_ane {
                    k.coreml_prediction_us.value
                } else {
                    0.0
                },
                io / (target.perf.cpu_bandwidth_gbs.max(1.0) * 1e3),
            )
        }
    };
    // Core ML's own work, conversions and hand-overs run on one CPU core.
    energy.cpu_mj += (overhead_us + io_us + switch_us) * 1e-3 * k.cpu_w_per_performance_core.value;
    energy.total_mj = energy.ane_mj + energy.gpu_mj + energy.cpu_mj;
    let op_total: f64 = op_us.iter().sum();
    Plan {
        latency_us: op_total + dispatch_us + switch_us + overhead_us + io_us,
        ops,
        op_us,
        op_memory_us,
        op_bytes,
        segments: segments_out,
        op_segment,
        switches: Switches {
            count,
            bytes,
            cost_us: switch_us,
        },
        dispatch_us,
        overhead_us,
        io_us,
        energy,
        path: target.path,
    }
}

#[cfg(test)]
mod compute_units_tests {
    use super::ComputeUnits;

    #[test]
    fn compute_units_parse_both_spellings_and_map_to_core_ml() {
        for u in ComputeUnits::ALL {
            assert_eq!(ComputeUnits::parse(u.name()), Some(u));
            assert_eq!(ComputeUnits::parse(u.coreml_name()), Some(u));
            assert_eq!(u.to_string().parse::<ComputeUnits>(), Ok(u));
        }
        assert_eq!(
            ComputeUnits::parse("cpu-and-neural-engine"),
            Some(ComputeUnits::CpuAndNe)
        );
        assert!(
            "gpu-only"
                .parse::<ComputeUnits>()
                .unwrap_err()
                .contains("cpu-and-ne")
        );
        // Apple's MLComputeUnits raw values.
        let values: Vec<isize> = [
            ComputeUnits::CpuOnly,
            ComputeUnits::CpuAndGpu,
            ComputeUnits::All,
            ComputeUnits::CpuAndNe,
        ]
        .iter()
        .map(|u| u.coreml_value())
        .collect();
        assert_eq!(values, [0, 1, 2, 3]);
        // Serialized with the command-line spelling; the runtime's former spelling is read.
        assert_eq!(
            serde_json::to_string(&ComputeUnits::CpuAndNe).unwrap(),
            "\"cpu-and-ne\""
        );
        let old: ComputeUnits = serde_json::from_str("\"cpu-and-neural-engine\"").unwrap();
        assert_eq!(old, ComputeUnits::CpuAndNe);
    }
}
