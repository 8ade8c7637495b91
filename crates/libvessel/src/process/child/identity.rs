//! The process's identity: rlimits, user and groups, capabilities and LSM
//! exec labels.

use super::report::{check, fail, write_err};
use crate::isolation::caps::{self, errno};
use crate::process::plan::{ProcessParts, Step};
use libc::c_int;
use std::ffi::CStr;
use std::os::fd::RawFd;

/// The process's rlimits (the init and `exec` both set them).
pub fn set_rlimits(p: &ProcessParts, sock: RawFd) {
    for (i, (res, lim)) in p.rlimits.iter().enumerate() {
        // SAFETY: lim is a valid rlimit.
        check(
            sock,
            unsafe { libc::setrlimit(*res, lim) },
            Step::Rlimit,
            i as i32,
        );
    }
}

/// After the filter: the capability sets the process asked for, without the
/// CAP_SYS_ADMIN kept only to load the filter (one capset, lowering only).
pub(super) fn drop_kept_admin(p: &ProcessParts, keep_admin: bool, sock: RawFd, listening: bool) {
    if !keep_admin {
        return;
    }
    let c = &p.caps;
    if let Err(e) = caps::set_sets(c.effective, c.permitted, c.inheritable) {
        if listening {
            fail(sock, Step::Capabilities, 3, e);
        }
        write_err(b"vessel: drop capabilities: ", c"".as_ptr(), e);
        // SAFETY: _exit ends the process.
        unsafe { libc::_exit(1) }
    }
}

fn write_attr(sock: RawFd, path: &CStr, fallback: &CStr, value: &CStr) {
    // SAFETY: NUL-terminated paths; value is a valid buffer.
    unsafe {
        let mut fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            fd = libc::open(fallback.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        }
        check(sock, fd, Step::Capabilities, 10);
        let b = value.to_bytes();
        let n = libc::write(fd, b.as_ptr() as *const libc::c_void, b.len());
        check(sock, n as c_int, Step::Capabilities, 11);
        libc::close(fd);
    }
}

/// Keep capabilities across the uid change, drop the bounding set, then
/// the groups, gid, uid and umask of the process.
pub(super) fn become_user(p: &ProcessParts, sock: RawFd) {
    // SAFETY: prctl with integer arguments.
    check(
        sock,
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) },
        Step::Capabilities,
        0,
    );
    if let Err(e) = p.caps.drop_bounding() {
        fail(sock, Step::Capabilities, 1, e);
    }
    let u = &p.user;
    // SAFETY: id syscalls with plain values and a valid groups slice.
    unsafe {
        if libc::setgroups(u.groups.len(), u.groups.as_ptr()) < 0 {
            // EPERM when setgroups is denied in a user namespace with no groups asked.
            if !(u.groups.is_empty() && errno() == libc::EPERM) {
                fail(sock, Step::Setgroups, 0, errno());
            }
        }
        check(sock, libc::setresgid(u.gid, u.gid, u.gid), Step::Setgid, 0);
        check(sock, libc::setresuid(u.uid, u.uid, u.uid), Step::Setuid, 0);
        if let Some(m) = u.umask {
            libc::umask(m as libc::mode_t);
        }
    }
}

/// The capability sets and ambient set; returns whether CAP_SYS_ADMIN was
/// kept only to load the seccomp filter (see `drop_kept_admin`).
pub(super) fn set_capabilities(p: &ProcessParts, sock: RawFd) -> bool {
    // Keep CAP_SYS_ADMIN until the filter is loaded when only it lets the
    // kernel accept the filter (no no_new_privs) and the process drops it.
    let keep_admin = p
        .caps
        .keep_admin_for_filter(p.seccomp.is_some(), p.no_new_privs);
    if let Err(e) = p.caps.apply_keeping_admin(keep_admin) {
        fail(sock, Step::Capabilities, 2, e);
    }
    keep_admin
}

/// The LSM labels for execve: AppArmor profile, SELinux label.
pub(super) fn set_exec_labels(p: &ProcessParts, sock: RawFd) {
    if let Some(profile) = &p.apparmor {
        write_attr(
            sock,
            c"/proc/self/attr/apparmor/exec",
            c"/proc/self/attr/exec",
            profile,
        );
    }
    if let Some(label) = &p.selinux_label {
        write_attr(
            sock,
            c"/proc/self/attr/exec",
            c"/proc/self/attr/exec",
            label,
        );
    }
}
