//! Device nodes in the container's /dev (mknod, or a bind of the host's
//! node in a user namespace), the standard /dev symlinks, a read-only /dev.

use super::fd::{open_in_root, FdPath};
use super::mkdir::{mkdir_all_in_root, prefix_buf, Leaf};
use super::mount_calls::{mount, statvfs_flags};
use super::report::{check, fail};
use super::PATH_MAX;
use crate::isolation::caps::errno;
use crate::isolation::devices::DeviceOp;
use crate::process::plan::{InitPlan, Step};
use libc::c_char;
use std::ffi::CStr;
use std::os::fd::RawFd;

/// The container's /dev: the device nodes and the standard symlinks (made
/// read-only later, once /dev/console is there: `remount_dev_readonly`).
pub(super) fn setup_dev(plan: &InitPlan, sock: RawFd, rootfd: RawFd) {
    for (i, d) in plan.devices.iter().enumerate() {
        make_device(plan, sock, rootfd, d, i as i32);
    }
    if plan.make_dev_links {
        dev_symlinks(sock, rootfd);
    }
}

/// /dev read-only, when the config's /dev mount asked for it.
pub(super) fn remount_dev_readonly(sock: RawFd, rootfd: RawFd) {
    let fd = match open_in_root(rootfd, c"dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::DevReadonly, 0, e),
    };
    let t = FdPath::new(fd);
    let keep = statvfs_flags(t.ptr());
    let r = mount(
        std::ptr::null(),
        t.ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
        std::ptr::null(),
    );
    check(sock, r, Step::DevReadonly, 1);
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
}

fn make_device(plan: &InitPlan, sock: RawFd, rootfd: RawFd, d: &DeviceOp, idx: i32) {
    let bytes = d.dest.to_bytes();
    let slash = bytes.iter().rposition(|&b| b == b'/');
    let parent_fd = open_device_parent(sock, rootfd, bytes, slash, idx);
    let name = match slash {
        Some(s) => &bytes[s + 1..],
        None => bytes,
    };
    let mut nbuf = [0u8; 256];
    if name.len() >= nbuf.len() {
        fail(sock, Step::Device, idx, libc::ENAMETOOLONG);
    }
    nbuf[..name.len()].copy_from_slice(name);
    let np = nbuf.as_ptr() as *const c_char;
    // Replace whatever the image has at that name (runc does the same).
    // SAFETY: valid dirfd and NUL-terminated name.
    unsafe { libc::unlinkat(parent_fd, np, 0) };
    if plan.bind_devices {
        bind_host_node(sock, rootfd, d, parent_fd, np, idx);
    } else {
        let dev = libc::makedev(d.major as u32, d.minor as u32);
        // SAFETY: valid dirfd and name. umask must not strip the mode.
        unsafe {
            let old = libc::umask(0);
            let r = libc::mknodat(parent_fd, np, d.kind | d.mode, dev);
            libc::umask(old);
            check(sock, r, Step::Device, idx);
            check(
                sock,
                libc::fchownat(parent_fd, np, d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW),
                Step::Device,
                idx,
            );
        }
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(parent_fd) };
}

/// The directory the node goes in (`bytes[..slash]`), made if missing.
fn open_device_parent(
    sock: RawFd,
    rootfd: RawFd,
    bytes: &[u8],
    slash: Option<usize>,
    idx: i32,
) -> RawFd {
    let mut pbuf = [0u8; PATH_MAX];
    match slash {
        Some(s) => {
            prefix_buf(bytes, s, &mut pbuf);
            // SAFETY: pbuf is NUL-terminated by prefix_buf.
            let pc = unsafe { CStr::from_ptr(pbuf.as_ptr() as *const c_char) };
            if let Err(e) = mkdir_all_in_root(rootfd, pc, 0o755, Leaf::Dir) {
                fail(sock, Step::Device, idx, e);
            }
            match open_in_root(
                rootfd,
                pbuf.as_ptr() as *const c_char,
                libc::O_PATH | libc::O_DIRECTORY,
            ) {
                Ok(fd) => fd,
                Err(e) => fail(sock, Step::Device, idx, e),
            }
        }
        None => {
            // SAFETY: dup of a valid fd.
            unsafe { libc::fcntl(rootfd, libc::F_DUPFD_CLOEXEC, 0) }
        }
    }
}

/// An empty file at `np` in `parent_fd` with the host's node bound on it.
fn bind_host_node(
    sock: RawFd,
    rootfd: RawFd,
    d: &DeviceOp,
    parent_fd: RawFd,
    np: *const c_char,
    idx: i32,
) {
    // mknod is not allowed in a user namespace: bind the host node.
    // SAFETY: valid dirfd and name.
    let fd = unsafe {
        libc::openat(
            parent_fd,
            np,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    check(sock, fd, Step::Device, idx);
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
    let fd = match open_in_root(rootfd, d.dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Device, idx, e),
    };
    let t = FdPath::new(fd);
    check(
        sock,
        mount(
            d.host.as_ptr(),
            t.ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ),
        Step::Device,
        idx,
    );
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
}

fn dev_symlinks(sock: RawFd, rootfd: RawFd) {
    let dev = match open_in_root(rootfd, c"dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(_) => return,
    };
    let links: [(&CStr, &CStr); 5] = [
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
        (c"pts/ptmx", c"ptmx"),
    ];
    for (i, (target, name)) in links.iter().enumerate() {
        if i == 4 {
            // /dev/ptmx must point at the container's devpts instance.
            // SAFETY: valid dirfd and name.
            unsafe { libc::unlinkat(dev, name.as_ptr(), 0) };
        }
        // SAFETY: valid strings and dirfd.
        let r = unsafe { libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) };
        if r < 0 && errno() != libc::EEXIST {
            fail(sock, Step::Symlink, i as i32, errno());
        }
    }
    // SAFETY: access(2) on a constant path; symlinkat as above.
    unsafe {
        if libc::access(c"/proc/kcore".as_ptr(), libc::F_OK) == 0 {
            libc::symlinkat(c"/proc/kcore".as_ptr(), dev, c"core".as_ptr());
        }
        libc::close(dev);
    }
}
