//! Hand the workload's exit status to the VMM over the agent channel, then
//! power off as a fallback.

use std::fs::File;

use super::relay;

/// How the workload ended.
#[derive(Debug, Clone, Copy)]
pub enum End {
    Exited(u8),
    Killed(u8),
}

/// How long the VMM has to act on the status frame before the guest powers
/// off anyway (the VMM ends the VM as soon as it decodes the frame; a
/// power-off first would race it and be reported as an end without status).
const STATUS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends the status as an 'X' or 'K' frame, waits for the VMM to end the
/// VM, and powers off only if it has not. Never returns. Without a channel
/// (it failed to open) the power-off alone tells the VMM the guest ended
/// without a status.
pub fn report_exit(channel: Option<&mut File>, end: End) -> ! {
    if let Some(ch) = channel {
        let (kind, value) = match end {
            End::Exited(code) => (vessel_protocol::KIND_EXIT, code),
            End::Killed(signo) => (vessel_protocol::KIND_KILLED, signo),
        };
        relay::send(ch, kind, &[value]);
        std::thread::sleep(STATUS_GRACE);
        super::console_note("the VMM did not end the VM after the exit status; powering off");
    }
    // SAFETY: reboot(2) with a valid command; PID 1 may power off.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only when power-off failed: PID 1 exiting panics the kernel, which
    // (panic=-1) resets the VM; the VMM reports that.
    std::process::exit(255)
}
