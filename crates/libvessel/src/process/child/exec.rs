//! The exec tail shared by the init and `exec`: executable, cwd, fds,
//! user, capabilities, seccomp, then execve.

use super::hooks::run_start_hooks;
use super::identity::{
    become_user, drop_kept_admin, set_capabilities, set_exec_labels, set_rlimits,
};
use super::report::{check, fail, write_err};
use super::start::wait_for_start;
use super::PATH_MAX;
use crate::isolation::caps::errno;
use crate::process::plan::{InitPlan, ProcessParts, Step};
use crate::process::sync::{self, Kind, Msg};
use libc::{c_char, c_int};
use std::os::fd::RawFd;

/// User, capabilities, limits, then wait for `start`, then execve.
pub(super) fn finish_and_exec(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> ! {
    let p = &plan.process;
    set_rlimits(p, sock);
    if plan.new_keyring {
        // A fresh session keyring, so the container cannot read the host's.
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL).
        let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, 0usize) };
        // Some kernels/LSMs refuse keyrings (ENOSYS, EACCES): runc ignores those too.
        if r < 0 && !matches!(errno(), libc::ENOSYS | libc::EACCES | libc::EPERM) {
            fail(sock, Step::Keyring, 0, errno());
        }
    }
    if let Some(per) = plan.personality {
        // SAFETY: personality with an integer.
        check(
            sock,
            unsafe { libc::personality(per) },
            Step::Personality,
            0,
        );
    }
    // Both closures need the buffer, one after the other.
    let state = std::cell::RefCell::new((hook_state, 0usize));
    exec_tail(
        p,
        sock,
        plan.preserve_fds,
        |sock| {
            let mut st = state.borrow_mut();
            st.1 = wait_for_start(plan, sock, st.0);
            // After `start` nobody reads the socket any more.
            plan.exec_fifo_fd < 0
        },
        // startContainer hooks run under the container's filter, as in runc.
        || {
            let st = state.borrow();
            run_start_hooks(plan, &st.0[..st.1])
        },
    )
}

/// The tail of `exec`: the same final sequence as the init's, without the
/// wait for `start` (`before_exec` runs where the init waits) and without
/// startContainer hooks. The parent reads `sock` until execve, so every
/// failure is reported there.
pub fn exec_process(
    p: &ProcessParts,
    sock: RawFd,
    preserve_fds: i32,
    before_exec: impl FnOnce(RawFd),
) -> ! {
    exec_tail(
        p,
        sock,
        preserve_fds,
        |sock| {
            before_exec(sock);
            true
        },
        || {},
    )
}

/// The final sequence before execve, shared by the init and `exec`.
///
/// Everything vessel itself needs is done BEFORE the seccomp filter, so a
/// profile never has to allow vessel's internals: find the executable, enter
/// the cwd (as root first, as runc does, so a cwd only the runtime can reach
/// still works; EACCES/EPERM is retried as the user), mark every fd but
/// stdio and the preserved ones close-on-exec, drop privileges, no_new_privs,
/// check the cwd, LSM exec labels. Then:
/// - the profile uses SCMP_ACT_NOTIFY: load the filter and hand the listener
///   fd to the parent, which forwards it to the agent at once, so that every
///   later call (the wait for `start`, startContainer hooks, execve) can be
///   answered; `wait` runs under the filter;
/// - otherwise `wait` (the wait for `start`) runs first and the filter is
///   loaded right before the startContainer hooks and execve.
///
/// Without no_new_privs the kernel accepts a filter only from a task with
/// CAP_SYS_ADMIN: when the process does not keep it, it stays in the
/// effective and permitted sets until the filter is loaded and is dropped by
/// one capset(2) right after. So after the filter vessel itself makes at most
/// capset and execve (plus what startContainer hooks need, which run under
/// the container's filter as in runc).
///
/// `wait` returns whether the parent still reads `sock` afterwards.
fn exec_tail(
    p: &ProcessParts,
    sock: RawFd,
    preserve_fds: i32,
    wait: impl FnOnce(RawFd) -> bool,
    under_filter: impl FnOnce(),
) -> ! {
    let exe = find_executable(p, sock);
    let chdir_as_user = enter_cwd_as_root(p, sock);
    mark_fds_cloexec(sock, preserve_fds);
    become_user(p, sock);
    let keep_admin = set_capabilities(p, sock);
    if p.no_new_privs {
        // SAFETY: prctl with integer arguments.
        check(
            sock,
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            Step::NoNewPrivs,
            0,
        );
    }
    check_cwd(p, sock, chdir_as_user);
    set_exec_labels(p, sock);
    load_filter_and_wait(p, sock, keep_admin, wait);
    under_filter();
    // SAFETY: exe, argv and envp are NUL-terminated and NULL-terminated arrays.
    unsafe { libc::execve(exe, p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
    let e = errno();
    write_err(b"vessel: exec failed: ", exe, e);
    // SAFETY: _exit ends the process.
    unsafe { libc::_exit(if e == libc::ENOENT { 127 } else { 126 }) }
}

/// The first of the exec candidates that is an executable regular file.
fn find_executable(p: &ProcessParts, sock: RawFd) -> *const c_char {
    // Find the executable now, so `create` reports a missing one.
    let mut exe: *const c_char = std::ptr::null();
    for c in &p.exec_candidates {
        // SAFETY: zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: c is NUL-terminated.
        if unsafe { libc::stat(c.as_ptr(), &mut st) } == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
            && st.st_mode & 0o111 != 0
        {
            exe = c.as_ptr();
            break;
        }
    }
    if exe.is_null() {
        fail(sock, Step::ExecNotFound, 0, libc::ENOENT);
    }
    exe
}

/// chdir to the cwd as root; returns whether it has to be retried as the
/// user.
fn enter_cwd_as_root(p: &ProcessParts, sock: RawFd) -> bool {
    // The cwd, while we are still root (runc's finalizeNamespace order).
    // SAFETY: cwd is NUL-terminated.
    if unsafe { libc::chdir(p.cwd.as_ptr()) } < 0 {
        let e = errno();
        if e != libc::EACCES && e != libc::EPERM {
            fail(sock, Step::Chdir, 0, e);
        }
        // A cwd the container's user can reach but we cannot (a user
        // namespace's root on a directory of an unmapped owner).
        true
    } else {
        false
    }
}

fn mark_fds_cloexec(sock: RawFd, preserve_fds: i32) {
    // CVE-2024-21626: nothing of vessel's may survive execve: every fd but
    // stdio and the preserved ones becomes close-on-exec.
    let first = 3 + preserve_fds.max(0) as u32;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only flags fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(sock, r as c_int, Step::Fds, 0);
    for fd in 3..first as i32 {
        // SAFETY: clearing FD_CLOEXEC on an fd the caller asked to preserve.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
}

/// The cwd as the user if root could not enter it, then the check that it
/// is inside the container.
fn check_cwd(p: &ProcessParts, sock: RawFd, chdir_as_user: bool) {
    if chdir_as_user {
        // SAFETY: cwd is NUL-terminated.
        check(sock, unsafe { libc::chdir(p.cwd.as_ptr()) }, Step::Chdir, 0);
    }
    // CVE-2024-21626: a cwd reached through a leaked host fd shows up as
    // "(unreachable)/..." in getcwd; refuse to run there.
    let mut cwd = [0u8; PATH_MAX];
    // SAFETY: cwd has PATH_MAX bytes.
    let got = unsafe { libc::getcwd(cwd.as_mut_ptr() as *mut c_char, cwd.len()) };
    if got.is_null() || cwd[0] != b'/' {
        fail(sock, Step::Chdir, 1, libc::ENOENT);
    }
}

/// The seccomp filter and the wait, in the order the doc of `exec_tail`
/// gives: with a listener the filter first, otherwise the wait first.
fn load_filter_and_wait(
    p: &ProcessParts,
    sock: RawFd,
    keep_admin: bool,
    wait: impl FnOnce(RawFd) -> bool,
) {
    if p.seccomp.as_ref().is_some_and(|s| s.wants_listener) {
        install_seccomp(p, sock);
        drop_kept_admin(p, keep_admin, sock, true);
        wait(sock);
    } else {
        let listening = wait(sock);
        if let Some(prog) = &p.seccomp {
            if let Err(e) = prog.install() {
                if listening {
                    fail(sock, Step::Seccomp, 0, e as i32);
                }
                write_err(b"vessel: load seccomp filter: ", c"".as_ptr(), e as i32);
                // SAFETY: _exit ends the process.
                unsafe { libc::_exit(1) }
            }
            drop_kept_admin(p, keep_admin, sock, listening);
        }
    }
}

fn install_seccomp(p: &ProcessParts, sock: RawFd) {
    let Some(prog) = &p.seccomp else { return };
    match prog.install() {
        Ok(fd) if fd >= 0 => {
            sync::send(sock, &Msg::new(Kind::SeccompFd));
            if !sync::send_fd(sock, fd) {
                fail(sock, Step::Seccomp, 1, errno());
            }
            // SAFETY: closing our copy of the listener.
            unsafe { libc::close(fd) };
        }
        Ok(_) => {}
        Err(e) => fail(sock, Step::Seccomp, 0, e as i32),
    }
}
