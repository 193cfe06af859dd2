//! `sysctl` facts of an Apple machine: chip brand string, model, memory, CPU performance
//! levels (clusters), OS version and build (Apple's `sysctl(3)` and the `hw.perflevel*` keys
//! macmon and mactop read; docs/apple.md).

use serde::Serialize;

/// One CPU performance level (`hw.perflevel<N>.*`); level 0 is the fastest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PerfLevel {
    /// The level index `N`.
    pub index: u32,
    /// `name` (`Performance`, `Efficiency`; `Super` on M5 Max).
    pub name: String,
    /// `physicalcpu`.
    pub physical_cpus: u32,
    /// `logicalcpu`.
    pub logical_cpus: u32,
    /// `l2cachesize`, bytes.
    pub l2_cache_bytes: Option<u64>,
    /// `cpusperl2`.
    pub cpus_per_l2: Option<u32>,
}

/// What `sysctl` says about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SysctlFacts {
    /// `machdep.cpu.brand_string` (`Apple M1 Pro`).
    pub brand_string: Option<String>,
    /// `hw.model` (`MacBookPro18,1`; on iOS the device model).
    pub model: Option<String>,
    /// `hw.memsize`, bytes.
    pub memory_bytes: Option<u64>,
    /// `hw.physicalcpu`.
    pub physical_cpus: Option<u32>,
    /// `hw.logicalcpu`.
    pub logical_cpus: Option<u32>,
    /// `hw.perflevel*`.
    pub perf_levels: Vec<PerfLevel>,
    /// `kern.osproductversion` (`15.3.1`).
    pub os_version: Option<String>,
    /// `kern.osversion` (the build, `24D70`).
    pub os_build: Option<String>,
    /// `hw.pagesize`.
    pub page_size: Option<u64>,
    /// `kern.hv_vmm_present` (running in a virtual machine).
    pub virtual_machine: Option<bool>,
}

#[cfg(target_vendor = "apple")]
pub use imp::*;

#[cfg(target_vendor = "apple")]
mod imp {
    use std::ffi::{CString, c_void};

    use super::*;

    fn raw(name: &str) -> Option<Vec<u8>> {
        let cname = CString::new(name).ok()?;
        let mut len: libc::size_t = 0;
        // SAFETY: a size query: null output buffer, `len` a valid out-pointer, no new value.
        let rc = unsafe {
            libc::sysctlbyname(
                cname.as_ptr(),
                std::ptr::null_mut(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 || len == 0 || len > 1 << 20 {
            return None;
        }
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` has `len` writable bytes; `len` is updated to the bytes written.
        let rc = unsafe {
            libc::sysctlbyname(
                cname.as_ptr(),
                buf.as_mut_ptr().cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        buf.truncate(len);
        Some(buf)
    }

    /// A string value (`machdep.cpu.brand_string`).
    pub fn string(name: &str) -> Option<String> {
        let b = raw(name)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Some(String::from_utf8_lossy(&b[..end]).into_owned())
    }

    /// An integer value of 4 or 8 bytes (`hw.memsize`, `hw.physicalcpu`).
    pub fn integer(name: &str) -> Option<u64> {
        let b = raw(name)?;
        match b.len() {
            4 => Some(u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))),
            8 => Some(u64::from_ne_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ])),
            _ => None,
        }
    }

    fn u32_of(name: &str) -> Option<u32> {
        integer(name).and_then(|v| u32::try_from(v).ok())
    }

    /// Reads every fact (missing keys stay `None`).
    pub fn read() -> SysctlFacts {
        let levels = u32_of("hw.nperflevels").unwrap_or(0).min(8);
        let perf_levels = (0..levels)
            .map(|i| {
                let k = |s: &str| format!("hw.perflevel{i}.{s}");
                PerfLevel {
                    index: i,
                    name: string(&k("name")).unwrap_or_default(),
                    physical_cpus: u32_of(&k("physicalcpu")).unwrap_or(0),
                    logical_cpus: u32_of(&k("logicalcpu")).unwrap_or(0),
                    l2_cache_bytes: integer(&k("l2cachesize")),
                    cpus_per_l2: u32_of(&k("cpusperl2")),
                }
            })
            .collect();
        SysctlFacts {
            brand_string: string("machdep.cpu.brand_string"),
            model: string("hw.model"),
            memory_bytes: integer("hw.memsize"),
            physical_cpus: u32_of("hw.physicalcpu"),
            logical_cpus: u32_of("hw.logicalcpu"),
            perf_levels,
            os_version: string("kern.osproductversion"),
            os_build: string("kern.osversion"),
            page_size: integer("hw.pagesize"),
            virtual_machine: integer("kern.hv_vmm_present").map(|v| v != 0),
        }
    }
}
