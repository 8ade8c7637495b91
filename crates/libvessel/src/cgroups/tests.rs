//! Root tests against the host's real cgroups: create, limit, join, freeze,
//! stats, destroy. They print SKIPPED and return where they cannot run.

use super::*;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};

fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root");
    }
    if !Path::new("/sys/fs/cgroup").exists() {
        return Some("no /sys/fs/cgroup");
    }
    None
}

fn unique_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ut-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn read_trim(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
        .trim()
        .to_string()
}

/// Removes the cgroup even when an assertion fails half-way.
struct Guard(Cgroup, Option<Child>);
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.1.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.0.thaw();
        let _ = self.0.destroy();
    }
}

fn v1_dir<'a>(cg: &'a Cgroup, ctrl: &str) -> Option<&'a Path> {
    cg.v1
        .iter()
        .find(|d| d.controllers.iter().any(|c| c == ctrl))
        .map(|d| d.dir.as_path())
}

#[test]
fn resolve_rejects_bad_paths_without_side_effects() {
    let e = Cgroup::resolve(Some("system.slice:vessel:x"), "x").unwrap_err();
    assert!(e.to_string().contains("systemd"), "{e}");
    let e = Cgroup::resolve(Some("/a/../b"), "x").unwrap_err();
    assert!(e.to_string().contains(".."), "{e}");
    let id = unique_id();
    let cg = Cgroup::resolve(None, &id).unwrap();
    assert!(!cg.dirs.is_empty());
    for d in &cg.dirs {
        assert!(d.ends_with(format!("vessel/{id}")), "{}", d.display());
        assert!(!d.exists(), "resolve created {}", d.display());
    }
    // What state.json stores comes back identical.
    let back: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).unwrap()).unwrap();
    assert_eq!(back.dirs, cg.dirs);
    assert_eq!(back.layout, cg.layout);
}

#[test]
fn real_cgroup_lifecycle() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let id = unique_id();
    let cg = Cgroup::resolve(None, &id).unwrap();
    eprintln!("layout {:?}, dirs {:?}", cg.layout, cg.dirs);
    cg.create().unwrap();
    let mut guard = Guard(cg.clone(), None);
    for d in &cg.dirs {
        assert!(d.is_dir(), "{} not created", d.display());
    }

    // Limits, read back from the files the kernel exposes.
    let mib64 = 64 * 1024 * 1024;
    let res = resources(&format!(
        r#"{{"memory": {{"limit": {mib64}}},
            "pids": {{"limit": 50}},
            "cpu": {{"shares": 512, "quota": 50000, "period": 100000}}}}"#
    ));
    cg.apply(&res).unwrap();
    match cg.layout {
        Layout::V2 => {
            let u = cg.unified.as_ref().unwrap();
            assert_eq!(read_trim(u.join("memory.max")), mib64.to_string());
            assert_eq!(read_trim(u.join("pids.max")), "50");
            assert_eq!(
                read_trim(u.join("cpu.weight")),
                shares_to_weight(512).to_string()
            );
            assert_eq!(read_trim(u.join("cpu.max")), "50000 100000");
        }
        Layout::V1 | Layout::Hybrid => {
            let mem = v1_dir(&cg, "memory").unwrap();
            assert_eq!(
                read_trim(mem.join("memory.limit_in_bytes")),
                mib64.to_string()
            );
            assert_eq!(
                read_trim(v1_dir(&cg, "pids").unwrap().join("pids.max")),
                "50"
            );
            let cpu = v1_dir(&cg, "cpu").unwrap();
            assert_eq!(read_trim(cpu.join("cpu.shares")), "512");
            assert_eq!(read_trim(cpu.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read_trim(cpu.join("cpu.cfs_period_us")), "100000");
        }
    }
    // -1 is unlimited in both flavours.
    cg.apply(&resources(r#"{"pids": {"limit": -1}}"#)).unwrap();
    let pids_dir = match cg.target("pids").unwrap() {
        Target::V1(d) | Target::V2(d) => d.to_path_buf(),
    };
    assert_eq!(read_trim(pids_dir.join("pids.max")), "max");

    // hugetlb goes wherever the host has it (the unified mount on hybrid).
    if let Some(t) = cg.target("hugetlb") {
        if Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
            cg.apply(&resources(
                r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#,
            ))
            .unwrap();
            let (dir, file) = match t {
                Target::V1(d) => (d, "hugetlb.2MB.limit_in_bytes"),
                Target::V2(d) => (d, "hugetlb.2MB.max"),
            };
            assert_eq!(read_trim(dir.join(file)), "4194304");
            if cg.layout == Layout::Hybrid {
                assert!(
                    matches!(t, Target::V2(_)),
                    "hybrid hugetlb must be on unified"
                );
            }
        } else {
            eprintln!("SKIPPED (part): no 2MB huge pages on this host");
        }
    }

    // A blkio weight needs blkio.weight (CFQ) or blkio.bfq.weight: where the
    // host has neither, the error names the file instead of passing.
    let weight = cg.apply(&resources(r#"{"blockIO": {"weight": 500}}"#));
    if let Some(Target::V1(d)) = cg.target("blkio") {
        if !d.join("blkio.weight").exists() && !d.join("blkio.bfq.weight").exists() {
            let e = weight.unwrap_err().to_string();
            assert!(e.contains("blkio.weight"), "{e}");
        } else {
            weight.unwrap();
        }
    } else if let Err(e) = weight {
        // v2 without io.weight/io.bfq.weight: same rule.
        assert!(e.to_string().contains("io."), "{e}");
    }

    // v1 devices: deny-all, the rules, runc's defaults.
    if let Some(dev) = v1_dir(&cg, "devices") {
        cg.apply(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"},
                            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]}"#,
        ))
        .unwrap();
        let list = read_trim(dev.join("devices.list"));
        assert!(list.lines().any(|l| l == "c 10:229 rw"), "{list}");
        assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
        assert!(!list.lines().any(|l| l == "a *:* rwm"), "{list}");
    }

    // A process joins every directory and is seen by pids().
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    guard.1 = Some(child);
    cg.add_task(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    let own = read_trim(format!("/proc/{pid}/cgroup"));
    assert!(own.contains(&format!("/vessel/{id}")), "{own}");

    // A sub-cgroup's processes count too, and destroy removes it.
    let sub_parent = cg.unified.clone().unwrap_or_else(|| cg.v1[0].dir.clone());
    std::fs::create_dir(sub_parent.join("sub")).unwrap();

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    let state = read_trim(format!("/proc/{pid}/stat"));
    eprintln!("frozen sleep: {}", state.split(' ').nth(2).unwrap_or("?"));
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    let stats = cg.stats().unwrap();
    eprintln!("stats: {stats}");
    assert_eq!(stats["pids"]["current"], 1);
    assert!(stats["cpu"]["usage"]["total"].as_u64().is_some());
    assert!(stats["cpu"]["throttling"]["periods"].as_u64().is_some());
    assert_eq!(stats["memory"]["usage"]["limit"], mib64);
    // (v1 does not move charges with a task, so usage may read 0 here.)
    assert!(stats["memory"]["usage"]["usage"].as_u64().is_some());
    assert!(stats["memory"]["raw"]
        .as_object()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(cg.oom_kills().unwrap(), 0);

    let mut child = guard.1.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    cg.destroy().unwrap();
    for d in &cg.dirs {
        assert!(!d.exists(), "{} still there", d.display());
    }
    assert!(
        cg.dirs[0].parent().unwrap().exists(),
        "shared parent removed"
    );
    cg.destroy().unwrap(); // idempotent
}

#[test]
fn oom_kill_is_counted() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let cg = Cgroup::resolve(None, &unique_id()).unwrap();
    cg.create().unwrap();
    let mut guard = Guard(cg.clone(), None);
    let limit = 16 * 1024 * 1024;
    // Swap limited too, or the hog could swap instead of being killed.
    let memsw =
        v1_dir(&cg, "memory").is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
    let swap = if cg.layout == Layout::V2 || memsw {
        limit
    } else {
        0
    };
    let swap_json = if swap != 0 {
        format!(r#", "swap": {swap}"#)
    } else {
        String::new()
    };
    cg.apply(&resources(&format!(
        r#"{{"memory": {{"limit": {limit}{swap_json}}}}}"#
    )))
    .unwrap();
    // A shell that joins the cgroup itself before allocating 64 MiB.
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let child = unsafe_free_spawn(r);
    let pid = child.id() as i32;
    guard.1 = Some(child);
    cg.add_task(pid).unwrap();
    drop(w); // release the shell
    let status = guard.1.as_mut().unwrap().wait().unwrap();
    guard.1 = None;
    eprintln!("hog exited: {status:?}");
    assert!(cg.oom_kills().unwrap() >= 1, "no oom_kill recorded");
}

/// `sh` waiting for EOF on `r` before allocating memory.
fn unsafe_free_spawn(r: std::os::fd::OwnedFd) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("cat >/dev/null; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}")
        .stdin(std::process::Stdio::from(r))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills a child process when dropped (a failed assertion leaves none).
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Reap {
    Reap(Command::new("sleep").arg("100").spawn().unwrap())
}

/// A container that delegated its cgroup2 directory (init in a sub-cgroup,
/// a controller enabled for children): `exec` joins init's sub-cgroup.
/// Runs on pure v2, and on a hybrid host's unified mount when it has a
/// controller to enable (hugetlb on this project's dev host).
#[test]
fn exec_joins_init_when_the_cgroup_is_delegated() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let id = unique_id();
    let cg = Cgroup::resolve(None, &id).unwrap();
    let Some(u) = cg.unified.clone() else {
        eprintln!("SKIPPED: no cgroup2 hierarchy on this host");
        return;
    };
    cg.create().unwrap();
    let _guard = Guard(cg.clone(), None);
    let Some(ctrl) = std::fs::read_to_string(u.join("cgroup.controllers"))
        .unwrap()
        .split_whitespace()
        .next()
        .map(str::to_string)
    else {
        eprintln!("SKIPPED: {} has no controller to delegate", u.display());
        return;
    };
    let init = sleeper();
    let init_pid = init.0.id() as i32;
    cg.add_task(init_pid).unwrap();
    // What the container does: init moves down, the parent gets a controller.
    let sub = u.join("init");
    std::fs::create_dir(&sub).unwrap();
    fsio::write(&sub, "cgroup.procs", &init_pid.to_string()).unwrap();
    fsio::write(&u, "cgroup.subtree_control", &format!("+{ctrl}")).unwrap();

    let exec = sleeper();
    let exec_pid = exec.0.id() as i32;
    let e = cg.add_task(exec_pid).unwrap_err();
    assert!(e.to_string().contains("busy"), "plain add_task: {e}");
    cg.join_exec(exec_pid, init_pid).unwrap();
    let procs = read_trim(sub.join("cgroup.procs"));
    assert!(
        procs.lines().any(|l| l == exec_pid.to_string()),
        "pid {exec_pid} not in {}: {procs}",
        sub.display()
    );
    // An init that is not in the tree: refused with a reason, not misplaced.
    let stranger = sleeper();
    let e = cg
        .join_exec(stranger.0.id() as i32, std::process::id() as i32)
        .unwrap_err();
    assert!(e.to_string().contains("not a leaf"), "{e}");
    drop((init, exec, stranger));
}

/// The BPF device program on a real cgroup2 directory (pure v2, or the
/// unified mount of a hybrid host, where the kernel runs it just the same):
/// /dev/null opens, /dev/kmsg does not; a second call replaces the first.
#[test]
fn bpf_device_program_is_enforced_and_replaced() {
    use std::io::Write;
    use std::process::Stdio;
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let id = unique_id();
    let cg = Cgroup::resolve(None, &id).unwrap();
    let Some(u) = cg.unified.clone() else {
        eprintln!("SKIPPED: no cgroup2 hierarchy on this host");
        return;
    };
    cg.create().unwrap();
    let _guard = Guard(cg.clone(), None);
    let deny_all: Vec<LinuxDeviceCgroup> =
        vec![serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap()];
    devices_bpf::set(&u, &deny_all).unwrap();
    devices_bpf::set(&u, &deny_all).unwrap();
    // Counted through the kernel: exactly one program stays attached.
    let ids = devices_bpf::attached_count(&std::fs::File::open(&u).unwrap()).unwrap();
    assert_eq!(
        ids,
        1,
        "programs attached to {} after two calls",
        u.display()
    );

    let mut child = Command::new("sh")
        .args([
            "-c",
            "read go; exec 3</dev/null && echo null-ok; exec 4</dev/kmsg && echo kmsg-ok; true",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fsio::write(&u, "cgroup.procs", &child.id().to_string()).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("null-ok"),
        "/dev/null refused: {stdout} {stderr}"
    );
    assert!(!stdout.contains("kmsg-ok"), "/dev/kmsg opened: {stdout}");
    assert!(stderr.contains("not permitted"), "{stderr}");
}

/// A cgroup2 directory whose parent gives it only some controllers (a
/// delegated one): a limit on another is refused naming the controller,
/// not as a missing file; the given ones are written. Plain files stand
/// for the cgroupfs ones, so this needs no root.
#[test]
fn v2_limit_on_a_controller_not_given_is_refused_by_name() {
    let dir = std::env::temp_dir().join(unique_id());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    std::fs::write(dir.join("pids.max"), "max\n").unwrap();
    let cg = Cgroup {
        layout: Layout::V2,
        dirs: vec![dir.clone()],
        v1: vec![],
        unified: Some(dir.clone()),
        unified_mountpoint: dir.parent().map(Path::to_path_buf),
        unified_controllers: ["cpuset", "cpu", "io", "memory", "pids"]
            .map(String::from)
            .to_vec(),
    };
    let e = cg
        .apply(&resources(r#"{"cpu": {"cpus": "0"}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cpus/mems") && e.contains("cpuset controller is not enabled"),
        "{e}"
    );
    cg.apply(&resources(r#"{"pids": {"limit": 7}}"#)).unwrap();
    assert_eq!(read_trim(dir.join("pids.max")), "7");
    let _ = std::fs::remove_dir_all(&dir);
}
