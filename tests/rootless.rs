//! Rootless: an unprivileged user runs vessel directly (container::rootless).
//! The harness runs as root, makes the user `vessel-rootless-test` when it
//! is missing (with the /etc/subuid and /etc/subgid range useradd gives it,
//! or one added here), and runs vessel as that user through setpriv, with
//! XDG_RUNTIME_DIR set to a directory it owns and no --root: the default
//! root is part of what is tested. Bundles are made with `vessel spec
//! --rootless` as the user, in a directory it owns, with a copy of the
//! busybox rootfs it owns.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const USER: &str = "vessel-rootless-test";

/// The test user's (uid, gid), made on first use.
fn user() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        require_root();
        let have = Command::new("id")
            .args(["-u", USER])
            .output()
            .expect("run id");
        if !have.status.success() {
            let st = Command::new("useradd")
                .args(["-M", "-s", "/usr/sbin/nologin", USER])
                .status()
                .expect("run useradd");
            // Another test binary may have made it meanwhile.
            let again = Command::new("id").args(["-u", USER]).output();
            assert!(
                st.success() || again.is_ok_and(|o| o.status.success()),
                "useradd {USER} failed"
            );
        }
        let id = |flag: &str| -> u32 {
            let o = Command::new("id")
                .args([flag, USER])
                .output()
                .expect("run id");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        (id("-u"), id("-g"))
    })
}

/// The test user's first subordinate range in `file` (added when missing:
/// 65536 ids at 3_000_000, far from useradd's and the tenant tests').
fn subid_start(file: &str, usermod_flag: &str) -> u32 {
    let find = || -> Option<u32> {
        fs::read_to_string(file)
            .ok()?
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.trim().split(':').collect();
                match f.as_slice() {
                    [name, start, count] if *name == USER => {
                        let c: u32 = count.parse().ok()?;
                        (c >= 65536).then(|| start.parse().ok()).flatten()
                    }
                    _ => None,
                }
            })
            .next()
    };
    if let Some(s) = find() {
        return s;
    }
    let st = Command::new("usermod")
        .args([usermod_flag, "3000000-3065535", USER])
        .status()
        .expect("run usermod");
    assert!(st.success(), "usermod {usermod_flag} for {USER} failed");
    find().expect("subordinate range after usermod")
}

/// A directory the test user owns, holding its XDG_RUNTIME_DIR and a
/// rootless bundle made by `vessel spec --rootless`.
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(args: &[&str]) -> Env {
        let (uid, gid) = user();
        let dir = scratch_dir().join(unique_id("rootless"));
        fs::create_dir_all(dir.join("xdg")).expect("create env dir");
        fs::create_dir_all(dir.join("bundle")).expect("create bundle dir");
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs_template())
            .arg(dir.join("bundle/rootfs"))
            .status()
            .expect("cp rootfs");
        assert!(st.success(), "cp rootfs");
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(st.success(), "chown the rootless env");
        fs::set_permissions(dir.join("xdg"), fs::Permissions::from_mode(0o700)).expect("chmod");
        let env = Env { dir };
        let out = env.vessel(&["spec", "--rootless", "--bundle", "bundle"]);
        assert!(out.status.success(), "spec --rootless: {}", text(&out));
        let mut spec = env.spec();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        env.set_spec(&spec);
        env
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    fn xdg(&self) -> PathBuf {
        self.dir.join("xdg")
    }

    fn spec(&self) -> Value {
        let t = fs::read_to_string(self.bundle().join("config.json")).expect("read config.json");
        serde_json::from_str(&t).expect("config.json is JSON")
    }

    fn set_spec(&self, spec: &Value) {
        fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(spec).expect("serialize"),
        )
        .expect("write config.json");
    }

    /// vessel as the test user in `self.dir`, with XDG_RUNTIME_DIR set and
    /// no --root.
    fn cmd(&self, args: &[&str], xdg: bool) -> Command {
        let (uid, gid) = user();
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--init-groups")
            .arg("env")
            .arg("-i")
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
        if xdg {
            c.arg(format!("XDG_RUNTIME_DIR={}", self.xdg().display()));
        }
        c.arg(runtime_bin()).args(args).current_dir(&self.dir);
        c.stdin(std::process::Stdio::null());
        c
    }

    fn vessel(&self, args: &[&str]) -> Output {
        run_with_timeout(self.cmd(args, true), Duration::from_secs(60))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.vessel(args);
        assert!(out.status.success(), "{args:?} as {USER}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    fn state_root(&self) -> PathBuf {
        self.xdg().join("vessel")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for e in fs::read_dir(self.state_root())
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = self.vessel(&["delete", "-f", &id]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Field `key` of /proc/<pid>/status ("Uid", "Gid").
fn status_field(pid: i64, key: &str) -> String {
    let t = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    t.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// `spec --rootless` maps the caller's own ids; `run` in the foreground
/// gives the process's exit status; the state lives in
/// $XDG_RUNTIME_DIR/vessel (0700, the user's) and is gone after the run.
#[test]
fn rootless_run_foreground_exit_status() {
    let (uid, gid) = user();
    let env = Env::new(&["sh", "-c", "id -u; cat /proc/self/uid_map; exit 7"]);
    let spec = env.spec();
    assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], uid);
    assert_eq!(spec["linux"]["gidMappings"][0]["hostID"], gid);
    let id = unique_id("rl-run");
    let out = env.vessel(&["run", "--bundle", "bundle", &id]);
    assert_eq!(out.status.code(), Some(7), "run: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("0"), "uid in the container: {stdout}");
    let map: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"], "uid_map: {stdout}");
    let md = fs::symlink_metadata(env.state_root()).expect("default root made");
    assert!(md.is_dir());
    assert_eq!(md.uid(), uid, "default root owned by the user");
    assert_eq!(md.mode() & 0o777, 0o700, "default root private");
    assert!(
        !env.state_root().join(&id).exists(),
        "run left its state behind"
    );
}

/// create, state, start, kill, delete as the user: the init runs as the
/// user's uid on the host and is gone after delete.
#[test]
fn rootless_create_start_kill_delete() {
    let (uid, _) = user();
    let env = Env::new(&["sleep", "300"]);
    let id = unique_id("rl-life");
    env.ok(&["create", "--bundle", "bundle", &id]);
    assert!(env.state_root().join(&id).join("state.json").exists());
    let st = env.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    assert_eq!(
        status_field(pid, "Uid"),
        uid.to_string(),
        "host uid of the init"
    );
    env.ok(&["start", &id]);
    assert_eq!(env.state(&id)["status"], "running");
    let list = env.ok(&["list", "-q"]);
    assert!(list.lines().any(|l| l == id), "list: {list}");
    env.ok(&["kill", &id, "KILL"]);
    assert!(
        wait_for(Duration::from_secs(10), || env.state(&id)["status"]
            == "stopped"),
        "not stopped after kill: {}",
        env.state(&id)
    );
    env.ok(&["delete", &id]);
    assert!(!env.state_root().join(&id).exists(), "state dir left");
    assert!(!pid_alive(pid as i32), "init {pid} still alive");
    let out = env.vessel(&["state", &id]);
    assert!(!out.status.success(), "state after delete: {}", text(&out));
}

/// exec into a running rootless container: output and exit status.
#[test]
fn rootless_exec() {
    let env = Env::new(&["sleep", "300"]);
    let id = unique_id("rl-exec");
    env.ok(&["run", "-d", "--bundle", "bundle", &id]);
    let out = env.vessel(&["exec", &id, "sh", "-c", "echo in-$(id -u); exit 4"]);
    assert_eq!(out.status.code(), Some(4), "exec: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "in-0");
    env.ok(&["delete", "-f", &id]);
    assert!(!env.state_root().join(&id).exists());
}

/// A config mapping more than the user's own id goes through newuidmap and
/// newgidmap with the user's subordinate ranges; process.user is one of
/// them on the host.
#[test]
fn rootless_subordinate_id_maps() {
    let (uid, gid) = user();
    let su = subid_start("/etc/subuid", "--add-subuids");
    let sg = subid_start("/etc/subgid", "--add-subgids");
    let env = Env::new(&[
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map | wc -l",
    ]);
    let mut spec = env.spec();
    spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    spec["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": uid, "size": 1},
        {"containerID": 1, "hostID": su, "size": 65536}
    ]);
    spec["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": gid, "size": 1},
        {"containerID": 1, "hostID": sg, "size": 65536}
    ]);
    env.set_spec(&spec);
    let id = unique_id("rl-subid");
    let out = env.vessel(&["run", "--bundle", "bundle", &id]);
    assert_eq!(out.status.code(), Some(0), "run: {}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(lines, ["1000", "1000", "4"], "{}", text(&out));
}

/// Limits asked with no delegated cgroup v2 subtree (this host's test user
/// has none): create refuses, naming the limit, and leaves nothing (no
/// state dir, no cgroup, no process).
/// An id-mapped mount needs CAP_SYS_ADMIN over the host filesystem: refused
/// at create for a rootless caller, naming the mount, nothing left.
#[test]
fn rootless_idmapped_mount_refused() {
    let (uid, gid) = user();
    let env = Env::new(&["true"]);
    let vol = env.dir.join("vol");
    fs::create_dir(&vol).expect("mkdir vol");
    let mut spec = env.spec();
    let map = |host: u32| json!([{"containerID": 0, "hostID": host, "size": 1}]);
    spec["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/data", "type": "bind", "source": vol,
        "options": ["rbind"], "uidMappings": map(uid), "gidMappings": map(gid)
    }));
    env.set_spec(&spec);
    let id = unique_id("rl-idmap");
    let out = env.vessel(&["create", "--bundle", "bundle", &id]);
    assert!(
        !out.status.success(),
        "create with an id-mapped mount: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(/data)") && err.contains("id-mapped") && err.contains("rootless"),
        "error should name the mount and say why: {err}"
    );
    assert!(!env.state_root().join(&id).exists(), "state dir left");
    assert!(mounts_under(&env.dir).is_empty(), "mounts left");
}

#[test]
fn rootless_limits_refused_without_delegated_cgroup() {
    let env = Env::new(&["sleep", "300"]);
    let mut spec = env.spec();
    spec["linux"]["resources"] = json!({"pids": {"limit": 20}});
    env.set_spec(&spec);
    let id = unique_id("rl-limits");
    let out = env.vessel(&["create", "--bundle", "bundle", &id]);
    assert!(!out.status.success(), "create with limits: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pids.limit") && err.contains("rootless"),
        "error should name the limit: {err}"
    );
    assert!(!env.state_root().join(&id).exists(), "state dir left");
    let cg = cgroup_dirs_of(&id);
    assert!(cg.is_empty(), "cgroup dirs left: {cg:?}");
    let p = procs_in(&env.bundle().join("rootfs"));
    assert!(p.is_empty(), "processes left: {p:?}");
    let out = env.vessel(&["state", &id]);
    assert!(!out.status.success(), "state after refusal: {}", text(&out));
}

/// With no XDG_RUNTIME_DIR the root is /tmp/vessel-<uid>, made 0700 by
/// the user; one that someone else owns is refused.
#[test]
fn rootless_tmp_root_fallback() {
    let (uid, _) = user();
    let env = Env::new(&["true"]);
    let tmp = PathBuf::from(format!("/tmp/vessel-{uid}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).expect("make a root-owned /tmp/vessel-<uid>");
    let out = run_with_timeout(env.cmd(&["list"], false), Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a root-owned root accepted: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("owned"),
        "{}",
        text(&out)
    );
    fs::remove_dir(&tmp).expect("remove it");
    let id = unique_id("rl-tmp");
    let out = run_with_timeout(
        env.cmd(&["run", "--bundle", "bundle", &id], false),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "run: {}", text(&out));
    let md = fs::symlink_metadata(&tmp).expect("fallback root made");
    assert!(md.is_dir() && md.uid() == uid && md.mode() & 0o777 == 0o700);
    assert!(!Path::new(&tmp).join(&id).exists());
    let _ = fs::remove_dir_all(&tmp);
}
