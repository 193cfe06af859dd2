//! IOHID temperature sensors (macOS).
//!
//! Apple silicon publishes its die temperature sensors as HID services of the Apple vendor
//! usage page (`PrimaryUsagePage` 0xff00, `PrimaryUsage` 5 = temperature sensor); each has a
//! `Product` name (`pACC MTR Temp Sensor0`, `GPU MTR Temp Sensor1`, `PMU tdie1`) and answers
//! `IOHIDServiceClientCopyEvent(kIOHIDEventTypeTemperature = 15)` with an event whose float
//! field `15 << 16` is degrees Celsius. The calls are private IOKit functions; they are
//! declared and used as vladkens/macmon does (`src_lib/sources.rs`, `IOHIDSensors`, itself
//! after freedomtan/sensors `sensors/sensors.m`), with every `Copy`/`Create` result released
//! (macmon does not release the `Product` string; we do, by the Create rule). On the chips
//! where the SMC has no temperature keys readable without privileges (macmon reads HID when
//! it finds no SMC CPU keys), these sensors are the only temperatures there are.

use serde::Serialize;

/// The HID usage page of Apple's vendor-defined services.
pub const APPLE_VENDOR_PAGE: i32 = 0xff00;
/// The usage of a temperature sensor on [`APPLE_VENDOR_PAGE`].
pub const TEMPERATURE_SENSOR_USAGE: i32 = 0x0005;
/// `kIOHIDEventTypeTemperature`.
pub const EVENT_TYPE_TEMPERATURE: i64 = 15;

/// The event field holding a temperature (`IOHIDEventFieldBase(type) = type << 16`).
pub const fn temperature_field() -> i64 {
    EVENT_TYPE_TEMPERATURE << 16
}

/// One HID temperature sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HidTemperature {
    /// The service's `Product` property (`pACC MTR Temp Sensor0`).
    pub product: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

#[cfg(target_os = "macos")]
pub use imp::temperatures;

#[cfg(target_os = "macos")]
mod imp {
    use std::ffi::c_void;
    use std::ptr::NonNull;

    use objc2_core_foundation::{CFArray, CFDictionary, CFNumber, CFRetained, CFString, CFType};

    use super::*;
    use crate::error::{Result, SysError};

    #[repr(C)]
    struct Opaque {
        _private: [u8; 0],
    }

    #[link(name = "IOKit", kind = "framework")]
    unsafe extern "C" {
        fn IOHIDEventSystemClientCreate(allocator: *const c_void) -> *mut Opaque;
        fn IOHIDEventSystemClientSetMatching(
            client: *mut Opaque,
            matching: *const CFDictionary,
        ) -> i32;
        fn IOHIDEventSystemClientCopyServices(client: *mut Opaque) -> *mut CFArray;
        fn IOHIDServiceClientCopyProperty(
            service: *const c_void,
            key: *const CFString,
        ) -> *mut CFType;
        fn IOHIDServiceClientCopyEvent(
            service: *const c_void,
            event_type: i64,
            options: i32,
            timeout: i64,
        ) -> *mut Opaque;
        fn IOHIDEventGetFloatValue(event: *mut Opaque, field: i64) -> f64;
        fn CFRelease(cf: *const c_void);
    }

    /// An owned CF-style reference released on drop (the IOHID client and events are CF
    /// objects without a typed binding).
    struct Owned(NonNull<Opaque>);

    impl Drop for Owned {
        fn drop(&mut self) {
            // SAFETY: the pointer was returned by a Create/Copy function (owned, +1) and is
            // released once, here.
            unsafe { CFRelease(self.0.as_ptr().cast_const().cast()) };
        }
    }

    /// Every temperature sensor the HID event system lists, with its current value
    /// (sensors that give no event are skipped).
    pub fn temperatures() -> Result<Vec<HidTemperature>> {
        // SAFETY: a null allocator means the default allocator; the client is returned
        // owned (Create rule).
        let client = unsafe { IOHIDEventSystemClientCreate(std::ptr::null()) };
        let client = NonNull::new(client)
            .map(Owned)
            .ok_or_else(|| SysError::null("IOHIDEventSystemClientCreate", "no client"))?;
        let page = CFNumber::new_i32(APPLE_VENDOR_PAGE);
        let usage = CFNumber::new_i32(TEMPERATURE_SENSOR_USAGE);
        let keys = [
            &*CFString::from_static_str("PrimaryUsagePage"),
            &*CFString::from_static_str("PrimaryUsage"),
        ];
        let values: [&CFType; 2] = [(*page).as_ref(), (*usage).as_ref()];
        let matching = CFDictionary::<CFString, CFType>::from_slices(&keys, &values);
        // SAFETY: a live client and a dictionary of CF values that outlives the call.
        unsafe { IOHIDEventSystemClientSetMatching(client.0.as_ptr(), matching.as_opaque()) };
        // SAFETY: a live client; the array is returned owned (Copy rule).
        let services = unsafe { IOHIDEventSystemClientCopyServices(client.0.as_ptr()) };
        let Some(services) = NonNull::new(services) else {
            return Ok(Vec::new());
        };
        // SAFETY: owned by the Copy call above.
        let services: CFRetained<CFArray> = unsafe { CFRetained::from_raw(services) };
        let product_key = CFString::from_static_str("Product");
        let mut out = Vec::new();
        for i in 0..services.len() {
            // SAFETY: `i` < count; the element is an IOHIDServiceClient (a CF object) that
            // the array keeps alive.
            let service = unsafe { services.value_at_index(i as _) };
            if service.is_null() {
                continue;
            }
            // SAFETY: a live service; the property is returned owned (Copy rule).
            let name = unsafe { IOHIDServiceClientCopyProperty(service, &*product_key) };
            let Some(name) = NonNull::new(name) else {
                continue;
            };
            // SAFETY: owned by the Copy call above.
            let name: CFRetained<CFType> = unsafe { CFRetained::from_raw(name) };
            let Some(product) = name.downcast_ref::<CFString>().map(|s| s.to_string()) else {
                continue;
            };
            // SAFETY: a live service; the event is returned owned (Copy rule) or null.
            let event =
                unsafe { IOHIDServiceClientCopyEvent(service, EVENT_TYPE_TEMPERATURE, 0, 0) };
            let Some(event) = NonNull::new(event).map(Owned) else {
                continue;
            };
            // SAFETY: a live temperature event and its temperature field.
            let celsius = unsafe { IOHIDEventGetFloatValue(event.0.as_ptr(), temperature_field()) };
            out.push(HidTemperature { product, celsius });
        }
        drop(client);
        out.sort_by(|a, b| a.product.cmp(&b.product));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temperature_field_is_the_event_type_shifted() {
        // IOHIDEventFieldBase(kIOHIDEventTypeTemperature), as macmon and freedomtan/sensors
        // pass it.
        assert_eq!(temperature_field(), 15 << 16);
        assert_eq!(temperature_field(), 983_040);
    }
}
