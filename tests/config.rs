//! Each config.json field, checked from inside a real container. Run as
//! root. `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test config`
//! checks the tests themselves against runc.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Run `script` with `edit` applied to the spec; assert exit 0; stdout.
fn run_sh(script: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut b = Bundle::new(&["sh", "-c", script]);
    edit(&mut b.spec);
    b.write();
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "script {script:?}\nstdout: {out}\nstderr: {err}");
    out
}

/// Lines of /proc/self/status of the container's process itself (read by
/// the shell's builtins, so no exec changes what is shown).
const STATUS_OF_SELF: &str = "while read -r l; do echo \"$l\"; done < /proc/self/status";

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} missing in {status}"))
        .trim()
        .to_string()
}

#[test]
fn hostname_and_domainname() {
    require_root();
    let out = run_sh("hostname; cat /proc/sys/kernel/domainname", |s| {
        s["hostname"] = json!("box-one");
        s["domainname"] = json!("example.test");
    });
    assert_eq!(out, "box-one\nexample.test\n");
}

#[test]
fn user_groups_and_umask() {
    require_root();
    let out = run_sh(
        "id -u; id -g; grep Groups /proc/self/status; umask; touch /tmp/f; stat -c %a /tmp/f",
        |s| {
            s["process"]["user"] =
                json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027});
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "1001", "{out}");
    let groups: Vec<&str> = lines[2]
        .trim_start_matches("Groups:")
        .split_whitespace()
        .collect();
    assert_eq!(groups, ["10", "20"], "{out}");
    assert_eq!(lines[3], "0027", "{out}");
    assert_eq!(lines[4], "640", "{out}");
}

#[test]
fn env_and_cwd() {
    require_root();
    let out = run_sh("echo $FOO; echo $BAR; pwd", |s| {
        s["process"]["env"] = json!(["PATH=/bin:/sbin", "FOO=bar baz", "BAR=2"]);
        s["process"]["cwd"] = json!("/etc");
    });
    assert_eq!(out, "bar baz\n2\n/etc\n");
}

fn caps_mask(nums: &[u32]) -> u64 {
    nums.iter().fold(0, |m, n| m | (1u64 << n))
}

#[test]
fn capabilities_of_non_root_process() {
    require_root();
    // CAP_CHOWN=0 CAP_DAC_OVERRIDE=1 CAP_KILL=5 CAP_NET_BIND_SERVICE=10
    // CAP_NET_RAW=13 CAP_SYS_CHROOT=18 CAP_AUDIT_WRITE=29
    let bounding = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
        "CAP_SYS_CHROOT",
        "CAP_AUDIT_WRITE",
    ];
    let out = run_sh(STATUS_OF_SELF, |s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["process"]["capabilities"] = json!({
            "bounding": bounding,
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        });
    });
    let hex = |k: &str| u64::from_str_radix(&status_field(&out, k), 16).unwrap();
    assert_eq!(
        hex("CapBnd"),
        caps_mask(&[0, 1, 5, 10, 13, 18, 29]),
        "{out}"
    );
    assert_eq!(hex("CapInh"), caps_mask(&[5, 10]), "{out}");
    // A non-root execve keeps exactly the ambient set as permitted/effective.
    assert_eq!(hex("CapAmb"), caps_mask(&[5, 10]), "{out}");
    assert_eq!(hex("CapPrm"), caps_mask(&[5, 10]), "{out}");
    assert_eq!(hex("CapEff"), caps_mask(&[5, 10]), "{out}");
}

#[test]
fn capabilities_bounding_of_root() {
    require_root();
    let out = run_sh(STATUS_OF_SELF, |s| {
        s["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_SETUID"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
        });
    });
    let hex = |k: &str| u64::from_str_radix(&status_field(&out, k), 16).unwrap();
    assert_eq!(hex("CapBnd"), caps_mask(&[5, 7]), "{out}");
    // execve as root recomputes permitted from the bounding set.
    assert_eq!(hex("CapAmb"), 0, "{out}");
    assert_eq!(hex("CapEff") & !caps_mask(&[5, 7]), 0, "{out}");
}

#[test]
fn no_new_privileges() {
    require_root();
    let on = run_sh(STATUS_OF_SELF, |s| {
        s["process"]["noNewPrivileges"] = json!(true)
    });
    assert_eq!(status_field(&on, "NoNewPrivs"), "1");
    let off = run_sh(STATUS_OF_SELF, |s| {
        s["process"]["noNewPrivileges"] = json!(false)
    });
    assert_eq!(status_field(&off, "NoNewPrivs"), "0");
}

#[test]
fn rlimits() {
    require_root();
    let out = run_sh("ulimit -Sn; ulimit -Hn; ulimit -Sc", |s| {
        s["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]);
    });
    assert_eq!(out, "512\n1000\n0\n");
}

#[test]
fn rlimit_above_hard_limit_is_refused() {
    require_root();
    // CAP_SYS_RESOURCE is not in this host's bounding set: raising the hard
    // limit over ours must fail (EPERM), for runc too, not be ignored.
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a stack struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    let bnd = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = u64::from_str_radix(&status_field(&bnd, "CapBnd"), 16).unwrap();
    if bnd & (1 << 24) != 0 {
        skip("this host has CAP_SYS_RESOURCE, the limit can be raised");
        return;
    }
    let want = cur.rlim_max + 1000;
    let mut b = Bundle::new(&["true"]);
    b.spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": want, "hard": want}]);
    b.write();
    let rt = Runtime::new();
    let id = unique_id("rlim");
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0, "create raised RLIMIT_NOFILE past the hard limit");
    assert!(
        err.contains("rlimit") || err.contains("ermission") || err.contains("not permitted"),
        "stderr: {err}"
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn oom_score_adj() {
    require_root();
    let out = run_sh("cat /proc/self/oom_score_adj", |s| {
        s["process"]["oomScoreAdj"] = json!(345);
    });
    assert_eq!(out.trim(), "345");
}

#[test]
fn sysctl_in_new_net_and_ipc_namespaces() {
    require_root();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let out = run_sh(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax",
        |s| {
            s["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": want_fwd,
                "kernel.shmmax": "123456789",
            });
        },
    );
    assert_eq!(out, format!("{want_fwd}\n123456789\n"));
    // The host is untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shm
    );
}

#[test]
fn masked_paths() {
    require_root();
    // Masked files that exist on this host must read empty inside.
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|f| std::path::Path::new(f).exists())
    .collect();
    assert!(
        !files.is_empty(),
        "no masked /proc file exists on this host"
    );
    let mut script = String::new();
    for f in &files {
        script.push_str(&format!("echo {f}=$(cat {f} | wc -c); "));
    }
    script.push_str(
        "echo firmware=$(ls -A /sys/firmware | wc -l); \
         touch /sys/firmware/x 2>/dev/null && echo fw-writable || echo fw-ro",
    );
    let out = run_sh(&script, |_| {});
    for f in &files {
        assert!(
            out.lines().any(|l| l == format!("{f}=0")),
            "{f} not masked:\n{out}"
        );
    }
    assert!(
        std::fs::read_dir("/sys/firmware").unwrap().next().is_some(),
        "host /sys/firmware is empty: the check below would prove nothing"
    );
    assert!(out.contains("firmware=0\n"), "{out}");
    assert!(out.contains("fw-ro\n"), "{out}");
}

#[test]
fn readonly_paths() {
    require_root();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "touch /ro/x 2>/dev/null && echo ro-writable || echo ro-denied; \
         touch /rw/x && echo rw-ok; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-denied",
    ]);
    std::fs::create_dir_all(b.rootfs().join("ro")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("rw")).unwrap();
    b.spec["linux"]["readonlyPaths"] = json!(["/ro", "/proc/sys", "/does/not/exist"]);
    b.write();
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ro-denied\nrw-ok\nsys-denied\n");
    assert!(!b.rootfs().join("ro/x").exists());
    assert!(b.rootfs().join("rw/x").exists());
}

#[test]
fn readonly_root() {
    require_root();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-writable || echo root-ro; touch /dev/shm/y && echo shm-ok",
    ]);
    b.spec["root"]["readonly"] = json!(true);
    b.write();
    let (code, out, err) = Runtime::new().run_bundle(&b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "root-ro\nshm-ok\n");
    assert!(!b.rootfs().join("x").exists());
}

fn mountinfo_line<'a>(mi: &'a str, mountpoint: &str) -> &'a str {
    mi.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(mountpoint))
        .unwrap_or_else(|| panic!("{mountpoint} not in mountinfo:\n{mi}"))
}

#[test]
fn tmpfs_mount_with_size_and_mode() {
    require_root();
    let out = run_sh("cat /proc/self/mountinfo; stat -c MODE=%a /mnt/t", |s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=1m", "mode=750"]
        }));
    });
    let line = mountinfo_line(&out, "/mnt/t");
    assert!(line.contains(" - tmpfs "), "{line}");
    assert!(line.contains("size=1024k"), "{line}");
    assert!(line.contains("mode=750"), "{line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    assert!(out.contains("MODE=750"), "{out}");
}

#[test]
fn bind_mounts_dir_rw_ro_and_file() {
    require_root();
    let host = scratch_dir().join(unique_id("hostdir"));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from-host").unwrap();
    let file = scratch_dir().join(unique_id("hostfile"));
    std::fs::write(&file, "single-file").unwrap();
    let out = run_sh(
        "cat /data/in.txt; echo; echo written > /data/out.txt && echo rw-ok; \
         touch /rodata/x 2>/dev/null && echo ro-writable || echo ro-denied; \
         cat /etc/single; echo; cat /proc/self/mountinfo",
        |s| {
            let m = s["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "rw"]}));
            m.push(json!({"destination": "/rodata", "type": "bind", "source": host, "options": ["bind", "ro"]}));
            m.push(json!({"destination": "/etc/single", "type": "bind", "source": file, "options": ["bind", "ro"]}));
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..4],
        ["from-host", "rw-ok", "ro-denied", "single-file"],
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "written\n"
    );
    assert!(!host.join("x").exists());
    let ro = mountinfo_line(&out, "/rodata");
    assert!(
        ro.split(' ').nth(5).unwrap().split(',').any(|o| o == "ro"),
        "{ro}"
    );
    let rw = mountinfo_line(&out, "/data");
    assert!(
        rw.split(' ').nth(5).unwrap().split(',').any(|o| o == "rw"),
        "{rw}"
    );
    let _ = std::fs::remove_dir_all(&host);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn mount_propagation_flags() {
    require_root();
    let host = scratch_dir().join(unique_id("propdir"));
    std::fs::create_dir_all(&host).unwrap();
    let out = run_sh("cat /proc/self/mountinfo", |s| {
        let m = s["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/shared", "type": "bind", "source": host, "options": ["rbind", "rshared"]}));
        m.push(json!({"destination": "/private", "type": "bind", "source": host, "options": ["rbind", "rprivate"]}));
        m.push(json!({"destination": "/unbind", "type": "bind", "source": host, "options": ["rbind", "runbindable"]}));
    });
    let opt_fields = |l: &str| -> String {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-").unwrap();
        f[6..dash].join(" ")
    };
    let shared = opt_fields(mountinfo_line(&out, "/shared"));
    assert!(shared.contains("shared:"), "{shared}");
    let private = opt_fields(mountinfo_line(&out, "/private"));
    assert!(
        !private.contains("shared:") && !private.contains("master:"),
        "{private}"
    );
    let unb = opt_fields(mountinfo_line(&out, "/unbind"));
    assert!(unb.contains("unbindable"), "{unb}");
    let _ = std::fs::remove_dir_all(&host);
}

#[test]
fn rootfs_propagation() {
    require_root();
    let root_opts = |prop: Option<&str>| -> String {
        let out = run_sh("cat /proc/self/mountinfo", |s| {
            if let Some(p) = prop {
                s["linux"]["rootfsPropagation"] = json!(p);
            }
        });
        let l = mountinfo_line(&out, "/");
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-").unwrap();
        f[6..dash].join(" ")
    };
    let private = root_opts(Some("private"));
    assert!(
        !private.contains("shared:") && !private.contains("master:"),
        "private: {private}"
    );
    let shared = root_opts(Some("shared"));
    assert!(shared.contains("shared:"), "shared: {shared}");
}

#[test]
fn linux_devices_node() {
    require_root();
    let out = run_sh("stat -c '%F %t %T %a %u %g' /dev/mydev /dev/sub/blk", |s| {
        s["linux"]["devices"] = json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1001},
            {"path": "/dev/sub/blk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0, "gid": 0}
        ]);
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "character special file 1 3 640 1000 1001",
        "{out}"
    );
    assert_eq!(lines[1], "block special file 7 c8 600 0 0", "{out}");
}

#[test]
fn default_dev_nodes_and_links() {
    require_root();
    let out = run_sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo /dev/$l=$(readlink /dev/$l); done; \
         head -c 4 /dev/zero | wc -c; echo hi > /dev/null && echo null-ok",
        |_| {},
    );
    for want in [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "/dev/fd=/proc/self/fd",
        "/dev/stdin=/proc/self/fd/0",
        "/dev/stdout=/proc/self/fd/1",
        "/dev/stderr=/proc/self/fd/2",
        "/dev/ptmx=pts/ptmx",
        "null-ok",
    ] {
        assert!(
            out.lines().any(|l| l.trim() == want),
            "missing {want:?} in:\n{out}"
        );
    }
}

#[test]
fn new_network_namespace_has_only_lo() {
    require_root();
    let out = run_sh("tail -n +3 /proc/net/dev | cut -d: -f1", |_| {});
    let ifs: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(ifs, ["lo"], "{out}");
}

#[test]
fn join_another_containers_netns_by_path() {
    require_root();
    let rt = Runtime::new();
    let a = Bundle::new(&["sleep", "1000"]);
    let ida = unique_id("netA");
    rt.create_ok(&a, &ida);
    let pid = rt.state(&ida)["pid"].as_i64().unwrap();
    let ns_a = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut b = Bundle::new(&["readlink", "/proc/self/ns/net"]);
    let nss = b.spec["linux"]["namespaces"].as_array_mut().unwrap();
    for ns in nss.iter_mut() {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    b.write();
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), ns_a.to_string_lossy());
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(ns_a, host);
    rt.ok(&["delete", "-f", &ida]);
}

#[test]
fn user_namespace_with_mappings() {
    require_root();
    let out = run_sh(
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
        |s| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            s["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            s["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        },
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "{out}");
    assert_eq!(lines[1], ["0"], "{out}");
    assert_eq!(lines[2], ["0", "200000", "65536"], "{out}");
    assert_eq!(lines[3], ["0", "300000", "65536"], "{out}");
}

#[test]
fn user_namespace_process_is_mapped_on_host() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.write();
    let id = unique_id("userns");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let ok = wait_for(T, || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| {
                status_field(&s, "Uid")
                    .split_whitespace()
                    .all(|u| u == "200000")
            })
            .unwrap_or(false)
    });
    assert!(ok, "workload does not run as host uid 200000");
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn pid_namespace_gives_pid_1() {
    require_root();
    let out = run_sh("echo $$; ps -o pid | tail -n +2 | wc -l", |_| {});
    let l: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(l[0], "1", "{out}");
    // sh and ps (and the subshell pipeline parts) only: no host processes.
    let n: usize = l[1].parse().unwrap();
    assert!(n < 6, "too many processes visible: {out}");
}

#[test]
fn cgroup_namespace_shows_root() {
    require_root();
    let out = run_sh("cat /proc/self/cgroup", |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}));
    });
    for l in out.lines() {
        assert!(
            l.ends_with(":/"),
            "cgroup path not / inside a cgroup ns: {out}"
        );
    }
    let host = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(out.lines().count(), host.lines().count());
}

#[test]
fn time_namespace_offsets() {
    require_root();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("kernel has no time namespaces");
        return;
    }
    let year = 365 * 86400u64;
    let out = run_sh("cut -d. -f1 /proc/uptime", |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        s["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": year, "nanosecs": 0},
            "boottime": {"secs": year, "nanosecs": 0}
        });
    });
    let up: u64 = out.trim().parse().unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(up >= year + host as u64 - 5, "uptime {up} lacks the offset");
}

#[test]
fn sysfs_and_cgroup_mount_inside() {
    require_root();
    let out = run_sh("ls /sys/fs/cgroup; cat /proc/self/mountinfo", |_| {});
    // Each controller directory is visible under its own name.
    for c in ["memory", "pids", "cpuset"] {
        if std::path::Path::new("/sys/fs/cgroup").join(c).is_dir() {
            assert!(
                out.lines().any(|l| l.trim() == c),
                "{c} missing in /sys/fs/cgroup:\n{out}"
            );
        }
    }
}
