//! The cgroup of an `exec`'d process: the container's (or the sub-cgroup
//! holding its init when the container delegated its cgroup), or the
//! sub-cgroup `exec --cgroup` names.

use super::{fsio, tree::cgroup_holding, Cgroup, CgroupError, Layout};
use std::path::{Path, PathBuf};

impl Cgroup {
    /// Move an `exec`'d process into the container, next to its init.
    /// Like `add_task`, except where a cgroup2 directory refuses it with
    /// EBUSY: the container has delegated its cgroup (systemd inside does
    /// this), so the directory has controllers enabled for children and may
    /// hold no process itself ("no internal processes"). The process then
    /// joins the sub-cgroup holding `init_pid`, as runc does; it never
    /// leaves the container's tree.
    pub fn join_exec(&self, pid: i32, init_pid: i32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            let moved = match fsio::write(dir, "cgroup.procs", &pid.to_string()) {
                Err(CgroupError::Io { source, .. })
                    if source.raw_os_error() == Some(libc::EBUSY)
                        && self.unified.as_ref() == Some(dir) =>
                {
                    match cgroup_holding(dir, init_pid) {
                        Some(sub) if &sub != dir => {
                            fsio::write(&sub, "cgroup.procs", &pid.to_string())
                        }
                        _ => Err(CgroupError::Msg(format!(
                            "{} is not a leaf (it has sub-cgroups with controllers) and none of \
                             them holds the container's init (pid {init_pid})",
                            dir.display()
                        ))),
                    }
                }
                r => r,
            };
            moved.map_err(|e| {
                CgroupError::Msg(format!("move pid {pid} into {}: {e}", dir.display()))
            })?;
        }
        Ok(())
    }

    /// The container's cgroup as seen by `exec --cgroup` (runc 1.1): each
    /// argument is "<sub>" (every hierarchy; the only form on cgroup v2) or
    /// "<controller>[,<controller>...]:<sub>" (those v1 hierarchies; the
    /// others keep the container's directory). A sub-cgroup must exist and
    /// stay inside the container's directory. The result is passed to
    /// `join_exec` in place of `self`.
    pub fn for_exec_sub(&self, args: &[String]) -> Result<Cgroup, CgroupError> {
        let (all, per) = parse_exec_sub_args(args)?;
        let mut out = self.clone();
        if self.layout == Layout::V2 {
            if !per.is_empty() {
                return Err(CgroupError::Msg(
                    "must specify the sub-cgroup with no controller prefix on cgroup v2".into(),
                ));
            }
        } else {
            for (c, _) in &per {
                if !self.v1.iter().any(|d| d.controllers.iter().any(|x| x == c)) {
                    return Err(CgroupError::Msg(format!(
                        "unknown controller {c} in --cgroup"
                    )));
                }
            }
            for d in &mut out.v1 {
                let sub = all.as_ref().or_else(|| {
                    per.iter()
                        .find(|(c, _)| d.controllers.contains(c))
                        .map(|(_, s)| s)
                });
                if let Some(sub) = sub {
                    d.dir = d.dir.join(sub);
                }
            }
        }
        if let (Some(u), Some(sub)) = (&mut out.unified, &all) {
            *u = u.join(sub);
        }
        out.dirs = out.v1.iter().map(|d| d.dir.clone()).collect();
        out.dirs.extend(out.unified.iter().cloned());
        for d in &out.dirs {
            if !d.join("cgroup.procs").exists() {
                // runc's words (it fails when it adds the pid).
                return Err(CgroupError::Msg(format!(
                    "exec --cgroup: sub-cgroup {} does not exist: adding pid to \
                     {}: no such file or directory",
                    d.display(),
                    d.join("cgroup.procs").display()
                )));
            }
        }
        Ok(out)
    }
}

/// (v1 controller, sub-cgroup) pairs of `exec --cgroup`.
type PerController = Vec<(String, PathBuf)>;

/// `exec --cgroup` arguments as (the sub-cgroup for every hierarchy, the
/// sub-cgroup per v1 controller), each a clean relative path.
fn parse_exec_sub_args(args: &[String]) -> Result<(Option<PathBuf>, PerController), CgroupError> {
    let bad = |a: &str, why: &str| CgroupError::Msg(format!("invalid --cgroup argument: {a}{why}"));
    let mut all: Option<PathBuf> = None;
    let mut per: Vec<(String, PathBuf)> = Vec::new();
    for a in args {
        let (ctrls, sub) = match a.split_once(':') {
            Some((c, s)) if !s.contains(':') => (Some(c), s),
            Some(_) => return Err(bad(a, "")),
            None => (None, a.as_str()),
        };
        let mut clean = PathBuf::new();
        for comp in Path::new(sub).components() {
            match comp {
                std::path::Component::Normal(c) => clean.push(c),
                std::path::Component::RootDir | std::path::Component::CurDir => {}
                // runc's words: "<sub> is not a sub cgroup path".
                _ => {
                    return Err(CgroupError::Msg(format!(
                        "invalid --cgroup argument {a}: {sub} is not a sub cgroup path \
                         (\"..\" would leave the container's cgroup)"
                    )))
                }
            }
        }
        match ctrls {
            None if args.len() != 1 => {
                return Err(bad(a, " (missing <controller>: prefix)"));
            }
            None => all = Some(clean),
            Some(list) => {
                for c in list.split(',') {
                    if c.is_empty() {
                        return Err(bad(a, " (empty <controller> prefix)"));
                    }
                    if per.iter().any(|(p, _)| p == c) {
                        return Err(CgroupError::Msg(format!(
                            "invalid --cgroup argument(s): controller {c} specified multiple times"
                        )));
                    }
                    per.push((c.to_string(), clean.clone()));
                }
            }
        }
    }
    Ok((all, per))
}
