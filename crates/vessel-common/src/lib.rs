//! vessel-common: small, kernel-facing facts that more than one of vessel's
//! programs needs: the runtime (`libvessel`), the VMM (`vessel-vmm`) and the
//! guest agent (`vessel-agent`). The OCI rlimit and mount-option tables, the
//! civil date of a Unix time (for log timestamps and the guest's RTC), and
//! the check that a host's KVM can boot a Linux guest.
//!
//! May depend on std and libc only: the agent links it into a static binary
//! copied into every guest, and nothing here may pull in the container
//! library or the VMM.

pub mod kvm;
pub mod mount_options;
pub mod rlimits;
pub mod time;
