//! Device detection: chip, CPU clusters, memory, the Neural Engine and Metal GPUs.
//!
//! Everything is read through public interfaces first — `sysctl`, the IORegistry, Core ML's
//! `MLAllComputeDevices()` (the Neural Engine and its `totalCoreCount`), Metal — and, where
//! the private `_ANEDeviceInfo` class exists, its architecture and board facts are added
//! (the framework is loaded once, each class and selector probed before it is called; a
//! missing one leaves the field empty and adds a note). On other operating systems
//! [`detect`] returns a report whose [`DeviceReport::features`] say what is unavailable and
//! why.

use serde::Serialize;

pub use anekit_apple_sys::private::AneDeviceInfo;

use crate::iokit::{RegistryEntry, SocIdentity};
use crate::status::FeatureStatus;
use crate::sysctl::SysctlFacts;

/// The Neural Engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NeuralEngineInfo {
    /// Whether Core ML lists a Neural Engine among its compute devices.
    pub present: bool,
    /// `MLNeuralEngineComputeDevice.totalCoreCount` (macOS 14 / iOS 17 and later).
    pub total_cores: Option<u64>,
    /// `_ANEDeviceInfo`, when the private framework and class exist (macOS).
    pub private: Option<AneDeviceInfo>,
    /// The `H11ANEIn` / `H1xANELoadBalancer` registry entries (macOS).
    pub registry: Vec<RegistryEntry>,
}

/// A Metal device.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetalDeviceInfo {
    /// `name` (`Apple M1 Pro`).
    pub name: String,
    /// `registryID` (the IORegistry entry of the GPU).
    pub registry_id: u64,
    /// `hasUnifiedMemory`.
    pub unified_memory: bool,
    /// `recommendedMaxWorkingSetSize`, bytes (the right "GPU memory" figure on Apple
    /// silicon).
    pub recommended_working_set_bytes: u64,
    /// `currentAllocatedSize`, bytes (this process only).
    pub current_allocated_bytes: u64,
    /// `maxBufferLength`, bytes.
    pub max_buffer_bytes: u64,
    /// `isLowPower` (macOS).
    pub low_power: bool,
    /// `isHeadless` (macOS).
    pub headless: bool,
    /// The newest GPU families it supports (`apple9`, `mac2`, `metal3`, ...).
    pub families: Vec<String>,
    /// Whether this is `MTLCreateSystemDefaultDevice()`.
    pub is_default: bool,
}

/// The chip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChipIdentity {
    /// `machdep.cpu.brand_string` (`Apple M1 Pro`).
    pub brand_string: Option<String>,
    /// From the device tree: SoC id, generation, board.
    pub soc: SocIdentity,
}

impl ChipIdentity {
    /// The strings to look the chip up by in a catalog, best first: the SoC id, then the
    /// brand string.
    pub fn lookup_keys(&self) -> Vec<&str> {
        self.soc
            .soc_id
            .as_deref()
            .into_iter()
            .chain(self.brand_string.as_deref())
            .collect()
    }
}

/// Everything detected about this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceReport {
    /// `std::env::consts::OS` of this build (`macos`, `ios`, `linux`, ...).
    pub os: String,
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// sysctl facts (Apple platforms).
    pub sysctl: Option<SysctlFacts>,
    /// The chip (Apple platforms).
    pub chip: Option<ChipIdentity>,
    /// The Neural Engine (Apple platforms).
    pub neural_engine: Option<NeuralEngineInfo>,
    /// Core ML's compute devices by kind (`cpu`, `gpu`, `neural-engine`).
    pub compute_devices: Vec<String>,
    /// Metal devices.
    pub metal_devices: Vec<MetalDeviceInfo>,
    /// Which Apple features are available, and why not.
    pub features: Vec<FeatureStatus>,
    /// Probes that failed and what they said.
    pub notes: Vec<String>,
}

/// The newest GPU family names of a device, from the families it supports (pass every
/// family it supports; only the newest of each line is kept: `apple9`, `mac2`, `metal3`).
pub fn newest_families(supported: &[&str]) -> Vec<String> {
    let mut best: Vec<(String, u32)> = Vec::new();
    for f in supported {
        let split = f.find(|c: char| c.is_ascii_digit()).unwrap_or(f.len());
        let (line, num) = f.split_at(split);
        let num: u32 = num.parse().unwrap_or(0);
        match best.iter_mut().find(|(l, _)| l == line) {
            Some(e) if e.1 < num => e.1 = num,
            Some(_) => {}
            None => best.push((line.to_string(), num)),
        }
    }
    best.into_iter()
        .map(|(l, n)| if n == 0 { l } else { format!("{l}{n}") })
        .collect()
}

/// Detects this machine. Never fails: what cannot be read is left empty and noted.
pub fn detect() -> DeviceReport {
    #[cfg_attr(not(target_vendor = "apple"), allow(unused_mut))]
    let mut report = DeviceReport {
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        features: crate::status::features(),
        ..DeviceReport::default()
    };
    #[cfg(target_vendor = "apple")]
    crate::platform::detect_into(&mut report);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_family_per_line() {
        assert_eq!(
            newest_families(&["apple7", "apple8", "apple9", "mac2", "common3", "metal3"]),
            ["apple9", "mac2", "common3", "metal3"]
        );
        assert!(newest_families(&[]).is_empty());
    }

    #[test]
    fn lookup_keys_prefer_the_soc_id() {
        let c = ChipIdentity {
            brand_string: Some("Apple M1 Pro".into()),
            soc: SocIdentity {
                soc_id: Some("t6000".into()),
                ..SocIdentity::default()
            },
        };
        assert_eq!(c.lookup_keys(), ["t6000", "Apple M1 Pro"]);
        assert!(ChipIdentity::default().lookup_keys().is_empty());
    }

    #[test]
    fn detection_off_apple_reports_os_and_unavailable_features() {
        let r = detect();
        assert_eq!(r.os, std::env::consts::OS);
        assert_eq!(r.features.len(), crate::status::Feature::ALL.len());
        #[cfg(not(target_vendor = "apple"))]
        {
            assert!(r.sysctl.is_none() && r.chip.is_none() && r.neural_engine.is_none());
            assert!(
                r.features
                    .iter()
                    .all(|f| !f.available && f.reason.is_some())
            );
        }
    }
}
