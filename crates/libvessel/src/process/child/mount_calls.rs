//! The mount syscalls the init uses: mount(2), the new mount API
//! (open_tree, move_mount, mount_setattr) on fds, and statvfs flags.

use super::fd::{open_in_root, FdPath};
use super::mkdir::prefix_buf;
use super::report::set_errno;
use super::PATH_MAX;
use crate::isolation::caps::errno;
use libc::{c_char, c_int, c_ulong};
use std::ffi::CStr;
use std::os::fd::RawFd;

/// The flags a bind remount of `path` must keep (see `mounted_flags`).
pub(super) fn statvfs_flags(path: *const c_char) -> c_ulong {
    // SAFETY: every caller passes a NUL-terminated path that outlives the
    // call; from_ptr only measures it (no allocation).
    vessel_common::mount_options::mounted_flags(unsafe { CStr::from_ptr(path) })
}

pub(super) fn mount(
    src: *const c_char,
    dst: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: *const c_char,
) -> c_int {
    // SAFETY: all strings are NUL-terminated or null.
    unsafe { libc::mount(src, dst, fstype, flags, data as *const libc::c_void) }
}

pub(super) fn ptr_or_null(s: &CStr) -> *const c_char {
    if s.to_bytes().is_empty() {
        std::ptr::null()
    } else {
        s.as_ptr()
    }
}

/// Replace the tree attached at `dest` (a host-side copy, made before the
/// rootfs) by a copy of itself made now: mountinfo lists mounts in the
/// order they were made, and the container must see its mounts in config
/// order after "/". Returns 0 or -1 with errno set.
pub(super) fn recopy_in_place(rootfd: RawFd, dest: &CStr) -> c_int {
    let top = match open_in_root(rootfd, dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => return set_errno(e),
    };
    let copy = open_tree_fd(top, true);
    let e = errno();
    let r = if copy < 0 {
        set_errno(e)
    } else {
        let t = FdPath::new(top);
        // SAFETY: umount2 on a NUL-terminated /proc/self/fd path.
        unsafe { libc::umount2(t.ptr(), libc::MNT_DETACH) }
    };
    let e = errno();
    // SAFETY: closing an fd we own.
    unsafe { libc::close(top) };
    if r < 0 {
        if copy >= 0 {
            // SAFETY: closing an fd we own.
            unsafe { libc::close(copy) };
        }
        return set_errno(e);
    }
    let below = match open_in_root(rootfd, dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => {
            // SAFETY: closing an fd we own.
            unsafe { libc::close(copy) };
            return set_errno(e);
        }
    };
    let r = move_mount_fd(copy, below);
    let e = errno();
    // SAFETY: closing fds we own.
    unsafe {
        libc::close(copy);
        libc::close(below);
    }
    if r < 0 {
        set_errno(e)
    } else {
        0
    }
}

/// open_tree(fd, "", OPEN_TREE_CLONE [| AT_RECURSIVE]): a detached copy.
pub(super) fn open_tree_fd(fd: RawFd, recursive: bool) -> RawFd {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: an empty NUL-terminated path and integer flags.
    unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) as RawFd }
}

/// move_mount(from, "", to, ""): attach the detached tree `from` on `to`.
pub(super) fn move_mount_fd(from: RawFd, to: RawFd) -> c_int {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: fds the caller owns, empty NUL-terminated paths.
    unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ) as c_int
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE): the recursive
/// mount options (`rro`, `rnosuid`, ...) on the mount at `fd` and below.
pub(super) fn mount_setattr_rec(fd: RawFd, set: u64, clr: u64) -> c_int {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr is a valid mount_attr of the given size; empty path.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) as c_int
    }
}

/// MS_PRIVATE on the innermost mount point above `rootfs` (an absolute,
/// canonical path): mount(2) answers EINVAL for a path that is not a mount
/// point, so walk up until one accepts. Stack buffers only.
pub(super) fn make_parent_mount_private(rootfs: &[u8]) {
    let mut buf = [0u8; PATH_MAX];
    let mut len = rootfs.len();
    loop {
        len = match rootfs[..len].iter().rposition(|&b| b == b'/') {
            Some(0) | None => 1,
            Some(p) => p,
        };
        if !prefix_buf(rootfs, len, &mut buf) {
            return;
        }
        let r = mount(
            std::ptr::null(),
            buf.as_ptr() as *const c_char,
            std::ptr::null(),
            libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if r == 0 || len == 1 {
            return;
        }
    }
}
