//! `MLComputePlan` (macOS 14.4 / iOS 17.4): Core ML's own per-op placement, extracted as
//! plain [`DeviceOpRecord`]s for anekit-plan's [`device_plan`](anekit_plan::device_plan).

use std::path::Path;
use std::sync::mpsc;

use anekit_plan::device_plan::{DeviceKind, DeviceOpRecord};
use anekit_runtime::ComputeUnits;
use block2::RcBlock;
use objc2::available;
use objc2::rc::{Retained, autoreleasepool};
use objc2::runtime::{AnyObject, ProtocolObject};
use objc2_core_ml::{
    MLComputeDeviceProtocol, MLComputePlan, MLComputeUnits, MLModelConfiguration,
    MLModelStructureProgramBlock, MLModelStructureProgramOperation,
};
use objc2_foundation::{NSError, NSURL};

use crate::cf;
use crate::error::{AppleError, Result};

/// The kind of a compute device, by its class and superclasses: `isKindOfClass:`'s
/// semantics ([`super::device_kind_of`]), so that a subclass Apple adds counts as its family.
fn device_kind(d: &ProtocolObject<dyn MLComputeDeviceProtocol>) -> DeviceKind {
    let any: &AnyObject = d.as_ref();
    let mut chain = Vec::new();
    let mut cls = Some(any.class());
    while let Some(c) = cls {
        chain.push(c.name().to_string_lossy().into_owned());
        if chain.len() > 32 {
            break;
        }
        cls = c.superclass();
    }
    super::device_kind_of(&chain)
}

/// Loads the compute plan of the compiled model at `compiled` for `units` and returns one
/// record per ML Program operation (every function, nested blocks included) or per
/// NeuralNetwork layer.
pub fn compute_plan(compiled: &Path, units: ComputeUnits) -> Result<Vec<DeviceOpRecord>> {
    if !available!(macos = 14.4, ios = 17.4) {
        return Err(AppleError::Unavailable {
            feature: "MLComputePlan",
            reason: "needs macOS 14.4 / iOS 17.4 or later".into(),
        });
    }
    let url = NSURL::from_directory_path(compiled).ok_or_else(|| {
        AppleError::invalid(compiled.display().to_string(), "not an absolute path")
    })?;
    autoreleasepool(|_| {
        // SAFETY: creating and setting a fresh configuration.
        let config = unsafe { MLModelConfiguration::new() };
        // SAFETY: a valid MLComputeUnits value.
        unsafe { config.setComputeUnits(MLComputeUnits(units.coreml_value())) };
        let (tx, rx) = mpsc::channel::<Result<SendPlan>>();
        let block = RcBlock::new(move |plan: *mut MLComputePlan, err: *mut NSError| {
            // SAFETY: Core ML passes a valid plan or error (or null) for the handler's
            // duration; retaining keeps them alive.
            let r = unsafe {
                match (Retained::retain(plan), Retained::retain(err)) {
                    (Some(p), _) => Ok(SendPlan(p)),
                    (None, Some(e)) => Err(cf::ns_error("MLComputePlan loadContentsOfURL", &e)),
                    (None, None) => Err(AppleError::null(
                        "MLComputePlan loadContentsOfURL",
                        "no plan",
                    )),
                }
            };
            let _ = tx.send(r);
        });
        crate::exception::guard(
            "+[MLComputePlan loadContentsOfURL:configuration:completionHandler:]",
            || {
                // SAFETY: available (checked); the handler is called once.
                unsafe {
                    MLComputePlan::loadContentsOfURL_configuration_completionHandler(
                        &url, &config, &block,
                    )
                }
            },
        )?;
        let plan = rx
            .recv()
            .map_err(|_| {
                AppleError::null(
                    "MLComputePlan loadContentsOfURL",
                    "the handler was never called",
                )
            })??
            .0;
        crate::exception::guard("MLComputePlan (reading the plan)", || extract(&plan))?
    })
}

/// A compute plan moved from Core ML's callback queue to the waiting thread.
struct SendPlan(Retained<MLComputePlan>);

// SAFETY: the plan is an immutable, reference-counted result object; it is only read, on
// the thread that receives it, after the callback that produced it has returned.
unsafe impl Send for SendPlan {}

fn extract(plan: &MLComputePlan) -> Result<Vec<DeviceOpRecord>> {
    let mut out = Vec::new();
    // SAFETY: reading the structure of a loaded plan.
    let structure = unsafe { plan.modelStructure() };
    // SAFETY: reading the program of the structure (nil for other model types).
    if let Some(program) = unsafe { structure.program() } {
        // SAFETY: reading the functions of a program.
        let functions = unsafe { program.functions() };
        let (names, funcs) = functions.to_vecs();
        for (name, f) in names.iter().zip(funcs.iter()) {
            // SAFETY: reading the main block of a function.
            let block = unsafe { f.block() };
            walk_block(plan, &name.to_string(), &block, 0, &mut out);
        }
        return Ok(out);
    }
    // SAFETY: reading the NeuralNetwork of the structure (nil for other model types).
    if let Some(nn) = unsafe { structure.neuralNetwork() } {
        // SAFETY: reading the layers of a NeuralNetwork.
        for layer in unsafe { nn.layers() }.iter() {
            // SAFETY: asking the plan about one of its own layers.
            let usage = unsafe { plan.computeDeviceUsageForNeuralNetworkLayer(&layer) };
            let (preferred, supported) = usage_of(usage.as_deref());
            out.push(DeviceOpRecord {
                function: "main".into(),
                // SAFETY: reading layer properties.
                operator: unsafe { layer.r#type() }.to_string(),
                // SAFETY: as above.
                outputs: unsafe { layer.outputNames() }
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                depth: 0,
                preferred,
                supported,
                cost_weight: None,
            });
        }
        return Ok(out);
    }
    Err(AppleError::invalid(
        "MLComputePlan",
        "the model is neither an ML Program nor a NeuralNetwork (pipelines are not walked)",
    ))
}

fn usage_of(
    usage: Option<&objc2_core_ml::MLComputePlanDeviceUsage>,
) -> (Option<DeviceKind>, Vec<DeviceKind>) {
    match usage {
        None => (None, Vec::new()),
        Some(u) => {
            // SAFETY: reading the devices of a device-usage object.
            let preferred = unsafe { u.preferredComputeDevice() };
            // SAFETY: as above.
            let supported = unsafe { u.supportedComputeDevices() };
            (
                Some(device_kind(&preferred)),
                supported.iter().map(|d| device_kind(&d)).collect(),
            )
        }
    }
}

fn walk_block(
    plan: &MLComputePlan,
    function: &str,
    block: &MLModelStructureProgramBlock,
    depth: usize,
    out: &mut Vec<DeviceOpRecord>,
) {
    if depth > 64 {
        return;
    }
    // SAFETY: reading the operations of a block of this plan's structure.
    for op in unsafe { block.operations() }.iter() {
        record(plan, function, &op, depth, out);
        // SAFETY: reading the nested blocks of an operation.
        for nested in unsafe { op.blocks() }.iter() {
            walk_block(plan, function, &nested, depth + 1, out);
        }
    }
}

fn record(
    plan: &MLComputePlan,
    function: &str,
    op: &MLModelStructureProgramOperation,
    depth: usize,
    out: &mut Vec<DeviceOpRecord>,
) {
    // SAFETY: asking the plan about one of its own operations (nil when undetermined).
    let usage = unsafe { plan.computeDeviceUsageForMLProgramOperation(op) };
    let (preferred, supported) = usage_of(usage.as_deref());
    // SAFETY: as above (nil for ops without a cost, e.g. constants).
    let cost = unsafe { plan.estimatedCostOfMLProgramOperation(op) };
    out.push(DeviceOpRecord {
        function: function.to_string(),
        // SAFETY: reading operation properties.
        operator: unsafe { op.operatorName() }.to_string(),
        // SAFETY: as above.
        outputs: unsafe { op.outputs() }
            .iter()
            // SAFETY: reading an output's name.
            .map(|o| unsafe { o.name() }.to_string())
            .collect(),
        depth,
        preferred,
        supported,
        // SAFETY: reading the weight of a cost object.
        cost_weight: cost.map(|c| unsafe { c.weight() }),
    });
}
