//! Failures: a record to the parent, or a message on stderr once the
//! parent no longer reads the socket. No allocation.

use crate::isolation::caps::errno;
use crate::process::plan::Step;
use crate::process::sync::{self, Kind, Msg};
use libc::{c_char, c_int};
use std::ffi::CStr;
use std::os::fd::RawFd;

/// Report a failure to the parent and exit.
pub fn fail(sock: RawFd, step: Step, index: i32, err: i32) -> ! {
    let msg = Msg {
        kind: Kind::Error as u32,
        step: step as u32,
        index,
        errno: err,
    };
    sync::send(sock, &msg);
    // SAFETY: _exit never returns and runs no atexit handlers.
    unsafe { libc::_exit(1) }
}

pub(super) fn check(sock: RawFd, r: c_int, step: Step, index: i32) {
    if r < 0 {
        fail(sock, step, index, errno());
    }
}

/// Set errno to `e` and return -1.
pub(super) fn set_errno(e: i32) -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
    -1
}

/// `v` in decimal, written into `buf` without allocating.
pub(super) fn decimal(mut v: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = 0;
    loop {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        i += 1;
        if v == 0 {
            break;
        }
    }
    buf[..i].reverse();
    &buf[..i]
}

/// Write "<prefix><path>: errno N\n" to stderr without allocating.
pub(super) fn write_err(prefix: &[u8], path: *const c_char, e: i32) {
    let mut buf = [0u8; 512];
    let mut n = 0;
    let mut push = |b: &[u8], n: &mut usize| {
        let k = b.len().min(buf.len() - *n);
        buf[*n..*n + k].copy_from_slice(&b[..k]);
        *n += k;
    };
    push(prefix, &mut n);
    if !path.is_null() {
        // SAFETY: path is NUL-terminated.
        push(unsafe { CStr::from_ptr(path) }.to_bytes(), &mut n);
    }
    push(b": errno ", &mut n);
    let mut digits = [0u8; 12];
    push(decimal(e.unsigned_abs(), &mut digits), &mut n);
    push(b"\n", &mut n);
    // SAFETY: buf[..n] is initialised.
    unsafe { libc::write(2, buf.as_ptr() as *const libc::c_void, n) };
}
