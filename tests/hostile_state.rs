//! Issue 12, the state, lock and lifecycle items: a crashed or racing
//! `create`, hostile users on the host, concurrent commands, crafted state,
//! and the runc-compatible CLI details (`list`, `-v`, `--debug`, `kill 0`).
//!
//! Every test uses its own scratch `--root`. Crashes are real: `create` is
//! SIGKILLed while strace holds it at a state write.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Is the runtime under test a vessel build (this one, or another one
/// named by VESSEL_TEST_RUNTIME, e.g. an older build to compare with)?
fn is_a_vessel() -> bool {
    is_vessel() || runtime_bin().file_name().is_some_and(|n| n == "vessel")
}

/// For tests of vessel's own files (its state.json layout, its temporary
/// file names): another runtime keeps other files (the test says so and
/// skips).
fn vessel_only(what: &str) -> bool {
    if !is_a_vessel() {
        skip(&format!("{what}: it works on vessel's own state files"));
        return true;
    }
    false
}

fn bin() -> String {
    runtime_bin().to_string_lossy().into_owned()
}

fn state_file(rt: &Runtime, id: &str) -> PathBuf {
    rt.root.join(id).join("state.json")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// Every /sys/fs/cgroup directory named in a vessel state.json.
fn cgroup_dirs_in_state(v: &Value) -> Vec<PathBuf> {
    fn walk(v: &Value, out: &mut Vec<PathBuf>) {
        match v {
            Value::String(s) if s.starts_with("/sys/fs/cgroup/") => out.push(PathBuf::from(s)),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&v["cgroup"], &mut out);
    // Mountpoints are not the container's own directories.
    out.retain(|p| p.components().count() > 5);
    out.sort();
    out.dedup();
    out
}

/// Some CPU load, as the races only show under it. Killed on drop.
struct Load(Vec<Child>);

impl Load {
    fn start(n: usize) -> Load {
        Load(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("spawn load")
                })
                .collect(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn children_of(pid: u32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn blocked_on_fifo(pid: i32) -> bool {
    let w = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    w.contains("wait_for_partner") || w.contains("fifo_open")
}

/// `create` under strace, every rename(2) of it held for `delay`; returns
/// (strace, pid of the runtime's create process).
fn create_under_strace(rt: &Runtime, b: &Bundle, id: &str, delay: Duration) -> (Child, i32) {
    let inject = format!(
        "inject=rename,renameat,renameat2:delay_enter={}",
        delay.as_micros()
    );
    let mut c = Command::new("strace");
    c.args([
        "-o",
        "/dev/null",
        "-e",
        "trace=rename,renameat,renameat2",
        "-e",
    ])
    .arg(&inject)
    .arg(bin())
    .arg("--root")
    .arg(&rt.root)
    .args(["create", "--bundle"])
    .arg(&b.dir)
    .arg(id)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(fs::File::create(rt.root.with_extension("strace")).expect("strace log"));
    let exe = fs::canonicalize(runtime_bin()).expect("the runtime binary");
    let strace = c.spawn().expect("spawn strace");
    let sp = strace.id();
    let mut pid = 0;
    assert!(
        wait_for(Duration::from_secs(20), || {
            // strace forks short-lived probes of its own first: the create
            // is the child that runs the runtime's binary.
            pid = children_of(sp)
                .into_iter()
                .find(|p| fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == exe))
                .unwrap_or(0);
            pid > 0
        }),
        "strace started no create"
    );
    (strace, pid)
}

fn sigkill(pid: i32) {
    assert!(pid > 0);
    // SAFETY: kill(2) of one process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn timed(rt: &Runtime, args: &[&str], limit: Duration) -> (i32, String, String) {
    triple(&run_with_timeout(rt.cmd(args), limit))
}

// ---- item 4: never signal pid <= 0 ---------------------------------------

/// A `kill` run in its own session whose shell traps USR1: "HIT" in the
/// output means the runtime signalled its own process group.
fn kill_in_own_group(rt: &Runtime, id: &str) -> (String, i32) {
    let script = format!(
        "trap 'echo HIT' USR1; '{}' --root '{}' kill {id} USR1 >/dev/null 2>&1; echo rc=$?",
        bin(),
        rt.root.display()
    );
    let out = run_with_timeout(
        {
            let mut c = Command::new("setsid");
            c.args(["-w", "sh", "-c", &script]).stdin(Stdio::null());
            c
        },
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (text, out.status.code().unwrap_or(-1))
}

#[test]
fn kill_of_a_state_with_pid_zero_signals_no_one() {
    require_root();
    if vessel_only("kill_of_a_state_with_pid_zero_signals_no_one") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("pid0");
    rt.create_ok(&b, &id);
    let path = state_file(&rt, &id);
    let good = fs::read(&path).expect("read state.json");
    // What a create that died before recording its init leaves.
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["pid"] = json!(0);
    v["pid_start"] = json!(0);
    v["status"] = json!("creating");
    fs::write(&path, v.to_string()).unwrap();
    let (text, code) = kill_in_own_group(&rt, &id);
    fs::write(&path, &good).unwrap();
    assert!(
        !text.contains("HIT"),
        "kill with a pid-0 state signalled its own process group: {text}"
    );
    assert_eq!(code, 0, "the wrapper shell died: {text}");
    assert!(
        !text.contains("rc=0"),
        "kill of a container with no init reported success: {text}"
    );
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn kill_racing_create_never_signals_its_own_group() {
    require_root();
    let _load = Load::start(2);
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let mut hits = 0;
    for i in 0..30 {
        let id = format!("race{i}-{}", std::process::id());
        let mut create = rt.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        create.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = create.spawn().expect("spawn create");
        let t = Instant::now();
        loop {
            let done = child.try_wait().expect("wait create").is_some();
            if rt.root.join(&id).exists() {
                let (text, _) = kill_in_own_group(&rt, &id);
                if text.contains("HIT") {
                    hits += 1;
                }
            }
            if done || t.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        let _ = child.wait();
        let _ = rt.run(&["delete", "-f", &id]);
    }
    assert_eq!(
        hits, 0,
        "kill racing create signalled its own group {hits} times in 30"
    );
}

// ---- item 7: private state ------------------------------------------------

fn as_nobody(script: &str, limit: Duration) -> (i32, String, String) {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "sh",
        "-c",
        script,
    ])
    .stdin(Stdio::null());
    triple(&run_with_timeout(c, limit))
}

#[test]
fn state_is_private_and_other_users_cannot_hold_start() {
    require_root();
    let rt = Runtime::new();
    if is_a_vessel() {
        // A root left 0755 by an older vessel is tightened.
        fs::set_permissions(&rt.root, fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        // runc leaves an existing root as it is: let it make its own.
        fs::remove_dir(&rt.root).unwrap();
    }
    let mut b = Bundle::new(&["true"]);
    b.spec["process"]["env"] = json!(["PATH=/bin:/usr/bin", "SECRET=tenant-a-secret"]);
    b.write();
    let id = unique_id("priv");
    rt.create_ok(&b, &id);
    let dir = rt.root.join(&id);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&rt.root), 0o700, "runtime root mode");
    assert_eq!(mode(&dir), 0o700, "state dir mode");
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let m = mode(&e.path());
        assert_eq!(m & 0o077, 0, "{} is mode {m:o}", e.path().display());
    }
    // The attack: user nobody reads the state and holds the exec FIFO open.
    let (_, out, _) = as_nobody(
        &format!(
            "cat '{0}/state.json' && echo READ; ls '{1}' && echo LISTED; \
             (exec 3>'{0}/exec.fifo' && echo OPENED && sleep 30) & sleep 1; echo end",
            dir.display(),
            rt.root.display()
        ),
        Duration::from_secs(10),
    );
    assert!(!out.contains("READ"), "nobody read state.json: {out}");
    assert!(
        !out.contains("tenant-a-secret"),
        "nobody read the env: {out}"
    );
    assert!(!out.contains("LISTED"), "nobody listed the root: {out}");
    assert!(!out.contains("OPENED"), "nobody opened exec.fifo: {out}");
    let (code, o, e) = timed(&rt, &["start", &id], Duration::from_secs(20));
    assert_eq!(code, 0, "start failed or hung\nstdout: {o}\nstderr: {e}");
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn a_non_root_workload_still_starts_with_a_private_fifo() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "id -u > /tmp/uid"]);
    b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.write();
    let id = unique_id("uid");
    rt.create_ok(&b, &id);
    let (code, o, e) = timed(&rt, &["start", &id], Duration::from_secs(20));
    assert_eq!(code, 0, "start failed\nstdout: {o}\nstderr: {e}");
    assert!(
        wait_for(Duration::from_secs(10), || fs::read_to_string(
            b.rootfs().join("tmp/uid")
        )
        .is_ok_and(|s| s.trim() == "1000")),
        "the uid-1000 workload did not run"
    );
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn a_runtime_root_owned_by_another_user_is_refused() {
    require_root();
    if !is_a_vessel() {
        skip("unless root and vessel: runc takes any existing root");
        return;
    }
    let rt = Runtime::new();
    std::os::unix::fs::chown(&rt.root, Some(65534), Some(65534)).unwrap();
    let b = Bundle::new(&["true"]);
    let id = unique_id("owner");
    let (code, _, e) = triple(&rt.create(&b, &id, &[]));
    std::os::unix::fs::chown(&rt.root, Some(0), Some(0)).unwrap();
    assert_ne!(code, 0, "create in a root owned by nobody succeeded");
    assert!(e.contains("owned by uid 65534"), "unclear error: {e}");
    assert!(!rt.root.join(&id).exists(), "create left a state dir");
}

// ---- item 8: --pid-file ---------------------------------------------------

/// Plant `<pidfile>.vessel-tmp` (and runc's `.<name>`) as links to a file
/// the attacker may not write; returns the victim.
fn plant(pid_file: &Path) -> PathBuf {
    let name = pid_file.file_name().unwrap().to_string_lossy().into_owned();
    let dir = pid_file.parent().unwrap();
    let v = dir.join(unique_id("victim"));
    fs::write(&v, "precious\n").unwrap();
    for n in [format!("{name}.vessel-tmp"), format!(".{name}")] {
        let _ = fs::remove_file(dir.join(&n));
        std::os::unix::fs::symlink(&v, dir.join(n)).unwrap();
    }
    let stem = pid_file.with_extension("vessel-tmp");
    let _ = fs::remove_file(&stem);
    std::os::unix::fs::symlink(&v, &stem).unwrap();
    v
}

fn assert_pid_file(pf: &Path, victim: &Path) {
    assert_eq!(
        fs::read_to_string(victim).unwrap(),
        "precious\n",
        "the planted link's target was overwritten"
    );
    let md = fs::symlink_metadata(pf).expect("pid file written");
    assert!(md.is_file(), "pid file is not a regular file");
    let pid: i32 = fs::read_to_string(pf)
        .unwrap()
        .trim()
        .parse()
        .expect("pid file holds a pid");
    assert!(pid > 0);
}

#[test]
fn pid_files_never_follow_planted_links() {
    require_root();
    if vessel_only("pid_files_never_follow_planted_links") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let pdir = scratch_dir().join(unique_id("pids"));
    fs::create_dir_all(&pdir).unwrap();

    let id = unique_id("pf");
    let pf = pdir.join("create.pid");
    let v = plant(&pf);
    let out = rt.create(&b, &id, &["--pid-file", pf.to_str().unwrap()]);
    assert!(out.status.success(), "create: {}", triple(&out).2);
    assert_pid_file(&pf, &v);

    let pf = pdir.join("exec.pid");
    let v = plant(&pf);
    rt.ok(&["start", &id]);
    let out = rt.run_detached(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ]);
    assert!(out.status.success(), "exec -d: {}", triple(&out).2);
    assert_pid_file(&pf, &v);
    rt.ok(&["delete", "-f", &id]);

    let id = unique_id("pfrun");
    let pf = pdir.join("run.pid");
    let v = plant(&pf);
    let out = rt.run_detached(&[
        "run",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "run -d: {}", triple(&out).2);
    assert_pid_file(&pf, &v);
    rt.ok(&["delete", "-f", &id]);
    let _ = fs::remove_dir_all(&pdir);
}

// ---- items 11 and 12: a create killed half-way --------------------------

#[test]
fn create_killed_after_its_init_exists_can_be_deleted() {
    require_root();
    if vessel_only("create_killed_after_its_init_exists_can_be_deleted") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("crash");
    let (mut strace, create) = create_under_strace(&rt, &b, &id, Duration::from_secs(3));
    // Wait until the init blocks on exec.fifo, then kill create while it
    // writes the state.
    let mut init = 0;
    let found = wait_for(Duration::from_secs(60), || {
        init = children_of(create as u32)
            .into_iter()
            .find(|&p| blocked_on_fifo(p))
            .unwrap_or(0);
        init > 0
    });
    sigkill(create);
    let _ = strace.wait();
    assert!(
        found,
        "the init never reached the exec FIFO: {}",
        fs::read_to_string(rt.root.with_extension("strace")).unwrap_or_default()
    );
    let _ = fs::remove_file(rt.root.with_extension("strace"));
    let state = read_json(&state_file(&rt, &id));
    let cgroups = cgroup_dirs_in_state(&state);
    // No command may hang on a lock the orphaned init holds.
    let _ = timed(&rt, &["start", &id], Duration::from_secs(15));
    let _ = timed(&rt, &["state", &id], Duration::from_secs(15));
    let (code, o, e) = timed(&rt, &["delete", "-f", &id], Duration::from_secs(15));
    assert_eq!(
        code, 0,
        "delete -f failed or hung\nstdout: {o}\nstderr: {e}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || !pid_alive(init)),
        "the orphaned init {init} survived delete -f"
    );
    assert!(!rt.root.join(&id).exists(), "state dir left");
    let left: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup dirs left: {left:?}");
}

#[test]
fn create_killed_before_its_first_save_leaves_nothing_after_delete() {
    require_root();
    if vessel_only("create_killed_before_its_first_save_leaves_nothing_after_delete") {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("early");
    let (mut strace, create) = create_under_strace(&rt, &b, &id, Duration::from_secs(10));
    let dir = rt.root.join(&id);
    let found = wait_for(Duration::from_secs(30), || {
        dir.join(".state.json.tmp").exists()
    });
    sigkill(create);
    let _ = strace.wait();
    assert!(
        found,
        "create never wrote its first state: {}",
        fs::read_to_string(rt.root.with_extension("strace")).unwrap_or_default()
    );
    let _ = fs::remove_file(rt.root.with_extension("strace"));
    assert!(!dir.join("state.json").exists(), "killed too late");
    let (code, _, e) = timed(&rt, &["list"], Duration::from_secs(15));
    assert_eq!(code, 0);
    assert!(e.contains(&id), "list hides the half-made {id}: {e}");
    let (code, o, e) = timed(&rt, &["delete", "-f", &id], Duration::from_secs(15));
    assert_eq!(code, 0, "delete -f: {o} {e}");
    assert!(!dir.exists(), "delete -f left {}", dir.display());
    let left = cgroup_dirs_of(&id);
    assert!(left.is_empty(), "cgroup dirs left: {left:?}");
    // The id is usable again.
    rt.create_ok(&b, &id);
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn delete_without_force_removes_a_bare_state_dir_and_reports_no_container() {
    require_root();
    let rt = Runtime::new();
    let id = unique_id("bare");
    fs::create_dir(rt.root.join(&id)).unwrap();
    let (code, _, _) = timed(&rt, &["delete", &id], Duration::from_secs(15));
    assert_ne!(
        code, 0,
        "delete of a dir with no container succeeded (runc fails)"
    );
    assert!(!rt.root.join(&id).exists(), "delete left the bare dir");
}

// ---- item 13: a fast workload starts -------------------------------------

#[test]
fn create_start_of_a_fast_workload_always_starts() {
    require_root();
    let _load = Load::start(3);
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "exit 5"]);
    let mut failures = Vec::new();
    let n = 300;
    for i in 0..n {
        let id = format!("fast{i}-{}", std::process::id());
        rt.create_ok(&b, &id);
        let (code, _, e) = timed(&rt, &["start", &id], Duration::from_secs(30));
        if code != 0 {
            failures.push(e);
        }
        let _ = rt.run(&["delete", "-f", &id]);
    }
    assert!(
        failures.is_empty(),
        "{} of {n} starts failed, first: {}",
        failures.len(),
        failures[0]
    );
}

// ---- item 14: concurrent deletes -----------------------------------------

#[test]
fn two_forced_deletes_at_once_both_succeed() {
    require_root();
    let _load = Load::start(2);
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let mut bad = Vec::new();
    for i in 0..25 {
        let id = format!("dd{i}-{}", std::process::id());
        rt.create_ok(&b, &id);
        rt.ok(&["start", &id]);
        let spawn = || {
            let mut c = rt.cmd(&["delete", "-f", &id]);
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            c.spawn().expect("spawn delete")
        };
        let (a, b2) = (spawn(), spawn());
        for c in [a, b2] {
            let out = c.wait_with_output().unwrap();
            if !out.status.success() {
                bad.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        assert!(!rt.root.join(&id).exists());
    }
    assert!(
        bad.is_empty(),
        "{} deletes failed: {:?}",
        bad.len(),
        bad.first()
    );
    // A never-existing id still fails without -f (runc: "does not exist").
    let (code, _, _) = timed(&rt, &["delete", "never-there"], Duration::from_secs(15));
    assert_ne!(code, 0);
}

// ---- item 15: foreground run deleted from outside --------------------------

#[test]
fn foreground_run_deleted_from_outside_exits_137() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("fg");
    let mut c = rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = c.spawn().expect("spawn run");
    assert!(rt.wait_status(&id, "running", Duration::from_secs(20)));
    rt.ok(&["delete", "-f", &id]);
    let out = {
        let t = Instant::now();
        let mut child = child;
        loop {
            if child.try_wait().unwrap().is_some() || t.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(137),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- item 17: kill --all after the init exited ----------------------------

#[test]
fn kill_all_reaches_what_an_exited_init_left_behind() {
    require_root();
    if vessel_only("kill_all_reaches_what_an_exited_init_left_behind") {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000 & exit 0"]);
    let ns: Vec<Value> = b.spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "pid")
        .cloned()
        .collect();
    b.spec["linux"]["namespaces"] = json!(ns);
    b.write();
    let id = unique_id("kall");
    rt.create_ok(&b, &id);
    let cgroups = cgroup_dirs_in_state(&read_json(&state_file(&rt, &id)));
    let procs_file = cgroups
        .iter()
        .map(|d| d.join("cgroup.procs"))
        .find(|p| p.exists())
        .expect("the container has a cgroup");
    rt.ok(&["start", &id]);
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(20)));
    let procs = || -> Vec<i32> {
        fs::read_to_string(&procs_file)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(10), || procs().len() == 2),
        "expected the two sleeps in the cgroup: {:?}",
        procs()
    );
    let left = procs();
    let (code, o, e) = timed(
        &rt,
        &["kill", "--all", &id, "KILL"],
        Duration::from_secs(20),
    );
    let gone = wait_for(Duration::from_secs(10), || {
        left.iter().all(|&p| !pid_alive(p))
    });
    for &p in &left {
        sigkill(p);
    }
    assert_eq!(code, 0, "kill --all refused\nstdout: {o}\nstderr: {e}");
    assert!(gone, "leftover processes survived kill --all");
    rt.ok(&["delete", &id]);
}

// ---- item 18: SIGTERM to a created container ------------------------------

#[test]
fn sigterm_stops_a_created_container() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("term");
    rt.create_ok(&b, &id);
    rt.ok(&["kill", &id, "TERM"]);
    assert!(
        rt.wait_status(&id, "stopped", Duration::from_secs(10)),
        "a created container ignored SIGTERM: {:?}",
        rt.status(&id)
    );
    rt.ok(&["delete", &id]);
}

/// The caller ignores some signals, as a shell's background job does (and
/// Rust's runtime ignores SIGPIPE in vessel itself): nothing ignored may
/// reach the container.
fn ignore_some_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTSTP] {
                libc::signal(sig, libc::SIG_IGN);
            }
            Ok(())
        });
    }
}

#[test]
fn the_workload_starts_with_default_signal_dispositions() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["cat", "/proc/self/status"]);
    let id = unique_id("sigrun");
    let mut cmd = rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    ignore_some_signals(&mut cmd);
    let o = cmd.output().expect("run");
    let _ = rt.run(&["delete", "-f", &id]);
    assert!(
        o.status.success(),
        "run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for key in ["SigBlk", "SigIgn", "SigCgt"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"));
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        // Signals 1-31 (32 and up are libc-internal or inherited from the
        // test harness, the same under runc).
        assert_eq!(mask & 0x7fff_ffff, 0, "workload {line}");
    }
}

#[test]
fn an_exec_process_starts_with_default_signal_dispositions() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("sigexec");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let mut cmd = rt.cmd(&["exec", &id, "cat", "/proc/self/status"]);
    ignore_some_signals(&mut cmd);
    let o = cmd.output().expect("run exec");
    assert!(
        o.status.success(),
        "exec: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for key in ["SigBlk", "SigIgn", "SigCgt"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"));
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        // SIGPIPE (bit 12) was left ignored by vessel's Rust runtime.
        assert_eq!(mask & 0x7fff_ffff, 0, "exec'd process {line}");
    }
    rt.ok(&["delete", "-f", &id]);
}

// ---- item 19: crafted state ----------------------------------------------

#[test]
fn a_state_pointing_at_another_process_never_kills_it() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("craft");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let mut bystander = Command::new("sleep").arg("1000").spawn().unwrap();
    let path = state_file(&rt, &id);
    let mut v = read_json(&path);
    v["pid"] = json!(bystander.id());
    fs::write(&path, v.to_string()).unwrap();
    let _ = timed(&rt, &["kill", &id, "KILL"], Duration::from_secs(15));
    let _ = timed(
        &rt,
        &["kill", "--all", &id, "KILL"],
        Duration::from_secs(15),
    );
    let (code, _, e) = timed(&rt, &["delete", "-f", &id], Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(200));
    let alive = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(
        alive,
        "the bystander named in a crafted state.json was killed"
    );
    assert_eq!(code, 0, "delete -f: {e}");
}

// ---- item 25: list --------------------------------------------------------

/// Go's tabwriter(minwidth 12, padding 3) column starts of a line.
fn column_starts(header: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let b = header.as_bytes();
    for i in 1..b.len() {
        if b[i] != b' ' && b[i - 1] == b' ' {
            starts.push(i);
        }
    }
    starts
}

#[test]
fn list_lays_out_columns_as_runc() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let ids = [
        unique_id("l"),
        format!("a-rather-long-container-id-{}", std::process::id()),
    ];
    for id in &ids {
        rt.create_ok(&b, id);
    }
    let out = rt.ok(&["list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let starts = column_starts(lines[0]);
    assert_eq!(starts.len(), 6, "header: {:?}", lines[0]);
    for l in &lines[1..] {
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "row {l:?}");
        for (i, f) in fields.iter().enumerate() {
            assert_eq!(
                l.get(starts[i]..starts[i] + f.len()),
                Some(*f),
                "column {i} misaligned in {out}"
            );
        }
    }
    // Each column is its widest cell + 3, at least 12.
    for i in 0..5 {
        let widest = lines
            .iter()
            .map(|l| l.split_whitespace().nth(i).unwrap().len())
            .max()
            .unwrap();
        assert_eq!(
            starts[i + 1] - starts[i],
            (widest + 3).max(12),
            "column {i} width: {out}"
        );
    }
    let q = rt.ok(&["list", "-q"]);
    let mut want: Vec<String> = ids.to_vec();
    want.sort();
    assert_eq!(q.lines().map(str::to_owned).collect::<Vec<_>>(), want);
    let j: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    let got: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    for c in j.as_array().unwrap() {
        assert_eq!(c["status"], "created");
        assert!(c["pid"].as_i64().unwrap() > 0);
    }
    for id in &ids {
        rt.ok(&["delete", "-f", id]);
    }
    let empty = Runtime::new();
    assert_eq!(empty.ok(&["list", "--format", "json"]).trim(), "null");
}

// ---- item 26: CLI -----------------------------------------------------------

#[test]
fn version_flag_prints_version_commit_and_spec() {
    let out = Command::new(runtime_bin()).arg("-v").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let name = runtime_bin()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(lines.len() >= 3, "{text}");
    assert!(lines[0].starts_with(&format!("{name} version ")), "{text}");
    assert!(
        lines[0].split(' ').nth(2).unwrap().split('.').count() >= 3,
        "{text}"
    );
    assert!(lines[1].starts_with("commit:"), "{text}");
    assert!(lines[2].starts_with("spec: 1."), "{text}");
}

#[test]
fn help_works_on_every_command_and_fails_on_an_unknown_one() {
    let cmds = [
        "create",
        "start",
        "run",
        "state",
        "list",
        "kill",
        "delete",
        "exec",
        "ps",
        "pause",
        "resume",
        "update",
        "events",
        "spec",
        "features",
        "checkpoint",
    ];
    for c in cmds {
        let out = Command::new(runtime_bin())
            .args([c, "-h"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{c} -h failed");
        assert!(!out.stdout.is_empty(), "{c} -h printed nothing");
    }
    let out = Command::new(runtime_bin())
        .args(["no-such-command", "-h"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown command's -h succeeded");
}

#[test]
fn debug_goes_to_stderr_or_the_log_in_text_and_json() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let base = |extra: &[&str], id: &str| {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&rt.root).args(extra);
        c.args(["run", "--bundle", b.dir.to_str().unwrap(), id]);
        c.stdin(Stdio::null());
        triple(&run_with_timeout(c, Duration::from_secs(30)))
    };
    let (code, _, err) = base(&["--debug"], &unique_id("dbg"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("level=debug"),
        "no debug line on stderr: {err}"
    );

    let log = scratch_dir().join(unique_id("dbg")).with_extension("log");
    let (code, _, err) = base(
        &["--debug", "--log", log.to_str().unwrap()],
        &unique_id("dbg"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("level=debug"),
        "debug on stderr despite --log: {err}"
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("level=debug"),
        "no text debug line in --log: {text}"
    );

    let logj = scratch_dir().join(unique_id("dbg")).with_extension("log");
    let (code, _, err) = base(
        &[
            "--debug",
            "--log",
            logj.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &unique_id("dbg"),
    );
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(&logj).unwrap_or_default();
    assert!(
        text.contains(r#""level":"debug""#),
        "no json debug line in --log: {text}"
    );
    let _ = fs::remove_file(&log);
    let _ = fs::remove_file(&logj);

    // The log file exists after a command with nothing to report.
    let quiet = scratch_dir().join(unique_id("quiet")).with_extension("log");
    let out = Command::new(runtime_bin())
        .arg("--root")
        .arg(&rt.root)
        .arg("--log")
        .arg(&quiet)
        .arg("list")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(quiet.exists(), "--log was not created at start");
    let _ = fs::remove_file(&quiet);
}

#[test]
fn kill_with_signal_zero_probes_liveness() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("k0");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    rt.ok(&["kill", &id, "0"]);
    assert_eq!(
        rt.status(&id).as_deref(),
        Some("running"),
        "signal 0 changed the container"
    );
    rt.ok(&["kill", &id, "KILL"]);
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    let (code, _, _) = timed(&rt, &["kill", &id, "0"], Duration::from_secs(10));
    assert_ne!(code, 0, "signal 0 to a stopped container succeeded");
    rt.ok(&["delete", &id]);
}
