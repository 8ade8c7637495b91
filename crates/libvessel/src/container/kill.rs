//! `kill`: a signal to the init (or VMM), or with --all to every process in
//! the container's cgroup.

use crate::cgroups::Cgroup;
use crate::container::state::Status;
use crate::{logging, Error, Result};
use std::path::Path;

/// "9", "KILL", "SIGKILL" -> 9; "0" is the liveness probe (no signal).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::invalid(format!("invalid signal: {s}")));
    }
    let up = s.to_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| Error::invalid(format!("unknown signal {s:?}")))
}

/// The one way vessel signals a process: never a pid <= 0, which kill(2)
/// reads as "my process group" (0) or "every process I may signal" (-1)
/// or a group (< -1). A state left with pid 0 by a dead `create` must never
/// turn `kill` or `delete` against its caller.
pub fn send(pid: i32, sig: i32) -> Result<()> {
    if pid <= 0 {
        return Err(Error::Other(format!(
            "refusing to send signal {sig} to pid {pid}: not a single process"
        )));
    }
    // SAFETY: kill(2) of one process (pid > 0).
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(Error::sys(format!("kill pid {pid}"))(
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

/// Signal every process in the cgroup, frozen while we read and signal so
/// none forks away (runc's signalAllProcesses). A cgroup that was paused
/// stays paused, except that SIGKILL thaws it so the kills land. Returns how
/// many processes were there.
pub fn signal_cgroup(cg: &Cgroup, sig: i32) -> Result<usize> {
    let was_frozen = cg.is_frozen().unwrap_or(false);
    let froze = !was_frozen && cg.freeze().is_ok();
    let pids = cg.pids();
    if let Ok(pids) = &pids {
        for &pid in pids {
            // A process that exited meanwhile is fine (ESRCH).
            let _ = send(pid, sig);
        }
    }
    if froze || (was_frozen && sig == libc::SIGKILL) {
        if let Err(e) = cg.thaw() {
            logging::warn(&format!("thaw after signalling: {e}"));
        }
    }
    pids.map(|p| p.len()).map_err(Error::from)
}

pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let (dir, _lock, st) = super::load_locked(root, id)?;
    let status = st.live_status(&dir);
    logging::debug(&format!(
        "container {id}: signal {sig} to {}",
        if all { "all its processes" } else { "its init" }
    ));
    if all {
        if let Some(cg) = &st.cgroup {
            // After the init exited, processes it left behind (no pid
            // namespace) still run in the cgroup: they get the signal too
            // (a cgroup already gone has no processes: nothing to do).
            return signal_cgroup(cg, sig).map(|_| ());
        }
    }
    if status == Status::Stopped || !st.init_alive() {
        return Err(Error::WrongState("container not running".into()));
    }
    // The recorded init, verified alive with its start time just above.
    send(st.pid, sig).map_err(|e| Error::Other(format!("kill container {id}: {e}")))
}
