//! The kernel-facing isolation layers applied to a container process.
pub mod seccomp;
