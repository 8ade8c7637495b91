//! Ctrl-C, SIGTERM and SIGHUP end the comparison in order instead of
//! killing it: the handler only records the signal, the run in progress is
//! killed and deleted, and the guards (network namespace and veth, cgroups,
//! work directory) are dropped as on any error.

use libvessel::{Error, Result};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that asked compare to stop; 0: none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Install the handler for SIGINT, SIGTERM and SIGHUP.
pub fn install() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction is plain data; the handler only stores to an
        // atomic (async-signal-safe). Children get the default action back
        // at execve.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Error::Other(format!(
                "install the handler for signal {sig}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// The signal received, if compare was asked to stop.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
