//! Guest set-up done by PID 1 before the workload starts: the kernel
//! filesystems, the spec's in-guest mounts, hostname, sysctls, then the
//! masked and read-only paths.

use super::console_note;
use super::share::Volumes;
use super::spec::{Config, Mount};
use nix::mount::{mount, MsFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Filesystems the agent mounts for itself; the workload's namespace gets
/// its own /proc, /dev, /dev/pts and /dev/shm (`own_kernel_mounts`), so
/// the spec's entries for these destinations are satisfied there.
const BASE: &[(&str, &str, &str, MsFlags)] = &[
    (
        "/proc",
        "proc",
        "",
        MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
    ),
    (
        "/sys",
        "sysfs",
        "",
        MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
    ),
    ("/dev", "devtmpfs", "mode=0755", MsFlags::MS_NOSUID),
    (
        "/dev/pts",
        "devpts",
        "mode=0620,ptmxmode=0666,gid=5",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
    ),
    (
        "/dev/shm",
        "tmpfs",
        "mode=1777",
        MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
    ),
];

/// The workload's own instances of the kernel filesystems that belong to
/// its namespaces, over the agent's copies it inherited: a /dev of its own
/// (`own_dev`), procfs for its pid namespace (the agent's would list the
/// agent and the whole guest). Where the spec's own entry for one of the
/// kernel filesystems asks for `ro` (the default spec's /sys), that mount
/// is made read-only in the workload's namespace (the agent's stays as it
/// is).
pub fn own_kernel_mounts(cfg: &Config) -> Result<(), String> {
    own_dev(cfg)?;
    nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("detach the agent's /proc: {e}"))?;
    for (dest, fstype, data, flags) in BASE.iter().filter(|(d, ..)| *d == "/proc") {
        mount_fs(dest, fstype, *flags, data)?;
    }
    // The agent's cgroup2 (the guest's whole tree) came along under /sys:
    // the spec's cgroup mount, if any, mounts the workload's own view.
    match nix::mount::umount2(crate::cgroup::MOUNT, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(format!("detach the agent's {}: {e}", crate::cgroup::MOUNT)),
    }
    for m in &cfg.mounts {
        let dest = m.destination.trim_end_matches('/');
        let Some((_, _, _, flags)) = BASE.iter().find(|(d, ..)| *d == dest) else {
            continue;
        };
        let spec_flags = parse_options(&m.options).0;
        if !spec_flags.contains(MsFlags::MS_RDONLY) {
            continue;
        }
        // /dev is the tmpfs `own_dev` made with the spec's own flags.
        let flags = if dest == "/dev" { spec_flags } else { *flags };
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | flags;
        mount(None::<&str>, dest, None::<&str>, ro, None::<&str>)
            .map_err(|e| format!("make {dest} read-only as the spec asks: {e}"))?;
    }
    Ok(())
}

/// runc's /dev when the spec's entry gives no options.
const DEV_DEFAULT: (MsFlags, &str) = (
    MsFlags::MS_NOSUID.union(MsFlags::MS_STRICTATIME),
    "mode=755,size=65536k",
);

/// The workload's /dev as container mode builds it, instead of the
/// guest's devtmpfs, which holds every device node the guest kernel has
/// (mem, port, kmsg, the consoles, the agent's channel port): a tmpfs
/// with the spec's /dev options, the default device nodes
/// (`vessel_common::devices`, the only ones VM mode accepts in
/// `linux.devices`), the standard links, and its own devpts and /dev/shm
/// (for its ipc namespace). With a terminal, /dev/console is the
/// workload's pty (`tty::bind_console`).
fn own_dev(cfg: &Config) -> Result<(), String> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    nix::mount::umount2("/dev", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("detach the guest's /dev: {e}"))?;
    let spec_dev = cfg.mounts.iter().find(|m| {
        m.destination.trim_end_matches('/') == "/dev" && m.kind.as_deref() == Some("tmpfs")
    });
    let (flags, data) = match spec_dev {
        Some(m) => parse_options(&m.options),
        None => (DEV_DEFAULT.0, DEV_DEFAULT.1.to_string()),
    };
    // Read-only, if asked, only once the nodes are in (`own_kernel_mounts`).
    mount_fs("/dev", "tmpfs", flags - MsFlags::MS_RDONLY, &data)?;
    for (name, major, minor) in vessel_common::devices::DEFAULT_DEVICES {
        let path = format!("/dev/{name}");
        let mode = Mode::from_bits_truncate(0o666);
        mknod(
            path.as_str(),
            SFlag::S_IFCHR,
            mode,
            makedev(major.into(), minor.into()),
        )
        .map_err(|e| format!("mknod {path}: {e}"))?;
        // Not narrowed by the agent's umask.
        nix::sys::stat::fchmodat(
            None,
            path.as_str(),
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| format!("chmod {path}: {e}"))?;
    }
    for (link, target) in DEV_LINKS.iter().chain([("/dev/ptmx", "pts/ptmx")].iter()) {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| format!("symlink {link} -> {target}: {e}"))?;
    }
    if cfg.process.as_ref().is_some_and(|p| p.terminal) {
        // What `tty::bind_console` mounts the pty on, made before /dev
        // may turn read-only.
        std::fs::File::create(CONSOLE).map_err(|e| format!("create {CONSOLE}: {e}"))?;
    }
    for (dest, fstype, data, flags) in BASE {
        if matches!(*dest, "/dev/pts" | "/dev/shm") {
            mount_fs(dest, fstype, *flags, data)?;
        }
    }
    Ok(())
}

/// The workload's console with a terminal.
pub const CONSOLE: &str = "/dev/console";

/// The /dev links runc creates.
const DEV_LINKS: [(&str, &str); 5] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/core", "/proc/kcore"),
];

/// Types that exist in a guest without anything from the host.
const GUEST_TYPES: &[&str] = &["tmpfs", "proc", "sysfs", "devpts", "mqueue"];

fn mount_fs(dest: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("mkdir {dest}: {e}"))?;
    let data = if data.is_empty() { None } else { Some(data) };
    mount(Some(fstype), dest, Some(fstype), flags, data)
        .map_err(|e| format!("mount {fstype} on {dest}: {e}"))
}

/// /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm and the /dev links
/// runc creates.
pub fn base_mounts() -> Result<(), String> {
    for (dest, fstype, data, flags) in BASE {
        mount_fs(dest, fstype, *flags, data)?;
    }
    for (link, target) in DEV_LINKS {
        if !Path::new(link).exists() {
            let _ = std::os::unix::fs::symlink(target, link);
        }
    }
    Ok(())
}

/// Mount flags and the data string of an OCI mount's options, read with
/// container mode's table. Bind, remount and propagation bits mean nothing
/// for a mount made fresh inside the guest and are dropped.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let (flags, _propagation, data, _bind) = vessel_common::mount_options::parse_options(options);
    let guest_only = !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    (MsFlags::from_bits_truncate(flags & guest_only), data)
}

pub fn is_bind(m: &Mount) -> bool {
    vessel_common::mount_options::is_bind(m.kind.as_deref(), &m.options)
}

/// Attaches the shared volume of `mounts[index]` at its destination,
/// resolved inside the root.
fn bind_volume(index: usize, m: &Mount, volumes: &mut Volumes) -> Result<(), String> {
    let dest = &m.destination;
    let tree = volumes
        .take(index)
        .ok_or_else(|| format!("mounts[{index}] (bind on {dest}): no shared volume"))?;
    let dir = nix::sys::stat::fstat(tree.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| format!("mounts[{index}] (bind on {dest}): fstat: {e}"))?;
    let root: OwnedFd = std::fs::File::open("/")
        .map_err(|e| format!("open /: {e}"))?
        .into();
    let target = super::resolve::dest_in_root(&root, dest, dir)?;
    super::share::attach(&tree, &target)
        .map_err(|e| format!("mounts[{index}] (bind on {dest}): {e}"))
}

/// The spec's mounts that can exist inside a guest, in order. Bind mounts
/// are the volumes the runtime shared (`share`); with no share (a guest
/// booted without `vessel.fs=`, as by the QEMU test) they are skipped with
/// a note on the console.
pub fn spec_mounts(cfg: &Config, mut volumes: Option<&mut Volumes>) -> Result<(), String> {
    for (index, m) in cfg.mounts.iter().enumerate() {
        let dest = m.destination.trim_end_matches('/');
        if BASE.iter().any(|(d, ..)| *d == dest) {
            continue;
        }
        let kind = m.kind.as_deref().unwrap_or("");
        if is_bind(m) {
            match volumes.as_deref_mut() {
                Some(v) => bind_volume(index, m, v)?,
                None => console_note(&format!(
                    "skipping bind mount of {} on {dest}: no virtio-fs share",
                    m.source.as_deref().unwrap_or("?")
                )),
            }
            continue;
        }
        let (flags, data) = parse_options(&m.options);
        match kind {
            k if GUEST_TYPES.contains(&k) => mount_fs(dest, k, flags, &data)?,
            "cgroup" | "cgroup2" => {
                // The guest's own cgroup tree; nice to have, not required.
                if let Err(e) = mount_fs(dest, "cgroup2", flags, "") {
                    console_note(&format!("skipping cgroup mount on {dest}: {e}"));
                }
            }
            other => console_note(&format!(
                "skipping mount of type {other:?} on {dest}: not available in the guest"
            )),
        }
    }
    Ok(())
}

/// `path` as an absolute guest path, or an error naming the field.
fn guest_path<'a>(field: &str, path: &'a str) -> Result<&'a str, String> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Err(format!("{field} {path:?}: not an absolute path"));
    }
    Ok(path)
}

/// `linux.maskedPaths` and `linux.readonlyPaths`, then `root.readonly`, as
/// container mode applies them after its mounts (a missing path is skipped,
/// as runc does): a directory is masked by an empty read-only tmpfs, anything
/// else by /dev/null; a read-only bind keeps the mount's other flags, as
/// container mode's does. Inside the guest they hide the guest kernel's files
/// (its kcore, sysrq-trigger, firmware) from the workload, as they hide the
/// host's in container mode; after `sysctls`, which writes under /proc/sys.
pub fn protect_paths(cfg: &Config) -> Result<(), String> {
    let (masked, readonly) = match &cfg.linux {
        Some(l) => (&l.masked_paths[..], &l.readonly_paths[..]),
        None => (&[][..], &[][..]),
    };
    for p in masked {
        let p = guest_path("linux.maskedPaths", p)?;
        let meta = match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("masked path {p}: {e}")),
            Ok(m) => m,
        };
        let r = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.map_err(|e| format!("mask {p}: {e}"))?;
    }
    for p in readonly {
        let p = guest_path("linux.readonlyPaths", p)?;
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        match mount(Some(p), p, None::<&str>, bind, None::<&str>) {
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(format!("bind {p} for read-only: {e}")),
            Ok(()) => {}
        }
        let cpath = std::ffi::CString::new(p).map_err(|e| format!("read-only path {p:?}: {e}"))?;
        let kept = vessel_common::mount_options::mounted_flags(&cpath);
        let flags =
            bind | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::from_bits_truncate(kept);
        mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("make {p} read-only: {e}"))?;
    }
    if cfg.root.as_ref().is_some_and(|r| r.readonly) {
        // A bind remount: read-only for this mount only, not for the
        // virtio-fs superblock the volumes share with the root.
        let kept = vessel_common::mount_options::mounted_flags(c"/");
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::from_bits_truncate(kept);
        if let Err(e) = mount(None::<&str>, "/", None::<&str>, flags, None::<&str>) {
            console_note(&format!("could not make / read-only: {e}"));
        }
    }
    Ok(())
}

pub fn hostname(cfg: &Config) -> Result<(), String> {
    if let Some(h) = cfg.hostname.as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| format!("sethostname {h:?}: {e}"))?;
    }
    if let Some(d) = cfg.domainname.as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: the pointer and length describe a live &str.
        let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
        if rc != 0 {
            return Err(format!(
                "setdomainname {d:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

pub fn sysctls(cfg: &Config) -> Result<(), String> {
    let Some(linux) = &cfg.linux else {
        return Ok(());
    };
    for (key, value) in &linux.sysctl {
        if key.is_empty() || key.contains("..") || key.starts_with('/') {
            return Err(format!("sysctl {key:?}: not a valid name"));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value)
            .map_err(|e| format!("sysctl {key}={value}: write {path}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = [
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "ro",
            "rprivate",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (flags, data) = parse_options(&opts);
        assert_eq!(
            flags,
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY
        );
        assert_eq!(data, "mode=755,size=65536k");
        let (flags, _) = parse_options(&["ro".to_string(), "rw".to_string()]);
        assert!(!flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn protected_paths_must_be_absolute_without_dotdot() {
        assert_eq!(guest_path("f", "/proc/kcore"), Ok("/proc/kcore"));
        for bad in ["proc/kcore", "/proc/../etc", "", ".."] {
            let err = guest_path("linux.maskedPaths", bad).expect_err(bad);
            assert!(err.contains("linux.maskedPaths"), "{err}");
        }
    }
}
