//! The guest's root over virtio-fs. The runtime shares a directory holding
//! the bundle's rootfs (`rootfs/`) and the host source of each bind mount
//! (`volumes/<n>` for `mounts[n]`), and names its tag on the kernel command
//! line (`vessel.fs=<tag>`). The agent mounts it, takes a detached copy of
//! each volume (read-only and nosuid/nodev/noexec as its options say, on
//! every mount below it), makes the rootfs the root as switch_root does
//! (the kernel filesystems moved into it, MS_MOVE onto /, chroot) and frees
//! the initramfs: afterwards neither the agent nor the workload can reach
//! the agent binary, config.json or the modules by any path. The spec's
//! mounts then go under the new root (`setup::spec_mounts`), the volumes
//! attached at destinations resolved inside it (`resolve`).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use vessel_protocol::launch::{fs_tag, SHARE_ROOTFS, SHARE_VOLUMES};

use super::spec::{Config, Mount};

/// Where the share and the new root are mounted in the initramfs.
const SHARE: &str = "/.vessel/share";
const NEW_ROOT: &str = "/.vessel/root";
/// Kernel filesystems the agent mounted first, moved into the new root.
const MOVED: &[&str] = &["/dev", "/proc", "/sys"];

// linux/mount.h
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const MOUNT_ATTR_RDONLY: u64 = 0x01;
const MOUNT_ATTR_NOSUID: u64 = 0x02;
const MOUNT_ATTR_NODEV: u64 = 0x04;
const MOUNT_ATTR_NOEXEC: u64 = 0x08;

/// struct mount_attr (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The share's tag from /proc/cmdline, if the runtime gave one.
pub fn tag() -> Option<String> {
    let line = std::fs::read_to_string("/proc/cmdline").ok()?;
    fs_tag(&line).map(str::to_string)
}

/// The volumes, detached and ready to attach, by their index in `mounts`.
#[derive(Default)]
pub struct Volumes(HashMap<usize, OwnedFd>);

impl Volumes {
    /// The volume of `mounts[index]`, once.
    pub fn take(&mut self, index: usize) -> Option<OwnedFd> {
        self.0.remove(&index)
    }
}

fn sys_err(what: String) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Mount the share, detach the volumes, switch to the rootfs.
pub fn enter(tag: &str, cfg: &Config) -> Result<Volumes, String> {
    mount(
        Some(tag),
        SHARE,
        Some("virtiofs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mount virtio-fs share {tag:?} on {SHARE}: {e}"))?;
    let mut volumes = Volumes::default();
    for (index, m) in cfg.mounts.iter().enumerate() {
        if super::setup::is_bind(m) {
            volumes.0.insert(index, detach_volume(index, m)?);
        }
    }
    let rootfs = format!("{SHARE}/{SHARE_ROOTFS}");
    mount(
        Some(rootfs.as_str()),
        NEW_ROOT,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind {rootfs} on {NEW_ROOT}: {e}"))?;
    umount2(SHARE, MntFlags::MNT_DETACH).map_err(|e| format!("detach {SHARE}: {e}"))?;
    let root: OwnedFd = std::fs::File::open(NEW_ROOT)
        .map_err(|e| format!("open {NEW_ROOT}: {e}"))?
        .into();
    for fs in MOVED {
        let dest = super::resolve::dest_in_root(&root, fs, true)?;
        move_mount(
            libc::AT_FDCWD,
            fs,
            dest.as_raw_fd(),
            MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| format!("move {fs} into the rootfs: {e}"))?;
    }
    switch_root()?;
    Ok(volumes)
}

/// A detached recursive copy of `volumes/<index>`, with the mount's
/// read-only/nosuid/nodev/noexec options set on every mount in it.
fn detach_volume(index: usize, m: &Mount) -> Result<OwnedFd, String> {
    let path = format!("{SHARE}/{SHARE_VOLUMES}/{index}");
    let dest = &m.destination;
    let cpath = CString::new(path.as_str()).map_err(|e| format!("{path:?}: {e}"))?;
    if !Path::new(&path).exists() {
        return Err(format!(
            "mounts[{index}] (bind on {dest}): the runtime did not share its source ({path} is missing)"
        ));
    }
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: a NUL-terminated path; integer flags.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, cpath.as_ptr(), flags) };
    if fd < 0 {
        return Err(sys_err(format!(
            "mounts[{index}] (bind on {dest}): open_tree {path}"
        )));
    }
    // SAFETY: a fresh fd we own.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr_set = attrs(&m.options);
    if attr_set != 0 {
        let attr = MountAttr {
            attr_set,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let at = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
        // SAFETY: a valid fd, an empty path with AT_EMPTY_PATH, a live mount_attr of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                at,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc < 0 {
            return Err(sys_err(format!(
                "mounts[{index}] (bind on {dest}): mount_setattr"
            )));
        }
    }
    Ok(tree)
}

/// The per-mount attributes a bind's options ask for (the last of ro/rw
/// wins, as in container mode; "rro" counts as ro: the copy is recursive).
pub fn attrs(options: &[String]) -> u64 {
    let (flags, _, _, _) = vessel_common::mount_options::parse_options(options);
    let (rec_set, _) = vessel_common::mount_options::recursive_attrs(options);
    let mut set =
        rec_set & (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    for (flag, attr) in [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ] {
        if flags & flag != 0 {
            set |= attr;
        }
    }
    set
}

/// Attaches a detached `tree` on `dest` (an O_PATH fd in the new root).
pub fn attach(tree: &OwnedFd, dest: &OwnedFd) -> Result<(), String> {
    // SAFETY: valid fds, empty paths with the EMPTY_PATH flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            dest.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    match rc {
        rc if rc < 0 => Err(sys_err("move_mount".into())),
        _ => Ok(()),
    }
}

fn move_mount(from_dir: RawFd, from: &str, to: RawFd, flags: libc::c_uint) -> Result<(), String> {
    let c = CString::new(from).map_err(|e| format!("{from:?}: {e}"))?;
    // SAFETY: a NUL-terminated source path, a valid target fd with an empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from_dir,
            c.as_ptr(),
            to,
            c"".as_ptr(),
            flags,
        )
    };
    match rc {
        rc if rc < 0 => Err(std::io::Error::last_os_error().to_string()),
        _ => Ok(()),
    }
}

/// MS_MOVE the new root onto / and chroot into it (an initramfs root
/// cannot be pivot_root'ed).
fn switch_root() -> Result<(), String> {
    nix::unistd::chdir(NEW_ROOT).map_err(|e| format!("chdir {NEW_ROOT}: {e}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("move the rootfs onto /: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot into the rootfs: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir / in the rootfs: {e}"))
}

/// Removes the initramfs's files (the agent binary, config.json, modules),
/// as switch_root does: the memory goes back to the guest. Never crosses
/// into another filesystem (the share and the agent's mounts are
/// elsewhere). Run by the agent in its own mount namespace once the
/// workload's child has moved onto the share: from that child's namespace
/// it would remove the directories the agent's /dev, /proc and /sys are
/// mounted on, and the kernel would detach them.
pub fn free_initramfs() {
    let Ok(root) = std::fs::symlink_metadata("/") else {
        return;
    };
    remove_on_dev(Path::new("/"), root.dev());
}

fn remove_on_dev(dir: &Path, dev: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if md.dev() != dev {
            continue;
        }
        if md.is_dir() {
            remove_on_dev(&path, dev);
            let _ = std::fs::remove_dir(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bind_options_become_mount_attributes() {
        assert_eq!(attrs(&opts(&["rbind", "rw"])), 0);
        assert_eq!(attrs(&opts(&["bind", "ro"])), MOUNT_ATTR_RDONLY);
        assert_eq!(attrs(&opts(&["ro", "rw"])), 0);
        assert_eq!(attrs(&opts(&["rbind", "rro"])), MOUNT_ATTR_RDONLY);
        assert_eq!(
            attrs(&opts(&["rbind", "nosuid", "nodev", "noexec", "ro"])),
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
        );
    }
}
