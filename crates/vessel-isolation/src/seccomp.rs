//! Seccomp from the OCI profile (`linux.seccomp`), compiled to classic BPF in
//! pure Rust on top of the `seccompiler` crate.
//!
//! CONTRACT: `compile` runs in the parent before clone and allocates;
//! `Program::install` runs in the child and is async-signal-safe.
//!
//! # Where the filter is loaded
//! Everything vessel itself needs (cwd, close-on-exec, user, capabilities,
//! no_new_privs, LSM labels) is done before the filter, so a profile never
//! has to allow vessel's internals (`process::child::exec::exec_tail`). Without a
//! listener the filter is loaded after the wait for `start`, right before
//! the startContainer hooks (which run under it, as in runc) and `execve`.
//! With SCMP_ACT_NOTIFY it is loaded before the init reports ready, and the
//! listener fd goes to the parent (`send` + `sendmsg`, which a profile may
//! therefore not notify: `NOTIFY_FORBIDDEN`), which forwards it to the agent
//! at once; every later call can then be answered. Without no_new_privs the
//! kernel needs CAP_SYS_ADMIN to accept the filter: a process that drops it
//! keeps it until the filter is on, then one capset(2) drops it. So after
//! the filter vessel makes at most capset and execve.
//!
//! A profile that denies by default gets runc's -ENOSYS stub: a syscall
//! numbered above every syscall the profile names fails with ENOSYS instead
//! of the default action, so libc falls back to older calls (clone3 to clone).
//!
//! # How a profile becomes one BPF program
//! seccompiler builds filters with ONE match action and ONE mismatch action,
//! while an OCI profile gives each rule its own action. So `bpf::assemble`
//! builds one seccompiler filter per distinct action (with placeholder return
//! values), then stitches them: a placeholder "match" RET becomes that group's
//! real return value (so SCMP_ACT_NOTIFY, which seccompiler lacks, is patched
//! to SECCOMP_RET_USER_NOTIF = 0x7fc00000 there), and a placeholder "mismatch"
//! RET becomes a forward jump to the next group. Groups are laid out most
//! restrictive first (kill process, kill thread, trap, errno, notify, trace,
//! log, allow), so a call matching rules of several actions gets the most
//! restrictive one, the same precedence the kernel uses between stacked
//! filters. The program ends with the default action.
//!
//! # Rules, as runc/libseccomp treat them
//! - All conditions of one rule must hold (AND); several rules (entries) for
//!   the same syscall name are OR'ed. Arguments compare as 64-bit values.
//! - When one rule names the same argument index more than once, each of its
//!   conditions becomes a rule of its own (OR), as runc does.
//! - SCMP_CMP_MASKED_EQ: `value` is the mask, `valueTwo` the expected result.
//! - A rule whose action equals the default action is dropped (a no-op).
//! - An unknown syscall name is skipped with a warning through `warn`.
//!
//! # Architectures (x86_64 only)
//! Native x86_64 calls get the full rule set. 32-bit x86 (int 0x80) and x32
//! calls (bit 0x40000000 set) cannot be matched by name (no table for those
//! ABIs): when the profile lists SCMP_ARCH_X86 / SCMP_ARCH_X32 they get the
//! default action if that denies (errno, kill, trap) or if there are no rules,
//! and ENOSYS otherwise (a deny-list profile could be bypassed through them);
//! an ABI the profile does not list is killed (libseccomp's bad-arch action).
//! Other listed architectures are ignored with a warning.

mod bpf;
mod notify;
mod resolve;
mod syscalls_x86_64;
#[cfg(test)]
mod tests;

pub use notify::{recv_listener_message, send_listener};
pub(crate) use resolve::{plan, Cond, Match, Plan};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};

/// seccomp(2) operation that loads a filter.
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// Return value that hands the call to the user-space listener.
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// Syscalls a profile may not send to the listener: the init and `exec`
/// hand the listener fd to vessel with them right after loading the filter,
/// before any agent holds it, so notifying them would wait forever. (Unlike
/// runc, `write` is fine: vessel never writes before the agent has the fd.)
pub const NOTIFY_FORBIDDEN: &[&str] = &["send", "sendto", "sendmsg"];
/// Flag names that oci-spec 0.7 cannot parse; see `take_extra_flags`.
pub const EXTRA_FLAG_NAMES: &[&str] = &["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"];

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{0}")]
    Msg(String),
    #[error("syscall {name}: {why}")]
    Rule { name: String, why: String },
    #[error("building the BPF program: {0}")]
    Backend(String),
    #[error("seccomp listener {path}: {what}: {source}")]
    Listener {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone, Default)]
pub struct Program {
    pub filter: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits.
    pub flags: libc::c_ulong,
    /// The profile uses SCMP_ACT_NOTIFY: install returns a listener fd.
    pub wants_listener: bool,
}

/// What the filter returns for a call, resolved from an OCI action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Action {
    // Declared most restrictive first: the derived Ord is the layout order.
    KillProcess,
    KillThread,
    Trap,
    Errno(u16),
    Notify,
    Trace(u16),
    Log,
    Allow,
}

impl Action {
    /// The filter's return value (SECCOMP_RET_*).
    pub(crate) fn ret(self) -> u32 {
        match self {
            Action::KillProcess => 0x8000_0000,
            Action::KillThread => 0x0000_0000,
            Action::Trap => 0x0003_0000,
            Action::Errno(e) => 0x0005_0000 | u32::from(e),
            Action::Notify => SECCOMP_RET_USER_NOTIF,
            Action::Trace(d) => 0x7ff0_0000 | u32::from(d),
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }

    /// Denies the call outright (what a default-deny profile does).
    fn denies(self) -> bool {
        matches!(
            self,
            Action::KillProcess | Action::KillThread | Action::Trap | Action::Errno(_)
        )
    }

    fn from_oci(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<Action, String> {
        // runc: ERRNO and TRACE default to EPERM; the data field is 16 bits.
        let data = || -> Result<u16, String> {
            let v = errno_ret.unwrap_or(libc::EPERM as u32);
            u16::try_from(v).map_err(|_| format!("errnoRet {v} does not fit in 16 bits"))
        };
        Ok(match action {
            LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
                Action::KillThread
            }
            LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
            LinuxSeccompAction::ScmpActTrap => Action::Trap,
            LinuxSeccompAction::ScmpActErrno => Action::Errno(data()?),
            LinuxSeccompAction::ScmpActNotify => Action::Notify,
            LinuxSeccompAction::ScmpActTrace => Action::Trace(data()?),
            LinuxSeccompAction::ScmpActLog => Action::Log,
            LinuxSeccompAction::ScmpActAllow => Action::Allow,
        })
    }
}

/// The x86_64 number of a syscall name.
pub fn syscall_nr(name: &str) -> Option<i64> {
    syscalls_x86_64::SYSCALLS_X86_64
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| syscalls_x86_64::SYSCALLS_X86_64[i].1)
}

/// Compile the profile. Warnings (unknown syscall names) go to `warn`.
pub fn compile(
    seccomp: &LinuxSeccomp,
    warn: &mut dyn FnMut(String),
) -> Result<Program, SeccompError> {
    compile_with_flags(seccomp, &[], warn)
}

/// `compile`, plus filter flags oci-spec cannot represent (names from
/// `EXTRA_FLAG_NAMES`, as returned by `take_extra_flags`).
pub fn compile_with_flags(
    seccomp: &LinuxSeccomp,
    extra_flags: &[String],
    warn: &mut dyn FnMut(String),
) -> Result<Program, SeccompError> {
    let plan = plan(seccomp, warn)?;
    let wants_listener = plan.groups.contains_key(&Action::Notify);
    if wants_listener && seccomp.listener_path().is_none() {
        return Err(SeccompError::Msg(
            "SCMP_ACT_NOTIFY is used but linux.seccomp.listenerPath is not set".into(),
        ));
    }
    let flags = filter_flags(seccomp, extra_flags, wants_listener, warn)?;
    let filter = bpf::assemble(&plan)?;
    Ok(Program {
        filter,
        flags,
        wants_listener,
    })
}

/// Does the profile send any syscall to a listener (SCMP_ACT_NOTIFY)?
pub fn uses_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == LinuxSeccompAction::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|c| c.action() == LinuxSeccompAction::ScmpActNotify)
}

/// When the profile uses SCMP_ACT_NOTIFY, `listenerPath` must name an
/// existing UNIX socket on the host: checked before anything is created, so a
/// missing agent fails `create` (and `exec`) with a clear error instead of
/// leaving a container whose notified syscalls nobody answers.
pub fn check_listener(seccomp: &LinuxSeccomp) -> Result<(), SeccompError> {
    if !uses_notify(seccomp) {
        return Ok(());
    }
    let path = seccomp
        .listener_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_empty() {
        return Err(SeccompError::Msg(
            "SCMP_ACT_NOTIFY is used but linux.seccomp.listenerPath is not set".into(),
        ));
    }
    if !path.starts_with('/') {
        return Err(SeccompError::Msg(format!(
            "linux.seccomp.listenerPath {path:?} must be an absolute path to a UNIX socket \
             (abstract sockets are not supported)"
        )));
    }
    let meta = std::fs::metadata(&path).map_err(|source| SeccompError::Listener {
        path: path.clone(),
        what: "failed to connect with seccomp agent",
        source,
    })?;
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_socket() {
        return Err(SeccompError::Listener {
            path,
            what: "failed to connect with seccomp agent",
            source: std::io::Error::other("not a UNIX socket"),
        });
    }
    Ok(())
}

/// Remove from a raw config.json the `linux.seccomp.flags` entries oci-spec
/// 0.7 cannot deserialize (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) and return
/// them, so the integrator can parse the rest and pass these to
/// `compile_with_flags`.
pub fn take_extra_flags(config: &mut serde_json::Value) -> Vec<String> {
    let Some(flags) = config
        .pointer_mut("/linux/seccomp/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return Vec::new();
    };
    let mut taken = Vec::new();
    flags.retain(|f| match f.as_str() {
        Some(name) if EXTRA_FLAG_NAMES.contains(&name) => {
            taken.push(name.to_owned());
            false
        }
        _ => true,
    });
    taken
}

/// SECCOMP_FILTER_FLAG_* bits for the profile, dropping (with a warning)
/// those this kernel does not know.
fn filter_flags(
    seccomp: &LinuxSeccomp,
    extra: &[String],
    wants_listener: bool,
    warn: &mut dyn FnMut(String),
) -> Result<libc::c_ulong, SeccompError> {
    let mut wanted: Vec<(String, libc::c_ulong)> = Vec::new();
    for f in seccomp.flags().iter().flatten() {
        let bit = match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
        };
        wanted.push((f.to_string(), bit));
    }
    for name in extra {
        match name.as_str() {
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => {
                if !wants_listener {
                    warn(format!(
                        "seccomp: {name} ignored: the profile uses no SCMP_ACT_NOTIFY"
                    ));
                    continue;
                }
                wanted.push((name.clone(), libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV));
            }
            other => {
                return Err(SeccompError::Msg(format!(
                    "seccomp flag {other} is not supported"
                )))
            }
        }
    }
    let mut flags = if wants_listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    for (name, bit) in wanted {
        if kernel_has_flag(bit) {
            flags |= bit;
        } else {
            warn(format!(
                "seccomp: {name} is not supported by this kernel, ignored"
            ));
        }
    }
    if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 && wants_listener {
        // TSYNC and NEW_LISTENER together are refused unless TSYNC_ESRCH is set.
        flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    }
    Ok(flags)
}

/// Does the running kernel know this filter flag? With a NULL program the
/// kernel checks the flags first: EFAULT means known, EINVAL unknown.
fn kernel_has_flag(bit: libc::c_ulong) -> bool {
    // WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
    let probe = if bit == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
        bit | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        bit
    };
    // SAFETY: a NULL program makes the kernel fail with EFAULT before it
    // installs anything; nothing is read from or written to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            probe,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}

impl Program {
    /// Load the filter into the calling thread (async-signal-safe: raw
    /// syscalls only). Returns the listener fd when `wants_listener`, else -1.
    pub fn install(&self) -> Result<i32, nix::errno::Errno> {
        let Ok(len) = u16::try_from(self.filter.len()) else {
            return Err(nix::errno::Errno::E2BIG);
        };
        let prog = libc::sock_fprog {
            len,
            // The kernel only reads the program.
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `self.filter`, alive for the whole call;
        // seccomp(2) copies the program and touches nothing else of ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            Err(nix::errno::Errno::last())
        } else if self.wants_listener {
            Ok(rc as i32)
        } else {
            Ok(-1)
        }
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }
}
