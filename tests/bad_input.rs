//! Bad input to `create` (and the CLI): each case must fail with a non-zero
//! exit, a clear message on stderr, a JSON error line in --log, and leave
//! nothing behind (state dir, cgroup, mounts, processes). Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test bad_input` runs
//! the same checks against runc.

mod common;

use common::*;
use serde_json::json;

/// Create `b` as `id`; assert it failed cleanly with `needle` in stderr
/// (any of `needles` for runc, whose wording differs).
fn create_fails(b: &Bundle, id: &str, needles: &[&str], extra: &[&str]) {
    let rt = Runtime::new();
    let (code, out, err) = triple(&rt.create(b, id, extra));
    assert_ne!(code, 0, "create succeeded\nstdout: {out}\nstderr: {err}");
    let lower = err.to_lowercase();
    assert!(
        needles.iter().any(|n| lower.contains(&n.to_lowercase())),
        "stderr lacks any of {needles:?}: {err}"
    );
    let errors = rt.log_errors();
    assert!(
        !errors.is_empty(),
        "no JSON error line in the log: {:?}",
        rt.log_text()
    );
    if id_is_plain(id) {
        assert_nothing_left(&rt, id, b);
    } else {
        // A bad id names no directory; the root must hold nothing at all.
        let left: Vec<_> = std::fs::read_dir(&rt.root).unwrap().flatten().collect();
        assert!(left.is_empty(), "left in root: {left:?}");
        assert!(procs_in(&b.rootfs()).is_empty());
        assert!(mounts_under(&b.dir).is_empty());
    }
}

fn id_is_plain(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[test]
fn malformed_config_json() {
    require_root();
    let b = Bundle::new(&["true"]);
    std::fs::write(
        b.dir.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    create_fails(
        &b,
        &unique_id("badjson"),
        &["config.json", "parse", "json"],
        &[],
    );
}

#[test]
fn config_with_wrong_types() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["process"]["args"] = json!("not-a-list");
    b.write();
    create_fails(
        &b,
        &unique_id("badtype"),
        &["config.json", "args", "parse"],
        &[],
    );
}

#[test]
fn missing_config_json() {
    require_root();
    let b = Bundle::new(&["true"]);
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    create_fails(&b, &unique_id("nocfg"), &["config.json"], &[]);
}

/// A tenant's config.json that is a FIFO, or a link to /dev/zero, must
/// neither hang nor bloat the runtime.
#[test]
fn config_json_that_is_not_a_regular_file() {
    require_root();
    let b = Bundle::new(&["true"]);
    let cfg = b.dir.join("config.json");
    // The FIFO first: a runtime that reads it hangs (and the harness's
    // timeout fails the test) before it could be fed /dev/zero.
    std::fs::remove_file(&cfg).unwrap();
    nix::unistd::mkfifo(&cfg, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    create_fails(&b, &unique_id("fifocfg"), &["config.json"], &[]);
    std::fs::remove_file(&cfg).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &cfg).unwrap();
    create_fails(&b, &unique_id("zerocfg"), &["config.json"], &[]);
}

#[test]
fn missing_rootfs() {
    require_root();
    let b = Bundle::new(&["true"]);
    std::fs::remove_dir_all(b.rootfs()).unwrap();
    create_fails(&b, &unique_id("noroot"), &["rootfs", "no such file"], &[]);
}

#[test]
fn relative_mount_destination() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"
    }));
    b.write();
    create_fails(&b, &unique_id("relmnt"), &["relative/dir", "absolute"], &[]);
}

#[test]
fn dotdot_mount_destination() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp/../../escape", "type": "tmpfs", "source": "tmpfs"
    }));
    b.write();
    let id = unique_id("dotdot");
    let rt = Runtime::new();
    let out = rt.create(&b, &id, &[]);
    if !is_vessel() && out.status.success() {
        // runc resolves ".." inside the rootfs and accepts it.
        eprintln!("NOTE: runc accepts a \"..\" mount destination (scoped to the rootfs)");
        rt.ok(&["delete", "-f", &id]);
        return;
    }
    drop(rt);
    create_fails(&b, &unique_id("dotdot"), &[".."], &[]);
    // Nothing was mounted or created outside the rootfs.
    assert!(!b.dir.join("escape").exists());
}

#[test]
fn unknown_namespace_type() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    b.write();
    create_fails(&b, &unique_id("badns"), &["bogus", "namespace"], &[]);
}

#[test]
fn duplicate_namespace() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network"}));
    b.write();
    create_fails(
        &b,
        &unique_id("dupns"),
        &["twice", "duplicate", "network"],
        &[],
    );
}

#[test]
fn bad_container_ids() {
    require_root();
    let b = Bundle::new(&["true"]);
    for id in ["../x", "a/b", "", "..", "with space"] {
        create_fails(&b, id, &["invalid", "id"], &[]);
    }
}

#[test]
fn duplicate_id() {
    require_root();
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("dupid");
    rt.create_ok(&b, &id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0);
    // runc 1.1.5 words it "container with given ID already exists".
    let want = if is_vessel() {
        "container with id exists"
    } else {
        "already exists"
    };
    assert!(err.contains(want), "stderr: {err}");
    assert!(!rt.log_errors().is_empty());
    assert!(pid_alive(pid), "the first container was harmed");
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn bad_flags_and_unknown_subcommand() {
    require_root();
    let rt = Runtime::new();
    let (code, _, err) = triple(&rt.run(&["create", "--no-such-flag", "x"]));
    assert_ne!(code, 0);
    assert!(err.contains("no-such-flag"), "stderr: {err}");
    assert!(!rt.log_errors().is_empty(), "log: {}", rt.log_text());

    let rt2 = Runtime::new();
    let (code, _, err) = triple(&rt2.run(&["frobnicate"]));
    assert_ne!(code, 0);
    assert!(err.contains("frobnicate"), "stderr: {err}");
    assert!(!rt2.log_errors().is_empty(), "log: {}", rt2.log_text());

    let rt3 = Runtime::new();
    let (code, _, err) = triple(&rt3.run(&["kill"]));
    assert_ne!(code, 0, "kill without an id succeeded");
    assert!(!err.is_empty());
}

#[test]
fn executable_not_found() {
    require_root();
    let b = Bundle::new(&["no-such-binary-here", "arg"]);
    create_fails(&b, &unique_id("noexe"), &["executable file not found"], &[]);
}

#[test]
fn executable_path_not_found() {
    require_root();
    let b = Bundle::new(&["/bin/no-such-binary"]);
    create_fails(
        &b,
        &unique_id("noexe2"),
        &["no such file", "not found"],
        &[],
    );
}

#[test]
fn cgroups_path_with_dotdot() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["linux"]["cgroupsPath"] = json!("/vessel/../../escape");
    b.write();
    let id = unique_id("cgdotdot");
    let rt = Runtime::new();
    let out = rt.create(&b, &id, &[]);
    if !is_vessel() && out.status.success() {
        // runc cleans the path lexically (securejoin) and accepts it.
        eprintln!("NOTE: runc accepts a cgroupsPath with \"..\" (cleaned lexically)");
        rt.ok(&["delete", "-f", &id]);
        return;
    }
    drop(rt);
    create_fails(&b, &unique_id("cgdotdot"), &[".."], &[]);
    assert!(
        cgroup_dirs_at("escape").is_empty(),
        "{:?}",
        cgroup_dirs_at("escape")
    );
}

#[test]
fn bad_rlimit_name() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
    b.write();
    create_fails(&b, &unique_id("badrlim"), &["RLIMIT_BOGUS", "rlimit"], &[]);
}

#[test]
fn terminal_without_console_socket() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    create_fails(
        &b,
        &unique_id("noconsole"),
        &["console-socket", "console socket"],
        &[],
    );
}

#[test]
fn console_socket_that_does_not_exist() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    let sock = scratch_dir().join(unique_id("nosock"));
    create_fails(
        &b,
        &unique_id("badsock"),
        &["console", "no such file"],
        &["--console-socket", sock.to_str().unwrap()],
    );
}

#[test]
fn failing_mount_cleans_up() {
    require_root();
    // The error happens late, inside the init (after namespaces, cgroup and
    // some mounts exist): all of it must still be undone.
    let mut b = Bundle::new(&["true"]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/bad", "type": "nosuchfs", "source": "none"
    }));
    b.write();
    create_fails(
        &b,
        &unique_id("badfs"),
        &["nosuchfs", "no such device", "mount"],
        &[],
    );
}

#[test]
fn missing_bind_source() {
    require_root();
    let mut b = Bundle::new(&["true"]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt/x", "type": "bind", "source": "/no/such/source", "options": ["rbind"]
    }));
    b.write();
    create_fails(&b, &unique_id("nosrc"), &["/no/such/source"], &[]);
}
