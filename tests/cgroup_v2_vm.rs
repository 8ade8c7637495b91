//! Container mode on a pure cgroup v2 host.
//!
//! Hosts differ: this one may be v1 or hybrid, most real ones are pure v2.
//! With `VESSEL_V2_TESTS=1` this boots a throw-away VM whose only cgroup
//! mount is cgroup2 at /sys/fs/cgroup (rootfs-tools/nested-vm.sh), copies in
//! the vessel binary, a few integration test binaries and the cgroups unit
//! tests, and runs rootfs-tools/v2-tests.sh there: a direct check of
//! memory.max, pids.max, cpu.max, cgroup.freeze and cleanup; the rootless
//! set-up (the test user, its subordinate ids, a cgroup delegated to it as
//! systemd's user@UID.service; the host's setpriv, newuidmap and newgidmap
//! copied in); then each test binary with --test-threads=1, their scratch
//! on an ext4 loop device (tmpfs has no id-mapped mounts before Linux 6.3).
//! About 10 minutes on the dev host (2 cores, 620 s measured with another
//! nested VM running for part of it): the direct check about 20 s, rootless
//! 47 s, idmap 14 s, tenant_ids 42 s, the other suites about 8 minutes
//! (lifecycle, config, exec and hostile_cgroups over a minute each).
//!
//! The test binaries find vessel through CARGO_BIN_EXE_vessel and the repo
//! through CARGO_MANIFEST_DIR, both absolute paths baked in at compile time,
//! so vessel, rootfs-tools/ and runtime-spec/ go to the same paths in the VM.
//!
//! `VESSEL_V2_SUITES=lifecycle,cgroups,lib` picks other suites ("lib" is the
//! library's unit tests filtered to `cgroups::`). The suites are the newest
//! `<name>-<hash>` executables next to this one: `cargo test` builds them all
//! before running any; after `cargo test --test cgroup_v2_vm` alone they may
//! predate your last change (run `cargo test --no-run` first).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// The suites run in the VM when they exist in this build, with their
/// arguments: every suite that runs containers on the host kernel (not the
/// e2e ones, which need Podman and containerd, nor the VM-mode ones),
/// rootless ones included (its delegated-cgroup tests run only here).
const DEFAULT_SUITES: &[(&str, &[&str])] = &[
    ("lib", &["cgroups::"]),
    ("cgroups", &[]),
    ("lifecycle", &[]),
    ("config", &[]),
    ("exec", &[]),
    ("manage", &[]),
    ("bad_input", &[]),
    ("hooks", &[]),
    ("terminal", &[]),
    ("seccomp", &[]),
    ("cve", &[]),
    ("hostile_cgroups", &[]),
    ("rootless", &[]),
    ("idmap", &[]),
    ("tenant_ids", &[]),
];

/// The library's unit tests are in a `vessel-<hash>` binary like the main
/// binary's; the one listing `cgroups::` tests is the library's.
const LIB_SUITE: &str = "lib";

/// Is `name` a cargo output name `<stem>-<16 hex digits>` (no extension)?
fn hashed_name_of<'a>(name: &'a str, stem: &str) -> Option<&'a str> {
    let hash = name.strip_prefix(stem)?.strip_prefix('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// Executables `deps/<stem>-<hash>`, newest first.
fn candidates(deps: &Path, stem: &str) -> Vec<PathBuf> {
    let mut found: Vec<(SystemTime, PathBuf)> = fs::read_dir(deps)
        .unwrap_or_else(|e| panic!("read {}: {e}", deps.display()))
        .flatten()
        .filter(|e| hashed_name_of(&e.file_name().to_string_lossy(), stem).is_some())
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let runnable = m.is_file() && m.mode() & 0o111 != 0;
            runnable.then_some((m.modified().ok()?, e.path()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The newest test binary of integration suite `name`, if this build has it.
fn suite_binary(deps: &Path, name: &str) -> Option<PathBuf> {
    candidates(deps, name).into_iter().next()
}

/// libvessel's unit-test binary (`libvessel-<hash>`) that lists tests
/// under `cgroups::`.
fn lib_test_binary(deps: &Path) -> Option<PathBuf> {
    candidates(deps, "libvessel").into_iter().find(|p| {
        Command::new(p)
            .args(["--list", "--format", "terse"])
            .output()
            .map(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l.starts_with("cgroups::"))
            })
            .unwrap_or(false)
    })
}

/// The suites to run: VESSEL_V2_SUITES (comma-separated names; default
/// arguments kept for known ones) or DEFAULT_SUITES.
fn chosen_suites() -> Vec<(String, Vec<String>)> {
    let defaults = |name: &str| -> Vec<String> {
        DEFAULT_SUITES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default()
    };
    match std::env::var("VESSEL_V2_SUITES") {
        Ok(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|n| (n.to_string(), defaults(n)))
            .collect(),
        Err(_) => DEFAULT_SUITES
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect()))
            .collect(),
    }
}

#[test]
fn container_mode_on_cgroup_v2_host() {
    if std::env::var("VESSEL_V2_TESTS").as_deref() != Ok("1") {
        return skip("cgroup v2 tests need VESSEL_V2_TESTS=1 (a nested VM)");
    }
    if !is_vessel() {
        return skip("the nested-VM run copies vessel's own binary; VESSEL_TEST_RUNTIME is set");
    }
    let repo = repo_dir();
    // This binary is deps/cgroup_v2_vm-<hash>: its siblings are the others.
    let me = std::env::current_exe().expect("current_exe");
    let deps = me.parent().expect("deps dir").to_path_buf();

    let dir = scratch_dir().join(unique_id("v2-tests"));
    fs::create_dir_all(dir.join("bin")).unwrap();
    let vessel_in_vm = runtime_bin();
    let vessel_copy = dir.join("vessel");
    strip_copy(&vessel_in_vm, &vessel_copy);

    let mut plan = String::new();
    let mut files: Vec<(PathBuf, String)> = vec![
        (vessel_copy, vessel_in_vm.display().to_string()),
        (
            repo.join("rootfs-tools"),
            repo.join("rootfs-tools").display().to_string(),
        ),
        (
            repo.join("runtime-spec"),
            repo.join("runtime-spec").display().to_string(),
        ),
        (
            repo.join("rootfs-tools/v2-tests.sh"),
            "/v2/v2-tests.sh".to_string(),
        ),
    ];
    // rootfs-tools/mkrootfs.sh is a bash script; the VM has busybox only.
    if let Some(bash) = ["/bin/bash", "/usr/bin/bash"]
        .iter()
        .find(|p| Path::new(p).exists())
    {
        files.push((PathBuf::from(bash), "/bin/bash".to_string()));
    }
    // The rootless suite runs vessel as a user through util-linux's setpriv
    // (busybox's has no --init-groups) and maps subordinate ids with the
    // setuid newuidmap/newgidmap: the host's, when it has them (the suite
    // says SKIPPED for what it cannot run without them).
    for tool in ["setpriv", "newuidmap", "newgidmap"] {
        match ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
        {
            Some(p) => files.push((p, format!("/usr/bin/{tool}"))),
            None => eprintln!("# {tool}: not on this host, not in the VM"),
        }
    }
    for (name, args) in chosen_suites() {
        let bin = if name == LIB_SUITE {
            lib_test_binary(&deps)
        } else {
            suite_binary(&deps, &name)
        };
        let Some(bin) = bin else {
            eprintln!(
                "# suite {name}: not in this build ({}), not run",
                deps.display()
            );
            continue;
        };
        let copy = dir.join("bin").join(&name);
        strip_copy(&bin, &copy);
        let in_vm = format!("/v2/bin/{name}");
        eprintln!("# suite {name}: {} {}", bin.display(), args.join(" "));
        plan.push_str(&format!("{name} {in_vm} {}\n", args.join(" ")));
        files.push((copy, in_vm));
    }
    let plan_file = dir.join("plan");
    fs::write(&plan_file, &plan).unwrap();
    files.push((plan_file, "/v2/plan".to_string()));

    let file_refs: Vec<(&Path, &str)> = files
        .iter()
        .map(|(src, dest)| (src.as_path(), dest.as_str()))
        .collect();
    let mut c = nested_vm(1500, Some(2), &file_refs);
    // The tests' scratch goes on an ext4 loop device: the RAM root is
    // tmpfs, which has no id-mapped mounts before Linux 6.3 (the VM's is
    // 6.1), and the idmap and tenant_ids suites need them.
    c.args(["--module", "drivers/block/loop"]);
    c.arg("--").arg("env");
    c.arg(format!("VESSEL={}", vessel_in_vm.display()));
    c.arg(format!("REPO={}", repo.display()));
    c.args(["sh", "/v2/v2-tests.sh"]);

    let start = Instant::now();
    let out = run_with_timeout(c, Duration::from_secs(1560));
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("cgroup v2 nested VM run took {:.1} s", took.as_secs_f64());
    let _ = fs::remove_dir_all(&dir);

    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL - ") || l.contains(": FAILED"))
        .collect();
    assert!(failed.is_empty(), "under cgroup v2: {failed:#?}");
    assert!(
        stdout.contains("v2-tests: all checks passed"),
        "v2-tests.sh did not finish (nested-vm.sh exit {:?})",
        out.status.code()
    );
    assert!(
        out.status.success(),
        "nested-vm.sh exit {:?}",
        out.status.code()
    );
}

#[test]
fn hashed_names_are_recognised() {
    assert_eq!(
        hashed_name_of("cgroups-0123456789abcdef", "cgroups"),
        Some("0123456789abcdef")
    );
    assert_eq!(
        hashed_name_of("cgroups-0123456789abcdef.d", "cgroups"),
        None
    );
    assert_eq!(
        hashed_name_of("cgroups_v2-0123456789abcdef", "cgroups"),
        None
    );
    assert_eq!(
        hashed_name_of("vessel_agent-0123456789abcdef", "vessel"),
        None
    );
    assert_eq!(hashed_name_of("cgroups-0123", "cgroups"), None);
}
