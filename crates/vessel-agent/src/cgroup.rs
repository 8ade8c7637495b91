//! The workload's cgroup inside the guest: `/workload` on the guest's
//! cgroup2, which the workload and every exec join before they enter the
//! container, with the spec's `linux.resources.pids.limit` as its
//! pids.max. A fork bomb then stops at the limit, as in container mode,
//! and the agent (outside the group) can still start execs and answer
//! queries. The workload sees the group as its cgroup namespace's root
//! (`enter.rs`), so it cannot raise its own limit. The rest of
//! `linux.resources` bounds the whole VM on the host.

use super::spec::Linux;

/// Where the agent mounts the guest's cgroup2 (its own mount namespace).
pub const MOUNT: &str = "/sys/fs/cgroup";
const ROOT: &str = MOUNT;
/// The workload's group.
const GROUP: &str = "/sys/fs/cgroup/workload";

/// In the agent, before the workload's fork: mount cgroup2, enable the
/// pids controller for children, make the group and set its limit. A
/// guest kernel without cgroup2 or the pids controller is noted on the
/// console and skipped, unless the spec sets a limit, which is then an
/// error: nothing is dropped silently.
pub fn prepare(linux: Option<&Linux>) -> Result<(), String> {
    let limit = linux
        .and_then(|l| l.resources.as_ref())
        .and_then(|r| r.pids.as_ref())
        .map(|p| p.limit)
        .unwrap_or(0);
    match make_group(limit) {
        Ok(()) => Ok(()),
        Err(e) if limit <= 0 => {
            super::console_note(&format!("no cgroup for the workload in the guest: {e}"));
            Ok(())
        }
        Err(e) => Err(format!(
            "linux.resources.pids.limit {limit} in the guest: {e}"
        )),
    }
}

fn make_group(limit: i64) -> Result<(), String> {
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
    let write = |path: &str, value: &str| {
        std::fs::write(path, value).map_err(|e| format!("write {value:?} to {path}: {e}"))
    };
    write(&format!("{ROOT}/cgroup.subtree_control"), "+pids")?;
    std::fs::create_dir_all(GROUP).map_err(|e| format!("mkdir {GROUP}: {e}"))?;
    if limit > 0 {
        write(&format!("{GROUP}/pids.max"), &limit.to_string())?;
    }
    Ok(())
}

/// In a forked child, before it leaves the agent's mount namespace: join
/// the workload's group (none when `prepare` skipped it).
pub fn join() -> Result<(), String> {
    if !std::path::Path::new(GROUP).is_dir() {
        return Ok(());
    }
    let procs = format!("{GROUP}/cgroup.procs");
    std::fs::write(&procs, "0").map_err(|e| format!("join the workload's cgroup ({procs}): {e}"))
}
