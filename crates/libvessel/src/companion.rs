//! Finding vessel's companion binaries (vessel-agent for VM mode,
//! vessel-probe for `compare`): one search order for both.

use std::path::{Path, PathBuf};

/// Where an installed companion is looked for when it is not next to vessel.
const INSTALL_DIRS: &[&str] = &[
    "/usr/local/lib/vessel",
    "/usr/lib/vessel",
    "/usr/local/bin",
    "/usr/bin",
];

/// `explicit` (a flag), then `$env`, then next to the running vessel, then
/// the usual install directories. A path given by flag or env must be a
/// file. When nothing is found, the message lists every place tried and
/// ends with `hint`.
pub fn find(name: &str, env: &str, explicit: Option<&Path>, hint: &str) -> Result<PathBuf, String> {
    find_with(name, env, explicit, &[], hint)
}

/// [`find`], with `extra` paths (full file paths) tried last.
pub fn find_with(
    name: &str,
    env: &str,
    explicit: Option<&Path>,
    extra: &[&str],
    hint: &str,
) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{name} {} is not a file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{env}={} is not a file", p.display()))
        };
    }
    let mut tried = Vec::new();
    // The binary on disk, also when running from its sealed in-memory copy.
    if let Some(exe) = crate::process::sealed_exe::host_exe() {
        if let Some(dir) = exe.parent() {
            tried.push(dir.join(name));
        }
    }
    tried.extend(INSTALL_DIRS.iter().map(|d| Path::new(d).join(name)));
    tried.extend(extra.iter().map(PathBuf::from));
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(format!("{name} not found in {}; {hint}", list.join(", ")))
}
