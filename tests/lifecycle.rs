//! The container lifecycle through the CLI: create, start, state, kill,
//! delete, run (foreground and detached), list, pid files, concurrent
//! commands on one id, exit codes and signal forwarding. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test lifecycle` checks
//! the tests themselves against runc.

mod common;

use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn create_start_exit_delete() {
    require_root();
    let rt = Runtime::new();
    // The workload waits for a file the test creates, so "running" is
    // observable before it exits.
    let b = Bundle::new(&[
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 0",
    ]);
    let id = unique_id("life");
    rt.create_ok(&b, &id);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().expect("pid in state") as i32;
    assert!(pid > 0 && pid_alive(pid), "init pid {pid} not alive");
    assert_eq!(
        std::fs::canonicalize(st["bundle"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(&b.dir).unwrap()
    );
    // The workload has not started: the marker dir is untouched and the
    // init is still the runtime's binary waiting on the FIFO, not sh.
    assert!(!b.rootfs().join("tmp/go").exists());

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let again = rt.run(&["start", &id]);
    assert!(!again.status.success(), "second start succeeded");

    let no_force = rt.run(&["delete", &id]);
    assert!(
        !no_force.status.success(),
        "delete of a running container without -f succeeded"
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));

    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    assert!(
        rt.wait_status(&id, "stopped", T),
        "never stopped: {:?}",
        rt.status(&id)
    );
    let start_stopped = rt.run(&["start", &id]);
    assert!(
        !start_stopped.status.success(),
        "start of a stopped container succeeded"
    );
    rt.ok(&["delete", &id]);
    let gone = rt.run(&["state", &id]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("does not exist"),
        "stderr: {}",
        String::from_utf8_lossy(&gone.stderr)
    );
    assert!(!rt.root.join(&id).exists());
    assert!(
        cgroup_dirs_of(&id).is_empty(),
        "cgroup left: {:?}",
        cgroup_dirs_of(&id)
    );
}

#[test]
fn state_of_unknown_id_does_not_exist() {
    require_root();
    let rt = Runtime::new();
    let (code, _, err) = triple(&rt.run(&["state", "no-such-container"]));
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "stderr: {err}");
}

fn running(rt: &Runtime, b: &Bundle) -> (String, i32) {
    let id = unique_id("run");
    rt.create_ok(b, &id);
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    (id, pid)
}

#[test]
fn kill_by_name_and_number() {
    require_root();
    let rt = Runtime::new();
    // Traps USR1 (by name) and records it, then dies on 15 (by number).
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo usr1 > /tmp/got' USR1; touch /tmp/ready; while true; do sleep 0.05; done",
    ]);
    let (id, pid) = running(&rt, &b);
    assert!(wait_for(T, || b.rootfs().join("tmp/ready").exists()));
    rt.ok(&["kill", &id, "USR1"]);
    assert!(
        wait_for(T, || b.rootfs().join("tmp/got").exists()),
        "USR1 never reached the workload"
    );
    assert!(pid_alive(pid));
    rt.ok(&["kill", &id, "SIGUSR1"]);
    // 9 by number: the init dies (pid 1 of a pid namespace still dies on
    // SIGKILL from outside).
    rt.ok(&["kill", &id, "9"]);
    assert!(rt.wait_status(&id, "stopped", T));
    assert!(!pid_alive(pid));
    let again = rt.run(&["kill", &id, "9"]);
    assert!(
        !again.status.success(),
        "kill of a stopped container succeeded"
    );
    rt.ok(&["delete", &id]);
}

#[test]
fn kill_rejects_bad_signal() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "100"]);
    let (id, pid) = running(&rt, &b);
    for bad in ["NOTASIGNAL", "999"] {
        let out = rt.run(&["kill", &id, bad]);
        assert!(!out.status.success(), "kill {bad} succeeded");
    }
    assert!(pid_alive(pid));
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn delete_force_running() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let (id, pid) = running(&rt, &b);
    rt.ok(&["delete", "-f", &id]);
    assert!(!pid_alive(pid), "init survived delete -f");
    assert!(!rt.root.join(&id).exists());
    assert!(cgroup_dirs_of(&id).is_empty());
    assert!(
        wait_for(T, || procs_in(&b.rootfs()).is_empty()),
        "{:?}",
        procs_in(&b.rootfs())
    );
    // delete -f of something gone is not an error.
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn delete_of_created_container() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("created");
    rt.create_ok(&b, &id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    rt.ok(&["delete", &id]);
    assert!(wait_for(T, || !pid_alive(pid)));
    assert!(!rt.root.join(&id).exists());
}

#[test]
fn run_detached_and_pid_file() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("det");
    let pidfile = rt.root.with_extension("pid");
    let out = rt.run_detached(&[
        "run",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    let (code, o, e) = triple(&out);
    assert_eq!(code, 0, "stdout {o} stderr {e}");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let st = rt.state(&id);
    let text = std::fs::read_to_string(&pidfile).expect("pid file written");
    assert_eq!(
        text.trim().parse::<i64>().ok(),
        st["pid"].as_i64(),
        "pid file {text:?}"
    );
    let _ = std::fs::remove_file(&pidfile);
    rt.ok(&["kill", &id, "KILL"]);
    assert!(rt.wait_status(&id, "stopped", T));
    rt.ok(&["delete", &id]);
}

#[test]
fn create_pid_file() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("pidf");
    let pidfile = rt.root.with_extension("create.pid");
    let out = rt.create(&b, &id, &["--pid-file", pidfile.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&pidfile).expect("pid file");
    let pid: i32 = text.trim().parse().expect("pid file holds a number");
    assert_eq!(Some(pid as i64), rt.state(&id)["pid"].as_i64());
    assert!(pid_alive(pid));
    let _ = std::fs::remove_file(&pidfile);
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn list_formats() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let (id1, pid1) = running(&rt, &b);
    let id2 = unique_id("listc");
    rt.create_ok(&b, &id2);

    let table = rt.ok(&["list"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap_or("");
    assert!(
        header.starts_with("ID") && header.contains("STATUS"),
        "{table}"
    );
    let row1 = table
        .lines()
        .find(|l| l.starts_with(&id1))
        .expect("row for id1");
    assert!(
        row1.contains("running") && row1.contains(&pid1.to_string()),
        "{row1}"
    );
    let row2 = table
        .lines()
        .find(|l| l.starts_with(&id2))
        .expect("row for id2");
    assert!(row2.contains("created"), "{row2}");

    let json: Value = serde_json::from_str(&rt.ok(&["list", "-f", "json"])).expect("list json");
    let arr = json.as_array().expect("array");
    assert_eq!(arr.len(), 2, "{json}");
    let e1 = arr
        .iter()
        .find(|v| v["id"] == id1.as_str())
        .expect("id1 in json");
    assert_eq!(e1["status"], "running");
    assert_eq!(e1["pid"].as_i64(), Some(pid1 as i64));

    let q = rt.ok(&["list", "-q"]);
    let mut ids: Vec<&str> = q.lines().collect();
    ids.sort();
    let mut want = vec![id1.as_str(), id2.as_str()];
    want.sort();
    assert_eq!(ids, want);

    rt.ok(&["delete", "-f", &id1]);
    rt.ok(&["delete", "-f", &id2]);
    let empty: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    // runc prints "null" for no containers; vessel prints [].
    assert!(
        empty.is_null() || empty.as_array().is_some_and(|a| a.is_empty()),
        "{empty}"
    );
}

#[test]
fn parallel_delete_and_kill_never_corrupt_state() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    for _round in 0..3 {
        let (id, pid) = running(&rt, &b);
        let mut handles = Vec::new();
        for i in 0..6 {
            let cmd = if i % 2 == 0 {
                rt.cmd(&["delete", "-f", &id])
            } else {
                rt.cmd(&["kill", &id, "KILL"])
            };
            handles.push(std::thread::spawn(move || {
                run_with_timeout(cmd, Duration::from_secs(30))
            }));
        }
        let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for o in &outs {
            let (_, _, e) = triple(o);
            // Losers may fail ("does not exist", "not running"), never on a
            // half-written or half-removed state.
            assert!(
                !e.contains("corrupt") && !e.contains("EOF") && !e.contains("panicked"),
                "bad failure: {e}"
            );
        }
        assert!(
            outs.iter().step_by(2).any(|o| o.status.success()),
            "no delete -f succeeded"
        );
        assert!(wait_for(T, || !pid_alive(pid)));
        assert!(!rt.root.join(&id).exists(), "state dir survived");
        assert!(cgroup_dirs_of(&id).is_empty());
        let st = rt.run(&["state", &id]);
        assert!(!st.status.success());
    }
}

#[test]
fn state_readers_during_create_see_valid_json() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("race");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let cmd_args = (rt.root.clone(), rt.log.clone(), id.clone());
            std::thread::spawn(move || {
                let mut bad = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut c = std::process::Command::new(runtime_bin());
                    c.arg("--root")
                        .arg(&cmd_args.0)
                        .args(["state", &cmd_args.2]);
                    let out = run_with_timeout(c, Duration::from_secs(30));
                    if out.status.success() && serde_json::from_slice::<Value>(&out.stdout).is_err()
                    {
                        bad.push(String::from_utf8_lossy(&out.stdout).into_owned());
                    }
                }
                bad
            })
        })
        .collect();
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    assert!(rt.wait_status(&id, "stopped", T));
    rt.ok(&["delete", &id]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        let bad = r.join().unwrap();
        assert!(bad.is_empty(), "state printed invalid JSON: {bad:?}");
    }
}

#[test]
fn duplicate_create_fails_and_keeps_first() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("dup");
    rt.create_ok(&b, &id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "stderr: {err}");
    // The first container is untouched.
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    assert!(pid_alive(pid));
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn run_exit_code_propagates() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 3, "stdout {out} stderr {err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");
    let ok = Bundle::new(&["true"]);
    assert_eq!(rt.run_bundle(&ok).0, 0);
}

#[test]
fn run_killed_by_signal_is_128_plus_n() {
    require_root();
    let rt = Runtime::new();
    // Without a pid namespace sh is not an init and can kill itself.
    let mut b = Bundle::new(&["sh", "-c", "kill -KILL $$"]);
    set_namespaces(&mut b, &["mount", "ipc", "uts", "network"]);
    b.write();
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 128 + 9, "stdout {out} stderr {err}");
}

#[test]
fn run_foreground_forwards_sigterm() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; touch /tmp/ready; while true; do sleep 0.05; done",
    ]);
    let id = unique_id("fwd");
    let mut cmd = rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn run");
    let runner = child.id() as i32;
    assert!(
        wait_for(T, || b.rootfs().join("tmp/ready").exists()),
        "workload never became ready"
    );
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(runner, libc::SIGTERM) };
    let out = wait_child(child, T);
    let (code, o, e) = triple(&out);
    assert_eq!(code, 7, "stdout {o} stderr {e}");
    // Foreground run deletes the container when it ends.
    assert!(wait_for(T, || rt.status(&id).is_none()));
}

#[test]
fn run_keeps_stdin_and_stdout() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "read line; echo got:$line"]);
    let id = unique_id("stdin");
    let mut cmd = rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn run");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
    }
    let out = wait_child(child, T);
    let (code, o, e) = triple(&out);
    assert_eq!(code, 0, "{e}");
    assert_eq!(o, "got:hello\n");
}
