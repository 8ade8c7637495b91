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

/// A busybox rootfs built once per test binary by rootfs-tools/mkrootfs.sh.
pub fn rootfs_template() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir().join(format!("rootfs-template-{}", std::process::id()));
        let st = Command::new(repo_dir().join("rootfs-tools/mkrootfs.sh"))
            .arg(&dir)
            .status()
            .expect("run rootfs-tools/mkrootfs.sh");
        assert!(st.success(), "mkrootfs.sh failed");
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

/// Run a command, killing it after `limit`.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn runtime");
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while !d2.load(Ordering::SeqCst) {
            if start.elapsed() > limit {
                // SAFETY: plain kill(2) of our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let out = child.wait_with_output().expect("wait runtime");
    done.store(true, Ordering::SeqCst);
    let timed_out = watchdog.join().unwrap_or(false);
    assert!(!timed_out, "command timed out after {limit:?}");
    out
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
