//! Mounts from config.json, turned into flat operations the init performs
//! without allocating. Destinations are kept relative to the rootfs and are
//! resolved in the child with openat2(RESOLVE_IN_ROOT), so a symlink in the
//! rootfs can never send a mount outside it.

use crate::cgroups::{Cgroup, Layout};
use crate::{Error, Result};
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::path::Path;

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

/// mount_setattr(2) attribute bits (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The recursive options runc 1.1 knows (`runc features`): (set, clear)
/// of mount_setattr attributes. The atime ones replace the whole atime
/// field, so they clear MOUNT_ATTR__ATIME and set their value.
pub fn recursive_option(o: &str) -> Option<(u64, u64)> {
    Some(match o {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnorelatime" => (0, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (0, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (0, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Fold the recursive options of a mount into (set, clear).
pub fn recursive_attrs(opts: &[String]) -> (u64, u64) {
    let (mut set, mut clr) = (0u64, 0u64);
    for o in opts {
        if let Some((s, c)) = recursive_option(o) {
            // The atime mode is one field (clear MOUNT_ATTR__ATIME, set
            // the value): clearing it first makes the last option win.
            set = (set & !c) | s;
            clr = (clr & !s) | c;
        }
    }
    (set, clr)
}

pub fn cstring(what: &str, s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| Error::invalid(format!("{what} contains a NUL byte")))
}

/// MS_NOSYMFOLLOW (linux/mount.h; not in every libc crate version).
pub const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// Parse mount options into (flags, propagation, data, bind, recursive).
pub fn parse_options(opts: &[String]) -> (libc::c_ulong, libc::c_ulong, String, bool) {
    let mut flags: libc::c_ulong = 0;
    let mut prop: libc::c_ulong = 0;
    let mut data: Vec<&str> = Vec::new();
    let mut bind = false;
    for o in opts {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "suid" => (0, libc::MS_NOSUID),
            "nosuid" => (libc::MS_NOSUID, 0),
            "dev" => (0, libc::MS_NODEV),
            "nodev" => (libc::MS_NODEV, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "noexec" => (libc::MS_NOEXEC, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "bind" => {
                bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" => {
                prop = libc::MS_PRIVATE;
                (0, 0)
            }
            "rprivate" => {
                prop = libc::MS_PRIVATE | libc::MS_REC;
                (0, 0)
            }
            "shared" => {
                prop = libc::MS_SHARED;
                (0, 0)
            }
            "rshared" => {
                prop = libc::MS_SHARED | libc::MS_REC;
                (0, 0)
            }
            "slave" => {
                prop = libc::MS_SLAVE;
                (0, 0)
            }
            "rslave" => {
                prop = libc::MS_SLAVE | libc::MS_REC;
                (0, 0)
            }
            "unbindable" => {
                prop = libc::MS_UNBINDABLE;
                (0, 0)
            }
            "runbindable" => {
                prop = libc::MS_UNBINDABLE | libc::MS_REC;
                (0, 0)
            }
            // "defaults" means no flag; runc-specific or handled elsewhere.
            "defaults" | "tmpcopyup" | "idmap" | "ridmap" => (0, 0),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            // Recursive attributes: mount_setattr after the mount.
            o if recursive_option(o).is_some() => (0, 0),
            other => {
                data.push(other);
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data.join(","), bind)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_to_flags() {
        let o: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755", "size=65536k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (f, p, d, b) = parse_options(&o);
        assert!(b);
        assert_eq!(
            f,
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(p, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(d, "mode=755,size=65536k");
        let (f, _, _, _) = parse_options(&["ro".into(), "rw".into()]);
        assert_eq!(f, 0);
    }

    #[test]
    fn recursive_options_become_mount_setattr_bits() {
        let o: Vec<String> = ["rbind", "rro", "rnosuid", "rnoatime"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (_, _, d, _) = parse_options(&o);
        assert_eq!(d, "", "recursive options must not reach mount(2) as data");
        let (set, clr) = recursive_attrs(&o);
        assert_eq!(
            set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(clr, MOUNT_ATTR__ATIME);
        let (set, clr) = recursive_attrs(&["rro".into(), "rrw".into()]);
        assert_eq!((set, clr), (0, MOUNT_ATTR_RDONLY));
    }
}
