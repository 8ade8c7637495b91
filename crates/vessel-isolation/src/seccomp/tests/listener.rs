//! Filter flags and SCMP_ACT_NOTIFY: the listener fd reaches a socket and
//! answers a call; the listener path must be a socket.

use super::*;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use serde_json::json;

#[test]
fn flags_are_set_and_accepted_by_the_kernel() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(
        prog.flags & (libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW),
        libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    assert_eq!(exited(in_child(&prog, || 0)), 0);

    // WAIT_KILLABLE_RECV comes through take_extra_flags (oci-spec lacks it).
    let mut config = json!({"linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/x.sock",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }}});
    let extra = take_extra_flags(&mut config);
    assert_eq!(
        extra,
        vec!["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".to_string()]
    );
    let seccomp = profile(config["linux"]["seccomp"].clone());
    let mut warnings = Vec::new();
    let prog = compile_with_flags(&seccomp, &extra, &mut |w| warnings.push(w)).expect("compile");
    let has = prog.flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0;
    // Either the kernel has it (5.19+) or it was dropped with a warning.
    assert!(has || warnings.iter().any(|w| w.contains("WAIT_KILLABLE_RECV")));
    assert!(prog.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0);
}

#[test]
fn notify_reaches_a_listener_through_a_socketpair() {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;

    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/unused-in-this-test",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(prog.wants_listener);
    assert!(prog
        .filter
        .iter()
        .any(|i| i.code == 0x06 && i.k == SECCOMP_RET_USER_NOTIF));
    let (parent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let child_fd = child_end.as_raw_fd();

    // SAFETY: the child runs only raw syscalls and _exit.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: raw syscalls on data prepared before fork.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let listener = match prog.install() {
                    Ok(fd) if fd >= 0 => fd,
                    _ => libc::_exit(200),
                };
                if send_fd(child_fd, listener) < 0 {
                    libc::_exit(201);
                }
                let got = libc::syscall(libc::SYS_getppid);
                libc::_exit(if got == 4242 { 0 } else { 1 });
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop(child_end);
    let listener = recv_fd(parent_end.as_raw_fd());
    assert!(listener >= 0, "no listener fd received");

    // SAFETY: zeroed kernel structs, filled by the ioctls.
    unsafe {
        let mut req: libc::seccomp_notif = std::mem::zeroed();
        let rc = libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req);
        assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        assert_eq!(i64::from(req.data.nr), libc::SYS_getppid);
        assert_eq!(req.pid as i32, child.as_raw());
        let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
        resp.id = req.id;
        resp.val = 4242;
        let rc = libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp);
        assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
        libc::close(listener);
    }
    assert_eq!(exited(waitpid(child, None).expect("waitpid")), 0);
}

/// Send one fd with SCM_RIGHTS using only stack memory (child side).
unsafe fn send_fd(sock: i32, fd: i32) -> isize {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 4];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
    libc::sendmsg(sock, &msg, 0)
}

fn recv_fd(sock: i32) -> i32 {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([i32; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            return fds[0];
        }
    }
    -1
}

#[test]
fn notify_on_write_compiles() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/unused-in-this-test",
        "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(prog.wants_listener);
}

#[test]
fn listener_path_must_be_an_existing_socket() {
    let with_path = |p: &str| {
        profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": p,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
    };
    for p in ["", "@abstract", "/no/such/agent.sock", "/etc/hostname"] {
        let err = check_listener(&with_path(p)).expect_err(p).to_string();
        assert!(!err.is_empty(), "{p}");
        if p.starts_with('/') {
            assert!(
                err.contains("failed to connect with seccomp agent"),
                "{err}"
            );
        }
    }
    // No SCMP_ACT_NOTIFY: the path is not looked at (runc ignores it too).
    let unused = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/no/such"}));
    check_listener(&unused).expect("unused listenerPath");
    let dir = std::env::temp_dir().join(format!("vessel-listener-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock);
    let _l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    check_listener(&with_path(sock.to_str().unwrap_or_default())).expect("a real socket");
    let _ = std::fs::remove_dir_all(&dir);
}
