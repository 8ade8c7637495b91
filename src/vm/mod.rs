//! VM-sandbox mode (stub: the VM owner fills this in).

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{0}")]
    Msg(String),
}

pub mod vmm;

use crate::cgroups::Cgroup;
use oci_spec::runtime::Spec;
use std::path::Path;

/// What `create` hands to VM mode.
pub struct LaunchRequest<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// Absolute rootfs path (already resolved against the bundle).
    pub rootfs: &'a Path,
    pub spec: &'a Spec,
    /// The container's state directory (the VMM may keep files there).
    pub state_dir: &'a Path,
    /// The VMM opens this FIFO for writing before boot; `start` releases it.
    pub exec_fifo: &'a Path,
    pub cgroup: &'a Cgroup,
}

/// Does this container ask for VM mode? (annotation `vessel.sandbox`, a `vm`
/// section in config.json, or vessel invoked as `vessel-vm`.)
pub fn requested(_spec: &Spec, _argv0: &str) -> Result<bool, VmError> {
    Ok(false)
}

/// Refuse at once where VM mode cannot work (no /dev/kvm, kvm_pvm, no kernel).
pub fn check_host(_spec: &Spec) -> Result<(), VmError> {
    Err(VmError::Msg("VM mode not implemented yet".into()))
}

/// Spawn the VMM process; returns its pid (the container's pid in `state`).
pub fn launch(_req: &LaunchRequest) -> Result<i32, VmError> {
    Err(VmError::Msg("VM mode not implemented yet".into()))
}

/// The hidden `vessel vmm` subcommand; returns the process exit code.
pub fn vmm_main(_args: &[String]) -> i32 {
    1
}
