//! `exec` into real containers: output and exit codes, the flags, --process,
//! detached with a pid file, a tty through --console-socket, paused
//! containers, namespaces, cgroup and fds of the joined process. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test exec` checks the
//! tests themselves against runc.

mod common;

use common::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

/// A running container (`sleep 1000`) and its runtime; deleted on drop.
struct Running {
    rt: Runtime,
    id: String,
    _bundle: Bundle,
}

impl Running {
    fn start() -> Running {
        let b = Bundle::new(&["sleep", "1000"]);
        let rt = Runtime::new();
        let id = unique_id("exec");
        let (code, _, err) =
            triple(&rt.run_detached(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]));
        assert_eq!(code, 0, "run -d failed: {err}");
        Running { rt, id, _bundle: b }
    }

    /// `exec <flags> ID <cmd>` -> (code, stdout, stderr).
    fn exec(&self, flags: &[&str], cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.push(&self.id);
        args.extend_from_slice(cmd);
        if flags.contains(&"-d") {
            return triple(&self.rt.run_detached(&args));
        }
        triple(&self.rt.run(&args))
    }

    fn init_pid(&self) -> i32 {
        self.rt.state(&self.id)["pid"].as_i64().unwrap() as i32
    }
}

#[test]
fn foreground_exec_returns_output_and_status() {
    require_root();
    let c = Running::start();
    let (code, out, err) = c.exec(&[], &["sh", "-c", "echo hello-exec; exit 3"]);
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out, "hello-exec\n");
    let (code, _, _) = c.exec(&[], &["sh", "-c", "kill -9 $$"]);
    assert_eq!(
        code,
        128 + 9,
        "killed by SIGKILL is 137 as a shell reports it"
    );
    let (code, _, err) = c.exec(&[], &["true"]);
    assert_eq!(code, 0, "stderr: {err}");
}

#[test]
fn exec_failures_exit_255_with_a_reason() {
    require_root();
    let c = Running::start();
    let (code, _, err) = c.exec(&[], &["no-such-binary"]);
    assert_eq!(code, 255);
    assert!(err.contains("executable file not found"), "stderr: {err}");
    let (code, _, err) = c.exec(&["-d"], &["no-such-binary"]);
    assert_eq!(code, 255, "a detached exec that cannot start fails too");
    assert!(err.contains("no-such-binary"), "stderr: {err}");
    let (code, _, err) = c.exec(&["--cwd", "/no/such/dir"], &["true"]);
    assert_eq!(code, 255);
    assert!(err.contains("/no/such/dir"), "stderr: {err}");
    assert!(
        c.rt.log_text().contains("exec failed"),
        "{}",
        c.rt.log_text()
    );
    let (code, _, err) = c.exec(&["-d", "-t"], &["true"]);
    assert_eq!(code, 255);
    assert!(err.contains("console socket"), "stderr: {err}");
}

#[test]
fn env_cwd_user_and_groups() {
    require_root();
    let c = Running::start();
    let (code, out, err) = c.exec(
        &[
            "-e",
            "FOO=bar",
            "-e",
            "PATH=/bin:/sbin",
            "--cwd",
            "/tmp",
            "-u",
            "1000:1001",
            "--additional-gids",
            "5",
        ],
        &[
            "sh",
            "-c",
            "echo $FOO; echo $PATH; pwd; id -u; id -g; id -G",
        ],
    );
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "bar");
    assert_eq!(
        lines[1], "/bin:/sbin",
        "a later -e wins over the spec's PATH"
    );
    assert_eq!(lines[2], "/tmp");
    assert_eq!(lines[3], "1000");
    assert_eq!(lines[4], "1001");
    assert!(
        lines[5].split_whitespace().any(|g| g == "5"),
        "groups: {}",
        lines[5]
    );
    // A uid alone keeps the container's gid (0 in the template).
    let (code, out, _) = c.exec(&["-u", "1000"], &["sh", "-c", "id -u; id -g"]);
    assert_eq!(code, 0);
    assert_eq!(out, "1000\n0\n");
    // The container's env is the base; HOME is filled in.
    let (_, out, _) = c.exec(&[], &["env"]);
    assert!(out.lines().any(|l| l == "HOME=/root"), "env: {out}");
    assert!(out.lines().any(|l| l.starts_with("PATH=")), "env: {out}");
}

fn cap_eff(status: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff line");
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn cap_flag_adds_a_capability() {
    require_root();
    const SYS_ADMIN: u64 = 1 << 21;
    let c = Running::start();
    let (_, plain, _) = c.exec(&[], &["cat", "/proc/self/status"]);
    assert_eq!(
        cap_eff(&plain) & SYS_ADMIN,
        0,
        "template has no CAP_SYS_ADMIN"
    );
    let (code, with, err) = c.exec(&["--cap", "CAP_SYS_ADMIN"], &["cat", "/proc/self/status"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_ne!(cap_eff(&with) & SYS_ADMIN, 0);
    assert_eq!(
        cap_eff(&with) & !SYS_ADMIN,
        cap_eff(&plain),
        "the container's capabilities stay"
    );
    let (_, nnp, _) = c.exec(
        &["--no-new-privs"],
        &["grep", "NoNewPrivs", "/proc/self/status"],
    );
    assert!(nnp.contains('1'), "{nnp}");
}

#[test]
fn process_json_replaces_the_command_line() {
    require_root();
    let c = Running::start();
    let p = c.rt.root.with_extension("process.json");
    std::fs::write(
        &p,
        json!({
            "args": ["sh", "-c", "echo A=$A; pwd; id -u; grep NoNewPrivs /proc/self/status"],
            "env": ["A=1", "PATH=/bin"],
            "cwd": "/etc",
            "user": {"uid": 65534, "gid": 65534},
            "noNewPrivileges": true,
            "terminal": false
        })
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = c.exec(&["--process", p.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&p);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "A=1");
    assert_eq!(lines[1], "/etc");
    assert_eq!(lines[2], "65534");
    assert!(lines[3].ends_with('1'), "{out}");
}

#[test]
fn detached_exec_writes_the_pid_file() {
    require_root();
    let c = Running::start();
    let pf = c.rt.root.with_extension("exec.pid");
    let (code, out, err) = c.exec(
        &["-d", "--pid-file", pf.to_str().unwrap()],
        &["sleep", "300"],
    );
    assert_eq!(code, 0, "stdout: {out} stderr: {err}");
    let pid: i32 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&pf);
    assert!(pid_alive(pid), "exec'd pid {pid} should run");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x00300\x00");
    // Same pid namespace as the init.
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap();
    assert_eq!(ns(pid), ns(c.init_pid()));
    // SAFETY: kill(2) of the process we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn exec_joins_pid_namespace_and_cgroup() {
    require_root();
    let c = Running::start();
    let (code, out, err) = c.exec(
        &[],
        &[
            "sh",
            "-c",
            "ps; echo ---; cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup; echo ---; hostname",
        ],
    );
    assert_eq!(code, 0, "stderr: {err}");
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    assert!(
        parts[0]
            .lines()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains("sleep 1000")),
        "the container's init is pid 1 in exec's pid namespace: {}",
        parts[0]
    );
    assert_eq!(
        parts[1], parts[2],
        "exec'd process is in the init's cgroups"
    );
    let host_init_cgroup =
        std::fs::read_to_string(format!("/proc/{}/cgroup", c.init_pid())).unwrap();
    assert_ne!(parts[1].trim(), "", "{out}");
    assert!(!host_init_cgroup.is_empty());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(parts[3].trim(), hostname.trim(), "uts namespace joined");
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_process() {
    require_root();
    let c = Running::start();
    let (code, out, err) = c.exec(&[], &["ls", "/proc/self/fd"]);
    assert_eq!(code, 0, "stderr: {err}");
    let fds: Vec<&str> = out.split_whitespace().collect();
    // 3 is ls's own handle on /proc/self/fd.
    assert_eq!(fds, ["0", "1", "2", "3"], "fds: {out}");

    let data = c.rt.root.with_extension("preserved");
    std::fs::write(&data, "preserved-data").unwrap();
    let file = std::fs::File::open(&data).unwrap();
    // Well above 3, so dup2 really makes a new (inheritable) fd 3: dup2 of
    // fd 3 onto itself would keep its close-on-exec flag.
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd.
    let raw = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 20) };
    let mut cmd = c.rt.cmd(&[
        "exec",
        "--preserve-fds",
        "1",
        &c.id,
        "sh",
        "-c",
        "cat <&3; ls /proc/self/fd",
    ]);
    // SAFETY: dup2 in the forked child before exec, on an fd we own.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let _ = std::fs::remove_file(&data);
    drop(file);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("preserved-data"), "{text}");
    let fds: Vec<&str> = text["preserved-data".len()..].split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3", "4"], "{text}");
}

/// Read a pty master until the other side closes.
fn read_pty(master: OwnedFd, limit: Duration) -> String {
    let mut f = std::fs::File::from(master);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the slave side is closed.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(all);
    });
    String::from_utf8_lossy(&rx.recv_timeout(limit).unwrap_or_default()).into_owned()
}

#[test]
fn tty_through_console_socket() {
    require_root();
    let c = Running::start();
    let sock_path = c.rt.root.with_extension("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut cmd = c.rt.cmd(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        sock_path.to_str().unwrap(),
        &c.id,
        "sh",
        "-c",
        "echo tty-ok; tty; sleep 0.3",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let fd = libvessel::process::sync::recv_fd(conn.as_raw_fd()).expect("a pty master fd");
    // SAFETY: a fresh fd from SCM_RIGHTS that we own.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&sock_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read_pty(master, Duration::from_secs(10));
    assert!(text.contains("tty-ok"), "pty output: {text:?}");
    assert!(text.contains("/dev/pts/"), "stdin is the pty: {text:?}");
}

#[test]
fn paused_container_refuses_exec_unless_ignore_paused() {
    require_root();
    let c = Running::start();
    c.rt.ok(&["pause", &c.id]);
    let (code, _, err) = c.exec(&[], &["true"]);
    assert_eq!(code, 255);
    assert!(err.contains("paused"), "stderr: {err}");
    // With --ignore-paused the process joins the frozen cgroup and runs once
    // the container is resumed.
    let mut cmd =
        c.rt.cmd(&["exec", "--ignore-paused", &c.id, "echo", "after-resume"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.rt.ok(&["resume", &c.id]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("exec --ignore-paused finishes after resume")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after-resume\n");
}

#[test]
fn stopped_container_refuses_exec() {
    require_root();
    let c = Running::start();
    c.rt.ok(&["kill", &c.id, "9"]);
    assert!(wait_for(Duration::from_secs(10), || {
        c.rt.state(&c.id)["status"] == "stopped"
    }));
    let (code, _, err) = c.exec(&[], &["true"]);
    assert_ne!(code, 0);
    assert!(err.contains("stopped"), "stderr: {err}");
}
