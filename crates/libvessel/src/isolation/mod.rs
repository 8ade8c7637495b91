//! The kernel-facing isolation layers applied to a container process. The
//! parent turns config.json into flat plans here; the init applies them.
pub mod caps;
pub mod devices;
pub mod idmap;
pub mod mounts;
pub mod namespaces;
pub use vessel_common::rlimits;
pub mod seccomp;
