//! Start the workload: PATH lookup (as runc does it), then fork and exec
//! with the spec's user, groups, umask, rlimits, cwd, environment,
//! capabilities, no_new_privs and seccomp profile (`confine`), its stdio on
//! pipes the agent relays.

use super::confine::{self, Confinement};
use super::enter::Enter;
use super::handshake;
use super::spec::{Linux, Process};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A set-up failure with the exit code it maps to: 127 not found,
/// 126 not executable, 125 anything else (libkrun's and Docker's choice).
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

impl Failure {
    pub fn other(msg: impl Into<String>) -> Failure {
        Failure {
            code: 125,
            msg: msg.into(),
        }
    }
    fn from_errno(what: &str, errno: i32) -> Failure {
        let code = match errno {
            libc::ENOENT | libc::ENOTDIR => 127,
            libc::EACCES | libc::ENOEXEC | libc::EPERM | libc::EISDIR => 126,
            _ => 125,
        };
        Failure {
            code,
            msg: format!("{what}: {}", std::io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Resolve args[0] against the PATH of the process's own environment.
pub fn resolve(arg0: &str, env: &[String]) -> Result<String, Failure> {
    if arg0.is_empty() {
        return Err(Failure::other("process.args is empty"));
    }
    if arg0.contains('/') {
        return Ok(arg0.to_owned());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = format!("{dir}/{arg0}");
        match std::fs::metadata(&cand) {
            Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => return Ok(cand),
            Ok(md) if !md.is_dir() => {
                denied.get_or_insert(cand);
            }
            _ => {}
        }
    }
    match denied {
        Some(c) => Err(Failure {
            code: 126,
            msg: format!("exec: {c:?}: permission denied"),
        }),
        None => Err(Failure {
            code: 127,
            msg: format!("exec: {arg0:?}: executable file not found in $PATH"),
        }),
    }
}

/// The agent's ends of the workload's stdio: three pipes, or with a
/// terminal the pty master (stdout, and a duplicate as stdin; no stderr:
/// the workload's stderr is the terminal too).
pub struct Workload {
    pub pid: i32,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: Option<OwnedFd>,
    /// The pty master's descriptor (the same as `stdout`) when the workload
    /// has a terminal, for window sizes.
    pub tty: Option<RawFd>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Failure> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Failure::other(format!(
            "pipe2: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstring(s: &str, what: &str) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| Failure::other(format!("{what} {s:?} contains a NUL byte")))
}

/// Which step failed in the child (sent back over the error pipe); the
/// steps of `confine` follow these.
const STEPS: &[&str] = &[
    "setrlimit",
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "exec",
    "dup2",
    "setsid",
    "TIOCSCTTY",
];
const STEP_SETRLIMIT: usize = 0;
const STEP_SETGROUPS: usize = 1;
const STEP_SETGID: usize = 2;
const STEP_SETUID: usize = 3;
const STEP_CHDIR: usize = 4;
const STEP_EXEC: usize = 5;
const STEP_DUP2: usize = 6;
const STEP_SETSID: usize = 7;
const STEP_CTTY: usize = 8;
/// The first of `confine`'s steps.
pub const STEP_CONFINE_FIRST: usize = STEPS.len();

/// The name of a step the child reported.
fn step_name(step: usize) -> &'static str {
    STEPS
        .iter()
        .chain(confine::STEP_NAMES)
        .nth(step)
        .copied()
        .unwrap_or("setup")
}

/// Everything the child uses between fork and exec, built (and allocated)
/// before the fork.
struct Prepared {
    path_c: CString,
    /// Own the strings `argv` and `envp` point into.
    _argv_c: Vec<CString>,
    _envp_c: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd_c: CString,
    limits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    groups: Vec<libc::gid_t>,
    uid: libc::uid_t,
    gid: libc::gid_t,
    umask: Option<u32>,
    confinement: Confinement,
}

/// The workload's ends of its stdio and the agent's: pipes, or the pty.
struct Stdio {
    /// What the child dups onto 0, 1 and 2.
    child: [RawFd; 3],
    /// Closed in the agent once the child has them.
    child_ends: Vec<OwnedFd>,
    agent: Workload,
}

fn pipes() -> Result<Stdio, Failure> {
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok(Stdio {
        child: [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        child_ends: vec![in_r, out_w, err_w],
        agent: Workload {
            pid: 0,
            stdin: Some(in_w),
            stdout: out_r,
            stderr: Some(err_r),
            tty: None,
        },
    })
}

/// How long the agent waits for a child's set-up: the workload's mounts
/// the rootfs over virtio-fs (slow under an emulated CPU), an exec only
/// joins namespaces.
const CREATE_TIMEOUT_MS: i32 = 120_000;
const JOIN_TIMEOUT_MS: i32 = 20_000;

/// Called once the child is set up and before it execs, with its pid and
/// its pty master (the agent sets the first window size there and, for
/// the workload, opens its namespaces for later execs).
pub type OnReady<'a> = dyn FnMut(i32, Option<RawFd>) -> Result<(), Failure> + 'a;

/// Fork a child that gets into the container (`enter`), resolves the
/// executable there and, with a terminal (`tty` is Some(clear ONLCR)),
/// opens its pty from the container's devpts; then exec it with the
/// process's rules. Its stdio is pipes, or the pty's slave as its
/// controlling terminal.
pub fn start(
    p: &Process,
    linux: Option<&Linux>,
    seccomp_extra_flags: &[String],
    enter: &Enter,
    tty: Option<bool>,
    on_ready: &mut OnReady,
) -> Result<Workload, Failure> {
    let confinement = confine::prepare(p, linux, seccomp_extra_flags)?;
    let stdio = match tty {
        None => Some(pipes()?),
        Some(_) => None,
    };
    let (sock, child_sock) = handshake::pair()?;
    let (what, timeout) = match enter {
        Enter::Create(_) => {
            crate::enter::new_pid_namespace_for_children()?;
            ("the workload", CREATE_TIMEOUT_MS)
        }
        Enter::Join(_) => ("the exec", JOIN_TIMEOUT_MS),
    };

    // SAFETY: the agent is single-threaded, so the child may allocate and
    // run the set-up code between fork and exec (no other thread can hold
    // a lock); it ends in execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Failure::other(format!(
            "fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        drop(sock);
        let pipe_fds = stdio.as_ref().map(|s| s.child);
        child_main(p, confinement, enter, tty, pipe_fds, child_sock.as_raw_fd());
    }
    drop(child_sock);
    let agent_stdio = stdio.map(|s| {
        drop(s.child_ends);
        s.agent
    });
    let give_up = |f: Failure| {
        // SAFETY: kill and reap our own child, which has not exec'd.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        f
    };
    let master = handshake::await_ready(&sock, timeout, what).map_err(give_up)?;
    let workload = match (agent_stdio, master) {
        (Some(agent), _) => agent,
        (None, Some(master)) => terminal_ends(master).map_err(give_up)?,
        (None, None) => {
            return Err(give_up(Failure::other(format!(
                "{what}: no pty master from its set-up"
            ))))
        }
    };
    on_ready(pid, workload.tty).map_err(give_up)?;
    handshake::send_go(&sock).map_err(give_up)?;
    if let Some((step, errno)) = read_child_failure(sock) {
        let mut status = 0;
        // SAFETY: reaping our own child that has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(step_failure(p, step, errno));
    }
    Ok(Workload { pid, ..workload })
}

/// The agent's ends of a terminal: the master for output, a duplicate
/// for input.
fn terminal_ends(master: OwnedFd) -> Result<Workload, Failure> {
    let writer = master
        .try_clone()
        .map_err(|e| Failure::other(format!("dup the pty master: {e}")))?;
    let raw = master.as_raw_fd();
    Ok(Workload {
        pid: 0,
        stdin: Some(writer),
        stdout: master,
        stderr: None,
        tty: Some(raw),
    })
}

/// The forked child: into the container, ready, then exec on the agent's
/// go. Set-up failures go to the agent as a message; exec-time ones as
/// (step, errno).
fn child_main(
    p: &Process,
    confinement: Confinement,
    enter: &Enter,
    tty: Option<bool>,
    pipe_fds: Option<[RawFd; 3]>,
    sock: RawFd,
) -> ! {
    let set_up = || -> Result<(Prepared, Option<crate::tty::Pty>), Failure> {
        crate::enter::enter(enter)?;
        let prep = prepare(p, confinement)?;
        let pty = match tty {
            Some(clear_onlcr) => Some(crate::tty::open(clear_onlcr).map_err(Failure::other)?),
            None => None,
        };
        if let (Some(pty), Enter::Create(_)) = (&pty, enter) {
            crate::tty::bind_console(pty).map_err(Failure::other)?;
        }
        Ok((prep, pty))
    };
    let (prep, pty) = match set_up() {
        Ok(ready) => ready,
        Err(f) => {
            handshake::send_failed(sock, &f);
            // SAFETY: ends the child without running the agent's exit code.
            unsafe { libc::_exit(f.code) }
        }
    };
    let (fds, ctty, slave) = match (pty, pipe_fds) {
        (Some(pty), _) => {
            let sent = handshake::send_ready(sock, Some(pty.master.as_raw_fd()));
            // The workload must not hold its own master.
            drop(pty.master);
            if sent.is_err() {
                // SAFETY: as above.
                unsafe { libc::_exit(125) }
            }
            let s = pty.slave.as_raw_fd();
            ([s; 3], s, Some(pty.slave))
        }
        (None, Some(fds)) => {
            if handshake::send_ready(sock, None).is_err() {
                // SAFETY: as above.
                unsafe { libc::_exit(125) }
            }
            (fds, -1, None)
        }
        (None, None) => {
            // SAFETY: as above.
            unsafe { libc::_exit(125) }
        }
    };
    if !handshake::wait_go(sock) {
        // SAFETY: as above.
        unsafe { libc::_exit(125) }
    }
    // The slave stays open (it is fds[0..3] and the controlling terminal)
    // until execve dups it; it closes on exec.
    let _slave = slave;
    exec_in_child(&prep, fds, ctty, sock);
}

/// Resolve the executable and turn the spec's process into C data.
fn prepare(p: &Process, confinement: Confinement) -> Result<Prepared, Failure> {
    let arg0 = p.args.first().map(String::as_str).unwrap_or("");
    let path = resolve(arg0, &p.env)?;
    let path_c = cstring(&path, "executable path")?;
    let argv_c = cstrings(&p.args, "argument")?;
    let envp_c = cstrings(&p.env, "environment entry")?;
    let argv = null_terminated(&argv_c);
    let envp = null_terminated(&envp_c);
    let cwd = if p.cwd.is_empty() {
        "/"
    } else {
        p.cwd.as_str()
    };
    let cwd_c = cstring(cwd, "cwd")?;
    let limits = rlimits(p)?;
    Ok(Prepared {
        path_c,
        _argv_c: argv_c,
        _envp_c: envp_c,
        argv,
        envp,
        cwd_c,
        limits,
        groups: p.user.additional_gids.clone(),
        uid: p.user.uid,
        gid: p.user.gid,
        umask: p.user.umask,
        confinement,
    })
}

fn cstrings(items: &[String], what: &str) -> Result<Vec<CString>, Failure> {
    items.iter().map(|s| cstring(s, what)).collect()
}

/// The pointer array execve wants: one pointer per string, then NULL.
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    ptrs
}

fn rlimits(p: &Process) -> Result<Vec<(libc::__rlimit_resource_t, libc::rlimit)>, Failure> {
    let mut limits = Vec::new();
    for r in &p.rlimits {
        let res = vessel_common::rlimits::resource(&r.kind)
            .ok_or_else(|| Failure::other(format!("unknown rlimit {:?}", r.kind)))?;
        limits.push((
            res,
            libc::rlimit {
                rlim_cur: r.soft,
                rlim_max: r.hard,
            },
        ));
    }
    Ok(limits)
}

/// The forked child: set up and exec, or report the failed step and errno
/// on the status pipe and exit 127. Async-signal-safe: it only reads
/// `prep` (no allocation, no locks). `ctty` (or -1) becomes the controlling
/// terminal of its new session.
///
/// The order after the stdio is libvessel's init's (runc's): rlimits, the
/// cwd entered as root (retried as the user on EACCES/EPERM), the bounding
/// set, the user (groups, gid, uid, umask), the capability sets and
/// ambient set, no_new_privs, then the seccomp filter right before execve.
fn exec_in_child(prep: &Prepared, fds: [RawFd; 3], ctty: RawFd, status_fd: RawFd) -> ! {
    // SAFETY: child side of the fork; every pointer refers to data prepared
    // before the fork.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if libc::setsid() < 0 {
            child_fail(status_fd, STEP_SETSID);
        }
        if ctty >= 0 && libc::ioctl(ctty, libc::TIOCSCTTY, 0) < 0 {
            child_fail(status_fd, STEP_CTTY);
        }
        for (target, fd) in fds.iter().enumerate() {
            if libc::dup2(*fd, target as RawFd) < 0 {
                child_fail(status_fd, STEP_DUP2);
            }
        }
        for (res, lim) in &prep.limits {
            if libc::setrlimit(*res, lim) != 0 {
                child_fail(status_fd, STEP_SETRLIMIT);
            }
        }
        // The cwd while still root; one only the user can reach is retried
        // once the user is set.
        let chdir_as_user = libc::chdir(prep.cwd_c.as_ptr()) != 0;
        if chdir_as_user && !matches!(*libc::__errno_location(), libc::EACCES | libc::EPERM) {
            child_fail(status_fd, STEP_CHDIR);
        }
        let c = &prep.confinement;
        if let Err((step, errno)) = confine::in_child_before_user(c) {
            child_fail_errno(status_fd, step, errno);
        }
        if libc::setgroups(prep.groups.len(), prep.groups.as_ptr()) != 0 {
            child_fail(status_fd, STEP_SETGROUPS);
        }
        if libc::setgid(prep.gid) != 0 {
            child_fail(status_fd, STEP_SETGID);
        }
        if libc::setuid(prep.uid) != 0 {
            child_fail(status_fd, STEP_SETUID);
        }
        if let Some(m) = prep.umask {
            libc::umask(m as libc::mode_t);
        }
        if let Err((step, errno)) = confine::in_child_after_user(c) {
            child_fail_errno(status_fd, step, errno);
        }
        if chdir_as_user && libc::chdir(prep.cwd_c.as_ptr()) != 0 {
            child_fail(status_fd, STEP_CHDIR);
        }
        if let Err((step, errno)) = confine::in_child_load_filter(c) {
            child_fail_errno(status_fd, step, errno);
        }
        libc::execve(prep.path_c.as_ptr(), prep.argv.as_ptr(), prep.envp.as_ptr());
        child_fail(status_fd, STEP_EXEC);
    }
}

/// In the child: write (step, errno) to the status pipe and exit 127.
fn child_fail(status_fd: RawFd, step: usize) -> ! {
    // SAFETY: reads this thread's errno slot, always valid.
    let errno = unsafe { *libc::__errno_location() };
    child_fail_errno(status_fd, step, errno)
}

/// `child_fail` with the errno a call returned.
fn child_fail_errno(status_fd: RawFd, step: usize, errno: i32) -> ! {
    // SAFETY: writes a stack buffer to a pipe we own and exits; both
    // async-signal-safe.
    unsafe {
        let msg = [step as i32, errno];
        libc::write(status_fd, msg.as_ptr().cast(), std::mem::size_of_val(&msg));
        libc::_exit(127);
    }
}

/// The status pipe closes on exec (O_CLOEXEC): no bytes means success,
/// eight bytes are the child's (step, errno).
fn read_child_failure(status_r: OwnedFd) -> Option<(usize, i32)> {
    let mut buf = [0u8; 8];
    let mut f = std::fs::File::from(status_r);
    let n = std::io::Read::read(&mut f, &mut buf).unwrap_or(0);
    if n != 8 {
        return None;
    }
    let step = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some((step, errno))
}

/// The failure for a step the child reported: exec keeps its not found /
/// not executable exit code, every other step is 125.
fn step_failure(p: &Process, step: usize, errno: i32) -> Failure {
    let name = step_name(step);
    let what = match name {
        "exec" => format!(
            "exec {:?}",
            p.args.first().map(String::as_str).unwrap_or("")
        ),
        "chdir" => format!("chdir {:?}", if p.cwd.is_empty() { "/" } else { &p.cwd }),
        other => other.to_owned(),
    };
    let mut fail = Failure::from_errno(&what, errno);
    if name != "exec" {
        fail.code = 125;
    }
    fail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_finds_executables_on_the_process_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(resolve("sh", &env).unwrap().ends_with("/sh"));
        assert_eq!(resolve("./x", &env).unwrap(), "./x");
        let err = resolve("no-such-program-here", &env).unwrap_err();
        assert_eq!(err.code, 127);
        assert!(err.msg.contains("not found in $PATH"));
        assert_eq!(resolve("", &env).unwrap_err().code, 125);
    }

    #[test]
    fn resolve_reports_a_non_executable_match() {
        let dir = std::env::temp_dir().join(format!("vessel-agent-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plain"), b"data").unwrap();
        let env = vec![format!("PATH={}", dir.display())];
        assert_eq!(resolve("plain", &env).unwrap_err().code, 126);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errno_maps_to_docker_exit_codes() {
        assert_eq!(Failure::from_errno("x", libc::ENOENT).code, 127);
        assert_eq!(Failure::from_errno("x", libc::EACCES).code, 126);
        assert_eq!(Failure::from_errno("x", libc::EIO).code, 125);
    }
}
