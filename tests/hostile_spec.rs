//! A hostile bundle against the host (issue 12, items 2, 5, 10, 21, 22 and
//! the mount and hook parts of 26): sysctls, a symlinked rootfs, the
//! `vessel-vm` floor, inherited and joined mount namespaces, rootfs
//! propagation, recursive mount options, a read-only /dev, a symlinked
//! /proc, `--no-pivot`, user-namespace binds and the createContainer
//! hook's cwd. Each attack runs for real; the test asserts the host is
//! unchanged. Run as root. `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test
//! --test hostile_spec` checks the tests against runc (vessel-only checks
//! say so and are skipped there).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `run` the bundle under a fresh id; (exit code, stdout, stderr).
fn run(rt: &Runtime, b: &Bundle, extra: &[&str]) -> (i32, String, String) {
    let id = unique_id("hs");
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--bundle", b.dir.to_str().unwrap(), &id]);
    let out = rt.run_detached(&args);
    let _ = rt.run(&["delete", "-f", &id]);
    triple(&out)
}

fn read_trim(p: &str) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
        .trim()
        .to_string()
}

/// Item 2: a sysctl outside every namespace would change the host: it is
/// refused by name before anything runs, and the host's value stays.
#[test]
fn host_sysctls_are_refused_and_host_unchanged() {
    require_root();
    let rt = Runtime::new();
    let path = "/proc/sys/fs/lease-break-time";
    let before = read_trim(path);
    let wanted = (before.parse::<u64>().unwrap_or(45) + 1).to_string();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["sysctl"] = json!({ "fs.lease-break-time": wanted });
    b.write();
    let id = unique_id("sysctl");
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    let _ = rt.run(&["delete", "-f", &id]);
    assert_ne!(code, 0, "a host sysctl was accepted");
    assert!(
        err.contains("fs.lease-break-time"),
        "error does not name the key: {err}"
    );
    assert_eq!(read_trim(path), before, "the host's {path} changed");
    assert_nothing_left(&rt, &id, &b);

    // kernel.core_pattern (host root via a core dump helper): refused too.
    // Its current value is asked for, so even a runtime that accepts it
    // leaves the host as it was.
    let core = read_trim("/proc/sys/kernel/core_pattern");
    b.spec["linux"]["sysctl"] = json!({ "kernel.core_pattern": core });
    b.write();
    let (code, _, err) = run(&rt, &b, &[]);
    assert_ne!(code, 0, "kernel.core_pattern was accepted");
    assert!(err.contains("kernel.core_pattern"), "{err}");

    // A network sysctl with the host's own network namespace joined by path.
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    b.spec["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network", "path": "/proc/self/ns/net"}
    ]);
    b.write();
    let fwd = read_trim("/proc/sys/net/ipv4/ip_forward");
    let (code, _, err) = run(&rt, &b, &[]);
    assert_ne!(
        code, 0,
        "net.* with the host's network namespace was accepted"
    );
    assert!(err.contains("net.ipv4.ip_forward"), "{err}");
    assert_eq!(read_trim("/proc/sys/net/ipv4/ip_forward"), fwd);
}

/// Item 2: a key that climbs out of /proc/sys is refused (vessel's own
/// check: runc turns the dots into slashes and never climbs either).
#[test]
fn sysctl_key_cannot_leave_proc_sys() {
    require_root();
    if !is_vessel() {
        if !is_vessel() {
            skip("vessel's key syntax check");
        }
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["sysctl"] = json!({ "net/ipv4/../../kernel/core_pattern": "|/bin/false" });
    b.write();
    let core = read_trim("/proc/sys/kernel/core_pattern");
    let (code, _, err) = run(&rt, &b, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("core_pattern"), "{err}");
    assert_eq!(read_trim("/proc/sys/kernel/core_pattern"), core);
}

/// Item 2: namespaced sysctls still work with the container's own
/// namespaces (ipc, network, uts).
#[test]
fn namespaced_sysctls_still_apply() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward /proc/sys/fs/mqueue/msg_max",
    ]);
    b.spec["linux"]["sysctl"] = json!({
        "kernel.shmmax": "4096", "net.ipv4.ip_forward": "1", "fs.mqueue.msg_max": "20"
    });
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["4096", "1", "20"]
    );
}

/// Item 5: tenant A's bundle whose rootfs is a symlink to tenant B's files
/// must not run on B's files.
#[test]
fn symlinked_rootfs_is_refused() {
    require_root();
    let rt = Runtime::new();
    let victim = Bundle::new(&["true"]);
    fs::write(victim.rootfs().join("tenant-b-secret"), "B").unwrap();
    let mut b = Bundle::new(&["cat", "/tenant-b-secret"]);
    std::os::unix::fs::symlink(victim.rootfs(), b.dir.join("linked")).unwrap();
    b.spec["root"]["path"] = json!("linked");
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    assert_ne!(code, 0, "the symlinked rootfs ran: {out}");
    assert!(!out.contains('B'), "the container read tenant B's file");
    assert!(err.contains("symlink"), "{err}");

    // A symlinked directory above the rootfs (absolute root.path) too.
    let up = scratch_dir().join(unique_id("uplink"));
    std::os::unix::fs::symlink(&victim.dir, &up).unwrap();
    b.spec["root"]["path"] = json!(up.join("rootfs"));
    b.write();
    let (code, out, _) = run(&rt, &b, &[]);
    let _ = fs::remove_file(&up);
    assert_ne!(code, 0, "a rootfs through a symlinked dir ran: {out}");
}

/// Item 10: installed as `vessel-vm`, a bundle cannot ask for container
/// mode (it would run on the host kernel).
#[test]
fn vessel_vm_name_is_a_floor() {
    require_root();
    if !is_vessel() {
        skip("vessel-vm is vessel's own");
        return;
    }
    let dir = scratch_dir().join(unique_id("vmname"));
    fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("vessel-vm");
    fs::copy(runtime_bin(), &bin).unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["annotations"] = json!({"vessel.sandbox": "container"});
    b.write();
    let id = unique_id("floor");
    let mut cmd = Command::new(&bin);
    cmd.arg("--root")
        .arg(&rt.root)
        .arg("create")
        .arg("--bundle")
        .arg(&b.dir)
        .arg(&id);
    let out = run_detached_io(cmd, Duration::from_secs(60));
    let (code, _, err) = triple(&out);
    let _ = rt.run(&["delete", "-f", &id]);
    let _ = fs::remove_dir_all(&dir);
    assert_ne!(code, 0, "vessel-vm ran a bundle in container mode");
    assert!(
        err.contains("vessel.sandbox=container") && err.contains("vessel-vm"),
        "{err}"
    );
    assert!(
        !err.contains("use annotation"),
        "the error still suggests the way down: {err}"
    );
    assert_nothing_left(&rt, &id, &b);
}

/// The init's mount namespace (from `create`), as `mnt:[N]`.
fn init_mntns(rt: &Runtime, id: &str) -> String {
    let pid = rt.state(id)["pid"].as_i64().expect("pid");
    fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Item 21: no `mount` namespace: the container inherits the runtime's
/// (runtime spec), in a chroot, with the host's mount table untouched.
#[test]
fn missing_mount_namespace_is_inherited() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "echo inherited > /tmp/mark"]);
    b.spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}]);
    b.spec["linux"]["maskedPaths"] = json!([]);
    b.spec["linux"]["readonlyPaths"] = json!([]);
    b.spec["mounts"] = json!([]);
    b.write();
    let mounts_before = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let id = unique_id("inh");
    rt.create_ok(&b, &id);
    let own = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(
        init_mntns(&rt, &id),
        own.to_string_lossy(),
        "not the runtime's mount namespace"
    );
    rt.ok(&["start", &id]);
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(20)));
    rt.ok(&["delete", &id]);
    assert_eq!(
        fs::read_to_string(b.rootfs().join("tmp/mark")).unwrap_or_default(),
        "inherited\n"
    );
    let mounts_after = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        mounts_before, mounts_after,
        "the host's mount table changed"
    );

    // What needs a private mount namespace is refused by name.
    if is_vessel() {
        let mut b2 = Bundle::new(&["true"]);
        b2.spec["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "uts"}]);
        b2.write();
        let (code, _, err) = run(&rt, &b2, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("mount namespace"), "{err}");
    }
}

/// Item 21: joining another process's mount namespace by path.
#[test]
fn mount_namespace_joined_by_path() {
    require_root();
    let mut helper = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sleep", "60"])
        .spawn()
        .expect("spawn unshare");
    let hp = helper.id();
    let want = wait_for(Duration::from_secs(10), || {
        fs::read_link(format!("/proc/{hp}/ns/mnt")).ok() != fs::read_link("/proc/self/ns/mnt").ok()
    });
    assert!(want, "the helper never got its own mount namespace");
    let target = fs::read_link(format!("/proc/{hp}/ns/mnt")).unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"},
        {"type": "mount", "path": format!("/proc/{hp}/ns/mnt")}
    ]);
    b.write();
    let id = unique_id("joinmnt");
    let out = rt.create(&b, &id, &[]);
    let (code, _, err) = triple(&out);
    let got = if code == 0 {
        init_mntns(&rt, &id)
    } else {
        String::new()
    };
    let _ = rt.run(&["delete", "-f", &id]);
    let _ = helper.kill();
    let _ = helper.wait();
    assert_eq!(code, 0, "joining a mount namespace by path failed: {err}");
    assert_eq!(got, target.to_string_lossy());
}

/// Item 22: rootfsPropagation "unbindable" (runc fails it with EINVAL,
/// crun does not).
#[test]
fn rootfs_propagation_unbindable() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
    b.spec["linux"]["rootfsPropagation"] = json!("unbindable");
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("unbindable"),
        "the root is not unbindable: {out}"
    );
}

/// A host dir with a tmpfs mounted below it, for recursive options.
struct Nested {
    dir: PathBuf,
}

impl Nested {
    fn new() -> Nested {
        let dir = scratch_dir().join(unique_id("nested"));
        fs::create_dir_all(dir.join("sub")).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir.join("sub"))
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        Nested { dir }
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.join("sub"))
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Item 26: `rro` makes an rbind read-only all the way down.
#[test]
fn rro_makes_submounts_read_only() {
    require_root();
    let host = Nested::new();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "touch /mnt/top 2>/dev/null && echo TOP-WRITABLE; touch /mnt/sub/x 2>/dev/null && echo SUB-WRITABLE; echo done",
    ]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": host.dir, "options": ["rbind", "rro"]
    }));
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("done"), "{out}");
    assert!(
        !out.contains("WRITABLE"),
        "rro left something writable: {out}"
    );
    assert!(!host.dir.join("sub/x").exists() && !host.dir.join("top").exists());
}

/// Item 26: a read-only /dev tmpfs: devices still made and usable.
#[test]
fn read_only_dev() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo x > /dev/null && echo NULL-OK; touch /dev/new 2>/dev/null && echo DEV-WRITABLE; grep ' /dev ' /proc/self/mountinfo",
    ]);
    for m in b.spec["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NULL-OK"), "{out}");
    assert!(!out.contains("DEV-WRITABLE"), "{out}");
    assert!(out.contains(" /dev ro"), "/dev is not read-only: {out}");
}

/// Item 26: a rootfs whose /proc (or /sys) is a symlink is refused, so
/// procfs cannot land elsewhere and leave the masks off.
#[test]
fn symlinked_proc_or_sys_is_refused() {
    require_root();
    let rt = Runtime::new();
    for name in ["proc", "sys"] {
        let b = Bundle::new(&["true"]);
        let p = b.rootfs().join(name);
        let _ = fs::remove_dir_all(&p);
        std::os::unix::fs::symlink("/tmp", &p).unwrap();
        let (code, _, err) = run(&rt, &b, &[]);
        assert_ne!(code, 0, "/{name} as a symlink was accepted");
        assert!(err.contains("ordinary directory"), "{err}");
        assert!(mounts_under(&b.dir).is_empty());
    }
}

/// Item 26: with --no-pivot the host's proc must stay out of reach: a
/// nested user namespace may mount a fresh, unmasked proc only when a
/// fully visible one exists in the mount namespace (runc's no_pivot.bats).
#[test]
fn no_pivot_hides_host_proc() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "mount -t proc none /proc && echo MOUNTED-PROC",
    ]);
    // The default seccomp profile refuses unshare(CLONE_NEWUSER) without
    // CAP_SYS_ADMIN: drop it, as runc's test config has none.
    if let Some(l) = b.spec["linux"].as_object_mut() {
        l.remove("seccomp");
    }
    for set in ["bounding", "permitted", "effective"] {
        b.spec["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SETFCAP"));
    }
    b.write();
    let (code, out, err) = run(&rt, &b, &["--no-pivot"]);
    assert!(
        !out.contains("MOUNTED-PROC"),
        "an unmasked proc was mounted: {out} {err}"
    );
    assert_ne!(code, 0);
}

/// Item 26: in a user namespace, a bind source the mapped root cannot
/// reach (below a 0700 root-owned host dir) still mounts.
#[test]
fn userns_bind_of_unreachable_source() {
    require_root();
    let priv_dir = scratch_dir().join(unique_id("priv"));
    fs::create_dir_all(priv_dir.join("inner")).unwrap();
    fs::write(priv_dir.join("inner/f"), "reached\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&priv_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["cat", "/data/f"]);
    let st = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.spec["linux"]["uidMappings"] = map.clone();
    b.spec["linux"]["gidMappings"] = map;
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": priv_dir.join("inner"),
        "options": ["rbind", "ro"]
    }));
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    let _ = fs::remove_dir_all(&priv_dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "reached\n");
}

/// Item 26 (hooks): a createContainer hook starts in the container's root,
/// so a relative path lands in the rootfs, not on the host's /.
#[test]
fn create_container_hook_cwd_is_rootfs() {
    require_root();
    let rt = Runtime::new();
    let name = unique_id("hook-rel");
    let host_file = Path::new("/").join(&name);
    let mut b = Bundle::new(&["true"]);
    b.spec["hooks"] = json!({"createContainer": [{
        "path": "/bin/sh", "args": ["sh", "-c", format!("touch {name}")]
    }]});
    b.write();
    let (code, _, err) = run(&rt, &b, &[]);
    let on_host = host_file.exists();
    let _ = fs::remove_file(&host_file);
    assert_eq!(code, 0, "{err}");
    assert!(
        !on_host,
        "the hook wrote {} on the host",
        host_file.display()
    );
    assert!(
        b.rootfs().join(&name).exists(),
        "the hook did not run in the rootfs"
    );
}

/// External run (runc's no_pivot.bats): under --no-pivot the container's
/// root must be the top mount on "/" of its mount namespace, not a
/// chroot: the kernel refuses CLONE_NEWUSER in a chroot, so `unshare -r`
/// must get as far as the proc mount, which is refused (host proc hidden).
#[test]
fn no_pivot_root_is_not_a_chroot() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "unshare",
        "-mrpf",
        "sh",
        "-c",
        "echo IN-USERNS; mount -t proc none /proc && echo MOUNTED-PROC",
    ]);
    if let Some(l) = b.spec["linux"].as_object_mut() {
        l.remove("seccomp");
    }
    for set in ["bounding", "permitted", "effective"] {
        b.spec["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SETFCAP"));
    }
    b.write();
    let (code, out, err) = run(&rt, &b, &["--no-pivot"]);
    assert!(
        out.contains("IN-USERNS"),
        "unshare -r failed (root looks like a chroot): {out} {err}"
    );
    assert!(
        !out.contains("MOUNTED-PROC"),
        "an unmasked proc was mounted: {out} {err}"
    );
    assert!(
        err.to_lowercase().contains("permission denied"),
        "the proc mount should fail with EPERM: {out} {err}"
    );
    assert_ne!(code, 0);
}

/// The mount points of the container's /proc/self/mountinfo, in order.
fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Bind, tmpfs and bind mounts interleaved, with or without a user
/// namespace: mountinfo lists "/" first and then every mount in config
/// order (the OCI suite's "mounted in the listed order").
fn check_mount_order(userns: bool) {
    let src = scratch_dir().join(unique_id("order-src"));
    fs::create_dir_all(&src).unwrap();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    if userns {
        let st = Command::new("chown")
            .args(["-R", "100000:100000"])
            .arg(b.rootfs())
            .status()
            .unwrap();
        assert!(st.success());
        b.spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        b.spec["linux"]["uidMappings"] = map.clone();
        b.spec["linux"]["gidMappings"] = map;
    }
    let mounts = b.spec["mounts"].as_array_mut().unwrap();
    for (dest, bind) in [
        ("/mnt/b1", true),
        ("/mnt/t1", false),
        ("/mnt/b2", true),
        ("/mnt/t2", false),
    ] {
        mounts.push(if bind {
            json!({"destination": dest, "type": "bind", "source": &src, "options": ["rbind"]})
        } else {
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
        });
    }
    b.write();
    let (code, out, err) = run(&rt, &b, &[]);
    let _ = fs::remove_dir_all(&src);
    assert_eq!(code, 0, "{err}");
    let points = mount_points(&out);
    let want = [
        "/",
        "/proc",
        "/dev",
        "/sys",
        "/sys/fs/cgroup",
        "/mnt/b1",
        "/mnt/t1",
        "/mnt/b2",
        "/mnt/t2",
    ];
    let mut last = None;
    for w in want {
        let i = points
            .iter()
            .position(|p| p == w)
            .unwrap_or_else(|| panic!("{w} not mounted: {points:?}"));
        if let Some((lw, li)) = last {
            assert!(li < i, "{lw} listed after {w}: {points:?}");
        }
        last = Some((w, i));
    }
    // The cgroup binds come after the tmpfs that holds them.
    let cg = points.iter().position(|p| p == "/sys/fs/cgroup").unwrap();
    for (i, p) in points.iter().enumerate() {
        if p.starts_with("/sys/fs/cgroup/") {
            assert!(i > cg, "{p} listed before /sys/fs/cgroup: {points:?}");
        }
    }
}

/// External run (OCI validation `mounts`): mounts appear in mountinfo in
/// the order config.json lists them, after the rootfs.
#[test]
fn mountinfo_lists_mounts_in_config_order() {
    require_root();
    check_mount_order(false);
}

/// The same with a user namespace, where bind sources are copied on the
/// host side first.
#[test]
fn mountinfo_lists_mounts_in_config_order_userns() {
    require_root();
    check_mount_order(true);
}

/// External run (runc's mounts.bats "ro /sys/fs/cgroup mount"): with the
/// cgroup mount read-only, the tmpfs vessel makes at /sys/fs/cgroup on a
/// v1 or hybrid host is read-only too, not only the binds in it.
#[test]
fn ro_cgroup_mount_makes_its_tmpfs_read_only() {
    require_root();
    if !Path::new("/sys/fs/cgroup/cpu").exists() {
        eprintln!("ro_cgroup_mount_makes_its_tmpfs_read_only: skipped (pure cgroup v2 host: no tmpfs at /sys/fs/cgroup)");
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "grep ' /sys/fs/cgroup' /proc/self/mountinfo; mkdir /sys/fs/cgroup/x && echo MADE-DIR",
    ]);
    let (_, out, err) = run(&rt, &b, &[]);
    assert!(
        !out.contains("MADE-DIR"),
        "/sys/fs/cgroup is writable: {out} {err}"
    );
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" /sys/fs/cgroup"))
        .collect();
    assert!(!lines.is_empty(), "{out} {err}");
    for l in lines {
        let opts = l.split(' ').nth(5).unwrap_or("");
        assert!(opts.split(',').any(|o| o == "ro"), "not read-only: {l}");
    }
}
