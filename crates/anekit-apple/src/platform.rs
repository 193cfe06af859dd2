//! What the running Apple OS offers: runtime feature checks and device detection.

use objc2::rc::autoreleasepool;
use objc2::runtime::ProtocolObject;
use objc2_core_ml::{
    MLAllComputeDevices, MLCPUComputeDevice, MLComputeDeviceProtocol, MLGPUComputeDevice,
    MLNeuralEngineComputeDevice,
};

use crate::device::{ChipIdentity, DeviceReport, NeuralEngineInfo};
use crate::status::Feature;

/// Why `feature`, present in this build, cannot be used on the running OS (`None` when it
/// can).
pub(crate) fn runtime_reason(feature: Feature) -> Option<String> {
    match feature {
        Feature::NeuralEngineInfo if !objc2::available!(macos = 14.0, ios = 17.0) => {
            Some("MLAllComputeDevices needs macOS 14 / iOS 17 or later".into())
        }
        Feature::ComputePlan if !objc2::available!(macos = 14.4, ios = 17.4) => {
            Some("MLComputePlan needs macOS 14.4 / iOS 17.4 or later".into())
        }
        Feature::Metal | Feature::MpsGraph
            if objc2_metal::MTLCreateSystemDefaultDevice().is_none() =>
        {
            Some("no Metal device (a virtual machine without GPU passthrough?)".into())
        }
        #[cfg(target_os = "macos")]
        Feature::DirectAne => crate::private::load()
            .and_then(|()| crate::private::class(c"_ANEInMemoryModel").map(|_| ()))
            .err()
            .map(|e| e.to_string()),
        _ => None,
    }
}

/// Core ML's compute devices by kind, and the Neural Engine's core count.
fn compute_devices(notes: &mut Vec<String>) -> (Vec<String>, Option<NeuralEngineInfo>) {
    if !objc2::available!(macos = 14.0, ios = 17.0) {
        notes.push("MLAllComputeDevices needs macOS 14 / iOS 17; Neural Engine not probed".into());
        return (Vec::new(), None);
    }
    autoreleasepool(|_| {
        // SAFETY: available since macOS 14 / iOS 17 (checked above); returns an array of
        // compute-device objects.
        let all = unsafe { MLAllComputeDevices() };
        let mut kinds = Vec::new();
        let mut ane = NeuralEngineInfo::default();
        for d in all.iter() {
            let obj: &ProtocolObject<dyn MLComputeDeviceProtocol> = &d;
            let any: &objc2::runtime::AnyObject = obj.as_ref();
            if let Some(ne) = any.downcast_ref::<MLNeuralEngineComputeDevice>() {
                kinds.push("neural-engine".to_string());
                ane.present = true;
                // SAFETY: a property getter of a live device object.
                let cores = unsafe { ne.totalCoreCount() };
                ane.total_cores = u64::try_from(cores).ok();
            } else if any.downcast_ref::<MLGPUComputeDevice>().is_some() {
                kinds.push("gpu".to_string());
            } else if any.downcast_ref::<MLCPUComputeDevice>().is_some() {
                kinds.push("cpu".to_string());
            } else {
                kinds.push(any.class().name().to_string_lossy().into_owned());
            }
        }
        (kinds, Some(ane))
    })
}

/// Fills `report` with what this Apple machine says about itself.
pub(crate) fn detect_into(report: &mut DeviceReport) {
    let facts = crate::sysctl::read();
    #[cfg(target_os = "macos")]
    let soc = crate::iokit::soc_identity();
    #[cfg(not(target_os = "macos"))]
    let soc = crate::iokit::SocIdentity::default();
    report.chip = Some(ChipIdentity {
        brand_string: facts.brand_string.clone(),
        soc,
    });
    report.sysctl = Some(facts);
    let (kinds, ane) = compute_devices(&mut report.notes);
    report.compute_devices = kinds;
    #[cfg_attr(not(target_os = "macos"), allow(unused_mut))]
    let mut ane = ane.unwrap_or_default();
    #[cfg(target_os = "macos")]
    {
        match crate::private::device_info() {
            Ok(info) => {
                if !ane.present && info.has_ane == Some(true) {
                    ane.present = true;
                }
                ane.private = Some(info);
            }
            Err(e) => report.notes.push(format!("_ANEDeviceInfo: {e}")),
        }
        ane.registry = crate::iokit::ane_entries();
        if !ane.present && !ane.registry.is_empty() {
            ane.present = true;
        }
    }
    report.neural_engine = Some(ane);
    report.metal_devices = crate::metal::device_infos();
}
