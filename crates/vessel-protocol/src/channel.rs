//! The agent channel's frame format, shared by the host (VMM) and the guest
//! (vessel-agent) over the virtio-console port (the guest's `/dev/hvc0`):
//! `[kind: u8][len: u8][len bytes]`.
//!
//! guest -> host: `H` hello (len 1: the agent's [`PROTOCOL_VERSION`]), `O`
//! stdout data, `R` stderr data, `X` the workload's exit code (len 1) or `K`
//! the signal that killed it (len 1); nothing follows `X` or `K`.
//! host -> guest: `I` stdin data, `E` stdin EOF (len 0), `S` a signal (len 1),
//! `W` the terminal's window size (len 4: rows then columns, each a u16
//! little-endian; sent only when the workload has a terminal: once at start,
//! 0x0 when the terminal has no size, which the agent waits for before it
//! starts the workload, then on every SIGWINCH the VMM gets).
//!
//! Start-up: the agent sends `H` as soon as its end of the port is in raw
//! mode ("ready"); the host holds `I`/`E`/`S` frames until the guest's first
//! frame, which the guest's tty layer would otherwise cook (echo, ^D).
//! A host that reads another version than its own ends the VM with an error
//! naming both: the VMM and the agent come from one build.
//!

/// Workload stdout bytes (guest -> host).
pub const KIND_STDOUT: u8 = b'O';
/// Workload stderr bytes, and agent error messages (guest -> host).
pub const KIND_STDERR: u8 = b'R';
/// Bytes for the workload's stdin (host -> guest).
pub const KIND_STDIN: u8 = b'I';
/// The workload's stdin is at its end (host -> guest, no payload).
pub const KIND_STDIN_EOF: u8 = b'E';
/// Send a signal to the workload (host -> guest, payload: the signal number).
pub const KIND_SIGNAL: u8 = b'S';
/// The terminal's window size (host -> guest, payload: rows and columns,
/// u16 little-endian each). Only sent for a workload with a terminal.
pub const KIND_WINSIZE: u8 = b'W';
/// The length of a `W` frame's payload.
pub const WINSIZE_LEN: usize = 4;

/// The largest payload one frame carries (its length is one byte).
pub const MAX_PAYLOAD: usize = u8::MAX as usize;

/// The agent is up (guest -> host, payload: its protocol version).
pub const KIND_HELLO: u8 = b'H';
/// The workload exited (guest -> host, payload: its exit code).
pub const KIND_EXIT: u8 = b'X';
/// A signal killed the workload (guest -> host, payload: the signal number).
pub const KIND_KILLED: u8 = b'K';

/// The frame set this build speaks; bumped when a kind changes meaning.
pub const PROTOCOL_VERSION: u8 = 4;

// Exec: more processes in a running guest. Each frame's first payload byte
// is the process id the VMM gave the exec (1 to 255; the workload has none),
// the rest is as for the workload's frames. A request is the process object
// (OCI `process` JSON) in `P` frames, then `p`; the agent starts it with the
// workload's rules and answers with its output and `x` or `k`, or with an
// `r` message and `x` 125, 126 or 127 when it cannot start.
/// Part of an exec request's process JSON (host -> guest).
pub const KIND_EXEC_REQUEST: u8 = b'P';
/// The exec request is complete: start it (host -> guest).
pub const KIND_EXEC_START: u8 = b'p';
/// Stdin bytes for an exec (host -> guest).
pub const KIND_EXEC_STDIN: u8 = b'i';
/// An exec's stdin is at its end (host -> guest).
pub const KIND_EXEC_STDIN_EOF: u8 = b'e';
/// A signal for an exec (host -> guest, data: the signal number).
pub const KIND_EXEC_SIGNAL: u8 = b's';
/// An exec's terminal size (host -> guest, data: as a `W` frame's payload).
pub const KIND_EXEC_WINSIZE: u8 = b'w';
/// An exec's stdout bytes (guest -> host).
pub const KIND_EXEC_STDOUT: u8 = b'o';
/// An exec's stderr bytes (guest -> host).
pub const KIND_EXEC_STDERR: u8 = b'r';
/// An exec exited (guest -> host, data: its exit code).
pub const KIND_EXEC_EXIT: u8 = b'x';
/// A signal killed an exec (guest -> host, data: the signal number).
pub const KIND_EXEC_KILLED: u8 = b'k';
/// Instead of a process, a question about the guest or an instruction to
/// its agent (host -> guest, data: its name, [`QUERY_PS`], [`QUERY_STATS`],
/// [`QUERY_UPDATE`] or [`QUERY_NET`]; an argument, if it takes one, comes
/// first as `P` chunks, as an exec's request does): the answer is JSON in
/// `o` frames, then `x` 0; or an `r` message and `x` 125.
pub const KIND_EXEC_QUERY: u8 = b'q';
/// The workload's processes, as its pid namespace in the guest numbers them.
pub const QUERY_PS: &[u8] = b"ps";
/// The guest's memory, CPU time and process count.
pub const QUERY_STATS: &[u8] = b"stats";
/// New values for the workload's cgroup in the guest; the argument is the
/// `linux.resources` JSON of what changes (as `update` gives it).
pub const QUERY_UPDATE: &[u8] = b"update";
/// The guest's network, when the runtime connects it after the VMM has
/// started (`launch::CMDLINE_NET_LATE`); the argument is
/// `net::GuestNet::render`'s text, empty for no interface. The agent waits
/// for it before it sets the workload up.
pub const QUERY_NET: &[u8] = b"net";
const EXEC_KINDS: [u8; 11] = [
    KIND_EXEC_QUERY,
    KIND_EXEC_REQUEST,
    KIND_EXEC_WINSIZE,
    KIND_EXEC_START,
    KIND_EXEC_STDIN,
    KIND_EXEC_STDIN_EOF,
    KIND_EXEC_SIGNAL,
    KIND_EXEC_STDOUT,
    KIND_EXEC_STDERR,
    KIND_EXEC_EXIT,
    KIND_EXEC_KILLED,
];
/// The largest data one exec frame carries (one byte goes to the id).
pub const MAX_EXEC_DATA: usize = MAX_PAYLOAD - 1;

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
    Stdin(&'a [u8]),
    StdinEof,
    Signal(u8),
    Hello(u8),
    Exit(u8),
    Killed(u8),
    /// A frame of an exec's stream: `kind` is one of the `KIND_EXEC_*`.
    Exec {
        kind: u8,
        id: u8,
        data: &'a [u8],
    },
    WindowSize {
        rows: u16,
        cols: u16,
    },
    /// A kind this side does not know, or a known kind with a bad length;
    /// kept so the reader can log it. The stream stays in sync either way.
    Unknown {
        kind: u8,
        payload: &'a [u8],
    },
}

impl Frame<'_> {
    /// The kind byte and payload this frame was decoded from.
    pub fn parts(&self) -> (u8, std::borrow::Cow<'_, [u8]>) {
        use std::borrow::Cow;
        match self {
            Frame::WindowSize { rows, cols } => (
                KIND_WINSIZE,
                Cow::Owned(winsize_payload(*rows, *cols).to_vec()),
            ),
            Frame::Exec { kind, id, data } => {
                let mut p = Vec::with_capacity(1 + data.len());
                p.push(*id);
                p.extend_from_slice(data);
                (*kind, Cow::Owned(p))
            }
            other => {
                let (k, p) = other.borrowed_parts();
                (k, Cow::Borrowed(p))
            }
        }
    }

    fn borrowed_parts(&self) -> (u8, &[u8]) {
        match self {
            Frame::Stdout(p) => (KIND_STDOUT, p),
            Frame::Stderr(p) => (KIND_STDERR, p),
            Frame::Stdin(p) => (KIND_STDIN, p),
            Frame::StdinEof => (KIND_STDIN_EOF, &[]),
            Frame::Signal(s) => (KIND_SIGNAL, std::slice::from_ref(s)),
            Frame::Hello(v) => (KIND_HELLO, std::slice::from_ref(v)),
            Frame::Exit(c) => (KIND_EXIT, std::slice::from_ref(c)),
            Frame::Killed(s) => (KIND_KILLED, std::slice::from_ref(s)),
            Frame::Unknown { kind, payload } => (*kind, payload),
            Frame::WindowSize { .. } => (KIND_WINSIZE, &[]),
            Frame::Exec { kind, .. } => (*kind, &[]),
        }
    }

    fn from_parts(kind: u8, payload: &[u8]) -> Frame<'_> {
        match (kind, payload.len()) {
            (KIND_STDOUT, _) => Frame::Stdout(payload),
            (KIND_STDERR, _) => Frame::Stderr(payload),
            (KIND_STDIN, _) => Frame::Stdin(payload),
            (KIND_STDIN_EOF, 0) => Frame::StdinEof,
            (KIND_SIGNAL, 1) => Frame::Signal(payload[0]),
            (KIND_HELLO, 1) => Frame::Hello(payload[0]),
            (KIND_EXIT, 1) => Frame::Exit(payload[0]),
            (KIND_KILLED, 1) => Frame::Killed(payload[0]),
            (k, n) if n >= 1 && EXEC_KINDS.contains(&k) => Frame::Exec {
                kind: k,
                id: payload[0],
                data: &payload[1..],
            },
            (KIND_WINSIZE, WINSIZE_LEN) => Frame::WindowSize {
                rows: u16::from_le_bytes([payload[0], payload[1]]),
                cols: u16::from_le_bytes([payload[2], payload[3]]),
            },
            _ => Frame::Unknown { kind, payload },
        }
    }
}

/// Append `data` to `out` as frames of `kind`, split at MAX_PAYLOAD bytes.
/// Empty `data` gives one empty frame (how `E` is sent).
pub fn encode(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        out.extend_from_slice(&[kind, 0]);
        return;
    }
    for chunk in data.chunks(MAX_PAYLOAD) {
        out.push(kind);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

/// Append `data` to `out` as exec frames of `kind` for process `id`, split
/// at [`MAX_EXEC_DATA`] bytes; empty `data` gives one frame with the id only.
pub fn encode_exec(kind: u8, id: u8, data: &[u8], out: &mut Vec<u8>) {
    let mut chunks = data.chunks(MAX_EXEC_DATA).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[kind, 1, id]);
        return;
    }
    for chunk in chunks {
        out.push(kind);
        out.push(chunk.len() as u8 + 1);
        out.push(id);
        out.extend_from_slice(chunk);
    }
}

/// A signal frame.
pub fn encode_signal(signal: u8, out: &mut Vec<u8>) {
    encode(KIND_SIGNAL, &[signal], out);
}

/// A `W` frame's payload.
pub fn winsize_payload(rows: u16, cols: u16) -> [u8; WINSIZE_LEN] {
    let (r, c) = (rows.to_le_bytes(), cols.to_le_bytes());
    [r[0], r[1], c[0], c[1]]
}

/// A window-size frame.
pub fn encode_winsize(rows: u16, cols: u16, out: &mut Vec<u8>) {
    encode(KIND_WINSIZE, &winsize_payload(rows, cols), out);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Kind,
    Len,
    Payload,
}

/// A streaming decoder: feed it bytes as they arrive, in any split.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    kind: u8,
    want: usize,
    buf: [u8; MAX_PAYLOAD],
    have: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Kind,
            kind: 0,
            want: 0,
            buf: [0; MAX_PAYLOAD],
            have: 0,
        }
    }

    /// Decode `data`, calling `on_frame` for every frame completed by it.
    pub fn feed(&mut self, data: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Kind => {
                    self.kind = data[i];
                    self.state = State::Len;
                    i += 1;
                }
                State::Len => {
                    self.want = data[i] as usize;
                    self.have = 0;
                    i += 1;
                    if self.want == 0 {
                        self.state = State::Kind;
                        on_frame(Frame::from_parts(self.kind, &[]));
                    } else {
                        self.state = State::Payload;
                    }
                }
                State::Payload => {
                    let take = (self.want - self.have).min(data.len() - i);
                    self.buf[self.have..self.have + take].copy_from_slice(&data[i..i + take]);
                    self.have += take;
                    i += take;
                    if self.have == self.want {
                        self.state = State::Kind;
                        on_frame(Frame::from_parts(self.kind, &self.buf[..self.want]));
                    }
                }
            }
        }
    }

    /// True between frames (nothing half-received).
    pub fn is_idle(&self) -> bool {
        self.state == State::Kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], split: usize) -> Vec<(u8, Vec<u8>)> {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(split.max(1)) {
            d.feed(piece, |f| {
                let (kind, payload) = f.parts();
                got.push((kind, payload.into_owned()))
            });
        }
        assert!(d.is_idle());
        got
    }

    #[test]
    fn long_data_is_split_into_max_payload_frames() {
        let data: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        encode(KIND_STDOUT, &data, &mut out);
        assert_eq!(out.len(), 600 + 3 * 2);
        assert_eq!(&out[..2], &[b'O', 255]);
        let frames = decode_all(&out, 7);
        assert_eq!(frames.len(), 3);
        let joined: Vec<u8> = frames.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(joined, data);
    }

    #[test]
    fn status_frames_decode_and_round_trip() {
        let mut out = Vec::new();
        encode(KIND_HELLO, &[PROTOCOL_VERSION], &mut out);
        encode(KIND_EXIT, &[3], &mut out);
        encode(KIND_KILLED, &[9], &mut out);
        encode(KIND_EXIT, &[], &mut out); // wrong length: unknown, kept whole
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        d.feed(&out, |f| {
            frames.push(format!("{f:?}"));
            let (k, p) = f.parts();
            assert_eq!(Frame::from_parts(k, &p), f);
        });
        assert_eq!(
            frames,
            [
                format!("Hello({PROTOCOL_VERSION})"),
                "Exit(3)".to_string(),
                "Killed(9)".to_string(),
                "Unknown { kind: 88, payload: [] }".to_string()
            ]
        );
    }

    #[test]
    fn exec_frames_carry_their_id_and_split() {
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        encode_exec(KIND_EXEC_STDOUT, 7, &data, &mut out);
        encode_exec(KIND_EXEC_START, 7, &[], &mut out);
        let mut d = Decoder::new();
        let (mut got, mut starts) = (Vec::new(), 0);
        d.feed(&out, |f| match f {
            Frame::Exec {
                kind: KIND_EXEC_STDOUT,
                id: 7,
                data,
            } => got.extend_from_slice(data),
            Frame::Exec {
                kind: KIND_EXEC_START,
                id: 7,
                data: [],
            } => starts += 1,
            other => panic!("unexpected {other:?}"),
        });
        assert_eq!(got, data);
        assert_eq!(starts, 1);
        // An exec kind without its id byte is unknown, not an exec frame.
        d.feed(&[KIND_EXEC_EXIT, 0], |f| {
            assert!(matches!(f, Frame::Unknown { kind: b'x', .. }))
        });
    }

    #[test]
    fn mixed_frames_survive_any_split() {
        let mut out = Vec::new();
        encode(KIND_STDIN, b"hello\n", &mut out);
        encode_signal(15, &mut out);
        encode(KIND_STDIN_EOF, &[], &mut out);
        encode(KIND_STDERR, b"\x00\xff", &mut out);
        for split in [1, 2, 3, 5, 100] {
            let frames = decode_all(&out, split);
            assert_eq!(
                frames,
                vec![
                    (KIND_STDIN, b"hello\n".to_vec()),
                    (KIND_SIGNAL, vec![15]),
                    (KIND_STDIN_EOF, vec![]),
                    (KIND_STDERR, vec![0, 255]),
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn window_size_round_trips_and_a_short_one_is_unknown() {
        let mut out = Vec::new();
        encode_winsize(40, 321, &mut out);
        assert_eq!(out, vec![b'W', 4, 40, 0, 65, 1]);
        let mut d = Decoder::new();
        let mut seen = Vec::new();
        d.feed(&out, |f| seen.push(f.parts().1.to_vec()));
        d.feed(&out, |f| {
            assert_eq!(
                f,
                Frame::WindowSize {
                    rows: 40,
                    cols: 321
                }
            )
        });
        assert_eq!(seen, vec![vec![40, 0, 65, 1]]);
        d.feed(&[b'W', 2, 1, 2], |f| {
            assert!(matches!(f, Frame::Unknown { kind: b'W', .. }))
        });
    }

    #[test]
    fn bad_signal_length_is_unknown_and_stream_stays_in_sync() {
        let bytes = [b'S', 2, 1, 2, b'Z', 1, 9, b'O', 1, b'k'];
        let mut d = Decoder::new();
        let mut seen = Vec::new();
        d.feed(&bytes, |f| seen.push(format!("{f:?}")));
        assert_eq!(seen.len(), 3);
        assert!(seen[0].starts_with("Unknown { kind: 83"));
        assert!(seen[1].starts_with("Unknown { kind: 90"));
        assert_eq!(seen[2], "Stdout([107])");
    }
}
