//! Pausing and resuming a running VM: signals to the VMM, and the status
//! read back from its vCPU threads' names (`vessel_protocol::control`).

use super::VmError;

/// How long `pause`/`resume` wait for every vCPU to say it parked or left.
const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the thread names of VMM `pid` say (see `vessel_protocol::control`):
/// `Some(true)` when every vCPU is parked, `Some(false)` when one runs,
/// `None` when there is no vCPU thread (not started, or gone).
pub fn vcpus_paused(pid: i32) -> Option<bool> {
    let rd = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let comms: Vec<String> = rd
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .collect();
    vessel_protocol::control::vcpus_paused(comms.iter().map(String::as_str))
}

/// Pause the guest of VMM `pid` (already verified as the container's, by
/// its start time): every vCPU leaves KVM_RUN and parks. Returns once all
/// say so; after `CONTROL_TIMEOUT` it resumes them again and fails, as a
/// cgroup freeze that never completes is undone.
pub fn pause(pid: i32) -> Result<(), VmError> {
    let send = |sig: i32, what: &str| {
        crate::container::kill::send(pid, sig)
            .map_err(|e| VmError::Msg(format!("{what} the VM (VMM pid {pid}): {e}")))
    };
    send(vessel_protocol::control::PAUSE_SIGNAL, "pausing")?;
    if wait_for(pid, true) {
        return Ok(());
    }
    let _ = send(vessel_protocol::control::RESUME_SIGNAL, "resuming");
    Err(VmError::Msg(format!(
        "pausing the VM (VMM pid {pid}): its vCPUs did not all park within {} s; resumed it",
        CONTROL_TIMEOUT.as_secs()
    )))
}

/// Resume the parked vCPUs of VMM `pid`; returns once none is parked.
pub fn resume(pid: i32) -> Result<(), VmError> {
    crate::container::kill::send(pid, vessel_protocol::control::RESUME_SIGNAL)
        .map_err(|e| VmError::Msg(format!("resuming the VM (VMM pid {pid}): {e}")))?;
    if wait_for(pid, false) {
        return Ok(());
    }
    Err(VmError::Msg(format!(
        "resuming the VM (VMM pid {pid}): its vCPUs were still parked after {} s",
        CONTROL_TIMEOUT.as_secs()
    )))
}

/// Wait until the vCPUs of `pid` are all parked (`paused`) or none is.
fn wait_for(pid: i32, paused: bool) -> bool {
    let deadline = std::time::Instant::now() + CONTROL_TIMEOUT;
    loop {
        match vcpus_paused(pid) {
            Some(p) if p == paused => return true,
            // No vCPU thread left: the VMM is gone; nothing runs either way.
            None => return !paused,
            _ => {}
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
