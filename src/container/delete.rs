//! `delete`: remove a stopped (or, with --force, any) container: its
//! processes, cgroup and state directory, then the poststop hooks.

use crate::container::lock::Lock;
use crate::container::state::{State, Status};
use crate::{hooks, logging, Error, Result};
use std::path::Path;
use std::time::Duration;

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let (dir, st) = match super::load(root, id) {
        Ok(x) => x,
        Err(Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let _lock = Lock::acquire(&dir)?;
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
        // Processes the init left behind (no pid namespace) go too.
        kill_cgroup(cg);
        cg.destroy()?;
    }
    let state_json = st.oci_json(&dir).to_string();
    std::fs::remove_dir_all(&dir).map_err(Error::io("remove state dir", &dir))?;
    if !st.poststop.is_empty() {
        // poststop failures are logged, not fatal (runtime spec).
        if let Err(e) = hooks::run("poststop", &st.poststop, &state_json, None) {
            logging::warn(&e.to_string());
        }
    }
    Ok(())
}

fn kill_all(st: &State) {
    if st.init_alive() {
        // SAFETY: kill(2) of the verified init.
        unsafe { libc::kill(st.pid, libc::SIGKILL) };
    }
    if let Some(cg) = &st.cgroup {
        kill_cgroup(cg);
    }
}

/// SIGKILL everything in the cgroup until it is empty (thawing a frozen
/// one so the kills land); used by delete and by a failed create.
pub(crate) fn kill_cgroup(cg: &crate::cgroups::Cgroup) {
    let frozen = cg.is_frozen().unwrap_or(false);
    for _ in 0..100 {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            // SAFETY: kill(2) of processes in the container's cgroup.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if frozen {
            let _ = cg.thaw();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
