//! `create`: validate, make the state dir and cgroup, start the init (or the
//! VMM) waiting on the exec FIFO, record the state. On any error everything
//! made so far is undone.

use crate::cgroups::Cgroup;
use crate::container::lock::Lock;
use crate::container::state::{Sandbox, State, Status, EXEC_FIFO};
use crate::process::plan::{self, PlanInput};
use crate::process::spawn::{self, Callbacks, IdMaps};
use crate::spec::{self, Bundle};
use crate::{hooks, logging, vm, Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

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
}

/// Undo a half-made container: kill, cgroup, state dir.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    pid: i32,
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
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn create(root: &Path, opts: CreateOptions) -> Result<(PathBuf, State)> {
    spec::validate_id(&opts.id)?;
    let bundle = spec::load_bundle(&opts.bundle)?;
    if let Some(p) = bundle.spec.process() {
        crate::process::plan::check_user(p.user())?;
    }
    let use_vm = vm::requested(&bundle.spec, &opts.argv0)?;
    if use_vm {
        vm::check_host(&bundle.spec)?;
    }
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    // `--cgroup-manager disabled` (Podman's --cgroups=disabled): no cgroup
    // at all; the container lives in the caller's.
    let cgroup = if opts.cgroups_disabled {
        if use_vm {
            return Err(Error::invalid(
                "VM mode needs a cgroup for the VMM: drop --cgroup-manager disabled",
            ));
        }
        None
    } else {
        Some(Cgroup::resolve(
            linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
            &opts.id,
        )?)
    };
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

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(Error::io("create runtime root", root))?;
    let dir = super::state_dir(root, &opts.id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists(opts.id.clone()))
        }
        Err(e) => return Err(Error::io("create state dir", &dir)(e)),
    }
    let mut cleanup = Cleanup {
        dir: Some(dir.clone()),
        cgroup: None,
        pid: 0,
    };
    let _lock = Lock::acquire(&dir)?;

    if let Some(cgroup) = &cgroup {
        cgroup.create()?;
        cleanup.cgroup = Some(cgroup.clone());
        if let Some(res) = linux.resources() {
            if use_vm {
                // The VMM is a host process in this cgroup and needs
                // /dev/kvm; the guest's devices are virtual, so device rules
                // have nothing to protect there.
                let mut res = res.clone();
                res.set_devices(None);
                cgroup.apply(&res)?;
            } else {
                cgroup.apply(res)?;
            }
        }
        if !use_vm && !linux.devices().as_deref().unwrap_or(&[]).is_empty() {
            // The devices cgroup must allow what linux.devices creates (runc
            // appends one allow rule per device after resources.devices).
            cgroup.apply_devices(&device_rules(&linux)?)?;
        }
    }

    let fifo = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(Error::sys(format!("mkfifo {}", fifo.display())))?;
    // mkfifo is subject to the umask; the init may run as any user.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(Error::io("chmod", &fifo))?;

    let owner = crate::container::owner_name(nix::unistd::geteuid().as_raw());
    let mut st = State {
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: logging::rfc3339_now(),
        owner,
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup: cgroup.clone(),
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
    };
    st.save(&dir)?;

    let pid = if let (true, Some(cgroup)) = (use_vm, &cgroup) {
        let req = vm::LaunchRequest {
            id: &opts.id,
            bundle: &bundle.dir,
            rootfs: &bundle.rootfs,
            spec: &bundle.spec,
            state_dir: &dir,
            exec_fifo: &fifo,
            cgroup,
        };
        let pid = vm::launch(&req)?;
        cleanup.pid = pid;
        cgroup.add_task(pid)?;
        pid
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
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    // Success: keep everything.
    cleanup.dir = None;
    cleanup.cgroup = None;
    cleanup.pid = 0;
    Ok((dir, st))
}

/// resources.devices followed by an "rwm" allow rule for each linux.devices entry.
fn device_rules(linux: &oci_spec::runtime::Linux) -> Result<Vec<LinuxDeviceCgroup>> {
    let mut rules: Vec<LinuxDeviceCgroup> = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for d in linux.devices().iter().flatten() {
        // The devices cgroup knows only "c" and "b": a fifo needs no rule,
        // and "u" (unbuffered char) is a char device.
        let typ = match d.typ() {
            LinuxDeviceType::P => continue,
            LinuxDeviceType::U => LinuxDeviceType::C,
            t => t,
        };
        let rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .major(d.major())
            .minor(d.minor())
            .access("rwm")
            .build()
            .map_err(|e| Error::invalid(format!("device {}: {e}", d.path().display())))?;
        rules.push(rule);
    }
    Ok(rules)
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
    let fifo_fd = nix::fcntl::open(
        fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(Error::sys(format!("open {}", fifo.display())))?;
    // SAFETY: a fresh fd we own.
    let fifo_fd = unsafe { OwnedFd::from_raw_fd(fifo_fd) };
    let console: Option<OwnedFd> = match (&opts.console_fd, &opts.console_socket) {
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
    };
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
        relay_tty: opts.console_fd.is_some(),
    })?;
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let maps = IdMaps {
        uid: plan::id_map_text(linux.uid_mappings().as_deref().unwrap_or(&[])),
        gid: plan::id_map_text(linux.gid_mappings().as_deref().unwrap_or(&[])),
    };
    let spec_hooks = bundle.spec.hooks().clone();
    let state_for = |pid: i32, status: &str| -> String {
        let mut s = st.clone();
        s.pid = pid;
        let mut v = s.oci_json(dir);
        v["status"] = serde_json::json!(status);
        v["pid"] = serde_json::json!(pid);
        v.to_string()
    };
    let mut run_hooks = |pid: i32| -> Result<()> {
        if let Some(h) = &spec_hooks {
            let state = state_for(pid, "creating");
            #[allow(deprecated)]
            hooks::run(
                "prestart",
                h.prestart().as_deref().unwrap_or(&[]),
                &state,
                None,
            )?;
            hooks::run(
                "createRuntime",
                h.create_runtime().as_deref().unwrap_or(&[]),
                &state,
                None,
            )?;
            hooks::run(
                "createContainer",
                h.create_container().as_deref().unwrap_or(&[]),
                &state,
                Some(pid),
            )?;
        }
        Ok(())
    };
    let mut hook_state = |pid: i32| state_for(pid, "created").into_bytes();
    let spawned = spawn::spawn_init(
        &plan,
        cgroup,
        Some(&maps),
        Callbacks {
            run_hooks: &mut run_hooks,
            hook_state: &mut hook_state,
        },
    )?;
    if let Some(listener) = spawned.seccomp_listener {
        let sc = linux.seccomp().clone().unwrap_or_default();
        if let Some(path) = sc.listener_path() {
            let state = state_for(spawned.pid, "creating");
            crate::isolation::seccomp::send_listener(
                &path.to_string_lossy(),
                listener.as_raw_fd(),
                state.as_bytes(),
                sc.listener_metadata().as_deref().unwrap_or(""),
            )?;
        }
    }
    drop(console);
    drop(fifo_fd);
    Ok(spawned.pid)
}

/// Write the pid file atomically, as runc does (containerd polls it).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("vessel-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(Error::io("write pid file", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("rename pid file", path))
}

/// pivot_root(2) cannot move an initramfs root (EINVAL): on such a host
/// (a VM booted from an initramfs) fall back to MS_MOVE + chroot, as
/// `--no-pivot` does, and say so in the log.
fn host_root_is_initramfs() -> bool {
    // One statfs settles the common case: an initramfs root is ramfs or
    // tmpfs; only then is mountinfo worth reading on create's path.
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    // SAFETY: a zeroed statfs is a valid out-parameter for statfs(2).
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: constant path, writable out-parameter.
    if unsafe { libc::statfs(c"/".as_ptr(), &mut st) } == 0
        && st.f_type != RAMFS_MAGIC
        && st.f_type != libc::TMPFS_MAGIC
    {
        return false;
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let root_is_rootfs = info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-");
        f.get(4) == Some(&"/") && sep.and_then(|i| f.get(i + 1)) == Some(&"rootfs")
    });
    if root_is_rootfs {
        logging::warn("the host's / is an initramfs, where pivot_root is impossible: using MS_MOVE and chroot");
    }
    root_is_rootfs
}
