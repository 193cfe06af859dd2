//! Core ML's own compute plan (`MLComputePlan`, read on a Mac by anekit-apple) as placement
//! data, and its comparison with the prediction.
//!
//! anekit-apple walks `MLComputePlan.modelStructure` and hands over one plain
//! [`DeviceOpRecord`] per operation: the operator, its outputs, the preferred device and the
//! supported devices (`MLComputePlanDeviceUsage`), and the estimated cost weight
//! (`MLComputePlanCost.weight`, the op's share of the model's work). Everything here is
//! plain arithmetic on those records, tested on any OS:
//!
//! - [`device_plan`] turns records into [`OpPlace`]s (the same per-op placement the
//!   predictor produces) with coverage by op count and by Core ML's cost weight;
//! - [`compare`] aligns a device plan with a [`Report`]'s ops and says where the prediction
//!   and Core ML agree.
//!
//! Semantics (docs/references.md#mlcomputeplan): an op with no device usage (constants, ops folded
//! away) has no preferred device and runs nowhere ([`Unit::None`]); the plan is Core ML's
//! intent, not a trace of what ran.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cost::Unit;
use crate::placement::OpPlace;
use crate::report::Report;

/// A compute device as `MLComputePlanDeviceUsage` names it (by class).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// `MLCPUComputeDevice`.
    Cpu,
    /// `MLGPUComputeDevice`.
    Gpu,
    /// `MLNeuralEngineComputeDevice`.
    NeuralEngine,
    /// A device class this version does not know.
    Other(String),
}

impl DeviceKind {
    /// The kind for a Core ML device class name (`MLNeuralEngineComputeDevice` → Neural
    /// Engine).
    pub fn from_class(class: &str) -> Self {
        match class {
            "MLCPUComputeDevice" => DeviceKind::Cpu,
            "MLGPUComputeDevice" => DeviceKind::Gpu,
            "MLNeuralEngineComputeDevice" => DeviceKind::NeuralEngine,
            other => DeviceKind::Other(other.to_string()),
        }
    }

    /// The placement unit (an unknown device counts as the CPU, Core ML's fallback).
    pub fn unit(&self) -> Unit {
        match self {
            DeviceKind::Cpu | DeviceKind::Other(_) => Unit::Cpu,
            DeviceKind::Gpu => Unit::Gpu,
            DeviceKind::NeuralEngine => Unit::Ane,
        }
    }
}

/// One operation of `MLComputePlan`, as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceOpRecord {
    /// The function it belongs to (`main`).
    pub function: String,
    /// `MLModelStructureProgramOperation.operatorName` (`conv`, `ios18.conv`, `const`).
    pub operator: String,
    /// Names of its outputs (what identifies a MIL op).
    pub outputs: Vec<String>,
    /// Nesting depth (ops inside `cond`/`while_loop` blocks are > 0).
    pub depth: usize,
    /// `preferredComputeDevice`; `None` when Core ML reports no device usage.
    pub preferred: Option<DeviceKind>,
    /// `supportedComputeDevices`.
    pub supported: Vec<DeviceKind>,
    /// `estimatedCostOfMLProgramOperation:`.weight (0–1), when reported.
    pub cost_weight: Option<f64>,
}

impl DeviceOpRecord {
    /// The op type without an opset prefix (`ios18.conv` → `conv`).
    pub fn op_type(&self) -> &str {
        op_type(&self.operator)
    }
}

/// An operator name without an opset prefix (`ios18.conv` → `conv`, `conv` → `conv`).
pub fn op_type(operator: &str) -> &str {
    match operator.split_once('.') {
        Some((prefix, rest)) if prefix.starts_with("ios") || prefix.starts_with("CoreML") => rest,
        _ => operator,
    }
}

/// One op of Core ML's plan as placement data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceOp {
    /// The op's first output (its name in the program).
    pub name: String,
    /// The op type.
    pub op_type: String,
    /// Where Core ML places it, and why not the Neural Engine.
    #[serde(skip)]
    pub place: OpPlace,
    /// Its unit (the same as `place.unit`, for serialization).
    pub unit: Unit,
    /// Units Core ML says could run it.
    pub supported: Vec<Unit>,
    /// Core ML's cost weight.
    pub cost_weight: Option<f64>,
    /// Nesting depth.
    pub depth: usize,
}

/// Core ML's plan of one function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicePlan {
    /// The function.
    pub function: String,
    /// Its ops in order.
    pub ops: Vec<DeviceOp>,
    /// Ops on a unit (not constants) and how many per unit.
    pub units: BTreeMap<String, usize>,
    /// Share of the compute ops on the Neural Engine.
    pub ane_fraction_ops: f64,
    /// Share of Core ML's cost weight on the Neural Engine (of the weight reported).
    pub ane_fraction_cost: f64,
}

fn reasons(preferred: Option<&DeviceKind>, supported: &[DeviceKind]) -> Vec<String> {
    match preferred {
        None | Some(DeviceKind::NeuralEngine) => Vec::new(),
        Some(p) => {
            if supported.contains(&DeviceKind::NeuralEngine) {
                vec![format!(
                    "Core ML prefers the {} although the Neural Engine supports it",
                    p.unit().name()
                )]
            } else {
                vec!["Core ML reports the Neural Engine cannot run it".to_string()]
            }
        }
    }
}

/// Core ML's plan of `function` from its records (records of other functions are skipped).
pub fn device_plan(records: &[DeviceOpRecord], function: &str) -> DevicePlan {
    let mut ops = Vec::new();
    let mut units: BTreeMap<String, usize> = BTreeMap::new();
    let (mut compute, mut ane) = (0usize, 0usize);
    let (mut weight, mut ane_weight) = (0f64, 0f64);
    for r in records.iter().filter(|r| r.function == function) {
        let unit = r.preferred.as_ref().map_or(Unit::None, DeviceKind::unit);
        if unit != Unit::None {
            compute += 1;
            *units.entry(unit.name().to_string()).or_insert(0) += 1;
            if unit == Unit::Ane {
                ane += 1;
            }
        }
        if let Some(w) = r.cost_weight.filter(|w| w.is_finite() && *w >= 0.0) {
            weight += w;
            if unit == Unit::Ane {
                ane_weight += w;
            }
        }
        let mut supported: Vec<Unit> = r.supported.iter().map(DeviceKind::unit).collect();
        supported.sort();
        supported.dedup();
        ops.push(DeviceOp {
            name: r.outputs.first().cloned().unwrap_or_default(),
            op_type: r.op_type().to_string(),
            place: OpPlace {
                unit,
                reasons: reasons(r.preferred.as_ref(), &r.supported),
            },
            unit,
            supported,
            cost_weight: r.cost_weight,
            depth: r.depth,
        });
    }
    DevicePlan {
        function: function.to_string(),
        ops,
        units,
        ane_fraction_ops: if compute == 0 {
            0.0
        } else {
            ane as f64 / compute as f64
        },
        ane_fraction_cost: if weight > 0.0 {
            ane_weight / weight
        } else {
            0.0
        },
    }
}

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    /// Index of the op in the report.
    pub index: usize,
    /// The op's name.
    pub name: String,
    /// The op type.
    pub op_type: String,
    /// What anekit predicted.
    pub predicted: Unit,
    /// What Core ML plans (`None` when no op of the device plan matched).
    pub coreml: Option<Unit>,
    /// Core ML's cost weight of the op.
    pub cost_weight: Option<f64>,
}

impl ComparisonRow {
    /// Whether both name the same unit.
    pub fn agrees(&self) -> bool {
        self.coreml == Some(self.predicted)
    }
}

/// The prediction and Core ML's plan side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// One row per compute op of the report.
    pub rows: Vec<ComparisonRow>,
    /// Rows matched with a Core ML op.
    pub matched: usize,
    /// Matched rows on the same unit.
    pub agreeing: usize,
    /// Core ML compute ops no report op matched.
    pub unmatched_device_ops: usize,
    /// Predicted share of compute ops on the Neural Engine.
    pub predicted_ane_fraction: f64,
    /// Core ML's share of compute ops on the Neural Engine.
    pub coreml_ane_fraction: f64,
}

impl Comparison {
    /// `agreeing / matched` (1 when nothing matched).
    pub fn agreement(&self) -> f64 {
        if self.matched == 0 {
            1.0
        } else {
            self.agreeing as f64 / self.matched as f64
        }
    }
}

/// Aligns the report's compute ops with Core ML's: first by name (an op's name is normally
/// its first output's name), then, for ops left over, in order among ops of the same type.
pub fn compare(report: &Report, plan: &DevicePlan) -> Comparison {
    let device: Vec<&DeviceOp> = plan.ops.iter().filter(|o| o.unit != Unit::None).collect();
    let mut used = vec![false; device.len()];
    let report_ops: Vec<_> = report.ops.iter().filter(|o| o.unit != Unit::None).collect();
    let mut matches: Vec<Option<usize>> = vec![None; report_ops.len()];
    let by_name: BTreeMap<&str, usize> = device
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    for (ri, r) in report_ops.iter().enumerate() {
        if let Some(&di) = by_name.get(r.name.as_str())
            && !used[di]
        {
            used[di] = true;
            matches[ri] = Some(di);
        }
    }
    // In-order alignment by type for the rest.
    let mut cursor = 0usize;
    for (ri, r) in report_ops.iter().enumerate() {
        if let Some(di) = matches[ri] {
            cursor = cursor.max(di + 1);
            continue;
        }
        if let Some(di) =
            (cursor..device.len()).find(|&d| !used[d] && device[d].op_type == r.op_type)
        {
            used[di] = true;
            matches[ri] = Some(di);
            cursor = di + 1;
        }
    }
    let rows: Vec<ComparisonRow> = report_ops
        .iter()
        .zip(&matches)
        .map(|(r, m)| ComparisonRow {
            index: r.index,
            name: r.name.clone(),
            op_type: r.op_type.clone(),
            predicted: r.unit,
            coreml: m.map(|d| device[d].unit),
            cost_weight: m.and_then(|d| device[d].cost_weight),
        })
        .collect();
    let matched = rows.iter().filter(|r| r.coreml.is_some()).count();
    let agreeing = rows.iter().filter(|r| r.agrees()).count();
    let predicted_ane = report_ops.iter().filter(|r| r.unit == Unit::Ane).count();
    Comparison {
        matched,
        agreeing,
        unmatched_device_ops: used.iter().filter(|u| !**u).count(),
        predicted_ane_fraction: if report_ops.is_empty() {
            0.0
        } else {
            predicted_ane as f64 / report_ops.len() as f64
        },
        coreml_ane_fraction: plan.ane_fraction_ops,
        rows,
    }
}

/// The comparison as a text table (the rows that disagree, or all with `all`).
pub fn comparison_text(c: &Comparison, all: bool) -> String {
    let mut out = format!(
        "Core ML's plan vs the prediction: {} of {} matched ops agree ({:.0}%); Neural Engine share: predicted {:.0}%, Core ML {:.0}%\n",
        c.agreeing,
        c.matched,
        100.0 * c.agreement(),
        100.0 * c.predicted_ane_fraction,
        100.0 * c.coreml_ane_fraction,
    );
    if c.unmatched_device_ops > 0 {
        out.push_str(&format!(
            "{} Core ML ops matched no predicted op\n",
            c.unmatched_device_ops
        ));
    }
    let rows: Vec<&ComparisonRow> = c.rows.iter().filter(|r| all || !r.agrees()).collect();
    if !rows.is_empty() {
        out.push_str(&format!(
            "{:>5}  {:<32} {:<16} {:<9} {:<9} {}\n",
            "#", "op", "type", "predicted", "Core ML", "cost"
        ));
        for r in rows {
            out.push_str(&format!(
                "{:>5}  {:<32} {:<16} {:<9} {:<9} {}\n",
                r.index,
                r.name,
                r.op_type,
                r.predicted.name(),
                r.coreml.map_or("-", Unit::name),
                r.cost_weight
                    .map_or("-".to_string(), |w| format!("{:.3}", w)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        op: &str,
        out: &str,
        pref: Option<DeviceKind>,
        sup: &[DeviceKind],
        w: f64,
    ) -> DeviceOpRecord {
        DeviceOpRecord {
            function: "main".into(),
            operator: op.into(),
            outputs: vec![out.into()],
            depth: 0,
            preferred: pref,
            supported: sup.to_vec(),
            cost_weight: Some(w),
        }
    }

    fn records() -> Vec<DeviceOpRecord> {
        use DeviceKind::*;
        vec![
            rec("const", "w", None, &[], 0.0),
            rec(
                "ios18.conv",
                "c",
                Some(NeuralEngine),
                &[Cpu, Gpu, NeuralEngine],
                0.6,
            ),
            rec(
                "ios18.relu",
                "r",
                Some(NeuralEngine),
                &[Cpu, Gpu, NeuralEngine],
                0.1,
            ),
            rec("ios18.gather", "g", Some(Cpu), &[Cpu, Gpu], 0.2),
            rec(
                "ios18.softmax",
                "s",
                Some(Gpu),
                &[Cpu, Gpu, NeuralEngine],
                0.1,
            ),
        ]
    }

    #[test]
    fn device_classes_map_to_units() {
        assert_eq!(
            DeviceKind::from_class("MLNeuralEngineComputeDevice").unit(),
            Unit::Ane
        );
        assert_eq!(
            DeviceKind::from_class("MLGPUComputeDevice").unit(),
            Unit::Gpu
        );
        assert_eq!(
            DeviceKind::from_class("MLCPUComputeDevice").unit(),
            Unit::Cpu
        );
        assert_eq!(
            DeviceKind::from_class("MLFutureDevice"),
            DeviceKind::Other("MLFutureDevice".into())
        );
        assert_eq!(op_type("ios18.conv"), "conv");
        assert_eq!(op_type("conv"), "conv");
        assert_eq!(op_type("my.custom"), "my.custom");
    }

    #[test]
    fn records_become_placements_with_coverage() {
        let plan = device_plan(&records(), "main");
        assert_eq!(plan.ops.len(), 5);
        assert_eq!(plan.ops[0].unit, Unit::None);
        assert_eq!(plan.ops[1].op_type, "conv");
        assert_eq!(plan.ops[1].place.unit, Unit::Ane);
        assert!(plan.ops[1].place.reasons.is_empty());
        assert_eq!(plan.ops[3].place.unit, Unit::Cpu);
        assert_eq!(
            plan.ops[3].place.reasons,
            ["Core ML reports the Neural Engine cannot run it"]
        );
        assert!(plan.ops[4].place.reasons[0].contains("prefers the gpu"));
        assert_eq!(plan.ops[1].supported, [Unit::Ane, Unit::Gpu, Unit::Cpu]);
        assert_eq!(plan.units["ane"], 2);
        assert_eq!(plan.units["cpu"], 1);
        assert_eq!(plan.units["gpu"], 1);
        assert!((plan.ane_fraction_ops - 0.5).abs() < 1e-12);
        assert!((plan.ane_fraction_cost - 0.7).abs() < 1e-12);
        assert!(device_plan(&records(), "other").ops.is_empty());
    }

    #[test]
    fn comparison_aligns_by_name_then_by_type() {
        let p = anekit_mil::text::parse_without_weights(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 4, 8, 8]> x, tensor<int32, [2]> idx) {
            tensor<fp16, [4, 4, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [4, 4, 1, 1]>([[[[1]], [[0]], [[0]], [[0]]], [[[0]], [[1]], [[0]], [[0]]], [[[0]], [[0]], [[1]], [[0]]], [[[0]], [[0]], [[0]], [[1]]]])];
            tensor<fp16, [1, 4, 8, 8]> c = conv(x = x, weight = w, pad_type = string("valid"), strides = tensor<int32, [2]>([1, 1]), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string("c")];
            tensor<fp16, [1, 4, 8, 8]> renamed = relu(x = c)[name = string("some_relu")];
            tensor<fp16, [1, 4, 8, 8]> s = softmax(x = renamed, axis = int32(-1))[name = string("s")];
        } -> (s);
}
"#,
            "<test>",
        )
        .unwrap();
        let report = crate::analyze_program(
            &p,
            &[],
            None,
            &crate::Options {
                chip: "M1".into(),
                compare: false,
                allow_invalid: false,
                ..crate::Options::default()
            },
        )
        .unwrap();
        let mut recs = records();
        recs.retain(|r| r.op_type() != "gather");
        let plan = device_plan(&recs, "main");
        let c = compare(&report, &plan);
        let names: Vec<&str> = c.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "some_relu", "s"]);
        assert_eq!(c.matched, 3, "{c:?}");
        // `some_relu` has no Core ML op of that name: matched by type and order to `r`.
        assert_eq!(c.rows[1].coreml, Some(Unit::Ane));
        assert_eq!(c.rows[2].coreml, Some(Unit::Gpu));
        assert_eq!(c.unmatched_device_ops, 0);
        let text = comparison_text(&c, true);
        assert!(text.contains("Core ML's plan vs the prediction"), "{text}");
        assert!(text.contains("some_relu"));
    }
}
