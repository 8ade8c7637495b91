//! The VMM's own defence in depth, applied after the VM is set up and before
//! any guest code runs: its own ipc and uts namespaces, an empty read-only
//! root in a private mount namespace (with only a procfs of its own pid
//! namespace), an unprivileged uid/gid, no
//! capabilities, no_new_privs, not dumpable, and a seccomp allowlist.
//!
//! Order matters: the filesystem and capability steps run while the VMM is
//! still single-threaded (unshare(CLONE_NEWNS) refuses a multithreaded
//! caller, and capabilities are per thread and inherited); the seccomp filter
//! is installed with TSYNC once the worker threads exist, so their creation
//! needs no clone/mmap allowance.

use std::collections::BTreeMap;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{chdir, chroot, pivot_root};
use seccompiler::{
    apply_filter_all_threads, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::VmmError;

/// Directories tried, in order, as the mount point of the empty new root.
const EMPTY_ROOT_CANDIDATES: [&str; 4] = ["/tmp", "/run", "/mnt", "/dev"];

/// KVM_RUN = _IO(KVMIO=0xAE, 0x80): the ioctl of the vCPU loops.
pub const KVM_RUN: u64 = 0xae80;
/// TIOCGWINSZ: the only other ioctl, reading the terminal's size on
/// SIGWINCH (a workload with a terminal). It reads; it sets nothing.
pub const TIOCGWINSZ: u64 = libc::TIOCGWINSZ;

/// Syscalls the running VMM needs (measured with `strace -f` on a boot to exit):
/// vCPU threads run KVM_RUN and write to irqfds, stdout/stderr and the console
/// log; the stdin and signal threads read; locks use futex; allocation may use
/// brk/mmap/munmap/mremap/madvise; the exit path re-raises a signal on itself;
/// a pause kicks the vCPU threads (tgkill), which rename themselves (prctl).
/// virtio-net adds nothing: its thread reads and writes the tap (an fd
/// inherited from the runtime, checked with fcntl/fstat before the filter)
/// and polls it with its queue kicks.
pub const ALLOWED_SYSCALLS: &[(&str, i64)] = &[
    ("read", libc::SYS_read),
    ("write", libc::SYS_write),
    ("ioctl", libc::SYS_ioctl), // KVM_RUN and TIOCGWINSZ only, see below
    ("futex", libc::SYS_futex),
    ("poll", libc::SYS_poll), // the agent channel and virtio-net wait on queue kicks and the tap
    ("ppoll", libc::SYS_ppoll), // (glibc may use either)
    ("accept4", libc::SYS_accept4), // `vessel exec` connections on the exec socket
    ("brk", libc::SYS_brk),
    ("mmap", libc::SYS_mmap),
    ("munmap", libc::SYS_munmap),
    ("mremap", libc::SYS_mremap),
    ("mprotect", libc::SYS_mprotect), // without PROT_EXEC, see below
    ("madvise", libc::SYS_madvise),
    ("sched_yield", libc::SYS_sched_yield),
    ("clock_gettime", libc::SYS_clock_gettime),
    ("clock_nanosleep", libc::SYS_clock_nanosleep), // the interrupt re-kick timer
    ("nanosleep", libc::SYS_nanosleep),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("getpid", libc::SYS_getpid),
    ("gettid", libc::SYS_gettid),
    ("tgkill", libc::SYS_tgkill),
    ("close", libc::SYS_close),
    ("exit", libc::SYS_exit),
    ("exit_group", libc::SYS_exit_group),
    ("restart_syscall", libc::SYS_restart_syscall),
    ("prctl", libc::SYS_prctl), // PR_SET_NAME only: a parked vCPU's name, see below
];

/// What the sandbox managed to do, for a debug line.
#[derive(Debug, Default)]
pub struct SandboxReport {
    pub skipped: Vec<String>,
}

/// Who the VMM becomes once the VM is set up (`--uid`/`--gid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// Steps that must run single-threaded: its own ipc and uts namespaces, a
/// private mount namespace with an empty read-only root, the unprivileged
/// `identity` (no supplementary groups), no capabilities, no_new_privs, not
/// dumpable. A namespace or root step the host refuses (e.g. no
/// CAP_SYS_ADMIN when run unprivileged) is skipped and reported; failing to
/// become `identity` is an error (the VMM never runs the guest as root when
/// asked not to), and the seccomp filter still applies.
pub fn isolate_process(identity: Option<Identity>) -> Result<SandboxReport, VmmError> {
    let mut report = SandboxReport::default();
    // Not dumpable: no ptrace by same-uid processes, no core file holding guest RAM.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        report.skipped.push(format!(
            "PR_SET_DUMPABLE: {}",
            std::io::Error::last_os_error()
        ));
    }
    // No System V IPC or POSIX message queue shared with the host, and a
    // hostname of its own (the guest's is in the guest anyway).
    if let Err(e) = unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS) {
        report
            .skipped
            .push(format!("unshare(CLONE_NEWIPC | CLONE_NEWUTS): {e}"));
    }
    if let Err(e) = empty_root() {
        report.skipped.push(e);
    }
    drop_bounding_set()
        .map_err(|e| VmmError::new(format!("sandbox: dropping the bounding set: {e}")))?;
    if let Some(id) = identity {
        become_identity(id)?;
    }
    drop_capabilities()
        .map_err(|e| VmmError::new(format!("sandbox: dropping capabilities: {e}")))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(VmmError::new(format!(
            "sandbox: PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(report)
}

/// No supplementary groups, then gid, then uid (real, effective, saved):
/// the uid change clears the permitted and effective capabilities.
/// Everything the VMM needs is open by now (/dev/kvm, the VM and vCPU fds,
/// guest RAM, the console log, stdio, the signalfd).
fn become_identity(id: Identity) -> Result<(), VmmError> {
    let err = |what: &str, e: nix::errno::Errno| {
        VmmError::new(format!(
            "sandbox: becoming uid {} gid {}: {what}: {e}",
            id.uid, id.gid
        ))
    };
    nix::unistd::setgroups(&[]).map_err(|e| err("setgroups([])", e))?;
    let gid = nix::unistd::Gid::from_raw(id.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| err("setresgid", e))?;
    let uid = nix::unistd::Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| err("setresuid", e))
}

/// New mount namespace, mounts private, root moved to an empty read-only tmpfs.
/// pivot_root where the current root allows it (not on an initramfs rootfs),
/// chroot otherwise (CAP_SYS_CHROOT is dropped right after, so no escape).
fn empty_root() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    let dir = EMPTY_ROOT_CANDIDATES
        .iter()
        .find(|d| std::path::Path::new(d).is_dir())
        .ok_or("no directory to mount the empty root on")?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("vessel-vmm"),
        *dir,
        Some("tmpfs"),
        flags,
        Some("size=4k,mode=0555"),
    )
    .map_err(|e| format!("mounting tmpfs on {dir}: {e}"))?;
    chdir(*dir).map_err(|e| format!("chdir {dir}: {e}"))?;
    match pivot_root(".", ".") {
        Ok(()) => umount2(".", MntFlags::MNT_DETACH)
            .map_err(|e| format!("detaching the old root: {e}"))?,
        Err(_) => chroot(".").map_err(|e| format!("chroot {dir}: {e}"))?,
    }
    chdir("/").map_err(|e| format!("chdir / in the new root: {e}"))?;
    // Its failure is reported once the root is read-only all the same.
    let proc = own_proc(flags);
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
    .map_err(|e| format!("remounting the new root read-only: {e}"))?;
    proc
}

/// A read-only procfs of the VMM's own pid namespace at /proc of the empty
/// root, when the VMM is PID 1 of one (`vm::spawn_in_own_pid_namespace`):
/// it lists only the VMM. Engines read a container's processes in its
/// mount namespace (`podman top` joins it and reads /proc); they then see
/// the host's view of a VM container, its one process, instead of failing.
/// The VMM itself opens nothing there (its seccomp filter allows no open).
/// In the host's pid namespace it would list every host process: none.
fn own_proc(flags: MsFlags) -> Result<(), String> {
    if std::process::id() != 1 {
        return Ok(());
    }
    std::fs::create_dir("/proc").map_err(|e| format!("mkdir /proc in the new root: {e}"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        flags | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| format!("mounting the VMM's procfs: {e}"))
}

/// The bounding set goes first, while CAP_SETPCAP is still held (the uid
/// change drops it).
fn drop_bounding_set() -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)? {
        caps::clear(None, CapSet::Bounding)?;
    }
    Ok(())
}

fn drop_capabilities() -> Result<(), caps::errors::CapsError> {
    use caps::CapSet;
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)
}

/// The seccomp allowlist as a BPF program; any other syscall kills the VMM.
/// `vhost_sockets` are the connected vhost-user sockets (virtio-fs): when
/// the guest driver sets a device up, the vCPU thread handling that MMIO
/// write sends the backend its rings with sendmsg (the call and kick
/// eventfds and guest RAM's memfd go as SCM_RIGHTS) and reads each reply
/// with recvmsg. Both are allowed on those fds only: not on stdio, the
/// console log or any other descriptor, and no socket can be made or
/// connected.
pub fn build_filter(vhost_sockets: &[std::os::fd::RawFd]) -> Result<BpfProgram, VmmError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(_, nr) in ALLOWED_SYSCALLS {
        rules.insert(nr, vec![]);
    }
    let kvm_run = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, KVM_RUN)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| VmmError::new(format!("seccomp rule for ioctl(KVM_RUN): {e}")))?;
    let winsize = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, TIOCGWINSZ)
        .and_then(|c| SeccompRule::new(vec![c]))
        .map_err(|e| VmmError::new(format!("seccomp rule for ioctl(TIOCGWINSZ): {e}")))?;
    rules.insert(libc::SYS_ioctl, vec![kvm_run, winsize]);
    // mprotect for the allocator, never to make memory executable.
    let no_exec = SeccompCondition::new(
        2,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
        0,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(|e| VmmError::new(format!("seccomp rule for mprotect: {e}")))?;
    rules.insert(libc::SYS_mprotect, vec![no_exec]);
    // A vCPU thread names itself `vcpu<N>-paused` while parked (`pause`).
    let set_name = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::PR_SET_NAME as u64,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(|e| VmmError::new(format!("seccomp rule for prctl(PR_SET_NAME): {e}")))?;
    rules.insert(libc::SYS_prctl, vec![set_name]);
    // fcntl(F_GETFD) only: std's debug builds check a descriptor that way
    // before closing it (any OwnedFd, File or socket dropped after the
    // filter is on); it reads one flag of one of the VMM's own fds.
    let get_fd = SeccompCondition::new(
        1,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::F_GETFD as u64,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(|e| VmmError::new(format!("seccomp rule for fcntl(F_GETFD): {e}")))?;
    rules.insert(libc::SYS_fcntl, vec![get_fd]);
    for nr in [libc::SYS_sendmsg, libc::SYS_recvmsg] {
        let on_sockets = vhost_sockets
            .iter()
            .map(|&fd| {
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, fd as u64)
                    .and_then(|c| SeccompRule::new(vec![c]))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| VmmError::new(format!("seccomp rule for sendmsg/recvmsg: {e}")))?;
        if !on_sockets.is_empty() {
            rules.insert(nr, on_sockets);
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| VmmError::new(format!("building the seccomp filter: {e}")))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| {
        VmmError::new(format!("compiling the seccomp filter: {e}"))
    })
}

/// Installs `prog` on every thread of the VMM (TSYNC).
pub fn apply_filter(prog: &BpfProgram) -> Result<(), VmmError> {
    apply_filter_all_threads(prog)
        .map_err(|e| VmmError::new(format!("installing the seccomp filter: {e}")))
}

/// Names of the allowed syscalls, for documentation and the report.
pub fn allowed_names() -> Vec<&'static str> {
    ALLOWED_SYSCALLS.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_and_lists_kvm_run_ioctl() {
        let prog = build_filter(&[]).unwrap();
        assert!(build_filter(&[7]).unwrap().len() > prog.len());
        assert!(prog.len() > ALLOWED_SYSCALLS.len());
        let names = allowed_names();
        assert!(names.contains(&"ioctl") && names.contains(&"exit_group"));
        assert!(!names.contains(&"openat") && !names.contains(&"execve"));
        assert!(!names
            .iter()
            .any(|n| n.starts_with("clone") || n.starts_with("socket")));
    }

    #[test]
    fn filter_kills_a_forbidden_syscall_in_a_child() {
        let prog = build_filter(&[]).unwrap();
        // SAFETY: the child only makes raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: prctl/seccomp/getppid/_exit are async-signal-safe syscalls.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if seccompiler::apply_filter(&prog).is_err() {
                    libc::_exit(2);
                }
                libc::getppid(); // not allowed: must kill the child
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
    }
}
