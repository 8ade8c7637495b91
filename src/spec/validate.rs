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
        for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
            if key.is_empty() || key.contains("..") || key.contains('/') && key.contains('.') {
                return Err(Error::invalid(format!(
                    "config.json: bad sysctl name {key:?}"
                )));
            }
        }
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
