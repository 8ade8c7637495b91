//! Semantic checks on a parsed spec, beyond what serde already enforces.

use crate::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Component, Path};

pub fn validate(spec: &Spec, raw: &serde_json::Value) -> Result<()> {
    let version = spec.version();
    if !version.starts_with("1.") {
        return Err(Error::invalid(format!(
            "unsupported ociVersion {version:?} (vessel implements 1.x)"
        )));
    }
    if raw.get("ociVersion").is_none() {
        return Err(Error::invalid("config.json: ociVersion is missing"));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json: process is missing"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(Error::invalid(
                "config.json: process.args must not be empty",
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(Error::invalid(format!(
            "config.json: process.cwd {:?} is not an absolute path",
            process.cwd()
        )));
    }
    if let Some(mounts) = spec.mounts() {
        for m in mounts {
            check_container_path("mount destination", m.destination())?;
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        for ns in linux.namespaces().iter().flatten() {
            if !seen.insert(ns.typ()) {
                return Err(Error::invalid(format!(
                    "config.json: namespace {:?} is listed twice",
                    ns.typ()
                )));
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(Error::invalid(format!(
                        "config.json: namespace path {} is not absolute",
                        p.display()
                    )));
                }
                if !p.exists() {
                    return Err(Error::invalid(format!(
                        "config.json: namespace path {}: no such file",
                        p.display()
                    )));
                }
            }
        }
        let has_userns = seen.contains(&LinuxNamespaceType::User);
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps && !has_userns {
            return Err(Error::invalid(
                "config.json: uidMappings/gidMappings need a user namespace",
            ));
        }
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
            && !seen.contains(&LinuxNamespaceType::Uts)
        {
            return Err(Error::invalid(
                "config.json: hostname needs a new uts namespace",
            ));
        }
        for p in linux.masked_paths().iter().flatten() {
            check_container_path("masked path", Path::new(p))?;
        }
        for p in linux.readonly_paths().iter().flatten() {
            check_container_path("readonly path", Path::new(p))?;
        }
        for d in linux.devices().iter().flatten() {
            check_container_path("device path", d.path())?;
        }
        check_sysctls(linux)?;
        check_inherited_mount_namespace(spec, linux)?;
    }
    // Before any side effect: a notify profile needs its agent's socket.
    if let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        crate::isolation::seccomp::check_listener(sc)?;
    }
    Ok(())
}

/// A path inside the container: absolute and free of `..`, so that nothing
/// in config.json can name a place outside the rootfs.
pub fn check_container_path(what: &str, p: &Path) -> Result<()> {
    if !p.is_absolute() {
        return Err(Error::invalid(format!(
            "config.json: {what} {} is not an absolute path",
            p.display()
        )));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(Error::invalid(format!(
            "config.json: {what} {} contains \"..\"",
            p.display()
        )));
    }
    Ok(())
}

/// The components of a sysctl key: dots separate them (`net.ipv4.ip_forward`),
/// or slashes when the key has any (`net/ipv4/conf/eth0.1/forwarding`, where a
/// dot belongs to an interface name). Each must be a plain name: no empty
/// part, no `.` or `..`, no NUL, so the key can only name a file below
/// /proc/sys.
pub fn sysctl_components(key: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = if key.contains('/') {
        key.split('/').collect()
    } else {
        key.split('.').collect()
    };
    let bad = key.is_empty()
        || key.contains('\0')
        || parts.len() < 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..");
    if bad {
        return Err(Error::invalid(format!(
            "config.json: linux.sysctl: bad sysctl name {key:?}"
        )));
    }
    Ok(parts)
}

/// ipc-namespaced sysctls (runc's list), plus everything under fs.mqueue.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The container's own namespace of a type: created new, or joined by a
/// path that is not the runtime's own (the host's) namespace. Anything else
/// means a write would land in the host's namespace.
fn has_own_namespace(linux: &oci_spec::runtime::Linux, typ: LinuxNamespaceType) -> Result<bool> {
    let Some(ns) = linux.namespaces().iter().flatten().find(|n| n.typ() == typ) else {
        return Ok(false);
    };
    match ns.path() {
        None => Ok(true),
        Some(p) => Ok(!is_runtime_namespace(p, typ)?),
    }
}

/// The container's mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MntNs {
    /// A new one (clone/unshare): bind the rootfs, mount, pivot_root.
    New,
    /// Another process's, joined by path: the rootfs is set up in it, as
    /// runc does (it must not be the runtime's own: that is `Inherit`).
    Join,
    /// The runtime's own (no `mount` entry, or a path naming vessel's own
    /// namespace): no propagation change, no rootfs bind, no pivot_root
    /// (it would move every host process's root); chroot into the rootfs.
    Inherit,
}

/// Which mount namespace the container gets (paths already checked to exist).
pub fn mount_namespace(linux: &oci_spec::runtime::Linux) -> Result<MntNs> {
    let entry = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::Mount);
    Ok(match entry.map(|n| n.path()) {
        None => MntNs::Inherit,
        Some(None) => MntNs::New,
        Some(Some(p)) if is_runtime_namespace(p, LinuxNamespaceType::Mount)? => MntNs::Inherit,
        Some(Some(_)) => MntNs::Join,
    })
}

/// Is the namespace at `path` the one vessel itself runs in?
pub fn is_runtime_namespace(path: &Path, typ: LinuxNamespaceType) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let own = format!(
        "/proc/self/ns/{}",
        crate::isolation::namespaces::proc_name(typ)
    );
    let a = std::fs::metadata(path).map_err(|e| {
        Error::invalid(format!(
            "config.json: namespace path {}: {e}",
            path.display()
        ))
    })?;
    let b = std::fs::metadata(&own).map_err(|e| Error::invalid(format!("{own}: {e}")))?;
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Only namespaced sysctls, each only with the container's own namespace of
/// that kind (runc's validator): anything else would change the host.
fn check_sysctls(linux: &oci_spec::runtime::Linux) -> Result<()> {
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        let name = sysctl_components(key)?.join(".");
        let refuse = |why: String| {
            Err(Error::invalid(format!(
                "config.json: linux.sysctl {key:?} is refused: {why}"
            )))
        };
        if IPC_SYSCTLS.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
            if !has_own_namespace(linux, LinuxNamespaceType::Ipc)? {
                return refuse(
                    "it belongs to the ipc namespace and the container has none of its own".into(),
                );
            }
            continue;
        }
        if name.starts_with("net.") {
            if !has_own_namespace(linux, LinuxNamespaceType::Network)? {
                return refuse(
                    "it belongs to the network namespace and the container has none of its own"
                        .into(),
                );
            }
            continue;
        }
        match name.as_str() {
            "kernel.domainname" => {
                if !has_own_namespace(linux, LinuxNamespaceType::Uts)? {
                    return refuse(
                        "it belongs to the uts namespace and the container has none of its own"
                            .into(),
                    );
                }
            }
            "kernel.hostname" => {
                return refuse("it conflicts with the OCI \"hostname\" field (set that)".into())
            }
            _ => {
                return refuse(
                    "it is not in a separate kernel namespace, so it would change the host".into(),
                )
            }
        }
    }
    Ok(())
}

/// May a container that inherits vessel's own mount namespace mount in it?
/// Only when that namespace is not the host's (pid 1's): vessel never
/// changes the host's mount table (runc does, and leaves the mounts behind).
/// Where pid 1's namespace cannot be inspected (EACCES under some
/// sandboxes), assume it is the host's.
pub fn may_mount_inherited() -> Result<bool> {
    Ok(matches!(
        is_runtime_namespace(Path::new("/proc/1/ns/mnt"), LinuxNamespaceType::Mount),
        Ok(false)
    ))
}

/// No `mount` namespace entry (or one naming vessel's own) means the
/// container inherits the runtime's mount namespace (runtime spec). What
/// needs a private one is refused by name, before any side effect.
fn check_inherited_mount_namespace(spec: &Spec, linux: &oci_spec::runtime::Linux) -> Result<()> {
    let inherited = mount_namespace(linux)? == MntNs::Inherit;
    if !inherited {
        return Ok(());
    }
    let refuse = |field: &str, why: &str| {
        Err(Error::invalid(format!(
            "config.json: {field} needs a private mount namespace (add {{\"type\": \"mount\"}} \
             to linux.namespaces): {why}"
        )))
    };
    if linux.masked_paths().as_ref().is_some_and(|v| !v.is_empty())
        || linux
            .readonly_paths()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
    {
        return refuse(
            "linux.maskedPaths/readonlyPaths",
            "they would be mounted over the runtime's own paths",
        );
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.readonly().unwrap_or(false))
    {
        return refuse(
            "root.readonly",
            "it would remount the runtime's own filesystem",
        );
    }
    if linux
        .rootfs_propagation()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return refuse(
            "linux.rootfsPropagation",
            "it would change the propagation of the runtime's own mounts",
        );
    }
    if !may_mount_inherited()? {
        if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
            return refuse(
                "mounts",
                "the runtime runs in the host's mount namespace, whose mount table a container \
                 must not change",
            );
        }
        if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return refuse(
                "linux.devices",
                "device nodes would be created on the host's filesystem",
            );
        }
    }
    Ok(())
}
