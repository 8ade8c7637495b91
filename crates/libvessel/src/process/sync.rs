//! Messages between vessel and the container init over a SOCK_SEQPACKET
//! socketpair. Fixed-size records, so the child sends and receives them
//! without allocating.

use std::os::fd::RawFd;

#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// parent -> child: you are in the cgroup (and user maps are written).
    Go = 1,
    /// child -> parent (two stages): the intermediate made its user namespace.
    NeedMaps = 2,
    /// parent -> child: maps written.
    MapsDone = 3,
    /// child -> parent (two stages): pid of the real init (in `index`).
    InitPid = 4,
    /// child -> parent: run createRuntime/createContainer hooks now.
    RunHooks = 5,
    /// parent -> child: hooks done.
    HooksDone = 6,
    /// child -> parent: the seccomp listener fd follows as SCM_RIGHTS.
    SeccompFd = 7,
    /// child -> parent: set up, waiting for `start`.
    Ready = 8,
    /// child -> parent: failed at `step`/`index` with `errno`.
    Error = 9,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Msg {
    pub kind: u32,
    pub step: u32,
    pub index: i32,
    pub errno: i32,
}

impl Msg {
    pub fn new(kind: Kind) -> Msg {
        Msg {
            kind: kind as u32,
            ..Msg::default()
        }
    }
}

/// Send one message (async-signal-safe).
pub fn send(fd: RawFd, msg: &Msg) -> bool {
    // SAFETY: writes size_of::<Msg>() bytes from a valid struct.
    let n = unsafe {
        libc::send(
            fd,
            msg as *const Msg as *const libc::c_void,
            std::mem::size_of::<Msg>(),
            libc::MSG_NOSIGNAL,
        )
    };
    n == std::mem::size_of::<Msg>() as isize
}

/// Receive one message; None on EOF or error (async-signal-safe).
pub fn recv(fd: RawFd) -> Option<Msg> {
    let mut msg = Msg::default();
    loop {
        // SAFETY: reads at most size_of::<Msg>() bytes into a valid struct.
        let n = unsafe {
            libc::recv(
                fd,
                &mut msg as *mut Msg as *mut libc::c_void,
                std::mem::size_of::<Msg>(),
                0,
            )
        };
        if n < 0 && crate::isolation::caps::errno() == libc::EINTR {
            continue;
        }
        return (n == std::mem::size_of::<Msg>() as isize).then_some(msg);
    }
}

/// Send a buffer as one datagram (async-signal-safe).
pub fn send_bytes(fd: RawFd, data: &[u8]) -> bool {
    // SAFETY: data is a valid slice.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    n == data.len() as isize
}

/// Receive one datagram into `buf`; returns its length (async-signal-safe).
pub fn recv_bytes(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
    (n >= 0).then_some(n as usize)
}

/// Send one fd with SCM_RIGHTS and a one-byte payload (async-signal-safe).
pub fn send_fd(sock: RawFd, fd: RawFd) -> bool {
    send_fd_named(sock, fd, b"\0")
}

/// Send one fd with SCM_RIGHTS and `name` (non-empty) as the payload, as
/// runc's utils.SendFd does: a console-socket receiver such as runc's
/// recvtty or containerd names the received file after it, so a NUL there
/// shows up in its messages (async-signal-safe).
pub fn send_fd_named(sock: RawFd, fd: RawFd, name: &[u8]) -> bool {
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut libc::c_void,
        iov_len: name.len(),
    };
    // Room for one cmsghdr carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr points at stack buffers that outlive the call; CMSG
    // macros stay inside cbuf because it is larger than CMSG_SPACE(4).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut i32, fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) == name.len() as isize
    }
}

/// Receive one fd sent with SCM_RIGHTS (parent side).
pub fn recv_fd(sock: RawFd) -> Option<RawFd> {
    // Room for the payload a sender names the fd with (runc and vessel's
    // console socket: "/dev/ptmx"), so none of it is left in a stream.
    let mut name = [0u8; 256];
    recv_fd_named(sock, &mut name).map(|(fd, _)| fd)
}

/// Receive one fd sent with SCM_RIGHTS and the payload that names it (into
/// `name`; its length is returned with the fd).
pub fn recv_fd_named(sock: RawFd, name: &mut [u8]) -> Option<(RawFd, usize)> {
    let mut iov = libc::iovec {
        iov_base: name.as_mut_ptr() as *mut libc::c_void,
        iov_len: name.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in send_fd; the kernel fills at most msg_controllen bytes.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n <= 0 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32);
        Some((fd, n as usize))
    }
}

/// A close-on-exec SOCK_SEQPACKET socketpair.
pub fn socketpair() -> crate::Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(crate::Error::Sys {
            what: "socketpair".into(),
            source: nix::errno::Errno::last(),
        });
    }
    Ok((fds[0], fds[1]))
}
