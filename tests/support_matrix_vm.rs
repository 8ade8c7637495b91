//! The support matrix's `vm` column against the runtime: every row says what
//! VM mode does with the field; a VM-mode `create` of each VM-`rejected`
//! row's example fails naming the field and leaves nothing behind; the
//! examples of rows VM mode applies, vessel's default config and the configs
//! Podman and containerd write get past the field checks (`vm::fields`).
//!
//! The field checks run before the host checks, so on a host where VM mode
//! cannot boot (here /dev/kvm is kvm_pvm) a refused field is still named,
//! and an accepted config fails with the host's message instead.

mod common;

use common::matrix::*;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

const VM_STATUSES: &[&str] = &[
    "supported",
    "host",
    "boundary",
    "ignored",
    "skipped",
    "rejected",
];

/// What check_fields says when it refuses (vm/fields.rs).
const FIELDS_REFUSAL: &str = "VM mode cannot apply";

fn vm_status(e: &Value) -> &str {
    e["vm"]["status"].as_str().unwrap_or("")
}

/// The patch a VM-mode test applies for a row: its VM example, else its own.
fn vm_example(e: &Value) -> Option<&Value> {
    [&e["vm"]["example"], &e["example"]]
        .into_iter()
        .find(|x| !x.is_null())
}

/// Rewrite `b`'s config as `template` patched with `p`, in VM mode (the
/// annotation). One bundle serves many rows: copying the rootfs is slow.
fn write_vm_config(b: &Bundle, template: &Value, p: Option<&Value>) {
    let mut spec = template.clone();
    if let Some(p) = p {
        patch(&mut spec, p);
    }
    patch(&mut spec, &json!({"annotations": {"vessel.sandbox": "vm"}}));
    fs::write(
        b.dir.join("config.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
}

/// Nothing of `id` is left: no state, no cgroup.
fn assert_clean(rt: &Runtime, id: &str, what: &str) {
    let left: Vec<_> = fs::read_dir(&rt.root)
        .map(|d| d.flatten().map(|x| x.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{what}: left behind {left:?}");
    assert!(
        !rt.run(&["state", id]).status.success(),
        "{what}: state still knows {id}"
    );
    assert!(
        cgroup_dirs_of(id).is_empty(),
        "{what}: cgroup left: {:?}",
        cgroup_dirs_of(id)
    );
}

/// VM mode is refused by the host checks here, after the field checks.
fn host_refuses_vm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// A VM-mode create that must get past the field checks: it fails with the
/// kvm_pvm message, naming no refused field, and leaves nothing.
fn assert_past_fields(rt: &Runtime, b: &Bundle, what: &str) {
    let id = unique_id("vmok");
    let (ok, stderr) = create(rt, b, &id);
    assert!(!ok, "{what}: create succeeded on a kvm_pvm host");
    assert!(
        !stderr.contains(FIELDS_REFUSAL),
        "{what}: refused a field: {stderr}"
    );
    assert!(
        stderr.contains("kvm_pvm"),
        "{what}: not the host's refusal: {stderr}"
    );
    assert_clean(rt, &id, what);
}

#[test]
fn every_row_has_a_vm_status() {
    let rows = matrix();
    assert!(rows.len() >= 196, "only {} rows", rows.len());
    for e in &rows {
        let s = vm_status(e);
        assert!(VM_STATUSES.contains(&s), "{}: vm status {s:?}", subject(e));
        if s != "supported" && s != "host" {
            assert!(
                e["vm"]["note"].is_string(),
                "{}: a {s} row needs a note",
                subject(e)
            );
        }
    }
    // Skipped is for what the guest's mounts leave out until virtio-fs.
    for e in rows.iter().filter(|e| vm_status(e) == "skipped") {
        assert!(field(e).starts_with("mounts"), "{} is skipped", subject(e));
    }
}

#[test]
fn vm_rejected_fields_fail_create_and_leave_nothing() {
    if !is_vessel() {
        return skip("the support matrix is vessel's own");
    }
    let b = Bundle::new(&["true"]);
    let mut tested = 0;
    for e in matrix().iter().filter(|e| vm_status(e) == "rejected") {
        let Some(example) = vm_example(e) else {
            continue;
        };
        let rt = Runtime::new();
        write_vm_config(&b, &b.spec, Some(example));
        let id = unique_id("vmrej");
        let (ok, stderr) = create(&rt, &b, &id);
        let name = subject(e);
        assert!(!ok, "{name}: VM-mode create succeeded");
        assert!(
            stderr.contains(&name),
            "{name}: error does not name the field: {stderr}"
        );
        assert!(!stderr.contains("kvm_pvm"), "{name}: host checks first");
        assert!(logged_error(&rt, &name), "{name}: no error in --log");
        assert_clean(&rt, &id, &name);
        tested += 1;
    }
    assert!(
        tested >= 15,
        "only {tested} VM-rejected rows have an example"
    );
}

#[test]
fn vm_applied_fields_get_past_the_field_checks() {
    if !is_vessel() {
        return skip("the support matrix is vessel's own");
    }
    if !host_refuses_vm() {
        return skip("needs a host whose VM-mode create stops at the host checks (kvm_pvm)");
    }
    let b = Bundle::new(&["true"]);
    let mut tested = 0;
    for e in matrix() {
        let example = match vm_status(&e) {
            "rejected" => continue,
            // Ignored rows: their example, warned as in container mode.
            "ignored" => vm_example(&e),
            _ => e["vm"]["example"].as_object().map(|_| &e["vm"]["example"]),
        };
        let Some(example) = example else {
            continue;
        };
        let rt = Runtime::new();
        write_vm_config(&b, &b.spec, Some(example));
        assert_past_fields(&rt, &b, &subject(&e));
        if vm_status(&e) == "ignored" {
            assert!(
                logged(&rt, "warning", &[&subject(&e), "ignored"]),
                "{}: no warning in --log: {}",
                subject(&e),
                rt.log_text()
            );
        }
        tested += 1;
    }
    assert!(tested >= 20, "only {tested} rows tested");
}

#[test]
fn vessel_spec_config_gets_past_the_field_checks() {
    if !is_vessel() || !host_refuses_vm() {
        return skip("vessel on a kvm_pvm host");
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    fs::remove_file(b.dir.join("config.json")).unwrap();
    let out = rt.cmd(&["spec"]).current_dir(&b.dir).output().unwrap();
    assert!(out.status.success(), "vessel spec: {out:?}");
    b.spec = serde_json::from_slice(&fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    // No console socket here; the terminal is checked after the fields.
    b.spec["process"]["terminal"] = json!(false);
    b.spec["annotations"] = json!({"vessel.sandbox": "vm"});
    b.write();
    assert_past_fields(&rt, &b, "vessel spec");
}

/// An engine's config (tests/engine-configs) as a VM-mode bundle.
fn engine_bundle(name: &str, extra: Value) -> Bundle {
    let mut b = Bundle::new(&["true"]);
    let text = fs::read_to_string(repo_dir().join("tests/engine-configs").join(name)).unwrap();
    let text = text
        .replace("@BUNDLE@", b.dir.to_str().unwrap())
        .replace("@ID@", &unique_id("engine"));
    b.spec = serde_json::from_str(&text).unwrap();
    for f in ["hosts", "shm", ".containerenv", "hostname"] {
        fs::write(b.dir.join(f), "").unwrap();
    }
    patch(&mut b.spec, &extra);
    patch(
        &mut b.spec,
        &json!({"annotations": {"vessel.sandbox": "vm"}}),
    );
    b.write();
    b
}

#[test]
fn engine_configs_get_past_the_field_checks() {
    if !is_vessel() || !host_refuses_vm() {
        return skip("vessel on a kvm_pvm host");
    }
    let rt = Runtime::new();
    for (name, extra) in [
        ("podman-4.3.json", json!({})),
        // What Podman adds on a host with AppArmor (Debian, Ubuntu).
        (
            "podman-4.3.json",
            json!({"process": {"apparmorProfile": "containers-default-0.50.0"}}),
        ),
        ("containerd-1.6.json", json!({})),
        // containerd's CRI: its default devices and profile.
        (
            "containerd-1.6.json",
            json!({"process": {"apparmorProfile": "cri-containerd.apparmor.d", "oomScoreAdj": -998},
                   "linux": {"devices": [
                       {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0},
                       {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 438, "uid": 0, "gid": 0},
                       {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 438, "uid": 0, "gid": 0}]}}),
        ),
    ] {
        let b = engine_bundle(name, extra.clone());
        assert_past_fields(&rt, &b, &format!("{name} + {extra}"));
    }
}

#[test]
fn engine_config_with_a_host_device_is_refused_by_name() {
    if !is_vessel() {
        return skip("vessel's own");
    }
    let rt = Runtime::new();
    // `podman run --device /dev/fuse` plus a profile of the operator's.
    let b = engine_bundle(
        "podman-4.3.json",
        json!({"process": {"apparmorProfile": "my-profile"},
               "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                      "fileMode": 438, "uid": 0, "gid": 0}]}}),
    );
    let id = unique_id("vmdev");
    let (ok, stderr) = create(&rt, &b, &id);
    assert!(!ok);
    for name in [
        "linux.devices /dev/fuse (c 10:229)",
        "process.apparmorProfile \"my-profile\"",
    ] {
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    assert_clean(&rt, &id, "podman --device");
}
