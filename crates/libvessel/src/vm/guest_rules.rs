//! The process rules the guest's agent applies (capabilities, no_new_privs,
//! seccomp; see vessel-agent's `confine`), checked on the host by `create`
//! before anything exists, so a profile the guest cannot apply fails `create`
//! instead of the booted guest.

use super::VmError;
use crate::isolation::seccomp;
use oci_spec::runtime::Spec;

/// Refuse a seccomp profile VM mode cannot apply: one that uses
/// SCMP_ACT_NOTIFY (its listener at `listenerPath` is a host socket; the
/// guest's system calls can never reach it), or one that does not compile
/// (the agent compiles it with the same code). Warnings are left to the
/// agent, which writes them on the guest console.
pub fn check_seccomp(spec: &Spec, extra_flags: &[String]) -> Result<(), VmError> {
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    if seccomp::uses_notify(profile) {
        return Err(VmError::Msg(
            "VM mode: linux.seccomp uses SCMP_ACT_NOTIFY, which cannot work in a VM: the \
             listener (linux.seccomp.listenerPath) is on the host and the workload's system \
             calls are made in the guest; remove the SCMP_ACT_NOTIFY rules or run the \
             container in container mode"
                .into(),
        ));
    }
    seccomp::compile_with_flags(profile, extra_flags, &mut |_| {})
        .map(|_| ())
        .map_err(|e| VmError::Msg(format!("linux.seccomp: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(seccomp: serde_json::Value) -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"seccomp": seccomp}
        }))
        .expect("spec JSON")
    }

    #[test]
    fn notify_is_refused_and_a_plain_profile_passes() {
        let notify = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let err = check_seccomp(&notify, &[]).expect_err("notify refused");
        assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");
        let errno = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]
        }));
        check_seccomp(&errno, &[]).expect("an errno profile compiles");
        let bad = spec(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]
        }));
        assert!(check_seccomp(&bad, &[]).is_err());
        let none: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2"})).expect("spec");
        check_seccomp(&none, &[]).expect("no profile");
    }
}
