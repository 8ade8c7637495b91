//! The device nodes every OCI container's /dev holds (runtime-spec, "Default
//! Devices"): container mode creates them in its tmpfs /dev, the guest agent
//! in the workload's, and VM mode accepts them (only them) in
//! `linux.devices`.

/// (name under /dev, major, minor): character devices, mode 0666, root's.
pub const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
