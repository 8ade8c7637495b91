//! Shared harness for the end-to-end tests that drive vessel through real
//! engines (Podman + conmon, containerd + the runc v2 shim).
//!
//! Every check runs against runc and against vessel in the same test run.
//! A check that fails with runc is a harness bug; one that fails with vessel
//! is a vessel bug. Each runtime is reached through a small wrapper script
//! that logs the argv the engine passes, then execs the real binary.
//!
//! `VESSEL_E2E_RUNTIMES=runc` (or `vessel`) limits a run to one runtime;
//! `VESSEL_E2E_VESSEL=/path/to/vessel` tests another vessel binary.
#![allow(dead_code)]

pub mod containerd;
pub mod podman;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds any one engine command may take before `timeout` ends it.
pub const CMD_TIMEOUT: u64 = 60;
/// A terminal session that never connects (the runtime ignored
/// --console-socket) waits for this long instead.
pub const TTY_TIMEOUT: u64 = 30;
/// A runtime's whole suite stops starting new checks after this long, so a
/// runtime that hangs everywhere still gives a report in bounded time.
pub const SUITE_BUDGET: Duration = Duration::from_secs(110);

/// End of the running suite's budget: commands started near it get only what
/// is left (at least 5 s). None while cleaning up.
static DEADLINE: Mutex<Option<Instant>> = Mutex::new(None);

fn set_deadline(d: Option<Instant>) {
    if let Ok(mut g) = DEADLINE.lock() {
        *g = d;
    }
}

fn clamp_to_deadline(secs: u64) -> u64 {
    match DEADLINE.lock().ok().and_then(|g| *g) {
        Some(end) => {
            let left = end.saturating_duration_since(Instant::now()).as_secs();
            secs.min(left.max(5))
        }
        None => secs,
    }
}

pub const RUNC: &str = "/usr/sbin/runc";
pub const IMAGE: &str = "localhost/busybox:e2e";

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Is `name` an executable somewhere on PATH?
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p).any(|d| {
                fs::metadata(d.join(name))
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// Print the skip line the harness rules ask for and say whether to skip.
pub fn skip_without(binaries: &[&str]) -> bool {
    for b in binaries {
        if !on_path(b) {
            crate::common::skip(&format!("{b} not installed"));
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------
// Commands with a timeout

/// What a finished command gave back.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit code; None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-line summary for a failed check's detail column.
    pub fn brief(&self) -> String {
        let err = last_lines(&self.stderr, 2);
        let out = last_lines(&self.stdout, 2);
        format!("exit {:?}; stdout {:?}; stderr {:?}", self.code, out, err)
    }

    /// Ok(stdout) on exit 0, else Err with the details.
    pub fn stdout_if_ok(self, what: &str) -> Result<String, String> {
        if self.ok() {
            Ok(self.stdout)
        } else {
            Err(format!("{what}: {}", self.brief()))
        }
    }
}

pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" | ");
    if joined.len() > 300 {
        let mut cut = 300;
        while !joined.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &joined[..cut])
    } else {
        joined
    }
}

/// How to run one command.
pub struct Run<'a> {
    pub argv: Vec<String>,
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub timeout_secs: u64,
    /// Keep stdin an open pipe until the command ends (script(1) ends a
    /// `-t` session early when its stdin is at EOF).
    pub keep_stdin_open: bool,
}

/// Ok(stdout, on one line) when `out` exited `code` and its stdout holds
/// `contains`; Err describing what came instead.
pub fn expect(out: Out, code: i32, contains: &str) -> Result<String, String> {
    if out.code == Some(code) && out.stdout.contains(contains) {
        Ok(out.stdout.trim().replace(['\r', '\n'], " "))
    } else {
        Err(format!(
            "want exit {code} and stdout containing {contains:?}; got {}",
            out.brief()
        ))
    }
}

/// Run under `timeout -k 5 N`, with a watchdog in case even that hangs.
pub fn run(r: Run<'_>) -> Out {
    let timeout_secs = clamp_to_deadline(r.timeout_secs);
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg(timeout_secs.to_string())
        .args(&r.argv)
        .current_dir(r.cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if r.keep_stdin_open {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in r.env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                code: None,
                stdout: String::new(),
                stderr: format!("spawn {:?}: {e}", r.argv),
            }
        }
    };
    let stdin: Option<ChildStdin> = child.stdin.take();
    let out_buf = drain(child.stdout.take());
    let err_buf = drain(child.stderr.take());
    let code = wait_deadline(&mut child, Duration::from_secs(timeout_secs + 15));
    drop(stdin);
    // A daemon the command left behind may still hold the pipes: give the
    // readers a moment, then take what they have.
    let grace = Instant::now();
    while grace.elapsed() < Duration::from_secs(2)
        && (Arc::strong_count(&out_buf.0) > 1 || Arc::strong_count(&err_buf.0) > 1)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    Out {
        code,
        stdout: out_buf.take(),
        stderr: err_buf.take(),
    }
}

/// A pipe's contents, filled by a reader thread (which holds the 2nd Arc).
struct Drained(Arc<Mutex<Vec<u8>>>);

impl Drained {
    fn take(&self) -> String {
        let v = self.0.lock().map(|g| g.clone()).unwrap_or_default();
        String::from_utf8_lossy(&v).into_owned()
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Drained {
    let buf = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut p) = pipe {
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match p.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut g) = b.lock() {
                            g.extend_from_slice(&chunk[..n]);
                        }
                    }
                }
            }
        });
    }
    Drained(buf)
}

fn wait_deadline(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.code(),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                return child.wait().ok().and_then(|s| s.code());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return None,
        }
    }
}

/// Quote for sh -c (script(1) takes a command string).
pub fn shell_quote(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Poll until `f` gives Some or `limit` passes.
pub fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// The per-run directory

/// A temp dir under target/ for one test run; Drop unmounts anything left
/// under it and removes it.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(engine: &str) -> RunDir {
        let path = repo_dir()
            .join("target")
            .join(format!("e2e-{engine}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the e2e run dir");
        RunDir { path }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        unmount_all_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    let mut v: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v.dedup();
    v
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Detach every mount under `dir` (a failed engine can leave overlays and
/// shm tmpfs behind). Returns what was still mounted.
pub fn unmount_all_under(dir: &Path) -> Vec<String> {
    let found = mounts_under(dir);
    for _ in 0..3 {
        let now = mounts_under(dir);
        if now.is_empty() {
            break;
        }
        for m in now {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2 with a valid NUL-terminated path; MNT_DETACH
                // only affects mounts the test's engines made under its own dir.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
    found
}

/// Pids whose argv mentions `needle` (engine daemons of this run).
pub fn pids_with_arg(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                v.push(pid);
            }
        }
    }
    v
}

/// SIGKILL each pid (all were started by this test run, directly or not).
pub fn kill_pids(pids: &[i32]) {
    for &p in pids {
        // SAFETY: kill(2) on a pid this run started.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
}

/// Kill every process in a cgroup subtree (v1 pids or v2 unified), then
/// remove the subtree's directories, leaves first.
pub fn kill_and_remove_cgroup(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let mut dirs = Vec::new();
    for base in cgroup_mounts().into_iter().map(|(_, p)| p) {
        collect_dirs(&base.join(rel), &mut dirs);
    }
    for d in &dirs {
        let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        // Thaw first: a frozen task does not die until thawed.
        let _ = fs::write(d.join("freezer.state"), "THAWED");
        let _ = fs::write(d.join("cgroup.freeze"), "0");
        kill_pids(&pids);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
    for d in dirs {
        let _ = wait_until(Duration::from_secs(2), || fs::remove_dir(&d).ok());
    }
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    if !d.is_dir() {
        return;
    }
    out.push(d.to_path_buf());
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// (controllers or "" for cgroup2, mount point) of every cgroup mount.
pub fn cgroup_mounts() -> Vec<(String, PathBuf)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for l in info.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let mnt = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let opts = post.next().unwrap_or("");
        match fstype {
            "cgroup2" => v.push((String::new(), PathBuf::from(mnt))),
            "cgroup" => {
                let ctrls: Vec<&str> = opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .collect();
                let name = opts
                    .split(',')
                    .find_map(|o| o.strip_prefix("name="))
                    .map(|n| format!("name={n}"));
                let mut all: Vec<String> = ctrls.iter().map(|s| s.to_string()).collect();
                all.extend(name);
                v.push((all.join(","), PathBuf::from(mnt)));
            }
            _ => {}
        }
    }
    v
}

/// Read a limit file of `pid`'s cgroup as the host sees it: `v1_file` of
/// controller `ctrl` on a v1 (or hybrid) host, else `v2_file` on cgroup2.
pub fn host_cgroup_value(
    pid: i32,
    ctrl: &str,
    v1_file: &str,
    v2_file: &str,
) -> Result<String, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("read /proc/{pid}/cgroup: {e}"))?;
    let mounts = cgroup_mounts();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if !ctrls.is_empty() && ctrls.split(',').any(|c| c == ctrl) {
            let base = mounts
                .iter()
                .find(|(c, _)| c.split(',').any(|x| x == ctrl))
                .map(|(_, p)| p.clone())
                .ok_or_else(|| format!("no v1 mount for {ctrl}"))?;
            let file = base.join(path.trim_start_matches('/')).join(v1_file);
            return fs::read_to_string(&file)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("read {}: {e}", file.display()));
        }
    }
    // Pure cgroup v2: the 0:: line, under the cgroup2 mount at /sys/fs/cgroup.
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| format!("no {ctrl} line in /proc/{pid}/cgroup: {text:?}"))?;
    let base = mounts
        .iter()
        .find(|(c, p)| c.is_empty() && p == Path::new("/sys/fs/cgroup"))
        .map(|(_, p)| p.clone())
        .ok_or_else(|| format!("{ctrl} is neither a v1 controller nor on a cgroup2 root"))?;
    let file = base.join(path.trim_start_matches('/')).join(v2_file);
    fs::read_to_string(&file)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {}: {e}", file.display()))
}

// ---------------------------------------------------------------------------
// The image

/// Paths of the image tarballs built by tests/e2e/mkimage.sh.
pub struct Image {
    /// The plain rootfs tar (podman import).
    pub rootfs_tar: PathBuf,
    /// The OCI image layout tar (ctr images import).
    pub oci_tar: PathBuf,
}

pub fn build_image(dir: &Path) -> Result<Image, String> {
    let out = run(Run {
        argv: vec![
            repo_dir()
                .join("tests/e2e/mkimage.sh")
                .to_string_lossy()
                .into_owned(),
            dir.to_string_lossy().into_owned(),
        ],
        env: &[],
        cwd: dir,
        timeout_secs: CMD_TIMEOUT,
        keep_stdin_open: false,
    });
    if !out.ok() {
        return Err(format!("mkimage.sh: {}", out.brief()));
    }
    Ok(Image {
        rootfs_tar: dir.join("rootfs.tar"),
        oci_tar: dir.join("busybox-oci.tar"),
    })
}

// ---------------------------------------------------------------------------
// Runtimes under test

/// One OCI runtime, reached through an argv-logging wrapper whose basename
/// is the runtime's own (podman matches runtime_supports_json by basename).
pub struct RuntimeUnderTest {
    /// "runc" or "vessel".
    pub label: String,
    pub real: PathBuf,
    pub wrapper: PathBuf,
    pub argv_log: PathBuf,
}

impl RuntimeUnderTest {
    pub fn new(dir: &Path, label: &str, real: &Path) -> RuntimeUnderTest {
        let wdir = dir.join(format!("wrap-{label}"));
        fs::create_dir_all(&wdir).expect("create wrapper dir");
        let base = real
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| label.to_string());
        let wrapper = wdir.join(base);
        let argv_log = dir.join(format!("argv-{label}.log"));
        let q = |p: &Path| shell_quote(&[p.to_string_lossy().into_owned()]);
        let script = format!(
            "#!/bin/sh\n# Log the argv an engine passes, then run the real runtime.\n\
             printf '%s\\n' \"$*\" >> {log}\nexec {real} \"$@\"\n",
            log = q(&argv_log),
            real = q(real),
        );
        fs::write(&wrapper, script).expect("write runtime wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        RuntimeUnderTest {
            label: label.to_string(),
            real: real.to_path_buf(),
            wrapper,
            argv_log,
        }
    }

    pub fn wrapper_str(&self) -> String {
        self.wrapper.to_string_lossy().into_owned()
    }

    pub fn basename(&self) -> String {
        self.wrapper
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// runc and vessel (or the subset named in VESSEL_E2E_RUNTIMES).
pub fn runtimes(dir: &Path) -> Vec<RuntimeUnderTest> {
    let wanted = std::env::var("VESSEL_E2E_RUNTIMES").unwrap_or_else(|_| "runc,vessel".into());
    let mut v = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match name {
            "runc" => v.push(RuntimeUnderTest::new(dir, "runc", Path::new(RUNC))),
            "vessel" => {
                // VESSEL_E2E_VESSEL: another vessel binary (a release build, say).
                let bin = std::env::var_os("VESSEL_E2E_VESSEL")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vessel")));
                v.push(RuntimeUnderTest::new(dir, "vessel", &bin))
            }
            "" => {}
            other => panic!("VESSEL_E2E_RUNTIMES: unknown runtime {other:?} (runc, vessel)"),
        }
    }
    v
}

/// The distinct argv shapes a runtime saw: option names and subcommand
/// words kept, values (ids, paths, numbers) folded to "_".
pub fn argv_shapes(log: &Path) -> Vec<(String, usize)> {
    const VERBS: &[&str] = &[
        "create",
        "start",
        "run",
        "exec",
        "kill",
        "delete",
        "state",
        "list",
        "ps",
        "pause",
        "resume",
        "update",
        "events",
        "features",
        "checkpoint",
        "restore",
        "spec",
        "--help",
    ];
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut shapes: Vec<(String, usize)> = Vec::new();
    for line in text.lines() {
        let mut words: Vec<String> = Vec::new();
        let mut seen_verb = false;
        for t in line.split_whitespace() {
            let w = if t.starts_with('-') {
                t.split('=').next().unwrap_or(t).to_string()
            } else if !seen_verb && VERBS.contains(&t) {
                seen_verb = true;
                t.to_string()
            } else if seen_verb && t.chars().all(|c| c.is_ascii_digit()) && t.len() <= 2 {
                t.to_string() // a signal number
            } else {
                "_".to_string()
            };
            if !(w == "_" && words.last().map(|l| l == "_").unwrap_or(false)) {
                words.push(w);
            }
        }
        let shape = words.join(" ");
        match shapes.iter_mut().find(|(s, _)| *s == shape) {
            Some(e) => e.1 += 1,
            None => shapes.push((shape, 1)),
        }
    }
    shapes
}

// ---------------------------------------------------------------------------
// Checks and the report

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    pub secs: f64,
}

/// A check body: Ok(detail) passes, Err(detail) fails.
pub type CheckFn<'a> = Box<dyn FnOnce() -> Result<String, String> + 'a>;

/// Collects check results for one runtime's suite.
pub struct Checks {
    pub list: Vec<Check>,
    started: Instant,
}

impl Default for Checks {
    fn default() -> Self {
        Self::new()
    }
}

impl Checks {
    pub fn new() -> Checks {
        set_deadline(Some(Instant::now() + SUITE_BUDGET));
        Checks {
            list: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Run one check; Ok(detail) passes, Err(detail) or a panic fails.
    /// Returns whether it passed (later checks may depend on it).
    pub fn check(&mut self, name: &str, f: impl FnOnce() -> Result<String, String>) -> bool {
        let t = Instant::now();
        let res = if self.started.elapsed() > SUITE_BUDGET {
            Err(format!("not run: suite budget of {SUITE_BUDGET:?} used up"))
        } else {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(p) => Err(format!(
                    "panicked: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
            }
        };
        let (passed, detail) = match res {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.list.push(Check {
            name: name.to_string(),
            passed,
            detail,
            secs: t.elapsed().as_secs_f64(),
        });
        passed
    }

    /// The last check: runs whatever the budget, with full command timeouts.
    pub fn cleanup(&mut self, name: &str, f: impl FnOnce() -> Result<String, String>) -> bool {
        set_deadline(None);
        self.started = Instant::now();
        self.check(name, f)
    }

    /// Run `list` if the check named `needed` passed (`ok`), else record
    /// each as not run.
    pub fn check_all_if(&mut self, ok: bool, needed: &str, list: Vec<(&str, CheckFn<'_>)>) {
        for (name, f) in list {
            if ok {
                self.check(name, f);
            } else {
                self.blocked(name, needed);
            }
        }
    }

    /// Record a check that could not run because `needed` failed.
    pub fn blocked(&mut self, name: &str, needed: &str) {
        self.list.push(Check {
            name: name.to_string(),
            passed: false,
            detail: format!("not run: needs '{needed}'"),
            secs: 0.0,
        });
    }
}

/// One runtime's finished suite.
pub struct SuiteResult {
    pub runtime: String,
    pub checks: Vec<Check>,
    pub secs: f64,
    pub argv_log: PathBuf,
}

/// Copy the argv logs to target/e2e-logs/ so they outlive the run dir.
pub fn keep_argv_logs(engine: &str, results: &mut [SuiteResult]) {
    let keep = repo_dir().join("target/e2e-logs");
    let _ = fs::create_dir_all(&keep);
    for r in results {
        let to = keep.join(format!("{engine}-argv-{}.log", r.runtime));
        if fs::copy(&r.argv_log, &to).is_ok() {
            r.argv_log = to;
        }
    }
}

/// Print the table, the argv shapes, and assert runc and vessel all-pass.
pub fn report_and_assert(engine: &str, results: &[SuiteResult]) {
    let width = results
        .iter()
        .flat_map(|r| r.checks.iter().map(|c| c.name.len()))
        .max()
        .unwrap_or(10);
    let mut report = String::new();
    for r in results {
        let passed = r.checks.iter().filter(|c| c.passed).count();
        report += &format!(
            "\n== {engine} e2e with {}: {passed}/{} passed in {:.1}s\n",
            r.runtime,
            r.checks.len(),
            r.secs
        );
        for c in &r.checks {
            report += &format!(
                "  {} {:width$}  {:5.2}s  {}\n",
                if c.passed { "PASS" } else { "FAIL" },
                c.name,
                c.secs,
                c.detail,
            );
        }
        report += &format!("  argv {} saw (shape x count):\n", r.runtime);
        for (shape, n) in argv_shapes(&r.argv_log) {
            report += &format!("    {n:3} x {shape}\n");
        }
    }
    eprintln!("{report}");

    let mut problems = Vec::new();
    for r in results {
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        if r.checks.is_empty() {
            problems.push(format!("{}: no checks ran", r.runtime));
        } else if !failed.is_empty() {
            let why = if r.runtime == "runc" {
                "harness bug (runc must pass everything)"
            } else {
                "runtime bug"
            };
            problems.push(format!(
                "{engine} with {}: {why}: failed {failed:?}",
                r.runtime
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
