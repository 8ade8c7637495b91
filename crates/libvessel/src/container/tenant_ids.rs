//! A private id range per tenant: a container whose config.json has no user
//! namespace gets one, mapping its ids 0..65535 to a 65536-id block no other
//! live container has, taken from the subordinate ids of the user `vessel`
//! in /etc/subuid and /etc/subgid. Root in one tenant's container is then an
//! unprivileged uid on the host that no other tenant shares. The rootfs is
//! id-mapped with the same range, so an image owned by root needs no chown.
//!
//! When it applies (docs/tenant-ids.md has the operator's view):
//! - the annotation `vessel.userns=auto` asks for it (an engine opts in);
//!   `vessel.userns=host` refuses it;
//! - otherwise for `create`/`run` driven directly, not by an engine: vessel
//!   takes `--log-format json` (containerd and Podman always pass it) as
//!   the mark of an engine;
//! - never when the config has a user namespace of its own, when
//!   `VESSEL_TENANT_USERNS=off`, or when `vessel` has no subordinate ids
//!   (then the direct default falls back to the host's ids; an explicit
//!   `auto` fails).
//!
//! Allocations live in one registry for every `--root`: a file per block,
//! named by its first uid, holding the container's state dir, made with
//! O_EXCL under an flock, removed by `delete`. A block whose state dir is
//! gone (a create killed at the wrong moment) is taken back.

use crate::{Error, Result};
use oci_spec::runtime::Spec;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Ids per tenant.
pub const RANGE: u32 = 65536;
/// The user whose subordinate ids vessel hands out.
pub const SUBID_OWNER: &str = "vessel";
pub const ANNOTATION: &str = "vessel.userns";
pub const ENV_MODE: &str = "VESSEL_TENANT_USERNS";
pub const ENV_SUBUID: &str = "VESSEL_SUBUID_FILE";
pub const ENV_SUBGID: &str = "VESSEL_SUBGID_FILE";
pub const ENV_REGISTRY: &str = "VESSEL_TENANT_REGISTRY";
const DEFAULT_REGISTRY: &str = "/run/vessel-tenant-ids";

/// The first host uid and gid of a tenant's range (RANGE ids each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantRange {
    pub uid: u32,
    pub gid: u32,
}

/// How the config asks: Some(true) for `auto`, Some(false) for `host`.
fn annotation(spec: &Spec) -> Result<Option<bool>> {
    match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .map(String::as_str)
    {
        None => Ok(None),
        Some("auto") => Ok(Some(true)),
        Some("host") => Ok(Some(false)),
        Some(other) => Err(Error::invalid(format!(
            "annotation {ANNOTATION}={other:?}: expected \"auto\" or \"host\""
        ))),
    }
}

fn has_user_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        })
}

/// Whether this container gets a tenant range: Some(explicit) when it
/// should (explicit: the annotation asked, so a missing subid entry is an
/// error), None when it runs with the ids its config says.
pub fn wanted(spec: &Spec, engine: bool) -> Result<Option<bool>> {
    let asked = annotation(spec)?;
    if asked == Some(true) && has_user_namespace(spec) {
        return Err(Error::invalid(format!(
            "annotation {ANNOTATION}=auto and a user namespace in config.json: choose one"
        )));
    }
    if asked == Some(false) || has_user_namespace(spec) {
        return Ok(None);
    }
    if asked == Some(true) {
        return Ok(Some(true));
    }
    let off = std::env::var(ENV_MODE).is_ok_and(|v| v == "off");
    Ok((!engine && !off).then_some(false))
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The (start, count) entries of `owner` in a subuid/subgid file.
fn subid_entries(file: &Path, owner: &str) -> Result<Vec<(u32, u32)>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", file)(e)),
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.trim().split(':');
        let (Some(name), Some(start), Some(count)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if name != owner {
            continue;
        }
        if let (Ok(s), Ok(c)) = (start.parse::<u32>(), count.parse::<u32>()) {
            out.push((s, c));
        }
    }
    Ok(out)
}

/// Whole RANGE-sized blocks in the entries, in file order.
fn blocks(entries: &[(u32, u32)]) -> Vec<u32> {
    let mut out = Vec::new();
    for &(start, count) in entries {
        // Never hand out host id 0 or ids past 2^32 - 1.
        let mut b = u64::from(start.max(1));
        let end = u64::from(start) + u64::from(count);
        while b + u64::from(RANGE) <= end.min(1 << 32) {
            out.push(b as u32);
            b += u64::from(RANGE);
        }
    }
    out
}

/// The uid and gid blocks vessel may hand out, paired in order.
fn candidates() -> Result<Vec<TenantRange>> {
    let uids = blocks(&subid_entries(
        &env_path(ENV_SUBUID, "/etc/subuid"),
        SUBID_OWNER,
    )?);
    let gids = blocks(&subid_entries(
        &env_path(ENV_SUBGID, "/etc/subgid"),
        SUBID_OWNER,
    )?);
    Ok(uids
        .into_iter()
        .zip(gids)
        .map(|(uid, gid)| TenantRange { uid, gid })
        .collect())
}

/// The registry dir, locked for the caller's lifetime.
struct Registry {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Registry {
    fn open() -> Result<Registry> {
        let dir = env_path(ENV_REGISTRY, DEFAULT_REGISTRY);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(Error::io("create", &dir))?;
        let path = dir.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map(|l| Registry { dir, _lock: l })
            .map_err(|(_, e)| Error::sys("lock the tenant id registry")(e))
    }

    fn entry(&self, r: &TenantRange) -> PathBuf {
        self.dir.join(r.uid.to_string())
    }

    /// Who holds `r`: the state dir written at allocation.
    fn holder(&self, r: &TenantRange) -> Option<PathBuf> {
        std::fs::read_to_string(self.entry(r))
            .ok()
            .map(|t| PathBuf::from(t.trim_end_matches('\n')))
    }
}

/// Take a free block for the container whose state dir is `state_dir`.
/// None when `vessel` has no subordinate ids and the range was not asked for
/// explicitly.
pub fn allocate(state_dir: &Path, explicit: bool) -> Result<Option<TenantRange>> {
    let all = candidates()?;
    if all.is_empty() {
        return if explicit {
            Err(Error::invalid(format!(
                "annotation {ANNOTATION}=auto: user {SUBID_OWNER} has no range of {RANGE} \
                 subordinate ids in both /etc/subuid and /etc/subgid (see docs/tenant-ids.md)"
            )))
        } else {
            crate::logging::debug(&format!(
                "user {SUBID_OWNER} has no subordinate ids: the container keeps the ids of its config"
            ));
            Ok(None)
        };
    }
    let reg = Registry::open()?;
    for r in &all {
        if let Some(holder) = reg.holder(r) {
            if holder.is_dir() {
                continue;
            }
            // Its container is gone without a delete: take the block back.
            let _ = std::fs::remove_file(reg.entry(r));
        }
        let path = reg.entry(r);
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &path)(e)),
        };
        f.write_all(state_dir.as_os_str().as_encoded_bytes())
            .map_err(Error::io("write", &path))?;
        return Ok(Some(*r));
    }
    Err(Error::Other(format!(
        "no free tenant id range: all {} ranges of user {SUBID_OWNER}'s subordinate ids are in use",
        all.len()
    )))
}

/// Give `r` back, if the container at `state_dir` still holds it.
pub fn release(state_dir: &Path, r: &TenantRange) -> Result<()> {
    let reg = Registry::open()?;
    if reg.holder(r).as_deref() == Some(state_dir) {
        let path = reg.entry(r);
        std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
    }
    Ok(())
}

/// The config as the container will run: its own user namespace mapping
/// 0..RANGE to the tenant's range.
pub fn apply_to_spec(spec: &mut Spec, r: &TenantRange) -> Result<()> {
    use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};
    let map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(RANGE)
            .build()
            .map_err(|e| Error::Other(format!("tenant id mapping: {e}")))
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut ns = linux.namespaces().clone().unwrap_or_default();
    ns.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .map_err(|e| Error::Other(format!("tenant user namespace: {e}")))?,
    );
    linux.set_namespaces(Some(ns));
    linux.set_uid_mappings(Some(vec![map(r.uid)?]));
    linux.set_gid_mappings(Some(vec![map(r.gid)?]));
    spec.set_linux(Some(linux));
    Ok(())
}

/// The rootfs's id mapping: on-disk 0..RANGE seen as the tenant's range.
pub fn rootfs_idmap(spec: &Spec) -> Option<crate::isolation::idmap::MountIdmap> {
    let linux = spec.linux().as_ref()?;
    Some(crate::isolation::idmap::MountIdmap {
        uid: linux.uid_mappings().clone()?,
        gid: linux.gid_mappings().clone()?,
        recursive: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_whole_and_skip_id_zero() {
        assert_eq!(blocks(&[(100_000, 65536 * 2 + 5)]), vec![100_000, 165_536]);
        assert_eq!(blocks(&[(0, 65536 * 2)]), vec![1]);
        assert!(blocks(&[(100_000, 1000)]).is_empty());
        assert_eq!(blocks(&[(u32::MAX - 65536, 65536)]), vec![u32::MAX - 65536]);
        assert!(blocks(&[(u32::MAX - 100, 65536)]).is_empty());
    }

    #[test]
    fn entries_of_the_owner_only() {
        let d = std::env::temp_dir().join(format!("vessel-subid-{}", std::process::id()));
        std::fs::write(
            &d,
            "alice:100000:65536\nvessel:1000000:131072\nbad line\nvessel:x:1\n",
        )
        .unwrap();
        assert_eq!(
            subid_entries(&d, "vessel").unwrap(),
            vec![(1_000_000, 131_072)]
        );
        std::fs::remove_file(&d).unwrap();
        assert!(subid_entries(&d, "vessel").unwrap().is_empty());
    }
}
