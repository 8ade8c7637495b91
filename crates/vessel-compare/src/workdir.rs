//! The work directory of one comparison: a copy of the bundle's rootfs with
//! vessel-probe in it, one bundle directory per mode (config.json only, its
//! root.path pointing at the shared copy), and a private state root.
//! Removed when dropped; the user's bundle is only read.

use libvessel::{Error, Result};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the probe lands inside the copied rootfs.
pub const PROBE_IN_ROOTFS: &str = "/.vessel-probe";
pub const ENV_PROBE: &str = "VESSEL_PROBE";
const PROBE_NAME: &str = "vessel-probe";

/// --probe, then $VESSEL_PROBE, then next to the running vessel, then the
/// usual install directories.
pub fn find_probe(explicit: Option<&Path>) -> Result<PathBuf> {
    libvessel::companion::find(
        PROBE_NAME,
        ENV_PROBE,
        explicit,
        &format!("build it (cargo build --bin {PROBE_NAME}), pass --probe or set {ENV_PROBE}"),
    )
    .map_err(Error::invalid)
}

pub struct WorkDir {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub state_root: PathBuf,
    /// The user's config.json, parsed (kept as JSON so unknown fields survive).
    spec: Value,
}

impl WorkDir {
    pub fn prepare(bundle: &Path, probe: &Path, base: Option<&Path>) -> Result<WorkDir> {
        let config = bundle.join("config.json");
        let text = fs::read_to_string(&config).map_err(Error::io("read", &config))?;
        let spec: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("parse {}: {e}", config.display())))?;
        let root_path = spec["root"]["path"]
            .as_str()
            .ok_or_else(|| Error::invalid(format!("{}: no root.path", config.display())))?;
        let src_rootfs = if Path::new(root_path).is_absolute() {
            PathBuf::from(root_path)
        } else {
            bundle.join(root_path)
        };
        if !src_rootfs.is_dir() {
            return Err(Error::invalid(format!(
                "rootfs {} of bundle {} is not a directory",
                src_rootfs.display(),
                bundle.display()
            )));
        }
        let base = match base {
            Some(b) => b.to_path_buf(),
            None => std::env::var_os("TMPDIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp")),
        };
        let dir = base.join(format!("vessel-compare.{}", std::process::id()));
        if dir.exists() {
            let _ = fs::remove_dir_all(&dir);
        }
        fs::create_dir_all(&dir).map_err(Error::io("create work dir", &dir))?;
        let work = WorkDir {
            rootfs: dir.join("rootfs"),
            state_root: dir.join("state"),
            dir,
            spec,
        };
        fs::create_dir_all(&work.state_root).map_err(Error::io("create", &work.state_root))?;
        // cp -a keeps owners, modes, links and device nodes as they are.
        let st = Command::new("cp")
            .arg("-a")
            .arg(&src_rootfs)
            .arg(&work.rootfs)
            .status()
            .map_err(Error::io("run cp -a for the rootfs copy", &src_rootfs))?;
        if !st.success() {
            return Err(Error::Other(format!(
                "cp -a {} {} failed ({st})",
                src_rootfs.display(),
                work.rootfs.display()
            )));
        }
        let dest = work.rootfs.join(PROBE_IN_ROOTFS.trim_start_matches('/'));
        fs::copy(probe, &dest).map_err(Error::io("copy vessel-probe into", &dest))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
            .map_err(Error::io("chmod", &dest))?;
        Ok(work)
    }

    /// Write the bundle for one run of `mode` and return its directory;
    /// `netns`: the run's network namespace, when compare made one.
    pub fn bundle_for(
        &self,
        mode: &str,
        cgroups_path: &str,
        probe_args: &[String],
        netns: Option<&Path>,
    ) -> Result<PathBuf> {
        let dir = self.dir.join(format!("bundle-{mode}"));
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let mut spec = probe_spec(&self.spec, &self.rootfs, mode, cgroups_path, probe_args);
        if let Some(ns) = netns {
            join_network_namespace(&mut spec, ns);
        }
        let path = dir.join("config.json");
        let text = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::Other(format!("serialize {}: {e}", path.display())))?;
        fs::write(&path, text).map_err(Error::io("write", &path))?;
        Ok(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The user's spec with the probe as the process, the copied rootfs
/// (writable: the I/O test writes in it), the sandbox kind and the cgroup.
pub fn probe_spec(
    user: &Value,
    rootfs: &Path,
    mode: &str,
    cgroups_path: &str,
    probe_args: &[String],
) -> Value {
    let mut spec = user.clone();
    let mut args = vec![PROBE_IN_ROOTFS.to_string()];
    args.extend(probe_args.iter().cloned());
    if !spec["process"].is_object() {
        spec["process"] = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"});
    }
    spec["process"]["args"] = json!(args);
    spec["process"]["terminal"] = json!(false);
    spec["root"] = json!({"path": rootfs.display().to_string(), "readonly": false});
    if !spec["annotations"].is_object() {
        spec["annotations"] = json!({});
    }
    spec["annotations"]["vessel.sandbox"] = json!(mode);
    if !spec["linux"].is_object() {
        spec["linux"] = json!({});
    }
    spec["linux"]["cgroupsPath"] = json!(cgroups_path);
    spec
}

/// Make `linux.namespaces` name `path` as the network namespace, in place
/// of any network entry the user's spec had.
pub fn join_network_namespace(spec: &mut Value, path: &Path) {
    let entry = json!({"type": "network", "path": path.display().to_string()});
    let mut list: Vec<Value> = spec["linux"]["namespaces"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|n| n["type"] != "network")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    list.push(entry);
    if !spec["linux"].is_object() {
        spec["linux"] = json!({});
    }
    spec["linux"]["namespaces"] = json!(list);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_network_namespace_replaces_the_users() {
        let mut s = json!({"linux": {"namespaces": [
            {"type": "pid"}, {"type": "network"}, {"type": "mount"}
        ]}});
        join_network_namespace(&mut s, Path::new("/run/netns/n1"));
        assert_eq!(
            s["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/run/netns/n1"}])
        );
        // A spec without namespaces gets just the network one.
        let mut s = json!({});
        join_network_namespace(&mut s, Path::new("/run/netns/n2"));
        assert_eq!(
            s["linux"]["namespaces"],
            json!([{"type": "network", "path": "/run/netns/n2"}])
        );
    }

    #[test]
    fn probe_spec_keeps_the_rest_and_sets_what_compare_needs() {
        let user = json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["sh"], "terminal": true, "env": ["A=1"]},
            "root": {"path": "rootfs", "readonly": true},
            "annotations": {"vessel.sandbox": "container", "x": "y"},
            "mounts": [{"destination": "/proc", "type": "proc"}],
        });
        let s = probe_spec(
            &user,
            Path::new("/w/rootfs"),
            "vm",
            "/cg/ctr",
            &["--io-mib".into(), "4".into()],
        );
        assert_eq!(
            s["process"]["args"],
            json!(["/.vessel-probe", "--io-mib", "4"])
        );
        assert_eq!(s["process"]["terminal"], json!(false));
        assert_eq!(s["process"]["env"], json!(["A=1"]));
        assert_eq!(s["root"], json!({"path": "/w/rootfs", "readonly": false}));
        assert_eq!(s["annotations"]["vessel.sandbox"], json!("vm"));
        assert_eq!(s["annotations"]["x"], json!("y"));
        assert_eq!(s["linux"]["cgroupsPath"], json!("/cg/ctr"));
        assert_eq!(s["mounts"], user["mounts"]);
        // The user's spec is untouched.
        assert_eq!(user["process"]["args"], json!(["sh"]));
    }
}
