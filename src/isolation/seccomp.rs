//! Seccomp from the OCI profile (stub: the seccomp owner fills this in).
//!
//! CONTRACT: `compile` runs in the parent before clone and allocates;
//! `Program::install` runs in the child and is async-signal-safe.

use oci_spec::runtime::LinuxSeccomp;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{0}")]
    Msg(String),
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone, Default)]
pub struct Program {
    pub filter: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits.
    pub flags: libc::c_ulong,
    /// The profile uses SCMP_ACT_NOTIFY: install returns a listener fd.
    pub wants_listener: bool,
}

/// Compile the profile. Warnings (unknown syscall names) go to `warn`.
pub fn compile(
    _seccomp: &LinuxSeccomp,
    _warn: &mut dyn FnMut(String),
) -> Result<Program, SeccompError> {
    Err(SeccompError::Msg("seccomp not implemented yet".into()))
}

impl Program {
    /// Load the filter into the calling thread (async-signal-safe: raw
    /// syscalls only). Returns the listener fd when `wants_listener`, else -1.
    pub fn install(&self) -> Result<i32, nix::errno::Errno> {
        Err(nix::errno::Errno::ENOSYS)
    }
}
