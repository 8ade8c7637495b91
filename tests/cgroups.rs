//! linux.resources through real containers: the values in the cgroup files
//! seen from the host and from inside the container, cgroupsPath, cleanup
//! on delete, and linux.devices granting nothing in the v1 devices cgroup. Run as
//! root. `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test cgroups`
//! checks the tests themselves against runc.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A pure cgroup v2 host (the nested v2 suite runs these tests there).
fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The in-container path of a cgroup file: v1 has one dir per controller.
fn inside_path(v1_controller: &str, file: &str) -> String {
    if v2() {
        format!("/sys/fs/cgroup/{file}")
    } else {
        format!("/sys/fs/cgroup/{v1_controller}/{file}")
    }
}

/// A container whose workload writes `script`'s output to /tmp/inside.
struct Probe {
    rt: Runtime,
    b: Bundle,
    id: String,
    cg_rel: String,
}

impl Probe {
    /// Create (not start) with `resources` and cgroupsPath /vessel/<id>
    /// (or `cg_rel` when given).
    fn create(script: &str, edit: impl FnOnce(&mut Value), cg_rel: Option<String>) -> Probe {
        let rt = Runtime::new();
        let id = unique_id("cg");
        let cg_rel = cg_rel.unwrap_or_else(|| format!("/vessel/{id}"));
        let mut b = Bundle::new(&["sh", "-c", &format!("( {script} ) > /tmp/inside 2>&1")]);
        b.spec["linux"]["cgroupsPath"] = json!(cg_rel);
        edit(&mut b.spec);
        b.write();
        rt.create_ok(&b, &id);
        Probe { rt, b, id, cg_rel }
    }

    /// The container's directory in the hierarchy holding `file`.
    fn host_file(&self, file: &str) -> PathBuf {
        let dirs = cgroup_dirs_at(&self.cg_rel);
        dirs.iter()
            .map(|d| d.join(file))
            .find(|f| f.exists())
            .unwrap_or_else(|| panic!("{file} not in any of {dirs:?}"))
    }

    fn host_read(&self, file: &str) -> String {
        std::fs::read_to_string(self.host_file(file))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Start, wait for the workload, return what it wrote.
    fn inside(&self) -> String {
        self.rt.ok(&["start", &self.id]);
        assert!(self.rt.wait_status(&self.id, "stopped", T));
        std::fs::read_to_string(self.b.rootfs().join("tmp/inside")).unwrap_or_default()
    }

    /// Delete, and check the cgroup went with it.
    fn finish(self) {
        self.rt.ok(&["delete", "-f", &self.id]);
        let left = cgroup_dirs_at(&self.cg_rel);
        assert!(left.is_empty(), "cgroup left after delete: {left:?}");
    }
}

#[test]
fn memory_limit_and_reservation() {
    require_root();
    let (limit, low) = if v2() {
        ("memory.max", "memory.low")
    } else {
        ("memory.limit_in_bytes", "memory.soft_limit_in_bytes")
    };
    let p = Probe::create(
        &format!(
            "cat {} {}",
            inside_path("memory", limit),
            inside_path("memory", low)
        ),
        |s| s["linux"]["resources"]["memory"] = json!({"limit": 67108864, "reservation": 33554432}),
        None,
    );
    assert_eq!(p.host_read(limit), "67108864");
    assert_eq!(p.host_read(low), "33554432");
    let init = p.rt.state(&p.id)["pid"].as_i64().unwrap().to_string();
    let tasks = std::fs::read_to_string(p.host_file(limit).with_file_name("cgroup.procs")).unwrap();
    assert!(
        tasks.lines().any(|l| l == init),
        "init {init} not in the memory cgroup: {tasks}"
    );
    assert_eq!(p.inside(), "67108864\n33554432\n");
    p.finish();
}

#[test]
fn memory_limit_is_enforced() {
    require_root();
    // Filling a tmpfs (charged to the cgroup) past the limit gets the
    // writer OOM-killed or the write refused: it never succeeds.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir -p /tmp/m && mount -t tmpfs -o size=200m none /tmp/m && echo mounted && dd if=/dev/zero of=/tmp/m/f bs=1M count=100 2>/dev/null && echo wrote-all",
    ]);
    b.spec["linux"]["resources"]["memory"] = json!({"limit": 33554432});
    b.spec["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN"]);
    b.spec["process"]["capabilities"]["effective"] = json!(["CAP_SYS_ADMIN"]);
    b.spec["process"]["capabilities"]["permitted"] = json!(["CAP_SYS_ADMIN"]);
    b.spec["linux"]["cgroupsPath"] = json!(format!("/vessel/{}", unique_id("oom")));
    b.spec["linux"]["seccomp"] = Value::Null;
    b.write();
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert!(out.contains("mounted"), "tmpfs mount failed: {out} {err}");
    assert!(
        !out.contains("wrote-all"),
        "100M written under a 32M limit; code {code} err {err}"
    );
}

#[test]
fn pids_limit() {
    require_root();
    let p = Probe::create(
        &format!(
            "cat {}; n=0; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & done; echo spawned",
            inside_path("pids", "pids.max")
        ),
        |s| s["linux"]["resources"]["pids"] = json!({"limit": 6}),
        None,
    );
    assert_eq!(p.host_read("pids.max"), "6");
    let inside = p.inside();
    assert!(inside.starts_with("6\n"), "{inside}");
    assert!(
        inside.contains("fork") || inside.contains("Resource temporarily unavailable"),
        "12 background processes under pids.max=6 all started: {inside}"
    );
    p.finish();
}

#[test]
fn cpu_quota_period_shares() {
    require_root();
    if v2() {
        // v2: cpu.max "quota period", and shares converted to cpu.weight
        // with runc's formula: 1 + (512 - 2) * 9999 / 262142 = 20.
        let p = Probe::create(
            "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight",
            |s| {
                s["linux"]["resources"]["cpu"] =
                    json!({"quota": 50000, "period": 100000, "shares": 512})
            },
            None,
        );
        assert_eq!(p.host_read("cpu.max"), "50000 100000");
        assert_eq!(p.host_read("cpu.weight"), "20");
        assert_eq!(p.inside(), "50000 100000\n20\n");
        p.finish();
        return;
    }
    let p = Probe::create(
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares",
        |s| s["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000, "shares": 512}),
        None,
    );
    assert_eq!(p.host_read("cpu.cfs_quota_us"), "50000");
    assert_eq!(p.host_read("cpu.cfs_period_us"), "100000");
    assert_eq!(p.host_read("cpu.shares"), "512");
    assert_eq!(p.inside(), "50000\n100000\n512\n");
    p.finish();
}

#[test]
fn cpuset() {
    require_root();
    let p = Probe::create(
        &format!(
            "cat {}; grep Cpus_allowed_list /proc/self/status",
            inside_path("cpuset", "cpuset.cpus")
        ),
        |s| s["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "0"}),
        None,
    );
    assert_eq!(p.host_read("cpuset.cpus"), "0");
    assert_eq!(p.host_read("cpuset.mems"), "0");
    let inside = p.inside();
    let l: Vec<&str> = inside.lines().collect();
    assert_eq!(l[0], "0", "{inside}");
    assert_eq!(l[1].split_whitespace().last(), Some("0"), "{inside}");
    p.finish();
}

#[test]
fn hugetlb_limit() {
    require_root();
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        skip("no 2MB huge pages on this kernel");
        return;
    }
    // A mounted v1 hierarchy has cgroup.procs at its root; a plain directory
    // there (conmon makes one on hybrid hosts) is no hierarchy.
    let v1 = Path::new("/sys/fs/cgroup/hugetlb/cgroup.procs").exists();
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers"))
        .map(|c| c.split_whitespace().any(|x| x == "hugetlb"))
        .unwrap_or(false);
    if !v1 && !v2 {
        skip("no hugetlb controller on this host");
        return;
    }
    let p = Probe::create(
        "true",
        |s| {
            s["linux"]["resources"]["hugepageLimits"] =
                json!([{"pageSize": "2MB", "limit": 8388608}])
        },
        None,
    );
    let file = if v1 {
        "hugetlb.2MB.limit_in_bytes"
    } else {
        "hugetlb.2MB.max"
    };
    assert_eq!(p.host_read(file), "8388608");
    p.inside();
    p.finish();
}

#[test]
fn blkio_weight() {
    require_root();
    let v1_weight = Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists();
    if !v1_weight {
        skip(
            "this host's blkio hierarchy has no blkio.weight (no CFQ/BFQ scheduler), \
             so a weight cannot be set or checked",
        );
        return;
    }
    let p = Probe::create(
        "true",
        |s| s["linux"]["resources"]["blockIO"] = json!({"weight": 300}),
        None,
    );
    let f = if p.host_file("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    assert!(p.host_read(f).contains("300"));
    p.inside();
    p.finish();
}

#[test]
fn custom_cgroups_path_is_honoured() {
    require_root();
    let parent = format!("/vessel-test-{}", unique_id("parent"));
    let rel = format!("{parent}/leaf");
    let p = Probe::create(
        "cat /proc/self/cgroup",
        |s| s["linux"]["resources"]["pids"] = json!({"limit": 50}),
        Some(rel.clone()),
    );
    let dirs = cgroup_dirs_at(&rel);
    let want = if v2() { 1 } else { 2 };
    assert!(dirs.len() >= want, "cgroupsPath {rel} made only {dirs:?}");
    let init = p.rt.state(&p.id)["pid"].as_i64().unwrap();
    let own = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    for l in own.lines() {
        let ctrl = l.split(':').nth(1).unwrap_or("");
        let v2_line = v2() && l.starts_with("0::");
        if v2_line || ctrl.contains("pids") || ctrl.contains("memory") || ctrl.contains("cpu") {
            assert!(l.ends_with(&rel), "init not in {rel}: {own}");
        }
    }
    assert_eq!(p.host_read("pids.max"), "50");
    p.inside();
    p.finish();
    // The parent is the caller's to remove (runc leaves it too).
    for d in cgroup_dirs_at(&parent) {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn linux_devices_get_no_devices_cgroup_rule() {
    require_root();
    if !Path::new("/sys/fs/cgroup/devices/devices.list").exists() {
        skip("no v1 devices cgroup on this host");
        return;
    }
    if !Path::new("/dev/loop-control").exists() || !Path::new("/dev/kmsg").exists() {
        skip("no /dev/loop-control (10:237) or /dev/kmsg (1:11) to open");
        return;
    }
    // 10:237 is not among the default allowed devices; a linux.devices
    // entry creates the node but grants nothing (runc: only
    // resources.devices decides, and it denies everything here).
    let p = Probe::create(
        "cat /sys/fs/cgroup/devices/devices.list; exec 3<>/dev/lc && echo opened-lc; exec 4</dev/nokmsg && echo opened-nokmsg",
        |s| {
            s["linux"]["devices"] = json!([
                {"path": "/dev/lc", "type": "c", "major": 10, "minor": 237, "fileMode": 0o600}
            ]);
            // /dev/kmsg (1:11) as a node, but not in linux.devices nor in
            // the default rules: it must stay denied.
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/dev/nokmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]
            }));
        },
        None,
    );
    let list = p.host_read("devices.list");
    assert!(
        !list.lines().any(|l| l.starts_with("c 10:237")),
        "devices.list: {list}"
    );
    assert!(
        !list.lines().any(|l| l.starts_with("a ")),
        "devices.list allows all: {list}"
    );
    let inside = p.inside();
    assert!(!inside.contains("c 10:237 rwm"), "{inside}");
    assert!(!inside.contains("opened-lc"), "{inside}");
    assert!(
        !inside.contains("opened-nokmsg"),
        "a device outside the rules opened: {inside}"
    );
    assert!(inside.contains("not permitted"), "{inside}");
    p.finish();
}

#[test]
fn cgroup_removed_after_run() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let rel = format!("/vessel/{}", unique_id("gone"));
    b.spec["linux"]["cgroupsPath"] = json!(rel);
    b.write();
    let (code, _, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "{err}");
    assert!(
        cgroup_dirs_at(&rel).is_empty(),
        "{:?}",
        cgroup_dirs_at(&rel)
    );
}
