//! `vessel exec` into a VM-mode container: the process runs in the guest,
//! started by the agent with the workload's rules; vessel is its stand-in on
//! the host. It connects to the VMM's exec socket in the state directory,
//! sends the process object, relays its own stdin, stdout and stderr and the
//! signals it gets (as `exec` does for a container's process), and exits
//! with the process's status (re-raising a killing signal). With
//! `--detach` a child of vessel does that and its pid goes to the pid file,
//! so engines that wait on that pid (conmon, containerd's shim) see the
//! process's status there.

use crate::container::run::write_all;
use crate::{Error, Result};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use vessel_protocol::{self as protocol, Decoder, Frame};

/// The VMM's exec socket, in the container's state directory.
pub const SOCKET_NAME: &str = "exec.sock";

/// How the process ended.
enum End {
    Exited(u8),
    Killed(u8),
}

/// How vessel stands in for the exec on the host.
pub struct Stand<'a> {
    pub detach: bool,
    pub pid_file: Option<&'a Path>,
    /// With a terminal and `--detach`: where the host pty's master goes.
    pub console_socket: Option<&'a Path>,
    pub terminal: bool,
}

/// Starts `process` in the VM and stands in for it: returns vessel's exit
/// code (the process's status in the foreground, 0 when detached).
pub fn run(state_dir: &Path, process: &Value, how: &Stand) -> Result<i32> {
    // With a console socket the process's terminal on the host is a pty
    // of vessel's: its master goes to the socket, its slave becomes the
    // stand-in's terminal.
    let slave = match (how.terminal, how.console_socket) {
        (true, Some(path)) => Some(host_pty(path, process)?),
        _ => None,
    };
    let stream = request(state_dir, process)?;
    if !how.detach {
        // (A console socket needs --detach: the foreground relays to
        // vessel's own terminal, raw while it does.)
        let _raw = match how.terminal {
            true => crate::container::run::RawMode::enter(0),
            false => None,
        };
        let (set, sfd) = relayed_signals()?;
        let code = relay(stream, &sfd, how.terminal);
        let _ = set.thread_unblock();
        return Ok(code);
    }
    // SAFETY: vessel is single-threaded here; the child only relays and
    // exits, never returning into the caller.
    match unsafe { nix::unistd::fork() }.map_err(Error::sys("fork"))? {
        nix::unistd::ForkResult::Child => {
            if let Some(s) = &slave {
                take_terminal(s.as_raw_fd());
            }
            let code = match relayed_signals() {
                Ok((_, sfd)) => relay(stream, &sfd, how.terminal),
                Err(_) => 255,
            };
            std::process::exit(code)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(stream);
            if let Some(pf) = how.pid_file {
                if let Err(e) = crate::container::create::write_pid_file(pf, child.as_raw()) {
                    // SAFETY: killing the stand-in just started.
                    unsafe { libc::kill(child.as_raw(), libc::SIGKILL) };
                    return Err(e);
                }
            }
            Ok(0)
        }
    }
}

/// A host pty for the exec's terminal: the master goes over the console
/// socket (named /dev/ptmx, as for a container), the slave is returned.
fn host_pty(socket: &Path, process: &Value) -> Result<std::os::fd::OwnedFd> {
    let size = process["consoleSize"].as_object().and_then(|s| {
        Some((
            s.get("height")?.as_u64()? as u16,
            s.get("width")?.as_u64()? as u16,
        ))
    });
    let pty = super::console::open(size).map_err(|e| Error::Other(e.to_string()))?;
    let s = UnixStream::connect(socket).map_err(Error::io("connect console socket", socket))?;
    super::console::send_master(s.as_raw_fd(), &pty.master)
        .map_err(|e| Error::Other(e.to_string()))?;
    Ok(pty.slave)
}

/// Makes `slave` the stand-in's stdin, stdout, stderr and controlling
/// terminal (so a resize of the master signals it), in raw mode: the
/// guest's pty does the line discipline.
fn take_terminal(slave: std::os::raw::c_int) {
    // SAFETY: setsid, dup2 onto 0-2, TIOCSCTTY and termios calls on
    // descriptors this process holds.
    unsafe {
        libc::setsid();
        for fd in 0..3 {
            libc::dup2(slave, fd);
        }
        libc::ioctl(0, libc::TIOCSCTTY, 0);
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
}

/// The size of the terminal on fd 0, as a `w` frame's payload.
fn window_size() -> Option<[u8; protocol::WINSIZE_LEN]> {
    // SAFETY: TIOCGWINSZ into a stack winsize.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: as above; fd 0 is the terminal.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    Some(protocol::winsize_payload(ws.ws_row, ws.ws_col))
}

/// Connects to the VM's exec socket and sends `process` (the OCI process
/// object); the stream then carries the exec's frames.
fn request(state_dir: &Path, process: &Value) -> Result<UnixStream> {
    let mut s = connect(state_dir, "exec")?;
    let json = serde_json::to_vec(process).map_err(|e| Error::Other(format!("exec: {e}")))?;
    let mut msg = Vec::with_capacity(json.len() + json.len() / 254 * 3 + 6);
    protocol::encode_exec(protocol::KIND_EXEC_REQUEST, 0, &json, &mut msg);
    protocol::encode_exec(protocol::KIND_EXEC_START, 0, &[], &mut msg);
    s.write_all(&msg)
        .map_err(|e| Error::Other(format!("exec: sending the request: {e}")))?;
    Ok(s)
}

/// The VMM's exec socket; `what` names the command in errors.
fn connect(state_dir: &Path, what: &str) -> Result<UnixStream> {
    let path = state_dir.join(SOCKET_NAME);
    let (short, _dir) = vessel_common::socket_path::short(&path)
        .map_err(|e| Error::Other(format!("exec socket {}: {e}", path.display())))?;
    UnixStream::connect(&short).map_err(|e| {
        Error::Other(format!(
            "{what}: connecting to the VM's exec socket {}: {e} (is the VM running?)",
            path.display()
        ))
    })
}

/// How long the agent may take to answer a query.
const QUERY_WAIT: Duration = Duration::from_secs(30);

/// Asks the guest's agent `what` (`protocol::QUERY_PS`, `QUERY_STATS`,
/// `QUERY_UPDATE`) with its argument (empty for none) and returns its
/// JSON answer.
pub fn query(state_dir: &Path, what: &[u8], arg: &[u8]) -> Result<Value> {
    let name = String::from_utf8_lossy(what).into_owned();
    let s = connect(state_dir, &name)?;
    ask(s, &name, what, arg, QUERY_WAIT)
}

/// Leaves a created VM's network settings (`protocol::QUERY_NET`, the
/// rendered settings, empty for none) for its agent. The guest boots only
/// at `start`, and the VMM serves its exec socket only then, so the query
/// waits in the socket's queue (it outlives this end's close) and nobody
/// reads the answer: a setting the guest cannot apply fails the agent's
/// set-up at start, which reports it as any set-up failure. The socket
/// appears once the VMM has set up; waited for up to `wait`.
pub fn leave_network(state_dir: &Path, vmm_pid: i32, net: &str, wait: Duration) -> Result<()> {
    let name = "network";
    let deadline = Instant::now() + wait;
    let mut s = loop {
        match connect(state_dir, name) {
            Ok(s) => break s,
            Err(e) => {
                // SAFETY: kill with signal 0 only checks that the pid exists.
                let alive = unsafe { libc::kill(vmm_pid, 0) } == 0;
                if !alive || Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    s.write_all(&query_frames(protocol::QUERY_NET, net.as_bytes()))
        .map_err(|e| Error::Other(format!("{name}: leaving the settings for the guest: {e}")))
}

/// Query `what`: its argument (if any) as request chunks, then the `q`
/// frame naming it.
fn query_frames(what: &[u8], arg: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    if !arg.is_empty() {
        protocol::encode_exec(protocol::KIND_EXEC_REQUEST, 0, arg, &mut msg);
    }
    protocol::encode_exec(protocol::KIND_EXEC_QUERY, 0, what, &mut msg);
    msg
}

/// Sends query `what` with `arg` on `s` and reads the answer, for `wait`
/// at most.
fn ask(mut s: UnixStream, name: &str, what: &[u8], arg: &[u8], wait: Duration) -> Result<Value> {
    s.write_all(&query_frames(what, arg))
        .and_then(|()| s.set_read_timeout(Some(wait)))
        .map_err(|e| Error::Other(format!("{name}: asking the guest: {e}")))?;
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 16 * 1024];
    while code.is_none() {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(Error::Other(format!(
                    "{name}: no answer from the guest's agent: {e}"
                )))
            }
        };
        decoder.feed(&buf[..n], |f| match f {
            Frame::Exec {
                kind: protocol::KIND_EXEC_STDOUT,
                data,
                ..
            } => out.extend_from_slice(data),
            Frame::Exec {
                kind: protocol::KIND_EXEC_STDERR,
                data,
                ..
            } => err.extend_from_slice(data),
            Frame::Exec {
                kind: protocol::KIND_EXEC_EXIT | protocol::KIND_EXEC_KILLED,
                data: [c, ..],
                ..
            } => code = Some(*c),
            _ => {}
        });
    }
    match code {
        Some(0) => serde_json::from_slice(&out)
            .map_err(|e| Error::Other(format!("{name}: the guest's answer is not JSON: {e}"))),
        _ => Err(Error::Other(format!(
            "{name}: the guest's agent could not answer: {}",
            String::from_utf8_lossy(&err).trim()
        ))),
    }
}

/// Relays until the process ends; returns vessel's exit code (128 + N for
/// a killing signal N, as for a container's exec).
fn relay(stream: UnixStream, signals: &SignalFd, terminal: bool) -> i32 {
    match relay_loop(stream, signals, terminal) {
        Some(End::Exited(code)) => i32::from(code),
        Some(End::Killed(sig)) => 128 + i32::from(sig),
        None => {
            eprintln!("vessel: exec: the VM ended before the process did");
            255
        }
    }
}

fn relay_loop(mut stream: UnixStream, signals: &SignalFd, terminal: bool) -> Option<End> {
    let send_size = |stream: &mut UnixStream| {
        if let Some(size) = window_size() {
            let mut f = Vec::new();
            protocol::encode_exec(protocol::KIND_EXEC_WINSIZE, 0, &size, &mut f);
            let _ = stream.write_all(&f);
        }
    };
    if terminal {
        send_size(&mut stream);
    }
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
                if terminal && info.ssi_signo as i32 == libc::SIGWINCH {
                    send_size(&mut stream);
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

/// The signals an exec stand-in passes on, blocked and read from a signalfd.
fn relayed_signals() -> Result<(SigSet, SignalFd)> {
    let set = crate::container::run::relayed_signals();
    set.thread_block().map_err(Error::sys("block signals"))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(Error::sys("signalfd"))?;
    Ok((set, sfd))
}
