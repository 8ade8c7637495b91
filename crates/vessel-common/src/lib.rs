//! vessel-common: small, kernel-facing facts that more than one of vessel's
//! programs needs: the runtime (`libvessel`), the VMM (`vessel-vmm`) and the
//! guest agent (`vessel-agent`). The OCI rlimit and mount-option tables, the
//! civil date of a Unix time (for log timestamps and the guest's RTC), the
//! check that a host's KVM can boot a Linux guest, and opening a pty pair.
//!
//! May depend on std and libc only: the agent links it into a static binary
//! copied into every guest, and nothing here may pull in the container
//! library or the VMM.

pub mod cgroup_units;
pub mod devices;
pub mod kvm;
pub mod mount_options;
pub mod pty;
pub mod rlimits;
pub mod socket_path;
pub mod time;
