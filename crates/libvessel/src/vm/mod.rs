//! VM-sandbox mode: the same bundle in a KVM microVM.
//!
//! CONTRACT used by the container lifecycle:
//! - `requested` says whether a container runs in a VM (annotation
//!   `vessel.sandbox=vm|container`, a `vm` section in config.json, or vessel
//!   invoked as `vessel-vm`).
//! - `check_host` refuses at once where VM mode cannot work (no /dev/kvm,
//!   kvm_pvm, no guest kernel, no vessel-agent), before any side effect;
//!   `fields::check_fields` refuses, before it, the config.json fields a VM
//!   cannot apply (by name); `guest_rules::check_seccomp` refuses a seccomp
//!   profile the guest cannot apply (SCMP_ACT_NOTIFY, or one that does not
//!   compile).
//! - `launch` builds (or reuses) the initramfs (the agent, config.json and
//!   modules), connects the network (`net`), starts virtiofsd on the rootfs
//!   and the bind mounts (`virtiofs`), sizes the VM and spawns the
//!   `vessel-vmm` binary (crate vessel-vmm), which waits on the exec FIFO; it
//!   returns the VMM's pid, which `create` moves into the cgroup and records
//!   as the container's pid. Signals to that pid reach the workload; its exit status
//!   is the workload's.

pub mod config;
pub mod console;
mod control;
mod cpio;
pub mod exec;
pub mod fields;
pub mod guest_rules;
pub mod initramfs;
mod memory;
pub mod modules;
pub mod net;
pub mod virtiofs;

pub use control::{pause, resume, vcpus_paused};
pub use memory::{check_memory_update, lift_memory_limit, memory_need_bytes};

use crate::cgroups::Cgroup;
use config::VmSection;
use oci_spec::runtime::Spec;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{0}")]
    Msg(String),
}

/// What `create` hands to VM mode.
pub struct LaunchRequest<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// Absolute rootfs path (already resolved against the bundle).
    pub rootfs: &'a Path,
    pub spec: &'a Spec,
    /// The container's state directory (the VMM may keep files there).
    pub state_dir: &'a Path,
    /// The VMM opens this FIFO for writing before boot; `start` releases it.
    pub exec_fifo: &'a Path,
    pub cgroup: &'a Cgroup,
    /// From `plan_bundle`, made by `create` before any side effect.
    pub plan: &'a VmPlan,
    /// `process.terminal`: the host pty's slave, the VMM's stdin, stdout and
    /// stderr (else it inherits vessel's stdio).
    pub terminal: Option<Terminal>,
}

/// The workload's terminal as the VMM gets it.
pub struct Terminal {
    pub slave: std::os::fd::OwnedFd,
    /// vessel relays the pty itself (foreground `run`): the guest's pty
    /// then writes "\n" as is, as container mode clears ONLCR there.
    pub relayed: bool,
}

pub const ANNOTATION_SANDBOX: &str = "vessel.sandbox";
/// The name that turns VM mode on for every container (a symlink to vessel).
pub const VM_ARGV0: &str = "vessel-vm";
/// Env override for the agent binary's path.
pub const ENV_AGENT: &str = "VESSEL_AGENT";
pub const AGENT_NAME: &str = "vessel-agent";
pub const ENV_VMM: &str = "VESSEL_VMM";
pub const VMM_NAME: &str = "vessel-vmm";
/// Env overrides (the operator's, never the bundle's) for the uid and gid
/// the VMM drops to once the VM is set up; both 0 keep it root.
pub const ENV_VMM_UID: &str = "VESSEL_VMM_UID";
pub const ENV_VMM_GID: &str = "VESSEL_VMM_GID";
/// nobody/nogroup: owns no file the VMM could reach, and the VMM sits in
/// its own mount namespace with an empty root anyway.
pub const DEFAULT_VMM_ID: u32 = 65534;
/// Env override for the initramfs cache directory.
pub const ENV_CACHE: &str = "VESSEL_INITRAMFS_CACHE";

/// Does this container ask for VM mode? `vm` in the annotation, a `vm`
/// section in config.json or the `vessel-vm` name turn it on. The name the
/// operator installed is a floor: under `vessel-vm` a bundle may ask for
/// more isolation, never less, so `vessel.sandbox=container` is refused
/// there instead of running the workload on the host kernel.
pub fn requested(spec: &Spec, argv0: &str) -> Result<bool, VmError> {
    let name = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let vm_floor = name == VM_ARGV0;
    let annotation = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_SANDBOX));
    match annotation.map(|v| v.trim()) {
        Some("vm") => return Ok(true),
        Some("container") if vm_floor => {
            return Err(VmError::Msg(format!(
                "annotation {ANNOTATION_SANDBOX}=container is refused: this runtime is installed \
                 as {VM_ARGV0}, which runs every container in a VM; a bundle may ask for more \
                 isolation, never less"
            )))
        }
        Some("container") => return Ok(false),
        Some(other) => {
            return Err(VmError::Msg(format!(
                "annotation {ANNOTATION_SANDBOX}={other:?}: expected \"vm\" or \"container\""
            )))
        }
        None => {}
    }
    if spec.vm().is_some() {
        return Ok(true);
    }
    Ok(vm_floor)
}

/// Refuse at once where VM mode cannot work: no usable /dev/kvm, a kvm_pvm
/// host (whose KVM cannot boot a stock Linux guest), a missing guest kernel
/// or a missing vessel-agent.
pub fn check_host(spec: &Spec) -> Result<(), VmError> {
    if let Some(problem) = vessel_common::kvm::host_problem() {
        return Err(VmError::Msg(problem));
    }
    let vm_kernel = spec
        .vm()
        .as_ref()
        .map(|vm| vm.kernel().path().as_path())
        .filter(|p| !p.as_os_str().is_empty());
    let kernel = config::kernel_path(spec, vm_kernel)?;
    check_kernel(&kernel)?;
    find_agent()?;
    find_vmm()?;
    virtiofs::find_virtiofsd()?;
    Ok(())
}

fn check_kernel(kernel: &Path) -> Result<(), VmError> {
    match std::fs::metadata(kernel) {
        Ok(md) if md.is_file() => Ok(()),
        Ok(_) => Err(VmError::Msg(format!(
            "guest kernel {} is not a regular file",
            kernel.display()
        ))),
        Err(e) => Err(VmError::Msg(format!(
            "guest kernel {} not found ({e}): run rootfs-tools/guest-kernel.sh to install it, \
             or point {} or annotation {} at a vmlinux",
            kernel.display(),
            config::ENV_KERNEL,
            config::ANNOTATION_KERNEL
        ))),
    }
}

/// vessel-agent (the guest's init): env VESSEL_AGENT, then next to the
/// running vessel, then the usual install directories.
pub fn find_agent() -> Result<PathBuf, VmError> {
    crate::companion::find(
        AGENT_NAME,
        ENV_AGENT,
        None,
        &format!("build it (cargo build --bin {AGENT_NAME}) or set {ENV_AGENT}"),
    )
    .map_err(VmError::Msg)
}

/// vessel-vmm: env VESSEL_VMM, then next to the running vessel, then the
/// usual install directories.
pub fn find_vmm() -> Result<PathBuf, VmError> {
    crate::companion::find(
        VMM_NAME,
        ENV_VMM,
        None,
        &format!("build it (cargo build --bin {VMM_NAME}) or set {ENV_VMM}"),
    )
    .map_err(VmError::Msg)
}

/// The uid and gid the VMM drops to: `VESSEL_VMM_UID`/`VESSEL_VMM_GID`,
/// else 65534; None when both are 0 (the VMM stays root).
pub fn vmm_identity() -> Result<Option<(u32, u32)>, VmError> {
    let id = |var: &str| -> Result<u32, VmError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|_| VmError::Msg(format!("{var}={v:?}: expected a numeric id"))),
            _ => Ok(DEFAULT_VMM_ID),
        }
    };
    let (uid, gid) = (id(ENV_VMM_UID)?, id(ENV_VMM_GID)?);
    Ok((uid, gid).ne(&(0, 0)).then_some((uid, gid)))
}

fn cache_dir() -> PathBuf {
    match std::env::var_os(ENV_CACHE).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(initramfs::DEFAULT_CACHE_DIR),
    }
}

/// Everything the VMM command line needs, computed without side effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPlan {
    pub kernel: PathBuf,
    pub cmdline: String,
    pub sizing: config::Sizing,
    /// A user initrd from `vm.kernel.initrd`, unpacked before vessel's own.
    pub extra_initrd: Option<PathBuf>,
    /// What virtiofsd shares: the rootfs and the bind mounts.
    pub share: virtiofs::SharePlan,
}

/// Size the VM, pick its kernel and plan its share for a spec, its raw `vm`
/// section and its rootfs.
pub fn plan(spec: &Spec, vm: &VmSection, rootfs: &Path) -> Result<VmPlan, VmError> {
    Ok(VmPlan {
        kernel: config::kernel_path(spec, vm.kernel_path.as_deref())?,
        cmdline: config::cmdline(&vm.kernel_parameters)?,
        sizing: config::sizing(spec, vm)?,
        extra_initrd: vm.initrd.clone(),
        share: virtiofs::plan_share(spec, rootfs)?,
    })
}

/// The VM's plan for a bundle, without side effects: `create` makes it
/// before anything exists (it sizes the cgroup and is recorded in the
/// state), and `launch` boots exactly that.
pub fn plan_bundle(bundle: &Path, spec: &Spec, rootfs: &Path) -> Result<VmPlan, VmError> {
    let config_path = bundle.join("config.json");
    let config_bytes = std::fs::read(&config_path)
        .map_err(|e| VmError::Msg(format!("read {}: {e}", config_path.display())))?;
    let doc: serde_json::Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| VmError::Msg(format!("parse {}: {e}", config_path.display())))?;
    let vm = VmSection::from_json(&doc)?;
    plan(spec, &vm, rootfs)
}

/// `process.oomScoreAdj`, set on the VMM: on the host it is the container's
/// process, so the host's OOM killer weighs the whole VM by it.
pub fn set_oom_score_adj(pid: i32, spec: &Spec) -> Result<(), VmError> {
    let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) else {
        return Ok(());
    };
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, adj.to_string())
        .map_err(|e| VmError::Msg(format!("process.oomScoreAdj {adj}: write {path}: {e}")))
}

/// A VMM `launch` started.
pub struct Launched {
    pub pid: i32,
    /// Kept until `create` ends: it holds the namespace's lock and, with
    /// late connection, what `connect_network` needs.
    net: net::Prepared,
}

/// How long `create` waits for the VMM's exec socket, where it leaves the
/// network a late connection gives the guest.
const LATE_NET_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Launched {
    /// With `prestart` or `createRuntime` hooks, once they ran: connects
    /// the namespace's interface (which a hook may have made) to the VM
    /// and leaves the guest its settings, which the agent takes at boot
    /// (`start`) before it sets the workload up. Nothing to do otherwise:
    /// the network was connected before the VMM started.
    pub fn connect_network(&self, state_dir: &Path) -> crate::Result<()> {
        if self.net.late_tap.is_none() {
            return Ok(());
        }
        let guest = self.net.connect_late(state_dir)?;
        let text = guest.map(|g| g.render()).unwrap_or_default();
        exec::leave_network(state_dir, self.pid, &text, LATE_NET_WAIT)
    }
}

/// Whether `spec`'s network is connected after its hooks ran: the hooks
/// that set a container's namespaces up (`prestart`, `createRuntime`)
/// run once the VMM is in its network namespace, and what they make there
/// must reach the guest.
pub fn network_after_hooks(spec: &Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    })
}

/// Build the initramfs, connect the network (or, with hooks, only make
/// the tap: `Launched::connect_network`), start virtiofsd and spawn the
/// VMM. virtiofsd is in the container's cgroup (a later failure of
/// `create` kills it with the cgroup); it is killed here if the VMM does
/// not start.
pub fn launch(req: &LaunchRequest) -> Result<Launched, VmError> {
    let plan = req.plan;
    check_kernel(&plan.kernel)?;
    let vmm = find_vmm()?;
    let late = network_after_hooks(req.spec);
    let net = net::prepare(req.spec, req.state_dir, late)?;
    let undo_net = net::Undo::new(req.state_dir);
    let initrd = assemble_initrd(req, net.link.as_ref().map(|l| &l.1))?;

    let mut cmdline = plan.cmdline.clone();
    if late {
        cmdline.push(' ');
        cmdline.push_str(vessel_protocol::launch::CMDLINE_NET_LATE);
    }
    if req.terminal.as_ref().is_some_and(|t| t.relayed) {
        cmdline.push(' ');
        cmdline.push_str(vessel_protocol::launch::CMDLINE_TTY_NO_ONLCR);
    }
    cmdline.push_str(&format!(
        " {}={}",
        vessel_protocol::launch::CMDLINE_FS_KEY,
        vessel_protocol::launch::FS_TAG
    ));
    // The VMM and virtiofsd join the container's cgroup before they run, so
    // what they touch while starting is charged there (create moves the
    // VMM's pid again afterwards, which reports any error).
    let procs: Vec<std::ffi::CString> = req
        .cgroup
        .dirs
        .iter()
        .filter_map(|d| {
            std::ffi::CString::new(d.join("cgroup.procs").into_os_string().into_vec()).ok()
        })
        .collect();
    let fsd = virtiofs::start(&plan.share, req.state_dir, &procs)?;
    let share = virtiofs::VmmShare::connect(&fsd).inspect_err(|_| fsd.kill())?;
    let cmd = vmm_command(req, &vmm, &initrd, &cmdline, &share, procs, &net);
    let child = cmd.and_then(|mut c| {
        spawn_in_own_pid_namespace(&mut c).map_err(|e| {
            VmError::Msg(format!(
                "spawn the VMM {} for {}: {e}",
                vmm.display(),
                req.id
            ))
        })
    });
    let child = child.inspect_err(|_| fsd.kill())?;
    // The VMM holds the tap now; `delete` gives the namespace back.
    undo_net.disarm();
    // The child is not waited for here: `create` records its pid and exits;
    // whoever reaps vessel's children (the shim, or `run`) reaps it.
    Ok(Launched {
        pid: child.id() as i32,
        net,
    })
}

/// Spawns the VMM as PID 1 of a new pid namespace, as a container's init
/// is: it sees and can signal no host process (its seccomp filter allows
/// tgkill), and `podman top` on it lists only itself. The namespace is for
/// this one child: vessel's own later children (hooks, `run`'s helpers) go
/// back to vessel's namespace. A host that refuses a new pid namespace
/// (no CAP_SYS_ADMIN) gets the VMM in vessel's, as before.
fn spawn_in_own_pid_namespace(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    use nix::sched::{setns, unshare, CloneFlags};
    let own = std::fs::File::open("/proc/self/ns/pid")?;
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        crate::logging::debug(&format!(
            "the VMM shares vessel's pid namespace: unshare(CLONE_NEWPID): {e}"
        ));
        return cmd.spawn();
    }
    let mut spawned = cmd.spawn();
    // pid_ns_for_children is per thread and this thread forked the VMM.
    if let Err(e) = setns(&own, CloneFlags::CLONE_NEWPID) {
        if let Ok(child) = spawned.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        return Err(std::io::Error::other(format!(
            "return to vessel's pid namespace after spawning the VMM: {e}"
        )));
    }
    spawned
}

/// The VMM's command line and stdio, and its pre-exec steps (own session,
/// the container's cgroup, the container's network namespace and tap).
fn vmm_command(
    req: &LaunchRequest,
    vmm: &Path,
    initrd: &Path,
    cmdline: &str,
    share: &virtiofs::VmmShare,
    procs: Vec<std::ffi::CString>,
    net: &net::Prepared,
) -> Result<Command, VmError> {
    let plan = req.plan;
    let identity = vmm_identity()?;
    let stdio =
        |what: &str| -> Result<Stdio, VmError> {
            match &req.terminal {
                Some(t) => t.slave.try_clone().map(Stdio::from).map_err(|e| {
                    VmError::Msg(format!("dup the pty slave for the VMM's {what}: {e}"))
                }),
                None => Ok(Stdio::inherit()),
            }
        };
    let mut cmd = Command::new(vmm);
    cmd.arg("--kernel")
        .arg(&plan.kernel)
        .arg("--initrd")
        .arg(initrd)
        .arg("--cmdline")
        .arg(cmdline)
        .arg("--vcpus")
        .arg(plan.sizing.vcpus.to_string())
        .arg("--mem-mib")
        .arg(plan.sizing.mem_mib.to_string())
        .arg("--exec-fifo")
        .arg(req.exec_fifo)
        .arg("--console-log")
        .arg(req.state_dir.join("console.log"))
        .arg("--exec-socket")
        .arg(req.state_dir.join(exec::SOCKET_NAME))
        .arg("--virtiofs")
        .arg(&share.arg)
        .arg("--virtiofs-fd")
        .arg(virtiofs::VMM_FS_FD.to_string())
        .args(req.terminal.as_ref().map(|_| "--tty"))
        .args(
            identity
                .map(|(u, g)| ["--uid".into(), u.to_string(), "--gid".into(), g.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(net.vmm_args())
        .stdin(stdio("stdin")?)
        .stdout(stdio("stdout")?)
        .stderr(stdio("stderr")?);
    let (net_join, net_tap) = net.raw_fds();
    let fs_fd = share.conn.as_raw_fd();
    // SAFETY: between fork and exec the closure only makes raw syscalls
    // (setsid, open, write, close, and `net::pre_exec`'s) on data prepared
    // above: async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session, like a container's init: a terminal's
            // job-control signals to vessel's group do not hit it directly.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
            net::pre_exec(net_join, net_tap)?;
            // After the tap's dup2: `fs_fd` is above both targets
            // (`virtiofs::connect`), so neither dup2 overwrites the other's
            // source. dup2 clears close-on-exec on the copy.
            if libc::dup2(fs_fd, virtiofs::VMM_FS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// The guest's initramfs: the user's initrd (if any), the cached one of
/// the agent, its config and modules, then this container's own files
/// (`net`). The rootfs is not in it: the guest reads it over virtio-fs.
fn assemble_initrd(
    req: &LaunchRequest,
    guest_net: Option<&vessel_protocol::net::GuestNet>,
) -> Result<PathBuf, VmError> {
    let config_path = req.bundle.join("config.json");
    let config_bytes = std::fs::read(&config_path)
        .map_err(|e| VmError::Msg(format!("read {}: {e}", config_path.display())))?;
    let agent = find_agent()?;
    let inputs = initramfs::Inputs {
        agent: &agent,
        config: &config_bytes,
        kernel: &req.plan.kernel,
    };
    let mut initrd = initramfs::build_cached(&inputs, &cache_dir())?;
    let guest = net::guest_archive(req.state_dir, guest_net)?;
    let parts: Vec<&Path> = (req.plan.extra_initrd.iter().map(PathBuf::as_path))
        .chain([initrd.as_path()])
        .chain(guest.as_deref())
        .collect();
    if parts.len() > 1 {
        initrd = concat_initrds(&parts, &req.state_dir.join("initrd.img"))?;
    }
    check_fits(&initrd, req.plan.sizing.mem_mib)?;
    Ok(initrd)
}

/// Refuse an initramfs that cannot fit in guest RAM: the kernel holds the
/// archive and its unpacked copy at once, plus its own ~64 MiB. vessel's
/// own is a few MiB (the rootfs is shared over virtio-fs); a large user
/// initrd (`vm.kernel.initrd`) can still be too big.
fn check_fits(initrd: &Path, mem_mib: u64) -> Result<(), VmError> {
    let size = std::fs::metadata(initrd)
        .map_err(|e| VmError::Msg(format!("stat {}: {e}", initrd.display())))?
        .len();
    let need_mib = (2 * size).div_ceil(1 << 20) + 64;
    if need_mib > mem_mib {
        return Err(VmError::Msg(format!(
            "the initramfs is {} MiB and needs about {need_mib} MiB of guest RAM, \
             but the VM has {mem_mib} MiB: raise the memory limit or annotation {}",
            size.div_ceil(1 << 20),
            config::ANNOTATION_MEMORY_MIB
        )));
    }
    Ok(())
}

/// `parts` in one file, in order (the kernel unpacks concatenated archives
/// in order: a later one's file wins, so vessel's /init beats the user's).
fn concat_initrds(parts: &[&Path], dest: &Path) -> Result<PathBuf, VmError> {
    let err = |what: &str, p: &Path, e: std::io::Error| {
        VmError::Msg(format!("{what} {}: {e}", p.display()))
    };
    let mut out = std::fs::File::create(dest).map_err(|e| err("create", dest, e))?;
    for &src in parts {
        let mut f = std::fs::File::open(src).map_err(|e| err("open initrd", src, e))?;
        std::io::copy(&mut f, &mut out).map_err(|e| err("copy initrd", src, e))?;
        // Archives start on a 4-byte boundary.
        let len = out.metadata().map_err(|e| err("stat", dest, e))?.len();
        let pad = ((4 - len % 4) % 4) as usize;
        std::io::Write::write_all(&mut out, &[0u8; 3][..pad]).map_err(|e| err("write", dest, e))?;
    }
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(doc: serde_json::Value) -> Spec {
        let mut base = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        for (k, v) in doc.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn requested_by_annotation_vm_section_or_name() {
        let plain = spec(json!({}));
        assert!(!requested(&plain, "vessel").unwrap());
        assert!(!requested(&plain, "/usr/bin/vessel").unwrap());
        assert!(requested(&plain, "/usr/local/bin/vessel-vm").unwrap());
        assert!(requested(&plain, "vessel-vm").unwrap());

        let vm = spec(json!({"annotations": {"vessel.sandbox": "vm"}}));
        assert!(requested(&vm, "vessel").unwrap());

        let section = spec(json!({"vm": {"kernel": {"path": "/boot/vmlinux"}}}));
        assert!(requested(&section, "vessel").unwrap());
    }

    #[test]
    fn container_annotation_cannot_lower_the_vessel_vm_floor() {
        let s = spec(json!({
            "annotations": {"vessel.sandbox": "container"},
            "vm": {"kernel": {"path": "/boot/vmlinux"}}
        }));
        let err = requested(&s, "/usr/local/bin/vessel-vm")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("vessel.sandbox=container") && err.contains("vessel-vm"),
            "{err}"
        );
        // Under plain `vessel` the annotation still picks container mode.
        assert!(!requested(&s, "vessel").unwrap());
    }

    #[test]
    fn unknown_sandbox_value_is_refused() {
        let s = spec(json!({"annotations": {"vessel.sandbox": "vmm"}}));
        let err = requested(&s, "vessel").unwrap_err().to_string();
        assert!(
            err.contains("vessel.sandbox") && err.contains("vmm"),
            "{err}"
        );
    }

    #[test]
    fn missing_kernel_names_path_and_script() {
        let err = check_kernel(Path::new("/nonexistent/vmlinux"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/vmlinux") && err.contains("rootfs-tools/guest-kernel.sh"),
            "{err}"
        );
    }

    #[test]
    fn plan_uses_vm_section() {
        let doc = json!({
            "vm": {"kernel": {"path": "/var/lib/vessel/kernel/vmlinux", "parameters": ["foo=1"]}, "hwConfig": {"vcpus": 2}},
            "linux": {"resources": {"memory": {"limit": 512u64 << 20}}}
        });
        let vm = VmSection::from_json(&doc).unwrap();
        let p = plan(&spec(doc), &vm, Path::new("/b/rootfs")).unwrap();
        assert_eq!(p.share.rootfs, PathBuf::from("/b/rootfs"));
        assert_eq!(p.kernel, PathBuf::from("/var/lib/vessel/kernel/vmlinux"));
        assert!(p.cmdline.ends_with(" foo=1"));
        assert_eq!(
            p.sizing,
            config::Sizing {
                vcpus: 2,
                mem_mib: 512
            }
        );
    }

    fn resources(doc: serde_json::Value) -> oci_spec::runtime::LinuxResources {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn create_lifts_a_limit_below_guest_ram_plus_overhead() {
        let mib = 1i64 << 20;
        let mut r = resources(
            json!({"memory": {"limit": 256 * mib, "swap": 300 * mib, "reservation": 10}}),
        );
        assert_eq!(lift_memory_limit(&mut r, 256), Some(290 * mib));
        let m = r.memory().unwrap();
        assert_eq!(
            (m.limit(), m.swap(), m.reservation()),
            (Some(290 * mib), Some(334 * mib), Some(10))
        );
        // Enough already, unlimited, or no memory section: untouched.
        let mut r = resources(json!({"memory": {"limit": 1024 * mib}}));
        assert_eq!(lift_memory_limit(&mut r, 256), None);
        let mut r = resources(json!({"memory": {"limit": -1}}));
        assert_eq!(lift_memory_limit(&mut r, 256), None);
        let mut r = resources(json!({"cpu": {"shares": 2}}));
        assert_eq!(lift_memory_limit(&mut r, 256), None);
    }

    #[test]
    fn update_refuses_memory_below_what_the_vmm_needs() {
        let mib = 1i64 << 20;
        let low = resources(json!({"memory": {"limit": 48 * mib}}));
        let err = check_memory_update("c1", &low, Some(256))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c1")
                && err.contains("48 MiB")
                && err.contains("290 MiB")
                && err.contains("no memory balloon")
                && err.contains("nothing was changed"),
            "{err}"
        );
        let low_swap = resources(json!({"memory": {"limit": 512 * mib, "swap": 100 * mib}}));
        assert!(check_memory_update("c1", &low_swap, Some(256)).is_err());
        for ok in [
            json!({"memory": {"limit": 290 * mib}}),
            json!({"memory": {"limit": -1}}),
            json!({"memory": {"reservation": 8 * mib}}),
            json!({"cpu": {"quota": 50000, "period": 100000}}),
        ] {
            assert!(
                check_memory_update("c1", &resources(ok.clone()), Some(256)).is_ok(),
                "{ok}"
            );
        }
        // Guest RAM unknown (an older state): memory changes are refused.
        assert!(
            check_memory_update("c1", &resources(json!({"memory": {"limit": -1}})), None).is_err()
        );
        assert!(check_memory_update("c1", &resources(json!({"cpu": {"shares": 2}})), None).is_ok());
    }

    #[test]
    fn big_rootfs_is_refused_for_small_vm() {
        let d = std::env::temp_dir().join(format!("vessel-fits-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("big.cpio");
        let file = std::fs::File::create(&f).unwrap();
        file.set_len(40 << 20).unwrap();
        assert!(check_fits(&f, 128).is_err());
        assert!(check_fits(&f, 256).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
