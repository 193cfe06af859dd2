//! IOReport (macOS): subscriptions to energy and residency channels, sampled as deltas.
//!
//! `libIOReport.dylib` has no public header; the functions below are declared as
//! vladkens/macmon (`src_lib/sources.rs`) and metaspartan/mactop
//! (`internal/app/ioreport.m`) declare them. A
//! [`Subscription`] copies the channels of the requested groups, subscribes, and each
//! [`Subscription::sample`] returns the delta since the previous one as plain
//! [`Channel`]s with the measured interval. Units are passed on as the channel states them
//! (`mJ`, `uJ`, `nJ`, `24Mticks`); converting them is anekit-metrics' job.

use std::time::Duration;

use serde::Serialize;

/// The groups the metrics crate subscribes to: energy per block, per-core CPU residencies,
/// GPU residencies.
pub const DEFAULT_GROUPS: [GroupSpec; 3] = [
    GroupSpec {
        group: "Energy Model",
        subgroup: None,
    },
    GroupSpec {
        group: "CPU Stats",
        subgroup: Some("CPU Core Performance States"),
    },
    GroupSpec {
        group: "GPU Stats",
        subgroup: Some("GPU Performance States"),
    },
];

/// An IOReport group (and optional subgroup) to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSpec {
    /// The group (`Energy Model`).
    pub group: &'static str,
    /// The subgroup (`CPU Core Performance States`), or every subgroup.
    pub subgroup: Option<&'static str>,
}

/// One state of a state channel and its residency in the delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateResidency {
    /// `IOReportStateGetNameForIndex` (`IDLE`, `V0P7`, `OFF`, `P1`, ...).
    pub name: String,
    /// `IOReportStateGetResidency` (ticks of the channel's unit).
    pub residency: i64,
}

/// A channel's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ChannelValue {
    /// A simple channel (format 1): `IOReportSimpleGetIntegerValue`.
    Simple(i64),
    /// A state channel (format 2): residency per state.
    States(Vec<StateResidency>),
    /// A channel of another format (histograms, arrays), not read.
    Unsupported(u8),
}

/// One channel of an IOReport delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// `IOReportChannelGetGroup`.
    pub group: String,
    /// `IOReportChannelGetSubGroup` (empty when none).
    pub subgroup: String,
    /// `IOReportChannelGetChannelName`.
    pub name: String,
    /// `IOReportChannelGetUnitLabel`, trimmed.
    pub unit: String,
    /// The value in the delta.
    pub value: ChannelValue,
}

/// The IOReport channel formats (`IOReportChannelGetFormat`, declared `int` by every public
/// user; values from the `IOReportTypes.h` enum that those users quote:
/// `kIOReportFormatSimple` 1, `State` 2, `Histogram` 3, `SimpleArray` 4).
pub mod format {
    /// A counter.
    pub const SIMPLE: u8 = 1;
    /// A residency histogram over named states.
    pub const STATE: u8 = 2;
    /// A histogram.
    pub const HISTOGRAM: u8 = 3;
    /// An array of simple values.
    pub const SIMPLE_ARRAY: u8 = 4;
}

/// A delta sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// The measured time between the two samples of the delta.
    pub elapsed: Duration,
    /// The channels.
    pub channels: Vec<Channel>,
}

/// Whether `channel` belongs to `spec`.
pub fn matches(spec: &GroupSpec, group: &str, subgroup: &str) -> bool {
    spec.group == group && spec.subgroup.is_none_or(|s| s == subgroup)
}

#[cfg(target_os = "macos")]
pub use imp::Subscription;

#[cfg(target_os = "macos")]
mod imp {
    use std::ffi::c_void;
    use std::ptr::NonNull;
    use std::time::Instant;

    use objc2_core_foundation::{
        CFArray, CFDictionary, CFMutableDictionary, CFRetained, CFString, CFType,
    };

    use super::*;
    use crate::cf;
    use crate::error::{Result, SysError};

    type DictRef = *const CFDictionary;

    #[repr(C)]
    struct IOReportSubscription {
        _private: [u8; 0],
    }

    #[link(name = "IOReport", kind = "dylib")]
    unsafe extern "C" {
        fn IOReportCopyChannelsInGroup(
            group: *const CFString,
            subgroup: *const CFString,
            a: u64,
            b: u64,
            c: u64,
        ) -> *mut CFMutableDictionary;
        fn IOReportMergeChannels(dst: DictRef, src: DictRef, nil: *const c_void);
        fn IOReportCreateSubscription(
            a: *const c_void,
            desired: *mut CFMutableDictionary,
            subscribed: *mut *mut CFMutableDictionary,
            channel_id: u64,
            b: *const c_void,
        ) -> *mut IOReportSubscription;
        fn IOReportCreateSamples(
            sub: *const IOReportSubscription,
            channels: *mut CFMutableDictionary,
            nil: *const c_void,
        ) -> *mut CFDictionary;
        fn IOReportCreateSamplesDelta(
            prev: DictRef,
            cur: DictRef,
            nil: *const c_void,
        ) -> *mut CFDictionary;
        fn IOReportChannelGetGroup(item: DictRef) -> *const CFString;
        fn IOReportChannelGetSubGroup(item: DictRef) -> *const CFString;
        fn IOReportChannelGetChannelName(item: DictRef) -> *const CFString;
        fn IOReportChannelGetUnitLabel(item: DictRef) -> *const CFString;
        fn IOReportChannelGetFormat(item: DictRef) -> i32;
        fn IOReportSimpleGetIntegerValue(item: DictRef, index: i32) -> i64;
        fn IOReportStateGetCount(item: DictRef) -> i32;
        fn IOReportStateGetNameForIndex(item: DictRef, index: i32) -> *const CFString;
        fn IOReportStateGetResidency(item: DictRef, index: i32) -> i64;
    }

    /// A string returned by an IOReport getter (get rule: not owned), copied out.
    ///
    /// # Safety
    ///
    /// `s` must be null or a valid `CFString` that lives for the call.
    unsafe fn get_string(s: *const CFString) -> String {
        // SAFETY: by the caller's contract the pointer is null or a live CFString.
        match unsafe { s.as_ref() } {
            Some(s) => s.to_string().trim().to_string(),
            None => String::new(),
        }
    }

    /// An IOReport subscription and its previous sample.
    pub struct Subscription {
        /// The subscription (a CF object, released on drop).
        subscription: CFRetained<CFType>,
        channels: CFRetained<CFMutableDictionary>,
        previous: CFRetained<CFDictionary>,
        previous_at: Instant,
    }

    impl std::fmt::Debug for Subscription {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Subscription").finish_non_exhaustive()
        }
    }

    // SAFETY: the subscription and CF dictionaries are reference-counted CF objects that
    // IOReport does not tie to a thread; `&mut self` methods serialize use.
    unsafe impl Send for Subscription {}

    impl Subscription {
        /// Subscribes to the channels of `groups` (groups missing on this machine are
        /// skipped; an error only when none is found or the kernel refuses).
        pub fn new(groups: &[GroupSpec]) -> Result<Self> {
            let mut merged: Option<CFRetained<CFMutableDictionary>> = None;
            for g in groups {
                let group = CFString::from_str(g.group);
                let subgroup = g.subgroup.map(CFString::from_str);
                let sub_ptr = subgroup
                    .as_deref()
                    .map_or(std::ptr::null(), |s| s as *const CFString);
                // SAFETY: both strings are valid CFStrings (or null for "every subgroup")
                // that outlive the call; the result follows the copy rule (owned).
                let ch = unsafe { IOReportCopyChannelsInGroup(&*group, sub_ptr, 0, 0, 0) };
                let Some(ch) = NonNull::new(ch) else {
                    tracing::debug!(group = g.group, "IOReport group not present");
                    continue;
                };
                // SAFETY: owned by the copy above.
                let ch: CFRetained<CFMutableDictionary> = unsafe { CFRetained::from_raw(ch) };
                match &merged {
                    None => merged = Some(ch),
                    Some(dst) => {
                        // SAFETY: both are live channel dictionaries; the call copies `ch`'s
                        // channels into `dst`.
                        unsafe {
                            IOReportMergeChannels(
                                &**dst as &CFDictionary,
                                &*ch as &CFDictionary,
                                std::ptr::null(),
                            )
                        };
                    }
                }
            }
            let merged = merged.ok_or_else(|| {
                SysError::unavailable(
                    "IOReport",
                    "none of the requested IOReport groups exists on this machine (virtual \
                     machines have none)",
                )
            })?;
            // Subscribe to a mutable copy of the merged channels, as macmon
            // (`CFDictionaryCreateMutableCopy` in `cfio_get_chan`) and mactop do: the
            // dictionary IOReportCopyChannelsInGroup returns is not documented as mutable.
            // SAFETY: `merged` is a live CF dictionary; the copy is returned owned.
            let channels =
                unsafe { CFMutableDictionary::new_copy(None, 0, Some(&*merged as &CFDictionary)) }
                    .ok_or_else(|| {
                        SysError::null("CFDictionaryCreateMutableCopy", "IOReport channels")
                    })?;
            let mut subscribed: *mut CFMutableDictionary = std::ptr::null_mut();
            // SAFETY: `channels` is a live mutable dictionary; `subscribed` is a valid
            // out-pointer; the other arguments are the reserved zeros every user passes.
            let sub = unsafe {
                IOReportCreateSubscription(
                    std::ptr::null(),
                    CFRetained::as_ptr(&channels).as_ptr(),
                    &mut subscribed,
                    0,
                    std::ptr::null(),
                )
            };
            // The subscribed-channels out-dictionary is deliberately not released: neither
            // macmon (`cfio_get_subs`, src_lib/sources.rs) nor mactop (`initIOReport`,
            // internal/app/ioreport.m) releases it, the function follows no documented
            // ownership rule (no header exists), and releasing an object we may not own is
            // a use-after-free where keeping one small dictionary per subscription is not.
            let _ = subscribed;
            let subscription = NonNull::new(sub.cast::<CFType>()).ok_or_else(|| {
                SysError::null(
                    "IOReportCreateSubscription",
                    "the kernel refused the subscription",
                )
            })?;
            // SAFETY: the subscription is a CF object returned owned (create rule).
            let subscription: CFRetained<CFType> = unsafe { CFRetained::from_raw(subscription) };
            // SAFETY: `subscription` and `channels` are live; the sample is owned.
            let first = unsafe {
                IOReportCreateSamples(
                    sub_ptr_of(&subscription),
                    CFRetained::as_ptr(&channels).as_ptr(),
                    std::ptr::null(),
                )
            };
            let previous = match NonNull::new(first) {
                // SAFETY: owned by the create call.
                Some(p) => unsafe { CFRetained::from_raw(p) },
                None => return Err(SysError::null("IOReportCreateSamples", "first sample")),
            };
            Ok(Self {
                subscription,
                channels,
                previous,
                previous_at: Instant::now(),
            })
        }

        /// The number of channels each group has on this machine (0 for a missing group):
        /// what `anekit devices` and the metrics source check before subscribing.
        pub fn channel_counts(groups: &[GroupSpec]) -> Vec<(GroupSpec, usize)> {
            groups
                .iter()
                .map(|g| {
                    let group = CFString::from_str(g.group);
                    let subgroup = g.subgroup.map(CFString::from_str);
                    let sub_ptr = subgroup
                        .as_deref()
                        .map_or(std::ptr::null(), |s| s as *const CFString);
                    // SAFETY: as in `new`; the result is owned and released at once.
                    let ch = unsafe { IOReportCopyChannelsInGroup(&*group, sub_ptr, 0, 0, 0) };
                    let n = match NonNull::new(ch) {
                        Some(ch) => {
                            // SAFETY: owned by the copy above.
                            let ch: CFRetained<CFMutableDictionary> =
                                unsafe { CFRetained::from_raw(ch) };
                            channel_count(&ch)
                        }
                        None => 0,
                    };
                    (*g, n)
                })
                .collect()
        }

        /// The delta since the previous sample (or since subscribing).
        pub fn sample(&mut self) -> Result<Sample> {
            // SAFETY: subscription and channels are live; the sample is owned.
            let cur = unsafe {
                IOReportCreateSamples(
                    sub_ptr_of(&self.subscription),
                    CFRetained::as_ptr(&self.channels).as_ptr(),
                    std::ptr::null(),
                )
            };
            let now = Instant::now();
            let cur: CFRetained<CFDictionary> = match NonNull::new(cur) {
                // SAFETY: owned by the create call.
                Some(p) => unsafe { CFRetained::from_raw(p) },
                None => return Err(SysError::null("IOReportCreateSamples", "sample")),
            };
            // SAFETY: both samples are live dictionaries from this subscription; the delta
            // is owned.
            let delta =
                unsafe { IOReportCreateSamplesDelta(&*self.previous, &*cur, std::ptr::null()) };
            let delta: CFRetained<CFDictionary> = match NonNull::new(delta) {
                // SAFETY: owned by the create call.
                Some(p) => unsafe { CFRetained::from_raw(p) },
                None => return Err(SysError::null("IOReportCreateSamplesDelta", "delta")),
            };
            let elapsed = now.duration_since(self.previous_at);
            self.previous = cur;
            self.previous_at = now;
            Ok(Sample {
                elapsed,
                channels: channels_of(&delta),
            })
        }
    }

    fn channel_count(channels: &CFDictionary) -> usize {
        cf::dict_get(channels, "IOReportChannels")
            .and_then(|a| a.downcast_ref::<CFArray>().map(|a| a.len()))
            .unwrap_or(0)
    }

    fn sub_ptr_of(s: &CFRetained<CFType>) -> *const IOReportSubscription {
        CFRetained::as_ptr(s).as_ptr().cast_const().cast()
    }

    /// The channels of a sample or delta dictionary (`IOReportChannels` array).
    fn channels_of(sample: &CFDictionary) -> Vec<Channel> {
        let Some(items) = cf::dict_get(sample, "IOReportChannels") else {
            return Vec::new();
        };
        let Some(items) = items.downcast_ref::<CFArray>() else {
            return Vec::new();
        };
        // SAFETY: the IOReportChannels array holds channel dictionaries.
        let items: &CFArray<CFDictionary> = unsafe { items.cast_unchecked() };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let item: DictRef = &*item;
            // SAFETY: `item` is a live channel dictionary of the delta for these calls;
            // the getters return unowned strings (get rule) copied out by `get_string`.
            let channel = unsafe {
                let fmt = u8::try_from(IOReportChannelGetFormat(item)).unwrap_or(0);
                let value = match fmt {
                    format::SIMPLE => ChannelValue::Simple(IOReportSimpleGetIntegerValue(item, 0)),
                    format::STATE => {
                        let n = IOReportStateGetCount(item).max(0);
                        ChannelValue::States(
                            (0..n)
                                .map(|i| StateResidency {
                                    name: get_string(IOReportStateGetNameForIndex(item, i)),
                                    residency: IOReportStateGetResidency(item, i),
                                })
                                .collect(),
                        )
                    }
                    other => ChannelValue::Unsupported(other),
                };
                Channel {
                    group: get_string(IOReportChannelGetGroup(item)),
                    subgroup: get_string(IOReportChannelGetSubGroup(item)),
                    name: get_string(IOReportChannelGetChannelName(item)),
                    unit: get_string(IOReportChannelGetUnitLabel(item)),
                    value,
                }
            };
            out.push(channel);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_specs_match_group_and_optional_subgroup() {
        let energy = &DEFAULT_GROUPS[0];
        let cpu = &DEFAULT_GROUPS[1];
        assert!(matches(energy, "Energy Model", ""));
        assert!(matches(energy, "Energy Model", "anything"));
        assert!(!matches(energy, "CPU Stats", ""));
        assert!(matches(cpu, "CPU Stats", "CPU Core Performance States"));
        assert!(!matches(cpu, "CPU Stats", "CPU Complex Performance States"));
    }
}
