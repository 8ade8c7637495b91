//! AppArmor profiles and SELinux labels: applied where the kernel has the
//! LSM, a clear error (and nothing left behind) where it does not.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

fn refused_cleanly(field: &str, value: &str, lsm: &str) {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.spec["process"][field] = json!(value);
    b.write();
    let id = unique_id("lsm");
    let out = rt.run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "create with {field} succeeded without {lsm}"
    );
    assert!(
        stderr.contains(lsm) && stderr.contains(value),
        "unclear error: {stderr}"
    );
    assert!(
        rt.log_text().contains("\"level\":\"error\""),
        "no error in --log"
    );
    assert!(!rt.root.join(&id).exists(), "state dir left behind");
}

#[test]
fn apparmor_profile_on_a_host_without_apparmor() {
    if Path::new("/sys/module/apparmor").exists() {
        skip("this host has AppArmor; the refusal is checked where it is absent");
        return;
    }
    if !is_vessel() {
        skip("vessel's own message is checked");
        return;
    }
    refused_cleanly("apparmorProfile", "vessel-test-profile", "AppArmor");
}

#[test]
fn selinux_label_on_a_host_without_selinux() {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        skip("this host has SELinux; the refusal is checked where it is absent");
        return;
    }
    if !is_vessel() {
        skip("vessel's own message is checked");
        return;
    }
    refused_cleanly(
        "selinuxLabel",
        "system_u:system_r:container_t:s0",
        "SELinux",
    );
}
