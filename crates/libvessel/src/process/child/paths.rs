//! After pivot_root: sysctls through the container's /proc/sys, masked
//! paths, read-only paths and a read-only root.

use super::fd::{
    openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV,
};
use super::mount_calls::{mount, statvfs_flags};
use super::report::{check, fail};
use crate::isolation::caps::errno;
use crate::process::plan::{InitPlan, Step};
use libc::c_int;
use std::ffi::CStr;
use std::os::fd::RawFd;

/// Write the sysctls through the container's own /proc/sys (opened after
/// pivot_root, and checked to be procfs), each key resolved beneath it
/// with no symlink and no mount crossing.
fn write_sysctls(plan: &InitPlan, sock: RawFd) {
    const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
    let dir = match openat2(
        libc::AT_FDCWD,
        c"/proc/sys".as_ptr(),
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Sysctl, -1, e),
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; dir is ours.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(dir, &mut st) } < 0 || st.f_type != PROC_SUPER_MAGIC {
        fail(sock, Step::Sysctl, -1, libc::EXDEV);
    }
    for (i, (rel, value)) in plan.sysctls.iter().enumerate() {
        let fd = match openat2(
            dir,
            rel.as_ptr(),
            libc::O_WRONLY,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        ) {
            Ok(fd) => fd,
            Err(e) => fail(sock, Step::Sysctl, i as i32, e),
        };
        let v = value.to_bytes();
        // SAFETY: v is a valid slice.
        let n = unsafe { libc::write(fd, v.as_ptr() as *const libc::c_void, v.len()) };
        check(sock, n as c_int, Step::Sysctl, i as i32);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(dir) };
}

fn mask_path(sock: RawFd, p: &CStr, idx: i32) {
    // SAFETY: zeroed stat is a valid out-parameter; p is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(p.as_ptr(), &mut st) } < 0 {
        let e = errno();
        if e == libc::ENOENT {
            return;
        }
        fail(sock, Step::MaskPath, idx, e);
    }
    let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            c"tmpfs".as_ptr(),
            p.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY,
            std::ptr::null(),
        )
    } else {
        mount(
            c"/dev/null".as_ptr(),
            p.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    check(sock, r, Step::MaskPath, idx);
}

fn readonly_path(sock: RawFd, p: &CStr, idx: i32) {
    let r = mount(
        p.as_ptr(),
        p.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REC,
        std::ptr::null(),
    );
    if r < 0 {
        let e = errno();
        if e == libc::ENOENT {
            return;
        }
        fail(sock, Step::ReadonlyPath, idx, e);
    }
    let keep = statvfs_flags(p.as_ptr());
    let r = mount(
        std::ptr::null(),
        p.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | keep,
        std::ptr::null(),
    );
    check(sock, r, Step::ReadonlyPath, idx);
}

/// Inside the new root: sysctls, masked paths, read-only paths, then a
/// read-only root.
pub(super) fn protect_paths(plan: &InitPlan, sock: RawFd) {
    // sysctls first: /proc/sys is usually among the read-only paths.
    if !plan.sysctls.is_empty() {
        write_sysctls(plan, sock);
    }
    for (i, p) in plan.masked.iter().enumerate() {
        mask_path(sock, p, i as i32);
    }
    for (i, p) in plan.readonly.iter().enumerate() {
        readonly_path(sock, p, i as i32);
    }
    if plan.readonly_root {
        let keep = statvfs_flags(c"/".as_ptr());
        let r = mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
            std::ptr::null(),
        );
        check(sock, r, Step::ReadonlyRoot, 0);
    }
}
