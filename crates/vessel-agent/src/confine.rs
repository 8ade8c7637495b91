//! The workload's privileges, as container mode sets them: the spec's
//! capabilities (bounding, effective, permitted, inheritable, ambient),
//! no_new_privs and seccomp profile, through the same vessel-isolation code
//! libvessel's init uses.
//!
//! `prepare` runs in the agent before the fork (it allocates: masks, the
//! BPF program); the `in_child_*` steps run in the forked child and are
//! async-signal-safe (raw syscalls only). The child's order is runc's and
//! libvessel's init's: keep capabilities across the uid change and drop the
//! bounding set (`in_child_before_user`), switch user, set the capability
//! sets and the ambient set, no_new_privs (`in_child_after_user`), then the
//! seccomp filter last, right before execve (`in_child_load_filter`).

use crate::spawn::{Failure, STEP_CONFINE_FIRST};
use crate::spec::{Linux, Process};
use vessel_isolation::caps::{self, CapSets};
use vessel_isolation::seccomp::{self, Program};

/// What the child applies, built before the fork.
pub struct Confinement {
    pub caps: CapSets,
    pub no_new_privs: bool,
    pub seccomp: Option<Program>,
    /// CAP_SYS_ADMIN stays until the filter is loaded (no no_new_privs and
    /// the process drops it): the kernel wants it to accept the filter.
    pub keep_admin: bool,
}

/// A step of the child that failed: the index into spawn's step names and
/// the errno.
pub type ChildError = (usize, i32);

pub const STEP_KEEPCAPS: usize = STEP_CONFINE_FIRST;
pub const STEP_BOUNDING: usize = STEP_CONFINE_FIRST + 1;
pub const STEP_CAPABILITIES: usize = STEP_CONFINE_FIRST + 2;
pub const STEP_NO_NEW_PRIVS: usize = STEP_CONFINE_FIRST + 3;
pub const STEP_SECCOMP: usize = STEP_CONFINE_FIRST + 4;
/// Names of the steps above, in order (appended to spawn's).
pub const STEP_NAMES: &[&str] = &[
    "keep capabilities (PR_SET_KEEPCAPS)",
    "drop the capability bounding set",
    "set capabilities",
    "no_new_privs",
    "load the seccomp filter",
];

/// The spec's capabilities, no_new_privs and compiled seccomp profile.
/// A profile that uses SCMP_ACT_NOTIFY is refused: its listener
/// (`listenerPath`) is a host socket nothing in the guest can reach
/// (`create` already refuses it in VM mode; this is the guest's own check).
pub fn prepare(
    p: &Process,
    linux: Option<&Linux>,
    extra_flags: &[String],
) -> Result<Confinement, Failure> {
    let caps = CapSets::from_oci(p.capabilities.as_ref(), caps::last_cap());
    let seccomp = match linux.and_then(|l| l.seccomp.as_ref()) {
        Some(profile) => {
            if seccomp::uses_notify(profile) {
                return Err(Failure::other(
                    "linux.seccomp: SCMP_ACT_NOTIFY cannot be used in a VM guest: \
                     the listener (listenerPath) is on the host",
                ));
            }
            let program =
                seccomp::compile_with_flags(profile, extra_flags, &mut |w| crate::console_note(&w))
                    .map_err(|e| Failure::other(format!("linux.seccomp: {e}")))?;
            Some(program)
        }
        None => None,
    };
    let keep_admin = caps.keep_admin_for_filter(seccomp.is_some(), p.no_new_privileges);
    Ok(Confinement {
        caps,
        no_new_privs: p.no_new_privileges,
        seccomp,
        keep_admin,
    })
}

/// In the child, as root: keep the permitted set across the uid change and
/// drop from the bounding set what the spec does not list (needs
/// CAP_SETPCAP, so before the user switch).
pub fn in_child_before_user(c: &Confinement) -> Result<(), ChildError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err((STEP_KEEPCAPS, caps::errno()));
    }
    c.caps.drop_bounding().map_err(|e| (STEP_BOUNDING, e))
}

/// In the child, after the user switch: the capability sets and the
/// ambient set, then no_new_privs.
pub fn in_child_after_user(c: &Confinement) -> Result<(), ChildError> {
    c.caps
        .apply_keeping_admin(c.keep_admin)
        .map_err(|e| (STEP_CAPABILITIES, e))?;
    // SAFETY: prctl with integer arguments only.
    if c.no_new_privs && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err((STEP_NO_NEW_PRIVS, caps::errno()));
    }
    Ok(())
}

/// In the child, last before execve: the seccomp filter, then (when it was
/// kept for it) CAP_SYS_ADMIN dropped with one capset(2).
pub fn in_child_load_filter(c: &Confinement) -> Result<(), ChildError> {
    let Some(program) = &c.seccomp else {
        return Ok(());
    };
    program.install().map_err(|e| (STEP_SECCOMP, e as i32))?;
    if c.keep_admin {
        caps::set_sets(c.caps.effective, c.caps.permitted, c.caps.inheritable)
            .map_err(|e| (STEP_CAPABILITIES, e))?;
    }
    Ok(())
}
