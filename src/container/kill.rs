//! `kill`: a signal to the init (or VMM), or with --all to every process in
//! the container's cgroup.

use crate::container::lock::Lock;
use crate::container::state::Status;
use crate::{Error, Result};
use std::path::Path;

/// "9", "KILL", "SIGKILL" -> 9.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
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

pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let (dir, st) = super::load(root, id)?;
    let _lock = Lock::acquire(&dir)?;
    if st.live_status(&dir) == Status::Stopped {
        return Err(Error::WrongState("container not running".into()));
    }
    if all {
        if let Some(cg) = &st.cgroup {
            let paused = cg.is_frozen().unwrap_or(false);
            for pid in cg.pids()? {
                // SAFETY: kill(2) with a pid from the container's cgroup.
                unsafe { libc::kill(pid, sig) };
            }
            // A frozen task cannot act on SIGKILL until thawed.
            if paused && sig == libc::SIGKILL {
                cg.thaw()?;
            }
            return Ok(());
        }
    }
    // SAFETY: kill(2) of the recorded init, verified alive with its start time.
    if unsafe { libc::kill(st.pid, sig) } < 0 {
        return Err(Error::sys(format!("kill container {id} (pid {})", st.pid))(
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}
