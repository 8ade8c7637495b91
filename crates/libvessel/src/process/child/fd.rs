//! Fds as paths: "/proc/self/fd/N" on the stack, openat2(2) with RESOLVE_*
//! flags, and reopening our own fds through /proc.

use crate::isolation::caps::errno;
use libc::{c_char, c_int};
use std::os::fd::RawFd;

/// "/proc/self/fd/<fd>" into a stack buffer.
pub(super) struct FdPath {
    buf: [u8; 32],
}

impl FdPath {
    pub(super) fn new(fd: RawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd as u32;
        let mut i = 0;
        loop {
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            i += 1;
            if n == 0 {
                break;
            }
        }
        for k in 0..i {
            buf[prefix.len() + k] = digits[i - 1 - k];
        }
        FdPath { buf }
    }
    pub(super) fn ptr(&self) -> *const c_char {
        self.buf.as_ptr() as *const c_char
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
pub(super) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

pub(super) const RESOLVE_NO_XDEV: u64 = 0x01;
pub(super) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub(super) const RESOLVE_BENEATH: u64 = 0x08;

/// openat2(root, rel, RESOLVE_IN_ROOT): symlinks resolve as if `root` were /.
pub(crate) fn open_in_root(root: RawFd, rel: *const c_char, flags: c_int) -> Result<RawFd, i32> {
    openat2(root, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// openat2(2) with the given RESOLVE_* flags (O_CLOEXEC always added).
pub(super) fn openat2(
    dir: RawFd,
    rel: *const c_char,
    flags: c_int,
    resolve: u64,
) -> Result<RawFd, i32> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: rel is NUL-terminated, how is a valid open_how of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            rel,
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as RawFd)
    }
}

/// Our /proc/self/fd, opened before chroot when the container shares the
/// runtime's mount namespace (no proc is mounted in its root then), or -1.
pub(super) static PROC_FD_DIR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Reopen one of our fds through /proc/self/fd (the container's proc, or
/// the one kept in PROC_FD_DIR).
pub(super) fn reopen_fd(fd: RawFd, flags: c_int) -> RawFd {
    let path = FdPath::new(fd);
    let dir = PROC_FD_DIR.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: NUL-terminated paths; dir is a directory fd we own.
    unsafe {
        if dir >= 0 {
            libc::openat(dir, path.ptr().add(b"/proc/self/fd/".len()), flags)
        } else {
            libc::open(path.ptr(), flags)
        }
    }
}
