//! The workload's cgroup inside the guest: `/workload` on the guest's
//! cgroup2, which the workload and every exec join before they enter the
//! container, with the spec's `linux.resources` pids, memory and CPU
//! values written as runc writes them on a cgroup2 host (the conversions
//! are shared with the runtime: `vessel_common::cgroup_units`). A fork
//! bomb then stops at the limit, as in container mode, while the agent
//! (outside the group, and the guest's init, which the OOM killer spares)
//! still starts execs and answers queries; software inside sees the limits it was given in its
//! own cgroup files. The workload sees the group as its cgroup
//! namespace's root (`enter.rs`), so it cannot raise its own limit. The
//! same values also bound the whole VM on the host; `update` writes both
//! (`query.rs`).

use super::spec::{Linux, Resources};
use std::path::Path;

/// Where the agent mounts the guest's cgroup2 (its own mount namespace).
pub const MOUNT: &str = "/sys/fs/cgroup";
const ROOT: &str = MOUNT;
/// The workload's group.
const GROUP: &str = "/sys/fs/cgroup/workload";
/// The controllers the group gets, each enabled on its own so a guest
/// kernel without one still gets the others.
const CONTROLLERS: [&str; 3] = ["pids", "memory", "cpu"];

/// In the agent, before the workload's fork: mount cgroup2, enable the
/// controllers for children, make the group and write the spec's values.
/// A guest kernel without cgroup2 is noted on the console and skipped,
/// unless the spec sets a value, which is then an error naming it:
/// nothing is dropped silently.
pub fn prepare(linux: Option<&Linux>) -> Result<(), String> {
    let res = linux.and_then(|l| l.resources.as_ref());
    let fields = res.map(fields_set).unwrap_or_default();
    if let Err(e) = make_group() {
        if fields.is_empty() {
            super::console_note(&format!("no cgroup for the workload in the guest: {e}"));
            return Ok(());
        }
        return Err(format!("{} in the guest: {e}", fields.join(", ")));
    }
    match res {
        Some(r) => apply(r),
        None => Ok(()),
    }
}

fn make_group() -> Result<(), String> {
    std::fs::create_dir_all(ROOT).map_err(|e| format!("mkdir {ROOT}: {e}"))?;
    nix::mount::mount(
        Some("cgroup2"),
        ROOT,
        Some("cgroup2"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount the guest's cgroup2 on {ROOT}: {e}"))?;
    let control = format!("{ROOT}/cgroup.subtree_control");
    for c in CONTROLLERS {
        // A missing controller fails only the fields that need it (`set`).
        if let Err(e) = std::fs::write(&control, format!("+{c}")) {
            super::console_note(&format!("the guest's cgroup2 has no {c} controller: {e}"));
        }
    }
    std::fs::create_dir_all(GROUP).map_err(|e| format!("mkdir {GROUP}: {e}"))
}

/// The `linux.resources` fields in `r` that the guest writes.
fn fields_set(r: &Resources) -> Vec<&'static str> {
    let mut v = Vec::new();
    if r.pids.as_ref().is_some_and(|p| p.limit != 0) {
        v.push("linux.resources.pids.limit");
    }
    if let Some(m) = &r.memory {
        if m.limit.is_some_and(|l| l != 0) {
            v.push("linux.resources.memory.limit");
        }
        if m.reservation.is_some_and(|l| l != 0) {
            v.push("linux.resources.memory.reservation");
        }
    }
    if let Some(c) = &r.cpu {
        if c.shares.is_some_and(|s| s != 0) {
            v.push("linux.resources.cpu.shares");
        }
        if c.quota.is_some_and(|q| q != 0) || c.period.is_some_and(|p| p != 0) {
            v.push("linux.resources.cpu.quota/period");
        }
    }
    v
}

/// Writes the values `r` names into the workload's group (at boot, and
/// for `update`); a value of 0 or an absent field leaves its file as it
/// is. An error names the field, the file and why.
pub fn apply(r: &Resources) -> Result<(), String> {
    use vessel_common::cgroup_units::{cpu_max, shares_to_weight, v2_limit};
    let fields = fields_set(r);
    if fields.is_empty() {
        return Ok(());
    }
    if !Path::new(GROUP).is_dir() {
        return Err(format!(
            "{}: the guest has no cgroup for the workload (see its console log)",
            fields.join(", ")
        ));
    }
    if let Some(p) = r.pids.as_ref().filter(|p| p.limit != 0) {
        // runc: a negative limit is "max".
        set("linux.resources.pids.limit", "pids.max", &v2_limit(p.limit))?;
    }
    if let Some(m) = &r.memory {
        if let Some(l) = m.limit.filter(|l| *l != 0) {
            set("linux.resources.memory.limit", "memory.max", &v2_limit(l))?;
        }
        if let Some(l) = m.reservation.filter(|l| *l != 0) {
            set(
                "linux.resources.memory.reservation",
                "memory.low",
                &v2_limit(l),
            )?;
        }
    }
    if let Some(c) = &r.cpu {
        if let Some(s) = c.shares.filter(|s| *s != 0) {
            set(
                "linux.resources.cpu.shares",
                "cpu.weight",
                &shares_to_weight(s).to_string(),
            )?;
        }
        let current = std::fs::read_to_string(format!("{GROUP}/cpu.max")).ok();
        let current_quota = current.as_deref().and_then(|t| t.split_whitespace().next());
        let (quota, period) = (c.quota.unwrap_or(0), c.period.unwrap_or(0));
        if let Some(max) = cpu_max(quota, period, current_quota) {
            set("linux.resources.cpu.quota/period", "cpu.max", &max)?;
        }
    }
    Ok(())
}

/// Writes `value` to the group's `file` for the spec field `field`.
fn set(field: &str, file: &str, value: &str) -> Result<(), String> {
    let path = format!("{GROUP}/{file}");
    std::fs::write(&path, value).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "the guest kernel has no such cgroup file (controller missing)".to_string()
            }
            _ => e.to_string(),
        };
        format!("{field} in the guest: write {value:?} to {path}: {why}")
    })
}

/// In a forked child, before it leaves the agent's mount namespace: join
/// the workload's group (none when `prepare` skipped it).
pub fn join() -> Result<(), String> {
    if !Path::new(GROUP).is_dir() {
        return Ok(());
    }
    let procs = format!("{GROUP}/cgroup.procs");
    std::fs::write(&procs, "0").map_err(|e| format!("join the workload's cgroup ({procs}): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_set_names_what_the_guest_writes() {
        let r: Resources = serde_json::from_value(serde_json::json!({
            "pids": {"limit": 100},
            "memory": {"limit": 0, "reservation": 1048576},
            "cpu": {"shares": 512, "period": 100000},
            "blockIO": {"weight": 10}
        }))
        .unwrap();
        assert_eq!(
            fields_set(&r),
            [
                "linux.resources.pids.limit",
                "linux.resources.memory.reservation",
                "linux.resources.cpu.shares",
                "linux.resources.cpu.quota/period"
            ]
        );
        assert!(fields_set(&Resources::default()).is_empty());
    }
}
