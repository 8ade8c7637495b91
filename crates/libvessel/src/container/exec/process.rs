//! The process description of `exec`, as runc builds it: the `--process`
//! file, or the container's process with the command-line overrides, then
//! the container's defaults for what is left out.

use super::ExecOptions;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The OCI process object to run, as runc's `getProcess` makes it: the
/// `--process` file as is, or the container's process with `args` and the
/// flags applied on top.
pub fn process_json(container_process: &Value, opts: &ExecOptions) -> Result<Value> {
    if let Some(path) = &opts.process {
        return read_process_file(path);
    }
    let mut p = container_process.clone();
    if !p.is_object() {
        p = json!({});
    }
    if opts.args.is_empty() {
        return Err(Error::invalid(
            "exec: arguments or --process are required (usage: exec <container-id> <command> [args...])",
        ));
    }
    p["args"] = json!(opts.args);
    if let Some(cwd) = opts.cwd.as_deref().filter(|c| !c.is_empty()) {
        p["cwd"] = json!(cwd);
    }
    if let Some(a) = opts.apparmor.as_deref().filter(|a| !a.is_empty()) {
        p["apparmorProfile"] = json!(a);
    }
    if let Some(l) = opts.process_label.as_deref().filter(|l| !l.is_empty()) {
        p["selinuxLabel"] = json!(l);
    }
    if !opts.caps.is_empty() {
        add_capabilities(&mut p, &opts.caps)?;
    }
    let mut env: Vec<Value> = p["env"].as_array().cloned().unwrap_or_default();
    env.extend(opts.env.iter().map(|e| json!(e)));
    p["env"] = Value::Array(env);
    p["terminal"] = json!(opts.tty);
    if opts.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    apply_user(&mut p, opts)?;
    validate_process(&p)?;
    Ok(p)
}

/// `--process`: the file's process object, as is.
fn read_process_file(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read process file", path))?;
    let p: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("parse process {}: {e}", path.display())))?;
    if !p.is_object() {
        return Err(Error::invalid(format!(
            "process {}: not a JSON object",
            path.display()
        )));
    }
    validate_process(&p)?;
    Ok(p)
}

/// `--cap`: each capability added to the bounding, effective and permitted
/// sets (and ambient when the process has an inheritable set).
fn add_capabilities(p: &mut Value, caps: &[String]) -> Result<()> {
    // Validate the names now: a typo must not silently grant nothing.
    crate::isolation::caps::mask_from_names(caps).map_err(Error::invalid)?;
    let had_inheritable = p["capabilities"]["inheritable"].is_array();
    for c in caps {
        let name = if c.starts_with("CAP_") {
            c.clone()
        } else {
            format!("CAP_{}", c.to_uppercase())
        };
        let mut sets = vec!["bounding", "effective", "permitted"];
        // Ambient needs inheritable, which --cap does not set (runc's rule).
        if had_inheritable {
            sets.push("ambient");
        }
        for set in sets {
            let cur = &mut p["capabilities"][set];
            if !cur.is_array() {
                *cur = json!([]);
            }
            if let Some(arr) = cur.as_array_mut() {
                if !arr.iter().any(|v| v.as_str() == Some(name.as_str())) {
                    arr.push(json!(name));
                }
            }
        }
    }
    Ok(())
}

/// `--user uid[:gid]` and `--additional-gids`.
fn apply_user(p: &mut Value, opts: &ExecOptions) -> Result<()> {
    if let Some(u) = opts.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u, None),
        };
        let uid: u32 = uid
            .parse()
            .map_err(|_| Error::invalid(format!("parsing {uid} as uid: invalid syntax")))?;
        crate::process::plan::check_id("exec --user: uid", uid)?;
        p["user"]["uid"] = json!(uid);
        if let Some(g) = gid {
            let gid: u32 = g
                .parse()
                .map_err(|_| Error::invalid(format!("parsing {g} as gid: invalid syntax")))?;
            crate::process::plan::check_id("exec --user: gid", gid)?;
            p["user"]["gid"] = json!(gid);
        }
    }
    for g in &opts.additional_gids {
        crate::process::plan::check_id("exec --additional-gids: gid", *g)?;
    }
    if !opts.additional_gids.is_empty() {
        let mut g: Vec<Value> = p["user"]["additionalGids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        g.extend(opts.additional_gids.iter().map(|x| json!(x)));
        p["user"]["additionalGids"] = Value::Array(g);
    }
    Ok(())
}

/// runc's validateProcessSpec.
fn validate_process(p: &Value) -> Result<()> {
    let cwd = p["cwd"].as_str().unwrap_or("");
    if cwd.is_empty() {
        return Err(Error::invalid("Cwd property must not be empty"));
    }
    if !cwd.starts_with('/') {
        return Err(Error::invalid("Cwd must be an absolute path"));
    }
    if p["args"].as_array().is_none_or(|a| a.is_empty()) {
        return Err(Error::invalid("args must not be empty"));
    }
    Ok(())
}

/// Fill what runc's setns path takes from the container when the process
/// leaves it out: capabilities, rlimits, apparmor, SELinux label; and HOME.
pub(super) fn fill_defaults(p: &mut Value, container_process: &Value, init_pid: i32) -> Result<()> {
    for key in ["capabilities", "apparmorProfile", "selinuxLabel"] {
        if p[key].is_null() && !container_process[key].is_null() {
            p[key] = container_process[key].clone();
        }
    }
    if p["rlimits"].as_array().is_none_or(|a| a.is_empty())
        && !container_process["rlimits"].is_null()
    {
        p["rlimits"] = container_process["rlimits"].clone();
    }
    if p["user"].is_null() {
        p["user"] = json!({"uid": 0, "gid": 0});
    }
    let mut env: Vec<Value> = p["env"].as_array().cloned().unwrap_or_default();
    let has_home = env
        .iter()
        .any(|e| e.as_str().is_some_and(|s| s.starts_with("HOME=")));
    if !has_home {
        let uid = p["user"]["uid"].as_u64().unwrap_or(0);
        let passwd = read_container_file(init_pid, c"etc/passwd", "/etc/passwd")?;
        env.push(json!(format!("HOME={}", home_of(&passwd, uid))));
        p["env"] = Value::Array(env);
    }
    Ok(())
}

/// The most vessel reads of a tenant's /etc/passwd (or /etc/group): it is
/// read on the host, outside the container's cgroup.
pub const MAX_USER_DB: u64 = 4 << 20;

/// A small text file of the container (`rel` is relative to its root), read
/// safely although the tenant controls it: resolved from the init's root
/// with every symlink kept inside it (RESOLVE_IN_ROOT, no magic links),
/// opened non-blocking (a FIFO cannot hang us), a regular file only, at
/// most MAX_USER_DB bytes. A missing file reads as empty.
fn read_container_file(init_pid: i32, rel: &std::ffi::CStr, name: &str) -> Result<String> {
    let what = |why: String| Error::invalid(format!("container's {name}: {why}"));
    let root_path = format!("/proc/{init_pid}/root");
    let root = std::fs::File::open(&root_path).map_err(Error::io("open", &root_path))?;
    let fd = match crate::process::child::open_in_root(
        root.as_raw_fd(),
        rel.as_ptr(),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
    ) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(String::new()),
        Err(e) => {
            return Err(what(format!(
                "open: {}",
                nix::errno::Errno::from_raw(e).desc()
            )))
        }
    };
    // SAFETY: a fresh fd we own.
    let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let buf = crate::untrusted_file::read_regular(f, MAX_USER_DB).map_err(what)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The home directory of `uid` in an /etc/passwd text, "/" when absent.
pub fn home_of(passwd: &str, uid: u64) -> String {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2].parse::<u64>().ok() == Some(uid))
        .map(|f| f[5].to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// runc's terminal/console-socket/detach rules.
pub(super) fn check_terminal(terminal: bool, detach: bool, socket: bool) -> Result<()> {
    if detach && terminal && !socket {
        return Err(Error::invalid(
            "cannot allocate tty if runc will detach without setting console socket",
        ));
    }
    if (!detach || !terminal) && socket {
        return Err(Error::invalid(
            "cannot use console socket if runc will not detach or allocate tty",
        ));
    }
    Ok(())
}
