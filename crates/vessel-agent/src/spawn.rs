//! Start the workload: PATH lookup (as runc does it), then fork and exec
//! with the spec's user, groups, umask, rlimits, cwd and environment, its
//! stdio on pipes the agent relays.

use super::spec::Process;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A set-up failure with the exit code it maps to: 127 not found,
/// 126 not executable, 125 anything else (libkrun's and Docker's choice).
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

impl Failure {
    pub fn other(msg: impl Into<String>) -> Failure {
        Failure {
            code: 125,
            msg: msg.into(),
        }
    }
    fn from_errno(what: &str, errno: i32) -> Failure {
        let code = match errno {
            libc::ENOENT | libc::ENOTDIR => 127,
            libc::EACCES | libc::ENOEXEC | libc::EPERM | libc::EISDIR => 126,
            _ => 125,
        };
        Failure {
            code,
            msg: format!("{what}: {}", std::io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Resolve args[0] against the PATH of the process's own environment.
pub fn resolve(arg0: &str, env: &[String]) -> Result<String, Failure> {
    if arg0.is_empty() {
        return Err(Failure::other("process.args is empty"));
    }
    if arg0.contains('/') {
        return Ok(arg0.to_owned());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = format!("{dir}/{arg0}");
        match std::fs::metadata(&cand) {
            Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => return Ok(cand),
            Ok(md) if !md.is_dir() => {
                denied.get_or_insert(cand);
            }
            _ => {}
        }
    }
    match denied {
        Some(c) => Err(Failure {
            code: 126,
            msg: format!("exec: {c:?}: permission denied"),
        }),
        None => Err(Failure {
            code: 127,
            msg: format!("exec: {arg0:?}: executable file not found in $PATH"),
        }),
    }
}

/// The agent's ends of the workload's stdio.
pub struct Workload {
    pub pid: i32,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Failure> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Failure::other(format!(
            "pipe2: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstring(s: &str, what: &str) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| Failure::other(format!("{what} {s:?} contains a NUL byte")))
}

/// Which step failed in the child (sent back over the error pipe).
const STEPS: &[&str] = &[
    "setrlimit",
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "no_new_privs",
    "exec",
    "dup2",
    "setsid",
];

/// Fork and exec the workload.
pub fn start(p: &Process) -> Result<Workload, Failure> {
    let arg0 = p.args.first().map(String::as_str).unwrap_or("");
    let path = resolve(arg0, &p.env)?;
    let path_c = cstring(&path, "executable path")?;
    let argv_c: Vec<CString> = p
        .args
        .iter()
        .map(|a| cstring(a, "argument"))
        .collect::<Result<_, _>>()?;
    let envp_c: Vec<CString> = p
        .env
        .iter()
        .map(|e| cstring(e, "environment entry"))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let cwd = if p.cwd.is_empty() {
        "/"
    } else {
        p.cwd.as_str()
    };
    let cwd_c = cstring(cwd, "cwd")?;
    let mut limits = Vec::new();
    for r in &p.rlimits {
        let res = vessel_common::rlimits::resource(&r.kind)
            .ok_or_else(|| Failure::other(format!("unknown rlimit {:?}", r.kind)))?;
        limits.push((
            res,
            libc::rlimit {
                rlim_cur: r.soft,
                rlim_max: r.hard,
            },
        ));
    }
    let groups: Vec<libc::gid_t> = p.user.additional_gids.clone();
    let (uid, gid, umask) = (p.user.uid, p.user.gid, p.user.umask);
    let nnp = p.no_new_privileges;

    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    let status_fd = status_w.as_raw_fd();

    // SAFETY: the agent is single-threaded, so the child may run anything
    // between fork and exec; it uses only data prepared above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Failure::other(format!(
            "fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if pid == 0 {
        // SAFETY: child side; every pointer refers to data prepared before the fork.
        unsafe {
            let fail = |step: usize| -> ! {
                let errno = *libc::__errno_location();
                let msg = [step as i32, errno];
                libc::write(status_fd, msg.as_ptr().cast(), std::mem::size_of_val(&msg));
                libc::_exit(127);
            };
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if libc::setsid() < 0 {
                fail(8);
            }
            for (target, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, target as RawFd) < 0 {
                    fail(7);
                }
            }
            for (res, lim) in &limits {
                if libc::setrlimit(*res, lim) != 0 {
                    fail(0);
                }
            }
            if let Some(m) = umask {
                libc::umask(m as libc::mode_t);
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                fail(1);
            }
            if libc::setgid(gid) != 0 {
                fail(2);
            }
            if libc::setuid(uid) != 0 {
                fail(3);
            }
            if libc::chdir(cwd_c.as_ptr()) != 0 {
                fail(4);
            }
            if nnp && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                fail(5);
            }
            libc::execve(path_c.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(6);
        }
    }
    drop((in_r, out_w, err_w, status_w));
    // The status pipe closes on exec (O_CLOEXEC): no bytes means success.
    let mut buf = [0u8; 8];
    let mut f = std::fs::File::from(status_r);
    let n = std::io::Read::read(&mut f, &mut buf).unwrap_or(0);
    if n == 8 {
        let step = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let mut status = 0;
        // SAFETY: reaping our own child that has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let name = STEPS.get(step).copied().unwrap_or("setup");
        let what = match name {
            "exec" => format!("exec {path:?}"),
            "chdir" => format!("chdir {cwd:?}"),
            other => other.to_owned(),
        };
        let mut fail = Failure::from_errno(&what, errno);
        if name != "exec" {
            fail.code = 125;
        }
        return Err(fail);
    }
    Ok(Workload {
        pid,
        stdin: Some(in_w),
        stdout: out_r,
        stderr: err_r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_finds_executables_on_the_process_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(resolve("sh", &env).unwrap().ends_with("/sh"));
        assert_eq!(resolve("./x", &env).unwrap(), "./x");
        let err = resolve("no-such-program-here", &env).unwrap_err();
        assert_eq!(err.code, 127);
        assert!(err.msg.contains("not found in $PATH"));
        assert_eq!(resolve("", &env).unwrap_err().code, 125);
    }

    #[test]
    fn resolve_reports_a_non_executable_match() {
        let dir = std::env::temp_dir().join(format!("vessel-agent-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plain"), b"data").unwrap();
        let env = vec![format!("PATH={}", dir.display())];
        assert_eq!(resolve("plain", &env).unwrap_err().code, 126);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errno_maps_to_docker_exit_codes() {
        assert_eq!(Failure::from_errno("x", libc::ENOENT).code, 127);
        assert_eq!(Failure::from_errno("x", libc::EACCES).code, 126);
        assert_eq!(Failure::from_errno("x", libc::EIO).code, 125);
    }
}
