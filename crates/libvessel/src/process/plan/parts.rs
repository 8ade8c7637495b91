//! The process half of the plan (argv, env, user, capabilities, rlimits,
//! seccomp, console), shared by `create` and `exec`.

use crate::isolation::caps::{self, CapSets};
use crate::isolation::mounts::cstring;
use crate::isolation::{rlimits, seccomp};
use crate::{Error, Result};
use oci_spec::runtime::Process;
use std::ffi::CString;

/// The user the process runs as.
#[derive(Debug, Clone, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub umask: Option<u32>,
}

/// The process half of the plan, shared by `create` and `exec`.
pub struct ProcessParts {
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub envp: Vec<CString>,
    pub envp_ptrs: Vec<*const libc::c_char>,
    /// Where execve looks for argv[0] (PATH lookup done as candidates).
    pub exec_candidates: Vec<CString>,
    pub cwd: CString,
    pub user: User,
    pub caps: CapSets,
    pub no_new_privs: bool,
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    pub seccomp: Option<seccomp::Program>,
    pub terminal: bool,
    /// process.consoleSize as (rows, columns), applied to the pty.
    pub console_size: Option<(u16, u16)>,
    /// vessel relays the pty itself (foreground `run`/`exec -t`): clear
    /// ONLCR, as runc does on the master it receives. A --console-socket
    /// receiver gets the kernel's default (containerd and conmon expect it).
    pub clear_onlcr: bool,
    pub oom_score_adj: Option<i32>,
    pub apparmor: Option<CString>,
    pub selinux_label: Option<CString>,
}

/// The largest uid or gid vessel runs a process as. Above it, ids are
/// negative as a signed int; (uid_t)-1 = 4294967295 makes setresuid and
/// setresgid leave the id unchanged, so the process would stay root.
pub const MAX_ID: u32 = i32::MAX as u32;

/// `what` must be in 0..=MAX_ID.
pub fn check_id(what: &str, id: u32) -> Result<()> {
    if id > MAX_ID {
        return Err(Error::invalid(format!(
            "{what} {id} is out of range: ids must be in 0..={MAX_ID}"
        )));
    }
    Ok(())
}

/// process.user: uid, gid and every additional gid in range.
pub fn check_user(u: &oci_spec::runtime::User) -> Result<()> {
    check_id("process.user.uid", u.uid())?;
    check_id("process.user.gid", u.gid())?;
    for g in u.additional_gids().iter().flatten() {
        check_id("process.user.additionalGids entry", *g)?;
    }
    Ok(())
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessParts {
    pub fn from_process(
        p: &Process,
        seccomp_spec: Option<&oci_spec::runtime::LinuxSeccomp>,
        seccomp_flags: &[String],
    ) -> Result<ProcessParts> {
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::invalid("process.args must not be empty"));
        }
        let argv: Vec<CString> = args
            .iter()
            .map(|a| cstring("process.args", a))
            .collect::<Result<_>>()?;
        let env = p.env().clone().unwrap_or_default();
        let envp: Vec<CString> = env
            .iter()
            .map(|e| cstring("process.env", e))
            .collect::<Result<_>>()?;
        let exec_candidates = exec_candidates(&args[0], &env)?;
        let u = p.user();
        check_user(u)?;
        let user = User {
            uid: u.uid(),
            gid: u.gid(),
            groups: u.additional_gids().clone().unwrap_or_default(),
            umask: u.umask(),
        };
        let capset = cap_sets(p);
        let rl = rlimits_of(p)?;
        let seccomp = match seccomp_spec {
            Some(s) => {
                seccomp::check_listener(s)?;
                Some(seccomp::compile_with_flags(s, seccomp_flags, &mut |w| {
                    crate::logging::warn(&w)
                })?)
            }
            None => None,
        };
        let cwd = cstring("process.cwd", p.cwd().as_os_str().as_encoded_bytes())?;
        let mut parts = ProcessParts {
            argv,
            argv_ptrs: Vec::new(),
            envp,
            envp_ptrs: Vec::new(),
            exec_candidates,
            cwd,
            user,
            caps: capset,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            rlimits: rl,
            seccomp,
            terminal: p.terminal().unwrap_or(false),
            console_size: console_size(p),
            clear_onlcr: false,
            oom_score_adj: p.oom_score_adj(),
            apparmor: p
                .apparmor_profile()
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| cstring("apparmorProfile", format!("exec {s}")))
                .transpose()?,
            selinux_label: p
                .selinux_label()
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| cstring("selinuxLabel", s))
                .transpose()?,
        };
        parts.fill_pointers();
        Ok(parts)
    }

    /// NULL-terminated pointer arrays into argv/envp (after any edit).
    pub fn fill_pointers(&mut self) {
        self.argv_ptrs = self.argv.iter().map(|a| a.as_ptr()).collect();
        self.argv_ptrs.push(std::ptr::null());
        self.envp_ptrs = self.envp.iter().map(|a| a.as_ptr()).collect();
        self.envp_ptrs.push(std::ptr::null());
    }
}

/// Where execve looks for `arg0`: itself when it has a '/', otherwise each
/// directory of the process's PATH (or the default one).
fn exec_candidates(arg0: &str, env: &[String]) -> Result<Vec<CString>> {
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    if arg0.contains('/') {
        Ok(vec![cstring("process.args", arg0)?])
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cstring("PATH", format!("{d}/{}", arg0)))
            .collect::<Result<_>>()
    }
}

/// process.capabilities as masks (all empty when absent).
fn cap_sets(p: &Process) -> CapSets {
    CapSets::from_oci(p.capabilities().as_ref(), caps::last_cap())
}

/// process.rlimits as setrlimit(2) arguments.
fn rlimits_of(p: &Process) -> Result<Vec<(libc::__rlimit_resource_t, libc::rlimit)>> {
    let mut rl = Vec::new();
    for r in p.rlimits().iter().flatten() {
        let name = serde_json::to_string(&r.typ()).unwrap_or_default();
        let name = name.trim_matches('"');
        let res = rlimits::resource(name)
            .ok_or_else(|| Error::invalid(format!("unknown rlimit {name:?}")))?;
        rl.push((
            res,
            libc::rlimit {
                rlim_cur: r.soft(),
                rlim_max: r.hard(),
            },
        ));
    }
    Ok(rl)
}

/// process.consoleSize as (rows, columns), when both are set.
pub fn console_size(p: &Process) -> Option<(u16, u16)> {
    p.console_size()
        .as_ref()
        .filter(|b| b.height() > 0 && b.width() > 0)
        .map(|b| {
            let clamp = |v: u64| v.min(u64::from(u16::MAX)) as u16;
            (clamp(b.height()), clamp(b.width()))
        })
}
