//! The System Management Controller: temperature sensors (macOS).
//!
//! The SMC is reached through the `AppleSMCKeysEndpoint` IOKit service with
//! `IOConnectCallStructMethod(selector 2)` on an 80-byte `SMCKeyData` record; the command
//! byte says what to do (9 = key info, 5 = read bytes, 8 = key name by index). Keys are
//! FourCCs (`Tp09`, `#KEY`); values carry a type FourCC (`flt `, `fpe2`, `sp78`, `ui32`, ...).
//! Sources: vladkens/macmon (`src_lib/sources.rs`, `SMC`), the Asahi Linux SMC
//! documentation (https://asahilinux.org/docs/hw/soc/smc/) and docs/apple.md.
//!
//! The record layout, key encoding and value decoding are plain functions here, tested on any
//! OS; only [`Smc`] (macOS) talks to the hardware.

use serde::Serialize;

use crate::error::{Result, SysError};

/// SMC command: read a key's bytes.
pub const CMD_READ_BYTES: u8 = 5;
/// SMC command: the key at an index.
pub const CMD_KEY_AT_INDEX: u8 = 8;
/// SMC command: a key's size and type.
pub const CMD_KEY_INFO: u8 = 9;
/// The SMC result code for a key that does not exist.
pub const RESULT_KEY_NOT_FOUND: u8 = 132;

/// `SMCKeyData.vers`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyDataVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u8,
    /// Reserved.
    pub reserved: u8,
    /// Release.
    pub release: u16,
}

/// `SMCKeyData.pLimitData`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PowerLimitData {
    /// Version.
    pub version: u16,
    /// Length.
    pub length: u16,
    /// CPU power limit.
    pub cpu_limit: u32,
    /// GPU power limit.
    pub gpu_limit: u32,
    /// Memory power limit.
    pub mem_limit: u32,
}

/// `SMCKeyData.keyInfo`: a key's size and type.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Bytes of the value.
    pub data_size: u32,
    /// Type FourCC (`flt ` = 0x666c7420).
    pub data_type: u32,
    /// Attributes.
    pub data_attributes: u8,
}

/// The 80-byte record exchanged with the SMC user client (`SMCKeyData_t`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyData {
    /// The key FourCC.
    pub key: u32,
    /// Version.
    pub vers: KeyDataVersion,
    /// Power limits.
    pub p_limit_data: PowerLimitData,
    /// Key info (filled by command 9, passed in for command 5).
    pub key_info: KeyInfo,
    /// Result code (0 = ok, 132 = no such key).
    pub result: u8,
    /// Status.
    pub status: u8,
    /// The command.
    pub data8: u8,
    /// Argument (the index for command 8).
    pub data32: u32,
    /// The value's bytes.
    pub bytes: [u8; 32],
}

/// The FourCC of a four-character key or type (`"Tp09"` → `0x54703039`).
pub fn fourcc(key: &str) -> Result<u32> {
    let b = key.as_bytes();
    if b.len() != 4 || !key.is_ascii() {
        return Err(SysError::invalid(
            format!("SMC key {key:?}"),
            "must be four ASCII characters",
        ));
    }
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The four characters of a FourCC (non-printable bytes as `?`).
pub fn fourcc_text(code: u32) -> String {
    code.to_be_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Decodes an SMC value of type `data_type` (a FourCC) from its bytes; `None` for types
/// that are not numbers or bytes too short for the type.
///
/// `flt ` is a little-endian `f32` on Apple Silicon; `fpe2` unsigned 14.2 and `sp78` signed
/// 7.8 fixed point, big-endian; `ui8 `/`ui16`/`ui32`/`si8 `/`si16` big-endian integers;
/// `flag` one byte.
pub fn decode(data_type: u32, bytes: &[u8]) -> Option<f64> {
    let b = |n: usize| bytes.get(..n);
    match &data_type.to_be_bytes() {
        b"flt " => b(4).map(|v| f64::from(f32::from_le_bytes([v[0], v[1], v[2], v[3]]))),
        b"fpe2" => b(2).map(|v| f64::from(u16::from_be_bytes([v[0], v[1]])) / 4.0),
        b"sp78" => b(2).map(|v| f64::from(i16::from_be_bytes([v[0], v[1]])) / 256.0),
        b"ui8 " | b"flag" => b(1).map(|v| f64::from(v[0])),
        b"si8 " => b(1).map(|v| f64::from(v[0] as i8)),
        b"ui16" => b(2).map(|v| f64::from(u16::from_be_bytes([v[0], v[1]]))),
        b"si16" => b(2).map(|v| f64::from(i16::from_be_bytes([v[0], v[1]]))),
        b"ui32" => b(4).map(|v| f64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
        _ => None,
    }
}

/// Whether `key` names a temperature sensor (`T…`).
pub fn is_temperature_key(key: &str) -> bool {
    key.len() == 4 && key.starts_with('T')
}

/// The SMC key of the whole system's power draw, watts (`flt `), as macmon
/// (`get_sys_power`, src_lib/metrics.rs) and mactop (`SMCGetFloatValue(…, "PSTR")`,
/// internal/app/ioreport.m) read it.
pub const SYSTEM_POWER_KEY: &str = "PSTR";

/// The bytes a numeric SMC type needs (`None` for types that are not numbers).
pub fn type_size(data_type: u32) -> Option<u32> {
    match &data_type.to_be_bytes() {
        b"flt " | b"ui32" => Some(4),
        b"fpe2" | b"sp78" | b"ui16" | b"si16" => Some(2),
        b"ui8 " | b"si8 " | b"flag" => Some(1),
        _ => None,
    }
}

/// The temperature sensors among enumerated keys: `T…` keys of a temperature type (`flt `,
/// `sp78`, `fpe2`) whose reported size matches the type (a key whose size disagrees with its
/// type would be decoded from the wrong bytes).
pub fn temperature_keys(
    keys: impl IntoIterator<Item = (String, KeyInfo)>,
) -> std::collections::BTreeMap<String, KeyInfo> {
    keys.into_iter()
        .filter(|(key, info)| {
            is_temperature_key(key)
                && matches!(&info.data_type.to_be_bytes(), b"flt " | b"sp78" | b"fpe2")
                && type_size(info.data_type) == Some(info.data_size)
        })
        .collect()
}

/// One SMC reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmcReading {
    /// The key (`Tp09`).
    pub key: String,
    /// The type (`flt `).
    pub data_type: String,
    /// The decoded value (°C for temperature keys).
    pub value: f64,
}

#[cfg(target_os = "macos")]
pub use imp::Smc;

#[cfg(target_os = "macos")]
mod imp {
    use std::collections::BTreeMap;

    use objc2_io_kit::{IOConnectCallStructMethod, IOServiceClose, IOServiceOpen, io_connect_t};

    use super::*;
    use crate::iokit::{matching_services, registry_name};

    unsafe extern "C" {
        /// This process's task port (the libSystem global behind `mach_task_self()`).
        static mach_task_self_: libc::mach_port_t;
    }

    /// An open connection to the SMC, with the temperature keys found when it was opened.
    pub struct Smc {
        conn: io_connect_t,
        temperature_keys: BTreeMap<String, KeyInfo>,
    }

    impl std::fmt::Debug for Smc {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Smc")
                .field("temperature_keys", &self.temperature_keys.len())
                .finish()
        }
    }

    // SAFETY: the connection is a Mach port name (an integer); IOKit calls on it may be made
    // from any thread.
    unsafe impl Send for Smc {}

    impl Smc {
        /// Opens `AppleSMCKeysEndpoint` and lists the temperature keys of type `flt `,
        /// `sp78` or `fpe2`.
        pub fn open() -> Result<Self> {
            let mut conn: io_connect_t = 0;
            let mut found = false;
            for service in matching_services(c"AppleSMC")? {
                let name = registry_name(service.raw());
                if name.as_deref() == Some("AppleSMCKeysEndpoint") {
                    // SAFETY: `service` is a live io_service_t held by `service`; `conn` is a
                    // valid out-pointer; `mach_task_self_` is set by libSystem before `main`
                    // and never changes.
                    let kr = unsafe { IOServiceOpen(service.raw(), mach_task_self_, 0, &mut conn) };
                    if kr != 0 {
                        return Err(SysError::status(
                            "IOServiceOpen",
                            kr,
                            "AppleSMCKeysEndpoint",
                        ));
                    }
                    found = true;
                    break;
                }
            }
            if !found {
                return Err(SysError::null(
                    "IOServiceMatching(AppleSMC)",
                    "no AppleSMCKeysEndpoint service",
                ));
            }
            let mut smc = Smc {
                conn,
                temperature_keys: BTreeMap::new(),
            };
            let count = smc.key_count()?;
            let listed = (0..count).filter_map(|i| {
                let key = smc.key_at(i).ok()?;
                if !is_temperature_key(&key) {
                    return None;
                }
                let info = smc.key_info(&key).ok()?;
                Some((key, info))
            });
            let keys = temperature_keys(listed.collect::<Vec<_>>());
            smc.temperature_keys = keys;
            tracing::debug!(
                keys = count,
                temperature_keys = smc.temperature_keys.len(),
                "SMC opened"
            );
            Ok(smc)
        }

        fn call(&self, input: &KeyData) -> Result<KeyData> {
            let mut output = KeyData::default();
            let mut out_len = std::mem::size_of::<KeyData>();
            // SAFETY: both records are 80-byte `repr(C)` `SMCKeyData` values that live for
            // the call; the lengths passed are their sizes; selector 2 is the SMC user
            // client's struct method.
            let kr = unsafe {
                IOConnectCallStructMethod(
                    self.conn,
                    2,
                    (input as *const KeyData).cast(),
                    std::mem::size_of::<KeyData>(),
                    (&mut output as *mut KeyData).cast(),
                    &mut out_len,
                )
            };
            if kr != 0 {
                return Err(SysError::status(
                    "IOConnectCallStructMethod",
                    kr,
                    format!("SMC command {}", input.data8),
                ));
            }
            if output.result == RESULT_KEY_NOT_FOUND {
                return Err(SysError::invalid(
                    format!("SMC key {}", fourcc_text(input.key)),
                    "no such key",
                ));
            }
            if output.result != 0 {
                return Err(SysError::status(
                    "SMC",
                    i64::from(output.result),
                    format!("key {}", fourcc_text(input.key)),
                ));
            }
            Ok(output)
        }

        /// A key's size and type.
        pub fn key_info(&self, key: &str) -> Result<KeyInfo> {
            let input = KeyData {
                key: fourcc(key)?,
                data8: CMD_KEY_INFO,
                ..KeyData::default()
            };
            Ok(self.call(&input)?.key_info)
        }

        fn read_with(&self, key: &str, info: KeyInfo) -> Result<SmcReading> {
            let input = KeyData {
                key: fourcc(key)?,
                key_info: info,
                data8: CMD_READ_BYTES,
                ..KeyData::default()
            };
            let out = self.call(&input)?;
            let n = (info.data_size as usize).min(out.bytes.len());
            let value =
                decode(info.data_type, out.bytes.get(..n).unwrap_or(&[])).ok_or_else(|| {
                    SysError::invalid(
                        format!("SMC key {key}"),
                        format!("type {:?} is not a number", fourcc_text(info.data_type)),
                    )
                })?;
            Ok(SmcReading {
                key: key.to_string(),
                data_type: fourcc_text(info.data_type),
                value,
            })
        }

        /// Reads one key as a number.
        pub fn read(&self, key: &str) -> Result<SmcReading> {
            let info = self.key_info(key)?;
            self.read_with(key, info)
        }

        /// Number of keys (`#KEY`).
        pub fn key_count(&self) -> Result<u32> {
            let info = self.key_info("#KEY")?;
            let input = KeyData {
                key: fourcc("#KEY")?,
                key_info: info,
                data8: CMD_READ_BYTES,
                ..KeyData::default()
            };
            let out = self.call(&input)?;
            let [a, b, c, d, ..] = out.bytes;
            Ok(u32::from_be_bytes([a, b, c, d]))
        }

        /// The key at `index`.
        pub fn key_at(&self, index: u32) -> Result<String> {
            let input = KeyData {
                data8: CMD_KEY_AT_INDEX,
                data32: index,
                ..KeyData::default()
            };
            Ok(fourcc_text(self.call(&input)?.key))
        }

        /// The system's power draw in watts (`PSTR`), when the SMC has the key.
        pub fn system_power(&self) -> Result<f64> {
            Ok(self.read(SYSTEM_POWER_KEY)?.value)
        }

        /// Every temperature sensor found when the connection was opened (keys that fail to
        /// read now are skipped and logged).
        pub fn temperatures(&self) -> Vec<SmcReading> {
            let mut out = Vec::with_capacity(self.temperature_keys.len());
            for (key, info) in &self.temperature_keys {
                match self.read_with(key, *info) {
                    Ok(r) if r.value.is_finite() => out.push(r),
                    Ok(_) => {}
                    Err(e) => tracing::trace!(key = %key, error = %e, "SMC read failed"),
                }
            }
            out
        }
    }

    impl Drop for Smc {
        fn drop(&mut self) {
            // SAFETY: `conn` was opened by IOServiceOpen and is closed once, here.
            let _ = IOServiceClose(self.conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_the_80_byte_smc_layout() {
        assert_eq!(std::mem::size_of::<KeyData>(), 80);
        assert_eq!(std::mem::offset_of!(KeyData, key_info), 28);
        assert_eq!(std::mem::offset_of!(KeyData, result), 40);
        assert_eq!(std::mem::offset_of!(KeyData, data8), 42);
        assert_eq!(std::mem::offset_of!(KeyData, data32), 44);
        assert_eq!(std::mem::offset_of!(KeyData, bytes), 48);
    }

    #[test]
    fn keys_are_big_endian_fourccs() {
        assert_eq!(fourcc("#KEY").unwrap(), 0x234b_4559);
        assert_eq!(fourcc("flt ").unwrap(), 1_718_383_648);
        assert_eq!(fourcc_text(0x5470_3039), "Tp09");
        assert_eq!(fourcc_text(0x0000_4142), "??AB");
        assert!(fourcc("Tp0").is_err());
        assert!(fourcc("Tpé").is_err());
    }

    #[test]
    fn values_decode_by_type() {
        let t = |s: &str| fourcc(s).unwrap();
        assert_eq!(decode(t("flt "), &42.5f32.to_le_bytes()), Some(42.5));
        assert_eq!(decode(t("fpe2"), &[0x00, 0x29]), Some(10.25));
        assert_eq!(decode(t("sp78"), &[0x2a, 0x80]), Some(42.5));
        assert_eq!(decode(t("sp78"), &[0xff, 0x00]), Some(-1.0));
        assert_eq!(decode(t("ui8 "), &[7]), Some(7.0));
        assert_eq!(decode(t("si8 "), &[0xff]), Some(-1.0));
        assert_eq!(decode(t("ui16"), &[1, 0]), Some(256.0));
        assert_eq!(decode(t("ui32"), &[0, 0, 1, 0]), Some(256.0));
        assert_eq!(decode(t("flag"), &[1]), Some(1.0));
        assert_eq!(decode(t("ch8*"), b"abcd"), None);
        assert_eq!(decode(t("flt "), &[0, 0]), None, "too short");
    }

    #[test]
    fn only_temperature_keys_of_a_matching_size_are_kept() {
        let info = |t: &str, size: u32| KeyInfo {
            data_size: size,
            data_type: fourcc(t).unwrap(),
            data_attributes: 0,
        };
        let keys = temperature_keys(vec![
            ("Tp09".to_string(), info("flt ", 4)),
            ("Tg0f".to_string(), info("sp78", 2)),
            ("Te05".to_string(), info("fpe2", 2)),
            // A temperature key of a non-temperature type, a power key, a size mismatch.
            ("Ts0P".to_string(), info("ui8 ", 1)),
            ("PSTR".to_string(), info("flt ", 4)),
            ("Tp0b".to_string(), info("flt ", 2)),
        ]);
        let names: Vec<&str> = keys.keys().map(String::as_str).collect();
        assert_eq!(names, ["Te05", "Tg0f", "Tp09"]);
        assert_eq!(type_size(fourcc("flt ").unwrap()), Some(4));
        assert_eq!(type_size(fourcc("ch8*").unwrap()), None);
        assert_eq!(SYSTEM_POWER_KEY, "PSTR");
    }

    #[test]
    fn temperature_keys_start_with_t() {
        assert!(is_temperature_key("Tp09"));
        assert!(is_temperature_key("Tg0f"));
        assert!(!is_temperature_key("PSTR"));
        assert!(!is_temperature_key("T"));
    }
}
