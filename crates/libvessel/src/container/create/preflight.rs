//! What `create` checks before it makes anything: the sandbox kind and
//! its host, rootless limits, and whether the container gets a tenant id
//! range. Each refusal leaves nothing behind because nothing exists yet.

use super::{wants_terminal, CreateOptions};
use crate::container::{rootless, tenant_ids};
use crate::process::plan;
use crate::spec::Bundle;
use crate::{vm, Error, Result};

/// The outcome of the checks.
pub(super) struct Preflight {
    /// The workload runs in a VM.
    pub use_vm: bool,
    /// The VM's size and kernel (VM mode only).
    pub vm_plan: Option<vm::VmPlan>,
    /// A tenant range is to be taken: Some(explicit ask?).
    pub tenant: Option<bool>,
}

/// Checks the bundle against the sandbox kind, the host and the caller.
pub(super) fn preflight(opts: &CreateOptions, bundle: &Bundle) -> Result<Preflight> {
    let use_vm = vm::requested(&bundle.spec, &opts.argv0)?;
    let rootless = rootless::active();
    if use_vm && rootless {
        return Err(Error::invalid(
            "rootless: VM mode needs root (a cgroup for the VMM and /dev/kvm set-up); \
             run it as root",
        ));
    }
    let vm_plan = match use_vm {
        true => {
            // What the config asks for comes before what the host has, so
            // a refused field is named the same on every host.
            vm::fields::check_fields(&bundle.spec)?;
            // Container mode checks this in its init plan; a VM has none,
            // and must fail the same way before anything exists.
            plan::check_console_socket(
                wants_terminal(bundle),
                opts.console_socket.is_some() || opts.console_fd.is_some(),
            )?;
            vm::guest_rules::check_seccomp(&bundle.spec, &bundle.seccomp_extra_flags)?;
            vm::net::namespace(&bundle.spec)?;
            vm::check_host(&bundle.spec)?;
            Some(vm::plan_bundle(&bundle.dir, &bundle.spec, &bundle.rootfs)?)
        }
        false => None,
    };
    if rootless {
        if let Some(p) = bundle.spec.process() {
            rootless::check_rlimits(p)?;
        }
        rootless::check_no_idmapped_mounts(&bundle.spec, &bundle.mount_idmaps)?;
    }
    // A VM is its own id space: the guest has no host ids to share. A
    // rootless caller has no other ids to give (only an explicit ask).
    let tenant = match use_vm {
        false => tenant_ids::wanted(&bundle.spec, opts.engine)?,
        true => None,
    }
    .filter(|explicit| *explicit || !rootless);
    Ok(Preflight {
        use_vm,
        vm_plan,
        tenant,
    })
}
