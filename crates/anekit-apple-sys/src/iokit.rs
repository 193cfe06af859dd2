//! IOKit registry readers (macOS): IOAccelerator `PerformanceStatistics`, the `pmgr` DVFS
//! tables, the SoC identity in the device tree, and the Neural Engine's registry entries.
//!
//! Everything is returned as plain data ([`GpuStatistics`], [`PmgrTables`],
//! [`SocIdentity`], [`RegistryEntry`]); what it means (utilisation, frequency tables in
//! hertz, which chip a SoC id is) is decided above this crate. The calls follow
//! vladkens/macmon (`src_lib/sources.rs`) and metaspartan/mactop (`internal/app/ioreport.m`);
//! docs/apple.md lists the properties read and their sources.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::value::PropertyValue;

/// One IORegistry entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryEntry {
    /// Its class (`IOObjectCopyClass`), e.g. `AGXAcceleratorG13G_B0`, `H11ANEIn`.
    pub class: String,
    /// Its name in the service plane (`IORegistryEntryGetName`).
    pub name: String,
    /// Its registry entry id (what `MTLDevice.registryID` refers to).
    pub id: u64,
    /// The properties that were read.
    pub properties: BTreeMap<String, PropertyValue>,
}

/// The `PerformanceStatistics` dictionary of one IOAccelerator (GPU), as the driver
/// publishes it: `Device Utilization %`, `Renderer Utilization %`, `Tiler Utilization %`,
/// `In use system memory`, `Alloc system memory`, ... (keys vary by GPU and OS).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuStatistics {
    /// The accelerator's class (`AGXAcceleratorG13G_B0`).
    pub class: String,
    /// Its registry entry id.
    pub registry_id: u64,
    /// `model` (`Apple M1`), when present.
    pub model: Option<String>,
    /// `gpu-core-count`, when present.
    pub core_count: Option<u64>,
    /// The statistics, by key.
    pub statistics: BTreeMap<String, PropertyValue>,
}

/// The DVFS tables of the power manager (`pmgr` entry of `AppleARMIODevice`), raw:
/// every `voltage-states*` property (8-byte records: frequency u32 LE, voltage u32 LE) and
/// `acc-clusters` (M5: which table belongs to which CPU cluster). Interpreting them (Hz or
/// kHz, which key is which cluster) is chip knowledge and lives in anekit-metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PmgrTables {
    /// `voltage-states<N>[-sram]` → bytes.
    pub voltage_states: BTreeMap<String, Vec<u8>>,
    /// `acc-clusters`, when present.
    pub acc_clusters: Option<Vec<u8>>,
}

/// The SoC as the device tree names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SocIdentity {
    /// The SoC id (`t8103`), from `/arm-io` `compatible` or the root `platform-name`.
    pub soc_id: Option<String>,
    /// `/arm-io` `soc-generation` (`H13`), when present.
    pub soc_generation: Option<String>,
    /// The root `target-type` (`J313`), when present.
    pub target_type: Option<String>,
    /// The root `compatible` list (`J313AP`, `MacBookAir10,1`, `AppleARM`).
    pub compatible: Vec<String>,
}

/// The SoC id in a device-tree string: `arm-io,t8103` → `t8103`, `t6000` → `t6000`
/// (`t`/`s` followed by four digits); `None` when there is none.
pub fn parse_soc_id(s: &str) -> Option<String> {
    s.split([',', ' ', '\0'])
        .map(str::trim)
        .find(|t| {
            let b = t.as_bytes();
            b.len() == 5 && matches!(b[0], b't' | b's') && b[1..].iter().all(u8::is_ascii_digit)
        })
        .map(str::to_string)
}

#[cfg(target_os = "macos")]
pub use imp::*;

#[cfg(target_os = "macos")]
mod imp {
    use std::ffi::{CStr, c_char};

    use objc2_core_foundation::{CFDictionary, CFMutableDictionary, CFRetained, CFString, CFType};
    use objc2_io_kit::{
        IOIteratorNext, IOObjectCopyClass, IOObjectRelease, IORegistryEntryCreateCFProperties,
        IORegistryEntryCreateCFProperty, IORegistryEntryFromPath, IORegistryEntryGetName,
        IORegistryEntryGetRegistryEntryID, IOServiceGetMatchingServices, IOServiceMatching,
        io_object_t,
    };

    use super::*;
    use crate::cf;
    use crate::error::{Result, SysError};
    use crate::value::string_list;

    /// The IOKit main port: `MACH_PORT_NULL`, which IOKit reads as "the default main port"
    /// (Apple's documentation of `kIOMainPortDefault`: "a synonym for NULL"). Passing the
    /// constant itself would bind the `kIOMainPortDefault` symbol, which exists only since
    /// macOS 12, and a binary that binds it does not start on macOS 11; macmon passes 0 for
    /// the same reason (`IOServiceGetMatchingServices(0, …)`, src_lib/sources.rs).
    pub const MAIN_PORT: libc::mach_port_t = 0;

    /// An IOKit object reference, released when dropped.
    #[derive(Debug)]
    pub struct Object(io_object_t);

    impl Object {
        /// The raw `io_object_t` (valid while `self` lives).
        pub fn raw(&self) -> io_object_t {
            self.0
        }
    }

    impl Drop for Object {
        fn drop(&mut self) {
            if self.0 != 0 {
                // The object was returned retained by IOKit and is released once, here.
                let _ = IOObjectRelease(self.0);
            }
        }
    }

    /// The registered services of IOKit class `class` (`IOServiceMatching` +
    /// `IOServiceGetMatchingServices`).
    pub fn matching_services(class: &CStr) -> Result<Vec<Object>> {
        // SAFETY: `class` is a NUL-terminated C string that outlives the call.
        let matching = unsafe { IOServiceMatching(class.as_ptr()) }
            .ok_or_else(|| SysError::null("IOServiceMatching", format!("{class:?}")))?;
        let matching: CFRetained<CFDictionary> = CFRetained::from(&*matching as &CFDictionary);
        let mut iter: io_object_t = 0;
        // SAFETY: the matching dictionary is consumed by the call (passed by value, as the
        // binding requires); `iter` is a valid out-pointer; `MAIN_PORT` (null) selects the
        // default main port.
        let kr = unsafe { IOServiceGetMatchingServices(MAIN_PORT, Some(matching), &mut iter) };
        if kr != 0 {
            return Err(SysError::status(
                "IOServiceGetMatchingServices",
                kr,
                format!("{class:?}"),
            ));
        }
        let iter = Object(iter);
        let mut out = Vec::new();
        loop {
            let next = IOIteratorNext(iter.raw());
            if next == 0 {
                break;
            }
            out.push(Object(next));
        }
        Ok(out)
    }

    /// The entry at a registry path (`IODeviceTree:/arm-io`), if any.
    pub fn entry_at(path: &CStr) -> Option<Object> {
        let bytes = path.to_bytes_with_nul();
        if bytes.len() > 512 {
            return None;
        }
        let mut buf = [0 as c_char; 512];
        for (d, &s) in buf.iter_mut().zip(bytes) {
            *d = s as c_char;
        }
        // SAFETY: `buf` is an `io_string_t`-sized, NUL-terminated buffer that outlives the
        // call.
        let e = unsafe { IORegistryEntryFromPath(MAIN_PORT, &mut buf) };
        (e != 0).then_some(Object(e))
    }

    /// The entry's name in the service plane.
    pub fn registry_name(entry: io_object_t) -> Option<String> {
        let mut buf = [0 as c_char; 128];
        // SAFETY: `buf` is an `io_name_t` (128 bytes) that outlives the call.
        let kr = unsafe { IORegistryEntryGetName(entry, &mut buf) };
        if kr != 0 {
            return None;
        }
        // SAFETY: IOKit wrote a NUL-terminated string into `buf`.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        Some(s.to_string_lossy().into_owned())
    }

    /// The entry's class name.
    pub fn registry_class(entry: io_object_t) -> Option<String> {
        IOObjectCopyClass(entry).map(|s| s.to_string())
    }

    /// The entry's registry id.
    pub fn registry_id(entry: io_object_t) -> Option<u64> {
        let mut id = 0u64;
        // SAFETY: `id` is a valid out-pointer.
        let kr = unsafe { IORegistryEntryGetRegistryEntryID(entry, &mut id) };
        (kr == 0).then_some(id)
    }

    /// Every property of the entry.
    pub fn properties(entry: io_object_t) -> Result<BTreeMap<String, PropertyValue>> {
        let mut dict: *mut CFMutableDictionary = std::ptr::null_mut();
        // SAFETY: `dict` is a valid out-pointer; on success IOKit returns a dictionary we
        // own (create rule), taken over by `CFRetained::from_raw` below.
        let kr = unsafe { IORegistryEntryCreateCFProperties(entry, &mut dict, None, 0) };
        if kr != 0 {
            return Err(SysError::status(
                "IORegistryEntryCreateCFProperties",
                kr,
                "",
            ));
        }
        let dict = std::ptr::NonNull::new(dict)
            .ok_or_else(|| SysError::null("IORegistryEntryCreateCFProperties", "no dictionary"))?;
        // SAFETY: created by the call above (create rule: we own one reference).
        let dict: CFRetained<CFMutableDictionary> = unsafe { CFRetained::from_raw(dict) };
        match cf::to_value(&dict) {
            PropertyValue::Dictionary(d) => Ok(d),
            other => Err(SysError::invalid(
                "IORegistry properties",
                format!("not a dictionary: {other:?}"),
            )),
        }
    }

    /// One property of the entry.
    pub fn property(entry: io_object_t, key: &str) -> Option<PropertyValue> {
        let key = CFString::from_str(key);
        // SAFETY: `key` is a valid CFString; the result follows the create rule and is
        // owned by the returned `CFRetained`.
        let v: Option<CFRetained<CFType>> =
            unsafe { IORegistryEntryCreateCFProperty(entry, Some(&key), None, 0) };
        v.map(|v| cf::to_value(&v))
    }

    /// The entries of class `class` with the properties named in `keys` (all properties when
    /// `keys` is empty).
    pub fn entries(class: &CStr, keys: &[&str]) -> Result<Vec<RegistryEntry>> {
        let mut out = Vec::new();
        for s in matching_services(class)? {
            let properties = if keys.is_empty() {
                properties(s.raw())?
            } else {
                keys.iter()
                    .filter_map(|k| property(s.raw(), k).map(|v| (k.to_string(), v)))
                    .collect()
            };
            out.push(RegistryEntry {
                class: registry_class(s.raw()).unwrap_or_default(),
                name: registry_name(s.raw()).unwrap_or_default(),
                id: registry_id(s.raw()).unwrap_or(0),
                properties,
            });
        }
        Ok(out)
    }

    /// `PerformanceStatistics` of every IOAccelerator (GPU).
    pub fn gpu_statistics() -> Result<Vec<GpuStatistics>> {
        let mut out = Vec::new();
        for s in matching_services(c"IOAccelerator")? {
            let statistics = match property(s.raw(), "PerformanceStatistics") {
                Some(PropertyValue::Dictionary(d)) => d,
                _ => continue,
            };
            out.push(GpuStatistics {
                class: registry_class(s.raw()).unwrap_or_default(),
                registry_id: registry_id(s.raw()).unwrap_or(0),
                model: property(s.raw(), "model").and_then(|v| v.as_str().map(str::to_string)),
                core_count: property(s.raw(), "gpu-core-count").and_then(|v| v.as_u64()),
                statistics,
            });
        }
        Ok(out)
    }

    /// The `pmgr` DVFS tables.
    pub fn pmgr_tables() -> Result<PmgrTables> {
        for s in matching_services(c"AppleARMIODevice")? {
            if registry_name(s.raw()).as_deref() != Some("pmgr") {
                continue;
            }
            let props = properties(s.raw())?;
            let mut tables = PmgrTables::default();
            for (k, v) in props {
                if k.starts_with("voltage-states")
                    && let PropertyValue::Data(d) = v
                {
                    tables.voltage_states.insert(k, d);
                } else if k == "acc-clusters"
                    && let PropertyValue::Data(d) = v
                {
                    tables.acc_clusters = Some(d);
                }
            }
            return Ok(tables);
        }
        Err(SysError::null(
            "IOServiceMatching(AppleARMIODevice)",
            "no pmgr entry",
        ))
    }

    /// The SoC identity from the device tree (`IODeviceTree:/arm-io` and the root).
    pub fn soc_identity() -> SocIdentity {
        let mut id = SocIdentity::default();
        if let Some(arm_io) = entry_at(c"IODeviceTree:/arm-io") {
            if let Some(v) = property(arm_io.raw(), "compatible") {
                let list = match &v {
                    PropertyValue::Data(d) => string_list(d),
                    other => other
                        .as_str()
                        .map(|s| vec![s.to_string()])
                        .unwrap_or_default(),
                };
                id.soc_id = list.iter().find_map(|s| parse_soc_id(s));
            }
            id.soc_generation = property(arm_io.raw(), "soc-generation")
                .and_then(|v| v.as_str().map(str::to_string));
        }
        if let Some(root) = entry_at(c"IODeviceTree:/") {
            if id.soc_id.is_none() {
                id.soc_id = property(root.raw(), "platform-name")
                    .and_then(|v| v.as_str().and_then(parse_soc_id));
            }
            id.target_type =
                property(root.raw(), "target-type").and_then(|v| v.as_str().map(str::to_string));
            if let Some(PropertyValue::Data(d)) = property(root.raw(), "compatible") {
                id.compatible = string_list(&d);
            }
        }
        id
    }

    /// The Neural Engine's registry entries (`H11ANEIn`, `H1xANELoadBalancer`) with their
    /// device properties (`ANEDevicePropertyNumANECores`, `ANEDevicePropertyNumANEs`, ...).
    pub fn ane_entries() -> Vec<RegistryEntry> {
        let keys = [
            "ANEDevicePropertyNumANECores",
            "ANEDevicePropertyNumANEs",
            "DeviceProperties",
            "FirmwareLoaded",
            "IOPowerManagement",
        ];
        let mut out = Vec::new();
        for class in [c"H11ANEIn", c"H1xANELoadBalancer"] {
            match entries(class, &keys) {
                Ok(mut e) => out.append(&mut e),
                Err(e) => tracing::debug!(class = ?class, error = %e, "no ANE registry entries"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soc_ids_are_found_in_device_tree_strings() {
        assert_eq!(parse_soc_id("arm-io,t8103").as_deref(), Some("t8103"));
        assert_eq!(parse_soc_id("t6000").as_deref(), Some("t6000"));
        assert_eq!(parse_soc_id("gpu,t8112").as_deref(), Some("t8112"));
        assert_eq!(parse_soc_id("arm-io,s8000").as_deref(), Some("s8000"));
        assert_eq!(parse_soc_id("arm-io"), None);
        assert_eq!(parse_soc_id("t81030"), None);
        assert_eq!(parse_soc_id("J313AP"), None);
    }
}
