//! OCI hooks run by vessel itself (createRuntime, prestart, createContainer,
//! poststart, poststop). Each gets the container state on stdin and must
//! finish within its timeout.

use crate::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run hooks in order; the first failure stops the rest.
/// `join_pid`: enter that process's namespaces first (createContainer).
pub fn run(kind: &str, hooks: &[Hook], state_json: &str, join_pid: Option<i32>) -> Result<()> {
    for h in hooks {
        run_one(kind, h, state_json, join_pid)?;
    }
    Ok(())
}

fn run_one(kind: &str, h: &Hook, state_json: &str, join_pid: Option<i32>) -> Result<()> {
    let path = h.path();
    let mut cmd = hook_command(h);
    if let Some(pid) = join_pid {
        enter_container_before_exec(&mut cmd, kind, path, pid)?;
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("{kind} hook {}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let status = wait_within_timeout(&mut child, kind, h)?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(Error::Other(format!(
            "{kind} hook {} failed: {status}{}{}",
            path.display(),
            if err.is_empty() { "" } else { ": " },
            err.trim()
        )));
    }
    Ok(())
}

/// The hook's path, argv (args[0] as its argv[0]) and only its own
/// environment; the state goes on stdin, stderr is kept for the error.
fn hook_command(h: &Hook) -> Command {
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Have the hook join the namespaces of `pid` that differ from ours and
/// start in its root, before it execs.
fn enter_container_before_exec(
    cmd: &mut Command,
    kind: &str,
    path: &std::path::Path,
    pid: i32,
) -> Result<()> {
    // The init's cwd is its rootfs (it chdirs there before asking for
    // the hooks): the hook starts there, as runc's do, never in the
    // host's / (which is where setns(mnt) leaves it).
    let cwd = std::fs::File::open(format!("/proc/{pid}/cwd")).map_err(|e| {
        Error::Other(format!(
            "{kind} hook {}: open the container's root: {e}",
            path.display()
        ))
    })?;
    let fds = namespaces_to_join(pid);
    // SAFETY: pre_exec runs in the forked child: only setns(2) on fds
    // opened before the fork, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            use std::os::fd::AsRawFd;
            for f in &fds {
                libc::setns(f.as_raw_fd(), 0);
            }
            if libc::fchdir(cwd.as_raw_fd()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// The namespaces of `pid` that are not ours, opened, in the order to join
/// them (user first, mount last).
fn namespaces_to_join(pid: i32) -> Vec<std::fs::File> {
    let mut fds = Vec::new();
    for ns in ["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"] {
        let p = format!("/proc/{pid}/ns/{ns}");
        let same =
            std::fs::read_link(&p).ok() == std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
        if same {
            continue;
        }
        if let Ok(f) = std::fs::File::open(&p) {
            fds.push(f);
        }
    }
    fds
}

/// Wait for the hook; past its timeout (if it has one) kill it and fail.
fn wait_within_timeout(
    child: &mut std::process::Child,
    kind: &str,
    h: &Hook,
) -> Result<std::process::ExitStatus> {
    let path = h.path();
    let limit = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(st),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Other(format!(
                    "{kind} hook {}: wait: {e}",
                    path.display()
                )))
            }
        }
        if limit.is_some_and(|l| start.elapsed() > l) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Other(format!(
                "{kind} hook {}: timed out after {}s",
                path.display(),
                limit.map(|l| l.as_secs()).unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
