//! Id-mapped bind mounts: `mounts[].uidMappings`/`gidMappings` and the
//! `idmap`/`ridmap` options. A host directory's files show up with the
//! owners the mapping gives, and what the container writes lands on disk
//! with the owners mapped back, with no chown of the volume.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Container user namespace: container 0..65535 is host 100000..165535.
const CONTAINER_BASE: u32 = 100_000;

/// A volume dir with one file, both owned by `owner` on the host.
fn volume(owner: u32) -> PathBuf {
    let dir = scratch_dir().join(unique_id("vol"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("owned"), "x").unwrap();
    for p in [dir.clone(), dir.join("owned")] {
        std::os::unix::fs::chown(&p, Some(owner), Some(owner)).unwrap();
    }
    dir
}

fn owner_of(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// A bundle that prints the owner of /data/owned, then tries to create
/// /data/new as the container's root.
fn bundle(vol: &Path, userns: bool, mount_extra: Value) -> Bundle {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo owner=$(stat -c %u:%g /data/owned); touch /data/new && echo wrote",
    ]);
    if userns {
        b.spec["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": CONTAINER_BASE, "size": 65536}]);
        b.spec["linux"]["uidMappings"] = map.clone();
        b.spec["linux"]["gidMappings"] = map;
    }
    let mut m =
        json!({"destination": "/data", "type": "bind", "source": vol, "options": ["rbind"]});
    for (k, v) in mount_extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    b.spec["mounts"].as_array_mut().unwrap().push(m);
    b.write();
    // The rootfs belongs to the host's root, whom a user namespace does not
    // map: the mount point must exist already.
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    b
}

fn one_to_one(container_id: u32, host_id: u32) -> Value {
    json!([{"containerID": container_id, "hostID": host_id, "size": 1}])
}

#[test]
fn explicit_mapping_shows_the_host_owner_as_container_root() {
    require_root();
    let rt = Runtime::new();
    // Host uid 1000 on disk is seen as host uid 100000: root in the container.
    let vol = volume(1000);
    let maps = one_to_one(1000, CONTAINER_BASE);
    let b = bundle(
        &vol,
        true,
        json!({"uidMappings": maps, "gidMappings": maps}),
    );
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("owner=0:0"),
        "the volume's owner inside: {out}"
    );
    assert!(
        out.contains("wrote"),
        "the container's root could not write: {out} {err}"
    );
    assert_eq!(
        owner_of(&vol.join("new")),
        (1000, 1000),
        "a file the container's root wrote must land as host uid 1000"
    );

    // The same volume without a mapping: its owner is unmapped there.
    std::fs::remove_file(vol.join("new")).unwrap();
    let b = bundle(&vol, true, json!({}));
    let (_, out, _) = rt.run_bundle(&b);
    assert!(out.contains("owner=65534:65534"), "unmapped owner: {out}");
    assert!(
        !vol.join("new").exists(),
        "the unmapped volume was writable"
    );
    let _ = std::fs::remove_dir_all(&vol);
}

#[test]
fn idmap_option_borrows_the_container_mappings() {
    require_root();
    let rt = Runtime::new();
    // Root-owned host files (an image layer, say) seen as the container's root.
    let vol = volume(0);
    let b = bundle(&vol, true, json!({"options": ["rbind", "ridmap"]}));
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("owner=0:0") && out.contains("wrote"),
        "{out} {err}"
    );
    assert_eq!(owner_of(&vol.join("new")), (0, 0));
    let _ = std::fs::remove_dir_all(&vol);
}

#[test]
fn mapping_without_a_user_namespace() {
    require_root();
    let rt = Runtime::new();
    // No user namespace: on-disk 1000 is seen as host 0, the container's root.
    let vol = volume(1000);
    let maps = one_to_one(1000, 0);
    let b = bundle(
        &vol,
        false,
        json!({"uidMappings": maps, "gidMappings": maps}),
    );
    let (code, out, err) = rt.run_bundle(&b);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("owner=0:0") && out.contains("wrote"),
        "{out} {err}"
    );
    assert_eq!(owner_of(&vol.join("new")), (1000, 1000));
    let _ = std::fs::remove_dir_all(&vol);
}

#[test]
fn a_mapping_on_a_tmpfs_is_refused_and_leaves_nothing() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]
    }));
    b.write();
    let id = unique_id("idmap-tmpfs");
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0, "create of an id-mapped tmpfs succeeded");
    assert!(
        err.contains("/scratch") && err.contains("bind mounts only"),
        "stderr: {err}"
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn half_a_mapping_is_refused() {
    require_root();
    let rt = Runtime::new();
    let vol = volume(1000);
    let b = bundle(
        &vol,
        true,
        json!({"uidMappings": one_to_one(1000, CONTAINER_BASE)}),
    );
    let id = unique_id("idmap-half");
    let (code, _, err) = triple(&rt.create(&b, &id, &[]));
    assert_ne!(code, 0);
    assert!(err.contains("together"), "stderr: {err}");
    assert_nothing_left(&rt, &id, &b);
    let _ = std::fs::remove_dir_all(&vol);
}
