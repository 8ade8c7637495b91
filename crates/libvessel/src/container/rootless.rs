//! Rootless: vessel run by an unprivileged user (euid != 0), or as root of
//! a user namespace that is not the host's (rootless Podman), as runc and
//! crun allow. What differs from a run as root:
//! - the state root defaults to `$XDG_RUNTIME_DIR/vessel`, else
//!   `/tmp/vessel-<uid>` (made 0700, refused when someone else owns it);
//!   root of a user namespace uses /run/vessel when `$USER` is "root";
//! - the id maps are written as the kernel lets an unprivileged user
//!   (`process::maps`): its own id directly, more through newuidmap and
//!   newgidmap with the user's /etc/subuid and /etc/subgid ranges;
//! - cgroups: a delegated cgroup v2 subtree the user may write is used;
//!   without one the container runs in the caller's cgroup when the config
//!   asks for no limit, and create refuses a config that asks for one;
//! - rlimits above the caller's hard limit are refused before anything is
//!   made (a user namespace's root cannot raise a hard limit either).

use crate::cgroups::{Cgroup, Layout};
use crate::{logging, Error, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// vessel runs rootless: the caller is not root, or is root only inside a
/// user namespace (rootless Podman runs the runtime as uid 0 of its own
/// user namespace), where the host's cgroups and limits are out of reach
/// just the same. runc decides the same way.
pub fn active() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// This process is in a user namespace other than the initial one: its
/// uid_map is not the identity over every id ("0 0 4294967295").
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_initial_uid_map(&map),
        // No /proc: nothing says we are confined; keep root's behaviour.
        Err(_) => false,
    }
}

fn is_initial_uid_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Root in a user namespace keeps state under `$XDG_RUNTIME_DIR` unless
/// `$USER` says it is the real root (runc's rule): /run/vessel belongs to
/// the host's root, who is nobody in there.
fn honours_xdg_runtime_dir() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    in_user_namespace() && std::env::var_os("USER").is_none_or(|u| u != "root")
}

/// The state root when `--root` is not given: /run/vessel for root;
/// `$XDG_RUNTIME_DIR/vessel` for another user (runc's choice), else
/// `/tmp/vessel-<uid>`, made here 0700 and checked to be a directory (not a
/// link) this user owns: /tmp is shared, and whoever owns the root could
/// plant or read container state.
pub fn default_root() -> Result<PathBuf> {
    if !active() {
        return Ok(PathBuf::from(crate::cgroups::DEFAULT_ROOT));
    }
    if honours_xdg_runtime_dir() {
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
            let xdg = PathBuf::from(xdg);
            if xdg.is_absolute() {
                return Ok(xdg.join("vessel"));
            }
        }
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from(crate::cgroups::DEFAULT_ROOT));
    }
    let uid = nix::unistd::geteuid().as_raw();
    let dir = PathBuf::from(format!("/tmp/vessel-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create runtime root", &dir)(e)),
    }
    let md = std::fs::symlink_metadata(&dir).map_err(Error::io("stat runtime root", &dir))?;
    if !md.is_dir() || md.uid() != uid {
        return Err(Error::invalid(format!(
            "runtime root {} (the default without XDG_RUNTIME_DIR) is not a directory owned by \
             uid {uid} (owner uid {}): someone else made it; set XDG_RUNTIME_DIR or pass --root",
            dir.display(),
            md.uid()
        )));
    }
    Ok(dir)
}

/// The cgroup of a rootless container: a delegated (writable) cgroup v2
/// directory when the host has one, else none. None too with
/// `--cgroup-manager disabled`. A config asking for limits with no such
/// cgroup is refused, naming the limit.
pub fn resolve_cgroup(
    root: &Path,
    id: &str,
    linux: &oci_spec::runtime::Linux,
    disabled: bool,
) -> Result<Option<Cgroup>> {
    if disabled {
        return Ok(None);
    }
    let limits = limits_asked(linux.resources().as_ref());
    let path = match linux.cgroups_path().as_ref().and_then(|p| p.to_str()) {
        Some(p) if !p.is_empty() => p.to_string(),
        // Relative: below the caller's own (delegated) cgroup, which is
        // where a user may write; "/vessel/..." at the root never is.
        _ => Cgroup::default_path(root, id)
            .trim_start_matches('/')
            .to_string(),
    };
    let why = match Cgroup::resolve(Some(&path), id) {
        Ok(cg) => match delegated(&cg) {
            Ok(()) => {
                logging::debug(&format!(
                    "rootless: using the delegated cgroup {}",
                    cg.unified.as_deref().unwrap_or(Path::new("")).display()
                ));
                return Ok(Some(cg));
            }
            Err(why) => why,
        },
        Err(e) => e.to_string(),
    };
    if let Some(first) = limits.first() {
        return Err(Error::invalid(format!(
            "rootless: cannot apply resources.{first} (config.json asks for {}): {why}; \
             remove the limits, or run as root or with a delegated cgroup v2 subtree",
            limits.join(", ")
        )));
    }
    logging::debug(&format!(
        "rootless: running without a cgroup of its own (no limits asked): {why}"
    ));
    Ok(None)
}

/// Ok when this user may make and use `cg`: a pure cgroup v2 host and the
/// nearest existing ancestor of the container's directory writable (with
/// its cgroup.procs, which moving a process needs).
fn delegated(cg: &Cgroup) -> std::result::Result<(), String> {
    if cg.layout != Layout::V2 {
        return Err(format!(
            "this host's cgroups are {:?} (cgroup v1 controllers), which cannot be delegated \
             to an unprivileged user",
            cg.layout
        ));
    }
    let Some(dir) = cg.unified.as_deref() else {
        return Err("no cgroup v2 directory".into());
    };
    let mut at = dir;
    while !at.is_dir() {
        at = at
            .parent()
            .ok_or("no existing cgroup above the container's")?;
    }
    for p in [at.to_path_buf(), at.join("cgroup.procs")] {
        if nix::unistd::access(&p, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(format!(
                "{} is not writable by this user (the cgroup is not delegated)",
                p.display()
            ));
        }
    }
    Ok(())
}

/// The resource limits a config asks for, as "memory.limit", ...: every
/// value set under linux.resources but the device rules (a user namespace
/// cannot make device nodes; the host's are bound, as runc does rootless).
pub fn limits_asked(res: Option<&oci_spec::runtime::LinuxResources>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(res) = res else { return out };
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(res) else {
        return out;
    };
    for (k, v) in &map {
        if k != "devices" {
            collect_set(k, v, &mut out);
        }
    }
    out
}

fn collect_set(path: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Null => {}
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                collect_set(&format!("{path}.{k}"), v, out);
            }
        }
        serde_json::Value::Array(a) if a.is_empty() => {}
        _ => out.push(path.to_string()),
    }
}

/// Refuse rlimits above the caller's hard limit: an unprivileged user (and
/// root in its user namespace) cannot raise one, so the init would fail
/// late with EPERM; this says which limit, before anything is made.
pub fn check_rlimits(process: &oci_spec::runtime::Process) -> Result<()> {
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_string(&r.typ()).unwrap_or_default();
        let name = name.trim_matches('"');
        let Some(res) = crate::isolation::rlimits::resource(name) else {
            continue;
        };
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a stack struct.
        if unsafe { libc::getrlimit(res, &mut cur) } != 0 {
            continue;
        }
        if cur.rlim_max != libc::RLIM_INFINITY && r.hard() > cur.rlim_max {
            return Err(Error::invalid(format!(
                "rootless: process.rlimits {name} hard {} is above this user's hard limit {}: \
                 an unprivileged user cannot raise it (lower it in config.json)",
                r.hard(),
                cur.rlim_max
            )));
        }
    }
    Ok(())
}

/// Refuse id-mapped mounts: the kernel lets only a holder of CAP_SYS_ADMIN
/// over the filesystem's own user namespace (the host's, for a host
/// directory) id-map a mount, which no rootless caller is. Said at create,
/// naming the mount, rather than as a bare EPERM from the init.
pub fn check_no_idmapped_mounts(
    spec: &oci_spec::runtime::Spec,
    idmaps: &[Option<crate::isolation::idmap::MountIdmap>],
) -> Result<()> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    for (i, (m, map)) in mounts.iter().zip(idmaps).enumerate() {
        if map.is_some() {
            return Err(Error::invalid(format!(
                "config.json: mounts[{i}] ({}): rootless: id-mapped mounts need CAP_SYS_ADMIN \
                 in the host's user namespace (the filesystem's owner), which an unprivileged \
                 caller does not have; drop uidMappings/gidMappings/idmap from the mount, or \
                 run as root",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

/// `spec --rootless`: runc's rootless template with the caller's own uid
/// and gid as the host side of its single-id maps.
pub fn rootless_spec_text(template: &str) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(template)
        .map_err(|e| Error::Other(format!("the built-in rootless spec: {e}")))?;
    let ids = [
        ("uidMappings", nix::unistd::geteuid().as_raw()),
        ("gidMappings", nix::unistd::getegid().as_raw()),
    ];
    for (key, id) in ids {
        if let Some(maps) = v["linux"][key].as_array_mut() {
            for m in maps {
                m["hostID"] = serde_json::json!(id);
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&v)
        .map_err(|e| Error::Other(format!("the built-in rootless spec: {e}")))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_ignore_devices_and_empty_sections() {
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {},
            "hugepageLimits": []
        }))
        .expect("parse");
        assert!(limits_asked(Some(&res)).is_empty());
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576},
            "pids": {"limit": 10}
        }))
        .expect("parse");
        assert_eq!(limits_asked(Some(&res)), ["memory.limit", "pids.limit"]);
    }

    #[test]
    fn initial_uid_map_is_recognised() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1001          1\n"));
        assert!(!is_initial_uid_map(
            "0 1001 1\n         1     100000      65536\n"
        ));
        assert!(!is_initial_uid_map(""));
    }

    #[test]
    fn rootless_spec_maps_the_caller() {
        let t = rootless_spec_text(crate::spec::ROOTLESS_SPEC).expect("spec");
        let v: serde_json::Value = serde_json::from_str(&t).expect("json");
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], uid);
        assert_eq!(v["linux"]["uidMappings"][0]["size"], 1);
    }
}
