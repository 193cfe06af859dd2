//! anekit-apple-sys: the OS readers of Apple platforms, with no ML knowledge.
//!
//! What the machine says about itself, as plain Rust data, for anekit-metrics (power,
//! residencies, temperatures, memory) and anekit-apple (device detection, the backends):
//!
//! - [`sysctl`]: chip brand string, CPU clusters, memory, OS version and build;
//! - [`iokit`]: IORegistry entries, IOAccelerator `PerformanceStatistics`, the `pmgr` DVFS
//!   tables, the SoC identity, the Neural Engine's registry entries;
//! - [`ioreport`]: IOReport subscriptions (energy, CPU and GPU residencies) sampled as
//!   deltas;
//! - [`smc`]: the System Management Controller (temperature keys, `PSTR` system power);
//! - [`hid`]: IOHID temperature sensors (the sensors Apple silicon publishes as HID
//!   services);
//! - [`memory`]: host VM counters and swap;
//! - [`private`]: the private AppleNeuralEngine framework, loaded and probed only with the
//!   `private` cargo feature;
//! - [`probe`]: type-encoding checks of private selectors;
//! - [`exception`]: Objective-C exceptions caught and returned as errors.
//!
//! Everything that can be decided without a Mac — record layouts, value decoding, key
//! selection, string parsing, the exception-to-error mapping — is a plain function tested on
//! any OS. The rest (under `cfg(target_vendor = "apple")` / `cfg(target_os = "macos")`) is
//! type-checked for `aarch64-apple-darwin` and `aarch64-apple-ios` by
//! CI's `apple-check` step (`.ci/run`) and has **never run**: no Mac was available. docs/apple.md
//! says, per interface, what was checked how, and which public implementation each call
//! follows.
//!
//! # Dependencies
//!
//! `objc2`, `objc2-foundation`, `objc2-core-foundation` (and `objc2-io-kit` on macOS) are
//! the maintained, generated bindings of Apple's frameworks; `libc` gives `sysctlbyname`,
//! `host_statistics64` and `dlopen`. They are target-specific: a Linux build compiles none of
//! them. `cc` (build only) compiles the `@try`/`@catch` trampoline of [`exception`] when
//! building on a Mac.

pub mod error;
pub mod exception;
pub mod hid;
pub mod iokit;
pub mod ioreport;
pub mod memory;
pub mod private;
pub mod probe;
pub mod smc;
pub mod sysctl;
pub mod value;

#[cfg(target_vendor = "apple")]
pub mod cf;

pub use error::{Result, SysError};
