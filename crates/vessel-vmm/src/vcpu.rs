//! The vCPU run loop and how the VMM ends when the guest stops.

use std::sync::Arc;

use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::devices::{Devices, GuestStop};
use super::pause::GATE;

/// Exit status when the guest ends without reporting a status.
pub const EXIT_NO_STATUS: i32 = 255;
/// Console lines shown on stderr after an abnormal end.
const CONSOLE_LINES_ON_ERROR: usize = 20;

/// Runs vCPU `index` until the guest stops; ends the whole VMM process.
/// Before each entry it parks while the VMM is paused (`pause::GATE`).
pub fn run_vcpu(mut vcpu: VcpuFd, index: u8, devices: Arc<Devices>) -> ! {
    GATE.register_vcpu(&mut vcpu);
    loop {
        GATE.wait_while_paused(&mut vcpu, index.into());
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                // A kick (pause) sets immediate_exit; clear it so the next
                // entry runs the guest unless the gate parks us first.
                vcpu.set_kvm_immediate_exit(0);
                continue;
            }
            Err(e) => abnormal_end(&devices, &format!("vCPU {index}: KVM_RUN failed: {e}")),
        };
        match exit {
            VcpuExit::IoIn(port, data) => devices.pio_read(port, data),
            VcpuExit::IoOut(port, data) => {
                if let Some(stop) = devices.pio_write(port, data) {
                    guest_stopped(&devices, stop);
                }
            }
            VcpuExit::MmioRead(addr, data) => devices.mmio_read(addr, data),
            VcpuExit::MmioWrite(addr, data) => {
                if let Err(e) = devices.mmio_write(addr, data) {
                    abnormal_end(&devices, &format!("vCPU {index}: {e}"))
                }
            }
            VcpuExit::Intr | VcpuExit::IrqWindowOpen => {}
            VcpuExit::Hlt => abnormal_end(&devices, &format!("vCPU {index} halted the guest")),
            VcpuExit::Shutdown => abnormal_end(
                &devices,
                &format!("vCPU {index}: the guest shut down (triple fault) without an exit status"),
            ),
            VcpuExit::SystemEvent(kind, data) => {
                let what = match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => "powered off".to_string(),
                    KVM_SYSTEM_EVENT_RESET => "reset".to_string(),
                    KVM_SYSTEM_EVENT_CRASH => "crashed".to_string(),
                    other => format!("raised system event {other} ({data:?})"),
                };
                abnormal_end(&devices, &format!("vCPU {index}: the guest {what} without an exit status"))
            }
            VcpuExit::FailEntry(reason, cpu) => abnormal_end(
                &devices,
                &format!("vCPU {index}: KVM could not enter the guest (hardware entry failure reason {reason:#x} on host CPU {cpu})"),
            ),
            VcpuExit::InternalError => abnormal_end(
                &devices,
                &format!("vCPU {index}: KVM internal error (an instruction KVM could not emulate)"),
            ),
            VcpuExit::Unknown
            | VcpuExit::Exception
            | VcpuExit::Hypercall(_)
            | VcpuExit::Debug(_)
            | VcpuExit::SetTpr
            | VcpuExit::TprAccess
            | VcpuExit::S390Sieic
            | VcpuExit::S390Reset
            | VcpuExit::Dcr
            | VcpuExit::Nmi
            | VcpuExit::Osi
            | VcpuExit::PaprHcall
            | VcpuExit::S390Ucontrol
            | VcpuExit::Watchdog
            | VcpuExit::S390Tsch
            | VcpuExit::Epr
            | VcpuExit::S390Stsi
            | VcpuExit::IoapicEoi(_)
            | VcpuExit::Hyperv
            | VcpuExit::X86Rdmsr(_)
            | VcpuExit::X86Wrmsr(_)
            | VcpuExit::MemoryFault { .. }
            | VcpuExit::Unsupported(_) => {
                let what = format!("{exit:?}");
                abnormal_end(&devices, &format!("vCPU {index}: unexpected VM exit {what}"))
            }
        }
    }
}

/// The devices, for the agent channel's thread to flush the console log
/// when the workload's status arrives (set once, before the guest runs).
pub static DEVICES: std::sync::OnceLock<Arc<Devices>> = std::sync::OnceLock::new();

/// How the workload ended, as the agent reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadEnd {
    Exited(u8),
    Killed(u8),
}

/// Ends the VMM as the workload ended: its exit code, or death by its signal.
pub fn workload_ended(end: WorkloadEnd) -> ! {
    if let Some(devices) = DEVICES.get() {
        let _ = devices.console_tail(0); // flushes the console log
    }
    match end {
        WorkloadEnd::Exited(code) => std::process::exit(i32::from(code)),
        WorkloadEnd::Killed(signo) => reraise(i32::from(signo)),
    }
}

fn guest_stopped(devices: &Devices, stop: GuestStop) -> ! {
    match stop {
        GuestStop::I8042Reset => abnormal_end(
            devices,
            "the guest reset itself (reboot or kernel panic) without an exit status",
        ),
    }
}

/// Dies by `signo` with its default action, as the workload did; signals whose
/// default is not to terminate give the shell convention 128+N instead.
pub fn reraise(signo: i32) -> ! {
    if crate::boot_watch::terminates_by_default(signo) {
        // SAFETY: resetting a disposition, unblocking and raising a signal on
        // this thread; no memory is touched.
        unsafe {
            libc::signal(signo, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signo);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), signo);
        }
    }
    std::process::exit(128 + signo)
}

/// Reports an end without a status: the cause, then the console's last lines.
pub fn abnormal_end(devices: &Devices, why: &str) -> ! {
    let tail = devices.console_tail(CONSOLE_LINES_ON_ERROR);
    let mut msg = format!("vessel-vmm: {why}\n");
    if !tail.is_empty() {
        msg.push_str("vessel-vmm: last guest console lines:\n");
        msg.push_str(&tail);
        msg.push('\n');
    }
    super::channel::write_all_fd(libc::STDERR_FILENO, msg.as_bytes());
    std::process::exit(EXIT_NO_STATUS)
}
