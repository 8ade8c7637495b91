//! The host side of the agent channel (the virtio-console port, see
//! `virtio::console`). Frames both ways are `[kind: u8][len: u8][len bytes]`
//! (`vessel-protocol`).
//! guest -> host: 'H' hello with the protocol version, 'O' stdout data, 'R'
//! stderr data, 'X' exit code or 'K' killing signal (the VMM then ends so).
//! host -> guest: 'I' stdin data, 'E' stdin EOF, 'S' a signal (1 byte),
//! 'W' the terminal's window size (with a terminal only, see `tty`).
//! The host sends nothing until the guest has sent its first frame (the agent
//! sends 'H' once its end of the port is raw).

use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::{mpsc, Arc};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::pause::GATE;
use super::vcpu::{workload_ended, WorkloadEnd};
use super::virtio::console::AgentChannel;

use vessel_protocol::control::{PAUSE_SIGNAL, RESUME_SIGNAL};
use vessel_protocol::{self as protocol, Decoder, Frame, KIND_STDIN, KIND_STDIN_EOF, MAX_PAYLOAD};

/// The signals the VMM passes on to the workload (SIGKILL just kills the VMM).
pub const FORWARDED_SIGNALS: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// What the signalfd reads: the forwarded signals plus pause and resume.
pub fn forwarded_sigset() -> SigSet {
    let mut set = control_sigset();
    for s in FORWARDED_SIGNALS {
        set.add(s);
    }
    set
}

/// The runtime's pause and resume signals (real-time signals, which nix's
/// `Signal` does not name).
pub fn control_sigset() -> SigSet {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t;
    // the result is a valid set for from_sigset_t_unchecked.
    unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut raw);
        libc::sigaddset(&mut raw, PAUSE_SIGNAL);
        libc::sigaddset(&mut raw, RESUME_SIGNAL);
        SigSet::from_sigset_t_unchecked(raw)
    }
}

/// `payload` as frames of `kind` (the agent's codec, `vm::protocol`).
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 2 * (payload.len() / MAX_PAYLOAD + 1));
    protocol::encode(kind, payload, &mut out);
    out
}

/// Where decoded frames go: the VMM's stdout and stderr.
type FrameHandler = Box<dyn FnMut(Frame<'_>) + Send>;

/// The channel's output side: decodes frames, writes 'O' payloads to stdout
/// and 'R' payloads to stderr, and ends the VMM on 'X' or 'K'. Unknown kinds
/// are skipped whole.
pub struct FrameSink {
    decoder: Decoder,
    handler: FrameHandler,
    frames: u64,
    /// Stdout and stderr bytes decoded from one `write`, written with one
    /// call each (a frame carries at most 255 bytes) before any other
    /// frame is handled and when the `write` ends.
    batch: Option<(Vec<u8>, Vec<u8>)>,
}

impl FrameSink {
    /// The VMM's own sink: the workload's output to stdio, an exec's to its
    /// client in `execs`.
    pub fn to_stdio(execs: Arc<crate::exec::ExecTable>) -> Self {
        let mut sink = Self::with_handler(Box::new(move |frame| match frame {
            Frame::Exec { kind, id, data } => execs.deliver(kind, id, data),
            Frame::Stdout(p) => write_all_fd(libc::STDOUT_FILENO, p),
            Frame::Stderr(p) => write_all_fd(libc::STDERR_FILENO, p),
            Frame::Exit(code) => workload_ended(WorkloadEnd::Exited(code)),
            Frame::Killed(signo) => workload_ended(WorkloadEnd::Killed(signo)),
            Frame::Hello(version) if version != protocol::PROTOCOL_VERSION => {
                let why = format!(
                    "the guest agent speaks channel protocol {version}, this VMM {} \
                     (vessel-agent and vessel-vmm must come from one build)",
                    protocol::PROTOCOL_VERSION
                );
                match super::vcpu::DEVICES.get() {
                    Some(d) => super::vcpu::abnormal_end(d, &why),
                    None => {
                        write_all_fd(
                            libc::STDERR_FILENO,
                            format!("vessel-vmm: {why}\n").as_bytes(),
                        );
                        std::process::exit(super::vcpu::EXIT_NO_STATUS)
                    }
                }
            }
            _ => {}
        }));
        sink.batch = Some((Vec::new(), Vec::new()));
        sink
    }

    pub fn with_handler(handler: FrameHandler) -> Self {
        FrameSink {
            decoder: Decoder::new(),
            handler,
            frames: 0,
            batch: None,
        }
    }

    /// How many whole frames the guest has sent.
    pub fn frames_seen(&self) -> u64 {
        self.frames
    }
}

/// Hands the batched output to the handler (stdout first, then stderr).
fn flush_batch(batch: &mut Option<(Vec<u8>, Vec<u8>)>, handler: &mut FrameHandler) {
    if let Some((out, err)) = batch.as_mut() {
        if !out.is_empty() {
            handler(Frame::Stdout(out));
            out.clear();
        }
        if !err.is_empty() {
            handler(Frame::Stderr(err));
            err.clear();
        }
    }
}

impl Write for FrameSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (handler, frames, batch) = (&mut self.handler, &mut self.frames, &mut self.batch);
        self.decoder.feed(buf, |frame| {
            *frames += 1;
            match (frame, batch.as_mut()) {
                (Frame::Stdout(p), Some((out, _))) => out.extend_from_slice(p),
                (Frame::Stderr(p), Some((_, err))) => err.extend_from_slice(p),
                (other, _) => {
                    // Output before a status or hello goes out first.
                    flush_batch(batch, handler);
                    handler(other);
                }
            }
        });
        flush_batch(&mut self.batch, &mut self.handler);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes everything to a raw fd (unbuffered, so output is out before the
/// VMM exits). A closed reader is not an error worth stopping the guest for.
pub fn write_all_fd(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: `data` is a valid readable buffer of `data.len()` bytes.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}

/// Copies the VMM's stdin to the guest as 'I' frames, then sends 'E'.
pub fn pump_stdin(port: Arc<AgentChannel>) {
    let mut buf = [0u8; MAX_PAYLOAD];
    loop {
        // SAFETY: reading into a stack buffer of the given length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // A read error ends the input like EOF does: the workload sees EOF.
        let data = if n > 0 { &buf[..n as usize] } else { &[][..] };
        let kind = if data.is_empty() {
            KIND_STDIN_EOF
        } else {
            KIND_STDIN
        };
        if port.send(&encode(kind, data)).is_err() || data.is_empty() {
            return;
        }
    }
}

/// Reads the forwarded and control signals from a signalfd (they are
/// blocked in every thread): pause and resume go to the vCPU gate at once;
/// the others go, in order, to `forward`, a thread that sends each to the
/// guest as an 'S' frame (that send may wait for receive buffers, e.g. while
/// the guest is paused, and must never hold up a resume). Never returns
/// unless the signalfd fails.
pub fn dispatch_signals(
    sfd: SignalFd,
    forward: mpsc::Sender<u8>,
    devices: &crate::devices::Devices,
) -> io::Error {
    loop {
        match sfd.read_signal() {
            Ok(Some(info)) => match info.ssi_signo as i32 {
                PAUSE_SIGNAL => GATE.pause(),
                RESUME_SIGNAL => GATE.resume(),
                signo => {
                    crate::boot_watch::end_if_not_up(devices, signo);
                    if forward.send(signo as u8).is_err() {
                        return io::Error::other("the signal forwarding thread ended");
                    }
                }
            },
            Ok(None) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return io::Error::from(e),
        }
    }
}

/// The forwarding thread: each signal from `dispatch_signals` to the guest.
/// With a terminal (`tty`), the window size goes first (as soon as the
/// guest is ready; the agent starts the workload once it has it), and SIGWINCH becomes a window-size frame with the
/// terminal's new size: the agent sets it on the guest's pty, whose kernel
/// then signals the workload's foreground group as a host pty would.
pub fn forward_signals(
    port: Arc<AgentChannel>,
    signals: mpsc::Receiver<u8>,
    tty: bool,
) -> io::Error {
    let send_size = |port: &AgentChannel, (rows, cols): (u16, u16)| {
        let mut frame = Vec::with_capacity(2 + protocol::WINSIZE_LEN);
        protocol::encode_winsize(rows, cols, &mut frame);
        port.send(&frame)
    };
    // Always one at start, 0x0 when the terminal has no size: the agent
    // waits for it before it starts the workload.
    if tty {
        if let Err(e) = send_size(&port, super::tty::window_size().unwrap_or((0, 0))) {
            return e;
        }
    }
    for signo in signals {
        let sent = if tty && i32::from(signo) == libc::SIGWINCH {
            match super::tty::window_size() {
                Some(size) => send_size(&port, size),
                None => Ok(()),
            }
        } else {
            port.send(&encode(protocol::KIND_SIGNAL, &[signo]))
        };
        if let Err(e) = sent {
            return e;
        }
    }
    io::Error::other("the signal dispatcher ended")
}

/// A signalfd for the forwarded and control signals; they must already be
/// blocked.
pub fn signal_fd() -> io::Result<SignalFd> {
    SignalFd::with_flags(&forwarded_sigset(), SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn encode_splits_long_payloads_and_marks_eof() {
        use protocol::KIND_SIGNAL;
        assert_eq!(encode(KIND_STDIN_EOF, &[]), vec![b'E', 0]);
        assert_eq!(encode(KIND_SIGNAL, &[15]), vec![b'S', 1, 15]);
        let data = vec![7u8; 300];
        let f = encode(KIND_STDIN, &data);
        assert_eq!(f.len(), 304);
        assert_eq!(&f[..2], &[b'I', 255]);
        assert_eq!(&f[257..259], &[b'I', 45]);
    }

    #[test]
    fn parser_round_trips_frames_fed_byte_by_byte() {
        use protocol::{KIND_STDERR, KIND_STDOUT};
        let mut stream = encode(KIND_STDOUT, b"hello\n");
        stream.extend(encode(b'?', &[1, 2, 3]));
        stream.extend(encode(KIND_STDERR, &[]));
        stream.extend(encode(KIND_STDERR, &vec![b'e'; 256]));
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let mut sink = FrameSink::with_handler(Box::new(move |frame| {
            let (k, p) = frame.parts();
            g.lock().unwrap().push((k, p.to_vec()))
        }));
        for b in &stream {
            sink.write_all(std::slice::from_ref(b)).unwrap();
        }
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], (b'O', b"hello\n".to_vec()));
        assert_eq!(got[1], (b'?', vec![1, 2, 3]));
        assert_eq!(got[2], (b'R', vec![]));
        assert_eq!((got[3].1.len(), got[4].1.len()), (255, 1));
    }
}
