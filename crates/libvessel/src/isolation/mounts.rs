//! Mounts from config.json, turned into flat operations the init performs
//! without allocating. Destinations are kept relative to the rootfs and are
//! resolved in the child with openat2(RESOLVE_IN_ROOT), so a symlink in the
//! rootfs can never send a mount outside it.

use crate::cgroups::{Cgroup, Layout};
use crate::{Error, Result};
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::path::Path;
pub use vessel_common::mount_options::*;

#[derive(Debug, Clone)]
pub struct MountOp {
    /// Source (host path for binds, a name like "proc" otherwise).
    pub source: CString,
    /// Destination relative to the rootfs, no leading '/'.
    pub dest: CString,
    pub fstype: CString,
    pub flags: libc::c_ulong,
    pub data: CString,
    /// MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (+MS_REC) applied after.
    pub propagation: libc::c_ulong,
    pub bind: bool,
    /// For binds: the flags beyond MS_BIND|MS_REC need a remount.
    pub remount_flags: libc::c_ulong,
    /// The destination must be a file (bind of a non-directory).
    pub dest_is_file: bool,
    /// mkdir mode for missing destination dirs.
    pub mode: u32,
    /// Recursive attributes (`rro`, `rnosuid`, ...): mount_setattr(2)
    /// MOUNT_ATTR_* bits to set and to clear on the whole tree.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// For binds: a detached copy of the source made with
    /// open_tree(OPEN_TREE_CLONE) by the runtime on the host side, so the
    /// init attaches it with move_mount even where its user namespace
    /// cannot reach the source; -1 to bind by path.
    pub tree_fd: std::os::fd::RawFd,
}

pub fn cstring(what: &str, s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

/// One config.json mount (cgroup mounts expand into several).
pub fn plan_mount(
    m: &Mount,
    bundle: &Path,
    cgroup: Option<&Cgroup>,
    new_cgroupns: bool,
) -> Result<Vec<MountOp>> {
    let dest_path = m.destination();
    let dest_rel = dest_path
        .to_string_lossy()
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string();
    let opts = m.options().clone().unwrap_or_default();
    let (flags, propagation, data, bind_opt) = parse_options(&opts);
    let (rec_set, rec_clr) = recursive_attrs(&opts);
    let typ = m.typ().clone().unwrap_or_default();
    let bind = bind_opt || typ == "bind";
    let src = m
        .source()
        .as_ref()
        .map(|s| {
            if bind && s.is_relative() {
                bundle.join(s)
            } else {
                s.clone()
            }
        })
        .unwrap_or_default();
    if typ == "cgroup" || typ == "cgroup2" {
        return plan_cgroup_mount(&dest_rel, flags, cgroup, new_cgroupns);
    }
    let mut dest_is_file = false;
    if bind {
        let meta = std::fs::metadata(&src).map_err(|e| {
            Error::invalid(format!(
                "mount {}: source {}: {e}",
                dest_path.display(),
                src.display()
            ))
        })?;
        dest_is_file = !meta.is_dir();
    }
    let op = MountOp {
        source: cstring("mount source", src.as_os_str().as_encoded_bytes())?,
        dest: cstring("mount destination", &dest_rel)?,
        fstype: cstring("mount type", if bind { "" } else { typ.as_str() })?,
        flags: if bind {
            flags & (libc::MS_BIND | libc::MS_REC)
        } else {
            flags
        },
        data: cstring("mount options", &data)?,
        propagation,
        bind,
        remount_flags: if bind {
            flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT)
        } else {
            0
        },
        dest_is_file,
        mode: 0o755,
        rec_set,
        rec_clr,
        tree_fd: -1,
    };
    Ok(vec![op])
}

/// /sys/fs/cgroup in the container. v2 with a new cgroup namespace: a fresh
/// cgroup2 mount (it shows the container's cgroup as its root). Otherwise a
/// tmpfs holding read-only binds of the container's own directories.
fn plan_cgroup_mount(
    dest: &str,
    flags: libc::c_ulong,
    cgroup: Option<&Cgroup>,
    new_cgroupns: bool,
) -> Result<Vec<MountOp>> {
    let base = MountOp {
        source: cstring("", "cgroup")?,
        dest: cstring("mount destination", dest)?,
        fstype: cstring("", "cgroup2")?,
        flags: flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: CString::default(),
        propagation: 0,
        bind: false,
        remount_flags: 0,
        dest_is_file: false,
        mode: 0o755,
        rec_set: 0,
        rec_clr: 0,
        tree_fd: -1,
    };
    let Some(cg) = cgroup else { return Ok(vec![]) };
    if cg.layout == Layout::V2 && new_cgroupns {
        return Ok(vec![base]);
    }
    let mut ops = vec![MountOp {
        source: cstring("", "tmpfs")?,
        fstype: cstring("", "tmpfs")?,
        data: cstring("", "mode=755")?,
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        ..base.clone()
    }];
    for dir in &cg.dirs {
        // /sys/fs/cgroup/<hierarchy>/<path...>: bind the container's own dir
        // at <dest>/<hierarchy> (for v2, the dir itself).
        let rel = dir.strip_prefix("/sys/fs/cgroup").unwrap_or(dir);
        let name = if cg.layout == Layout::V2 {
            String::new()
        } else {
            // rel is "<hierarchy>/<path...>" (relative after strip_prefix).
            rel.components()
                .find(|c| matches!(c, std::path::Component::Normal(_)))
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if name.is_empty() && cg.layout != Layout::V2 {
            continue;
        }
        let d = if name.is_empty() {
            dest.to_string()
        } else {
            format!("{dest}/{name}")
        };
        ops.push(MountOp {
            source: cstring("", dir.as_os_str().as_encoded_bytes())?,
            dest: cstring("", d)?,
            fstype: CString::default(),
            flags: libc::MS_BIND | libc::MS_REC,
            data: CString::default(),
            propagation: 0,
            bind: true,
            remount_flags: (flags & libc::MS_RDONLY)
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC,
            dest_is_file: false,
            mode: 0o755,
            rec_set: 0,
            rec_clr: 0,
            tree_fd: -1,
        });
    }
    if cg.layout == Layout::V2 {
        ops.remove(0);
    } else if flags & libc::MS_RDONLY != 0 {
        // The tmpfs holding the binds is made read-only once they are in
        // place (runc's mountCgroupV1): a bind remount of it.
        ops.push(MountOp {
            source: CString::default(),
            fstype: CString::default(),
            flags: libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC,
            ..base
        });
    }
    Ok(ops)
}
