//! create's files on the host: the private runtime root, the exec FIFO
//! (and whose it is), the pid file written without following links, and
//! whether the host's root is an initramfs (no pivot_root there).

use crate::{logging, Error, Result};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Make the runtime root private (0700, as runc's). A root that exists
/// already is tightened to 0700 when this user owns it; one owned by
/// someone else, or not a directory, is refused: whoever controls it
/// could plant or read container state.
pub(super) fn prepare_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(Error::io("create runtime root", root))?;
    let md = std::fs::metadata(root).map_err(Error::io("stat runtime root", root))?;
    if !md.is_dir() {
        return Err(Error::invalid(format!(
            "runtime root {} is not a directory",
            root.display()
        )));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if md.uid() != euid {
        return Err(Error::invalid(format!(
            "runtime root {} is owned by uid {}, not by this user (uid {euid}): use a private directory",
            root.display(),
            md.uid()
        )));
    }
    if md.mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io("chmod 0700 runtime root", root))?;
    }
    Ok(())
}

/// The exec FIFO: mode 0600, owned by the host uid/gid the container's
/// process has when it opens it (after its setuid, through its own
/// /proc/self/fd, so the 0700 state dir does not stand in its way). No
/// other user can open it and hold `start` up.
pub(super) fn make_exec_fifo(fifo: &Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(Error::sys(format!("mkfifo {}", fifo.display())))?;
    let (uid, gid) = fifo_owner(spec);
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let mut mode = 0o600;
    if (uid, gid) != (euid, egid) {
        if let Err(e) = nix::unistd::chown(
            fifo,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        ) {
            if e != nix::errno::Errno::EPERM {
                return Err(Error::sys(format!("chown {}", fifo.display()))(e));
            }
            // Rootless, with the process user mapped to a subordinate uid
            // we may not chown to: others may write (runc's 0622); the
            // private state dir still keeps other users from the path.
            mode = 0o622;
        }
    }
    // mkfifo is subject to the umask.
    std::fs::set_permissions(fifo, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(Error::io("chmod", fifo))
}

/// The host uid/gid of `process.user` (through the user namespace maps).
fn fifo_owner(spec: &oci_spec::runtime::Spec) -> (u32, u32) {
    let (uid, gid) = spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()))
        .unwrap_or((0, 0));
    let linux = spec.linux().clone().unwrap_or_default();
    let userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User);
    if !userns {
        return (uid, gid);
    }
    let map = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>, id: u32| -> u32 {
        for m in maps.into_iter().flatten() {
            if id >= m.container_id() && id - m.container_id() < m.size() {
                return m.host_id() + (id - m.container_id());
            }
        }
        nix::unistd::geteuid().as_raw()
    };
    (
        map(linux.uid_mappings().as_ref(), uid),
        map(linux.gid_mappings().as_ref(), gid),
    )
}

/// Write the pid file atomically, as runc does (containerd polls it): a
/// fresh temporary file next to it (O_CREAT|O_EXCL|O_NOFOLLOW, so nothing
/// planted there is followed or reused), then rename over the target.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("pid file {}: not a file name", path.display())))?
        .to_string_lossy()
        .into_owned();
    let mut last = None;
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(
            ".{name}.{}.{}.vessel-tmp",
            std::process::id(),
            random_u64() ^ u64::from(attempt)
        ));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp);
        let mut f = match f {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(Error::io("create pid file", &tmp)(e)),
        };
        if let Err(e) = f.write_all(pid.to_string().as_bytes()) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("write pid file", &tmp)(e));
        }
        drop(f);
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("rename pid file", path)(e));
        }
        return Ok(());
    }
    Err(Error::io("create pid file", &dir)(last.unwrap_or_else(
        || std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    )))
}

/// 64 bits from the kernel's random pool (time and pid if that fails).
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into a stack buffer of the given length.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    if n == 8 {
        return u64::from_ne_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
}

/// pivot_root(2) cannot move an initramfs root (EINVAL): on such a host
/// (a VM booted from an initramfs) fall back to MS_MOVE + chroot, as
/// `--no-pivot` does, and say so in the log.
pub(crate) fn host_root_is_initramfs() -> bool {
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
