//! The macOS source: anekit-apple-sys's IOReport, IOKit, SMC, IOHID and memory readers
//! behind [`AppleProvider`].
//!
//! Every reader is probed when the source opens and its absence is said, not assumed: a
//! virtual machine has no IOReport groups, no SMC and no IOAccelerator statistics, and a
//! machine can have the one without the other. The source opens when IOReport has at least
//! one of the groups it reads (energy, CPU or GPU residencies); the SMC, HID sensors and GPU
//! statistics are each optional, and what is missing is logged once with the reason.
//! Type-checked only (no Mac was available; docs/apple.md).

use anekit_apple_sys::ioreport::{self as ior, GroupSpec};

use crate::apple::{AppleProvider, AppleSource, RawSample, SocInfo, soc_info};
use crate::{Error, Source, Unavailable};

/// The IOReport groups the source reads: energy per block, per-core CPU residencies, GPU
/// residencies.
pub const GROUPS: [GroupSpec; 3] = ior::DEFAULT_GROUPS;

/// The macOS provider.
#[derive(Debug)]
pub struct MacProvider {
    subscription: ior::Subscription,
    smc: Option<anekit_apple_sys::smc::Smc>,
    hid: bool,
    gpu: bool,
    soc: SocInfo,
}

impl MacProvider {
    /// Subscribes to IOReport and opens what else can be opened.
    pub fn new() -> Result<Self, anekit_apple_sys::SysError> {
        let counts = ior::Subscription::channel_counts(&GROUPS);
        for (g, n) in &counts {
            tracing::debug!(group = g.group, subgroup = ?g.subgroup, channels = n, "IOReport group");
        }
        if counts.iter().all(|(_, n)| *n == 0) {
            return Err(anekit_apple_sys::SysError::unavailable(
                "IOReport",
                "none of the Energy Model, CPU Stats and GPU Stats groups has a channel on this \
                 machine (virtual machines have none)",
            ));
        }
        let subscription = ior::Subscription::new(&GROUPS)?;
        let smc = match anekit_apple_sys::smc::Smc::open() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::info!(error = %e, "SMC unavailable: no SMC temperatures or system power");
                None
            }
        };
        let hid = match anekit_apple_sys::hid::temperatures() {
            Ok(t) => !t.is_empty(),
            Err(e) => {
                tracing::info!(error = %e, "IOHID temperature sensors unavailable");
                false
            }
        };
        let gpu = match anekit_apple_sys::iokit::gpu_statistics() {
            Ok(g) => !g.is_empty(),
            Err(e) => {
                tracing::info!(error = %e, "IOAccelerator statistics unavailable");
                false
            }
        };
        let brand =
            anekit_apple_sys::sysctl::string("machdep.cpu.brand_string").unwrap_or_default();
        let soc = match anekit_apple_sys::iokit::pmgr_tables() {
            Ok(t) => soc_info(&brand, &t),
            Err(e) => {
                tracing::info!(error = %e, "no DVFS tables: no frequencies");
                SocInfo {
                    chip: brand,
                    ..SocInfo::default()
                }
            }
        };
        Ok(Self {
            subscription,
            smc,
            hid,
            gpu,
            soc,
        })
    }
}

impl AppleProvider for MacProvider {
    fn soc(&self) -> &SocInfo {
        &self.soc
    }

    fn sample(&mut self) -> Result<RawSample, Error> {
        let s = self
            .subscription
            .sample()
            .map_err(|e| Error::source("apple", e.to_string()))?;
        let gpu = if self.gpu {
            anekit_apple_sys::iokit::gpu_statistics()
                .ok()
                .and_then(|g| g.into_iter().next())
        } else {
            None
        };
        let (smc_temperatures, system_power_w) = match &self.smc {
            Some(smc) => (smc.temperatures(), smc.system_power().ok()),
            None => (Vec::new(), None),
        };
        let hid_temperatures = if self.hid {
            anekit_apple_sys::hid::temperatures().unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(RawSample {
            elapsed: s.elapsed,
            channels: s.channels,
            gpu,
            smc_temperatures,
            hid_temperatures,
            system_power_w,
            memory: anekit_apple_sys::memory::read().ok(),
        })
    }
}

/// The macOS source, or why it cannot be opened.
pub fn open() -> Result<Box<dyn Source>, Unavailable> {
    MacProvider::new()
        .map(|p| Box::new(AppleSource::new(p)) as Box<dyn Source>)
        .map_err(|e| Unavailable::new("apple", e.to_string()))
}
