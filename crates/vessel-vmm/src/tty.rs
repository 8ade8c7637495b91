//! The VMM's side of a workload terminal: when the runtime gives the VMM a
//! pty slave as stdio (`process.terminal`, `--tty`), that slave is put in raw mode
//! (the guest's own pty does echo and line editing; the host must pass
//! bytes through untouched both ways) and made the VMM's controlling
//! terminal, so a resize of the master (by conmon, containerd's shim or
//! `vessel run`'s relay) reaches the VMM as SIGWINCH. The size is then sent
//! to the agent as a window-size frame (`vessel_protocol::KIND_WINSIZE`).
//!
//! Transport-free: this module only reads and sets the terminal; the
//! channel decides how the size travels.

use std::io;
use std::os::fd::RawFd;

/// The terminal the VMM's stdio is on.
const TTY_FD: RawFd = libc::STDIN_FILENO;

/// True when the VMM's stdin is a terminal (checked under `--tty`).
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(TTY_FD) == 1 }
}

/// Raw mode on the slave: no echo, no line discipline, no output
/// processing, no signals from keys (^C goes to the guest's pty, which
/// turns it into SIGINT there). Runs at set-up, before the sandbox (TCSETS
/// is not allowed after).
pub fn raw_mode() -> io::Result<()> {
    // SAFETY: tcgetattr/cfmakeraw/tcsetattr on our stdin with a stack termios.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(TTY_FD, &mut t) != 0 {
            return Err(ctx("tcgetattr on the terminal"));
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(TTY_FD, libc::TCSANOW, &t) != 0 {
            return Err(ctx("raw mode on the terminal"));
        }
    }
    Ok(())
}

/// Make the terminal the VMM's controlling terminal. The runtime spawns the
/// VMM as a session leader (setsid), so TIOCSCTTY makes the VMM's process
/// group the terminal's foreground group: it gets SIGWINCH on a resize, and
/// never SIGTTIN/SIGTTOU for its reads and writes. Fails (EPERM) when the
/// VMM is no session leader or the terminal belongs to another session, as
/// when run by hand from a shell.
pub fn make_controlling() -> io::Result<()> {
    // SAFETY: TIOCSCTTY with the integer argument 0 (never steal).
    if unsafe { libc::ioctl(TTY_FD, libc::TIOCSCTTY, 0) } != 0 {
        return Err(ctx("TIOCSCTTY (the terminal as controlling terminal)"));
    }
    Ok(())
}

/// The terminal's current size as (rows, columns); None when it has none
/// (0x0, as a fresh pty without consoleSize) or cannot be read.
/// Async-signal-safe, one ioctl (TIOCGWINSZ, allowed by the seccomp filter).
pub fn window_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a stack winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(TTY_FD, libc::TIOCGWINSZ, &mut ws) != 0 {
            return None;
        }
        (ws.ws_row != 0 || ws.ws_col != 0).then_some((ws.ws_row, ws.ws_col))
    }
}

fn ctx(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
