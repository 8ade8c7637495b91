//! How the runtime controls a running VMM and reads its state back, with
//! nothing but signals and `/proc`: `vessel pause` sends [`PAUSE_SIGNAL`] to
//! the VMM, every vCPU thread leaves KVM_RUN and parks, and renames itself
//! `vcpu<N>` + [`PAUSED_SUFFIX`] once parked; [`RESUME_SIGNAL`] wakes them and
//! each renames itself back before it enters the guest again. So the status
//! is read from the live system (`/proc/<pid>/task/*/comm`) on every
//! `vessel state`, with no file that a crash could leave stale.

/// SIGRTMIN+8 under glibc (whose SIGRTMIN is 34): pause every vCPU.
/// The VMM blocks it from its first instruction on and reads it from its
/// signalfd, so one sent before the guest runs never kills the VMM.
pub const PAUSE_SIGNAL: i32 = 42;
/// SIGRTMIN+9: resume the vCPUs.
pub const RESUME_SIGNAL: i32 = 43;
/// The name (comm) of vCPU thread N is `vcpu<N>`.
pub const VCPU_THREAD_PREFIX: &str = "vcpu";
/// ... and `vcpu<N>-paused` while it is parked out of KVM_RUN.
pub const PAUSED_SUFFIX: &str = "-paused";

/// The name a vCPU thread carries, running or parked (at most 15 bytes,
/// the kernel's comm limit, for every index below 1000).
pub fn vcpu_thread_name(index: usize, paused: bool) -> String {
    if paused {
        format!("{VCPU_THREAD_PREFIX}{index}{PAUSED_SUFFIX}")
    } else {
        format!("{VCPU_THREAD_PREFIX}{index}")
    }
}

/// What the thread names of a VMM say, from `comm` values of its threads:
/// `Some(true)` when every vCPU thread is parked, `Some(false)` when at least
/// one runs (or is on its way in or out), `None` when there is no vCPU
/// thread (the guest has not been started).
pub fn vcpus_paused<'a>(comms: impl IntoIterator<Item = &'a str>) -> Option<bool> {
    let mut seen = false;
    for c in comms {
        let c = c.trim_end();
        let Some(rest) = c.strip_prefix(VCPU_THREAD_PREFIX) else {
            continue;
        };
        let (digits, paused) = match rest.strip_suffix(PAUSED_SUFFIX) {
            Some(d) => (d, true),
            None => (rest, false),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if !paused {
            return Some(false);
        }
        seen = true;
    }
    seen.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit_comm() {
        assert_eq!(vcpu_thread_name(3, false), "vcpu3");
        assert_eq!(vcpu_thread_name(63, true), "vcpu63-paused");
        assert!(vcpu_thread_name(999, true).len() <= 15);
    }

    #[test]
    fn paused_only_when_every_vcpu_is() {
        assert_eq!(vcpus_paused(["vessel-vmm", "stdin"]), None);
        assert_eq!(
            vcpus_paused(["vessel-vmm", "vcpu0", "vcpu1-paused"]),
            Some(false)
        );
        assert_eq!(
            vcpus_paused([
                "vessel-vmm\n",
                "vcpu0-paused\n",
                "vcpu1-paused\n",
                "irq-kick\n"
            ]),
            Some(true)
        );
        // Names that merely start with "vcpu" are not vCPU threads.
        assert_eq!(vcpus_paused(["vcpux", "vcpu-paused"]), None);
    }
}
