//! Hand the seccomp listener fd to the agent at `linux.seccomp.listenerPath`.
//!
//! Runtime spec (config-linux.md "seccomp", runtime.md "containerProcessState"):
//! the runtime connects to the UNIX socket at listenerPath and sends, in one
//! message, the container process state as JSON (`ociVersion`, `fds`, `pid`,
//! `metadata`, `state`) with the listener fd attached as SCM_RIGHTS; `fds`
//! names the attached fds in order, here `["seccompFd"]`.

use super::SeccompError;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Largest containerProcessState message `recv_listener_message` accepts.
const MAX_STATE_LEN: usize = 64 * 1024;

/// Connect to `listener_path` and send the containerProcessState built from
/// the container's state JSON (`state_json`, the document `vessel state`
/// prints) and `metadata` (linux.seccomp.listenerMetadata, may be empty),
/// with `listener_fd` attached. Runs in the parent; the fd stays open.
pub fn send_listener(
    listener_path: &str,
    listener_fd: RawFd,
    state_json: &[u8],
    metadata: &str,
) -> Result<(), SeccompError> {
    let err = |what: &'static str| {
        let path = listener_path.to_owned();
        move |source: std::io::Error| SeccompError::Listener { path, what, source }
    };
    let state: Value = serde_json::from_slice(state_json)
        .map_err(|e| err("parse container state")(std::io::Error::other(e)))?;
    let message = json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or(json!("1.2.0")),
        "fds": ["seccompFd"],
        "pid": state.get("pid").cloned().unwrap_or(json!(0)),
        "metadata": metadata,
        "state": state,
    });
    let bytes = serde_json::to_vec(&message)
        .map_err(|e| err("encode containerProcessState")(std::io::Error::other(e)))?;
    if bytes.len() > MAX_STATE_LEN {
        return Err(err("encode containerProcessState")(std::io::Error::other(
            format!("message of {} bytes is too large", bytes.len()),
        )));
    }

    let stream =
        UnixStream::connect(listener_path).map_err(err("failed to connect with seccomp agent"))?;
    let fds = [listener_fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(&bytes)];
    let sent = sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| err("sendmsg")(std::io::Error::from(e)))?;
    if sent != bytes.len() {
        return Err(err("sendmsg")(std::io::Error::other(format!(
            "short write: {sent} of {} bytes",
            bytes.len()
        ))));
    }
    Ok(())
}

/// The agent side: read one containerProcessState message and its fd from an
/// accepted connection (for tests and simple agents).
pub fn recv_listener_message(stream: &UnixStream) -> Result<(Value, OwnedFd), SeccompError> {
    let err = |what: &'static str| {
        move |source: std::io::Error| SeccompError::Listener {
            path: "(accepted connection)".into(),
            what,
            source,
        }
    };
    let mut buf = vec![0u8; MAX_STATE_LEN];
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    let (len, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| err("recvmsg")(std::io::Error::from(e)))?;
        let mut fd = None;
        for c in msg
            .cmsgs()
            .map_err(|e| err("recvmsg")(std::io::Error::from(e)))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed this fd for us; we own it.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    let fd = fd.ok_or_else(|| err("recvmsg")(std::io::Error::other("no fd attached")))?;
    let value: Value = serde_json::from_slice(&buf[..len])
        .map_err(|e| err("parse containerProcessState")(std::io::Error::other(e)))?;
    Ok((value, fd))
}
