//! Escape attempts: each one "ok" when the kernel allowed it, else the
//! errno name.

use super::{errno, errno_name, open_fd, opt_str, read_trim, Json, Options};
use std::ffi::CString;
use std::fs;

/// Each attempt: "ok" when the kernel allowed it, else the errno name.
pub(super) fn escape(o: &Options) -> Json {
    let mut v = vec![
        ("add_key".into(), Json::str(&add_key())),
        ("perf_event_open".into(), Json::str(&perf_event_open())),
        ("raw_socket".into(), Json::str(&raw_socket())),
        (
            "ptrace_pid1".into(),
            Json::str(&in_child(|| ptrace_seize(1))),
        ),
        ("mount_tmpfs".into(), Json::str(&mount_tmpfs())),
        ("init_module".into(), Json::str(&init_module())),
        (
            "unshare_userns".into(),
            Json::str(&in_child(unshare_userns)),
        ),
        ("open_dev_mem".into(), Json::str(&open_result("/dev/mem"))),
        ("open_dev_kmsg".into(), Json::str(&open_result("/dev/kmsg"))),
    ];
    if let Some(pid) = o.host_pid {
        let visible = fs::metadata(format!("/proc/{pid}")).is_ok();
        let comm = read_trim(&format!("/proc/{pid}/comm"));
        v.push((
            "host_pid".into(),
            Json::Obj(vec![
                ("pid".into(), Json::Int(pid as i64)),
                ("visible".into(), Json::Bool(visible)),
                ("comm".into(), opt_str(comm)),
                ("kill0".into(), Json::str(&kill0(pid))),
                (
                    "ptrace".into(),
                    Json::str(&in_child(move || ptrace_seize(pid))),
                ),
            ]),
        ));
    }
    Json::Obj(v)
}

fn result_of(r: i64) -> String {
    if r >= 0 {
        "ok".into()
    } else {
        errno_name(errno())
    }
}

fn add_key() -> String {
    let kind = c"user";
    let desc = c"vessel-probe";
    let payload = b"x";
    // SAFETY: valid NUL-terminated strings and a 1-byte payload;
    // -2 = KEY_SPEC_PROCESS_KEYRING (the key dies with this process).
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            1usize,
            -2i32,
        )
    };
    result_of(r)
}

fn perf_event_open() -> String {
    // perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes): type SOFTWARE (1),
    // config CPU_CLOCK (0), disabled | exclude_kernel | exclude_hv.
    let mut attr = [0u64; 8];
    attr[0] = 1 | (64u64 << 32);
    attr[5] = 1 | (1 << 5) | (1 << 6);
    // SAFETY: attr is a valid 64-byte perf_event_attr; pid 0, cpu -1, no group.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    let r = result_of(fd);
    if fd >= 0 {
        // SAFETY: fd was just returned by the kernel.
        unsafe { libc::close(fd as i32) };
    }
    r
}

fn raw_socket() -> String {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    let r = result_of(fd as i64);
    if fd >= 0 {
        // SAFETY: fd was just returned by the kernel.
        unsafe { libc::close(fd) };
    }
    r
}

/// PTRACE_SEIZE (same permission check as ATTACH, but the target is not
/// stopped); the tracer is a short-lived child, so the trace ends with it.
fn ptrace_seize(pid: i32) -> i32 {
    // SAFETY: ptrace with a pid and null addr/data.
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

fn unshare_userns() -> i32 {
    // SAFETY: unshare in a throw-away child.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
        0
    } else {
        errno()
    }
}

fn mount_tmpfs() -> String {
    let dir = "/tmp/.vessel-probe-mnt";
    let dir = if fs::create_dir_all(dir).is_ok() {
        dir.to_string()
    } else {
        "/mnt".to_string()
    };
    let Ok(target) = CString::new(dir.clone()) else {
        return "EINVAL".into();
    };
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let res = result_of(r as i64);
    if r == 0 {
        // SAFETY: unmount what was just mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = fs::remove_dir(&dir);
    res
}

/// init_module(2) of 64 zero bytes: EPERM means refused; ENOEXEC (not an
/// ELF image) means the module loader was reached. Nothing can load.
fn init_module() -> String {
    let image = [0u8; 64];
    // SAFETY: a valid 64-byte buffer and an empty NUL-terminated params string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len(),
            c"".as_ptr(),
        )
    };
    result_of(r)
}

fn kill0(pid: i32) -> String {
    // SAFETY: signal 0 only checks existence and permission.
    result_of(unsafe { libc::kill(pid, 0) } as i64)
}

fn open_result(path: &str) -> String {
    match open_fd(path, libc::O_RDONLY) {
        Ok(fd) => {
            // SAFETY: fd was just opened.
            unsafe { libc::close(fd) };
            "ok".into()
        }
        Err(_) => errno_name(errno()),
    }
}

/// Run `f` in a forked child (so a trace or a new namespace never touches
/// the probe itself) and return "ok" or the errno name it reports.
fn in_child(f: impl FnOnce() -> i32) -> String {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return format!("pipe: {}", errno_name(errno()));
    }
    // SAFETY: the probe is single-threaded; the child only makes syscalls.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = f();
        let b = code.to_ne_bytes();
        // SAFETY: write to the pipe and leave without running destructors.
        unsafe {
            libc::write(fds[1], b.as_ptr().cast(), 4);
            libc::_exit(0);
        }
    }
    // SAFETY: close the write end in the parent.
    unsafe { libc::close(fds[1]) };
    let mut b = [0u8; 4];
    // SAFETY: b is a valid 4-byte buffer.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 4) };
    // SAFETY: close the read end; reap the child.
    unsafe {
        libc::close(fds[0]);
        if pid > 0 {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    if pid < 0 {
        return format!("fork: {}", errno_name(errno()));
    }
    if n != 4 {
        return "child gave no answer".into();
    }
    match i32::from_ne_bytes(b) {
        0 => "ok".into(),
        e => errno_name(e),
    }
}
