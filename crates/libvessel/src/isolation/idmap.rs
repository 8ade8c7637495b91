//! Id-mapped bind mounts (`mounts[].uidMappings`/`gidMappings`, the
//! `idmap` and `ridmap` options): the files of a host directory show up
//! with other owners in the container, and what the container writes lands
//! on disk with the owners the mapping gives back, with no chown.
//!
//! The runtime does it on the host side before the init exists: a detached
//! copy of the source (open_tree), a throwaway user namespace that holds the
//! mapping, and mount_setattr(MOUNT_ATTR_IDMAP) with it. The init then
//! attaches the copy with move_mount, as it does for every bind made on the
//! host side (`MountOp::tree_fd`).
//!
//! The mapping reads like `linux.uidMappings`: an id `containerID + i` on
//! disk is seen as host id `hostID + i`, which the container's own user
//! namespace then shows as whatever it maps that host id to.

use crate::process::spawn::{self, Reaper};
use crate::{Error, Result};
use oci_spec::runtime::{LinuxIdMapping, Spec};
use serde_json::Value;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// mount_setattr(2) attribute: give the mount the id mapping of a user namespace.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_EMPTY_PATH: libc::c_uint = 0x1000;

/// The id mapping of one config.json mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountIdmap {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
    /// `ridmap`: every mount of the tree, not only its top.
    pub recursive: bool,
}

/// One entry per config.json mount: its id mapping, or None. Refuses, by
/// mount, what cannot be done: a mapping on anything but a bind mount, one
/// of uidMappings/gidMappings without the other, `idmap` without mappings
/// in a container that has no user-namespace mappings to borrow.
pub fn mount_idmaps(spec: &Spec, raw: &Value) -> Result<Vec<Option<MountIdmap>>> {
    let raw_mounts = raw.get("mounts").and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let raw_m = raw_mounts.and_then(|a| a.get(i));
        out.push(one_mount(spec, m, raw_m, i)?);
    }
    Ok(out)
}

fn one_mount(
    spec: &Spec,
    m: &oci_spec::runtime::Mount,
    raw: Option<&Value>,
    index: usize,
) -> Result<Option<MountIdmap>> {
    let opts = m.options().clone().unwrap_or_default();
    let has = |o: &str| opts.iter().any(|x| x == o);
    let uid = parse_maps(raw, "uidMappings", index)?;
    let gid = parse_maps(raw, "gidMappings", index)?;
    let option = has("idmap") || has("ridmap");
    if !option && uid.is_none() && gid.is_none() {
        return Ok(None);
    }
    let dest = m.destination().display();
    let what = |why: &str| Error::invalid(format!("config.json: mounts[{index}] ({dest}): {why}"));
    let bind = m.typ().as_deref() == Some("bind") || has("bind") || has("rbind");
    if !bind {
        return Err(what(
            "id-mapped mounts (uidMappings, gidMappings, idmap, ridmap) are supported for bind mounts only",
        ));
    }
    let (uid, gid) = match (uid, gid) {
        (Some(u), Some(g)) => (u, g),
        (None, None) => container_maps(spec).ok_or_else(|| {
            what("idmap without uidMappings/gidMappings borrows the container's user-namespace mappings, and it has none")
        })?,
        _ => return Err(what("uidMappings and gidMappings must be given together")),
    };
    if uid.is_empty() || gid.is_empty() {
        return Err(what("uidMappings and gidMappings must not be empty"));
    }
    for map in uid.iter().chain(&gid) {
        if map.size() == 0
            || map.container_id().checked_add(map.size()).is_none()
            || map.host_id().checked_add(map.size()).is_none()
        {
            return Err(what(&format!(
                "mapping {} {} {} is empty or runs past 2^32",
                map.container_id(),
                map.host_id(),
                map.size()
            )));
        }
    }
    Ok(Some(MountIdmap {
        uid,
        gid,
        recursive: has("ridmap"),
    }))
}

/// `mounts[i].<key>` from the raw JSON (oci-spec 0.7 does not know it).
fn parse_maps(raw: Option<&Value>, key: &str, index: usize) -> Result<Option<Vec<LinuxIdMapping>>> {
    let Some(v) = raw.and_then(|r| r.get(key)) else {
        return Ok(None);
    };
    serde_json::from_value(v.clone())
        .map(Some)
        .map_err(|e| Error::invalid(format!("config.json: mounts[{index}].{key}: {e}")))
}

fn container_maps(spec: &Spec) -> Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let linux = spec.linux().as_ref()?;
    let uid = linux.uid_mappings().clone().filter(|m| !m.is_empty())?;
    let gid = linux.gid_mappings().clone().filter(|m| !m.is_empty())?;
    Some((uid, gid))
}

/// A user namespace holding `map`, as an fd: a child made with
/// CLONE_NEWUSER waits while its maps are written and its namespace opened,
/// then is killed. The namespace lives on through the fd.
pub fn userns_fd(map: &MountIdmap) -> Result<OwnedFd> {
    let pid = spawn::clone_process(libc::CLONE_NEWUSER)?;
    if pid == 0 {
        // The child only waits for SIGKILL: pause() is async-signal-safe.
        loop {
            // SAFETY: pause has no arguments and no side effects.
            unsafe { libc::pause() };
        }
    }
    let _reaper = Reaper::new(pid);
    for (file, maps) in [("uid_map", &map.uid), ("gid_map", &map.gid)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, crate::process::plan::id_map_text(maps))
            .map_err(Error::io("write", &path))?;
    }
    let path = format!("/proc/{pid}/ns/user");
    let ns = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
    Ok(OwnedFd::from(ns))
}

/// The mount_attr argument of mount_setattr(2) (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Give the detached tree `tree` the mapping of `userns` (its top mount, or
/// every mount of it when `recursive`).
pub fn apply(tree: RawFd, userns: RawFd, recursive: bool, source: &str) -> Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns as u64,
    };
    let mut flags = AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: tree is a valid fd, the path is an empty C string, attr is a
    // live struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        let e = nix::errno::Errno::last();
        let hint = match e {
            nix::errno::Errno::EINVAL => {
                " (the filesystem may not support id-mapped mounts, or a mount below is already id-mapped)"
            }
            _ => "",
        };
        return Err(Error::Sys {
            what: format!("id-map the bind mount of {source}{hint}"),
            source: e,
        });
    }
    Ok(())
}

/// Make every mount of the detached tree `tree` (a host-side
/// OPEN_TREE_CLONE copy) a slave: a clone of a shared host mount is a peer
/// of it, and once attached in a user-namespaced container (whose mount
/// namespace, unlike one made by unshare in a new user namespace, does not
/// turn host peers into slaves) the tenant's mounts below it would
/// propagate into the host's mount namespace. As a slave it still receives
/// the host's mounts; a config's `rshared` then makes a new peer group, as
/// in runc.
pub fn host_slave(tree: RawFd, source: &str) -> Result<()> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: libc::MS_SLAVE,
        userns_fd: 0,
    };
    // SAFETY: tree is a valid fd, the path is an empty C string, attr is a
    // live struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree,
            c"".as_ptr(),
            AT_EMPTY_PATH | libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Error::sys(format!(
            "make the copy of {source} a slave of the host's mounts"
        ))(nix::errno::Errno::last()));
    }
    Ok(())
}

/// A detached copy of `source` with `map` applied: what the init attaches.
pub fn idmapped_tree(source: &std::ffi::CStr, rec_bind: bool, map: &MountIdmap) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if rec_bind {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: source is NUL-terminated; the flags are plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::sys(format!(
            "open bind mount source {}",
            source.to_string_lossy()
        ))(nix::errno::Errno::last()));
    }
    // SAFETY: a fresh fd we own.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let userns = userns_fd(map)?;
    apply(
        tree.as_raw_fd(),
        userns.as_raw_fd(),
        map.recursive,
        &source.to_string_lossy(),
    )?;
    Ok(tree)
}

/// The rootfs opened by the runtime for an init that cannot reach it by
/// path (its root is an unprivileged host uid, and the bundle may sit in a
/// 0700 directory such as /root): the directory itself (O_PATH, opened
/// without following a symlink anywhere on its path, as the init opens it)
/// and a detached, id-mapped copy of it (every mount of it) to attach there.
pub struct IdmappedRootfs {
    pub dir: OwnedFd,
    pub tree: OwnedFd,
}

pub fn idmapped_rootfs(rootfs: &std::path::Path, map: &MountIdmap) -> Result<IdmappedRootfs> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    let path = std::ffi::CString::new(rootfs.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid("rootfs path contains a NUL byte"))?;
    /// struct open_how (linux/openat2.h).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: path is NUL-terminated and `how` a live struct of the size passed.
    let dir = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if dir < 0 {
        return Err(Error::sys(format!("open rootfs {}", rootfs.display()))(
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: a fresh fd we own.
    let dir = unsafe { OwnedFd::from_raw_fd(dir as RawFd) };
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint
        | AT_EMPTY_PATH;
    // SAFETY: a valid fd, an empty C string with AT_EMPTY_PATH.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::sys(format!("copy the rootfs {}", rootfs.display()))(
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: a fresh fd we own.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    host_slave(tree.as_raw_fd(), &rootfs.display().to_string())?;
    let userns = userns_fd(map)?;
    apply(
        tree.as_raw_fd(),
        userns.as_raw_fd(),
        true,
        &rootfs.display().to_string(),
    )?;
    Ok(IdmappedRootfs { dir, tree })
}

/// Whether this kernel has id-mapped mounts (mount_setattr, Linux 5.12):
/// for `vessel features`. Whether a given filesystem allows them is only
/// known when a mount is made.
pub fn kernel_supports_idmap() -> bool {
    // SAFETY: mount_setattr with an invalid fd and no attributes changes
    // nothing; only the errno is read.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            0,
            std::ptr::null::<MountAttr>(),
            0usize,
        )
    };
    r < 0 && nix::errno::Errno::last() != nix::errno::Errno::ENOSYS
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_of(v: Value) -> (Spec, Value) {
        let mut base = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        (serde_json::from_value(base.clone()).unwrap(), base)
    }

    #[test]
    fn explicit_maps_on_a_bind() {
        let (s, raw) = spec_of(json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ridmap"],
             "uidMappings": [{"containerID": 1000, "hostID": 100000, "size": 1}],
             "gidMappings": [{"containerID": 1000, "hostID": 100000, "size": 1}]}
        ]}));
        let v = mount_idmaps(&s, &raw).unwrap();
        assert_eq!(v[0], None);
        let m = v[1].as_ref().unwrap();
        assert!(m.recursive);
        assert_eq!(m.uid[0].container_id(), 1000);
        assert_eq!(m.uid[0].host_id(), 100000);
    }

    #[test]
    fn refusals_name_the_mount() {
        let (s, raw) = spec_of(json!({"mounts": [
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}
        ]}));
        let e = mount_idmaps(&s, &raw).unwrap_err().to_string();
        assert!(
            e.contains("mounts[0] (/t)") && e.contains("bind mounts only"),
            "{e}"
        );
        let (s, raw) = spec_of(json!({"mounts": [
            {"destination": "/d", "type": "bind", "source": "/srv", "options": ["bind"],
             "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}
        ]}));
        let e = mount_idmaps(&s, &raw).unwrap_err().to_string();
        assert!(e.contains("together"), "{e}");
        let (s, raw) = spec_of(json!({"mounts": [
            {"destination": "/d", "type": "bind", "source": "/srv", "options": ["bind", "idmap"]}
        ]}));
        let e = mount_idmaps(&s, &raw).unwrap_err().to_string();
        assert!(e.contains("has none"), "{e}");
    }

    #[test]
    fn idmap_borrows_the_container_maps() {
        let (s, raw) = spec_of(json!({
            "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}],
                      "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                      "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
            "mounts": [{"destination": "/d", "type": "bind", "source": "/srv", "options": ["bind", "idmap"]}]
        }));
        let m = mount_idmaps(&s, &raw).unwrap().remove(0).unwrap();
        assert!(!m.recursive);
        assert_eq!(m.uid[0].host_id(), 100000);
    }

    #[test]
    fn this_kernel_has_mount_setattr() {
        assert!(kernel_supports_idmap());
    }
}
