//! The kernel-facing isolation layers applied to a container process. The
//! parent turns config.json into flat plans here; the init applies them.
pub mod devices;
pub mod idmap;
pub mod mounts;
pub mod namespaces;
pub use vessel_common::rlimits;
// Capabilities and seccomp live in vessel-isolation, shared with the VM
// guest's agent; re-exported so container mode's paths stay the same.
pub use vessel_isolation::{caps, seccomp};
