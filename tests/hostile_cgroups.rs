//! cgroups against a hostile tenant and a careless operator (issue 12,
//! items 9, 16, 23 and the cgroup part of 26): device access decided by
//! `resources.devices` alone, one cgroup per container even for the same id
//! under two roots, no joining of a cgroup in use or frozen, stacked
//! cgroup mounts, `resources.unified` on v1, `exec --cgroup`, device rules
//! across `update`, and `update` with runc's "-1 means unlimited".
//! Runs on hybrid and pure v2 hosts (tests/cgroup_v2_vm.rs runs it in the
//! v2 VM). Run as root.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A host character device that is not among the default allowed devices,
/// with its major and minor: /dev/kvm (the issue's example) or
/// /dev/loop-control.
fn guarded_device() -> Option<(PathBuf, u64, u64)> {
    ["/dev/kvm", "/dev/loop-control"].iter().find_map(|p| {
        let m = fs::metadata(p).ok()?;
        let rdev = m.rdev();
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        Some((PathBuf::from(p), major, minor))
    })
}

/// The bind mount that puts the host `dev` at /dev/target in the container.
fn bind_target(spec: &mut Value, dev: &Path) {
    spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev/target", "type": "bind",
        "source": dev.to_str().unwrap(), "options": ["bind"]
    }));
}

const TRY_OPEN: &str =
    "(exec 3<>/dev/target) && echo OPENED || echo DENIED; echo ok > /dev/null && echo NULL-OK";

fn out_of(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn linux_devices_entry_grants_nothing_under_deny_all() {
    require_root();
    let Some((dev, major, minor)) = guarded_device() else {
        skip("neither /dev/kvm nor /dev/loop-control exists to try");
        return;
    };
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", TRY_OPEN]);
    // resources.devices is deny-all (the template's); linux.devices creates
    // the node, which must not open.
    b.spec["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    b.spec["linux"]["devices"] = json!([
        {"path": "/dev/target", "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
    ]);
    b.write();
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("DENIED") && !out.contains("OPENED"),
        "{} ({major}:{minor}) opened through a linux.devices entry: {out}{err}",
        dev.display()
    );
    assert!(out.contains("NULL-OK"), "default devices must work: {out}");
}

#[test]
fn no_device_rules_means_deny_all_plus_the_defaults() {
    require_root();
    let Some((dev, _, _)) = guarded_device() else {
        skip("neither /dev/kvm nor /dev/loop-control exists to try");
        return;
    };
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", TRY_OPEN]);
    // No resources at all: runc still confines devices to its defaults.
    b.spec["linux"].as_object_mut().unwrap().remove("resources");
    bind_target(&mut b.spec, &dev);
    b.write();
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("DENIED") && !out.contains("OPENED"),
        "{} opened with no device rules: {out}{err}",
        dev.display()
    );
    assert!(out.contains("NULL-OK"), "default devices must work: {out}");
}

fn sleeper() -> Bundle {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.spec["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    b.write();
    b
}

fn init_pid(rt: &Runtime, id: &str) -> i32 {
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

#[test]
fn same_id_under_two_roots_gets_two_cgroups() {
    require_root();
    let (a, b) = (Runtime::new(), Runtime::new());
    let (ba, bb) = (sleeper(), sleeper());
    let id = unique_id("twin");
    a.create_ok(&ba, &id);
    b.create_ok(&bb, &id);
    a.ok(&["start", &id]);
    b.ok(&["start", &id]);
    let pb = init_pid(&b, &id);
    let cg = |pid: i32| fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let (cga, cgb) = (cg(init_pid(&a, &id)), cg(pb));
    assert_ne!(cga, cgb, "two roots, one cgroup:\n{cga}");
    a.ok(&["delete", "-f", &id]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        pid_alive(pb),
        "delete -f in one root killed the other root's container"
    );
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    b.ok(&["delete", "-f", &id]);
    assert!(cgroup_dirs_of(&id).is_empty(), "{:?}", cgroup_dirs_of(&id));
}

#[test]
fn a_cgroup_in_use_is_refused() {
    require_root();
    let (a, b) = (Runtime::new(), Runtime::new());
    let rel = format!("/vessel-shared-{}", unique_id("busy"));
    let mk = || {
        let mut bd = sleeper();
        bd.spec["linux"]["cgroupsPath"] = json!(rel);
        bd.write();
        bd
    };
    let (ba, bb) = (mk(), mk());
    let id = unique_id("busy");
    a.create_ok(&ba, &id);
    a.ok(&["start", &id]);
    let pa = init_pid(&a, &id);
    let out = b.create(&bb, &id, &[]);
    if !is_vessel() {
        eprintln!("NOTE: runc 1.1.5 joins a non-empty cgroup; vessel refuses it (compat.md)");
        let _ = b.run(&["delete", "-f", &id]);
        a.ok(&["delete", "-f", &id]);
        return;
    }
    let text = out_of(&out);
    assert!(!out.status.success(), "joined a cgroup in use: {text}");
    assert!(text.contains("not empty"), "{text}");
    assert!(!b.root.join(&id).exists(), "state dir left behind");
    assert!(
        pid_alive(pa),
        "the failed create killed the other container"
    );
    assert!(
        !cgroup_dirs_at(&rel).is_empty(),
        "the failed create removed the cgroup in use"
    );
    assert_eq!(a.status(&id).as_deref(), Some("running"));
    a.ok(&["delete", "-f", &id]);
    for d in cgroup_dirs_at(&rel) {
        let _ = fs::remove_dir(d);
    }
}

/// The directory that freezes `rel`: the v1 freezer hierarchy, else cgroup2.
fn freezer_dir(rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup/freezer").join(rel)
    }
}

fn set_frozen(dir: &Path, frozen: bool) {
    if v2() {
        fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }).unwrap();
    } else {
        let s = if frozen { "FROZEN" } else { "THAWED" };
        fs::write(dir.join("freezer.state"), s).unwrap();
    }
}

fn try_create_into(rel: &str) -> (std::process::Output, Duration, Runtime, String) {
    let rt = Runtime::new();
    let mut b = sleeper();
    b.spec["linux"]["cgroupsPath"] = json!(rel);
    b.write();
    let id = unique_id("frz");
    let t = Instant::now();
    let out = run_with_timeout(
        rt.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id]),
        Duration::from_secs(30),
    );
    (out, t.elapsed(), rt, id)
}

#[test]
fn frozen_cgroup_is_refused() {
    require_root();
    let rel = format!("/vessel-frozen-{}", unique_id("f"));
    let fdir = freezer_dir(&rel);
    fs::create_dir_all(&fdir).unwrap();
    set_frozen(&fdir, true);
    // The container's own cgroup, frozen beforehand.
    let (out, took, rt, id) = try_create_into(&rel);
    // Its child, under a frozen parent.
    let (out2, took2, rt2, id2) = try_create_into(&format!("{rel}/child"));
    let child_left = cgroup_dirs_at(&format!("{rel}/child"));
    set_frozen(&fdir, false);
    let _ = rt.run(&["delete", "-f", &id]);
    let _ = rt2.run(&["delete", "-f", &id2]);
    for d in cgroup_dirs_at(&format!("{rel}/child")) {
        let _ = fs::remove_dir(d);
    }
    for d in cgroup_dirs_at(&rel) {
        let _ = fs::remove_dir(d);
    }
    for (out, took, rt, id) in [(&out, took, &rt, &id), (&out2, took2, &rt2, &id2)] {
        let text = out_of(out);
        assert!(
            took < Duration::from_secs(20),
            "create took {took:?}: {text}"
        );
        assert!(
            !out.status.success(),
            "created into a frozen cgroup: {text}"
        );
        assert!(text.contains("frozen"), "{text}");
        assert!(!rt.root.join(id).exists(), "state dir left behind");
    }
    assert!(child_left.is_empty(), "cgroup left: {child_left:?}");
}

#[test]
fn resources_unified_needs_pure_v2() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["cat", "/proc/self/cgroup"]);
    b.spec["linux"]["resources"]["unified"] = json!({"cgroup.max.depth": "5"});
    let rel = format!("/vessel/{}", unique_id("uni"));
    b.spec["linux"]["cgroupsPath"] = json!(rel);
    b.write();
    let id = unique_id("uni");
    let out = rt.create(&b, &id, &[]);
    let text = out_of(&out);
    if v2() {
        assert!(out.status.success(), "{text}");
        let v = fs::read_to_string(
            Path::new("/sys/fs/cgroup")
                .join(&rel[1..])
                .join("cgroup.max.depth"),
        )
        .unwrap();
        assert_eq!(v.trim(), "5");
        rt.ok(&["delete", "-f", &id]);
    } else {
        assert!(
            !out.status.success(),
            "unified accepted on a v1/hybrid host: {text}"
        );
        assert!(text.contains("cannot use unified on cgroup v1"), "{text}");
        assert!(!rt.root.join(&id).exists(), "state dir left behind");
        let left = cgroup_dirs_at(&rel);
        assert!(left.is_empty(), "cgroup left: {left:?}");
    }
}

#[test]
fn stacked_mount_over_the_unified_hierarchy() {
    require_root();
    if v2() || !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        skip("needs a hybrid host (cgroup2 at /sys/fs/cgroup/unified)");
        return;
    }
    // As in a nested container: something mounted over the cgroup2 mount,
    // which mountinfo still lists first.
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique_id("stack");
    let script = format!(
        "mount -t tmpfs vessel-test /sys/fs/cgroup/unified && {} --root {} run -d --bundle {} {id} </dev/null >{log} 2>&1; \
         rc=$?; cat {log}; [ $rc = 0 ] && cat /sys/fs/cgroup/pids/vessel/*-{id}/cgroup.procs",
        runtime_bin().display(),
        rt.root.display(),
        b.dir.display(),
        log = rt.root.with_extension("run-log").display()
    );
    let out = run_with_timeout(
        {
            let mut c = Command::new("unshare");
            c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
            c
        },
        Duration::from_secs(60),
    );
    let text = out_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{text}"
    );
    rt.ok(&["delete", "-f", &id]);
}

/// A running `sleep` container with the default cgroupsPath.
fn running(rt: &Runtime, edit: impl FnOnce(&mut Value)) -> (Bundle, String) {
    let mut b = sleeper();
    edit(&mut b.spec);
    b.write();
    let id = unique_id("upd");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    (b, id)
}

/// The container's file `file` on the host, through /proc/<init>/cgroup.
fn host_file(rt: &Runtime, id: &str, file: &str) -> PathBuf {
    host_file_opt(rt, id, file).unwrap_or_else(|| panic!("{file} not found for {id}"))
}

fn host_file_opt(rt: &Runtime, id: &str, file: &str) -> Option<PathBuf> {
    let pid = init_pid(rt, id);
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let ctrl = file.split('.').next().unwrap();
    for l in own.lines() {
        let mut p = l.splitn(3, ':');
        let (_, ctrls, path) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        let base = if v2() && ctrls.is_empty() {
            PathBuf::from("/sys/fs/cgroup")
        } else if ctrls.split(',').any(|c| c == ctrl) {
            fs::read_dir("/sys/fs/cgroup")
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|d| {
                    d.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .split(',')
                        .any(|c| c == ctrl)
                        && d.join(format!("{}{}", path.trim_start_matches('/'), ""))
                            .is_dir()
                })
                .unwrap()
        } else {
            continue;
        };
        let f = base.join(path.trim_start_matches('/')).join(file);
        if f.exists() {
            return Some(f);
        }
    }
    None
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap().trim().to_string()
}

#[test]
fn update_accepts_unlimited_and_resources_files() {
    require_root();
    let rt = Runtime::new();
    let (_b, id) = running(&rt, |s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        s["linux"]["resources"]["pids"] = json!({"limit": 30});
        s["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
    });
    rt.ok(&[
        "update",
        "--memory-swap",
        "-1",
        "--cpu-quota",
        "-1",
        "--pids-limit",
        "-1",
        &id,
    ]);
    assert_eq!(read(&host_file(&rt, &id, "pids.max")), "max");
    if v2() {
        let cpu = read(&host_file(&rt, &id, "cpu.max"));
        assert!(cpu.starts_with("max "), "cpu.max {cpu}");
        assert_eq!(
            read(&host_file(&rt, &id, "memory.max")),
            (64 << 20).to_string()
        );
    } else {
        assert_eq!(read(&host_file(&rt, &id, "cpu.cfs_quota_us")), "-1");
    }
    // A period alone keeps the quota; swap alone is taken against the
    // memory limit the container has (runc merges both with its config).
    rt.ok(&["update", "--cpu-quota", "20000", &id]);
    rt.ok(&["update", "--cpu-period", "50000", &id]);
    if v2() {
        assert_eq!(read(&host_file(&rt, &id, "cpu.max")), "20000 50000");
    } else {
        assert_eq!(read(&host_file(&rt, &id, "cpu.cfs_quota_us")), "20000");
        assert_eq!(read(&host_file(&rt, &id, "cpu.cfs_period_us")), "50000");
    }
    rt.ok(&["update", "--memory", "64m", &id]);
    let swap_file = if v2() {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if host_file_opt(&rt, &id, swap_file).is_some() {
        rt.ok(&["update", "--memory-swap", "128m", &id]);
        let want = if v2() { 64 << 20 } else { 128 << 20 };
        assert_eq!(read(&host_file(&rt, &id, swap_file)), want.to_string());
    } else {
        eprintln!("NOTE: no swap accounting ({swap_file}): swap update not checked");
    }
    rt.ok(&["update", "--memory", "-1", &id]);
    let unlimited = |f: &str| {
        let v = read(&host_file(&rt, &id, f));
        v == "max" || v.parse::<u64>().unwrap() > 1 << 60
    };
    assert!(unlimited(if v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }));
    // -r FILE: runc's LinuxResources JSON.
    let f = scratch_dir().join(format!("{id}.json"));
    fs::write(
        &f,
        r#"{"memory": {"reservation": 33554432}, "pids": {"limit": 17}, "cpu": {"shares": 512}}"#,
    )
    .unwrap();
    rt.ok(&["update", "-r", f.to_str().unwrap(), &id]);
    let _ = fs::remove_file(&f);
    assert_eq!(read(&host_file(&rt, &id, "pids.max")), "17");
    if v2() {
        assert_eq!(read(&host_file(&rt, &id, "memory.low")), "33554432");
        // runc's shares-to-weight conversion.
        assert_eq!(read(&host_file(&rt, &id, "cpu.weight")), "20");
    } else {
        assert_eq!(
            read(&host_file(&rt, &id, "memory.soft_limit_in_bytes")),
            "33554432"
        );
        assert_eq!(read(&host_file(&rt, &id, "cpu.shares")), "512");
    }
    rt.ok(&["update", "--memory-reservation", "-1", &id]);
    assert!(unlimited(if v2() {
        "memory.low"
    } else {
        "memory.soft_limit_in_bytes"
    }));
    rt.ok(&["delete", "-f", &id]);
}

fn exec_out(rt: &Runtime, args: &[&str]) -> (bool, String) {
    let out = rt.run(args);
    (out.status.success(), out_of(&out))
}

#[test]
fn device_rules_hold_in_run_and_across_update() {
    require_root();
    let Some((dev, major, minor)) = guarded_device() else {
        skip("neither /dev/kvm nor /dev/loop-control exists to try");
        return;
    };
    let rt = Runtime::new();
    // The workload writes /dev/null in a loop the whole time: an update
    // that passes through deny-all would make one of them fail.
    let (_b, id) = running(&rt, |s| {
        bind_target(s, &dev);
        s["process"]["args"] = json!([
            "sh",
            "-c",
            "while :; do echo x > /dev/null || echo FAIL >> /tmp/null-fail; done"
        ]);
    });
    let try_open = [
        "exec",
        &id,
        "sh",
        "-c",
        "(exec 3<>/dev/target) && echo OPENED || echo DENIED",
    ];
    let (_, o) = exec_out(&rt, &try_open);
    assert!(o.contains("DENIED") && !o.contains("OPENED"), "{o}");
    // runc's own check: updates of other limits re-apply nothing that
    // opens a device, and never pass through deny-all.
    for i in 0..30 {
        rt.ok(&["update", "--pids-limit", &(30 + i).to_string(), &id]);
    }
    let (_, o) = exec_out(&rt, &try_open);
    assert!(o.contains("DENIED") && !o.contains("OPENED"), "{o}");
    let f = scratch_dir().join(format!("{id}-dev.json"));
    let set = |rules: Value| {
        fs::write(&f, json!({"devices": rules}).to_string()).unwrap();
        rt.ok(&["update", "-r", f.to_str().unwrap(), &id]);
    };
    let deny_all = json!([{"allow": false, "access": "rwm"}]);
    let allow_target = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": major, "minor": minor, "access": "rw"}
    ]);
    // runc's `update` takes no device rules (it ignores them in -r);
    // vessel applies them.
    if is_vessel() {
        set(allow_target.clone());
    } else {
        eprintln!(
            "NOTE: {} ignores devices in update -r",
            runtime_bin().display()
        );
        for _ in 0..40 {
            set(deny_all.clone());
        }
    }
    let (_, o) = exec_out(&rt, &try_open);
    assert!(
        o.contains("OPENED") || !is_vessel(),
        "an allow rule from update did not apply: {o}"
    );
    set(deny_all.clone());
    let (_, o) = exec_out(&rt, &try_open);
    assert!(
        o.contains("DENIED") && !o.contains("OPENED"),
        "deny after update: {o}"
    );
    // Many updates while the workload runs: never a moment of deny-all.
    for i in 0..40 {
        set(if i % 2 == 0 && is_vessel() {
            allow_target.clone()
        } else {
            deny_all.clone()
        });
    }
    let (_, o) = exec_out(&rt, &try_open);
    assert!(o.contains("DENIED"), "{o}");
    let (_, fails) = exec_out(
        &rt,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /tmp/null-fail 2>/dev/null | wc -l",
        ],
    );
    let _ = fs::remove_file(&f);
    rt.ok(&["delete", "-f", &id]);
    assert_eq!(
        fails.trim(),
        "0",
        "writes to /dev/null failed during update"
    );
}

#[test]
fn exec_cgroup_joins_a_sub_cgroup() {
    require_root();
    let rt = Runtime::new();
    let rel = format!("/vessel/{}", unique_id("sub"));
    let (_b, id) = running(&rt, |s| s["linux"]["cgroupsPath"] = json!(rel));
    let dirs = cgroup_dirs_at(&rel);
    assert!(!dirs.is_empty());
    for d in &dirs {
        fs::create_dir(d.join("sub")).unwrap();
        // A v1 cpuset child starts empty and takes no task until filled.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let sub_empty =
                fs::read_to_string(d.join("sub").join(f)).is_ok_and(|v| v.trim().is_empty());
            if let (true, Ok(v)) = (sub_empty, fs::read_to_string(d.join(f))) {
                fs::write(d.join("sub").join(f), v.trim()).unwrap();
            }
        }
    }
    let (ok, o) = exec_out(
        &rt,
        &["exec", "--cgroup", "sub", &id, "cat", "/proc/self/cgroup"],
    );
    assert!(ok, "{o}");
    let managed = |l: &&str| {
        let c = l.split(':').nth(1).unwrap_or("");
        (v2() && l.starts_with("0::")) || c.contains("pids") || c.contains("memory")
    };
    let lines: Vec<&str> = o.lines().filter(managed).collect();
    assert!(!lines.is_empty(), "{o}");
    for l in &lines {
        assert!(l.ends_with("/sub"), "not in the sub-cgroup: {l}\n{o}");
    }
    if !v2() {
        let (ok, o) = exec_out(
            &rt,
            &[
                "exec",
                "--cgroup",
                "memory:sub",
                &id,
                "cat",
                "/proc/self/cgroup",
            ],
        );
        assert!(ok, "{o}");
        for l in o.lines().filter(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.contains("pids") || c.contains("memory"))
        }) {
            let c = l.split(':').nth(1).unwrap();
            assert_eq!(l.ends_with("/sub"), c.contains("memory"), "{l}\n{o}");
        }
    }
    for bad in ["../..", "nosuch", "a:b:c"] {
        let (ok, o) = exec_out(&rt, &["exec", "--cgroup", bad, &id, "true"]);
        assert!(!ok, "exec --cgroup {bad} was accepted: {o}");
    }
    rt.ok(&["delete", "-f", &id]);
    for d in &dirs {
        let _ = fs::remove_dir(d.join("sub"));
        let _ = fs::remove_dir(d);
    }
}

/// The container's cgroupsPath, as the init's /proc/<pid>/cgroup shows it
/// for the pids controller (v1) or cgroup2.
fn init_cgroup_lines(pid: i32) -> Vec<String> {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    own.lines()
        .filter(|l| {
            let c = l.split(':').nth(1).unwrap_or("");
            (v2() && l.starts_with("0::")) || c.split(',').any(|c| c == "pids" || c == "memory")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn init_that_joins_a_namespace_lands_in_its_cgroup() {
    require_root();
    // Joining a namespace by path (Podman's network namespace) makes the
    // init a grandchild forked by an intermediate process: it must end up
    // in the container's cgroup, not the caller's. Several rounds, as the
    // fork races with the cgroup write.
    let rt = Runtime::new();
    let (_a, host_id) = running(&rt, |_| {});
    let netns = format!("/proc/{}/ns/net", init_pid(&rt, &host_id));
    for round in 0..5 {
        let rel = format!("/vessel/{}", unique_id("joiner"));
        let (_b, id) = running(&rt, |s| {
            s["linux"]["cgroupsPath"] = json!(rel);
            for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == "network" {
                    ns["path"] = json!(netns);
                }
            }
            if v2() {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "cgroup"}));
            }
            s["linux"]["resources"]["pids"] = json!({"limit": 40});
        });
        let pid = init_pid(&rt, &id);
        let lines = init_cgroup_lines(pid);
        assert!(!lines.is_empty());
        for l in &lines {
            assert!(
                l.ends_with(&rel),
                "round {round}: init not in {rel}: {lines:?}"
            );
        }
        // The container's cgroup lists it (what pause and limits act on).
        let listed = cgroup_dirs_at(&rel).iter().any(|d| {
            fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.trim() == pid.to_string())
        });
        assert!(listed, "round {round}: {rel} does not list the init {pid}");
        rt.ok(&["delete", "-f", &id]);
    }
    rt.ok(&["delete", "-f", &host_id]);
}
