//! `delete`: remove a stopped (or, with --force, any) container: its
//! processes, cgroup and state directory, then the poststop hooks.
//!
//! Everything happens under the id's lock, on the state read under it, and
//! what is already gone counts as removed: two `delete -f` at once both
//! succeed, and a `create` that died half-way (no state.json yet, or a
//! state still `creating`) is cleaned up like any other container.

use crate::container::state::{Sandbox, State, Status};
use crate::container::Locked;
use crate::{hooks, logging, Error, Result};
use std::path::Path;
use std::time::Duration;

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let existed = crate::spec::validate_id(id).is_ok() && super::state_dir(root, id).is_dir();
    let (dir, _lock, st) = match super::lock(root, id) {
        Ok(Locked::Found(dir, lock, st)) => (dir, lock, *st),
        Ok(Locked::Partial(dir, _lock)) => {
            // A create that died before its first state save: nothing but
            // the directory exists yet (runc removes it too, and fails
            // without --force: there was no container).
            remove_state_dir(&dir)?;
            return if force {
                Ok(())
            } else {
                Err(Error::NotFound(id.to_string()))
            };
        }
        // Removed by another delete while we waited for the lock.
        Err(Error::NotFound(_)) if force || existed => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = st.live_status(&dir);
    match status {
        Status::Stopped => {}
        // A created container never ran its workload: runc deletes it too.
        Status::Created | Status::Creating => kill_all(&st),
        _ if force => kill_all(&st),
        s => {
            return Err(Error::WrongState(format!(
                "cannot delete container {id} that is not stopped: {}",
                s.as_str()
            )))
        }
    }
    if !super::wait_gone(&st, Duration::from_secs(10)) {
        return Err(Error::Other(format!(
            "container {id}: init (pid {}) did not exit after SIGKILL",
            st.pid
        )));
    }
    if let Some(cg) = &st.cgroup {
        if st.pid > 0 {
            // Processes the init left behind (no pid namespace) go too.
            kill_cgroup(cg);
            cg.destroy()?;
        } else if let Err(e) = cg.destroy() {
            // A create that died before its init existed: whatever runs
            // in that cgroup is not this container's; leave it be.
            logging::warn(&format!(
                "container {id}: cgroup of an unfinished create not removed: {e}"
            ));
        }
    }
    if st.sandbox == Sandbox::Vm {
        // The VMM is gone, and its tap with it: the network namespace gets
        // its interface's addresses and routes back.
        crate::vm::net::restore(&dir);
    }
    let state_json = st.oci_json(&dir).to_string();
    remove_state_dir(&dir)?;
    if let Some(range) = &st.tenant_ids {
        // The range is free once nothing of the container is left.
        let freed = std::path::absolute(&dir)
            .map_err(Error::io("resolve", &dir))
            .and_then(|d| super::tenant_ids::release(&d, range));
        if let Err(e) = freed {
            logging::warn(&format!("container {id}: tenant ids not given back: {e}"));
        }
    }
    logging::debug(&format!("container {id}: deleted"));
    if !st.poststop.is_empty() {
        // poststop failures are logged, not fatal (runtime spec).
        if let Err(e) = hooks::run("poststop", &st.poststop, &state_json, None) {
            logging::warn(&e.to_string());
        }
    }
    Ok(())
}

/// Remove the state dir; what is already gone is removed.
fn remove_state_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove state dir", dir)(e)),
    }
}

fn kill_all(st: &State) {
    if st.init_alive() {
        // The verified init (start time checked just above).
        let _ = super::kill::send(st.pid, libc::SIGKILL);
    }
    // Only once an init existed are the cgroup's processes the container's.
    if let (Some(cg), true) = (&st.cgroup, st.pid > 0) {
        kill_cgroup(cg);
    }
}

/// SIGKILL everything in the cgroup until it is empty (frozen while read and
/// signalled, so nothing forks away; thawed so the kills land); used by
/// delete and by a failed create.
pub(crate) fn kill_cgroup(cg: &crate::cgroups::Cgroup) {
    for _ in 0..100 {
        match super::kill::signal_cgroup(cg, libc::SIGKILL) {
            Ok(n) if n > 0 => std::thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
}
