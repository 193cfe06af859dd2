//! Placements of a whole model by one backend, as the per-op records anekit-plan compares
//! with its prediction (`anekit analyze --device --backend B`): Core ML's own plan comes from
//! `MLComputePlan` ([`crate::coreml::compute_plan_records`]); the CPU backend runs every op
//! on the CPU; the direct Neural Engine backend runs every op on the Neural Engine or
//! refuses the program.

use anekit_mil::model::Model;
use anekit_mil::program::Block;
use anekit_plan::device_plan::{DeviceKind, DeviceOpRecord};
use anekit_runtime::ComputeUnits;

use crate::error::{AppleError, Result};

fn walk(
    block: &Block,
    function: &str,
    depth: usize,
    device: &DeviceKind,
    out: &mut Vec<DeviceOpRecord>,
) {
    for op in &block.operations {
        let constant = op.op_type == "const";
        out.push(DeviceOpRecord {
            function: function.to_string(),
            operator: op.op_type.clone(),
            outputs: op.outputs.iter().map(|o| o.name.clone()).collect(),
            depth,
            // Core ML reports no device for constants; neither do these records.
            preferred: (!constant).then(|| device.clone()),
            supported: if constant {
                Vec::new()
            } else {
                vec![device.clone()]
            },
            cost_weight: None,
        });
        for nested in &op.blocks {
            walk(nested, function, depth + 1, device, out);
        }
    }
}

/// One record per op of `function`, every compute op on `device`.
pub fn uniform_records(
    model: &Model,
    function: &str,
    device: DeviceKind,
) -> Result<Vec<DeviceOpRecord>> {
    let program = model
        .require_program()
        .map_err(|e| AppleError::invalid("model", e.to_string()))?;
    let f = program
        .functions
        .get(function)
        .ok_or_else(|| AppleError::invalid("function", format!("no function {function:?}")))?;
    let block = f
        .block()
        .ok_or_else(|| AppleError::invalid("function", "no block for its opset"))?;
    let mut out = Vec::new();
    walk(block, function, 0, &device, &mut out);
    Ok(out)
}

/// The direct backend's placement: the program is checked, exported for this chip,
/// compiled and loaded (on a Mac with the `private-ane` feature); when that works, every op
/// runs on the Neural Engine. Elsewhere, why it cannot.
pub fn ane_records(
    model: &Model,
    function: &str,
    units: ComputeUnits,
) -> Result<Vec<DeviceOpRecord>> {
    if let Some(reason) = crate::ane::availability_reason() {
        return Err(AppleError::Unavailable {
            feature: "the direct Neural Engine backend",
            reason,
        });
    }
    if !units.neural_engine() {
        return Err(AppleError::invalid(
            "compute units",
            format!("`{}` exclude the Neural Engine", units.name()),
        ));
    }
    #[cfg(all(target_os = "macos", feature = "private-ane"))]
    {
        let options = anekit_runtime::LoadOptions {
            function: Some(function.to_string()),
            ..Default::default()
        };
        let _loaded = crate::ane::AneModel::load(&crate::ane::AneBackend::new(), model, &options)?;
    }
    uniform_records(model, function, DeviceKind::NeuralEngine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let p = anekit_mil::text::parse_without_weights(
            "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n            tensor<fp32, [2]> c = const()[name = string(\"c\"), val = tensor<fp32, [2]>([1, 2])];\n            tensor<fp32, [2]> y = add(x = x, y = c)[name = string(\"y\")];\n        } -> (y);\n}\n",
            "<t>",
        )
        .unwrap();
        Model::from_program(Default::default(), p)
    }

    #[test]
    fn the_cpu_backend_places_every_compute_op_on_the_cpu() {
        let r = uniform_records(&model(), "main", DeviceKind::Cpu).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].preferred, None, "constants have no device");
        assert_eq!(r[1].preferred, Some(DeviceKind::Cpu));
        assert_eq!(r[1].outputs, ["y"]);
        let plan = anekit_plan::device_plan::device_plan(&r, "main");
        assert_eq!(plan.ane_fraction_ops, 0.0);
        assert!(uniform_records(&model(), "nope", DeviceKind::Cpu).is_err());
    }

    #[test]
    fn the_direct_backend_says_why_it_cannot_place_here() {
        if crate::ane::availability_reason().is_none() {
            return;
        }
        let e = ane_records(&model(), "main", ComputeUnits::All).unwrap_err();
        assert!(
            e.to_string()
                .contains("direct Neural Engine backend is unavailable"),
            "{e}"
        );
    }
}
