//! Hand the workload's exit status to the VMM through an I/O port, the
//! VM-mode contract's exit channel; power off as a fallback.

/// Write `value` to `port` (0x501: exit code, 0x502: killing signal), then
/// power off. Never returns: the VMM ends the VM on the port write.
pub fn report_exit(port: u16, value: u8) -> ! {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    let rc = unsafe { libc::ioperm(port as libc::c_ulong, 1, 1) };
    if rc == 0 {
        // SAFETY: the port was granted above; `out` has no memory effects.
        unsafe {
            std::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
        }
    } else {
        eprintln!(
            "vessel-agent: ioperm({port:#x}): {}",
            std::io::Error::last_os_error()
        );
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
