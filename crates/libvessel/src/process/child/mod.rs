//! The container init, from clone to execve. Everything here is
//! async-signal-safe: raw syscalls on the data in `InitPlan`, stack buffers
//! for paths, no allocation and no locks. Failures go to the parent as a
//! (step, index, errno) record and the child exits.
//!
//! The steps, in the order the init takes them: `rootfs` (mounts, devices,
//! console, pivot_root, then the `paths` made read-only or masked), `exec`
//! (rlimits and the final sequence: `identity`, seccomp, `start`, `hooks`,
//! execve). Helpers: `report` (failures), `fd` and `mkdir` (path lookups
//! resolved inside the rootfs), `mount_calls` (mount syscalls), `terminal`
//! and `signals`.

mod devices;
mod exec;
mod fd;
mod hooks;
mod identity;
mod mkdir;
mod mount_calls;
mod paths;
mod report;
mod rootfs;
mod signals;
mod start;
mod terminal;

pub use exec::exec_process;
pub(crate) use fd::open_in_root;
pub use identity::set_rlimits;
pub use report::fail;
pub use signals::reset_signal_dispositions;
pub use terminal::{make_controlling_terminal, send_pty};

use crate::isolation::caps::errno;
use crate::process::plan::{InitPlan, Step};
use crate::process::sync::{self, Kind, Msg};
use exec::finish_and_exec;
use libc::c_int;
use report::check;
use rootfs::setup_rootfs;
use std::os::fd::RawFd;

const PATH_MAX: usize = 4096;

/// The intermediate process of a two-stage start: join namespaces, make the
/// ones that only affect children, then fork the real init as our sibling.
pub fn intermediate_main(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> ! {
    for (i, j) in plan.ns.join.iter().enumerate() {
        // SAFETY: path is NUL-terminated.
        let fd = unsafe { libc::open(j.path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        check(sock, fd, Step::Setns, i as i32);
        // SAFETY: fd is a namespace fd we just opened.
        check(
            sock,
            unsafe { libc::setns(fd, j.flag) },
            Step::Setns,
            i as i32,
        );
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }
    let flags = plan.ns.create & !libc::CLONE_NEWCGROUP;
    if flags != 0 {
        // SAFETY: unshare with namespace flags.
        check(sock, unsafe { libc::unshare(flags) }, Step::Unshare, 0);
    }
    if plan.new_userns {
        sync::send(sock, &Msg::new(Kind::NeedMaps));
        match sync::recv(sock) {
            Some(m) if m.kind == Kind::MapsDone as u32 => {}
            _ => fail(sock, Step::Sync, 0, libc::EPIPE),
        }
    }
    if let Some(off) = &plan.time_offsets {
        // SAFETY: constant path; write of a NUL-terminated buffer's bytes.
        let fd = unsafe {
            libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        check(sock, fd, Step::TimeOffsets, 0);
        let b = off.to_bytes();
        // SAFETY: b is a valid slice.
        let n = unsafe { libc::write(fd, b.as_ptr() as *const libc::c_void, b.len()) };
        check(sock, n as c_int, Step::TimeOffsets, 0);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }
    fork_sibling(sock);
    init_main(plan, sock, hook_state)
}

/// For a process that has joined or made namespaces that apply to children
/// only (pid, time): fork the process that lives in them. With CLONE_PARENT
/// it is vessel's child, not ours, so vessel waits for it. Returns only in
/// the new process; the caller reports the new pid to vessel and exits.
pub fn fork_sibling(sock: RawFd) {
    let pid = crate::process::spawn::sys_clone(libc::CLONE_PARENT);
    if pid < 0 {
        fail(sock, Step::Clone, 0, errno());
    }
    if pid == 0 {
        return;
    }
    let mut m = Msg::new(Kind::InitPid);
    m.index = pid as i32;
    sync::send(sock, &m);
    // SAFETY: _exit ends this stage without running destructors.
    unsafe { libc::_exit(0) }
}

/// The container init (namespaces made by the clone, or already by the
/// intermediate process).
pub fn init_main(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> ! {
    reset_signal_dispositions();
    // `run` blocks signals before the clone so none is lost; the workload
    // must start with an empty mask.
    // SAFETY: sigset operations on a stack value.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    // CVE-2019-5736: until execve, nothing in the container may open our
    // /proc/<pid>/exe (the host's vessel binary) or ptrace us. A rootless
    // parent must first write our id maps, and a non-dumpable process's
    // /proc/<pid> files belong to root: then only once Go says they are
    // written (runc's nsexec does the same). Before Go nothing of the
    // container exists that could reach us. A root parent needs no delay.
    if !plan.dumpable_until_go {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    match sync::recv(sock) {
        Some(m) if m.kind == Kind::Go as u32 => {}
        _ => fail(sock, Step::Sync, 0, libc::EPIPE),
    }
    if plan.dumpable_until_go {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    if plan.new_userns {
        // Become root of the new user namespace where root is mapped.
        // SAFETY: plain id syscalls.
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }
    if plan.new_cgroupns {
        // After the parent put us in our cgroup, so it becomes the ns root.
        // SAFETY: unshare with a namespace flag.
        check(
            sock,
            unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
            Step::Unshare,
            1,
        );
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: h is a valid buffer of the given length.
        let r = unsafe { libc::sethostname(h.as_ptr(), h.to_bytes().len()) };
        check(sock, r, Step::Sethostname, 0);
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: d is a valid buffer of the given length.
        let r = unsafe { libc::setdomainname(d.as_ptr(), d.to_bytes().len()) };
        check(sock, r, Step::Setdomainname, 0);
    }
    setup_rootfs(plan, sock);
    finish_and_exec(plan, sock, hook_state)
}
