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
use std::time::Duration;

use common::test_user::{rootless_user as user, subid_start, USER};

/// A directory the test user owns, holding its XDG_RUNTIME_DIR and a
/// rootless bundle made by `vessel spec --rootless`.
struct Env {
    dir: PathBuf,
    /// The cgroup the user's vessel commands run in (see `Leaf`); None:
    /// the test's own.
    leaf: Option<PathBuf>,
}

impl Env {
    fn new(args: &[&str]) -> Env {
        Env::make(args, None)
    }

    /// An Env whose vessel commands run in `leaf`.
    fn in_leaf(args: &[&str], leaf: &Leaf) -> Env {
        Env::make(args, Some(leaf.dir.clone()))
    }

    fn make(args: &[&str], leaf: Option<PathBuf>) -> Env {
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
        let env = Env { dir, leaf };
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
        let mut c = match &self.leaf {
            None => Command::new("setpriv"),
            // As root, move into the leaf, then become the user.
            Some(leaf) => {
                let mut c = Command::new("sh");
                // An absolute setpriv: busybox's sh runs its own applets
                // before searching PATH.
                let setpriv = find_tool("setpriv").unwrap_or_else(|| "setpriv".into());
                c.arg("-c")
                    .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
                    .arg(leaf)
                    .arg(setpriv);
                c
            }
        };
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

/// `tool` in the PATH vessel gets as the user.
fn find_tool(tool: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Why the tools a test needs are missing, if they are: util-linux's
/// setpriv (busybox's cannot --init-groups), which runs vessel as the
/// user, and `extra` (newuidmap, ...), looked up in the PATH vessel gets.
fn missing_tools(extra: &[&str]) -> Option<String> {
    let setpriv_ok = Command::new("setpriv")
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--init-groups"));
    if !setpriv_ok {
        return Some(
            "no setpriv with --init-groups (util-linux) to run vessel as the test user".into(),
        );
    }
    let missing: Vec<&str> = extra
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    (!missing.is_empty()).then(|| format!("{} not installed (uidmap package)", missing.join(", ")))
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
    if let Some(why) = missing_tools(&[]) {
        return skip(&why);
    }
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
    if let Some(why) = missing_tools(&[]) {
        return skip(&why);
    }
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
    if let Some(why) = missing_tools(&[]) {
        return skip(&why);
    }
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
    if let Some(why) = missing_tools(&["newuidmap", "newgidmap"]) {
        return skip(&why);
    }
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
    if let Some(why) = missing_tools(&[]) {
        return skip(&why);
    }
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
    if let Some(why) = missing_tools(&[]) {
        return skip(&why);
    }
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

// ---- A delegated cgroup v2 subtree (systemd's user@UID.service) ----------
//
// On a pure cgroup v2 host systemd delegates `user@UID.service` to a logged
// in (or lingering) user: the directory, its cgroup.procs,
// cgroup.subtree_control and cgroup.threads are the user's, and the parents
// enable some controllers for it (Delegate=pids memory cpu). The user's
// processes sit in leaves below it. rootfs-tools/v2-tests.sh makes the same
// for the test user in the cgroup v2 VM (tests/cgroup_v2_vm.rs); on a v1 or
// hybrid host these tests say SKIPPED.

/// The test user's delegated cgroup v2 directory, or why there is none.
fn delegated_cgroup() -> Result<PathBuf, String> {
    let (uid, _) = user();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    let fstype = mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup"))
        .filter_map(|l| l.split(" - ").nth(1)?.split(' ').next())
        .next_back();
    if fstype != Some("cgroup2") {
        return Err(format!(
            "/sys/fs/cgroup is {} here, not cgroup2: no cgroup is delegated to a user on a \
             v1 or hybrid host (the cgroup v2 VM test runs these)",
            fstype.unwrap_or("not mounted")
        ));
    }
    let dir = PathBuf::from(format!(
        "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service"
    ));
    for p in [
        dir.clone(),
        dir.join("cgroup.procs"),
        dir.join("cgroup.subtree_control"),
    ] {
        match fs::metadata(&p) {
            Ok(m) if m.uid() == uid => {}
            Ok(m) => {
                return Err(format!(
                    "{} is owned by uid {}, not {USER} ({uid}): not delegated",
                    p.display(),
                    m.uid()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{}: {e}: {USER} has no delegated cgroup (no user@{uid}.service)",
                    p.display()
                ))
            }
        }
    }
    let ctrls = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in ["memory", "pids"] {
        if !ctrls.split_whitespace().any(|x| x == c) {
            return Err(format!(
                "the {c} controller is not delegated to {} (cgroup.controllers: {})",
                dir.display(),
                ctrls.trim()
            ));
        }
    }
    Ok(dir)
}

/// The delegated directory, or None after saying SKIPPED (also when the
/// tools that run vessel as the user are missing).
fn delegated_or_skip() -> Option<PathBuf> {
    if let Some(why) = missing_tools(&[]) {
        skip(&why);
        return None;
    }
    match delegated_cgroup() {
        Ok(d) => Some(d),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

/// A leaf cgroup of the user's below the delegated directory (a scope, in
/// systemd's words): the user's vessel commands run there, so the
/// container's cgroup goes below the delegated directory. Removed on drop.
struct Leaf {
    dir: PathBuf,
}

impl Leaf {
    fn new(delegated: &Path) -> Leaf {
        let (uid, gid) = user();
        let dir = delegated.join(format!("{}.scope", unique_id("vessel-test")));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        // What the user's own mkdir gives: the directory and its files are
        // the user's.
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&dir)
            .status()
            .expect("run chown");
        assert!(st.success(), "chown -R {}", dir.display());
        Leaf { dir }
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        // The commands that ran here have exited; the kernel may take a
        // moment to let the directory go.
        wait_for(Duration::from_secs(5), || {
            fs::remove_dir(&self.dir).is_ok() || !self.dir.exists()
        });
    }
}

/// The cgroup2 directory of `pid` (its "0::" line).
fn cgroup_dir_of(pid: i64) -> PathBuf {
    let t = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let rel = t
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line in /proc/{pid}/cgroup: {t}"));
    Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'))
}

/// Directories at or below `dir` whose name ends with `id`.
fn dirs_named(dir: &Path, id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if e.file_name().to_string_lossy().ends_with(id) {
                out.push(e.path());
            }
            out.extend(dirs_named(&e.path(), id));
        }
    }
    out
}

fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| format!("<{}: {e}>", p.display()))
        .trim()
        .to_string()
}

/// Create and start with memory and pids limits as the user, its vessel in
/// a leaf of its delegated cgroup: the container's cgroup is made below the
/// delegated directory with the limits in memory.max and pids.max; pause
/// and resume freeze and thaw it (state and cgroup.freeze); exec joins it;
/// update rewrites the limits; kill stops it; delete removes the cgroup.
#[test]
fn rootless_delegated_cgroup_lifecycle() {
    let Some(delegated) = delegated_or_skip() else {
        return;
    };
    let (uid, _) = user();
    let leaf = Leaf::new(&delegated);
    let env = Env::in_leaf(
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /ticks; sleep 0.2; done",
        ],
        &leaf,
    );
    let mut spec = env.spec();
    spec["root"]["readonly"] = json!(false);
    spec["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 42}});
    env.set_spec(&spec);
    let id = unique_id("rl-deleg");
    env.ok(&["create", "--bundle", "bundle", &id]);
    let pid = env.state(&id)["pid"].as_i64().expect("pid");
    let cg = cgroup_dir_of(pid);
    assert!(
        cg.starts_with(&delegated) && cg != delegated && !cg.starts_with(&leaf.dir),
        "the container's cgroup {} is not its own below the delegated {}",
        cg.display(),
        delegated.display()
    );
    assert!(
        cg.file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(&id)),
        "{}",
        cg.display()
    );
    let md = fs::metadata(&cg).expect("stat the container's cgroup");
    assert_eq!(md.uid(), uid, "the user made {}", cg.display());
    assert_eq!(read_trim(&cg.join("memory.max")), "67108864");
    assert_eq!(read_trim(&cg.join("pids.max")), "42");
    let procs = read_trim(&cg.join("cgroup.procs"));
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} not in {}: {procs}",
        cg.display()
    );

    env.ok(&["start", &id]);
    assert_eq!(env.state(&id)["status"], "running");
    let ticks = env.bundle().join("rootfs/ticks");
    let tick = || fs::read_to_string(&ticks).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(20), || !tick().is_empty()),
        "the workload never ticked"
    );

    env.ok(&["pause", &id]);
    assert_eq!(env.state(&id)["status"], "paused");
    assert_eq!(read_trim(&cg.join("cgroup.freeze")), "1");
    let events = read_trim(&cg.join("cgroup.events"));
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    let a = tick();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(tick(), a, "the workload ticks while paused");

    env.ok(&["resume", &id]);
    assert_eq!(env.state(&id)["status"], "running");
    assert_eq!(read_trim(&cg.join("cgroup.freeze")), "0");
    assert!(
        wait_for(Duration::from_secs(10), || tick() != a),
        "the workload does not tick after resume"
    );

    let out = env.vessel(&["exec", &id, "sh", "-c", "cat /proc/self/cgroup; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "exec: {}", text(&out));
    let rel = cg.strip_prefix("/sys/fs/cgroup").expect("under the mount");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("0::/{}", rel.display()),
        "exec's process is not in the container's cgroup"
    );

    env.ok(&["update", "--memory", "134217728", "--pids-limit", "64", &id]);
    assert_eq!(read_trim(&cg.join("memory.max")), "134217728");
    assert_eq!(read_trim(&cg.join("pids.max")), "64");

    env.ok(&["kill", &id, "KILL"]);
    assert!(
        wait_for(Duration::from_secs(10), || env.state(&id)["status"]
            == "stopped"),
        "not stopped after kill: {}",
        env.state(&id)
    );
    env.ok(&["delete", &id]);
    assert!(!cg.exists(), "delete left {}", cg.display());
    assert!(!env.state_root().join(&id).exists(), "state dir left");
    assert!(dirs_named(&delegated, &id).is_empty());
}

/// The limits bind: forks past pids.max fail (pids.events counts them) and
/// delete -f kills every process and removes the cgroup; a foreground run
/// past memory.max is OOM-killed (exit 137) and leaves no cgroup.
#[test]
fn rootless_delegated_limits_are_enforced() {
    let Some(delegated) = delegated_or_skip() else {
        return;
    };
    let leaf = Leaf::new(&delegated);
    let env = Env::in_leaf(
        &[
            "sh",
            "-c",
            // The forks in a subshell: a shell whose fork fails exits,
            // and the init must stay.
            "(i=0; while [ $i -lt 10 ]; do sleep 300 & i=$((i+1)); done); exec sleep 300",
        ],
        &leaf,
    );
    let mut spec = env.spec();
    spec["linux"]["resources"] = json!({"pids": {"limit": 5}});
    env.set_spec(&spec);
    let id = unique_id("rl-pids");
    env.ok(&["run", "-d", "--bundle", "bundle", &id]);
    let pid = env.state(&id)["pid"].as_i64().expect("pid");
    let cg = cgroup_dir_of(pid);
    assert!(cg.starts_with(&delegated), "{}", cg.display());
    let refused = || {
        fs::read_to_string(cg.join("pids.events"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(20), || refused() > 0),
        "no fork refused under pids.max 5: pids.events {}",
        read_trim(&cg.join("pids.events"))
    );
    let current: u64 = read_trim(&cg.join("pids.current"))
        .parse()
        .expect("pids.current");
    assert!(
        (2..=5).contains(&current),
        "pids.current {current} under pids.max 5"
    );
    let procs: Vec<i32> = read_trim(&cg.join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    env.ok(&["delete", "-f", &id]);
    assert!(!cg.exists(), "delete -f left {}", cg.display());
    for p in procs {
        assert!(
            !pid_alive(p),
            "process {p} of the container outlived delete -f"
        );
    }

    let env = Env::in_leaf(
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=48M", "count=1"],
        &leaf,
    );
    let mut spec = env.spec();
    spec["linux"]["resources"] = json!({"memory": {"limit": 16777216}});
    env.set_spec(&spec);
    let id = unique_id("rl-oom");
    let out = env.vessel(&["run", "--bundle", "bundle", &id]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "48 MiB under memory.max 16 MiB: {}",
        text(&out)
    );
    let left = dirs_named(&delegated, &id);
    assert!(left.is_empty(), "run left its cgroup: {left:?}");
    assert!(!env.state_root().join(&id).exists(), "run left its state");
}

/// A limit whose controller is not delegated (cpuset: systemd delegates
/// pids, memory and cpu) is refused at create, naming it, and leaves no
/// state, cgroup or process.
#[test]
fn rootless_delegated_cgroup_without_the_controller_refuses() {
    let Some(delegated) = delegated_or_skip() else {
        return;
    };
    let ctrls = read_trim(&delegated.join("cgroup.controllers"));
    if ctrls.split_whitespace().any(|c| c == "cpuset") {
        return skip(&format!(
            "cpuset is delegated to {} here ({ctrls}): no undelegated controller to ask for",
            delegated.display()
        ));
    }
    let leaf = Leaf::new(&delegated);
    let env = Env::in_leaf(&["sleep", "300"], &leaf);
    let mut spec = env.spec();
    spec["linux"]["resources"] = json!({"cpu": {"cpus": "0"}});
    env.set_spec(&spec);
    let id = unique_id("rl-cpuset");
    let out = env.vessel(&["create", "--bundle", "bundle", &id]);
    assert!(
        !out.status.success(),
        "create with cpu.cpus: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cpus") && err.contains("cpuset"),
        "the error should name the limit and its controller: {err}"
    );
    assert!(!env.state_root().join(&id).exists(), "state dir left");
    let left = dirs_named(&delegated, &id);
    assert!(left.is_empty(), "cgroup dirs left: {left:?}");
    let p = procs_in(&env.bundle().join("rootfs"));
    assert!(p.is_empty(), "processes left: {p:?}");
}
