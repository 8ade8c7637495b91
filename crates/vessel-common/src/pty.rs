//! A pty pair opened from a given multiplexer, and its window size: the
//! host's for VM mode's `process.terminal` (libvessel), the guest's for the
//! workload (the agent). Container mode's init opens its pty between clone
//! and exec, where nothing here may run (it allocates), so it has its own.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Both ends: the master for whoever relays, the slave for the workload.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Which step failed, and the kernel's reason.
#[derive(Debug)]
pub struct PtyError {
    pub step: String,
    pub source: io::Error,
}

impl fmt::Display for PtyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

impl std::error::Error for PtyError {}

fn failed(step: impl Into<String>) -> PtyError {
    PtyError {
        step: step.into(),
        source: io::Error::last_os_error(),
    }
}

/// Open `ptmx` (never as the caller's controlling terminal), unlock it and
/// open its slave through the master (TIOCGPTPEER: no path lookup in a
/// devpts the caller may not see). Both ends are close-on-exec.
pub fn open(ptmx: &CStr) -> Result<Pty, PtyError> {
    // SAFETY: open of a NUL-terminated path; the result is checked.
    let m = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(failed(format!("open {}", ptmx.to_string_lossy())));
    }
    // SAFETY: a new descriptor nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK with a pointer to a stack int on our master.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(failed("unlock the pty (TIOCSPTLCK)"));
    }
    // SAFETY: TIOCGPTPEER returns a new descriptor on the slave.
    let s = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(failed("open the pty slave (TIOCGPTPEER)"));
    }
    // SAFETY: a new descriptor nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok(Pty { master, slave })
}

/// Set a terminal's window size (TIOCSWINSZ); on a master, the kernel then
/// signals the slave's foreground process group (SIGWINCH) if it changed.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a pointer to a stack winsize.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_whose_slave_sees_the_size_set_on_the_master() {
        let pty = match open(c"/dev/ptmx") {
            Ok(p) => p,
            // A build sandbox without /dev/ptmx: nothing to test here.
            Err(e) if e.step == "open /dev/ptmx" => return,
            Err(e) => panic!("{e}"),
        };
        set_window_size(pty.master.as_raw_fd(), 24, 80).expect("TIOCSWINSZ");
        // SAFETY: TIOCGWINSZ into a stack winsize; isatty inspects an fd.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            assert_eq!(
                libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws),
                0
            );
            assert_eq!((ws.ws_row, ws.ws_col), (24, 80));
            assert_eq!(libc::isatty(pty.slave.as_raw_fd()), 1);
        }
        let err = open(c"/nonexistent/ptmx")
            .err()
            .expect("no such multiplexer");
        assert_eq!(err.step, "open /nonexistent/ptmx");
        assert_eq!(err.source.raw_os_error(), Some(libc::ENOENT));
    }
}
