//! The host side of the COM2 agent channel. Frames both ways are
//! `[kind: u8][len: u8][len bytes]`.
//! guest -> host: 'O' stdout data, 'R' stderr data.
//! host -> guest: 'I' stdin data, 'E' stdin EOF, 'S' a signal (1 byte).
//! The host sends nothing until the guest has sent its first frame (the agent
//! sends an empty 'O' frame once its end of the port is raw) and has the port
//! open (DTR) with the receive interrupt enabled.

use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::devices::ChannelPort;

pub const KIND_STDOUT: u8 = b'O';
pub const KIND_STDERR: u8 = b'R';
pub const KIND_STDIN: u8 = b'I';
pub const KIND_STDIN_EOF: u8 = b'E';
pub const KIND_SIGNAL: u8 = b'S';
pub const MAX_PAYLOAD: usize = u8::MAX as usize;

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

pub fn forwarded_sigset() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED_SIGNALS {
        set.add(s);
    }
    set
}

/// Encodes `payload` as frames of `kind`, split at 255 bytes. An empty payload
/// gives one empty frame (used for EOF).
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 2 * (payload.len() / MAX_PAYLOAD + 1));
    if payload.is_empty() {
        out.extend_from_slice(&[kind, 0]);
    }
    for chunk in payload.chunks(MAX_PAYLOAD) {
        out.push(kind);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
}

/// Byte-at-a-time decoder of the frames the guest writes (the UART delivers
/// one byte per port write).
#[derive(Debug, Default)]
pub struct FrameParser {
    kind: Option<u8>,
    len: Option<u8>,
    payload: Vec<u8>,
}

impl FrameParser {
    /// Feeds one byte; returns a frame when this byte completes one.
    pub fn push(&mut self, byte: u8) -> Option<(u8, &[u8])> {
        match (self.kind, self.len) {
            (None, _) => {
                self.kind = Some(byte);
                self.payload.clear();
                None
            }
            (Some(kind), None) => {
                if byte == 0 {
                    self.kind = None;
                    return Some((kind, &[]));
                }
                self.len = Some(byte);
                None
            }
            (Some(kind), Some(len)) => {
                self.payload.push(byte);
                if self.payload.len() < len as usize {
                    return None;
                }
                self.kind = None;
                self.len = None;
                Some((kind, &self.payload))
            }
        }
    }
}

/// Where decoded frames go: the VMM's stdout and stderr.
type FrameHandler = Box<dyn FnMut(u8, &[u8]) + Send>;

/// COM2's output side: decodes frames and writes 'O' payloads to stdout and
/// 'R' payloads to stderr. Unknown kinds are skipped whole.
pub struct FrameSink {
    parser: FrameParser,
    handler: FrameHandler,
    frames: u64,
}

impl FrameSink {
    pub fn to_stdio() -> Self {
        Self::with_handler(Box::new(|kind, payload| match kind {
            KIND_STDOUT => write_all_fd(libc::STDOUT_FILENO, payload),
            KIND_STDERR => write_all_fd(libc::STDERR_FILENO, payload),
            _ => {}
        }))
    }

    pub fn with_handler(handler: FrameHandler) -> Self {
        FrameSink {
            parser: FrameParser::default(),
            handler,
            frames: 0,
        }
    }

    /// How many whole frames the guest has sent.
    pub fn frames_seen(&self) -> u64 {
        self.frames
    }

    #[cfg(test)]
    pub fn discard() -> Self {
        Self::with_handler(Box::new(|_, _| {}))
    }
}

impl Write for FrameSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if let Some((kind, payload)) = self.parser.push(b) {
                self.frames += 1;
                (self.handler)(kind, payload);
            }
        }
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
pub fn pump_stdin(port: Arc<ChannelPort>) {
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

/// Reads the forwarded signals from a signalfd (they are blocked in every
/// thread) and sends each to the guest as an 'S' frame. Never returns unless
/// the signalfd fails.
pub fn forward_signals(port: Arc<ChannelPort>, sfd: SignalFd) -> io::Error {
    loop {
        match sfd.read_signal() {
            Ok(Some(info)) => {
                let signo = info.ssi_signo as u8;
                if let Err(e) = port.send(&encode(KIND_SIGNAL, &[signo])) {
                    return e;
                }
            }
            Ok(None) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return io::Error::from(e),
        }
    }
}

/// A signalfd for the forwarded signals; they must already be blocked.
pub fn signal_fd() -> io::Result<SignalFd> {
    SignalFd::with_flags(&forwarded_sigset(), SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn encode_splits_long_payloads_and_marks_eof() {
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
        let mut stream = encode(KIND_STDOUT, b"hello\n");
        stream.extend(encode(b'?', &[1, 2, 3]));
        stream.extend(encode(KIND_STDERR, &[]));
        stream.extend(encode(KIND_STDERR, &vec![b'e'; 256]));
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let mut sink = FrameSink::with_handler(Box::new(move |k, p| {
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
