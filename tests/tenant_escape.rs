//! Escape probes from inside user-namespaced containers (issue 11).
//!
//! Two ways vessel gives a container a user namespace: (a) the config's own
//! `user` namespace and `linux.uidMappings`/`gidMappings`; (b) a tenant range
//! (container::tenant_ids: a direct `vessel run` with no user namespace in
//! the config gets 65536 ids of user `vessel`'s subordinate ids and an
//! id-mapped rootfs; this suite points vessel at its own subuid/subgid files
//! and registry, as tests/tenant_ids.rs does). Each probe runs as uid 0 in
//! the container twice: with the capabilities of the default `vessel spec`
//! (and its seccomp profile, masked and read-only paths), and with a hostile
//! config that adds every capability to every set and drops seccomp, masked
//! and read-only paths. The user namespace must hold in both: each probe
//! asserts the exact refusal (errno) and that the host is unchanged (its
//! sysctls, the files the probe aimed at, its mount table).
//!
//! Raw syscalls go through `xh`, a small C program built here with
//! `cc -static` (its source is below) and copied into each rootfs; each of
//! its commands prints `<what> ok <n>` or `<what> <ERRNO>`.
//!
//! Known, and the same in runc 1.1.5: with CAP_SYS_ADMIN (the hostile
//! config) the container may remount its own copy of a read-only bind
//! read-write; host files there stay protected by their owners, so a
//! world-writable file on a read-only volume is writable then.
//!
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc` runs the (a) probes against runc;
//! (b) is vessel's own and is skipped then.

mod common;
mod escape;

use common::*;
use escape::*;
use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn mounts_stay_in_the_container() {
    require_root();
    for setup in setups() {
        for caps in CAPS {
            let tok = token();
            let rovol = ro_volume(&tok);
            let shared = SharedHostMount::new(&tok);
            // The same through an id-mapped bind (vessel's own host-side copy).
            let shared2 = SharedHostMount::new(&format!("idmap-{tok}"));
            // A file in the host's /tmp: visible through a path that reaches
            // the host's root, not through the container's own.
            let marker = PathBuf::from(format!("/tmp/vessel-escape-{tok}"));
            fs::write(&marker, "host").unwrap();
            let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
            let before = (host_mounts(&tok), host_value(thp));
            let script = format!(
                r#"mkdir -p /tmp/p /tmp/pr /tmp/s
echo "proc: $(xh mount proc /tmp/p proc 0 -)"
echo "proc_core: $(xh write /tmp/p/sys/kernel/core_pattern '|/pwn-{tok}')"
echo "tmpfs_root: $(xh mount tmpfs / tmpfs 0 -)"
echo "ro_remount: $(xh mount none /rovol - remount,bind -)"
echo "ro_write: $(xh write /rovol/f pwned)"
echo "ro_write_w: $(xh write /rovol/w pwned)"
echo "pid1root: $(xh mount /proc/1/root /tmp/pr - bind,rec -)"
echo "pid1root_marker: $(test -e /tmp/pr/tmp/vessel-escape-{tok} && echo visible || echo absent)"
echo "pid1root_direct: $(test -e /proc/1/root/tmp/vessel-escape-{tok} && echo visible || echo absent)"
echo "make_shared: $(xh mount none /shr - shared,rec -)"
echo "shared_sub: $(xh mount tmpfs /shr/sub tmpfs 0 -)"
echo "make_shared2: $(xh mount none /shr2 - shared,rec -)"
echo "shared_sub2: $(xh mount tmpfs /shr2/sub tmpfs 0 -)"
echo "sys_remount: $(xh mount none /sys - remount -)"
echo "sys_new: $(xh mount sysfs /tmp/s sysfs 0 -)"
echo "sys_write: $(xh write {thp} never)"
"#
            );
            let p = Probe::new(setup, caps, &script, |s| {
                let m = s["mounts"].as_array_mut().unwrap();
                m.push(json!({"destination": "/rovol", "type": "bind",
                    "source": rovol, "options": ["rbind", "ro"]}));
                m.push(json!({"destination": "/shr", "type": "bind",
                    "source": shared.dir, "options": ["rbind", "rshared"]}));
                let ids = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
                m.push(json!({"destination": "/shr2", "type": "bind",
                    "source": shared2.dir, "options": ["rbind", "rshared"],
                    "uidMappings": ids, "gidMappings": ids}));
            });
            let a = p.run();
            match caps {
                Caps::Default => {
                    // No CAP_SYS_ADMIN in the container's user namespace.
                    for l in [
                        "proc",
                        "tmpfs_root",
                        "ro_remount",
                        "pid1root",
                        "make_shared",
                        "shared_sub",
                        "make_shared2",
                        "shared_sub2",
                        "sys_remount",
                        "sys_new",
                    ] {
                        a.expect(l, &["mount EPERM"]);
                    }
                    a.expect("proc_core", &["open ENOENT"]);
                    // The owner check comes first; the world-writable
                    // file shows the mount stayed read-only.
                    a.expect("ro_write", &["open EACCES"]);
                    a.expect("ro_write_w", &["open EROFS"]);
                    assert_eq!(fs::read_to_string(rovol.join("w")).unwrap(), "host\n");
                    a.expect("sys_write", &["open EROFS"]);
                }
                Caps::All => {
                    // CAP_SYS_ADMIN over its own user namespace: mounts in
                    // its own mount namespace are allowed (as in runc)...
                    for l in [
                        "proc",
                        "tmpfs_root",
                        "pid1root",
                        "make_shared",
                        "shared_sub",
                        "make_shared2",
                        "shared_sub2",
                    ] {
                        a.expect(l, &["mount ok 0"]);
                    }
                    // ...even making its own copy of a read-only bind
                    // writable: the host's owners still hold.
                    // (A world-writable file there is writable then: see
                    // the module doc.)
                    a.expect("ro_remount", &["mount ok 0"]);
                    a.expect("ro_write", &["open EACCES"]);
                    // A fresh proc is still the host kernel's sysctls.
                    a.expect("proc_core", &["open EACCES"]);
                    // sysfs belongs to the netns, but the mount is locked.
                    a.expect("sys_remount", &["mount EPERM"]);
                    a.expect("sys_new", &["mount EPERM"]);
                    a.expect("sys_write", &["open EROFS"]);
                }
            }
            // /proc/1 is the container's own init: its root is the rootfs.
            a.expect("pid1root_marker", &["absent"]);
            a.expect("pid1root_direct", &["absent"]);
            // The host: its mounts, the read-only volume, sysfs, and no
            // propagation out of the shared mount.
            let after = (host_mounts(&tok), host_value(thp));
            assert_eq!(before, after, "the host changed: {}", a.ctx);
            assert_eq!(fs::read_to_string(rovol.join("f")).unwrap(), "host\n");
            assert_eq!(
                mounts_under(&shared.dir),
                vec![shared.dir.to_string_lossy().into_owned()],
                "a container mount propagated to the host: {}",
                a.ctx
            );
            assert_eq!(
                mounts_under(&shared2.dir),
                vec![shared2.dir.to_string_lossy().into_owned()],
                "a container mount propagated to the host through an id-mapped bind: {}",
                a.ctx
            );
            assert_eq!(fs::read_to_string(&marker).unwrap(), "host");
            let _ = fs::remove_file(&marker);
            drop(p);
            drop(shared);
            drop(shared2);
            let _ = fs::remove_dir_all(&rovol);
        }
    }
}

#[test]
fn modules_cannot_be_loaded() {
    require_root();
    // Any bytes do: the capability check comes before the module is read
    // (a garbage module is ENOEXEC for the host's root, EPERM without
    // CAP_SYS_MODULE in the initial user namespace).
    let host = host_xh(&["init_module", xh().to_str().unwrap()]);
    if host == "init_module ENOSYS" {
        skip("this kernel has no module support (init_module is ENOSYS for the host's root)");
        return;
    }
    assert_eq!(host, "init_module ENOEXEC", "the host's own attempt");
    // A real module from the host, bound read-only, when there is one.
    let release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let moddir = PathBuf::from(format!("/lib/modules/{release}"));
    let ko = Command::new("find")
        .arg(&moddir)
        .args(["-name", "*.ko", "-print", "-quit"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    for setup in setups() {
        for caps in CAPS {
            let mut script = String::from(
                "echo \"init: $(xh init_module /bin/xh)\"\necho \"finit: $(xh finit_module /bin/xh)\"\n",
            );
            if let Some(ko) = &ko {
                script.push_str(&format!(
                    "echo \"ko_init: $(xh init_module {ko})\"\necho \"ko_finit: $(xh finit_module {ko})\"\n"
                ));
            }
            let p = Probe::new(setup, caps, &script, |s| {
                if ko.is_some() {
                    s["mounts"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"destination": moddir,
                        "type": "bind", "source": moddir, "options": ["rbind", "ro"]}));
                }
            });
            let a = p.run();
            a.expect("init", &["init_module EPERM"]);
            a.expect("finit", &["finit_module EPERM"]);
            if ko.is_some() {
                a.expect("ko_init", &["init_module EPERM"]);
                a.expect("ko_finit", &["finit_module EPERM"]);
            }
        }
    }
    if ko.is_none() {
        skip("no .ko under /lib/modules of this kernel: probed with a garbage module only");
    }
}

/// What a write to a host sysctl gets: the owner check (global root) comes
/// before the read-only /proc/sys of the default config.
fn sysctl_refusal(_caps: Caps) -> &'static str {
    "open EACCES"
}

#[test]
fn proc_writes_do_not_reach_the_host() {
    require_root();
    let sysctls = [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/modprobe",
        "/proc/sys/vm/drop_caches",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/core/somaxconn",
    ];
    // Said once, not per setup: what this host lacks is only checked absent.
    for path in [
        "/proc/sys/kernel/modprobe",
        "/proc/sysrq-trigger",
        "/proc/kcore",
    ] {
        if !std::path::Path::new(path).exists() {
            skip(&format!("{path} does not exist on this host"));
        }
    }
    for setup in setups() {
        for caps in CAPS {
            let tok = token();
            let before: Vec<_> = sysctls.iter().map(|p| host_value(p)).collect();
            let fwd = if before[3].as_deref() == Some("1\n") {
                "0"
            } else {
                "1"
            };
            let me = std::process::id();
            let script = format!(
                r#"echo "core: $(xh write /proc/sys/kernel/core_pattern '|/pwn-{tok}')"
echo "modprobe: $(test -e /proc/sys/kernel/modprobe && xh write /proc/sys/kernel/modprobe /pwn-{tok} || echo absent)"
echo "sysrq: $(test -e /proc/sysrq-trigger && xh write /proc/sysrq-trigger h || echo absent)"
echo "kcore: $(test -e /proc/kcore && xh read /proc/kcore || echo absent)"
echo "drop: $(xh write /proc/sys/vm/drop_caches 3)"
echo "fwd: $(xh write /proc/sys/net/ipv4/ip_forward {fwd})"
echo "somax: $(xh write /proc/sys/net/core/somaxconn 17)"
echo "exe: $(xh write /proc/self/exe x)"
echo "init_root: $(echo x > /proc/1/root/escape-{tok} && echo wrote || echo refused)"
echo "kill_host: $(xh kill0 {me})"
echo "ptrace_host: $(xh ptrace {me})"
"#
            );
            // No network namespace: /proc/sys/net is the host's.
            let p = Probe::new(setup, caps, &script, |s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "network");
            });
            let a = p.run();
            for l in ["core", "drop", "fwd", "somax"] {
                a.expect(l, &[sysctl_refusal(caps)]);
            }
            for (l, path) in [
                ("modprobe", "/proc/sys/kernel/modprobe"),
                ("sysrq", "/proc/sysrq-trigger"),
            ] {
                if std::path::Path::new(path).exists() {
                    a.expect(l, &[sysctl_refusal(caps)]);
                } else {
                    a.expect(l, &["absent"]);
                }
            }
            if std::path::Path::new("/proc/kcore").exists() {
                // Masked (/dev/null over it) by default; root-only 0400 else.
                a.expect(
                    "kcore",
                    &[match caps {
                        Caps::Default => "read ok 0",
                        Caps::All => "open EACCES",
                    }],
                );
            } else {
                a.expect("kcore", &["absent"]);
            }
            a.expect("exe", &["open ETXTBSY"]);
            // /proc/1 is the container's init: its root is the rootfs.
            a.expect("init_root", &["wrote"]);
            assert!(p.b.rootfs().join(format!("escape-{tok}")).exists());
            assert!(!PathBuf::from(format!("/escape-{tok}")).exists());
            // Its own pid namespace: the host's processes are not there.
            a.expect("kill_host", &["kill0 ESRCH"]);
            a.expect("ptrace_host", &["ptrace ESRCH"]);
            let after: Vec<_> = sysctls.iter().map(|p| host_value(p)).collect();
            assert_eq!(before, after, "a host sysctl changed: {}", a.ctx);
        }
    }
}

#[test]
fn host_pid_namespace_and_host_proc() {
    require_root();
    // A hostile config: no pid namespace and the host's /proc bound in.
    for setup in setups() {
        for caps in CAPS {
            let me = std::process::id();
            let core = host_value("/proc/sys/kernel/core_pattern");
            let script = format!(
                r#"echo "kill1: $(xh kill0 1)"
echo "ptrace1: $(xh ptrace 1)"
echo "kill_host: $(xh kill0 {me})"
echo "ptrace_host: $(xh ptrace {me})"
echo "root1: $(xh read /proc/1/root/etc/hostname)"
echo "environ1: $(xh read /proc/1/environ)"
echo "mem_host: $(xh read /proc/{me}/mem)"
echo "exe_host: $(xh write /proc/{me}/exe x)"
echo "core: $(xh write /proc/sys/kernel/core_pattern '|/pwn')"
"#
            );
            let p = Probe::new(setup, caps, &script, |s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "pid");
                for m in s["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == "/proc" {
                        *m = json!({"destination": "/proc", "type": "bind",
                            "source": "/proc", "options": ["rbind"]});
                    }
                }
            });
            let a = p.run();
            for l in ["kill1", "kill_host"] {
                a.expect(l, &["kill0 EPERM"]);
            }
            for l in ["ptrace1", "ptrace_host"] {
                a.expect(l, &["ptrace EPERM"]);
            }
            for l in ["root1", "environ1", "mem_host", "exe_host"] {
                a.expect(l, &["open EACCES"]);
            }
            a.expect("core", &[sysctl_refusal(caps)]);
            assert_eq!(host_value("/proc/sys/kernel/core_pattern"), core);
        }
    }
}

/// The host's root disk: its /dev node and major:minor.
fn host_disk() -> (PathBuf, String) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dev = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .to_string();
    let uevent = fs::read_to_string(format!("/sys/dev/block/{dev}/uevent")).unwrap();
    let name = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .unwrap();
    (PathBuf::from(format!("/dev/{name}")), dev)
}

#[test]
fn device_nodes_of_the_host_stay_closed() {
    require_root();
    let (disk, majmin) = host_disk();
    let (maj, min) = majmin.split_once(':').unwrap();
    let kvm = PathBuf::from("/dev/kvm");
    for setup in setups() {
        for caps in CAPS {
            let script = format!(
                r#"echo "mknod_disk: $(xh mknod /tmp/disk {maj} {min} | head -1)"
echo "bound_disk: $(xh read /hostdisk)"
echo "kvm: $(test -e /hostkvm && xh read /hostkvm || echo absent)"
"#
            );
            let p = Probe::new(setup, caps, &script, |s| {
                // A hostile config binds the host's nodes in.
                let m = s["mounts"].as_array_mut().unwrap();
                m.push(json!({"destination": "/hostdisk", "type": "bind",
                    "source": disk, "options": ["bind"]}));
                if kvm.exists() {
                    m.push(json!({"destination": "/hostkvm", "type": "bind",
                        "source": kvm, "options": ["bind"]}));
                }
            });
            let a = p.run();
            a.expect("mknod_disk", &["mknod EPERM"]);
            a.expect("bound_disk", &["open EACCES"]);
            if kvm.exists() {
                a.expect("kvm", &["open EACCES"]);
            } else {
                a.expect("kvm", &["absent"]);
                skip("no /dev/kvm on this host");
            }
        }
    }
}

#[test]
fn keyrings_file_handles_and_nested_namespaces() {
    require_root();
    for setup in setups() {
        for caps in CAPS {
            let tok = token();
            let before = host_mounts(&tok);
            let script = format!(
                r#"read KEY RING < /hostkey
echo "keyread: $(xh keyread $KEY)"
echo "session: $(xh keysession)"
echo "join: $(xh keyjoin vessel-escape-{tok})"
xh handle / | sed 's/ /: /'
mkdir -p /tmp/n-{tok}
echo "nested: $(unshare -U -m -r sh -c 'xh mount tmpfs /tmp/n-{tok} tmpfs 0 -' 2>&1)"
"#
            );
            let p = Probe::new(setup, caps, &script, |_| {});
            let keyfile = p.b.rootfs().join("hostkey");
            let hook = format!(
                "echo \"$XH_KEY $XH_RING\" > {} && exec \"$0\" \"$@\"",
                keyfile.display()
            );
            let xhp = xh();
            let ring_name = format!("vessel-escape-{tok}");
            let a = p.run_wrapped(&[
                xhp.to_str().unwrap(),
                "hostkey",
                &ring_name,
                "secret",
                "sh",
                "-c",
                &hook,
            ]);
            let host_ring = fs::read_to_string(&keyfile)
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string();
            match caps {
                Caps::Default => {
                    // The default seccomp profile refuses keyctl; without
                    // CAP_SYS_ADMIN, no nested user namespace either.
                    a.expect("keyread", &["keyread EPERM"]);
                    a.expect("session", &["keysession EPERM"]);
                    a.expect("join", &["keyjoin EPERM"]);
                    a.expect("open_by_handle_at_dir", &["EPERM"]);
                    a.expect(
                        "nested",
                        &["unshare: unshare(0x10020000): Operation not permitted"],
                    );
                }
                Caps::All => {
                    // Not a possessor of the host's session keyring, and
                    // not its owner: the key stays unreadable; its own
                    // session keyring, and a keyring name of the host's
                    // means another keyring in its user namespace.
                    a.expect("keyread", &["keyread EACCES"]);
                    for l in ["session", "join"] {
                        let got = a.get(l);
                        assert!(got.starts_with(&format!("key{l} ok ")), "{l}: {}", a.ctx);
                        assert_ne!(
                            got.rsplit(' ').next(),
                            Some(host_ring.as_str()),
                            "{l}: {}",
                            a.ctx
                        );
                    }
                    // The subtree check of Linux 6.10+ (ESTALE), EPERM before.
                    a.expect("open_by_handle_at_dir", &["ESTALE", "EPERM"]);
                    a.expect("nested", &["mount ok 0"]);
                }
            }
            a.expect("name_to_handle_at", &["ok 0"]);
            // Shocker: CAP_DAC_READ_SEARCH in the initial user namespace.
            a.expect("open_by_handle_at", &["EPERM"]);
            assert_eq!(
                before,
                host_mounts(&tok),
                "the host's mounts changed: {}",
                a.ctx
            );
        }
    }
}
