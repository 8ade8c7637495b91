//! `create`: validate, make the state dir and cgroup, start the init (or the
//! VMM) waiting on the exec FIFO, record the state. On any error everything
//! made so far is undone.

use crate::cgroups::Cgroup;
use crate::container::lock::Lock;
use crate::container::state::{Sandbox, State, Status, VmRecord, EXEC_FIFO};
use crate::container::{rootless, tenant_ids};
use crate::process::plan::{self, PlanInput};
use crate::process::spawn::{self, Callbacks, IdMaps};
use crate::spec::{self, Bundle};
use crate::{hooks, logging, vm, Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub(crate) mod files;
mod preflight;

use preflight::{preflight, Preflight};

pub use files::write_pid_file;
use files::{host_root_is_initramfs, make_exec_fifo, prepare_root};

pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// An already-connected console socket (foreground `run` with a tty).
    pub console_fd: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// How vessel was invoked (VM mode when "vessel-vm").
    pub argv0: String,
    /// `--cgroup-manager disabled`: create no cgroup.
    pub cgroups_disabled: bool,
    /// Driven by an engine (`--log-format json`): no tenant id range unless
    /// the config asks (`container::tenant_ids`).
    pub engine: bool,
}

/// Undo a half-made container: kill, cgroup, state dir, tenant ids.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    pid: i32,
    tenant: Option<(PathBuf, tenant_ids::TenantRange)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: killing and reaping the child we started.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
        if let Some(cg) = &self.cgroup {
            super::delete::kill_cgroup(cg);
            let _ = cg.destroy();
        }
        if let Some(d) = &self.dir {
            // A VM's network namespace gets back what it lent (nothing
            // to do without a VM).
            vm::net::restore(d);
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some((d, r)) = &self.tenant {
            let _ = tenant_ids::release(d, r);
        }
    }
}

pub fn create(root: &Path, opts: CreateOptions) -> Result<(PathBuf, State)> {
    spec::validate_id(&opts.id)?;
    let mut bundle = spec::load_bundle(&opts.bundle)?;
    if let Some(p) = bundle.spec.process() {
        crate::process::plan::check_user(p.user())?;
    }
    let Preflight {
        use_vm,
        vm_plan,
        tenant,
    } = preflight(&opts, &bundle)?;
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let cgroup = resolve_cgroup(root, &opts, &linux, use_vm)?;
    check_lsms_enabled(&bundle)?;

    let dir = make_state_dir(root, &opts.id)?;
    let mut cleanup = Cleanup {
        dir: Some(dir.clone()),
        cgroup: None,
        pid: 0,
        tenant: None,
    };
    let _lock = Lock::acquire(&dir)?;

    let mut st = initial_state(&opts, &bundle, cgroup.clone(), use_vm);
    st.vm = vm_plan.as_ref().map(|p| VmRecord {
        vcpus: p.sizing.vcpus,
        mem_mib: p.sizing.mem_mib,
    });
    // The first save comes before any cgroup or process exists, so a
    // create killed at any later point leaves a state that names what it
    // made, and `delete -f` finds it. (Killed before this save, only the
    // empty state dir exists, which `delete` removes.)
    st.save(&dir)?;
    if let Some(explicit) = tenant {
        take_tenant_range(&dir, explicit, &mut bundle, &mut st, &mut cleanup)?;
    }

    if let Some(cgroup) = &cgroup {
        setup_cgroup(cgroup, &linux, vm_plan.as_ref(), &mut cleanup)?;
    }

    let fifo = dir.join(EXEC_FIFO);
    make_exec_fifo(&fifo, &bundle.spec)?;

    let pid = if let (Some(plan), Some(cgroup)) = (&vm_plan, &cgroup) {
        launch_vm(&bundle, &dir, &fifo, cgroup, plan, &st, &opts, &mut cleanup)?
    } else {
        let pid = start_init(&bundle, &dir, &fifo, cgroup.as_ref(), &opts, &st)?;
        cleanup.pid = pid;
        pid
    };

    st.pid = pid;
    st.pid_start = crate::container::state::process_start_time(pid).unwrap_or(0);
    st.status = Status::Created;
    if !use_vm {
        st.namespaces = namespace_paths(&bundle, pid);
    }
    st.save(&dir)?;
    logging::debug(&format!(
        "container {}: created, init pid {pid} waits for start",
        opts.id
    ));
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    // Success: keep everything.
    cleanup.dir = None;
    cleanup.cgroup = None;
    cleanup.pid = 0;
    cleanup.tenant = None;
    Ok((dir, st))
}

/// The container's cgroup (not made yet), or None with
/// `--cgroup-manager disabled`.
fn resolve_cgroup(
    root: &Path,
    opts: &CreateOptions,
    linux: &oci_spec::runtime::Linux,
    use_vm: bool,
) -> Result<Option<Cgroup>> {
    // `--cgroup-manager disabled` (Podman's --cgroups=disabled): no cgroup
    // at all; the container lives in the caller's.
    if rootless::active() {
        return rootless::resolve_cgroup(root, &opts.id, linux, opts.cgroups_disabled);
    }
    if opts.cgroups_disabled {
        if use_vm {
            return Err(Error::invalid(
                "VM mode needs a cgroup for the VMM: drop --cgroup-manager disabled",
            ));
        }
        return Ok(None);
    }
    let default_path;
    let path = match linux.cgroups_path().as_ref().and_then(|p| p.to_str()) {
        Some(p) if !p.is_empty() => p,
        _ => {
            default_path = Cgroup::default_path(root, &opts.id);
            &default_path
        }
    };
    Ok(Some(Cgroup::resolve(Some(path), &opts.id)?))
}

/// An AppArmor profile or SELinux label needs that LSM on the host.
fn check_lsms_enabled(bundle: &Bundle) -> Result<()> {
    if let Some(sel) = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.apparmor_profile().clone())
    {
        if !sel.is_empty() && !Path::new("/sys/module/apparmor").exists() {
            return Err(Error::invalid(format!(
                "apparmor profile {sel:?} requested but AppArmor is not enabled on this host"
            )));
        }
    }
    if let Some(l) = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.selinux_label().clone())
    {
        if !l.is_empty() && !Path::new("/sys/fs/selinux/enforce").exists() {
            return Err(Error::invalid(format!(
                "SELinux label {l:?} requested but SELinux is not enabled on this host"
            )));
        }
    }
    Ok(())
}

/// The container's state dir, made new (mode 0700) under `root`.
fn make_state_dir(root: &Path, id: &str) -> Result<PathBuf> {
    prepare_root(root)?;
    let dir = super::state_dir(root, id);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists(id.to_string()))
        }
        Err(e) => return Err(Error::io("create state dir", &dir)(e)),
    }
    Ok(dir)
}

/// Give the container a tenant id range (`tenant_ids`): the config then
/// runs in a user namespace mapping 0..65535 to it, and the state records
/// it (saved at once, so `delete` gives it back whatever happens next).
fn take_tenant_range(
    dir: &Path,
    explicit: bool,
    bundle: &mut Bundle,
    st: &mut State,
    cleanup: &mut Cleanup,
) -> Result<()> {
    let dir = std::path::absolute(dir).map_err(Error::io("resolve", dir))?;
    let Some(range) = tenant_ids::allocate(&dir, explicit)? else {
        return Ok(());
    };
    cleanup.tenant = Some((dir.clone(), range));
    tenant_ids::apply_to_spec(&mut bundle.spec, &range)?;
    st.tenant_ids = Some(range);
    st.save(&dir)?;
    logging::debug(&format!(
        "container {}: tenant ids {}..{} (uid), {}.. (gid)",
        st.id,
        range.uid,
        u64::from(range.uid) + u64::from(tenant_ids::RANGE) - 1,
        range.gid
    ));
    Ok(())
}

/// The state as first saved: `creating`, no pid yet.
fn initial_state(
    opts: &CreateOptions,
    bundle: &Bundle,
    cgroup: Option<Cgroup>,
    use_vm: bool,
) -> State {
    let owner = crate::container::owner_name(nix::unistd::geteuid().as_raw());
    State {
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: logging::rfc3339_now(),
        owner,
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup,
        sandbox: if use_vm {
            Sandbox::Vm
        } else {
            Sandbox::Container
        },
        namespaces: Vec::new(),
        poststart: bundle
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default(),
        poststop: bundle
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default(),
        tenant_ids: None,
        vm: None,
    }
}

/// Make the cgroup (checked unused and thawed) and apply the resources and
/// the device allowlist.
fn setup_cgroup(
    cgroup: &Cgroup,
    linux: &oci_spec::runtime::Linux,
    vm_plan: Option<&vm::VmPlan>,
    cleanup: &mut Cleanup,
) -> Result<()> {
    let use_vm = vm_plan.is_some();
    // Before `cleanup.cgroup` is set: a cgroup in use is someone else's,
    // and a failed create must not remove (or empty) it.
    cgroup.check_unused()?;
    cgroup.create()?;
    cleanup.cgroup = Some(cgroup.clone());
    // A parent frozen after the check above, or already (a new child
    // of a frozen v1/v2 cgroup is frozen too).
    cgroup.check_thawed()?;
    if let Some(res) = linux.resources() {
        // The device allowlist is written below, once, for every container.
        let mut res = res.clone();
        res.set_devices(None);
        if let Some(plan) = vm_plan {
            // The limit sized guest RAM; the VMM needs its overhead on top.
            if let Some(lifted) = vm::lift_memory_limit(&mut res, plan.sizing.mem_mib) {
                logging::debug(&format!(
                    "VM mode: cgroup memory limit raised to {} MiB ({} MiB guest RAM + VMM overhead)",
                    lifted >> 20,
                    plan.sizing.mem_mib
                ));
            }
        }
        cgroup.apply(&res)?;
    }
    if rootless::active() {
        // Rootless (a delegated cgroup v2 subtree): the device program
        // cannot be loaded (BPF_PROG_QUERY/LOAD need CAP_SYS_ADMIN or
        // CAP_BPF), and is not needed: a user namespace cannot mknod, and
        // the host's device nodes bound in keep their permissions. runc
        // ignores device errors rootless too.
        logging::debug("rootless: no cgroup device program (resources.devices not enforced)");
    } else if !use_vm {
        // Only resources.devices (then runc's default devices) decides
        // device access, as in runc: a linux.devices entry creates a
        // node but grants nothing, and no rules at all means deny-all
        // plus the defaults, never the parent's allow-all. In VM mode
        // the VMM is a host process in this cgroup and needs /dev/kvm;
        // the guest's devices are virtual, so there is nothing to guard.
        let rules = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        cgroup.apply_devices(&rules)?;
    }
    Ok(())
}

fn wants_terminal(bundle: &Bundle) -> bool {
    bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// VM mode: launch the VMM, record its pid, put it in the cgroup. With
/// process.terminal, the VMM's stdio is a new host pty whose master goes
/// over the console socket (see `vm::console`).
#[allow(clippy::too_many_arguments)]
fn launch_vm(
    bundle: &Bundle,
    dir: &Path,
    fifo: &Path,
    cgroup: &Cgroup,
    plan: &vm::VmPlan,
    st: &State,
    opts: &CreateOptions,
    cleanup: &mut Cleanup,
) -> Result<i32> {
    let console = match wants_terminal(bundle) {
        true => {
            let socket = console_socket(opts, dir)?
                .ok_or_else(|| Error::invalid("process.terminal set but no console socket"))?;
            let size = bundle
                .spec
                .process()
                .as_ref()
                .and_then(crate::process::plan::console_size);
            Some((socket, vm::console::open(size)?))
        }
        false => None,
    };
    let terminal = match &console {
        Some((_, pty)) => Some(vm::Terminal {
            slave: pty
                .slave
                .try_clone()
                .map_err(Error::io("dup the pty slave", dir))?,
            relayed: opts.console_fd.is_some(),
        }),
        None => None,
    };
    let req = vm::LaunchRequest {
        terminal,
        plan,
        id: &st.id,
        bundle: &bundle.dir,
        rootfs: &bundle.rootfs,
        spec: &bundle.spec,
        state_dir: dir,
        exec_fifo: fifo,
        cgroup,
    };
    let launched = vm::launch(&req)?;
    let pid = launched.pid;
    cleanup.pid = pid;
    record_pid(st, dir, pid)?;
    vm::set_oom_score_adj(pid, &bundle.spec)?;
    cgroup.add_task(pid)?;
    // The hooks that set the container's namespaces up run on the host,
    // as runc runs them, with the VMM's pid: its network namespace is the
    // container's. Then what they made there is connected to the guest.
    if let Some(h) = bundle.spec.hooks() {
        run_vm_create_hooks(h, &state_json(st, dir, pid, "creating"))?;
    }
    launched.connect_network(dir)?;
    // Only now, with the VMM holding the slave: a failed launch sends no
    // master for a terminal nobody serves. vessel keeps no end of the pty.
    if let Some((socket, pty)) = console {
        vm::console::send_master(socket.as_raw_fd(), &pty.master)?;
    }
    Ok(pid)
}

fn namespace_paths(bundle: &Bundle, pid: i32) -> Vec<String> {
    let mut v = Vec::new();
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    for ns in linux.namespaces().iter().flatten() {
        let name = crate::isolation::namespaces::proc_name(ns.typ());
        v.push(format!("{name}:/proc/{pid}/ns/{name}"));
    }
    v
}

fn start_init(
    bundle: &Bundle,
    dir: &Path,
    fifo: &Path,
    cgroup: Option<&Cgroup>,
    opts: &CreateOptions,
    st: &State,
) -> Result<i32> {
    let fifo_fd = open_exec_fifo_path(fifo)?;
    let console = console_socket(opts, dir)?;
    let plan = plan::build(&PlanInput {
        spec: &bundle.spec,
        bundle: &bundle.dir,
        rootfs: &bundle.rootfs,
        cgroup,
        exec_fifo_fd: fifo_fd.as_raw_fd(),
        console_socket: console.as_ref().map(|c| c.as_raw_fd()).unwrap_or(-1),
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot || host_root_is_initramfs(),
        no_new_keyring: opts.no_new_keyring,
        seccomp_flags: &bundle.seccomp_extra_flags,
        mount_idmaps: &bundle.mount_idmaps,
        rootfs_idmap: st
            .tenant_ids
            .and_then(|_| tenant_ids::rootfs_idmap(&bundle.spec)),
        relay_tty: opts.console_fd.is_some(),
    })?;
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let maps = IdMaps {
        uid: plan::id_map_text(linux.uid_mappings().as_deref().unwrap_or(&[])),
        gid: plan::id_map_text(linux.gid_mappings().as_deref().unwrap_or(&[])),
    };
    let spec_hooks = bundle.spec.hooks().clone();
    let state_for = |pid: i32, status: &str| state_json(st, dir, pid, status);
    let mut run_hooks = |pid: i32| -> Result<()> {
        if let Some(h) = &spec_hooks {
            run_create_hooks(h, &state_for(pid, "creating"), pid)?;
        }
        Ok(())
    };
    let mut hook_state = |pid: i32| state_for(pid, "created").into_bytes();
    let mut seccomp_listener = |pid: i32, listener: std::os::fd::RawFd| -> Result<()> {
        send_seccomp_listener(&linux, listener, || state_for(pid, "creating"))
    };
    let mut on_pid = |pid: i32| record_pid(st, dir, pid);
    let spawned = spawn::spawn_init(
        &plan,
        cgroup,
        Some(&maps),
        Callbacks {
            run_hooks: &mut run_hooks,
            hook_state: &mut hook_state,
            seccomp_listener: &mut seccomp_listener,
            on_pid: &mut on_pid,
        },
    )?;
    drop(console);
    drop(fifo_fd);
    Ok(spawned.pid)
}

/// The exec FIFO opened O_PATH for the init, which reopens it to wait.
fn open_exec_fifo_path(fifo: &Path) -> Result<OwnedFd> {
    let fifo_fd = nix::fcntl::open(
        fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(Error::sys(format!("open {}", fifo.display())))?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fifo_fd) })
}

/// The console socket: the connected one `run` passed, or a new connection
/// to --console-socket.
fn console_socket(opts: &CreateOptions, dir: &Path) -> Result<Option<OwnedFd>> {
    Ok(match (&opts.console_fd, &opts.console_socket) {
        (Some(fd), _) => Some(
            fd.try_clone()
                .map_err(Error::io("dup console socket", dir))?,
        ),
        (None, Some(path)) => {
            let s = std::os::unix::net::UnixStream::connect(path)
                .map_err(Error::io("connect console socket", path))?;
            Some(OwnedFd::from(s))
        }
        (None, None) => None,
    })
}

/// The OCI state JSON given to hooks, with `pid` and `status`.
fn state_json(st: &State, dir: &Path, pid: i32, status: &str) -> String {
    let mut s = st.clone();
    s.pid = pid;
    let mut v = s.oci_json(dir);
    v["status"] = serde_json::json!(status);
    v["pid"] = serde_json::json!(pid);
    v.to_string()
}

/// The create hooks that run in the runtime's namespaces: prestart, then
/// createRuntime (VM mode runs only these; `vm::fields` refuses the
/// others, which belong inside the container).
fn run_vm_create_hooks(h: &oci_spec::runtime::Hooks, state: &str) -> Result<()> {
    #[allow(deprecated)]
    hooks::run(
        "prestart",
        h.prestart().as_deref().unwrap_or(&[]),
        state,
        None,
    )?;
    hooks::run(
        "createRuntime",
        h.create_runtime().as_deref().unwrap_or(&[]),
        state,
        None,
    )
}

/// prestart, createRuntime and createContainer hooks, in that order.
fn run_create_hooks(h: &oci_spec::runtime::Hooks, state: &str, pid: i32) -> Result<()> {
    run_vm_create_hooks(h, state)?;
    hooks::run(
        "createContainer",
        h.create_container().as_deref().unwrap_or(&[]),
        state,
        Some(pid),
    )?;
    Ok(())
}

/// The seccomp notify listener to the agent at `listenerPath`, if any.
fn send_seccomp_listener(
    linux: &oci_spec::runtime::Linux,
    listener: std::os::fd::RawFd,
    state: impl FnOnce() -> String,
) -> Result<()> {
    let sc = linux.seccomp().clone().unwrap_or_default();
    if let Some(path) = sc.listener_path() {
        let state = state();
        crate::isolation::seccomp::send_listener(
            &path.to_string_lossy(),
            listener,
            state.as_bytes(),
            sc.listener_metadata().as_deref().unwrap_or(""),
        )?;
    }
    Ok(())
}

/// Save the state still `creating`, with the new init's pid and start time,
/// before the init can block: `delete -f` of a create that dies from here
/// on finds and kills it even with no cgroup.
fn record_pid(st: &State, dir: &Path, pid: i32) -> Result<()> {
    let mut s = st.clone();
    s.pid = pid;
    s.pid_start = crate::container::state::process_start_time(pid).unwrap_or(0);
    s.save(dir)
}
