//! anekit-apple: the Apple backends — Core ML and the direct Neural Engine path behind
//! anekit-runtime's `Backend`, Metal and MPSGraph — and device detection.
//!
//! # Design
//!
//! This crate is the thin Apple shell of anekit (docs/design.md principle 1): it translates
//! between Apple objects and plain Rust data and decides nothing that can be decided
//! without Apple hardware. With anekit-apple-sys (the OS readers: IOKit, IOReport, SMC,
//! IOHID, sysctl, memory, private-framework probing, which it re-exports) it holds all
//! `unsafe` FFI of the project, every block with a `// SAFETY:` comment. What it hands upward
//! is plain data:
//!
//! - [`device::detect`] → a [`device::DeviceReport`] (sysctl facts, SoC identity, the Neural
//!   Engine from `+[MLModel availableComputeDevices]` and, with `private-ane`,
//!   `_ANEDeviceInfo`, Metal devices, and which features are available and why not);
//! - [`ioreport::Subscription::sample`] → [`ioreport::Sample`] (IOReport channels as
//!   group/subgroup/name/unit/value-or-state-residencies), [`iokit::gpu_statistics`] →
//!   [`iokit::GpuStatistics`], [`iokit::pmgr_tables`] → raw DVFS tables,
//!   [`smc::Smc::temperatures`] → [`smc::SmcReading`]s (readers of anekit-apple-sys,
//!   re-exported); anekit-metrics turns these into watts, frequencies and temperatures;
//! - the Core ML backend ([`coreml`]) and the direct ANE backend ([`ane`]; its backend only
//!   with the cargo feature `private-ane`, on macOS) implement anekit-runtime's `Backend`; [`register`] adds them to an
//!   `Engine`; Core ML's `MLComputePlan` is extracted as plain per-op records
//!   (`anekit_plan::device_plan::DeviceOpRecord`) that anekit-plan converts to placements;
//! - [`metal`] enumerates Metal devices, manages buffers and command queues, and runs MPSGraph
//!   programs planned from our IR by the portable [`gpu_graph`] planner.
//!
//! On other operating systems the crate compiles to its portable parts only: the plain data
//! types, the feature table ([`status::features`], which says for each Apple feature why it
//! is unavailable here), and the pure helpers (SMC record layout and value decoding, device
//! tree strings, the compile cache keys, the compile budget, the MIL export for the direct
//! path, the MPSGraph planner), all unit-tested on Linux.
//!
//! # What is type-checked only
//!
//! Everything under `cfg(target_vendor = "apple")` / `cfg(target_os = "macos")` has been
//! compiled for `aarch64-apple-darwin` and `aarch64-apple-ios` by the CI's `apple-check` step
//! (against the real objc2 framework bindings) but, as of this writing, **never run**: no
//! Mac was available. `docs/apple.md` lists what was run and what was only type-checked.
//!
//! # Dependencies
//!
//! The objc2 family (objc2, objc2-foundation, objc2-core-foundation, objc2-core-ml,
//! objc2-core-video, objc2-io-surface, objc2-metal, objc2-metal-performance-shaders(-graph))
//! and block2 are target-specific dependencies: a Linux build does not compile them.
//! anekit-apple-sys holds the OS readers; `half` and `ndarray` build the tensors the
//! portable conversions return.

pub mod device;
pub mod device_plan;
pub mod error;
pub mod gpu_graph;
pub mod status;

// The OS readers live in anekit-apple-sys; re-exported so that one path reaches both.
pub use anekit_apple_sys::{exception, hid, iokit, ioreport, memory, probe, smc, sysctl, value};

#[cfg(target_vendor = "apple")]
mod cf;
#[cfg(target_vendor = "apple")]
mod platform;
pub use anekit_apple_sys::private;

pub mod ane;
pub mod coreml;
pub mod metal;

pub use device::{DeviceReport, detect};
pub use error::{AppleError, Result};
pub use status::{Feature, FeatureStatus, features};

/// Registers the Apple backends present in this build with `engine`: Core ML on macOS and
/// iOS, and the direct Neural Engine backend on macOS when the `private-ane` feature is on.
/// On other operating systems it registers nothing (the engine then says why Core ML is
/// missing when a model asks for the GPU or Neural Engine).
pub fn register(engine: &mut anekit_runtime::Engine) {
    #[cfg(target_vendor = "apple")]
    engine.register(std::sync::Arc::new(coreml::CoreMlBackend::new()));
    #[cfg(all(target_os = "macos", feature = "private-ane"))]
    engine.register(std::sync::Arc::new(ane::AneBackend::new()));
    #[cfg(not(target_vendor = "apple"))]
    let _ = engine;
}
