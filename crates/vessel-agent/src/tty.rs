//! The workload's terminal in the guest (`process.terminal`): a pty from
//! the guest's devpts whose slave becomes the workload's controlling
//! terminal and stdio, and whose master the agent relays over the channel.
//! The guest's pty does echo, line editing and job-control keys; the host
//! side passes bytes through raw. Window-size frames land here as
//! TIOCSWINSZ on the master, and the guest kernel then sends SIGWINCH to
//! the workload's foreground group.
//!
//! Transport-free: the relay decides where the master's bytes go.

use std::os::fd::AsRawFd;

/// The guest's devpts multiplexer (mounted with ptmxmode=0666).
const PTMX: &std::ffi::CStr = c"/dev/pts/ptmx";

/// A pty: the master the agent keeps and the slave the workload gets.
pub use vessel_common::pty::Pty;

/// Open a pty, unlock it, set the output mode.
pub fn open(clear_onlcr: bool) -> Result<Pty, String> {
    let pty = vessel_common::pty::open(PTMX).map_err(|e| e.to_string())?;
    if clear_onlcr {
        // SAFETY: TCGETS/TCSETS with a stack termios on our slave.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::ioctl(pty.slave.as_raw_fd(), libc::TCGETS, &mut t) == 0 {
                t.c_oflag &= !libc::ONLCR;
                if libc::ioctl(pty.slave.as_raw_fd(), libc::TCSETS, &t) != 0 {
                    return Err(format!(
                        "clear ONLCR on the pty: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
        }
    }
    Ok(pty)
}

/// Whether the kernel command line asks for ONLCR off
/// (`vessel_protocol::launch::CMDLINE_TTY_NO_ONLCR`).
pub fn cmdline_clears_onlcr() -> bool {
    let token = vessel_protocol::launch::CMDLINE_TTY_NO_ONLCR;
    std::fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|t| t == token))
        .unwrap_or(false)
}

/// Set the window size on the master; the kernel signals the slave's
/// foreground process group (SIGWINCH) when it changed.
pub fn set_window_size(master: i32, rows: u16, cols: u16) -> Result<(), String> {
    vessel_common::pty::set_window_size(master, rows, cols)
        .map_err(|e| format!("TIOCSWINSZ {rows}x{cols}: {e}"))
}

/// The workload's /dev/console is its terminal, as container mode makes
/// it: the pty slave bind-mounted on the empty file `setup::own_dev` made.
pub fn bind_console(pty: &Pty) -> Result<(), String> {
    let console = crate::setup::CONSOLE;
    let slave = format!("/proc/self/fd/{}", pty.slave.as_raw_fd());
    nix::mount::mount(
        Some(slave.as_str()),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind the workload's pty on {console}: {e}"))
}
