//! startContainer hooks, run by the init after `start`.

use super::report::{decimal, write_err};
use crate::isolation::caps::errno;
use crate::process::plan::InitPlan;
use libc::{c_char, c_ulong};
use std::ffi::CStr;

/// startContainer hooks: run inside the container after `start`, before the
/// workload; the state JSON goes to each hook's stdin.
pub(super) fn run_start_hooks(plan: &InitPlan, state: &[u8]) {
    for h in &plan.start_hooks {
        let mut pipe = [0; 2];
        // SAFETY: fork-like clone, pipe, dup2, execve, waitpid: all
        // async-signal-safe; the child only execs or _exits.
        unsafe {
            if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
                hook_failed(h.path.as_ptr(), errno());
            }
            let pid = libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            );
            if pid == 0 {
                libc::dup2(pipe[0], 0);
                libc::execve(h.path.as_ptr(), h.argv_ptrs.as_ptr(), h.envp_ptrs.as_ptr());
                libc::_exit(127);
            }
            libc::close(pipe[0]);
            libc::write(pipe[1], state.as_ptr() as *const libc::c_void, state.len());
            libc::close(pipe[1]);
            if pid < 0 {
                hook_failed(h.path.as_ptr(), errno());
            }
            let mut status = 0;
            let mut waited_ms: i64 = 0;
            loop {
                let r = libc::waitpid(pid as i32, &mut status, libc::WNOHANG);
                if r == pid as i32 {
                    break;
                }
                if r < 0 && errno() != libc::EINTR {
                    hook_failed(h.path.as_ptr(), errno());
                }
                if h.timeout_secs > 0 && waited_ms > h.timeout_secs * 1000 {
                    libc::kill(pid as i32, libc::SIGKILL);
                    libc::waitpid(pid as i32, &mut status, 0);
                    hook_failed(h.path.as_ptr(), libc::ETIMEDOUT);
                }
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 5_000_000,
                };
                libc::nanosleep(&ts, std::ptr::null_mut());
                waited_ms += 5;
            }
            if libc::WIFSIGNALED(status) {
                hook_killed(h.path.as_ptr(), libc::WTERMSIG(status));
            }
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                hook_exited(h.path.as_ptr(), libc::WEXITSTATUS(status));
            }
        }
    }
}

fn hook_failed(path: *const c_char, e: i32) -> ! {
    write_err(b"vessel: error running startContainer hook ", path, e);
    // SAFETY: _exit ends the process.
    unsafe { libc::_exit(1) }
}

/// "<prefix><path>: <what><number><suffix>\n" on stderr, then exit 1.
fn hook_report(path: *const c_char, what: &[u8], n: i32, suffix: &[u8]) -> ! {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut push = |b: &[u8]| {
        let k = b.len().min(buf.len() - len);
        buf[len..len + k].copy_from_slice(&b[..k]);
        len += k;
    };
    push(b"vessel: error running startContainer hook ");
    if !path.is_null() {
        // SAFETY: path is NUL-terminated.
        push(unsafe { CStr::from_ptr(path) }.to_bytes());
    }
    push(b": ");
    push(what);
    let mut digits = [0u8; 12];
    push(decimal(n.unsigned_abs(), &mut digits));
    push(suffix);
    push(b"\n");
    // SAFETY: buf[..len] is initialised; _exit ends the process.
    unsafe {
        libc::write(2, buf.as_ptr() as *const libc::c_void, len);
        libc::_exit(1)
    }
}

fn hook_exited(path: *const c_char, code: i32) -> ! {
    hook_report(path, b"exit status ", code, b"")
}

/// A hook killed by a signal; SIGSYS is what a seccomp filter's kill sends.
fn hook_killed(path: *const c_char, sig: i32) -> ! {
    let name: &[u8] = match sig {
        libc::SIGSYS => b" (bad system call)",
        libc::SIGKILL => b" (killed)",
        libc::SIGSEGV => b" (segmentation fault)",
        libc::SIGABRT => b" (aborted)",
        libc::SIGTERM => b" (terminated)",
        _ => b"",
    };
    hook_report(path, b"killed by signal ", sig, name)
}
