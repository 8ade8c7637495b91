//! Any bytes -> serde_json -> oci_spec::runtime::Spec must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = serde_json::from_value::<oci_spec::runtime::Spec>(value);
    }
    let _ = serde_json::from_slice::<oci_spec::runtime::Spec>(data);
});
