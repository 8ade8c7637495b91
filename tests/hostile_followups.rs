//! Follow-ups of issue 12 found by running runc 1.1.5's own bats tests
//! against vessel: device access letters, a stray NUL on the console, and
//! error wording that tooling greps for. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test hostile_followups`
//! checks the tests themselves against runc.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// The container's devices cgroup directory on a v1 (or hybrid) host, None
/// (after saying why) where devices is not a v1 controller.
fn devices_dir(id: &str) -> Option<PathBuf> {
    let d = cgroup_dirs_of(id)
        .into_iter()
        .find(|d| d.join("devices.list").exists());
    if d.is_none() {
        skip(&format!(
            "part of the test: no v1 devices cgroup for {id} (pure cgroup v2 host?)"
        ));
    }
    d
}

/// update.bats "update devices [minimal transition rules]": a deny rule
/// with access "rwa" ('a' is no devices-cgroup letter). runc drops the
/// unknown letter; vessel at 957eaa3 wrote it to devices.deny and the
/// kernel said EINVAL (main's v1 transition code already filtered letters;
/// its v2 BPF generator refused the rule: see devices_bpf's unit test
/// `unknown_access_letters_are_dropped_as_runc_does`). The container must start, /dev/kmsg must stay denied, /dev/null
/// usable, and repeated updates must not fail or change the rules.
#[test]
fn device_rule_with_unknown_access_letter_is_normalised() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "300"]);
    b.spec["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwa"},
    ]});
    b.spec["linux"]["devices"] =
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]);
    b.write();
    let id = unique_id("devacc");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let out = rt.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "head -c 1 /dev/kmsg >/dev/null 2>&1 && echo KMSG-READ; echo ok >/dev/null && echo NULL-OK",
    ]);
    let (code, o, e) = triple(&out);
    assert_eq!(code, 0, "exec failed: {o} {e}");
    assert!(!o.contains("KMSG-READ"), "/dev/kmsg readable: {o}");
    assert!(o.contains("NULL-OK"), "/dev/null not writable: {o} {e}");
    let list_before = devices_dir(&id).map(|d| fs::read_to_string(d.join("devices.list")).unwrap());
    if let Some(l) = &list_before {
        assert!(
            l.lines().any(|l| l == "c 10:229 rw"),
            "c 10:229 rw missing: {l}"
        );
        assert!(!l.contains("c 1:11 "), "kmsg allowed: {l}");
    }
    for _ in 0..10 {
        rt.ok(&["update", "--pids-limit", "30", &id]);
    }
    if let Some(before) = list_before {
        let after = fs::read_to_string(devices_dir(&id).unwrap().join("devices.list")).unwrap();
        assert_eq!(before, after, "update changed the device rules");
    }
    rt.ok(&["delete", "-f", &id]);
}

/// An access naming none of r, w, m (e.g. "a" or "RWM") is refused with a
/// clear error at create: as a deny it would silently deny nothing (main
/// started the container with the deny "RWM" doing nothing, and failed an
/// allow "a" with the kernel's EINVAL for an empty access it wrote).
#[test]
fn device_rule_with_no_known_access_letter_is_refused() {
    require_root();
    if !is_vessel() {
        skip("vessel-only wording (runc refuses an allow, accepts a deny)");
        return;
    }
    for (allow, access) in [(true, "a"), (false, "RWM")] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&["true"]);
        b.spec["linux"]["resources"] = json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": allow, "type": "c", "major": 1, "minor": 11, "access": access},
        ]});
        b.write();
        let id = unique_id("devbad");
        let (code, _, e) = triple(&rt.create(&b, &id, &[]));
        assert_ne!(code, 0, "access {access:?} accepted");
        assert!(e.contains("names none of r, w, m"), "unclear error: {e}");
        assert_nothing_left(&rt, &id, &b);
    }
}

/// Receive one fd over SCM_RIGHTS with the payload it came with.
fn recv_fd_and_payload(sock: i32) -> Option<(OwnedFd, Vec<u8>)> {
    let mut name = [0u8; 256];
    let (fd, n) = libvessel::process::sync::recv_fd_named(sock, &mut name)?;
    // SAFETY: a fresh fd we own.
    Some((unsafe { OwnedFd::from_raw_fd(fd) }, name[..n].to_vec()))
}

/// Every runc bats terminal test: the pty master arrives over
/// --console-socket named "/dev/ptmx" as runc's utils.SendFd names it
/// (runc's recvtty names its file after the payload; vessel sent one NUL,
/// so recvtty's messages read "read \0: input/output error"), and the
/// first byte read from the master is the workload's own (no sync or
/// fifo byte reaches the pty).
#[test]
fn console_socket_master_is_named_and_output_starts_with_the_workload() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["echo", "Hello World"]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    let sock_path = scratch_dir().join(format!("{}.sock", unique_id("console")));
    let listener = UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept console socket");
        recv_fd_and_payload(conn.as_raw_fd()).expect("pty master over SCM_RIGHTS")
    });
    let id = unique_id("ttynul");
    let (code, _, err) =
        triple(&rt.create(&b, &id, &["--console-socket", sock_path.to_str().unwrap()]));
    assert_eq!(code, 0, "create: {err}");
    let (master, payload) = receiver.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&payload),
        "/dev/ptmx",
        "console-socket payload {payload:?}"
    );
    rt.ok(&["start", &id]);
    let mut m = File::from(master);
    let mut out = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while !out.ends_with(b"\n") && start.elapsed() < T {
        let mut p = libc::pollfd {
            fd: m.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 1000) } <= 0 {
            continue;
        }
        match m.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
        }
    }
    assert!(
        out.starts_with(b"Hello World"),
        "pty output does not start with the workload's: {out:?}"
    );
    assert!(!out.contains(&0), "a NUL on the pty: {out:?}");
    assert!(rt.wait_status(&id, "stopped", T));
    rt.ok(&["delete", &id]);
    let _ = fs::remove_file(&sock_path);
}

/// cgroups.bats "should warn about a non-empty cgroup": runc warns with
/// "container's cgroup is not empty" and joins; vessel keeps refusing
/// (issue 12 item 16: joining would let this container's `delete -f` kill
/// the other's processes) but says it in runc's words.
#[test]
fn non_empty_cgroup_is_refused_in_runcs_words() {
    require_root();
    if !is_vessel() {
        skip("runc warns and joins the cgroup (deliberate difference)");
        return;
    }
    let rt = Runtime::new();
    let path = format!("/{}", unique_id("hfu-cg"));
    let mut b1 = Bundle::new(&["sleep", "300"]);
    b1.spec["linux"]["cgroupsPath"] = json!(path);
    b1.write();
    let id1 = unique_id("cg1");
    rt.create_ok(&b1, &id1);
    let mut b2 = Bundle::new(&["true"]);
    b2.spec["linux"]["cgroupsPath"] = json!(path);
    b2.write();
    let id2 = unique_id("cg2");
    let (code, _, e) = triple(&rt.create(&b2, &id2, &[]));
    assert_ne!(code, 0, "a second container joined a used cgroup");
    assert!(
        e.contains("container's cgroup is not empty"),
        "no runc wording: {e}"
    );
    assert!(!e.contains("  "), "stray spaces in: {e}");
    assert!(
        !rt.root.join(&id2).exists(),
        "state of the refused container left"
    );
    rt.ok(&["delete", "-f", &id1]);
    assert!(cgroup_dirs_at(&path).is_empty(), "cgroup {path} left");
}

/// cgroups.bats "cgroup v1 + unified resources should fail" greps
/// "invalid configuration" (runc: "invalid configuration: cannot use
/// unified on cgroup v1").
#[test]
fn unified_key_for_a_v1_controller_is_an_invalid_configuration() {
    require_root();
    if !std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        skip("memory is not a cgroup v1 controller here (needs a hybrid/v1 host)");
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["resources"] = json!({"unified": {"memory.min": "131072"}});
    b.write();
    let id = unique_id("unif");
    let (code, _, e) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0, "unified memory.min accepted on a v1 memory host");
    assert!(e.contains("invalid configuration"), "no runc wording: {e}");
    assert_nothing_left(&rt, &id, &b);
}

/// seccomp-notify.bats "no seccompagent" greps "failed to connect with
/// seccomp agent".
#[test]
fn missing_seccomp_agent_is_reported_in_runcs_words() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let sock = scratch_dir().join(format!("{}.sock", unique_id("noagent")));
    b.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
    });
    b.write();
    let id = unique_id("noagent");
    let (code, o, e) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0, "create without an agent succeeded");
    assert!(
        format!("{o}{e}").contains("failed to connect with seccomp agent"),
        "no runc wording: {e}"
    );
    assert_nothing_left(&rt, &id, &b);
}

/// cgroups.bats "should refuse pre-existing frozen cgroup" greps
/// "container's cgroup unexpectedly frozen" (runc refuses too, status 1).
#[test]
fn frozen_cgroup_is_refused_in_runcs_words() {
    require_root();
    let path = format!("/{}", unique_id("hfu-frozen"));
    let (dir, file, frozen, thawed) = if std::path::Path::new("/sys/fs/cgroup/freezer").is_dir() {
        (
            PathBuf::from(format!("/sys/fs/cgroup/freezer{path}")),
            "freezer.state",
            "FROZEN",
            "THAWED",
        )
    } else {
        (
            PathBuf::from(format!("/sys/fs/cgroup{path}")),
            "cgroup.freeze",
            "1",
            "0",
        )
    };
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(file), frozen).unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["cgroupsPath"] = json!(path);
    b.write();
    let id = unique_id("frz");
    let (code, _, e) = triple(&rt.create(&b, &id, &[]));
    let _ = fs::write(dir.join(file), thawed);
    let _ = rt.run(&["delete", "-f", &id]);
    for d in cgroup_dirs_at(&path) {
        let _ = fs::remove_dir(d);
    }
    assert_ne!(code, 0, "create in a frozen cgroup succeeded");
    assert!(
        e.contains("container's cgroup unexpectedly frozen"),
        "no runc wording: {e}"
    );
}

/// exec.bats "runc exec --cgroup sub-cgroups [v1]" greps runc's words for
/// a sub-cgroup outside the container's (" .. is not a sub cgroup path")
/// and one that does not exist (" adding pid ...
/// /nonexistent/cgroup.procs: no such file ").
#[test]
fn exec_cgroup_errors_in_runcs_words() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("excg");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let (code, o, e) = triple(&rt.run(&["exec", "--cgroup", "..", &id, "true"]));
    assert_ne!(code, 0, "exec --cgroup .. succeeded: {o}");
    assert!(
        e.contains(" .. is not a sub cgroup path"),
        "no runc wording: {e}"
    );
    let (code, o, e) = triple(&rt.run(&["exec", "--cgroup", "nonexistent", &id, "true"]));
    assert_ne!(code, 0, "exec --cgroup nonexistent succeeded: {o}");
    assert!(
        e.contains(" adding pid ") && e.contains("/nonexistent/cgroup.procs: no such file "),
        "no runc wording: {e}"
    );
    rt.ok(&["delete", "-f", &id]);
}

/// list.bats "list" matches `list --format json` with a pattern in runc's
/// field order: ociVersion, id, pid, status, bundle, rootfs, created (then
/// owner); vessel printed the keys sorted (annotations first).
#[test]
fn list_json_fields_come_in_runcs_order() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("lst");
    rt.create_ok(&b, &id);
    let text = rt.ok(&["list", "--format", "json"]);
    let pos = |k: &str| {
        text.find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
    };
    let order = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ];
    for w in order.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} after {}: {text}", w[0], w[1]);
    }
    assert!(text.starts_with("[{\"ociVersion\":"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("list json parses");
    assert_eq!(v[0]["id"], json!(id));
    rt.ok(&["delete", "-f", &id]);
}
