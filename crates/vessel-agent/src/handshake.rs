//! The agent and a forked child that sets itself up before it execs (the
//! workload or an exec): a SOCK_SEQPACKET pair, one message per step.
//!
//! child -> agent: `READY` (with the pty master attached when it has a
//! terminal) once it is in the container and has resolved its executable,
//! or `FAILED` with an exit code and a message.
//! agent -> child: `GO` once the agent holds what it needs (the master's
//! window size, the namespaces for later execs).
//! child -> agent: nothing at a successful exec (the pair is close-on-exec),
//! or the failed step and errno (`spawn`'s status message).

use super::spawn::Failure;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const READY: u8 = b'r';
const FAILED: u8 = b'f';
const GO: u8 = b'g';
/// A failure message longer than this is cut.
const MAX_MESSAGE: usize = 4096;

/// The agent's end and the child's end.
pub fn pair() -> Result<(OwnedFd, OwnedFd), Failure> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Failure::other(format!("socketpair for the child's set-up: {e}")))
}

/// Child: ready, handing over the pty master if there is one.
pub fn send_ready(sock: RawFd, master: Option<RawFd>) -> Result<(), String> {
    let fds: Vec<RawFd> = master.into_iter().collect();
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(
        sock,
        &[IoSlice::new(&[READY])],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(|e| format!("tell the agent the child is ready: {e}"))
}

/// Child: it could not get ready.
pub fn send_failed(sock: RawFd, f: &Failure) {
    let mut msg = vec![FAILED];
    msg.extend_from_slice(&f.code.to_le_bytes());
    let text = f.msg.as_bytes();
    msg.extend_from_slice(&text[..text.len().min(MAX_MESSAGE)]);
    let _ = sendmsg::<()>(sock, &[IoSlice::new(&msg)], &[], MsgFlags::empty(), None);
}

/// Agent: wait up to `timeout_ms` for the child's first message; the
/// pty master it sent, if any.
pub fn await_ready(
    sock: &OwnedFd,
    timeout_ms: i32,
    what: &str,
) -> Result<Option<OwnedFd>, Failure> {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Failure::other(format!(
                "{what}: its set-up did not finish within {} s",
                timeout_ms / 1000
            )));
        }
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) };
        if n > 0 {
            break;
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(Failure::other(format!(
                "{what}: poll: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    let mut buf = vec![0u8; 1 + 4 + MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Failure::other(format!("{what}: read its set-up status: {e}")))?;
    let mut master = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: a descriptor just received; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    master.get_or_insert(owned);
                }
            }
        }
    }
    let len = msg.bytes;
    match buf.get(..len) {
        Some([READY]) => Ok(master),
        Some([FAILED, c0, c1, c2, c3, text @ ..]) => Err(Failure {
            code: i32::from_le_bytes([*c0, *c1, *c2, *c3]),
            msg: String::from_utf8_lossy(text).into_owned(),
        }),
        Some([]) => Err(Failure::other(format!(
            "{what}: the child ended during its set-up"
        ))),
        _ => Err(Failure::other(format!(
            "{what}: unexpected set-up status from the child"
        ))),
    }
}

/// Agent: let the child exec.
pub fn send_go(sock: &OwnedFd) -> Result<(), Failure> {
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&[GO])],
        &[],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(|e| Failure::other(format!("tell the child to go on: {e}")))
}

/// Child: wait for the agent's go; false if the agent gave up on it.
pub fn wait_go(sock: RawFd) -> bool {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reads one byte into a stack buffer from a socket we own.
        let n = unsafe { libc::read(sock, b.as_mut_ptr().cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return n == 1 && b[0] == GO;
    }
}
