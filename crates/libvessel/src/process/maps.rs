//! Writing a new user namespace's id maps, from the parent, after the clone
//! and before the child goes on. Root writes /proc/<pid>/{uid,gid}_map
//! itself. An unprivileged caller (rootless) may write only a single-id map
//! of its own euid/egid, and only after "deny" is in /proc/<pid>/setgroups
//! for the gid map (user_namespaces(7)); anything more goes through the
//! setuid helpers newuidmap/newgidmap (package uidmap), which check the
//! caller's /etc/subuid and /etc/subgid ranges.

use crate::{Error, Result};

pub struct IdMaps {
    pub uid: String,
    pub gid: String,
}

/// Write both maps of `pid`'s user namespace (an empty text is skipped).
pub fn write(pid: i32, maps: &IdMaps) -> Result<()> {
    let rootless = !nix::unistd::geteuid().is_root();
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    for (file, text, own, helper) in [
        ("uid_map", &maps.uid, euid, "newuidmap"),
        ("gid_map", &maps.gid, egid, "newgidmap"),
    ] {
        if text.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        if !rootless {
            std::fs::write(&path, text.as_bytes()).map_err(Error::io("write", &path))?;
            continue;
        }
        if only_own_id(text, own) {
            if file == "gid_map" {
                let sg = format!("/proc/{pid}/setgroups");
                std::fs::write(&sg, b"deny").map_err(Error::io("write", &sg))?;
            }
            std::fs::write(&path, text.as_bytes()).map_err(Error::io("write", &path))?;
        } else {
            run_helper(helper, pid, text, file)?;
        }
    }
    Ok(())
}

/// The map is one line mapping exactly `own` (what the kernel lets an
/// unprivileged process write itself).
fn only_own_id(text: &str, own: u32) -> bool {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let [line] = lines.as_slice() else {
        return false;
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    matches!(f.as_slice(), [_, host, "1"] if host.parse::<u32>() == Ok(own))
}

/// `newuidmap <pid> <container> <host> <size>...` (or newgidmap).
fn run_helper(helper: &str, pid: i32, text: &str, file: &str) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for line in text.lines() {
        cmd.args(line.split_whitespace());
    }
    let out = cmd.output().map_err(|e| {
        Error::Other(format!(
            "rootless: {file} maps more than this user's own id, which needs {helper} \
             (package uidmap) and this user's /etc/subuid and /etc/subgid ranges: run {helper}: {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "rootless: {helper} {pid} {} failed ({}): {}; the config's {file} must map only \
             this user's own id or ids from its /etc/subuid and /etc/subgid ranges",
            text.split_whitespace().collect::<Vec<_>>().join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::only_own_id;

    #[test]
    fn own_id_only() {
        assert!(only_own_id("0 1000 1\n", 1000));
        assert!(!only_own_id("0 1000 2\n", 1000));
        assert!(!only_own_id("0 1001 1\n", 1000));
        assert!(!only_own_id("0 1000 1\n1 100000 65536\n", 1000));
    }
}
