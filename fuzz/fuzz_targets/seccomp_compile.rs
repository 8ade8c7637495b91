//! Any bytes -> LinuxSeccomp -> compile must never panic, and whatever
//! compiles fits the kernel's limit of 4096 instructions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;
use libvessel::isolation::seccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(mut config) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // Exercise the flag pre-pass the integrator runs on config.json too.
    let extra = seccomp::take_extra_flags(&mut config);
    let profile = config.pointer("/linux/seccomp").cloned().unwrap_or(config);
    let Ok(profile) = serde_json::from_value::<LinuxSeccomp>(profile) else {
        return;
    };
    if let Ok(program) = seccomp::compile_with_flags(&profile, &extra, &mut |_| {}) {
        assert!(!program.filter.is_empty() && program.filter.len() <= 4096);
    }
});
