//! OCI hooks: all six kinds, their order, the state each gets on stdin, the
//! namespace each runs in, failures and timeouts. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test hooks` checks the
//! tests themselves against runc.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// A hook script in the rootfs: appends "<kind> <mnt ns> <stdin>" to $LOG.
/// It runs on the host (host path) and inside the container (/hook.sh).
fn install_hook_script(b: &Bundle) {
    let p = b.rootfs().join("hook.sh");
    std::fs::write(
        &p,
        "#!/bin/sh\nstate=$(cat)\nprintf '%s %s %s\\n' \"$1\" \"$(readlink /proc/self/ns/mnt)\" \"$state\" >> \"$LOG\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn hook(path: &str, kind: &str, log: &str) -> Value {
    json!({"path": path, "args": ["hook.sh", kind], "env": [format!("LOG={log}"), "PATH=/usr/bin:/bin"]})
}

struct Line {
    kind: String,
    mntns: String,
    state: Value,
}

fn read_log(path: &std::path::Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let kind = it.next().unwrap().to_string();
            let mntns = it.next().unwrap_or("").to_string();
            let state = serde_json::from_str(it.next().unwrap_or("")).unwrap_or(Value::Null);
            Line { kind, mntns, state }
        })
        .collect()
}

#[test]
fn all_hooks_in_order_with_state() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "echo workload >> /hooklog"]);
    install_hook_script(&b);
    let host_script = b.rootfs().join("hook.sh").to_string_lossy().into_owned();
    let host_log = b.rootfs().join("hooklog").to_string_lossy().into_owned();
    let h = |kind: &str| hook(&host_script, kind, &host_log);
    b.spec["hooks"] = json!({
        "prestart": [h("prestart")],
        "createRuntime": [h("createRuntime")],
        "createContainer": [h("createContainer")],
        "startContainer": [hook("/hook.sh", "startContainer", "/hooklog")],
        "poststart": [h("poststart")],
        "poststop": [h("poststop")],
    });
    b.write();
    let id = unique_id("hooks");
    rt.create_ok(&b, &id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let init_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let log = b.rootfs().join("hooklog");
    let after_create: Vec<String> = read_log(&log).into_iter().map(|l| l.kind).collect();
    assert_eq!(
        after_create,
        ["prestart", "createRuntime", "createContainer"],
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    rt.ok(&["start", &id]);
    assert!(rt.wait_status(&id, "stopped", T));
    rt.ok(&["delete", &id]);

    let lines = read_log(&log);
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
    // poststart runs after the workload started: it may log before or
    // after the workload's own line.
    let without_workload: Vec<&str> = kinds.iter().copied().filter(|k| *k != "workload").collect();
    assert_eq!(
        without_workload,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{kinds:?}"
    );
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("startContainer") < pos("workload"), "{kinds:?}");
    assert!(pos("workload") < pos("poststop"), "{kinds:?}");

    let bundle = std::fs::canonicalize(&b.dir).unwrap();
    for l in lines.iter().filter(|l| l.kind != "workload") {
        let s = &l.state;
        assert_eq!(s["id"], id.as_str(), "{}: {s}", l.kind);
        assert_eq!(
            std::fs::canonicalize(s["bundle"].as_str().unwrap_or("/nonexistent")).ok(),
            Some(bundle.clone()),
            "{}: {s}",
            l.kind
        );
        let want_status = match l.kind.as_str() {
            "prestart" | "createRuntime" | "createContainer" => "creating",
            "startContainer" => "created",
            "poststart" => "running",
            _ => "stopped",
        };
        assert_eq!(s["status"], want_status, "{}: {s}", l.kind);
        if l.kind != "poststop" {
            assert_eq!(s["pid"].as_i64(), Some(pid), "{}: {s}", l.kind);
        }
        match l.kind.as_str() {
            // createContainer and startContainer: the container's mount ns.
            "createContainer" | "startContainer" => {
                assert_eq!(
                    l.mntns, init_mnt,
                    "{} ran outside the container mnt ns",
                    l.kind
                )
            }
            _ => assert_eq!(l.mntns, host_mnt, "{} ran outside the host mnt ns", l.kind),
        }
    }
}

#[test]
fn start_container_hook_path_is_inside_rootfs() {
    require_root();
    // /only-in-container.sh exists in the rootfs, not on the host.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let name = format!("only-in-container-{}.sh", unique_id("h"));
    assert!(!std::path::Path::new("/").join(&name).exists());
    let p = b.rootfs().join(&name);
    std::fs::write(&p, "#!/bin/sh\ncat > /started-state\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    b.spec["hooks"] = json!({"startContainer": [{"path": format!("/{name}")}]});
    b.write();
    let id = unique_id("hstart");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    assert!(rt.wait_status(&id, "stopped", T));
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(b.rootfs().join("started-state"))
            .expect("hook ran in the container"),
    )
    .unwrap();
    assert_eq!(st["id"], id.as_str());
    rt.ok(&["delete", &id]);
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let marker = b.dir.join("second-ran");
    b.spec["hooks"] = json!({"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]},
        {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", marker.display())]}
    ]});
    b.write();
    let id = unique_id("hfail");
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0, "create succeeded despite a failing hook");
    assert!(err.to_lowercase().contains("hook"), "stderr: {err}");
    assert!(!marker.exists(), "a hook after the failing one ran");
    assert!(!rt.log_errors().is_empty());
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn hook_timeout() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["hooks"] = json!({"prestart": [
        {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
    ]});
    b.write();
    let id = unique_id("htime");
    let t0 = Instant::now();
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    let took = t0.elapsed();
    assert_ne!(code, 0, "create succeeded despite a hung hook");
    assert!(
        took < Duration::from_secs(15),
        "timeout not enforced: {took:?}"
    );
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "stderr: {err}"
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn failing_poststop_hook_does_not_block_delete() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["hooks"] = json!({"poststop": [{"path": "/bin/false"}]});
    b.write();
    let id = unique_id("hpost");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    assert!(rt.wait_status(&id, "stopped", T));
    let _ = rt.run(&["delete", &id]);
    assert!(rt.status(&id).is_none(), "container survived delete");
    assert!(cgroup_dirs_of(&id).is_empty());
}
