//! linux.seccomp through the runtime: errno, kill, argument conditions, the
//! default profile, flags and a NOTIFY listener. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test seccomp` checks the
//! tests themselves against runc.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::time::Duration;

fn bundle_with(args: &[&str], seccomp: Value) -> Bundle {
    let mut b = Bundle::new(args);
    b.spec["linux"]["seccomp"] = seccomp;
    b.write();
    b
}

fn default_profile() -> Value {
    let text = std::fs::read_to_string(repo_dir().join("runtime-spec/seccomp-default.json"))
        .expect("read runtime-spec/seccomp-default.json");
    serde_json::from_str(&text).expect("parse default profile")
}

#[test]
fn errno_action_fails_mkdir_with_eacces() {
    require_root();
    let b = bundle_with(
        &[
            "sh",
            "-c",
            "mkdir /tmp/x; echo rc=$?; mkdir -p /tmp/ok-not-blocked-by-name || true",
        ],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("rc=1"), "stdout: {out}");
    assert!(err.contains("Permission denied"), "stderr: {err}");
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn kill_action_ends_the_process_with_sigsys() {
    require_root();
    let b = bundle_with(
        &["uname"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]
        }),
    );
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 128 + libc::SIGSYS, "stdout: {out}\nstderr: {err}");
    assert!(out.is_empty(), "uname printed {out:?} despite the filter");
}

#[test]
fn personality_condition_allows_one_value_only() {
    require_root();
    // Only the query value (0xffffffff) may pass: linux32 (PER_LINUX32) fails.
    let strict = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_NE"}]}]
    });
    let b = bundle_with(&["sh", "-c", "linux32 uname -m; echo rc=$?"], strict);
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(!out.contains("rc=0"), "linux32 passed the filter: {out}");
    assert!(err.contains("Operation not permitted"), "stderr: {err}");

    // The default profile allows PER_LINUX32.
    let b = bundle_with(&["linux32", "uname", "-m"], default_profile());
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out.trim(), "i686");
}

#[test]
fn default_profile_runs_a_shell() {
    require_root();
    let b = bundle_with(
        &[
            "sh",
            "-c",
            "echo ok; ls / >/dev/null && date >/dev/null && echo still-ok",
        ],
        default_profile(),
    );
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "ok\nstill-ok\n");
}

#[test]
fn flags_log_and_spec_allow_are_accepted() {
    require_root();
    let b = bundle_with(
        &["sh", "-c", "echo ok; mkdir /tmp/y; echo rc=$?"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }),
    );
    let (code, out, err) = Runtime::new().run_bundle(&b);
    if !is_vessel() && err.contains("seccomp flags are not yet supported") {
        // runc 1.1.x rejects linux.seccomp.flags (support came in runc 1.2).
        skip(&format!(
            "the runtime under test does not support seccomp flags: {err}"
        ));
        return;
    }
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "ok\nrc=1\n", "stderr: {err}");
}

/// Answer every notification on `fd` with -EXDEV until the filter's last user
/// is gone; returns how many were answered.
fn answer_notifications(fd: i32) -> usize {
    let mut answered = 0;
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 30_000) };
        if n <= 0 || pfd.revents & libc::POLLIN == 0 {
            return answered;
        }
        // SAFETY: zeroed kernel structs, filled by the ioctls.
        unsafe {
            let mut req: libc::seccomp_notif = std::mem::zeroed();
            if libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) != 0 {
                return answered;
            }
            let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
            resp.id = req.id;
            resp.error = -libc::EXDEV;
            if libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) == 0 {
                answered += 1;
            }
        }
    }
}

#[test]
fn notify_hands_the_listener_to_the_agent() {
    require_root();
    let sock = scratch_dir().join(format!("{}.sock", unique_id("seccomp-agent")));
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let agent = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let (state, fd) =
            libvessel::isolation::seccomp::recv_listener_message(&stream).expect("receive state");
        let answered = answer_notifications(fd.as_raw_fd());
        (state, answered)
    });

    let b = bundle_with(
        &["sh", "-c", "mkdir /tmp/n; echo rc=$?"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock.to_str().unwrap(),
            "listenerMetadata": "vessel-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let rt = Runtime::new();
    let id = unique_id("notify");
    let out = rt.run(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    let _ = rt.run(&["delete", "-f", &id]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("rc=1"), "stdout: {stdout}");
    assert!(stderr.contains("cross-device"), "stderr: {stderr}");

    assert!(
        wait_for(Duration::from_secs(40), || agent.is_finished()),
        "agent thread did not finish"
    );
    let (state, answered) = agent.join().expect("agent thread");
    let _ = std::fs::remove_file(&sock);
    assert!(answered >= 1, "no notification answered");
    assert_eq!(state["metadata"], "vessel-test-metadata", "{state}");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["state"]["id"], id.as_str(), "{state}");
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
}
