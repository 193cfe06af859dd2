//! Which Apple features this build has on this machine, and why not when it has not.
//!
//! The decision has two parts: what the build target allows (a Linux build has no Core ML;
//! an iOS build has no IOReport; the direct ANE path needs the `private-ane` cargo feature),
//! decided by [`build_reason`] from plain inputs so that it is tested on any OS; and, on Apple
//! platforms, what the running OS offers (a framework that fails to load, an OS older than
//! the API), checked by [`features`].

use serde::Serialize;

/// An Apple feature of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Chip, CPU clusters and memory from `sysctl` and the IORegistry.
    DeviceDetection,
    /// The Neural Engine as Core ML reports it (`MLNeuralEngineComputeDevice`).
    NeuralEngineInfo,
    /// The Core ML backend (compile, load, predict).
    CoreMl,
    /// Core ML's per-op compute plan (`MLComputePlan`).
    ComputePlan,
    /// The direct Neural Engine backend over the private AppleNeuralEngine framework.
    DirectAne,
    /// Metal devices, buffers and command queues.
    Metal,
    /// The MPSGraph path (matmul, conv, elementwise ops on the GPU).
    MpsGraph,
    /// IOReport energy and residency channels.
    IoReport,
    /// IOAccelerator `PerformanceStatistics` (GPU utilisation and memory).
    GpuStatistics,
    /// SMC temperature sensors and system power.
    Smc,
    /// IOHID temperature sensors.
    HidSensors,
}

impl Feature {
    /// Every feature, in display order.
    pub const ALL: [Feature; 11] = [
        Feature::DeviceDetection,
        Feature::NeuralEngineInfo,
        Feature::CoreMl,
        Feature::ComputePlan,
        Feature::DirectAne,
        Feature::Metal,
        Feature::MpsGraph,
        Feature::IoReport,
        Feature::GpuStatistics,
        Feature::Smc,
        Feature::HidSensors,
    ];

    /// A short name (`Core ML`, `IOReport`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Feature::DeviceDetection => "device detection",
            Feature::NeuralEngineInfo => "Neural Engine info",
            Feature::CoreMl => "Core ML",
            Feature::ComputePlan => "MLComputePlan",
            Feature::DirectAne => "direct ANE",
            Feature::Metal => "Metal",
            Feature::MpsGraph => "MPSGraph",
            Feature::IoReport => "IOReport",
            Feature::GpuStatistics => "IOAccelerator statistics",
            Feature::Smc => "SMC",
            Feature::HidSensors => "IOHID sensors",
        }
    }

    /// What the feature gives.
    pub fn description(self) -> &'static str {
        match self {
            Feature::DeviceDetection => {
                "chip, SoC id, CPU clusters and memory (sysctl, IORegistry)"
            }
            Feature::NeuralEngineInfo => {
                "Neural Engine presence and core count (+[MLModel availableComputeDevices]; _ANEDeviceInfo with private-ane)"
            }
            Feature::CoreMl => "run models through Core ML on CPU, GPU and Neural Engine",
            Feature::ComputePlan => {
                "Core ML's own per-op placement and cost (anekit analyze --device)"
            }
            Feature::DirectAne => {
                "compile MIL for the Neural Engine without Core ML (private AppleNeuralEngine framework)"
            }
            Feature::Metal => "GPU devices, buffers and command queues",
            Feature::MpsGraph => "matmul, conv and elementwise ops on the GPU with timing",
            Feature::IoReport => "energy per block (CPU, GPU, ANE, DRAM) and CPU/GPU residencies",
            Feature::GpuStatistics => {
                "GPU utilisation and memory (IOAccelerator PerformanceStatistics)"
            }
            Feature::Smc => "temperature sensors and system power (System Management Controller)",
            Feature::HidSensors => "die temperature sensors published as HID services",
        }
    }

    /// The operating systems where the feature exists.
    fn systems(self) -> &'static [&'static str] {
        match self {
            Feature::DirectAne
            | Feature::IoReport
            | Feature::GpuStatistics
            | Feature::Smc
            | Feature::HidSensors => &["macos"],
            _ => &["macos", "ios"],
        }
    }
}

/// The oldest macOS (major, minor) anekit's Apple paths support: ML Programs, the model type
/// anekit writes and runs, need Core ML 5 (macOS 12 / iOS 15; Apple's "Comparing ML Programs
/// and Neural Networks"). The binary itself starts on macOS 11 (the Rust target's default
/// deployment target): it binds no symbol newer than that (docs/apple.md, "Launch on older
/// systems").
pub const MIN_MACOS: (u32, u32) = (12, 0);
/// The oldest iOS anekit's Apple paths support (see [`MIN_MACOS`]).
pub const MIN_IOS: (u32, u32) = (15, 0);

/// Why an OS of `version` (major, minor) on `target_os` is too old for anekit's Apple paths
/// (`None` when it is recent enough, or not an Apple OS).
pub fn os_too_old(target_os: &str, version: (u32, u32)) -> Option<String> {
    let (min, name) = match target_os {
        "macos" => (MIN_MACOS, "macOS"),
        "ios" => (MIN_IOS, "iOS"),
        _ => return None,
    };
    (version < min).then(|| {
        format!(
            "{name} {}.{} is older than {name} {}.{}, the first with ML Programs (Core ML 5)",
            version.0, version.1, min.0, min.1
        )
    })
}

/// Whether a feature is available, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureStatus {
    /// The feature.
    pub feature: Feature,
    /// Its short name.
    pub name: &'static str,
    /// What it gives.
    pub description: &'static str,
    /// Whether it can be used here.
    pub available: bool,
    /// Why not, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FeatureStatus {
    fn new(feature: Feature, reason: Option<String>) -> Self {
        Self {
            feature,
            name: feature.name(),
            description: feature.description(),
            available: reason.is_none(),
            reason,
        }
    }
}

/// Why `feature` cannot exist in a build for `target_os` (Rust's `target_os` name:
/// `linux`, `macos`, `ios`, ...), given whether the `private-ane` cargo feature is on;
/// `None` when the build has it.
pub fn build_reason(feature: Feature, target_os: &str, private_ane: bool) -> Option<String> {
    let systems = feature.systems();
    if !systems.contains(&target_os) {
        let only = match systems {
            ["macos"] => "macOS".to_string(),
            _ => "Apple platforms (macOS, iOS)".to_string(),
        };
        let what = match feature {
            Feature::DirectAne => "the private AppleNeuralEngine framework",
            Feature::IoReport => "libIOReport",
            Feature::GpuStatistics => "the IOAccelerator registry",
            Feature::Smc => "the AppleSMC service",
            Feature::HidSensors => "the IOHID event system",
            Feature::CoreMl | Feature::ComputePlan | Feature::NeuralEngineInfo => "Core ML",
            Feature::Metal | Feature::MpsGraph => "Metal",
            Feature::DeviceDetection => "the Apple IORegistry",
        };
        return Some(format!(
            "{what} exists only on {only}; this build is for {}",
            os_display(target_os)
        ));
    }
    if feature == Feature::DirectAne && !private_ane {
        return Some(
            "built without the `private-ane` cargo feature of anekit-apple (the private API can \
             break on any macOS update and is not allowed in App Store builds)"
                .to_string(),
        );
    }
    None
}

fn os_display(target_os: &str) -> String {
    match target_os {
        "linux" => "Linux".into(),
        "macos" => "macOS".into(),
        "ios" => "iOS".into(),
        "windows" => "Windows".into(),
        "freebsd" => "FreeBSD".into(),
        other => other.into(),
    }
}

/// Why `feature` is not in this build (`None` when it is): [`build_reason`] for this target
/// and this crate's features.
pub fn reason_in_this_build(feature: Feature) -> Option<String> {
    build_reason(feature, std::env::consts::OS, cfg!(feature = "private-ane"))
}

/// The status of every feature for this build, without looking at the machine.
pub fn build_features() -> Vec<FeatureStatus> {
    Feature::ALL
        .iter()
        .map(|&f| FeatureStatus::new(f, reason_in_this_build(f)))
        .collect()
}

/// The status of every feature on this machine: [`build_features`], then, on Apple
/// platforms, checks of what the running OS offers (frameworks that load, OS versions that
/// have the API).
pub fn features() -> Vec<FeatureStatus> {
    #[cfg_attr(not(target_vendor = "apple"), allow(unused_mut))]
    let mut out = build_features();
    #[cfg(target_vendor = "apple")]
    for s in &mut out {
        if s.available
            && let Some(reason) = crate::platform::runtime_reason(s.feature)
        {
            s.available = false;
            s.reason = Some(reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_has_no_apple_feature_and_says_why() {
        for f in Feature::ALL {
            let r = build_reason(f, "linux", true).expect("unavailable on Linux");
            assert!(r.contains("this build is for Linux"), "{r}");
            assert!(r.contains("exists only on"), "{r}");
        }
        assert!(
            build_reason(Feature::CoreMl, "linux", false)
                .unwrap()
                .starts_with("Core ML exists only on Apple platforms (macOS, iOS)")
        );
        assert!(
            build_reason(Feature::Smc, "linux", false)
                .unwrap()
                .starts_with("the AppleSMC service exists only on macOS")
        );
    }

    #[test]
    fn macos_has_everything_but_the_private_path_needs_its_feature() {
        for f in Feature::ALL {
            assert_eq!(build_reason(f, "macos", true), None, "{f:?}");
        }
        let r = build_reason(Feature::DirectAne, "macos", false).unwrap();
        assert!(r.contains("private-ane"), "{r}");
    }

    #[test]
    fn ios_has_core_ml_and_metal_but_not_the_macos_only_sources() {
        for f in [
            Feature::CoreMl,
            Feature::ComputePlan,
            Feature::Metal,
            Feature::MpsGraph,
        ] {
            assert_eq!(build_reason(f, "ios", true), None, "{f:?}");
        }
        for f in [
            Feature::IoReport,
            Feature::Smc,
            Feature::GpuStatistics,
            Feature::DirectAne,
            Feature::HidSensors,
        ] {
            let r = build_reason(f, "ios", true).unwrap();
            assert!(r.contains("only on macOS; this build is for iOS"), "{r}");
        }
    }

    #[test]
    fn the_minimum_os_is_checked() {
        assert!(os_too_old("macos", (11, 7)).unwrap().contains("macOS 12.0"));
        assert_eq!(os_too_old("macos", (12, 0)), None);
        assert_eq!(os_too_old("macos", (26, 1)), None);
        assert!(
            os_too_old("ios", (14, 8))
                .unwrap()
                .starts_with("iOS 14.8 is older")
        );
        assert_eq!(os_too_old("linux", (1, 0)), None);
    }

    #[test]
    fn this_build_lists_every_feature_once() {
        let all = features();
        assert_eq!(all.len(), Feature::ALL.len());
        for s in &all {
            assert_eq!(s.available, s.reason.is_none());
        }
        #[cfg(not(target_vendor = "apple"))]
        assert!(all.iter().all(|s| !s.available));
    }
}
