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

/// Sends the status as an 'X' or 'K' frame, then powers off. Never returns:
/// the VMM ends as soon as it reads the frame (the console port's write
/// returns only once the host has taken the buffer). Without a channel
/// (it failed to open) the power-off alone tells the VMM the guest ended
/// without a status.
pub fn report_exit(channel: Option<&mut File>, end: End) -> ! {
    if let Some(ch) = channel {
        let (kind, value) = match end {
            End::Exited(code) => (vessel_protocol::KIND_EXIT, code),
            End::Killed(signo) => (vessel_protocol::KIND_KILLED, signo),
        };
        relay::send(ch, kind, &[value]);
        let _ = nix::sys::termios::tcdrain(std::os::fd::AsFd::as_fd(ch));
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
