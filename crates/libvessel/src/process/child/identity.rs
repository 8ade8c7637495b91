//! The process's identity: rlimits, capabilities and LSM exec labels.

use super::report::{check, fail, write_err};
use crate::isolation::caps;
use crate::process::plan::Step;
use libc::c_int;
use std::ffi::CStr;
use std::os::fd::RawFd;

/// The process's rlimits (the init and `exec` both set them).
pub fn set_rlimits(p: &crate::process::plan::ProcessParts, sock: RawFd) {
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

/// CAP_SYS_ADMIN's bit in a capability mask.
pub(super) const CAP_SYS_ADMIN_BIT: u64 = 1 << 21;

/// After the filter: the capability sets the process asked for, without the
/// CAP_SYS_ADMIN kept only to load the filter (one capset, lowering only).
pub(super) fn drop_kept_admin(
    p: &crate::process::plan::ProcessParts,
    keep_admin: bool,
    sock: RawFd,
    listening: bool,
) {
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

pub(super) fn write_attr(sock: RawFd, path: &CStr, fallback: &CStr, value: &CStr) {
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
