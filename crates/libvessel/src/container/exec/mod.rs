//! `exec`: run one more process in a running container.
//!
//! The process description comes from `--process` (an OCI process object) or
//! from the container's own `process` with the command-line overrides, as
//! runc builds it. Then: a first child joins the init's namespaces (user
//! first) and forks the real process with CLONE_PARENT, so a joined pid or
//! time namespace applies to it and vessel can wait for it. vessel moves it
//! into the container's cgroup before letting it go on; the process stays
//! non-dumpable (CVE-2019-5736) and ends in `child::exec_process` (user,
//! capabilities, no_new_privs, cwd check, fd closing, seccomp last, execve).

use crate::container::state::{Sandbox, State, Status};
use crate::isolation::caps::errno;
use crate::process::child::{self, fail};
use crate::process::plan::{ProcessParts, Step};
use crate::process::spawn::{self, Reaper};
use crate::process::sync::{self, Kind, Msg};
use crate::{Error, Result};
use libc::c_int;
use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

mod process;
#[cfg(test)]
mod tests;

use process::{check_terminal, fill_defaults};
pub use process::{home_of, process_json, MAX_USER_DB};

/// What the command line asked for (runc's exec flags).
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub id: String,
    /// A file holding an OCI process object (replaces args and overrides).
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    /// "uid[:gid]"
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub preserve_fds: i32,
    pub ignore_paused: bool,
    /// `--cgroup`: sub-cgroup(s) to join ("sub" or "ctrl[,ctrl]:sub").
    pub cgroup: Vec<String>,
}

/// Everything the two child stages read, prepared before the clone.
struct ExecPlan {
    /// Namespace fds of the init with their CLONE_NEW* type, user first.
    ns: Vec<(RawFd, c_int)>,
    process: ProcessParts,
    /// Where the pty master goes (terminal), or -1.
    console_socket: RawFd,
    preserve_fds: i32,
}

/// Run the process; returns vessel's exit code (the process's status in the
/// foreground, 0 when detached).
pub fn exec(root: &Path, opts: &ExecOptions) -> Result<i32> {
    // Read the state under the lock and hold it until the init's namespaces
    // are open and the init checked: the fds pin what the process joins. It
    // is released before the process starts, which may wait on a frozen
    // cgroup (`--ignore-paused`) that only a `resume` (taking the lock) thaws.
    let (dir, lock, st) = super::load_locked(root, &opts.id)?;
    if st.sandbox == Sandbox::Vm {
        drop(lock);
        return exec_in_vm(&dir, &st, opts);
    }
    check_status(&st, &dir, opts)?;
    let st = with_exec_cgroup(st, opts)?;
    let bundle = crate::spec::read_bundle(&st.bundle)?;
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let (parts, terminal) = exec_process_parts(&bundle, &linux, &st, opts)?;

    let ns_files = open_namespaces(&st.namespaces)?;
    // The namespaces were opened by /proc/<pid>: only the container's init
    // if that pid still is it (a reused pid would be another process's).
    if !st.init_alive() {
        return Err(Error::WrongState(
            "cannot exec in a stopped container".into(),
        ));
    }
    drop(lock);
    let (console_child, console_peer) = console_sockets(terminal, opts, &dir)?;
    let plan = ExecPlan {
        ns: ns_files.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect(),
        process: parts,
        console_socket: console_child.as_ref().map(|c| c.as_raw_fd()).unwrap_or(-1),
        preserve_fds: opts.preserve_fds,
    };

    let signals = block_relayed_signals(opts.detach)?;
    let unblock = |signals: &Option<(SigSet, SignalFd)>| {
        if let Some((set, _)) = signals {
            let _ = set.thread_unblock();
        }
    };
    let started = start_process(&plan, &st, &dir, console_peer.as_ref(), &linux);
    drop(console_child);
    drop(ns_files);
    let (pid, master) = match started {
        Ok(x) => x,
        Err(e) => {
            unblock(&signals);
            return Err(e);
        }
    };
    if let Some(pf) = &opts.pid_file {
        if let Err(e) = super::create::write_pid_file(pf, pid) {
            // SAFETY: killing the process we just started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unblock(&signals);
            return Err(e);
        }
    }
    let Some((set, sfd)) = signals else {
        return Ok(0);
    };
    let code = super::run::wait_loop(pid, &sfd, master.as_ref().map(|m| m.as_raw_fd()));
    let _ = set.thread_unblock();
    Ok(code)
}

/// VM mode: the agent runs the process in the guest; vessel relays for it
/// (`vm::exec`). Refused before anything starts: a VM that is not running,
/// `--cgroup` (the guest has no host cgroups), `--preserve-fds`.
fn exec_in_vm(dir: &Path, st: &State, opts: &ExecOptions) -> Result<i32> {
    check_status(st, dir, opts)?;
    let refuse = |what: &str| {
        Err(Error::invalid(format!(
            "container {}: exec {what} is not supported in VM mode",
            opts.id
        )))
    };
    if !opts.cgroup.is_empty() {
        return refuse("--cgroup");
    }
    if opts.preserve_fds > 0 {
        return refuse("--preserve-fds");
    }
    let bundle = crate::spec::read_bundle(&st.bundle)?;
    // Defaults such as HOME come from the guest's own files, which the
    // host cannot read: the process gets what the command line and the
    // container's process give.
    let mut pjson = process_json(&bundle.raw["process"], opts)?;
    let terminal = pjson["terminal"].as_bool().unwrap_or(false);
    check_terminal(terminal, opts.detach, opts.console_socket.is_some())?;
    if terminal {
        // A foreground exec relays to vessel's own terminal: like container
        // mode's, its pty keeps `\n` as is.
        pjson["vesselClearOnlcr"] = serde_json::Value::Bool(opts.console_socket.is_none());
    }
    crate::vm::exec::run(
        dir,
        &pjson,
        &crate::vm::exec::Stand {
            detach: opts.detach,
            pid_file: opts.pid_file.as_deref(),
            console_socket: opts.console_socket.as_deref(),
            terminal,
        },
    )
}

/// Only in a container that is running (or paused with `--ignore-paused`).
fn check_status(st: &State, dir: &Path, opts: &ExecOptions) -> Result<()> {
    match st.live_status(dir) {
        Status::Stopped => {
            return Err(Error::WrongState(
                "cannot exec in a stopped container".into(),
            ))
        }
        Status::Paused if !opts.ignore_paused => {
            return Err(Error::WrongState(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ))
        }
        Status::Creating => {
            return Err(Error::WrongState(
                "cannot exec in a container that is still being created".into(),
            ))
        }
        _ => {}
    }
    Ok(())
}

/// The state with the cgroup the process joins.
fn with_exec_cgroup(st: State, opts: &ExecOptions) -> Result<State> {
    // `--cgroup`: the process joins a sub-cgroup instead (checked here,
    // before anything starts).
    Ok(match (&st.cgroup, opts.cgroup.is_empty()) {
        (Some(cg), false) => {
            let sub = cg.for_exec_sub(&opts.cgroup)?;
            State {
                cgroup: Some(sub),
                ..st
            }
        }
        (None, false) => return Err(Error::invalid("exec --cgroup: the container has no cgroup")),
        _ => st,
    })
}

/// The process to run, prepared for the child; and whether it has a
/// terminal.
fn exec_process_parts(
    bundle: &crate::spec::Bundle,
    linux: &oci_spec::runtime::Linux,
    st: &State,
    opts: &ExecOptions,
) -> Result<(ProcessParts, bool)> {
    let container_process = bundle.raw["process"].clone();
    let mut pjson = process_json(&container_process, opts)?;
    fill_defaults(&mut pjson, &container_process, st.pid)?;
    let process: oci_spec::runtime::Process =
        serde_json::from_value(pjson).map_err(|e| Error::invalid(format!("exec process: {e}")))?;
    let terminal = process.terminal().unwrap_or(false);
    check_terminal(terminal, opts.detach, opts.console_socket.is_some())?;
    let mut parts = ProcessParts::from_process(
        &process,
        linux.seccomp().as_ref(),
        &bundle.seccomp_extra_flags,
    )?;
    // Foreground with a terminal: vessel relays the pty itself.
    parts.clear_onlcr = terminal && opts.console_socket.is_none();
    parts.fill_pointers();
    Ok((parts, terminal))
}

/// The console: the caller's socket, or (foreground) our own pair whose
/// other end receives the master for the relay. Returns (the child's end,
/// our end).
fn console_sockets(
    terminal: bool,
    opts: &ExecOptions,
    dir: &Path,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    Ok(if !terminal {
        (None, None)
    } else if let Some(path) = &opts.console_socket {
        let s = std::os::unix::net::UnixStream::connect(path)
            .map_err(Error::io("connect console socket", path))?;
        (Some(OwnedFd::from(s)), None)
    } else {
        let (a, b) = std::os::unix::net::UnixStream::pair()
            .map_err(Error::io("socketpair for console", dir))?;
        (Some(OwnedFd::from(a)), Some(OwnedFd::from(b)))
    })
}

/// Foreground: block the relayed signals before the clone so none is
/// lost; the child clears its mask.
fn block_relayed_signals(detach: bool) -> Result<Option<(SigSet, SignalFd)>> {
    if detach {
        return Ok(None);
    }
    let set = super::run::relayed_signals();
    set.thread_block().map_err(Error::sys("block signals"))?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(Error::sys("signalfd"))?;
    Ok(Some((set, sfd)))
}

/// Open /proc/<init>/ns/* as recorded in the state ("type:path"), user first.
fn open_namespaces(list: &[String]) -> Result<Vec<(OwnedFd, c_int)>> {
    let mut out = Vec::new();
    for entry in list {
        let (kind, path) = entry
            .split_once(':')
            .ok_or_else(|| Error::Other(format!("state: bad namespace entry {entry:?}")))?;
        let flag = match kind {
            "user" => libc::CLONE_NEWUSER,
            "mnt" => libc::CLONE_NEWNS,
            "uts" => libc::CLONE_NEWUTS,
            "ipc" => libc::CLONE_NEWIPC,
            "net" => libc::CLONE_NEWNET,
            "pid" => libc::CLONE_NEWPID,
            "cgroup" => libc::CLONE_NEWCGROUP,
            "time" => libc::CLONE_NEWTIME,
            o => return Err(Error::Other(format!("state: unknown namespace type {o:?}"))),
        };
        let f = std::fs::File::open(path).map_err(Error::io("open namespace", path))?;
        out.push((OwnedFd::from(f), flag));
    }
    // Joining the user namespace first grants the rights to join the rest;
    // the mount namespace last, since it changes our root.
    out.sort_by_key(|(_, f)| match *f {
        libc::CLONE_NEWUSER => 0,
        libc::CLONE_NEWNS => 2,
        _ => 1,
    });
    Ok(out)
}

/// Clone, join, move into the cgroup, let it exec. Returns the pid and, for
/// a foreground terminal, the pty master.
fn start_process(
    plan: &ExecPlan,
    st: &super::state::State,
    dir: &Path,
    console_peer: Option<&OwnedFd>,
    linux: &oci_spec::runtime::Linux,
) -> Result<(i32, Option<OwnedFd>)> {
    let (psock, csock) = sync::socketpair()?;
    // SAFETY: psock is ours; OwnedFd closes it on every return path.
    let psock_owned = unsafe { OwnedFd::from_raw_fd(psock) };
    let stage1 = spawn::clone_process(0)?;
    if stage1 == 0 {
        spawn::close(psock);
        join_and_fork(plan, csock);
    }
    spawn::close(csock);
    let mut stage1_reaper = Reaper::new(stage1);
    let pid = match sync::recv(psock) {
        Some(m) if m.kind == Kind::InitPid as u32 => m.index,
        Some(m) if m.kind == Kind::Error as u32 => return Err(child_error(plan, &m)),
        _ => return Err(Error::Other("exec: the setup process exited early".into())),
    };
    // SAFETY: reaping the first stage, which exits right after the fork.
    unsafe { libc::waitpid(stage1, std::ptr::null_mut(), 0) };
    stage1_reaper.disarm();
    let mut reaper = Reaper::new(pid);
    if let Some(adj) = plan.process.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(Error::io("write", &path))?;
    }
    if let Some(cg) = &st.cgroup {
        cg.join_exec(pid, st.pid)?;
    }
    sync::send(psock, &Msg::new(Kind::Go));
    let mut master = None;
    if let Some(peer) = console_peer {
        // None: the child failed before sending it; its error follows.
        if let Some(fd) = sync::recv_fd(peer.as_raw_fd()) {
            // SAFETY: a fresh fd from SCM_RIGHTS that we own.
            master = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    // EOF on the socket means execve happened (it is close-on-exec) or the
    // process died; an error record means setup failed.
    loop {
        match sync::recv(psock) {
            Some(m) if m.kind == Kind::SeccompFd as u32 => {
                let fd = sync::recv_fd(psock)
                    .ok_or_else(|| Error::Other("exec: receive the seccomp listener fd".into()))?;
                // SAFETY: a fresh fd from SCM_RIGHTS that we own.
                let listener = unsafe { OwnedFd::from_raw_fd(fd) };
                let sc = linux.seccomp().clone().unwrap_or_default();
                if let Some(path) = sc.listener_path() {
                    crate::isolation::seccomp::send_listener(
                        &path.to_string_lossy(),
                        listener.as_raw_fd(),
                        st.oci_json(dir).to_string().as_bytes(),
                        sc.listener_metadata().as_deref().unwrap_or(""),
                    )?;
                }
            }
            Some(m) if m.kind == Kind::Error as u32 => return Err(child_error(plan, &m)),
            Some(_) => {}
            None => break,
        }
    }
    drop(psock_owned);
    if plan.console_socket >= 0 && console_peer.is_some() && master.is_none() {
        return Err(Error::Other("exec: receive the pty master".into()));
    }
    reaper.disarm();
    Ok((pid, master))
}

/// First stage, in the child: join the namespaces, fork the process.
fn join_and_fork(plan: &ExecPlan, sock: RawFd) -> ! {
    crate::process::child::reset_signal_dispositions();
    // SAFETY: prctl and sigprocmask with plain arguments and a stack set.
    unsafe {
        // CVE-2019-5736: nothing in the container may open our /proc/<pid>/exe.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    for (i, (fd, flag)) in plan.ns.iter().enumerate() {
        // SAFETY: fd is a namespace fd opened by the parent.
        if unsafe { libc::setns(*fd, *flag) } < 0 {
            fail(sock, Step::Setns, i as i32, errno());
        }
    }
    // A joined pid (or time) namespace applies to children only.
    child::fork_sibling(sock);
    run_process(plan, sock)
}

/// Second stage: wait until vessel put us in the cgroup, set up the
/// terminal and limits, then the shared exec tail.
fn run_process(plan: &ExecPlan, sock: RawFd) -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    match sync::recv(sock) {
        Some(m) if m.kind == Kind::Go as u32 => {}
        _ => fail(sock, Step::Sync, 0, libc::EPIPE),
    }
    if plan.console_socket >= 0 {
        open_console(plan, sock);
    }
    child::set_rlimits(&plan.process, sock);
    child::exec_process(&plan.process, sock, plan.preserve_fds, |_| {})
}

/// A pty from the container's devpts (we are in its mount namespace now):
/// the master goes to the console socket, the slave becomes our stdio and
/// controlling terminal.
fn open_console(plan: &ExecPlan, sock: RawFd) {
    // SAFETY: open(2) of a constant path.
    let master = unsafe {
        libc::open(
            c"/dev/pts/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        fail(sock, Step::Console, 0, errno());
    }
    let slave = child::send_pty(master, &plan.process, plan.console_socket, sock);
    child::make_controlling_terminal(slave, sock);
}

/// An error record from the child as a message in runc's words.
fn child_error(plan: &ExecPlan, m: &Msg) -> Error {
    let why = nix::errno::Errno::from_raw(m.errno).desc().to_lowercase();
    let what = match (
        Step::from_u32(m.step),
        spawn::process_step(&plan.process, m),
    ) {
        (Some(Step::ExecNotFound), Some(what)) => what,
        (_, Some(what)) => format!("{what}: {why}"),
        (Some(Step::Setns), None) => format!("join namespace #{}: {why}", m.index),
        (Some(s), None) => format!("{s:?}: {why}"),
        (None, None) => format!("step {}: {why}", m.step),
    };
    Error::Other(format!("unable to start container process: {what}"))
}
