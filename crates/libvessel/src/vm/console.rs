//! VM mode's terminal on the host (`process.terminal`): `create` opens a
//! pty, sends its master over the console socket exactly as container mode
//! does (SCM_RIGHTS, named `/dev/ptmx`: conmon and containerd's shim accept
//! it), with `process.consoleSize` set on it, and gives the slave to the VMM
//! as its stdin, stdout and stderr. The VMM puts the slave in raw mode and
//! passes the window size on; the guest's own pty does the rest.
//!
//! Transport-free: nothing here knows how the VMM talks to the guest.

use super::VmError;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A host pty: the master goes to the console socket, the slave to the VMM.
pub use vessel_common::pty::Pty as HostPty;

fn os_err(what: &str) -> VmError {
    VmError::Msg(format!(
        "terminal: {what}: {}",
        std::io::Error::last_os_error()
    ))
}

/// Open /dev/ptmx (never as vessel's controlling terminal), unlock it and
/// open its slave; `size` (rows, columns) is process.consoleSize.
pub fn open(size: Option<(u16, u16)>) -> Result<HostPty, VmError> {
    let pty = vessel_common::pty::open(c"/dev/ptmx")
        .map_err(|e| VmError::Msg(format!("terminal: {e}")))?;
    if let Some((rows, cols)) = size {
        vessel_common::pty::set_window_size(pty.master.as_raw_fd(), rows, cols).map_err(|e| {
            VmError::Msg(format!(
                "terminal: set process.consoleSize (TIOCSWINSZ): {e}"
            ))
        })?;
    }
    Ok(pty)
}

/// Send the master over the connected console socket, named like runc's.
pub fn send_master(socket: RawFd, master: &OwnedFd) -> Result<(), VmError> {
    if !crate::process::sync::send_fd_named(socket, master.as_raw_fd(), b"/dev/ptmx") {
        return Err(os_err("send the pty master over the console socket"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn pty_gets_the_console_size_and_its_master_travels() {
        let pty = match open(Some((33, 101))) {
            Ok(p) => p,
            // A build sandbox without /dev/ptmx: nothing to test here.
            Err(e) if e.to_string().contains("open /dev/ptmx") => return,
            Err(e) => panic!("{e}"),
        };
        // SAFETY: TIOCGWINSZ into a stack winsize; isatty inspects an fd.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            assert_eq!(
                libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws),
                0
            );
            assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
            assert_eq!(libc::isatty(pty.slave.as_raw_fd()), 1);
        }
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        send_master(a.as_raw_fd(), &pty.master).unwrap();
        let mut name = [0u8; 64];
        let (fd, n) = crate::process::sync::recv_fd_named(b.as_raw_fd(), &mut name).unwrap();
        // SAFETY: the received descriptor is ours.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        assert_eq!(&name[..n], b"/dev/ptmx");
    }
}
