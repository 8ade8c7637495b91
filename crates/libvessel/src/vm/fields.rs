//! The config.json fields VM mode cannot apply, refused by name at `create`
//! before anything exists (and before `check_host`, so the refusal is the
//! same on a host that cannot boot a VM). Nothing is dropped silently: the
//! support matrix's `vm` column says what VM mode does with every field,
//! and each field it marks `rejected` is checked here (or, for fields
//! rejected in both modes, by `spec::support` from the matrix; the
//! seccomp and network rules are `guest_rules::check_seccomp` and
//! `net::namespace`).
//!
//! The rule for values engines always send: an empty or default value asks
//! for nothing a VM lacks and is accepted; a value that means something
//! the guest cannot give is refused, naming the field and the value.
//!
//! All offending fields are named in one error, so a config is fixed in
//! one round.

use super::VmError;
use oci_spec::runtime::{
    Hook, LinuxDevice, LinuxDeviceType, LinuxNamespaceType, LinuxPersonalityDomain, Spec,
};
use vessel_common::devices::DEFAULT_DEVICES;

/// AppArmor profiles accepted without effect: they confine a workload on
/// the host kernel, where a VM-mode workload never runs (Podman's
/// `containers-default-<version>`, Docker's, containerd CRI's).
const DEFAULT_APPARMOR: &[&str] = &["unconfined", "docker-default", "cri-containerd.apparmor.d"];
const PODMAN_APPARMOR_PREFIX: &str = "containers-default-";

/// Root propagation values that ask for nothing a guest's root lacks.
const PRIVATE_PROPAGATION: &[&str] = &["", "private", "rprivate", "unbindable", "runbindable"];

/// Refuse every field VM mode cannot apply; the error names each, with why.
pub fn check_fields(spec: &Spec) -> Result<(), VmError> {
    let mut refused = Vec::new();
    lsm_labels(spec, &mut refused);
    hooks(spec, &mut refused);
    if let Some(linux) = spec.linux() {
        ids_and_namespaces(linux, &mut refused);
        devices(linux.devices().as_deref().unwrap_or(&[]), &mut refused);
        let propagation = linux.rootfs_propagation().as_deref().unwrap_or("");
        if !PRIVATE_PROPAGATION.contains(&propagation) {
            refused.push(format!(
                "linux.rootfsPropagation {propagation:?}: the guest's root is no host mount, so \
                 nothing propagates between it and the host"
            ));
        }
        if let Some(p) = linux.personality() {
            if p.domain() != LinuxPersonalityDomain::PerLinux {
                refused.push(format!(
                    "linux.personality.domain {}: the guest's agent sets no personality",
                    p.domain()
                ));
            }
        }
        if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            refused.push(
                "linux.timeOffsets: the guest's clocks are its own and the agent makes no \
                 time namespace"
                    .into(),
            );
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(VmError::Msg(format!(
        "VM mode cannot apply {}: {}; run it in container mode or drop {}",
        if refused.len() == 1 {
            "a config.json field"
        } else {
            "these config.json fields"
        },
        refused.join("; "),
        if refused.len() == 1 { "it" } else { "them" }
    )))
}

/// AppArmor and SELinux: the host kernel's policy, which the guest lacks.
fn lsm_labels(spec: &Spec, refused: &mut Vec<String>) {
    if let Some(p) = spec.process() {
        if let Some(profile) = p.apparmor_profile().as_deref() {
            let default = profile.is_empty()
                || DEFAULT_APPARMOR.contains(&profile)
                || profile.starts_with(PODMAN_APPARMOR_PREFIX);
            if !default {
                refused.push(format!(
                    "process.apparmorProfile {profile:?}: an AppArmor profile lives in the host \
                     kernel and the workload runs on the guest kernel"
                ));
            }
        }
        if let Some(label) = p.selinux_label().as_deref().filter(|l| !l.is_empty()) {
            refused.push(format!(
                "process.selinuxLabel {label:?}: an SELinux label belongs to the host kernel's \
                 policy, which the guest kernel does not have"
            ));
        }
    }
    let mount_label = spec.linux().as_ref().and_then(|l| l.mount_label().clone());
    if let Some(label) = mount_label.filter(|l| !l.is_empty()) {
        refused.push(format!(
            "linux.mountLabel {label:?}: an SELinux label belongs to the host kernel's policy, \
             which the guest kernel does not have"
        ));
    }
}

/// Hooks that run inside the container as it is made: in VM mode that is
/// the guest, where vessel runs no hook. prestart and createRuntime run on
/// the host, with the VMM's pid, before the guest gets its network
/// (`vm::Launched::connect_network`); poststart and poststop run on the
/// host as in container mode.
fn hooks(spec: &Spec, refused: &mut Vec<String>) {
    let Some(h) = spec.hooks() else {
        return;
    };
    let lists: [(&str, &Option<Vec<Hook>>, &str); 2] = [
        (
            "createContainer",
            h.create_container(),
            "runs in the container's mount namespace",
        ),
        (
            "startContainer",
            h.start_container(),
            "runs in the container",
        ),
    ];
    for (name, list, what) in lists {
        if list.as_ref().is_some_and(|l| !l.is_empty()) {
            refused.push(format!(
                "hooks.{name}: such a hook {what}, which in VM mode is inside the guest, where \
                 no hook runs (prestart, createRuntime, poststart and poststop run on the host)"
            ));
        }
    }
}

/// Id mappings and namespace paths: a VM is its own id space and cannot
/// join a host namespace (the network namespace is `net::namespace`'s).
fn ids_and_namespaces(linux: &oci_spec::runtime::Linux, refused: &mut Vec<String>) {
    for (name, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        if maps.as_ref().is_some_and(|m| !m.is_empty()) {
            refused.push(format!(
                "{name}: the guest is its own id space with no user namespace; its files keep \
                 the rootfs' host ids, so the mapping would not be applied"
            ));
        }
    }
    for ns in linux.namespaces().iter().flatten() {
        if ns.typ() == LinuxNamespaceType::Network {
            continue;
        }
        if let Some(path) = ns.path() {
            refused.push(format!(
                "linux.namespaces[].path {} ({} namespace): a VM cannot join a host namespace; \
                 the guest kernel has its own",
                path.display(),
                crate::isolation::namespaces::proc_name(ns.typ())
            ));
        }
    }
}

/// `linux.devices`: only the defaults the guest has already.
fn devices(list: &[LinuxDevice], refused: &mut Vec<String>) {
    for d in list.iter().filter(|d| !is_default_device(d)) {
        refused.push(format!(
            "linux.devices {} ({} {}:{}): a host device node cannot be passed into a guest \
             (accepted: the defaults /dev/null, zero, full, random, urandom and tty, which the \
             guest's agent creates)",
            d.path().display(),
            d.typ().as_str(),
            d.major(),
            d.minor()
        ));
    }
}

/// A default device (`vessel_common::devices`) as engines list it; the
/// guest agent creates those in the workload's /dev.
fn is_default_device(d: &LinuxDevice) -> bool {
    let known = DEFAULT_DEVICES.iter().any(|(name, ma, mi)| {
        d.path().as_os_str() == format!("/dev/{name}").as_str()
            && d.major() == i64::from(*ma)
            && d.minor() == i64::from(*mi)
    });
    known
        && matches!(d.typ(), LinuxDeviceType::C | LinuxDeviceType::U)
        && d.file_mode().is_none_or(|m| m & 0o7777 == 0o666)
        && d.uid().unwrap_or(0) == 0
        && d.gid().unwrap_or(0) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn spec(doc: Value) -> Spec {
        let mut base = json!({"ociVersion": "1.2.0", "root": {"path": "rootfs"}});
        for (k, v) in doc.as_object().expect("object") {
            base[k] = v.clone();
        }
        serde_json::from_value(base).expect("spec JSON")
    }

    fn refusal(doc: Value) -> String {
        check_fields(&spec(doc.clone()))
            .expect_err(&doc.to_string())
            .to_string()
    }

    #[test]
    fn default_spec_passes() {
        let s: Spec = serde_json::from_str(crate::spec::DEFAULT_SPEC).expect("default spec");
        check_fields(&s).expect("vessel spec's config");
    }

    #[test]
    fn engine_defaults_pass() {
        let defaults: Vec<Value> = DEFAULT_DEVICES
            .iter()
            .map(|(name, ma, mi)| {
                json!({"path": format!("/dev/{name}"), "type": "c", "major": ma, "minor": mi,
                       "fileMode": 0o20666, "uid": 0, "gid": 0})
            })
            .collect();
        for profile in [
            "",
            "unconfined",
            "containers-default-0.50.0",
            "docker-default",
        ] {
            check_fields(&spec(json!({
                "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                            "apparmorProfile": profile, "selinuxLabel": "", "oomScoreAdj": 0},
                "hooks": {"prestart": [{"path": "/bin/true"}], "createRuntime": [],
                          "poststop": [{"path": "/bin/true"}]},
                "linux": {"devices": defaults, "mountLabel": "", "rootfsPropagation": "rprivate",
                          "personality": {"domain": "LINUX"}, "timeOffsets": {},
                          "uidMappings": [],
                          "namespaces": [{"type": "pid"}, {"type": "ipc"},
                                         {"type": "network", "path": "/run/netns/x"}]}
            })))
            .unwrap_or_else(|e| panic!("{profile:?}: {e}"));
        }
    }

    #[test]
    fn each_refusal_names_its_field() {
        for (doc, field) in [
            (
                json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                                   "apparmorProfile": "mine"}}),
                "process.apparmorProfile \"mine\"",
            ),
            (
                json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                                   "selinuxLabel": "system_u:system_r:container_t:s0"}}),
                "process.selinuxLabel",
            ),
            (json!({"linux": {"mountLabel": "x"}}), "linux.mountLabel"),
            (
                json!({"hooks": {"createContainer": [{"path": "/bin/true"}]}}),
                "hooks.createContainer",
            ),
            (
                json!({"hooks": {"startContainer": [{"path": "/bin/true"}]}}),
                "hooks.startContainer",
            ),
            (
                json!({"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}),
                "linux.uidMappings",
            ),
            (
                json!({"linux": {"namespaces": [{"type": "ipc", "path": "/proc/1/ns/ipc"}]}}),
                "linux.namespaces[].path /proc/1/ns/ipc (ipc namespace)",
            ),
            (
                json!({"linux": {"devices": [{"path": "/dev/fuse", "type": "c",
                                              "major": 10, "minor": 229}]}}),
                "linux.devices /dev/fuse (c 10:229)",
            ),
            (
                json!({"linux": {"devices": [{"path": "/dev/null", "type": "c",
                                              "major": 1, "minor": 3, "uid": 1000}]}}),
                "linux.devices /dev/null",
            ),
            (
                json!({"linux": {"rootfsPropagation": "rshared"}}),
                "linux.rootfsPropagation \"rshared\"",
            ),
            (
                json!({"linux": {"personality": {"domain": "LINUX32"}}}),
                "linux.personality.domain LINUX32",
            ),
            (
                json!({"linux": {"timeOffsets": {"monotonic": "{\"secs\":1,\"nanosecs\":0}"}}}),
                "linux.timeOffsets",
            ),
        ] {
            let err = refusal(doc);
            assert!(err.contains(field), "{field}: {err}");
            assert!(
                err.starts_with("VM mode cannot apply a config.json field"),
                "{err}"
            );
        }
    }

    #[test]
    fn one_error_names_every_field() {
        let err = refusal(json!({
            "hooks": {"startContainer": [{"path": "/bin/true"}]},
            "linux": {"mountLabel": "x", "personality": {"domain": "LINUX32"}}
        }));
        for field in [
            "hooks.startContainer",
            "linux.mountLabel",
            "linux.personality.domain",
        ] {
            assert!(err.contains(field), "{field}: {err}");
        }
        assert!(err.contains("these config.json fields"), "{err}");
    }
}
