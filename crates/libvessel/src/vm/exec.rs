//! `vessel exec` into a VM-mode container: the process runs in the guest,
//! started by the agent with the workload's rules; vessel is its stand-in on
//! the host. It connects to the VMM's exec socket in the state directory,
//! sends the process object, relays its own stdin, stdout and stderr and the
//! signals it gets (as `exec` does for a container's process), and exits
//! with the process's status (re-raising a killing signal). With
//! `--detach` a child of vessel does that and its pid goes to the pid file,
//! so engines that wait on that pid (conmon, containerd's shim) see the
//! process's status there.

use crate::{Error, Result};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use vessel_protocol::{self as protocol, Decoder, Frame};

/// The VMM's exec socket, in the container's state directory.
pub const SOCKET_NAME: &str = "exec.sock";

/// How the process ended.
enum End {
    Exited(u8),
    Killed(u8),
}

/// Connects to the VM's exec socket and sends `process` (the OCI process
/// object); the stream then carries the exec's frames.
pub fn request(state_dir: &Path, process: &Value) -> Result<UnixStream> {
    if process["terminal"].as_bool() == Some(true) {
        return Err(Error::invalid(
            "exec with a terminal (-t) is not supported in VM mode yet",
        ));
    }
    let path = state_dir.join(SOCKET_NAME);
    let (short, _dir) = vessel_common::socket_path::short(&path)
        .map_err(|e| Error::Other(format!("exec socket {}: {e}", path.display())))?;
    let mut s = UnixStream::connect(&short).map_err(|e| {
        Error::Other(format!(
            "exec: connecting to the VM's exec socket {}: {e} (is the VM running?)",
            path.display()
        ))
    })?;
    let json = serde_json::to_vec(process).map_err(|e| Error::Other(format!("exec: {e}")))?;
    let mut msg = Vec::with_capacity(json.len() + json.len() / 254 * 3 + 6);
    protocol::encode_exec(protocol::KIND_EXEC_REQUEST, 0, &json, &mut msg);
    protocol::encode_exec(protocol::KIND_EXEC_START, 0, &[], &mut msg);
    s.write_all(&msg)
        .map_err(|e| Error::Other(format!("exec: sending the request: {e}")))?;
    Ok(s)
}

/// Relays until the process ends; returns vessel's exit code (128 + N for
/// a killing signal N, as for a container's exec).
pub fn relay(stream: UnixStream, signals: &SignalFd) -> i32 {
    match relay_loop(stream, signals) {
        Some(End::Exited(code)) => i32::from(code),
        Some(End::Killed(sig)) => 128 + i32::from(sig),
        None => {
            eprintln!("vessel: exec: the VM ended before the process did");
            255
        }
    }
}

fn relay_loop(mut stream: UnixStream, signals: &SignalFd) -> Option<End> {
    let mut decoder = Decoder::new();
    let mut stdin_open = true;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = vec![
            pollfd(stream.as_raw_fd()),
            pollfd(signals.as_raw_fd()),
            pollfd(if stdin_open { 0 } else { -1 }),
        ];
        // SAFETY: poll over a valid array of pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let mut end = None;
            decoder.feed(&buf[..n], |f| match f {
                Frame::Exec {
                    kind: protocol::KIND_EXEC_STDOUT,
                    data,
                    ..
                } => write_all(1, data),
                Frame::Exec {
                    kind: protocol::KIND_EXEC_STDERR,
                    data,
                    ..
                } => write_all(2, data),
                Frame::Exec {
                    kind: protocol::KIND_EXEC_EXIT,
                    data: [c, ..],
                    ..
                } => end = Some(End::Exited(*c)),
                Frame::Exec {
                    kind: protocol::KIND_EXEC_KILLED,
                    data: [s, ..],
                    ..
                } => end = Some(End::Killed(*s)),
                _ => {}
            });
            if end.is_some() {
                return end;
            }
        }
        if fds[1].revents != 0 {
            if let Ok(Some(info)) = signals.read_signal() {
                if info.ssi_signo as i32 == libc::SIGCHLD {
                    continue;
                }
                let mut f = Vec::new();
                protocol::encode_exec(
                    protocol::KIND_EXEC_SIGNAL,
                    0,
                    &[info.ssi_signo as u8],
                    &mut f,
                );
                let _ = stream.write_all(&f);
            }
        }
        if stdin_open && fds[2].revents != 0 {
            // SAFETY: reading into a stack buffer of its length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            let mut f = Vec::new();
            if n > 0 {
                protocol::encode_exec(protocol::KIND_EXEC_STDIN, 0, &buf[..n as usize], &mut f);
            } else {
                protocol::encode_exec(protocol::KIND_EXEC_STDIN_EOF, 0, &[], &mut f);
                stdin_open = false;
            }
            let _ = stream.write_all(&f);
        }
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing a valid buffer of its length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            return;
        }
        data = &data[n as usize..];
    }
}

/// The signals an exec stand-in passes on, blocked and read from a signalfd.
pub fn relayed_signals() -> Result<(SigSet, SignalFd)> {
    let set = crate::container::run::relayed_signals();
    set.thread_block().map_err(Error::sys("block signals"))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(Error::sys("signalfd"))?;
    Ok((set, sfd))
}
