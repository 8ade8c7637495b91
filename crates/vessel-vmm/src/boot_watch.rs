//! Until the guest's agent says it is up (its first frame on the agent channel), nothing
//! in the guest can take a signal or report a status. So the VMM itself
//! keeps `run`, `create`/`start` and `kill` bounded in that window:
//! - a signal whose default action terminates, arriving before the agent is
//!   up, ends the VM as that signal (the workload never started; a
//!   container's waiting init dies the same way);
//! - a guest whose agent is not up within the boot timeout
//!   (`VESSEL_VM_BOOT_TIMEOUT` seconds in the runtime's environment, default
//!   180; time spent paused does not count) ends the VM with an error that
//!   carries the tail of the guest's console.

use std::sync::Arc;
use std::time::Duration;

use crate::devices::Devices;
use crate::pause::GATE;
use crate::vcpu::{abnormal_end, reraise};

/// The environment variable an operator sets to change the boot timeout.
pub const ENV_BOOT_TIMEOUT: &str = "VESSEL_VM_BOOT_TIMEOUT";
/// Generous for hardware KVM (well under a second) and for the nested,
/// emulated test VM (about 15 s, a minute under load).
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// The boot timeout: `VESSEL_VM_BOOT_TIMEOUT` (whole seconds, at least 1),
/// else the default. A value that is not a number is an error, not ignored.
pub fn boot_timeout() -> Result<Duration, String> {
    match std::env::var(ENV_BOOT_TIMEOUT) {
        Err(_) => Ok(DEFAULT_BOOT_TIMEOUT),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(s) if s >= 1 => Ok(Duration::from_secs(s)),
            _ => Err(format!(
                "{ENV_BOOT_TIMEOUT}={v:?}: want a whole number of seconds, at least 1"
            )),
        },
    }
}

/// Whether `signo`'s default action ends a process.
pub fn terminates_by_default(signo: i32) -> bool {
    (1..=64).contains(&signo)
        && !matches!(
            signo,
            libc::SIGCHLD
                | libc::SIGCONT
                | libc::SIGURG
                | libc::SIGWINCH
                | libc::SIGSTOP
                | libc::SIGTSTP
                | libc::SIGTTIN
                | libc::SIGTTOU
        )
}

/// Called for each forwarded signal: before the agent is up, one that
/// terminates by default ends the VM as that signal and never returns.
pub fn end_if_not_up(devices: &Devices, signo: i32) {
    if devices.agent.guest_ready() || !terminates_by_default(signo) {
        return;
    }
    let msg = format!(
        "vessel-vmm: signal {signo} arrived before the guest's agent was up \
         (the workload never started): ending the VM\n"
    );
    crate::channel::write_all_fd(libc::STDERR_FILENO, msg.as_bytes());
    let _ = devices.console_tail(0); // flushes the console log
    reraise(signo)
}

/// The watchdog thread: ends the VM when the agent is not up within
/// `limit` of the guest starting, not counting time spent paused.
pub fn watch(devices: Arc<Devices>, limit: Duration) -> ! {
    const TICK: Duration = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    loop {
        std::thread::sleep(TICK);
        if devices.agent.guest_ready() {
            // Nothing left to watch: the agent reports from here on.
            loop {
                std::thread::park();
            }
        }
        if !GATE.is_paused() {
            waited += TICK;
        }
        if waited >= limit {
            abnormal_end(
                &devices,
                &format!(
                    "the guest's agent was not up {} s after start (the kernel did not boot, \
                     or /init did not run the agent; {ENV_BOOT_TIMEOUT} sets this bound)",
                    limit.as_secs()
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_signals_terminate() {
        assert!(terminates_by_default(libc::SIGTERM));
        assert!(terminates_by_default(libc::SIGKILL));
        assert!(terminates_by_default(libc::SIGUSR1));
        assert!(!terminates_by_default(libc::SIGWINCH));
        assert!(!terminates_by_default(libc::SIGCHLD));
        assert!(!terminates_by_default(0));
        assert!(!terminates_by_default(65));
    }
}
