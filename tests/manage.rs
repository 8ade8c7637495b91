//! ps, pause/resume, update and events on real containers. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test manage` checks the
//! tests themselves against runc.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

/// A detached container from `b`; returns its id.
fn start(rt: &Runtime, b: &Bundle) -> String {
    let id = unique_id("mng");
    let (code, _, err) =
        triple(&rt.run_detached(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]));
    assert_eq!(code, 0, "run -d failed: {err}");
    id
}

fn init_pid(rt: &Runtime, id: &str) -> i32 {
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// The file of a cgroup controller for `pid`, found through
/// /proc/<pid>/cgroup: the v1 hierarchy of `controller`, else cgroup2.
fn cgroup_file(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for l in text.lines() {
        let f: Vec<&str> = l.splitn(3, ':').collect();
        if f.len() == 3 && f[1].split(',').any(|c| c == controller) {
            let p = format!("/sys/fs/cgroup/{controller}{}/{v1_file}", f[2]);
            if std::path::Path::new(&p).exists() {
                return std::fs::read_to_string(p).ok();
            }
        }
    }
    for l in text.lines() {
        if let Some(path) = l.strip_prefix("0::") {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let p = format!("{base}{path}/{v2_file}");
                if std::path::Path::new(&p).exists() {
                    return std::fs::read_to_string(p).ok();
                }
            }
        }
    }
    None
}

#[test]
fn ps_lists_init_and_exec_processes() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = start(&rt, &b);
    let init = init_pid(&rt, &id);
    let pf = rt.root.with_extension("ps.pid");
    let (code, _, err) = triple(&rt.run_detached(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "500",
    ]));
    assert_eq!(code, 0, "exec -d failed: {err}");
    let exec_pid: i64 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&pf);

    let out = rt.ok(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(out.trim()).expect("ps json is a list of pids");
    assert!(pids.contains(&(init as i64)), "{pids:?} lacks init {init}");
    assert!(pids.contains(&exec_pid), "{pids:?} lacks exec'd {exec_pid}");

    let table = rt.ok(&["ps", &id]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let idx = header
        .split_whitespace()
        .position(|f| f == "PID")
        .expect("PID column");
    let listed: Vec<i64> = lines
        .map(|l| l.split_whitespace().nth(idx).unwrap().parse().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    let mut expect = pids.clone();
    expect.sort();
    assert_eq!(
        sorted, expect,
        "table rows are the container's pids only:\n{table}"
    );

    let custom = rt.ok(&["ps", &id, "-o", "pid,comm"]);
    assert!(custom.starts_with("  PID") || custom.trim_start().starts_with("PID"));
    assert!(custom.contains("sleep"), "{custom}");
    let bad = rt.run(&["ps", "--format", "xml", &id]);
    assert!(!bad.status.success());
}

#[test]
fn pause_and_resume_change_the_status() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = start(&rt, &b);
    let init = init_pid(&rt, &id);
    let bad = rt.run(&["resume", &id]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not paused"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    rt.ok(&["pause", &id]);
    assert_eq!(rt.state(&id)["status"], "paused");
    // A frozen task shows state D or is listed as frozen by its cgroup.
    let frozen = cgroup_file(init, "freezer", "freezer.state", "cgroup.freeze").unwrap_or_default();
    assert!(
        frozen.trim() == "FROZEN" || frozen.trim() == "1",
        "freezer: {frozen:?}"
    );
    let again = rt.run(&["pause", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not running"));
    rt.ok(&["resume", &id]);
    assert_eq!(rt.state(&id)["status"], "running");
    rt.ok(&["kill", &id, "9"]);
    assert!(wait_for(Duration::from_secs(10), || rt.state(&id)
        ["status"]
        == "stopped"));
    let stopped = rt.run(&["pause", &id]);
    assert_eq!(stopped.status.code(), Some(1));
}

#[test]
fn update_changes_memory_and_pids_limits() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = start(&rt, &b);
    let init = init_pid(&rt, &id);
    if cgroup_file(init, "memory", "memory.limit_in_bytes", "memory.max").is_none()
        || cgroup_file(init, "pids", "pids.max", "pids.max").is_none()
    {
        skip("no memory or pids controller for the container");
        return;
    }
    rt.ok(&["update", "--memory", "48m", "--pids-limit", "33", &id]);
    let mem = cgroup_file(init, "memory", "memory.limit_in_bytes", "memory.max").unwrap();
    assert_eq!(mem.trim(), (48u64 << 20).to_string());
    let pids = cgroup_file(init, "pids", "pids.max", "pids.max").unwrap();
    assert_eq!(pids.trim(), "33");

    // --resources FILE, merged: the pids limit set before stays.
    let res = rt.root.with_extension("res.json");
    std::fs::write(&res, json!({"memory": {"limit": 40 << 20}}).to_string()).unwrap();
    rt.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
    let _ = std::fs::remove_file(&res);
    let mem = cgroup_file(init, "memory", "memory.limit_in_bytes", "memory.max").unwrap();
    assert_eq!(mem.trim(), (40u64 << 20).to_string());
    let pids = cgroup_file(init, "pids", "pids.max", "pids.max").unwrap();
    assert_eq!(pids.trim(), "33");

    // --resources - reads stdin.
    let mut cmd = rt.cmd(&["update", "--resources", "-", &id]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!({"pids": {"limit": 44}}).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pids = cgroup_file(init, "pids", "pids.max", "pids.max").unwrap();
    assert_eq!(pids.trim(), "44");

    let bad = rt.run(&["update", "--memory", "12x", &id]);
    assert!(!bad.status.success());
}

#[test]
fn events_stats_prints_one_json_object() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = start(&rt, &b);
    let out = rt.ok(&["events", "--stats", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: Value = serde_json::from_str(lines[0]).expect("events output is JSON");
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    assert!(v["data"]["memory"].is_object(), "{v}");
    assert!(v["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["data"]["cpu"]["usage"]["total"].is_u64(), "{v}");
    let bad = rt.run(&["events", "--interval", "0s", &id]);
    assert!(!bad.status.success());
}

#[test]
fn events_stream_reports_oom_and_ends_with_the_container() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let limit = 16i64 << 20;
    b.spec["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    b.write();
    let id = start(&rt, &b);
    let mut cmd = rt.cmd(&["events", "--interval", "1s", &id]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut events = cmd.spawn().unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A stats event arrives on the interval.
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a stats event");
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["type"], "stats");
    // Allocate far beyond the limit: the kernel OOM-kills dd.
    let out = rt.run(&[
        "exec",
        &id,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_ne!(out.status.code(), Some(0), "dd should be OOM-killed");
    let mut saw_oom = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: Value = serde_json::from_str(&line).expect("each line is JSON");
            if v["type"] == "oom" {
                assert_eq!(v["id"], id.as_str());
                saw_oom = true;
                break;
            }
        }
    }
    // The stream ends when the container stops (runc: when it is deleted).
    rt.ok(&["kill", &id, "9"]);
    assert!(wait_for(Duration::from_secs(10), || rt.state(&id)
        ["status"]
        == "stopped"));
    if is_vessel() {
        assert!(
            wait_for(Duration::from_secs(10), || events
                .try_wait()
                .unwrap()
                .is_some()),
            "events exits once the container stopped"
        );
    } else {
        let _ = rt.run(&["delete", "-f", &id]);
        if !wait_for(Duration::from_secs(10), || {
            events.try_wait().unwrap().is_some()
        }) {
            let _ = events.kill();
        }
    }
    let _ = events.wait();
    assert!(saw_oom, "no oom event");
}
