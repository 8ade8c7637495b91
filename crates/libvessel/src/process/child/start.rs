//! The wait for `vessel start` on the exec FIFO.

use super::fd::{reopen_fd, FdPath};
use super::report::{fail, write_err};
use super::signals::exit_on_fatal_signals;
use crate::isolation::caps::errno;
use crate::process::plan::{InitPlan, Step};
use crate::process::sync::{self, Kind, Msg};
use std::os::fd::RawFd;

/// Tell the parent we are ready, then block on the exec FIFO until `start`.
/// Returns the length of the hook state received into `hook_state`.
pub(super) fn wait_for_start(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> usize {
    if plan.exec_fifo_fd < 0 {
        sync::send(sock, &Msg::new(Kind::Ready));
        return 0;
    }
    exit_on_fatal_signals();
    // The FIFO lives in the host's state dir; the parent opened it O_PATH
    // before the clone. Reopen it through our /proc, now the container's.
    let path = FdPath::new(plan.exec_fifo_fd);
    // SAFETY: path is NUL-terminated.
    let probe = reopen_fd(plan.exec_fifo_fd, libc::O_PATH | libc::O_CLOEXEC);
    if probe < 0 {
        fail(sock, Step::Sync, 2, errno());
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(probe) };
    sync::send(sock, &Msg::new(Kind::Ready));
    let mut n = 0;
    if plan.hook_state_capacity > 0 {
        n = sync::recv_bytes(sock, hook_state).unwrap_or(0);
    }
    // Blocks until `vessel start` opens the FIFO for reading.
    // SAFETY: path is NUL-terminated; one-byte write from a constant.
    unsafe {
        let fd = reopen_fd(plan.exec_fifo_fd, libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            write_err(b"vessel: open exec fifo: ", path.ptr(), errno());
            libc::_exit(1);
        }
        libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
        // The write end stays open (close-on-exec): `start` waits for EOF,
        // which comes at execve, so poststart runs after the startContainer
        // hooks and once the workload is executing (runtime spec).
        libc::close(plan.exec_fifo_fd);
    }
    n
}
