//! `vessel exec` into a running VM. The VMM listens on `--exec-socket` (a
//! unix socket in the container's state directory, bound before the sandbox
//! step; accepting needs no access to the path afterwards). Each connection
//! is one exec: the client sends exec frames with id 0 (`P` request chunks,
//! `p`, then `i`/`e`/`s`/`w`), the VMM gives the exec an id of its own (1 to
//! 255), passes the frames on to the agent with that id, and sends the
//! agent's answers for it (`o`, `r`, then `x` or `k`) back to the client,
//! with id 0 again, closing the connection after the status.
//!
//! One thread serves every connection (threads cannot be made once the
//! seccomp filter is on); the agent channel's transmit thread delivers the
//! answers. A client that does not read its output for
//! [`CLIENT_WRITE_WAIT`] is cut off, so it cannot stall the channel every
//! other stream shares.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vessel_protocol::{self as protocol, Decoder, Frame};

use crate::virtio::console::AgentChannel;

/// How long a write to a client may wait for it to read.
const CLIENT_WRITE_WAIT: Duration = Duration::from_secs(5);
/// The request JSON an exec may send (the agent's own bound is the same).
const MAX_REQUEST: usize = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client socket, closed when the last holder drops it. Not `OwnedFd`:
/// debug builds of std check a descriptor with fcntl(2) before closing
/// it, and the seccomp filter has no fcntl.
struct ClientFd(RawFd);

impl AsRawFd for ClientFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for ClientFd {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor accept4 gave this value alone.
        unsafe { libc::close(self.0) };
    }
}

/// The live execs: id to client socket.
#[derive(Default)]
pub struct ExecTable {
    clients: Mutex<HashMap<u8, Arc<ClientFd>>>,
}

impl ExecTable {
    pub fn new() -> Arc<Self> {
        Arc::new(ExecTable::default())
    }

    /// An answer from the agent for exec `id` (called by the channel's
    /// transmit thread): passed to its client with id 0; after `x` or `k`
    /// the exec is over and its client is closed.
    pub fn deliver(&self, kind: u8, id: u8, data: &[u8]) {
        let client = lock(&self.clients).get(&id).cloned();
        let Some(client) = client else { return };
        let mut frame = Vec::with_capacity(data.len() + 3);
        protocol::encode_exec(kind, 0, data, &mut frame);
        let done = matches!(kind, protocol::KIND_EXEC_EXIT | protocol::KIND_EXEC_KILLED);
        if write_bounded(client.as_raw_fd(), &frame).is_err() || done {
            lock(&self.clients).remove(&id);
        }
    }

    fn free_id(&self) -> Option<u8> {
        let clients = lock(&self.clients);
        (1..=u8::MAX).find(|id| !clients.contains_key(id))
    }
}

/// Binds the exec socket (only the owner may connect).
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let (short, _dir) = vessel_common::socket_path::short(path)?;
    let l = UnixListener::bind(&short)?;
    std::fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Writes all of `data`, waiting at most [`CLIENT_WRITE_WAIT`] in all.
fn write_bounded(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + CLIENT_WRITE_WAIT;
    while !data.is_empty() {
        // SAFETY: `data` is a valid buffer of its length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client not reading",
                    ));
                }
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: poll on one valid pollfd.
                unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// One connection as the server thread reads it.
struct Conn {
    id: u8,
    fd: Arc<ClientFd>,
    decoder: Decoder,
    request_bytes: usize,
    started: bool,
    stdin_closed: bool,
}

/// The server thread: accepts execs and passes their frames to the agent.
/// Returns only when polling fails.
pub fn serve(listener: UnixListener, table: Arc<ExecTable>, agent: Arc<AgentChannel>) -> io::Error {
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        let mut fds = vec![libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: a valid array of pollfds of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return e;
        }
        // The connections first, as `fds` lists them; then a new one.
        let mut ready = fds[1..].iter().map(|p| p.revents != 0);
        conns.retain_mut(|c| {
            let keep = !ready.next().unwrap_or(false) || read_client(c, &agent);
            if !keep && !c.started {
                // Never started: no answer will come to free its id.
                lock(&table.clients).remove(&c.id);
            }
            keep
        });
        if fds[0].revents & libc::POLLIN != 0 {
            if let Some(c) = accept(&listener, &table) {
                conns.push(c);
            }
        }
    }
}

fn accept(listener: &UnixListener, table: &ExecTable) -> Option<Conn> {
    // SAFETY: accept4 on a listening socket; no address is asked for.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = Arc::new(ClientFd(fd));
    let Some(id) = table.free_id() else {
        let mut msg = Vec::new();
        protocol::encode_exec(
            protocol::KIND_EXEC_STDERR,
            0,
            b"vessel-vmm: 255 execs are running already\n",
            &mut msg,
        );
        protocol::encode_exec(protocol::KIND_EXEC_EXIT, 0, &[125], &mut msg);
        let _ = write_bounded(fd.as_raw_fd(), &msg);
        return None;
    };
    lock(&table.clients).insert(id, fd.clone());
    Some(Conn {
        id,
        fd,
        decoder: Decoder::new(),
        request_bytes: 0,
        started: false,
        stdin_closed: false,
    })
}

/// Reads what the client sent and passes it on; false once the client is
/// done sending (its stdin then ends for the exec).
fn read_client(c: &mut Conn, agent: &AgentChannel) -> bool {
    let mut buf = [0u8; 16 * 1024];
    // SAFETY: reading into a stack buffer of its length.
    let n = unsafe { libc::read(c.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let kind = io::Error::last_os_error().kind();
        return matches!(kind, io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock);
    }
    if n == 0 {
        if c.started && !c.stdin_closed {
            let mut f = Vec::new();
            protocol::encode_exec(protocol::KIND_EXEC_STDIN_EOF, c.id, &[], &mut f);
            let _ = agent.send(&f);
        }
        return false;
    }
    let mut out = Vec::new();
    let (id, mut ok) = (c.id, true);
    let (started, stdin_closed, request_bytes) =
        (&mut c.started, &mut c.stdin_closed, &mut c.request_bytes);
    c.decoder.feed(&buf[..n as usize], |frame| {
        let Frame::Exec { kind, data, .. } = frame else {
            return;
        };
        match kind {
            protocol::KIND_EXEC_REQUEST if !*started => {
                *request_bytes += data.len();
                ok &= *request_bytes <= MAX_REQUEST;
            }
            protocol::KIND_EXEC_START if !*started => *started = true,
            protocol::KIND_EXEC_QUERY if !*started => *started = true,
            protocol::KIND_EXEC_STDIN
            | protocol::KIND_EXEC_SIGNAL
            | protocol::KIND_EXEC_WINSIZE
                if *started => {}
            protocol::KIND_EXEC_STDIN_EOF if *started => *stdin_closed = true,
            // Anything else (answers, frames out of order) is not passed on.
            _ => return,
        }
        protocol::encode_exec(kind, id, data, &mut out);
    });
    if !ok {
        return false;
    }
    agent.send(&out).is_ok()
}
