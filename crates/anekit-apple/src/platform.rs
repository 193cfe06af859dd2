//! What the running Apple OS offers: runtime feature checks and device detection.
//!
//! Nothing is asserted: every reader is probed (a virtual machine has no IOReport groups,
//! no SMC, no IOAccelerator statistics and no Neural Engine), and every API newer than the
//! oldest supported OS is reached through a message send guarded by `available!`, never
//! through a symbol the dynamic linker would bind at launch (docs/apple.md).

use objc2::rc::autoreleasepool;
use objc2::runtime::ProtocolObject;
use objc2_core_ml::{
    MLCPUComputeDevice, MLComputeDeviceProtocol, MLGPUComputeDevice, MLModel,
    MLNeuralEngineComputeDevice,
};

use crate::device::{ChipIdentity, DeviceReport, NeuralEngineInfo};
use crate::status::Feature;

/// The running OS's (major, minor) version, from `NSProcessInfo`.
pub(crate) fn os_version() -> (u32, u32) {
    let v = objc2_foundation::NSProcessInfo::processInfo().operatingSystemVersion();
    (
        u32::try_from(v.majorVersion).unwrap_or(0),
        u32::try_from(v.minorVersion).unwrap_or(0),
    )
}

/// Why anekit's Apple paths cannot run on this OS version (`None` when they can).
pub(crate) fn os_reason() -> Option<String> {
    crate::status::os_too_old(std::env::consts::OS, os_version())
}

/// Why `feature`, present in this build, cannot be used on the running OS and machine
/// (`None` when it can).
pub(crate) fn runtime_reason(feature: Feature) -> Option<String> {
    if matches!(
        feature,
        Feature::CoreMl | Feature::ComputePlan | Feature::DirectAne
    ) && let Some(r) = os_reason()
    {
        return Some(r);
    }
    match feature {
        Feature::NeuralEngineInfo if !objc2::available!(macos = 14.0, ios = 17.0) => {
            Some("+[MLModel availableComputeDevices] needs macOS 14 / iOS 17 or later".into())
        }
        Feature::ComputePlan if !objc2::available!(macos = 14.4, ios = 17.4) => {
            Some("MLComputePlan needs macOS 14.4 / iOS 17.4 or later".into())
        }
        Feature::Metal | Feature::MpsGraph
            if objc2_metal::MTLCreateSystemDefaultDevice().is_none() =>
        {
            Some("no Metal device (a virtual machine without GPU passthrough?)".into())
        }
        Feature::DirectAne => crate::ane::availability_reason(),
        #[cfg(target_os = "macos")]
        Feature::IoReport => {
            let counts =
                crate::ioreport::Subscription::channel_counts(&crate::ioreport::DEFAULT_GROUPS);
            counts.iter().all(|(_, n)| *n == 0).then(|| {
                "no channel in the Energy Model, CPU Stats or GPU Stats groups (virtual \
                 machines have none)"
                    .to_string()
            })
        }
        #[cfg(target_os = "macos")]
        Feature::GpuStatistics => match crate::iokit::gpu_statistics() {
            Ok(g) if g.is_empty() => {
                Some("no IOAccelerator publishes PerformanceStatistics (a virtual machine?)".into())
            }
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        },
        #[cfg(target_os = "macos")]
        Feature::Smc => crate::smc::Smc::open().err().map(|e| e.to_string()),
        #[cfg(target_os = "macos")]
        Feature::HidSensors => match crate::hid::temperatures() {
            Ok(t) if t.is_empty() => Some("no HID temperature sensor answered".into()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        },
        _ => None,
    }
}

/// Core ML's compute devices by kind, and the Neural Engine's core count, through
/// `+[MLModel availableComputeDevices]` (a message send: the `MLAllComputeDevices()`
/// function is a strong symbol of macOS 14 that would keep the binary from launching on
/// older systems).
fn compute_devices(notes: &mut Vec<String>) -> (Vec<String>, Option<NeuralEngineInfo>) {
    if !objc2::available!(macos = 14.0, ios = 17.0) {
        notes.push(
            "+[MLModel availableComputeDevices] needs macOS 14 / iOS 17; Neural Engine not probed"
                .into(),
        );
        return (Vec::new(), None);
    }
    let r = crate::exception::guard("+[MLModel availableComputeDevices]", || {
        autoreleasepool(|_| {
            // SAFETY: available since macOS 14 / iOS 17 (checked above); a class property
            // returning an array of compute-device objects.
            let all = unsafe { MLModel::availableComputeDevices() };
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
    });
    match r {
        Ok(v) => v,
        Err(e) => {
            notes.push(e.to_string());
            (Vec::new(), None)
        }
    }
}

/// Fills `report` with what this Apple machine says about itself.
pub(crate) fn detect_into(report: &mut DeviceReport) {
    if let Some(r) = os_reason() {
        report.notes.push(r);
    }
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
    // The private framework is loaded only in builds that asked for it.
    #[cfg(all(target_os = "macos", feature = "private-ane"))]
    match crate::private::device_info() {
        Ok(info) => {
            if !ane.present && info.has_ane == Some(true) {
                ane.present = true;
            }
            ane.private = Some(info);
        }
        Err(e) => report.notes.push(format!("_ANEDeviceInfo: {e}")),
    }
    #[cfg(target_os = "macos")]
    {
        ane.registry = crate::iokit::ane_entries();
        if !ane.present && !ane.registry.is_empty() {
            ane.present = true;
        }
    }
    report.neural_engine = Some(ane);
    report.metal_devices = crate::metal::device_infos();
}
