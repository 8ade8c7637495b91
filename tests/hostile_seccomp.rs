//! Issue 12, seccomp and the last steps before execve (items 20 and 26):
//! vessel's own syscalls never run under the container's filter, newer
//! syscalls than the profile get ENOSYS, notify never hangs, a missing agent
//! fails `create` cleanly, startContainer hooks run under the filter (as in
//! runc), and the cwd is entered before privileges are dropped. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test hostile_seccomp`
//! checks the tests against runc (the notify-on-write test is vessel-only:
//! runc refuses SCMP_ACT_NOTIFY for write).

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::Duration;

/// The allow-list of the OCI runtime-tools generator's default profile
/// (generate/seccomp/seccomp_default.go, amd64, no CAP_SYS_ADMIN): Docker's
/// older list, without close_range, openat2, clone3, faccessat2...
const RUNTIME_TOOLS_ALLOW: &str = "accept accept4 access alarm bind brk capget capset chdir \
chmod chown chown32 clock_getres clock_gettime clock_nanosleep close connect copy_file_range \
creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_wait \
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat fadvise64 fadvise64_64 \
fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync \
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 \
fsync ftruncate ftruncate64 futex futimesat getcpu getcwd getdents getdents64 getegid getegid32 \
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp \
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit \
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday \
getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel \
ioctl io_destroy io_getevents ioprio_get ioprio_set io_setup io_submit ipc kill lchown lchown32 \
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat \
lstat64 madvise memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 \
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl \
msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat _newselect open openat \
pause pipe pipe2 poll ppoll prctl pread64 preadv prlimit64 pselect6 pwrite64 pwritev read \
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmsg remap_file_pages removexattr \
rename renameat renameat2 restart_syscall rmdir rt_sigaction rt_sigpending rt_sigprocmask \
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity \
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler \
sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler \
sched_yield seccomp select semctl semget semop semtimedop send sendfile sendfile64 sendmmsg \
sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 \
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 \
setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address \
setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 \
sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx symlink \
symlinkat sync sync_file_range syncfs sysinfo syslog tee tgkill time timer_create timer_delete \
timerfd_create timerfd_gettime timerfd_settime timer_getoverrun timer_gettime timer_settime \
times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimes \
vfork vmsplice wait4 waitid waitpid write writev arch_prctl modify_ldt";

/// runtime-tools' default profile: SCMP_ACT_ERRNO by default, the list above.
fn runtime_tools_profile() -> Value {
    let names: Vec<&str> = RUNTIME_TOOLS_ALLOW.split_whitespace().collect();
    let clone_ns: u64 = 0x7E02_0000; // CLONE_NEW{NS,UTS,IPC,USER,PID,NET,CGROUP}
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": clone_ns, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    })
}

fn out3(out: &std::process::Output) -> (i32, String, String) {
    triple(out)
}

/// Item 20: with the OCI suite's allow-list (no close_range), the container
/// starts with noNewPrivileges false and true, as root and as a user, and
/// `exec` works under it too. On main this failed with "Fds: EPERM".
#[test]
fn oci_suite_allow_list_needs_none_of_vessels_syscalls() {
    require_root();
    for nnp in [false, true] {
        for user in [0, 1000] {
            let mut b = Bundle::new(&["sh", "-c", "echo hello; id -u; cd / && ls >/dev/null"]);
            b.spec["process"]["noNewPrivileges"] = json!(nnp);
            b.spec["process"]["user"] = json!({"uid": user, "gid": user});
            b.spec["linux"]["seccomp"] = runtime_tools_profile();
            b.write();
            let (code, out, err) = Runtime::new().run_bundle(&b);
            assert_eq!(
                code, 0,
                "nnp {nnp} user {user}\nstdout: {out}\nstderr: {err}"
            );
            assert_eq!(out, format!("hello\n{user}\n"), "nnp {nnp} user {user}");
        }
        // exec into a running container under the same profile.
        let mut b = Bundle::new(&["sleep", "30"]);
        b.spec["process"]["noNewPrivileges"] = json!(nnp);
        b.spec["linux"]["seccomp"] = runtime_tools_profile();
        b.write();
        let rt = Runtime::new();
        let id = unique_id("ocilist");
        rt.create_ok(&b, &id);
        rt.ok(&["start", &id]);
        let out = rt.run(&[
            "exec",
            "--user",
            "1000:1000",
            &id,
            "sh",
            "-c",
            "echo from-exec",
        ]);
        let (code, o, e) = out3(&out);
        let _ = rt.run(&["delete", "-f", &id]);
        assert_eq!(code, 0, "exec, nnp {nnp}\nstdout: {o}\nstderr: {e}");
        assert_eq!(o, "from-exec\n");
    }
}

/// A static program that reports how clone3, faccessat2 (both newer than the
/// runtime-tools list) and ptrace (older, not allowed) fail.
const ERRNO_PROBE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static int e(long rc) { return rc < 0 ? errno : 0; }
int main(void) {
    int a = e(syscall(435, 0, 0));          /* clone3 */
    int b = e(syscall(439, -1, "", 0, 0));  /* faccessat2 */
    int c = e(syscall(101, 0, 0, 0, 0));    /* ptrace */
    printf("clone3=%d faccessat2=%d ptrace=%d\n", a, b, c);
    return 0;
}
"#;

/// Item 26: a syscall newer than every syscall the profile names fails with
/// ENOSYS (libc then falls back to the older call), as under runc; an older
/// syscall the profile does not allow still gets the default action.
#[test]
fn syscalls_newer_than_the_profile_fail_with_enosys() {
    require_root();
    let b = Bundle::new(&["/errno-probe"]);
    let src = b.dir.join("errno-probe.c");
    std::fs::write(&src, ERRNO_PROBE_C).expect("write probe source");
    let gcc = Command::new("gcc")
        .args(["-static", "-O0", "-o"])
        .arg(b.rootfs().join("errno-probe"))
        .arg(&src)
        .output();
    match gcc {
        Ok(o) if o.status.success() => {}
        other => {
            skip(&format!(
                "cannot build a static test program with gcc: {other:?}"
            ));
            return;
        }
    }
    for nnp in [false, true] {
        let mut b2 = Bundle {
            dir: b.dir.clone(),
            spec: b.spec.clone(),
        };
        b2.spec["process"]["noNewPrivileges"] = json!(nnp);
        b2.spec["linux"]["seccomp"] = runtime_tools_profile();
        b2.write();
        let (code, out, err) = Runtime::new().run_bundle(&b2);
        // b2 shares b's directory: keep it for the next round.
        std::mem::forget(b2);
        assert_eq!(code, 0, "nnp {nnp}\nstdout: {out}\nstderr: {err}");
        assert_eq!(
            out,
            format!(
                "clone3={} faccessat2={} ptrace={}\n",
                libc::ENOSYS,
                libc::ENOSYS,
                libc::EPERM
            ),
            "nnp {nnp}"
        );
    }
}

/// runc's "runc run [seccomp] (startContainer hook)": the hook runs in the
/// container after `start` and under the container's filter, so a hook that
/// calls a killed syscall fails the start with a clear message.
#[test]
fn start_container_hook_runs_under_the_filter() {
    require_root();
    for nnp in [true, false] {
        let mut b = Bundle::new(&["/bin/true"]);
        b.spec["process"]["noNewPrivileges"] = json!(nnp);
        b.spec["process"]["rlimits"] = json!([{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]);
        b.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        });
        b.spec["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}
        ]});
        b.write();
        let (code, out, err) = Runtime::new().run_bundle(&b);
        assert_ne!(
            code, 0,
            "nnp {nnp}: the hook's mkdir was not killed\n{out}\n{err}"
        );
        assert!(
            err.contains("error running startContainer hook") || err.contains("error running hook"),
            "nnp {nnp}: {err}"
        );
        assert!(err.contains("bad system call"), "nnp {nnp}: {err}");
        assert!(!b.rootfs().join("dev/shm/foo").exists());
    }
}

/// A seccomp agent on a fresh socket: accepts one connection, then answers
/// every notification with SECCOMP_USER_NOTIF_FLAG_CONTINUE (the call runs
/// as if not notified) until the container is gone. Returns the socket path
/// and a handle giving (containerProcessState, notified syscall numbers).
/// What the agent thread returns: the containerProcessState it received and
/// the numbers of the syscalls it was notified of.
type AgentResult = std::thread::JoinHandle<Option<(Value, Vec<i32>)>>;

fn continuing_agent() -> (std::path::PathBuf, AgentResult) {
    let sock = scratch_dir().join(format!("{}.sock", unique_id("agent")));
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let h = std::thread::spawn(move || {
        listener.set_nonblocking(false).ok()?;
        let (stream, _) = listener.accept().ok()?;
        let (state, fd) = libvessel::isolation::seccomp::recv_listener_message(&stream).ok()?;
        let mut seen = Vec::new();
        loop {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 30_000) };
            if n <= 0 || pfd.revents & libc::POLLIN == 0 {
                break;
            }
            // SAFETY: zeroed kernel structs, filled by the ioctls.
            unsafe {
                let mut req: libc::seccomp_notif = std::mem::zeroed();
                if libc::ioctl(
                    fd.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                    &mut req,
                ) != 0
                {
                    continue;
                }
                seen.push(req.data.nr);
                let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
                resp.id = req.id;
                resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
                libc::ioctl(
                    fd.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                    &mut resp,
                );
            }
        }
        Some((state, seen))
    });
    (sock, h)
}

fn notify_bundle(args: &[&str], nnp: bool, sock: &std::path::Path, names: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.spec["process"]["noNewPrivileges"] = json!(nnp);
    b.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "bar",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    });
    b.write();
    b
}

/// runc's "SCMP_ACT_NOTIFY important syscalls": notifying the calls a
/// runtime makes itself must not hang `run`, with no_new_privs on or off.
/// On main `run` hung (the listener reached the agent only after the init
/// had blocked in a notified call).
#[test]
fn notify_of_important_syscalls_does_not_hang() {
    require_root();
    for nnp in [false, true] {
        let (sock, agent) = continuing_agent();
        let b = notify_bundle(
            &["/bin/true"],
            nnp,
            &sock,
            &["execve", "openat", "open", "read", "close"],
        );
        let rt = Runtime::new();
        let id = unique_id("notify-imp");
        let out = run_with_timeout(
            rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]),
            Duration::from_secs(40),
        );
        let (code, o, e) = out3(&out);
        let _ = rt.run(&["delete", "-f", &id]);
        assert_eq!(code, 0, "nnp {nnp}\nstdout: {o}\nstderr: {e}");
        assert!(
            wait_for(Duration::from_secs(40), || agent.is_finished()),
            "agent did not finish"
        );
        let (state, seen) = agent
            .join()
            .expect("agent")
            .expect("agent got the listener");
        let _ = std::fs::remove_file(&sock);
        assert_eq!(state["metadata"], "bar", "{state}");
        // At least the workload's own execve was notified and answered.
        assert!(seen.contains(&(libc::SYS_execve as i32)), "{seen:?}");
    }
}

/// Notifying `write` works in vessel: the container's writes reach the
/// agent, which lets them run. (runc refuses SCMP_ACT_NOTIFY on write since
/// its init writes to a pipe before its parent has the listener; vessel's
/// init never does: it refuses only send, sendto and sendmsg.)
#[test]
fn notify_of_write_is_answered_by_the_agent() {
    require_root();
    if !is_vessel() {
        skip("runc refuses SCMP_ACT_NOTIFY for write (see docs/compat.md)");
        return;
    }
    for nnp in [false, true] {
        let (sock, agent) = continuing_agent();
        let b = notify_bundle(&["sh", "-c", "echo written"], nnp, &sock, &["write"]);
        let rt = Runtime::new();
        let id = unique_id("notify-write");
        let out = run_with_timeout(
            rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]),
            Duration::from_secs(40),
        );
        let (code, o, e) = out3(&out);
        let _ = rt.run(&["delete", "-f", &id]);
        assert_eq!(code, 0, "nnp {nnp}\nstdout: {o}\nstderr: {e}");
        assert_eq!(o, "written\n");
        assert!(wait_for(Duration::from_secs(40), || agent.is_finished()));
        let (_, seen) = agent
            .join()
            .expect("agent")
            .expect("agent got the listener");
        let _ = std::fs::remove_file(&sock);
        assert!(seen.contains(&(libc::SYS_write as i32)), "{seen:?}");
    }
    // The calls vessel hands the listener over with are refused up front.
    let sock = scratch_dir().join(format!("{}.sock", unique_id("agent")));
    let _ = std::fs::remove_file(&sock);
    let _listener = UnixListener::bind(&sock).expect("bind agent socket");
    let b = notify_bundle(&["/bin/true"], false, &sock, &["sendmsg"]);
    let (code, _, err) = Runtime::new().run_bundle(&b);
    let _ = std::fs::remove_file(&sock);
    assert_ne!(code, 0);
    assert!(
        err.contains("SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall"),
        "{err}"
    );
}

/// A notify profile whose agent socket is missing (or abstract) fails
/// `create` at once with a clear error, and leaves nothing behind.
#[test]
fn missing_listener_socket_fails_create_cleanly() {
    require_root();
    let gone = scratch_dir().join(format!("{}.sock", unique_id("no-agent")));
    for path in [gone.to_str().unwrap(), "@mysocketishere", ""] {
        let b = notify_bundle(
            &["/bin/true"],
            false,
            std::path::Path::new(path),
            &["mkdir"],
        );
        let rt = Runtime::new();
        let id = unique_id("no-agent");
        let out = rt.create(&b, &id, &[]);
        let (code, o, e) = out3(&out);
        assert_ne!(code, 0, "{path:?}: create succeeded\n{o}\n{e}");
        assert!(
            e.contains("listenerPath") || e.contains("seccomp agent"),
            "{path:?}: {e}"
        );
        if path.starts_with('/') {
            assert!(e.contains("failed to connect with seccomp agent"), "{e}");
        }
        if is_vessel() {
            assert_nothing_left(&rt, &id, &b);
        }
        let _ = rt.run(&["delete", "-f", &id]);
    }
}

/// The cwd is entered before privileges are dropped: a directory only root
/// can reach (0700 root) is a valid cwd for user 1000, in `run` and in
/// `exec --user` (runc does the same). On main: "chdir to cwd: EACCES".
#[test]
fn cwd_only_the_runtime_can_reach_is_entered_before_the_user_switch() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    for seccomp in [false, true] {
        let mut b = Bundle::new(&["sh", "-c", "pwd; id -u"]);
        let secret = b.rootfs().join("secret");
        std::fs::create_dir_all(&secret).expect("mkdir secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700))
            .expect("chmod secret");
        b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        b.spec["process"]["cwd"] = json!("/secret");
        if seccomp {
            b.spec["process"]["noNewPrivileges"] = json!(false);
            b.spec["linux"]["seccomp"] = runtime_tools_profile();
        }
        b.write();
        let (code, out, err) = Runtime::new().run_bundle(&b);
        assert_eq!(code, 0, "seccomp {seccomp}\nstdout: {out}\nstderr: {err}");
        assert_eq!(out, "/secret\n1000\n", "seccomp {seccomp}");

        let mut b = Bundle::new(&["sleep", "30"]);
        let secret = b.rootfs().join("secret");
        std::fs::create_dir_all(&secret).expect("mkdir secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700))
            .expect("chmod secret");
        if seccomp {
            b.spec["process"]["noNewPrivileges"] = json!(false);
            b.spec["linux"]["seccomp"] = runtime_tools_profile();
        }
        b.write();
        let rt = Runtime::new();
        let id = unique_id("cwd-exec");
        rt.create_ok(&b, &id);
        rt.ok(&["start", &id]);
        let out = rt.run(&[
            "exec",
            "--user",
            "1000:1000",
            "--cwd",
            "/secret",
            &id,
            "sh",
            "-c",
            "pwd; id -u",
        ]);
        let (code, o, e) = out3(&out);
        let _ = rt.run(&["delete", "-f", &id]);
        assert_eq!(code, 0, "exec, seccomp {seccomp}\nstdout: {o}\nstderr: {e}");
        assert_eq!(o, "/secret\n1000\n");
    }
}
