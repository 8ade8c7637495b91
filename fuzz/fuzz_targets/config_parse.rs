//! Any bytes -> config.json parsing, validation and the support-matrix check
//! must never panic (they run on untrusted input before any side effect).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut raw) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = libvessel::spec::support::check(&raw);
    let _ = libvessel::isolation::seccomp::take_extra_flags(&mut raw);
    if let Ok(spec) = serde_json::from_value::<oci_spec::runtime::Spec>(raw.clone()) {
        let _ = libvessel::spec::validate::validate(&spec, &raw);
    }
});
