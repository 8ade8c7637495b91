//! The parent side of container creation: clone the init (directly, or
//! through an intermediate process when namespaces must be joined), put it
//! in its cgroup, write its id maps, run the hooks it asks for, and turn an
//! error record from the child into a message with context.

use crate::cgroups::Cgroup;
use crate::process::child;
use crate::process::plan::{InitPlan, Step};
use crate::process::sync::{self, Kind, Msg};
use crate::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use crate::process::maps::IdMaps;

pub struct Spawned {
    pub pid: i32,
}

pub struct Callbacks<'a> {
    /// createRuntime/prestart/createContainer hooks, with the init's pid.
    pub run_hooks: &'a mut dyn FnMut(i32) -> Result<()>,
    /// State JSON handed to startContainer hooks, with the init's pid.
    pub hook_state: &'a mut dyn FnMut(i32) -> Vec<u8>,
    /// Hand the seccomp listener fd to the agent, with the init's pid. Called
    /// as soon as the fd arrives: the init goes on under a filter whose
    /// notified calls only the agent can answer.
    pub seccomp_listener: &'a mut dyn FnMut(i32, RawFd) -> Result<()>,
    /// The init's pid, as soon as it is known and before the init can block
    /// on anything (create records it, so `delete -f` finds the init even
    /// if create dies from here on).
    pub on_pid: &'a mut dyn FnMut(i32) -> Result<()>,
}

/// Kills and reaps a half-made child (an init, an exec'd process or a
/// setup stage) when setup fails, unless disarmed once it is handed over.
pub struct Reaper(i32);

impl Reaper {
    pub fn new(pid: i32) -> Self {
        Reaper(pid)
    }

    /// Watch `pid` instead (the stage that made it was reaped).
    pub fn set(&mut self, pid: i32) {
        self.0 = pid;
    }

    /// The child is handed over: leave it alone.
    pub fn disarm(&mut self) {
        self.0 = 0;
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// clone(2) like fork (no new stack, SIGCHLD to the parent) with `flags`
/// added: the pid in the parent, 0 in the child, -1 with errno set. A bare
/// syscall (no allocation, no lock): callable from a cloned child too.
pub fn sys_clone(flags: libc::c_int) -> libc::c_long {
    // SAFETY: a fork-like clone (no new stack): the child runs on a copy of
    // our address space; callers run only async-signal-safe code in it.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

/// The runtime's cwd moved onto the rootfs for the clone of an init that
/// cannot reach the rootfs by path (`InitPlan::rootfs_dir`): the kernel
/// moves a cwd into the copy of the mount tree a new mount namespace gets,
/// so the init starts with the rootfs as its cwd. Dropping it (in the
/// parent, right after the clone) puts the runtime's own cwd back.
struct RootfsCwd(Option<OwnedFd>);

impl RootfsCwd {
    fn enter(rootfs_dir: RawFd) -> Result<RootfsCwd> {
        if rootfs_dir < 0 {
            return Ok(RootfsCwd(None));
        }
        let here =
            std::fs::File::open(".").map_err(Error::io("open", std::path::Path::new(".")))?;
        // SAFETY: fchdir on an fd the plan owns.
        if unsafe { libc::fchdir(rootfs_dir) } < 0 {
            return Err(Error::sys("enter the rootfs")(nix::errno::Errno::last()));
        }
        Ok(RootfsCwd(Some(OwnedFd::from(here))))
    }
}

impl Drop for RootfsCwd {
    fn drop(&mut self) {
        if let Some(here) = &self.0 {
            // SAFETY: fchdir back to the directory we saved.
            unsafe { libc::fchdir(here.as_raw_fd()) };
        }
    }
}

fn raw_clone(flags: libc::c_int) -> Result<i32> {
    let pid = sys_clone(flags);
    if pid < 0 {
        return Err(Error::sys("clone the container init")(
            nix::errno::Errno::last(),
        ));
    }
    Ok(pid as i32)
}

pub fn spawn_init(
    plan: &InitPlan,
    cgroup: Option<&Cgroup>,
    maps: Option<&IdMaps>,
    mut cb: Callbacks,
) -> Result<Spawned> {
    let (psock, csock) = sync::socketpair()?;
    // SAFETY: psock is ours; OwnedFd closes it on every return path.
    let psock_owned = unsafe { OwnedFd::from_raw_fd(psock) };
    // Allocated before the clone: the child only writes into it.
    let mut hook_buf = vec![0u8; plan.hook_state_capacity];
    let two = plan.ns.needs_two_stages();
    let cwd = RootfsCwd::enter(plan.rootfs_dir)?;
    let pid = raw_clone(clone_flags(plan, two))?;
    if pid == 0 {
        child_side(plan, psock, csock, two, &mut hook_buf);
    }
    drop(cwd);
    // SAFETY: closing the child's end in the parent.
    unsafe { libc::close(csock) };
    let mut reaper = Reaper::new(pid);
    if let Some(cg) = cgroup {
        cg.add_task(pid)?;
    }
    let init = if two {
        let init = init_from_intermediate(plan, psock, pid, maps)?;
        reaper.set(init);
        // The intermediate forks the init as soon as its namespaces are
        // set, usually before we moved it above: the init would stay in
        // the caller's cgroup (Podman on v2: the root cgroup, with an empty
        // container cgroup that pause and limits act on). Place the init
        // itself; it waits for Go, so nothing ran there yet, and its
        // cgroup namespace (made after Go) gets the right root.
        if let Some(cg) = cgroup {
            cg.add_task(init)?;
        }
        init
    } else {
        if plan.new_userns {
            if let Some(maps) = maps {
                write_maps(pid, maps)?;
            }
        }
        pid
    };
    set_oom_score_adj(plan, init)?;
    (cb.on_pid)(init)?;
    sync::send(psock, &Msg::new(Kind::Go));
    serve_until_ready(plan, psock, init, &mut cb)?;
    drop(psock_owned);
    reaper.disarm();
    Ok(Spawned { pid: init })
}

/// The namespaces the clone itself creates: none when an intermediate
/// process makes them (it must join others first); never the cgroup and
/// time namespaces, which the init makes later.
fn clone_flags(plan: &InitPlan, two_stages: bool) -> libc::c_int {
    if two_stages {
        0
    } else {
        plan.ns.create & !(libc::CLONE_NEWCGROUP | libc::CLONE_NEWTIME)
    }
}

/// The cloned child: the intermediate process or the init itself. Runs
/// only async-signal-safe code until exec.
fn child_side(plan: &InitPlan, psock: RawFd, csock: RawFd, two: bool, hook_buf: &mut [u8]) -> ! {
    // No child may keep the state lock alive (see container::lock).
    crate::container::lock::close_inherited();
    // SAFETY: closing the parent's end in the child.
    unsafe { libc::close(psock) };
    if two {
        child::intermediate_main(plan, csock, hook_buf);
    }
    child::init_main(plan, csock, hook_buf);
}

/// Two stages: answer the intermediate's request for id maps until it
/// reports the init's pid, then reap it.
fn init_from_intermediate(
    plan: &InitPlan,
    psock: RawFd,
    pid: i32,
    maps: Option<&IdMaps>,
) -> Result<i32> {
    let mut init = None;
    while init.is_none() {
        match sync::recv(psock) {
            Some(m) if m.kind == Kind::NeedMaps as u32 => {
                if let Some(maps) = maps {
                    write_maps(pid, maps)?;
                }
                sync::send(psock, &Msg::new(Kind::MapsDone));
            }
            Some(m) if m.kind == Kind::InitPid as u32 => init = Some(m.index),
            Some(m) if m.kind == Kind::Error as u32 => return Err(child_error(plan, &m)),
            _ => return Err(exited_during_setup()),
        }
    }
    // SAFETY: reaping the intermediate, which exits right away.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let init = init.unwrap_or(0);
    if init <= 0 {
        return Err(Error::Other(format!(
            "container init: the intermediate process reported pid {init}"
        )));
    }
    Ok(init)
}

fn set_oom_score_adj(plan: &InitPlan, init: i32) -> Result<()> {
    if let Some(adj) = plan.process.oom_score_adj {
        let path = format!("/proc/{init}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(Error::io("write", &path))?;
    }
    Ok(())
}

/// After Go: run the hooks the init asks for and take its seccomp listener,
/// until it reports Ready (answered with the startContainer hooks' state).
fn serve_until_ready(plan: &InitPlan, psock: RawFd, init: i32, cb: &mut Callbacks) -> Result<()> {
    loop {
        match sync::recv(psock) {
            Some(m) if m.kind == Kind::RunHooks as u32 => {
                (cb.run_hooks)(init)?;
                sync::send(psock, &Msg::new(Kind::HooksDone));
            }
            Some(m) if m.kind == Kind::SeccompFd as u32 => {
                let fd = sync::recv_fd(psock).ok_or_else(|| {
                    Error::Other("receive the seccomp listener fd from the init".into())
                })?;
                // SAFETY: a fresh fd from SCM_RIGHTS that we now own.
                let listener = unsafe { OwnedFd::from_raw_fd(fd) };
                (cb.seccomp_listener)(init, listener.as_raw_fd())?;
            }
            Some(m) if m.kind == Kind::Ready as u32 => {
                if plan.hook_state_capacity > 0 {
                    let mut state = (cb.hook_state)(init);
                    state.truncate(plan.hook_state_capacity);
                    sync::send_bytes(psock, &state);
                }
                return Ok(());
            }
            Some(m) if m.kind == Kind::Error as u32 => return Err(child_error(plan, &m)),
            _ => return Err(exited_during_setup()),
        }
    }
}

fn exited_during_setup() -> Error {
    Error::Other("container init exited during setup".into())
}

fn write_maps(pid: i32, maps: &IdMaps) -> Result<()> {
    crate::process::maps::write(pid, maps)
}

fn lossy(c: &std::ffi::CStr) -> String {
    c.to_string_lossy().into_owned()
}

/// Turn the child's (step, index, errno) into a message naming the object.
pub fn child_error(plan: &InitPlan, m: &Msg) -> Error {
    let idx = m.index.max(0) as usize;
    let errno = nix::errno::Errno::from_raw(m.errno);
    let what = match Step::from_u32(m.step) {
        Some(Step::ExecNotFound) => {
            return Error::InvalidInput(process_step(&plan.process, m).unwrap_or_default());
        }
        Some(Step::MountNotDir) => return mount_not_on_a_directory(plan, idx),
        Some(
            step @ (Step::Mount
            | Step::MountMkdir
            | Step::MountOpen
            | Step::MountRemount
            | Step::MountPropagation),
        ) => mount_step(plan, step, idx),
        Some(s) => setup_step(plan, s, m)
            .or_else(|| process_step(&plan.process, m))
            .unwrap_or_else(|| format!("{s:?}")),
        None => format!("step {}", m.step),
    };
    Error::Sys {
        what: format!("container init: {what}"),
        source: errno,
    }
}

/// A filesystem mount whose destination in the rootfs is a symlink or a file.
fn mount_not_on_a_directory(plan: &InitPlan, idx: usize) -> Error {
    let m2 = plan.mounts.get(idx);
    let fstype = m2.map(|x| lossy(&x.fstype)).unwrap_or_default();
    Error::InvalidInput(format!(
        "container init: mount {fstype} at /{}: filesystem {fstype:?} must be mounted \
         on an ordinary directory (the rootfs has a symlink or a file there)",
        m2.map(|x| lossy(&x.dest)).unwrap_or_default()
    ))
}

/// Which part of mount `idx` failed, with its destination, source and type.
fn mount_step(plan: &InitPlan, step: Step, idx: usize) -> String {
    let m2 = plan.mounts.get(idx);
    let verb = match step {
        Step::MountMkdir => "create the mount point",
        Step::MountOpen => "open the mount point",
        Step::MountRemount => "remount",
        Step::MountPropagation => "set propagation",
        _ => "mount",
    };
    format!(
        "{verb} of mount /{} (source {}, type {})",
        m2.map(|x| lossy(&x.dest)).unwrap_or_default(),
        m2.map(|x| lossy(&x.source)).unwrap_or_default(),
        m2.map(|x| lossy(&x.fstype)).unwrap_or_default()
    )
}

/// The container set-up steps other than mounts (devices, masked and
/// read-only paths, sysctls, the rootfs, namespaces to join); None for the
/// process's own steps.
fn setup_step(plan: &InitPlan, step: Step, m: &Msg) -> Option<String> {
    let idx = m.index.max(0) as usize;
    Some(match step {
        Step::Device => format!(
            "create device /{}",
            plan.devices
                .get(idx)
                .map(|d| lossy(&d.dest))
                .unwrap_or_default()
        ),
        Step::MaskPath => format!(
            "mask path {}",
            plan.masked.get(idx).map(|d| lossy(d)).unwrap_or_default()
        ),
        Step::ReadonlyPath => format!(
            "make {} read-only",
            plan.readonly.get(idx).map(|d| lossy(d)).unwrap_or_default()
        ),
        Step::Sysctl if m.index < 0 => {
            "open the container's /proc/sys (is procfs mounted at /proc?)".to_string()
        }
        Step::Sysctl => format!(
            "write sysctl /proc/sys/{}",
            plan.sysctls
                .get(idx)
                .map(|d| lossy(&d.0))
                .unwrap_or_default()
        ),
        Step::DevReadonly => "make /dev read-only".to_string(),
        Step::HidePaths => format!(
            "detach the host's {} before MS_MOVE (--no-pivot)",
            plan.hide_on_no_pivot
                .get(idx)
                .map(|d| lossy(d))
                .unwrap_or_default()
        ),
        Step::OpenRootfs if m.errno == libc::ELOOP => format!(
            "open rootfs {}: a symlink is on its path (it was replaced after validation?)",
            lossy(&plan.rootfs)
        ),
        Step::Setns => format!(
            "join namespace {}",
            plan.ns
                .join
                .get(idx)
                .map(|j| lossy(&j.path))
                .unwrap_or_default()
        ),
        _ => return None,
    })
}

/// What a failed step of the process itself was (the executable, cwd, user,
/// limits, terminal), in the same words for the init and for exec (runc's
/// where runc has them); None for the steps that set up a container.
pub fn process_step(p: &crate::process::plan::ProcessParts, m: &Msg) -> Option<String> {
    Some(match Step::from_u32(m.step)? {
        Step::ExecNotFound => format!(
            "exec: {:?}: executable file not found in $PATH",
            p.argv.first().map(|a| lossy(a)).unwrap_or_default()
        ),
        Step::Chdir => format!(
            "chdir to cwd ({:?}) set in config.json failed",
            lossy(&p.cwd)
        ),
        Step::Setuid => format!("setuid {}", p.user.uid),
        Step::Setgid => format!("setgid {}", p.user.gid),
        Step::Setgroups => format!("setgroups {:?}", p.user.groups),
        Step::Rlimit => format!("setrlimit #{}", m.index),
        Step::Console => format!("set up the terminal (step {})", m.index),
        _ => return None,
    })
}

/// Used by `exec`: expose the raw clone for a process joining a container.
pub fn clone_process(flags: libc::c_int) -> Result<i32> {
    let pid = raw_clone(flags)?;
    if pid == 0 {
        crate::container::lock::close_inherited();
    }
    Ok(pid)
}

pub fn close(fd: RawFd) {
    // SAFETY: closing an fd the caller owns.
    unsafe { libc::close(fd) };
}
