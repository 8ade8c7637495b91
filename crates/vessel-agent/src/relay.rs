//! The agent channel on the virtio-console port: the workload's stdout/stderr out as 'O'/'R'
//! frames, stdin ('I', 'E') and signals ('S') in, until the workload exits.
//! With a terminal, stdout is the pty master (its stdin a duplicate of it),
//! there is no stderr, and window sizes ('W') are set on the master.

use super::console_note;
use super::spawn::Workload;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use vessel_protocol::{self as protocol, Frame};

/// Stdin the workload has not read yet, kept in the agent; beyond this the
/// host's further stdin is dropped rather than exhausting guest RAM.
const MAX_PENDING_STDIN: usize = 16 << 20;

pub fn set_nonblocking(fd: i32, on: bool) -> Result<(), String> {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return Err(format!(
                "fcntl F_GETFL: {}",
                std::io::Error::last_os_error()
            ));
        }
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        if libc::fcntl(fd, libc::F_SETFL, fl) < 0 {
            return Err(format!(
                "fcntl F_SETFL: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

use super::exec::{Execs, Spawner};
pub use super::port::send;
use super::port::Stream;

/// SIGCHLD as a descriptor (blocked for normal delivery), made before the fork.
pub fn sigchld_fd() -> Result<SignalFd, String> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))
}

/// Reap every exited child (PID 1 duty); returns the workload's wait status
/// if it was among them.
pub fn reap(workload: i32) -> Option<i32> {
    reap_all()
        .into_iter()
        .find(|&(pid, _)| pid == workload)
        .map(|(_, status)| status)
}

/// Reaps every exited child; their pids and wait statuses.
fn reap_all() -> Vec<(i32, i32)> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return reaped;
        }
        reaped.push((pid, status));
    }
}

/// Writes as much of `pending` as the process's stdin pipe takes now; on
/// EPIPE (the process closed its stdin) the rest is dropped and the pipe
/// closed. Serves the workload and every exec.
pub fn write_pending(stdin: &mut Option<File>, pending: &mut Vec<u8>) {
    let Some(f) = stdin.as_mut() else { return };
    while !pending.is_empty() {
        match f.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                pending.clear();
                *stdin = None;
                break;
            }
        }
    }
}

/// Forward what one output pipe holds now; `None` once it reached EOF.
fn pump(fd: &mut Option<File>, kind: u8, channel: &mut File) {
    pump_to(fd, Stream::Workload(kind), channel)
}

/// Forward what one output pipe holds now to `stream`; `None` once it
/// reached EOF.
pub fn pump_to(fd: &mut Option<File>, stream: Stream, channel: &mut File) {
    let Some(f) = fd.as_mut() else { return };
    // 127 frames encode to just under 32 KiB, what one port write takes.
    let mut buf = [0u8; 127 * protocol::MAX_PAYLOAD];
    loop {
        match f.read(&mut buf) {
            Ok(0) => {
                *fd = None;
                return;
            }
            Ok(n) => super::port::send_to(channel, stream, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // A pty master reads EIO once every slave is closed: its EOF.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                *fd = None;
                return;
            }
            Err(e) => {
                console_note(&format!("read workload output: {e}"));
                *fd = None;
                return;
            }
        }
    }
}

/// The workload's side of the relay: its pipes, and the stdin the host
/// sent that the workload has not read yet.
struct Relay {
    pid: i32,
    stdin: Option<File>,
    out: Option<File>,
    err: Option<File>,
    pending: Vec<u8>,
    stdin_eof: bool,
    decoder: protocol::Decoder,
    /// The pty master, when the workload has a terminal.
    tty: Option<i32>,
    execs: Execs,
}

/// How long the agent waits for the host's first window size before it
/// starts a terminal workload without one (a VMM that sends none).
const INITIAL_SIZE_WAIT_MS: u64 = 10_000;

/// What the host sent before the workload existed, kept for the relay.
#[derive(Default)]
pub struct Early {
    pub decoder: protocol::Decoder,
    pub stdin: Vec<u8>,
    pub stdin_eof: bool,
    pub signals: Vec<u8>,
}

impl Early {
    /// Keeps a frame for the workload that came before it existed (stdin,
    /// its end, a signal); false for any other.
    pub fn keep(&mut self, frame: &Frame) -> bool {
        match frame {
            Frame::Stdin(data) => self.stdin.extend_from_slice(data),
            Frame::StdinEof => self.stdin_eof = true,
            Frame::Signal(sig) => self.signals.push(*sig),
            _ => return false,
        }
        true
    }
}

/// With a terminal: wait for the VMM's first window-size frame (it sends
/// one as soon as the guest is ready, 0x0 when its terminal has none) and
/// set it on the pty `master`, so the workload's first look at its size
/// is right. Whatever came before it is kept for the relay.
pub fn initial_window_size(channel: &mut File, master: i32, mut early: Early) -> Early {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(INITIAL_SIZE_WAIT_MS);
    let mut got = false;
    while !got {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            console_note("no window size from the host; the workload starts with none");
            break;
        }
        let mut buf = [0u8; 512];
        let n = match read_some(channel, &mut buf, left.as_millis().min(1000) as i32) {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(e) => {
                console_note(&format!("read the agent channel: {e}"));
                break;
            }
        };
        // Frames after the size are kept as well (the decoder only
        // hands out whole frames).
        let mut decoder = std::mem::take(&mut early.decoder);
        decoder.feed(&buf[..n], |frame| match frame {
            Frame::WindowSize { rows, cols } => {
                got = true;
                if let Err(e) = super::tty::set_window_size(master, rows, cols) {
                    console_note(&e);
                }
            }
            other if early.keep(&other) => {}
            other => console_note(&format!("ignoring unexpected frame {other:?}")),
        });
        early.decoder = decoder;
    }
    early
}

/// Waits up to `timeout_ms` (-1: no bound) for the channel to be readable
/// and reads what is there; None when nothing came (the time ran out, a
/// signal, or nothing to read after all).
pub fn read_some(
    channel: &mut File,
    buf: &mut [u8],
    timeout_ms: i32,
) -> std::io::Result<Option<usize>> {
    let mut p = libc::pollfd {
        fd: channel.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, timeout_ms) } <= 0 {
        return Ok(None);
    }
    match channel.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Relay until the workload exits; returns its wait status. `early` is what
/// the host sent before the workload started: its stdin goes first, its
/// signals are delivered now.
pub fn run(
    channel: &mut File,
    w: Workload,
    early: Early,
    sigfd: &mut SignalFd,
    spawn: &Spawner,
) -> i32 {
    let mut relay = Relay::new(w, early);
    let mut status = None;

    while status.is_none() {
        let mut fds = relay.poll_fds(channel, sigfd).to_vec();
        fds.extend(relay.execs.poll_fds());
        // SAFETY: fds is a valid array of pollfd; negative fds are ignored by poll.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            console_note(&format!("poll: {}", std::io::Error::last_os_error()));
            break;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            relay.read_channel(channel, spawn);
        }
        relay.execs.service(&fds[5..], channel);
        if fds[1].revents != 0 {
            pump(&mut relay.out, protocol::KIND_STDOUT, channel);
        }
        if fds[2].revents != 0 {
            pump(&mut relay.err, protocol::KIND_STDERR, channel);
        }
        if fds[3].revents != 0 {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            for (pid, st) in reap_all() {
                if pid == relay.pid {
                    status = Some(st);
                } else {
                    relay.execs.reaped(pid, st, channel);
                }
            }
        }
        relay.write_pending_stdin();
        if relay.stdin_eof && relay.pending.is_empty() {
            relay.stdin = None;
        }
    }
    relay.finish(channel);
    status.unwrap_or(255 << 8)
}

/// A pty passes what the workload wrote on to the master from a kernel
/// worker, so it may not be readable yet when the exit is seen: read until
/// the master says every slave is closed (EIO), or until nothing came for
/// a moment (a child left behind still holds the slave).
fn drain_tty(out: &mut Option<File>, channel: &mut File) {
    drain_tty_to(out, Stream::Workload(protocol::KIND_STDOUT), channel)
}

/// `drain_tty` for any stream (an exec's terminal too).
pub fn drain_tty_to(out: &mut Option<File>, stream: Stream, channel: &mut File) {
    const QUIET_MS: i32 = 200;
    while let Some(f) = out.as_ref() {
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, QUIET_MS) };
        if n == 0 || (n < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted) {
            return;
        }
        if n > 0 {
            pump_to(out, stream, channel);
        }
    }
}

impl Relay {
    /// Take the workload's pipes, all non-blocking.
    fn new(w: Workload, early: Early) -> Relay {
        for sig in &early.signals {
            // SAFETY: kill(2) of the workload we started.
            unsafe { libc::kill(w.pid, i32::from(*sig)) };
        }
        let _ = set_nonblocking(w.stdout.as_raw_fd(), true);
        if let Some(f) = &w.stderr {
            let _ = set_nonblocking(f.as_raw_fd(), true);
        }
        let stdin: Option<File> = w.stdin.map(File::from);
        if let Some(f) = &stdin {
            let _ = set_nonblocking(f.as_raw_fd(), true);
        }
        Relay {
            pid: w.pid,
            stdin,
            out: Some(File::from(w.stdout)),
            err: w.stderr.map(File::from),
            pending: early.stdin,
            stdin_eof: early.stdin_eof,
            decoder: early.decoder,
            tty: w.tty,
            execs: Execs::for_workload(w.pid),
        }
    }

    /// What to wait for: host frames, workload output, SIGCHLD, and room in
    /// the workload's stdin while some is pending. Closed ones are -1.
    fn poll_fds(&self, channel: &File, sigfd: &SignalFd) -> [libc::pollfd; 5] {
        let raw = |f: &Option<File>| f.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let pollfd = |fd: i32, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let stdin = if self.pending.is_empty() {
            -1
        } else {
            raw(&self.stdin)
        };
        [
            pollfd(channel.as_raw_fd(), libc::POLLIN),
            pollfd(raw(&self.out), libc::POLLIN),
            pollfd(raw(&self.err), libc::POLLIN),
            pollfd(sigfd.as_fd().as_raw_fd(), libc::POLLIN),
            pollfd(stdin, libc::POLLOUT),
        ]
    }

    /// Read the host's frames: stdin is queued (up to MAX_PENDING_STDIN),
    /// signals are sent to the workload.
    fn read_channel(&mut self, channel: &mut File, spawn: &Spawner) {
        let mut buf = [0u8; 4096];
        match channel.read(&mut buf) {
            Ok(n) => self.decoder.feed(&buf[..n], |frame| match frame {
                Frame::Exec { kind, id, data } => {
                    self.execs.on_frame(kind, id, data, spawn, channel)
                }
                Frame::Stdin(data) => {
                    if self.stdin.is_some() && self.pending.len() + data.len() <= MAX_PENDING_STDIN
                    {
                        self.pending.extend_from_slice(data);
                    }
                }
                // With a terminal the host's EOF only ends the input: the
                // pty stays (the workload still writes to it), as with a
                // host pty whose reader stopped sending.
                Frame::StdinEof => self.stdin_eof = true,
                Frame::WindowSize { rows, cols } => match self.tty {
                    Some(master) => {
                        if let Err(e) = super::tty::set_window_size(master, rows, cols) {
                            console_note(&e);
                        }
                    }
                    None => console_note("ignoring a window size: the workload has no terminal"),
                },
                Frame::Signal(sig) => {
                    // SAFETY: kill(2) of the workload we started.
                    unsafe { libc::kill(self.pid, sig as i32) };
                }
                other => console_note(&format!("ignoring unexpected frame {other:?}")),
            }),
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
            Err(e) => console_note(&format!("read the agent channel: {e}")),
        }
    }

    /// Write as much pending stdin as the workload's pipe takes now.
    fn write_pending_stdin(&mut self) {
        write_pending(&mut self.stdin, &mut self.pending);
    }

    /// After the workload exited: forward its last output, close its stdin
    /// and reap. (The status frame follows the output in the same queue.)
    fn finish(mut self, channel: &mut File) {
        // Whatever the workload wrote before it exited is in the pipes now;
        // children it left behind may hold them open, so read only what is there.
        if self.tty.is_some() {
            drain_tty(&mut self.out, channel);
        }
        pump(&mut self.out, protocol::KIND_STDOUT, channel);
        pump(&mut self.err, protocol::KIND_STDERR, channel);
        drop(self.stdin.take());
        let _ = reap(self.pid);
    }
}
