//! Shared harness for the integration tests: busybox bundles, a private
//! runtime root per test, and helpers to run the runtime and read results.
//!
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test` runs the same tests
//! against another runtime, which shows a failing test is the runtime's fault.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod nested;
pub mod test_user;

#[allow(unused_imports)] // not every test binary boots the nested VM
pub use nested::*;

/// The runtime under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("VESSEL_TEST_RUNTIME") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_vessel")),
    }
}

/// True when the runtime under test is vessel (some checks are vessel-only).
pub fn is_vessel() -> bool {
    std::env::var_os("VESSEL_TEST_RUNTIME").is_none()
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scratch space for tests, kept under target/ so it is on a real disk.
pub fn scratch_dir() -> PathBuf {
    let d = repo_dir().join("target").join("test-scratch");
    fs::create_dir_all(&d).expect("create target/test-scratch");
    d
}

/// A busybox rootfs built once by rootfs-tools/mkrootfs.sh and shared by all
/// test binaries (built in a temporary dir, then renamed into place).
pub fn rootfs_template() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir().join("rootfs-template");
        if dir.join("bin/busybox").exists() {
            return dir;
        }
        let tmp = scratch_dir().join(format!("rootfs-template.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let st = Command::new(repo_dir().join("rootfs-tools/mkrootfs.sh"))
            .arg(&tmp)
            .status()
            .expect("run rootfs-tools/mkrootfs.sh");
        assert!(st.success(), "mkrootfs.sh failed");
        if fs::rename(&tmp, &dir).is_err() {
            // Another test binary won the race: use its copy.
            let _ = fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A container id unique within this test run.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A bundle directory with a copied busybox rootfs and an editable spec.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Value,
}

impl Bundle {
    /// A bundle from runtime-spec/config.json running `args`, no terminal.
    pub fn new(args: &[&str]) -> Bundle {
        let dir = scratch_dir().join(unique_id("bundle"));
        fs::create_dir_all(&dir).expect("create bundle dir");
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs_template())
            .arg(dir.join("rootfs"))
            .status()
            .expect("cp rootfs");
        assert!(st.success());
        let text = fs::read_to_string(repo_dir().join("runtime-spec/config.json"))
            .expect("read runtime-spec/config.json");
        let mut spec: Value = serde_json::from_str(&text).expect("parse template");
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        spec["root"]["readonly"] = json!(false);
        let b = Bundle { dir, spec };
        b.write();
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Write self.spec to config.json (call after editing spec).
    pub fn write(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.spec).expect("serialize spec"),
        )
        .expect("write config.json");
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A runtime with its own --root and --log, so tests never see each other.
pub struct Runtime {
    pub root: PathBuf,
    pub log: PathBuf,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        let root = scratch_dir().join(unique_id("root"));
        fs::create_dir_all(&root).expect("create runtime root");
        let log = root.with_extension("log");
        Runtime { root, log }
    }

    /// A Command with the global flags set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        c.args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run with a timeout (a hang fails the test instead of blocking CI).
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(self.cmd(args), Duration::from_secs(60))
    }

    /// Run, assert success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{:?} failed: {}\nstdout: {}\nstderr: {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run` a bundle in the foreground and return (exit code, stdout, stderr).
    pub fn run_bundle(&self, b: &Bundle) -> (i32, String, String) {
        let id = unique_id("run");
        let out = self.run(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
        let _ = self.run(&["delete", "-f", &id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `state` parsed as JSON.
    pub fn state(&self, id: &str) -> Value {
        let s = self.ok(&["state", id]);
        serde_json::from_str(&s).expect("state output is JSON")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Leave nothing behind even when a test fails half-way.
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = run_with_timeout(self.cmd(&["delete", "-f", &id]), Duration::from_secs(20));
            }
        }
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_file(&self.log);
    }
}

/// Run a command, killing it after `limit`. Output is read on threads, so
/// a container process that inherited the pipes cannot block the test.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    use std::io::Read;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn runtime");
    let (tx_out, rx_out) = std::sync::mpsc::channel();
    let (tx_err, rx_err) = std::sync::mpsc::channel();
    let mut so = child.stdout.take().expect("stdout pipe");
    let mut se = child.stderr.take().expect("stderr pipe");
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        let _ = tx_out.send(b);
    });
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        let _ = tx_err.send(b);
    });
    let status = wait_or_kill(&mut child, limit, &cmd);
    // A detached container may keep the pipes open: take what arrived.
    let grace = Duration::from_secs(2);
    let stdout = rx_out.recv_timeout(grace).unwrap_or_default();
    let stderr = rx_err.recv_timeout(grace).unwrap_or_default();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Poll until `f` is true or `limit` passes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Is a process alive (and not a zombie)?
pub fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|r| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Mount points under `dir` listed in /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&d))
        .collect()
}

// ---- helpers added for the lifecycle/config/bad_input/hooks/terminal/cgroups suites ----

/// Say that this test (or part of it) did not check what it is named for,
/// and why: on stderr, and as a line in $VESSEL_SKIP_LOG (tests/run-all.sh
/// counts and lists them at the end, since cargo hides a passing test's
/// stderr).
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIPPED: {test}: {why}");
    if let Some(log) = std::env::var_os("VESSEL_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
            let exe = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            let suite = exe.rsplit_once('-').map_or(exe.as_str(), |(s, _)| s);
            let _ = writeln!(f, "{suite}::{test}: {why}");
        }
    }
}

/// Fail at once, saying why, when not root: these tests run real containers
/// (namespaces, cgroups, mounts), and a test that passed without running
/// would hide that nothing was checked.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test runs real containers and needs root (euid is {euid}): run it as root, \
         e.g. `sudo -E cargo test` or tests/run-all.sh"
    );
}

/// Output of a command as (exit code, stdout, stderr).
pub fn triple(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Runtime {
    /// `create` a bundle under `id` (extra flags before the id).
    pub fn create(&self, b: &Bundle, id: &str, extra: &[&str]) -> Output {
        let mut args = vec!["create", "--bundle", b.dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(id);
        self.run_detached(&args)
    }

    /// Assert `create` worked.
    pub fn create_ok(&self, b: &Bundle, id: &str) {
        let out = self.create(b, id, &[]);
        let (code, o, e) = triple(&out);
        assert_eq!(code, 0, "create {id} failed\nstdout: {o}\nstderr: {e}");
    }

    /// The "status" field of `state`, or None when `state` fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.run(&["state", id]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["status"].as_str().map(str::to_owned)
    }

    /// Poll `state` until the status is `want`.
    pub fn wait_status(&self, id: &str, want: &str, limit: Duration) -> bool {
        wait_for(limit, || self.status(id).as_deref() == Some(want))
    }

    /// JSON error lines in the --log file.
    pub fn log_errors(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["level"] == "error" && v["msg"].is_string())
            .collect()
    }
}

/// Cgroup directories a container `id` would have under the default
/// cgroupsPath in any hierarchy, v1 or the unified one: /vessel/<id> under
/// the default root, /vessel/<8 hex digits of the root>-<id> under others.
pub fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    let mut found = cgroup_dirs_at(&format!("vessel/{id}"));
    let suffix = format!("-{id}");
    for parent in cgroup_dirs_at("vessel") {
        for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let tagged = name
                .strip_suffix(&suffix)
                .is_some_and(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()));
            if tagged && e.path().is_dir() {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

/// Existing directories `<hierarchy>/<rel>` under /sys/fs/cgroup (every v1
/// hierarchy and the unified one), plus `/sys/fs/cgroup/<rel>` on pure v2.
pub fn cgroup_dirs_at(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let mut found = Vec::new();
    for e in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = e.path().join(rel);
        if d.is_dir() {
            found.push(d);
        }
    }
    let top = Path::new("/sys/fs/cgroup").join(rel);
    if top.is_dir() && top.join("cgroup.procs").exists() && !found.contains(&top) {
        found.push(top);
    }
    found.sort();
    found
}

/// Pids whose cwd or root lies inside `rootfs` (a leftover container process).
pub fn procs_in(rootfs: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let canon = fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !pid_alive(pid) {
            continue;
        }
        for link in ["cwd", "root"] {
            if let Ok(t) = fs::read_link(e.path().join(link)) {
                if t.starts_with(&canon) {
                    pids.push(pid);
                    break;
                }
            }
        }
    }
    pids
}

/// Assert a failed create left nothing: no state dir, cgroup, mount or process.
pub fn assert_nothing_left(rt: &Runtime, id: &str, b: &Bundle) {
    let state = rt.root.join(id);
    assert!(!state.exists(), "state dir {} left behind", state.display());
    let cg = cgroup_dirs_of(id);
    assert!(cg.is_empty(), "cgroup dirs left behind: {cg:?}");
    let m = mounts_under(&b.dir);
    assert!(m.is_empty(), "mounts left under the bundle: {m:?}");
    let p = procs_in(&b.rootfs());
    assert!(p.is_empty(), "processes left in the rootfs: {p:?}");
}

/// Wait for a spawned child with a limit (SIGKILL and panic on timeout).
pub fn wait_child(mut child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    wait_or_kill(&mut child, limit, &format!("child {pid}"));
    child.wait_with_output().expect("collect child output")
}

/// Wait for `child`, killing it and failing the test after `limit`.
fn wait_or_kill(
    child: &mut std::process::Child,
    limit: Duration,
    what: &dyn std::fmt::Debug,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait child") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what:?} timed out after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Set the namespaces of a bundle (list of type names, each created new).
pub fn set_namespaces(b: &mut Bundle, types: &[&str]) {
    let v: Vec<Value> = types.iter().map(|t| json!({ "type": t })).collect();
    b.spec["linux"]["namespaces"] = json!(v);
}

/// Run a command whose descendants may keep its stdout/stderr open (a
/// container init inherits them from `create`): output goes to files, and
/// only the command itself is waited for, with a timeout.
pub fn run_detached_io(mut cmd: Command, limit: Duration) -> Output {
    let base = scratch_dir().join(unique_id("io"));
    let out_p = base.with_extension("out");
    let err_p = base.with_extension("err");
    cmd.stdout(fs::File::create(&out_p).expect("create stdout file"))
        .stderr(fs::File::create(&err_p).expect("create stderr file"));
    let mut child = cmd.spawn().expect("spawn runtime");
    let status = wait_or_kill(&mut child, limit, &cmd);
    let out = Output {
        status,
        stdout: fs::read(&out_p).unwrap_or_default(),
        stderr: fs::read(&err_p).unwrap_or_default(),
    };
    let _ = fs::remove_file(&out_p);
    let _ = fs::remove_file(&err_p);
    out
}

impl Runtime {
    /// Like `run`, for commands that leave a container process holding
    /// their stdio (create, run -d).
    pub fn run_detached(&self, args: &[&str]) -> Output {
        run_detached_io(self.cmd(args), Duration::from_secs(60))
    }
}

/// Read from `f` until `needle` shows up (or the deadline); all read so far.
pub fn read_until(f: &mut fs::File, acc: &mut String, needle: &str, limit: Duration) -> bool {
    let start = Instant::now();
    let fd = std::os::fd::AsRawFd::as_raw_fd(f);
    let mut buf = [0u8; 4096];
    while !acc.contains(needle) {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return false;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        match std::io::Read::read(f, &mut buf) {
            Ok(0) | Err(_) => return acc.contains(needle),
            Ok(k) => acc.push_str(&String::from_utf8_lossy(&buf[..k])),
        }
    }
    true
}

/// A console socket (--console-socket) that hands back the first pty
/// master it receives, as a file.
pub fn console_socket() -> (PathBuf, std::thread::JoinHandle<fs::File>) {
    let path = scratch_dir().join(format!("{}.sock", unique_id("con")));
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let h = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept console socket");
        let fd = libvessel::process::sync::recv_fd(std::os::fd::AsRawFd::as_raw_fd(&conn))
            .expect("pty master");
        // SAFETY: a fresh fd from SCM_RIGHTS that we own.
        fs::File::from(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    });
    (path, h)
}
