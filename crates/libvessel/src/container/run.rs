//! Foreground `run`: create and start, forward signals to the workload,
//! relay its terminal when vessel owns the pty, and exit with its status.
//!
//! Signals are blocked before the clone and read from a signalfd, so a
//! workload that exits at once can never be missed (youki's old hang).

use crate::container::create::{self, CreateOptions};
use crate::{Error, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The signals relayed to the workload (plus SIGCHLD, which we handle).
pub fn relayed_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in Signal::iterator() {
        if !matches!(
            s,
            Signal::SIGKILL
                | Signal::SIGSTOP
                | Signal::SIGSEGV
                | Signal::SIGBUS
                | Signal::SIGILL
                | Signal::SIGFPE
                | Signal::SIGTRAP
        ) {
            set.add(s);
        }
    }
    set
}

pub fn run_foreground(root: &Path, mut opts: CreateOptions, keep: bool) -> Result<i32> {
    let id = opts.id.clone();
    let set = relayed_signals();
    set.thread_block().map_err(Error::sys("block signals"))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(Error::sys("signalfd"))?;

    // A terminal with no --console-socket: vessel takes the pty master
    // itself over an internal socket and relays it.
    let mut console_peer: Option<OwnedFd> = None;
    if opts.console_socket.is_none() && bundle_wants_terminal(&opts.bundle) {
        let (a, b) = std::os::unix::net::UnixStream::pair()
            .map_err(Error::io("socketpair for console", &opts.bundle))?;
        opts.console_fd = Some(OwnedFd::from(a));
        console_peer = Some(OwnedFd::from(b));
    }
    let created = create::create(root, opts);
    let (_dir, st) = match created {
        Ok(x) => x,
        Err(e) => {
            let _ = SigSet::empty().thread_set_mask();
            let _ = unblock(&set);
            return Err(e);
        }
    };
    let master = match console_peer {
        Some(peer) => match crate::process::sync::recv_fd(peer.as_raw_fd()) {
            // SAFETY: a fresh fd from SCM_RIGHTS that we own.
            Some(fd) => Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            None => {
                // Created but unusable: nothing may be left behind.
                let _ = super::delete::delete(root, &id, true);
                let _ = unblock(&set);
                return Err(Error::Other(format!(
                    "container {id}: receive the pty master from the init (or VMM launcher)"
                )));
            }
        },
        None => None,
    };
    if let Err(e) = super::start::start(root, &id) {
        let _ = super::delete::delete(root, &id, true);
        let _ = unblock(&set);
        return Err(e);
    }
    let pid = st.pid;
    let code = wait_loop(pid, &sfd, master.as_ref().map(|m| m.as_raw_fd()));
    let _ = unblock(&set);
    if !keep {
        super::delete::delete(root, &id, true)?;
    }
    Ok(code)
}

fn unblock(set: &SigSet) -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(set), None)
}

fn bundle_wants_terminal(bundle: &Path) -> bool {
    std::fs::read_to_string(bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["process"]["terminal"].as_bool())
        .unwrap_or(false)
}

/// Exit status as a shell reports it: the code, or 128+N for a signal.
pub fn decode_status(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Restores the terminal mode on drop.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    pub(crate) fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: termios calls on a valid fd with stack structs.
        unsafe {
            if libc::isatty(fd) == 0 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) < 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the saved mode on the same fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a stack winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

pub fn wait_loop(pid: i32, sfd: &SignalFd, master: Option<RawFd>) -> i32 {
    let _raw = master.and_then(|_| RawMode::enter(0));
    if let Some(m) = master {
        copy_winsize(0, m);
    }
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(m) = master {
            fds.push(libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            });
            if stdin_open {
                fds.push(libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        // SAFETY: poll over a valid array of pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        if let Some(m) = master {
            if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
                // SAFETY: read into a stack buffer; write the bytes read.
                let r = unsafe { libc::read(m, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if r > 0 {
                    write_all(1, &buf[..r as usize]);
                }
            }
            if stdin_open && fds.len() > 2 && fds[2].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
                // SAFETY: as above.
                let r = unsafe { libc::read(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if r > 0 {
                    write_all(m, &buf[..r as usize]);
                } else {
                    stdin_open = false;
                }
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let Ok(Some(info)) = sfd.read_signal() else {
                continue;
            };
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                loop {
                    let mut status = 0;
                    // SAFETY: reaping any exited child without blocking.
                    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                    if r <= 0 {
                        break;
                    }
                    if r == pid {
                        if let Some(m) = master {
                            drain(m, &mut buf);
                        }
                        return decode_status(status);
                    }
                }
            } else {
                if sig == libc::SIGWINCH {
                    if let Some(m) = master {
                        copy_winsize(0, m);
                    }
                }
                // Forwarding to the container's init (never pid <= 0).
                let _ = super::kill::send(pid, sig);
            }
        }
    }
}

/// What the workload wrote before it exited: the pty passes it to the
/// master from a kernel worker, so it may arrive just after the exit is
/// seen. Read until the master reports every slave closed (EIO) or nothing
/// came for DRAIN_QUIET_MS (a process left behind holds the slave).
fn drain(m: RawFd, buf: &mut [u8]) {
    const DRAIN_QUIET_MS: i32 = 100;
    loop {
        let mut p = libc::pollfd {
            fd: m,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll/read on a valid fd and buffer.
        unsafe {
            if libc::poll(&mut p, 1, DRAIN_QUIET_MS) <= 0 || p.revents & libc::POLLIN == 0 {
                return;
            }
            let r = libc::read(m, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
            if r <= 0 {
                return;
            }
            write_all(1, &buf[..r as usize]);
        }
    }
}

/// Writes all of `data` to `fd`, giving up on an error (a reader gone).
pub(crate) fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) };
        if n <= 0 {
            return;
        }
        data = &data[n as usize..];
    }
}
