//! Memory counters of an Apple machine: `hw.memsize`, `host_statistics64(HOST_VM_INFO64)`
//! page counts and `vm.swapusage`, as plain numbers (vladkens/macmon `libc_ram`/`libc_swap`;
//! docs/metrics.md). What
//! "used" means is computed above this crate.

use serde::Serialize;

/// Page counts and sizes, as the kernel reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VmCounters {
    /// `hw.memsize`, bytes.
    pub total_bytes: u64,
    /// The VM page size, bytes.
    pub page_size: u64,
    /// `free_count`.
    pub free: u64,
    /// `active_count`.
    pub active: u64,
    /// `inactive_count`.
    pub inactive: u64,
    /// `wire_count`.
    pub wired: u64,
    /// `speculative_count`.
    pub speculative: u64,
    /// `compressor_page_count`.
    pub compressor: u64,
    /// `purgeable_count`.
    pub purgeable: u64,
    /// `external_page_count` (file-backed).
    pub external: u64,
    /// `vm.swapusage` total, bytes.
    pub swap_total: u64,
    /// `vm.swapusage` used, bytes.
    pub swap_used: u64,
}

#[cfg(target_vendor = "apple")]
pub use imp::read;

#[cfg(target_vendor = "apple")]
mod imp {
    use std::sync::OnceLock;

    use super::*;
    use crate::error::{Result, SysError};

    unsafe extern "C" {
        /// The host port of this task (libSystem).
        fn mach_host_self() -> libc::mach_port_t;
    }

    fn host() -> libc::mach_port_t {
        static HOST: OnceLock<libc::mach_port_t> = OnceLock::new();
        // SAFETY: `mach_host_self` has no preconditions; the send right it returns is kept
        // for the life of the process (taken once, so no right leaks per call).
        *HOST.get_or_init(|| unsafe { mach_host_self() })
    }

    /// Reads the counters.
    pub fn read() -> Result<VmCounters> {
        // SAFETY: `vm_statistics64` is plain old data; all-zero is a valid value.
        let mut stats: libc::vm_statistics64 = unsafe { std::mem::zeroed() };
        let mut count = libc::HOST_VM_INFO64_COUNT;
        // SAFETY: `stats` has room for `count` integers of HOST_VM_INFO64; the kernel
        // writes at most that many and updates `count`.
        let kr = unsafe {
            libc::host_statistics64(
                host(),
                libc::HOST_VM_INFO64,
                (&mut stats as *mut libc::vm_statistics64).cast(),
                &mut count,
            )
        };
        if kr != 0 {
            return Err(SysError::status("host_statistics64", kr, "HOST_VM_INFO64"));
        }
        let mut swap: libc::xsw_usage = libc::xsw_usage {
            xsu_total: 0,
            xsu_avail: 0,
            xsu_used: 0,
            xsu_pagesize: 0,
            xsu_encrypted: 0,
        };
        let mut len = std::mem::size_of::<libc::xsw_usage>();
        // SAFETY: `swap` has `len` writable bytes; no new value is set.
        let rc = unsafe {
            libc::sysctlbyname(
                c"vm.swapusage".as_ptr(),
                (&mut swap as *mut libc::xsw_usage).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        let (swap_total, swap_used) = if rc == 0 {
            (swap.xsu_total, swap.xsu_used)
        } else {
            (0, 0)
        };
        Ok(VmCounters {
            total_bytes: crate::sysctl::integer("hw.memsize").unwrap_or(0),
            page_size: crate::sysctl::integer("hw.pagesize").unwrap_or(16384),
            free: u64::from(stats.free_count),
            active: u64::from(stats.active_count),
            inactive: u64::from(stats.inactive_count),
            wired: u64::from(stats.wire_count),
            speculative: u64::from(stats.speculative_count),
            compressor: u64::from(stats.compressor_page_count),
            purgeable: u64::from(stats.purgeable_count),
            external: u64::from(stats.external_page_count),
            swap_total,
            swap_used,
        })
    }
}
