//! A VM's memory on the host: guest RAM is fixed at boot, so the cgroup
//! limit that caps the VMM must leave room for it plus the VMM's overhead,
//! at create and at every update.

use super::VmError;

/// The cgroup memory a VM with `mem_mib` of guest RAM needs, in bytes:
/// guest RAM plus the VMM's own overhead.
pub fn memory_need_bytes(mem_mib: u64) -> i64 {
    let mib = mem_mib.saturating_add(vessel_protocol::launch::vmm_overhead_mib(mem_mib));
    i64::try_from(mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX)
}

/// At `create`: the workload's memory limit sizes guest RAM (the guest's
/// kernel enforces it); the cgroup's limit, which caps the VMM on the host,
/// is raised to what the VMM needs for that RAM when the spec's is lower
/// (and the memory+swap total with it), so the VMM is never OOM-killed for
/// RAM the guest was promised. Returns the raised limit, if any.
pub fn lift_memory_limit(res: &mut oci_spec::runtime::LinuxResources, mem_mib: u64) -> Option<i64> {
    let need = memory_need_bytes(mem_mib);
    let mem = res.memory().as_ref()?;
    let limit = mem.limit().filter(|l| *l > 0 && *l < need)?;
    // oci-spec's LinuxMemory has no setters: edit its JSON, keeping every
    // other field.
    let mut doc = serde_json::to_value(mem).ok()?;
    doc["limit"] = serde_json::json!(need);
    if let Some(swap) = mem.swap().filter(|s| *s > 0) {
        doc["swap"] = serde_json::json!(swap.saturating_add(need - limit));
    }
    res.set_memory(Some(serde_json::from_value(doc).ok()?));
    Some(need)
}

/// At `update` of a running VM: guest RAM is fixed at boot and vessel has
/// no memory balloon, so a memory limit (or memory+swap total) below guest
/// RAM plus the VMM's overhead would only get the VMM OOM-killed once the
/// guest uses its RAM. Such a change is refused, before anything is
/// written; a limit at or above the need (or -1) caps the VMM and is
/// applied. `mem_mib` is None for a VM created by an older vessel, whose
/// guest RAM was not recorded: every memory change is refused then.
pub fn check_memory_update(
    id: &str,
    delta: &oci_spec::runtime::LinuxResources,
    mem_mib: Option<u64>,
) -> Result<(), VmError> {
    let Some(m) = delta.memory() else {
        return Ok(());
    };
    let asked = [("memory limit", m.limit()), ("memory+swap limit", m.swap())];
    let Some(mem_mib) = mem_mib else {
        if let Some((what, _)) = asked.iter().find(|(_, v)| v.is_some()) {
            return Err(VmError::Msg(format!(
                "container {id} runs in a VM whose guest RAM was not recorded at create \
                 (an older vessel): its {what} cannot be checked against guest RAM, so it is \
                 not changed"
            )));
        }
        return Ok(());
    };
    let need = memory_need_bytes(mem_mib);
    for (what, v) in asked {
        if let Some(v) = v.filter(|v| *v > 0 && *v < need) {
            return Err(VmError::Msg(format!(
                "container {id} runs in a VM: its {what} of {} MiB is below the {} MiB the VMM \
                 needs ({mem_mib} MiB of guest RAM, fixed at boot: vessel has no memory \
                 balloon, plus {} MiB of VMM overhead), so the host would OOM-kill the VMM \
                 once the guest uses its RAM; nothing was changed. Give at least {} MiB, or \
                 create the container again with less memory",
                (v + (1 << 20) - 1) >> 20,
                need >> 20,
                vessel_protocol::launch::vmm_overhead_mib(mem_mib),
                need >> 20,
            )));
        }
    }
    Ok(())
}
