//! Everything the container init needs, prepared before the clone: paths as
//! CStrings, masks, argv/envp pointer arrays, the seccomp program. The child
//! only reads this.

use crate::cgroups::Cgroup;
use crate::isolation::devices::{self, DeviceOp};
use crate::isolation::mounts::{cstring, plan_mount, MountOp};
use crate::isolation::namespaces::NamespacePlan;
use crate::{Error, Result};
use oci_spec::runtime::{LinuxIdMapping, Process, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

mod parts;

pub use parts::{check_id, check_user, console_size, ProcessParts, User, MAX_ID};

/// Declares `Step` and the list `from_u32` searches from one list of
/// names, so the two cannot drift apart. Numbering starts at 1 (0 = none).
macro_rules! steps {
    ($first:ident $(, $rest:ident)* $(,)?) => {
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Step {
            $first = 1,
            $($rest,)*
        }

        impl Step {
            pub fn from_u32(v: u32) -> Option<Step> {
                [Step::$first $(, Step::$rest)*]
                    .into_iter()
                    .find(|s| *s as u32 == v)
            }
        }
    };
}

// Steps of the init (and of `exec`), reported with an errno when one fails.
steps!(
    Setns,
    Unshare,
    Clone,
    Sethostname,
    Setdomainname,
    RootPropagation,
    BindRootfs,
    OpenRootfs,
    MountMkdir,
    MountOpen,
    Mount,
    MountRemount,
    MountPropagation,
    Device,
    Symlink,
    Console,
    PivotRoot,
    MaskPath,
    ReadonlyPath,
    Sysctl,
    ReadonlyRoot,
    DevReadonly,
    MountNotDir,
    HidePaths,
    Rlimit,
    Keyring,
    Seccomp,
    Capabilities,
    Setgroups,
    Setgid,
    Setuid,
    NoNewPrivs,
    Chdir,
    ExecNotFound,
    Sync,
    TimeOffsets,
    Personality,
    Fds,
);

/// A hook run by the init itself (startContainer), inside the container.
pub struct InitHook {
    pub path: CString,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub envp: Vec<CString>,
    pub envp_ptrs: Vec<*const libc::c_char>,
    pub timeout_secs: i64,
}

pub use crate::spec::validate::MntNs;

pub struct InitPlan {
    pub ns: NamespacePlan,
    pub mntns: MntNs,
    pub new_userns: bool,
    /// Device nodes are the host's, bound: mknod needs CAP_MKNOD in the
    /// initial user namespace (a new one, or vessel itself in one).
    pub bind_devices: bool,
    /// The init stays dumpable until Go: a rootless parent writes the id
    /// maps, and it cannot open a non-dumpable process's /proc files.
    pub dumpable_until_go: bool,
    pub new_cgroupns: bool,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub rootfs: CString,
    pub root_propagation: libc::c_ulong,
    pub mounts: Vec<MountOp>,
    /// Device nodes to create (empty when /dev is a bind mount).
    pub devices: Vec<DeviceOp>,
    pub make_dev_links: bool,
    /// `/dev` is a tmpfs asked read-only: mounted writable, made read-only
    /// once the device nodes and links exist.
    pub dev_readonly: bool,
    pub no_pivot: bool,
    /// With MS_MOVE + chroot (`--no-pivot`): the host's proc and sysfs
    /// mounts outside the rootfs, detached first so nothing in the
    /// container can reach (or count on, for mount_too_revealing) them.
    pub hide_on_no_pivot: Vec<CString>,
    /// The detached source trees of bind mounts (MountOp::tree_fd), closed
    /// when the plan is dropped.
    pub trees: Vec<OwnedFd>,
    /// An id-mapped copy of the rootfs made on the host side, which the
    /// init attaches in place of its own bind of the rootfs, and the rootfs
    /// directory it goes on (both opened by the runtime: the init may not
    /// reach the path); -1 for none.
    pub rootfs_tree: RawFd,
    pub rootfs_dir: RawFd,
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    pub sysctls: Vec<(CString, CString)>,
    pub readonly_root: bool,
    pub process: ProcessParts,
    /// The exec FIFO opened O_PATH by the parent, or -1 (run without start).
    pub exec_fifo_fd: RawFd,
    /// Connected console socket (terminal mode), or -1.
    pub console_socket: RawFd,
    pub preserve_fds: i32,
    pub new_keyring: bool,
    /// The parent wants a RunHooks message before pivot_root.
    pub parent_hooks: bool,
    pub start_hooks: Vec<InitHook>,
    /// Filled by the parent over the socket: state JSON for startContainer hooks.
    pub hook_state_capacity: usize,
    pub time_offsets: Option<CString>,
    pub personality: Option<libc::c_ulong>,
}

pub struct PlanInput<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: Option<&'a Cgroup>,
    pub exec_fifo_fd: RawFd,
    pub console_socket: RawFd,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub seccomp_flags: &'a [String],
    /// The console socket leads back to vessel (foreground `run`).
    pub relay_tty: bool,
    /// Each config mount's id mapping (`spec::Bundle::mount_idmaps`).
    pub mount_idmaps: &'a [Option<crate::isolation::idmap::MountIdmap>],
    /// Id-map the rootfs too (a tenant id range, `container::tenant_ids`).
    pub rootfs_idmap: Option<crate::isolation::idmap::MountIdmap>,
}

pub fn build(inp: &PlanInput) -> Result<InitPlan> {
    let spec = inp.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let ns_list = linux.namespaces().clone().unwrap_or_default();
    let ns = NamespacePlan::from_spec(&ns_list)?;
    let new_cgroupns = ns.creates(libc::CLONE_NEWCGROUP);
    // No linux section: no namespaces listed, so the runtime's own.
    let mntns = match spec.linux() {
        Some(linux) => crate::spec::validate::mount_namespace(linux)?,
        None => MntNs::Inherit,
    };
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json: process is missing"))?;
    let MountTrees {
        mut mounts,
        dev_is_bind,
        trees,
        rootfs_tree,
        rootfs_dir,
    } = mount_trees(inp, &ns, mntns, new_cgroupns)?;
    let dev_readonly = dev_writable_until_populated(&mut mounts);
    let devices = if dev_is_bind
        || mntns == MntNs::Inherit && !crate::spec::validate::may_mount_inherited()?
    {
        Vec::new()
    } else {
        devices::plan(linux.devices().as_deref().unwrap_or(&[]))?
    };
    let root_propagation = root_propagation(&linux)?;
    let sysctls = plan_sysctls(&linux)?;
    let start_hooks = start_container_hooks(spec)?;
    let parent_hooks = wants_parent_hooks(spec);
    let time_offsets = time_offsets(&linux)?;
    let personality = personality(&linux)?;
    let proc_parts = init_process(process, &linux, inp)?;
    let state_len = 16 * 1024;
    let hide_on_no_pivot = if inp.no_pivot && mntns == MntNs::New {
        host_proc_sys_mounts(inp.rootfs)?
    } else {
        Vec::new()
    };
    Ok(InitPlan {
        mntns,
        new_userns: ns.creates(libc::CLONE_NEWUSER),
        bind_devices: ns.creates(libc::CLONE_NEWUSER)
            || crate::container::rootless::in_user_namespace(),
        dumpable_until_go: ns.creates(libc::CLONE_NEWUSER) && !nix::unistd::geteuid().is_root(),
        new_cgroupns,
        ns,
        hostname: spec
            .hostname()
            .as_ref()
            .map(|h| cstring("hostname", h))
            .transpose()?,
        domainname: spec
            .domainname()
            .as_ref()
            .map(|h| cstring("domainname", h))
            .transpose()?,
        rootfs: cstring("rootfs", inp.rootfs.as_os_str().as_encoded_bytes())?,
        root_propagation,
        mounts,
        make_dev_links: !dev_is_bind && !devices.is_empty(),
        devices,
        dev_readonly,
        no_pivot: inp.no_pivot,
        hide_on_no_pivot,
        trees,
        rootfs_tree,
        rootfs_dir,
        masked: linux
            .masked_paths()
            .iter()
            .flatten()
            .map(|p| cstring("maskedPaths", p))
            .collect::<Result<_>>()?,
        readonly: linux
            .readonly_paths()
            .iter()
            .flatten()
            .map(|p| cstring("readonlyPaths", p))
            .collect::<Result<_>>()?,
        sysctls,
        readonly_root: spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly().unwrap_or(false)),
        process: proc_parts,
        exec_fifo_fd: inp.exec_fifo_fd,
        console_socket: inp.console_socket,
        preserve_fds: inp.preserve_fds,
        new_keyring: !inp.no_new_keyring,
        parent_hooks,
        hook_state_capacity: if start_hooks.is_empty() { 0 } else { state_len },
        start_hooks,
        time_offsets,
        personality,
    })
}

/// The config's mount operations with the host-side trees made for them.
struct MountTrees {
    mounts: Vec<MountOp>,
    dev_is_bind: bool,
    /// Kept open until the init has attached them.
    trees: Vec<OwnedFd>,
    /// The id-mapped rootfs (tree and directory fds), or -1.
    rootfs_tree: RawFd,
    rootfs_dir: RawFd,
}

fn mount_trees(
    inp: &PlanInput,
    ns: &NamespacePlan,
    mntns: MntNs,
    new_cgroupns: bool,
) -> Result<MountTrees> {
    let new_userns = ns.creates(libc::CLONE_NEWUSER);
    let (mut mounts, dev_is_bind, mut trees) =
        plan_mounts(inp.spec, inp, new_cgroupns, new_userns)?;
    let (rootfs_tree, rootfs_dir) = match &inp.rootfs_idmap {
        Some(map) => {
            let r = crate::isolation::idmap::idmapped_rootfs(inp.rootfs, map)?;
            let fds = (r.tree.as_raw_fd(), r.dir.as_raw_fd());
            trees.push(r.tree);
            trees.push(r.dir);
            fds
        }
        None => (-1, -1),
    };
    // open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN: a rootless init binds
    // by path, what its user may reach.
    if mntns == MntNs::New && new_userns && nix::unistd::geteuid().is_root() {
        trees.extend(host_side_trees(&mut mounts)?);
    }
    Ok(MountTrees {
        mounts,
        dev_is_bind,
        trees,
        rootfs_tree,
        rootfs_dir,
    })
}

/// The startContainer hooks, prepared for the init to run.
fn start_container_hooks(spec: &Spec) -> Result<Vec<InitHook>> {
    let mut out = Vec::new();
    if let Some(h) = spec.hooks() {
        for hook in h.start_container().iter().flatten() {
            out.push(init_hook(hook)?);
        }
    }
    Ok(out)
}

/// The config's mounts as flat operations, whether /dev is a bind, and the
/// id-mapped trees made for them (see `isolation::idmap`). In a container
/// with its own user namespace those trees are slaves of the host's mounts,
/// like every other bind there: a peer would carry the tenant's mounts back
/// to the host (tests/tenant_escape.rs).
fn plan_mounts(
    spec: &Spec,
    inp: &PlanInput,
    new_cgroupns: bool,
    new_userns: bool,
) -> Result<(Vec<MountOp>, bool, Vec<OwnedFd>)> {
    let mut mounts: Vec<MountOp> = Vec::new();
    let mut dev_is_bind = false;
    let mut trees = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let mut ops = plan_mount(m, inp.bundle, inp.cgroup, new_cgroupns)?;
        if m.destination() == Path::new("/dev") && ops.iter().any(|o| o.bind) {
            dev_is_bind = true;
        }
        if let Some(Some(map)) = inp.mount_idmaps.get(i) {
            for op in ops.iter_mut().filter(|o| o.bind) {
                let rec = op.flags & libc::MS_REC != 0;
                let t = crate::isolation::idmap::idmapped_tree(&op.source, rec, map)?;
                if new_userns {
                    let src = op.source.to_string_lossy();
                    crate::isolation::idmap::host_slave(t.as_raw_fd(), &src)?;
                }
                op.tree_fd = t.as_raw_fd();
                trees.push(t);
            }
        }
        mounts.extend(ops);
    }
    Ok((mounts, dev_is_bind, trees))
}

/// Host-side copies of the bind sources, for an init in a new mount and
/// user namespace.
fn host_side_trees(mounts: &mut [MountOp]) -> Result<Vec<OwnedFd>> {
    let mut trees = Vec::new();
    // Only a user namespace needs the host-side copy (its root may not
    // reach the source). Otherwise the init binds by path, in config
    // order after the rootfs: mountinfo lists mounts in the order they
    // were made, and a copy made here would come before the rootfs.
    for m in mounts.iter_mut().filter(|m| m.bind && m.tree_fd < 0) {
        let t = open_tree(&m.source)?;
        // Never a peer of a shared host mount (tests/tenant_escape.rs).
        crate::isolation::idmap::host_slave(t.as_raw_fd(), &m.source.to_string_lossy())?;
        m.tree_fd = t.as_raw_fd();
        trees.push(t);
    }
    Ok(trees)
}

/// A read-only /dev tmpfs is mounted writable; returns whether it is made
/// read-only once populated.
fn dev_writable_until_populated(mounts: &mut [MountOp]) -> bool {
    let mut dev_readonly = false;
    for m in mounts.iter_mut() {
        if m.dest.as_bytes() == b"dev" && !m.bind && m.flags & libc::MS_RDONLY != 0 {
            // Devices and links are made in it first (runc does the same).
            m.flags &= !libc::MS_RDONLY;
            dev_readonly = true;
        }
    }
    dev_readonly
}

/// linux.rootfsPropagation as mount flags (rslave by default).
fn root_propagation(linux: &oci_spec::runtime::Linux) -> Result<libc::c_ulong> {
    Ok(match linux.rootfs_propagation().as_deref() {
        None | Some("") => libc::MS_SLAVE | libc::MS_REC,
        Some("shared") => libc::MS_SHARED,
        Some("rshared") => libc::MS_SHARED | libc::MS_REC,
        Some("slave") => libc::MS_SLAVE,
        Some("rslave") => libc::MS_SLAVE | libc::MS_REC,
        Some("private") => libc::MS_PRIVATE,
        Some("rprivate") => libc::MS_PRIVATE | libc::MS_REC,
        Some("unbindable") => libc::MS_UNBINDABLE,
        Some("runbindable") => libc::MS_UNBINDABLE | libc::MS_REC,
        Some(o) => {
            return Err(Error::invalid(format!(
                "config.json: unknown rootfsPropagation {o:?}"
            )))
        }
    })
}

/// linux.sysctl as (path relative to /proc/sys, value).
fn plan_sysctls(linux: &oci_spec::runtime::Linux) -> Result<Vec<(CString, CString)>> {
    let mut sysctls = Vec::new();
    for (k, v) in linux.sysctl().iter().flatten() {
        // Relative to /proc/sys (the child opens that first and resolves
        // beneath it): validate::sysctl_components refused '..' and empties.
        let rel = crate::spec::validate::sysctl_components(k)?.join("/");
        sysctls.push((cstring("sysctl", rel)?, cstring("sysctl", v)?));
    }
    Ok(sysctls)
}

/// Whether any hook the parent runs before pivot_root is configured.
fn wants_parent_hooks(spec: &Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || {
                #[allow(deprecated)]
                h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            }
    })
}

/// linux.timeOffsets as the text for /proc/self/timens_offsets.
fn time_offsets(linux: &oci_spec::runtime::Linux) -> Result<Option<CString>> {
    linux
        .time_offsets()
        .as_ref()
        .filter(|m| !m.is_empty())
        .map(|m| {
            let mut s = String::new();
            for (clock, off) in m {
                // oci-spec keeps each offset as a JSON string {secs, nanosecs}.
                let v: serde_json::Value = serde_json::from_str(off).unwrap_or_default();
                let secs = v["secs"].as_i64().unwrap_or(0);
                let nanos = v["nanosecs"].as_u64().unwrap_or(0);
                s.push_str(&format!("{clock} {secs} {nanos}\n"));
            }
            cstring("timeOffsets", s)
        })
        .transpose()
}

/// linux.personality as personality(2)'s argument.
fn personality(linux: &oci_spec::runtime::Linux) -> Result<Option<libc::c_ulong>> {
    Ok(match linux.personality() {
        None => None,
        Some(p) => {
            let d = serde_json::to_string(&p.domain()).unwrap_or_default();
            Some(match d.trim_matches('"') {
                "LINUX" => 0,
                "LINUX32" => 8,
                o => return Err(Error::invalid(format!("unknown personality domain {o}"))),
            })
        }
    })
}

/// process.terminal needs a console socket (or `run`'s own relay), and a
/// console socket needs process.terminal: runc's rules, shared by container
/// and VM mode.
pub fn check_console_socket(terminal: bool, socket: bool) -> Result<()> {
    if terminal && !socket {
        return Err(Error::invalid(
            "use --console-socket with a container that has process.terminal set",
        ));
    }
    if !terminal && socket {
        return Err(Error::invalid(
            "--console-socket given but process.terminal is false",
        ));
    }
    Ok(())
}

/// The init's process parts, checked against the console socket.
fn init_process(
    process: &Process,
    linux: &oci_spec::runtime::Linux,
    inp: &PlanInput,
) -> Result<ProcessParts> {
    let mut proc_parts =
        ProcessParts::from_process(process, linux.seccomp().as_ref(), inp.seccomp_flags)?;
    check_console_socket(proc_parts.terminal, inp.console_socket >= 0)?;
    proc_parts.clear_onlcr = inp.relay_tty;
    proc_parts.fill_pointers();
    Ok(proc_parts)
}

/// open_tree(OPEN_TREE_CLONE | AT_RECURSIVE) of a bind source, done by the
/// runtime with the host's view and rights: a detached copy the init
/// attaches with move_mount, even from a user namespace whose root could
/// not open the source (a 0700 root-owned host dir).
fn open_tree(source: &std::ffi::CStr) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: source is NUL-terminated; the flags are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Error::sys(format!(
            "open bind mount source {}",
            source.to_string_lossy()
        ))(nix::errno::Errno::last()));
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The host's proc and sysfs mounts (whole filesystems) outside the rootfs,
/// deepest first: what runc's msMoveRoot detaches before MS_MOVE + chroot.
fn host_proc_sys_mounts(rootfs: &Path) -> Result<Vec<CString>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(Error::io("read", Path::new("/proc/self/mountinfo")))?;
    let mut found = Vec::new();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(fstype)) = (f.get(3), f.get(4), f.get(sep + 1)) else {
            continue;
        };
        if *root != "/" || !matches!(*fstype, "proc" | "sysfs") {
            continue;
        }
        let point = crate::cgroups::unescape_mountinfo(point);
        if Path::new(&point).starts_with(rootfs) {
            continue;
        }
        found.push(point);
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
        .into_iter()
        .map(|p| cstring("mount point", p))
        .collect()
}

fn init_hook(h: &oci_spec::runtime::Hook) -> Result<InitHook> {
    let path = cstring("hook path", h.path().as_os_str().as_encoded_bytes())?;
    let args = h
        .args()
        .clone()
        .unwrap_or_else(|| vec![h.path().to_string_lossy().into_owned()]);
    let argv: Vec<CString> = args
        .iter()
        .map(|a| cstring("hook args", a))
        .collect::<Result<_>>()?;
    let envp: Vec<CString> = h
        .env()
        .iter()
        .flatten()
        .map(|a| cstring("hook env", a))
        .collect::<Result<_>>()?;
    let mut argv_ptrs: Vec<_> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<_> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    Ok(InitHook {
        path,
        argv,
        argv_ptrs,
        envp,
        envp_ptrs,
        timeout_secs: h.timeout().unwrap_or(0),
    })
}

/// "/proc/<pid>/uid_map" content for a mapping list.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}
