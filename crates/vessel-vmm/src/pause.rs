//! Pausing the guest (`vessel pause` / `vessel resume`).
//!
//! The cgroup freezer cannot pause a VM: KVM attaches a kernel thread of its
//! own to the VMM's cgroup, and a kernel thread never freezes, so
//! `cgroup.events` never says "frozen 1". Instead the runtime sends
//! `PAUSE_SIGNAL` to the VMM (see `vessel_protocol::control`); the signal
//! thread marks the gate paused and kicks every vCPU thread with
//! [`KICK_SIGNAL`]. The kick's handler sets `immediate_exit` in the thread's
//! `kvm_run`, so KVM_RUN returns EINTR whether the kick lands inside the
//! guest or just before the thread enters it; the run loop then parks on
//! the gate. A parked vCPU renames itself `vcpu<N>-paused`, which is what
//! the runtime reads back; `RESUME_SIGNAL` wakes them.
//!
//! Guest time: the in-kernel PIT and the kvm-clock keep following host time,
//! so after a resume the guest sees the pause as time that passed, as a
//! process in a thawed cgroup does.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use kvm_bindings::kvm_run;
use kvm_ioctls::VcpuFd;
use vessel_protocol::control::vcpu_thread_name;

use super::VmmError;

/// Sent (tgkill) to a vCPU thread to make it leave KVM_RUN. SIGRTMIN+10
/// under glibc; not blocked in any thread; its handler touches nothing but
/// the calling vCPU thread's `kvm_run`.
pub const KICK_SIGNAL: i32 = 44;

thread_local! {
    /// The calling vCPU thread's `kvm_run` (null on every other thread).
    /// A const-initialised `Cell` of a pointer: no lazy initialisation and
    /// no destructor, so reading it in a signal handler is a plain TLS load.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// Whether the vCPUs should be parked, and the tids to kick.
pub struct Gate {
    paused: AtomicBool,
    inner: Mutex<GateInner>,
    wake: Condvar,
}

struct GateInner {
    paused: bool,
    vcpu_tids: Vec<libc::pid_t>,
}

pub static GATE: Gate = Gate {
    paused: AtomicBool::new(false),
    inner: Mutex::new(GateInner {
        paused: false,
        vcpu_tids: Vec::new(),
    }),
    wake: Condvar::new(),
};

fn lock(m: &Mutex<GateInner>) -> MutexGuard<'_, GateInner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

extern "C" fn on_kick(_signo: libc::c_int) {
    // Async-signal-safe: one TLS load and one volatile byte store.
    let run = KVM_RUN.with(|c| c.get());
    if !run.is_null() {
        // SAFETY: `run` points at this thread's kvm_run mapping, set by
        // `register_vcpu` and valid while the VcpuFd lives, which is for the
        // life of the thread (the vCPU loop never returns). A byte store
        // cannot tear.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// Installs the kick handler (before the seccomp filter; SA_RESTART so the
/// other calls a vCPU thread makes, e.g. writes to stdout, are not cut short;
/// KVM_RUN itself is never restarted).
pub fn install_kick_handler() -> Result<(), VmmError> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler is an extern "C" fn with the one-int signature that
    // sa_handler (without SA_SIGINFO) expects.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(KICK_SIGNAL, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(VmmError::new(format!(
            "installing the vCPU kick handler: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn set_thread_name(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from `buf`, which is 16 bytes with a NUL at index 15 or earlier.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

impl Gate {
    /// Called on each vCPU thread before its first KVM_RUN: records the tid
    /// to kick and where the kick handler finds this thread's kvm_run.
    pub fn register_vcpu(&self, vcpu: &mut VcpuFd) {
        let run: *mut kvm_run = vcpu.get_kvm_run();
        KVM_RUN.with(|c| c.set(run));
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        lock(&self.inner).vcpu_tids.push(tid);
    }

    /// Pause: mark the gate, kick every vCPU out of the guest. Returns at
    /// once; each vCPU renames itself once parked.
    pub fn pause(&self) {
        let mut inner = lock(&self.inner);
        inner.paused = true;
        self.paused.store(true, Ordering::SeqCst);
        // SAFETY: getpid has no arguments and cannot fail.
        let pid = unsafe { libc::getpid() };
        for &tid in &inner.vcpu_tids {
            // SAFETY: tgkill to a thread of this process; a thread that is
            // gone (never: vCPU threads end the process) gives ESRCH.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, KICK_SIGNAL) };
        }
    }

    /// Whether a pause is in effect (asked, whether or not every vCPU has
    /// parked yet).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Resume: clear the gate and wake the parked vCPUs.
    pub fn resume(&self) {
        let mut inner = lock(&self.inner);
        inner.paused = false;
        self.paused.store(false, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// On vCPU thread `index`, before every KVM_RUN: parks while paused,
    /// named `vcpu<N>-paused`, and clears a kick that arrived meanwhile.
    pub fn wait_while_paused(&self, vcpu: &mut VcpuFd, index: usize) {
        if !self.paused.load(Ordering::SeqCst) {
            return;
        }
        let mut inner = lock(&self.inner);
        if inner.paused {
            set_thread_name(&vcpu_thread_name(index, true));
            while inner.paused {
                inner = self.wake.wait(inner).unwrap_or_else(|p| p.into_inner());
            }
            set_thread_name(&vcpu_thread_name(index, false));
        }
        drop(inner);
        // A kick that landed while parked would only cost one empty KVM_RUN.
        vcpu.set_kvm_immediate_exit(0);
    }
}
