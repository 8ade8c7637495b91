//! A private id range per tenant (container::tenant_ids): a container run
//! directly, with no user namespace in its config, gets 65536 host ids of
//! its own from user `vessel`'s subordinate ids, with an id-mapped rootfs;
//! the range is never shared by two live containers and is given back at
//! delete. Each test uses its own subuid/subgid files and registry (env),
//! never the host's.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const RANGE: u32 = 65536;
const BASE: u32 = 2_000_000;

/// Subordinate ids for `vessel` (`blocks` ranges from BASE) and a registry.
struct Tenants {
    dir: PathBuf,
}

impl Tenants {
    fn new(blocks: u32) -> Tenants {
        let dir = scratch_dir().join(unique_id("tenants"));
        std::fs::create_dir_all(&dir).unwrap();
        let line = if blocks == 0 {
            "someone:100000:65536\n".to_string()
        } else {
            format!("someone:100000:65536\nvessel:{BASE}:{}\n", blocks * RANGE)
        };
        std::fs::write(dir.join("subuid"), &line).unwrap();
        std::fs::write(dir.join("subgid"), &line).unwrap();
        Tenants { dir }
    }

    fn registry(&self) -> PathBuf {
        self.dir.join("registry")
    }

    /// The blocks the registry holds now.
    fn held(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.registry())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// vessel as a person runs it: text logs (no engine), our subid files.
    fn cmd(&self, rt: &Runtime, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&rt.root).arg("--log").arg(&rt.log);
        c.args(args);
        c.env("VESSEL_SUBUID_FILE", self.dir.join("subuid"))
            .env("VESSEL_SUBGID_FILE", self.dir.join("subgid"))
            .env("VESSEL_TENANT_REGISTRY", self.registry())
            .env_remove("VESSEL_TENANT_USERNS")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, rt: &Runtime, args: &[&str]) -> Output {
        run_with_timeout(self.cmd(rt, args), Duration::from_secs(60))
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bundle whose workload reports its uid map and the rootfs owner, then
/// writes a file into the rootfs.
fn reporting_bundle() -> Bundle {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo map=$(cat /proc/self/uid_map); echo root_owner=$(stat -c %u:%g /bin/busybox); \
         touch /written && echo wrote",
    ]);
    b.spec["root"]["readonly"] = json!(false);
    b.write();
    b
}

fn uid_map_line(out: &str) -> Vec<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix("map="))
        .unwrap_or_else(|| panic!("no map= line in {out}"))
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

fn text(o: &Output) -> (i32, String, String) {
    triple(o)
}

#[test]
fn a_direct_run_gets_a_private_range_and_an_id_mapped_rootfs() {
    require_root();
    let rt = Runtime::new();
    let t = Tenants::new(4);
    let b = reporting_bundle();
    let id = unique_id("tenant");
    let (code, out, err) = text(&t.run(&rt, &["run", "--bundle", b.dir.to_str().unwrap(), &id]));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let map = uid_map_line(&out);
    assert_eq!(map[0], 0, "{map:?}");
    assert_eq!(map[2], u64::from(RANGE), "{map:?}");
    let host = map[1];
    assert!(
        host >= u64::from(BASE) && host + u64::from(RANGE) <= u64::from(BASE + 4 * RANGE),
        "range {host} is not one of vessel's subordinate ids"
    );
    assert!(
        out.contains("root_owner=0:0"),
        "the root-owned image must look root-owned inside: {out}"
    );
    assert!(
        out.contains("wrote"),
        "the container's root could not write its rootfs: {out}"
    );
    let written = b.rootfs().join("written");
    let m = std::fs::metadata(&written).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "writes land as the image's owner on disk"
    );
    // A foreground run deletes its container when the workload ends.
    assert!(
        t.held().is_empty(),
        "the ended run gave its range back: {:?}",
        t.held()
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn engines_and_opt_outs_keep_the_host_ids() {
    require_root();
    let rt = Runtime::new();
    let t = Tenants::new(4);
    let b = reporting_bundle();
    let full = ["0", "0", "4294967295"];
    let check = |label: &str, out: &str| {
        let map = uid_map_line(out);
        assert_eq!(
            map,
            full.iter()
                .map(|s| s.parse::<u64>().unwrap())
                .collect::<Vec<_>>(),
            "{label}: {out}"
        );
    };
    // --log-format json: how containerd and Podman call every runtime.
    let id = unique_id("engine");
    let mut c = t.cmd(
        &rt,
        &[
            "--log-format",
            "json",
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            &id,
        ],
    );
    let (code, out, err) = text(&run_with_timeout(
        {
            c.stdin(Stdio::null());
            c
        },
        Duration::from_secs(60),
    ));
    assert_eq!(code, 0, "{err}");
    check("engine", &out);
    t.run(&rt, &["delete", "-f", &id]);
    // The operator's switch.
    let id = unique_id("off");
    let mut c = t.cmd(&rt, &["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    c.env("VESSEL_TENANT_USERNS", "off");
    let (code, out, err) = text(&run_with_timeout(c, Duration::from_secs(60)));
    assert_eq!(code, 0, "{err}");
    check("VESSEL_TENANT_USERNS=off", &out);
    t.run(&rt, &["delete", "-f", &id]);
    // The config's switch.
    let mut b2 = reporting_bundle();
    b2.spec["annotations"] = json!({"vessel.userns": "host"});
    b2.write();
    let id = unique_id("host");
    let (code, out, err) = text(&t.run(&rt, &["run", "--bundle", b2.dir.to_str().unwrap(), &id]));
    assert_eq!(code, 0, "{err}");
    check("vessel.userns=host", &out);
    t.run(&rt, &["delete", "-f", &id]);
    assert!(t.held().is_empty(), "{:?}", t.held());
}

#[test]
fn asking_without_subordinate_ids_fails_cleanly() {
    require_root();
    let rt = Runtime::new();
    let t = Tenants::new(0);
    let mut b = reporting_bundle();
    b.spec["annotations"] = json!({"vessel.userns": "auto"});
    b.write();
    let id = unique_id("nosubid");
    let (code, _, err) = text(&t.run(&rt, &["create", "--bundle", b.dir.to_str().unwrap(), &id]));
    assert_ne!(code, 0, "create without subordinate ids succeeded");
    assert!(
        err.contains("vessel") && err.contains("/etc/subuid"),
        "stderr: {err}"
    );
    assert_nothing_left(&rt, &id, &b);
    // The direct default, by contrast, falls back to the host's ids.
    let b = reporting_bundle();
    let (code, out, err) = text(&t.run(
        &rt,
        &[
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            &unique_id("fallback"),
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(uid_map_line(&out), vec![0, 0, 4_294_967_295]);
}

#[test]
fn parallel_creates_get_disjoint_ranges_that_come_back() {
    require_root();
    let rt = Runtime::new();
    let t = Tenants::new(24);
    let b = Bundle::new(&["sleep", "1000"]);
    let n = 20;
    let ids: Vec<String> = (0..n).map(|i| unique_id(&format!("par{i}"))).collect();
    std::thread::scope(|s| {
        for id in &ids {
            let (t, rt, b) = (&t, &rt, &b);
            s.spawn(move || {
                let (code, _, err) =
                    text(&t.run(rt, &["create", "--bundle", b.dir.to_str().unwrap(), id]));
                assert_eq!(code, 0, "create {id}: {err}");
            });
        }
    });
    let mut firsts = Vec::new();
    for id in &ids {
        let state: Value =
            serde_json::from_slice(&t.run(&rt, &["state", id]).stdout).expect("state JSON");
        let pid = state["pid"].as_i64().unwrap();
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        let host: u32 = map.split_whitespace().nth(1).unwrap().parse().unwrap();
        firsts.push(host);
    }
    let mut sorted = firsts.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "two containers share a range: {firsts:?}");
    assert_eq!(t.held().len(), n);
    for id in &ids {
        t.run(&rt, &["delete", "-f", id]);
    }
    assert!(t.held().is_empty(), "{:?}", t.held());
    // Freed ranges are handed out again: the first block first.
    let id = unique_id("again");
    let (code, _, err) = text(&t.run(&rt, &["create", "--bundle", b.dir.to_str().unwrap(), &id]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.held(), vec![BASE.to_string()]);
    t.run(&rt, &["delete", "-f", &id]);
}

#[test]
fn two_tenants_roots_cannot_read_each_others_files() {
    require_root();
    let rt = Runtime::new();
    let t = Tenants::new(4);
    // A volume both tenants share (a careless operator's, say): world-writable.
    let shared = scratch_dir().join(unique_id("shared"));
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let with_volume = |script: &str| {
        let mut b = Bundle::new(&["sh", "-c", script]);
        b.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/shared", "type": "bind", "source": shared, "options": ["rbind"]
        }));
        b.write();
        std::fs::create_dir_all(b.rootfs().join("shared")).unwrap();
        b
    };
    // A stays alive while B runs: live containers never share a range.
    let a = with_volume("umask 077; echo secret > /shared/a-secret; exec sleep 1000");
    let a_id = unique_id("a");
    let (code, out, err) = text(&t.run(
        &rt,
        &["run", "-d", "--bundle", a.dir.to_str().unwrap(), &a_id],
    ));
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        wait_for(Duration::from_secs(10), || shared.join("a-secret").exists()),
        "tenant A did not write its file"
    );
    let owner = std::fs::metadata(shared.join("a-secret")).unwrap().uid();
    assert!(owner >= BASE, "tenant A's root wrote as host uid {owner}");
    // B is root in its own container too, but another host uid.
    let b = with_volume(
        "cat /shared/a-secret 2>&1 && echo b-read; rm -f /shared/a-secret 2>&1 || echo b-no-rm",
    );
    let (_, out, err) = text(&t.run(
        &rt,
        &["run", "--bundle", b.dir.to_str().unwrap(), &unique_id("b")],
    ));
    assert!(
        !out.contains("b-read") && !out.contains("secret\n"),
        "B read A's file: {out} {err}"
    );
    assert!(
        shared.join("a-secret").exists(),
        "B removed A's file: {out}"
    );
    t.run(&rt, &["delete", "-f", &a_id]);
    let _ = std::fs::remove_dir_all(&shared);
    assert!(
        t.held().is_empty(),
        "foreground runs give their ranges back: {:?}",
        t.held()
    );
}

#[test]
fn a_bundle_in_a_private_directory_still_runs() {
    require_root();
    let rt = Runtime::new();
    let t = Tenants::new(4);
    // /root/bundle, say: the container's root is an unprivileged host uid
    // that cannot search the 0700 directory above the rootfs.
    let private = scratch_dir().join(unique_id("private"));
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut b = reporting_bundle();
    let moved = private.join("bundle");
    std::fs::rename(&b.dir, &moved).unwrap();
    b.dir = moved;
    let (code, out, err) = text(&t.run(
        &rt,
        &[
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            &unique_id("private"),
        ],
    ));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_ne!(
        uid_map_line(&out)[1],
        0,
        "it did not get a tenant range: {out}"
    );
    assert!(out.contains("wrote"), "{out}");
    drop(b);
    let _ = std::fs::remove_dir_all(&private);
}
