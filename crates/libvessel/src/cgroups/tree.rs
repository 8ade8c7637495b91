//! The cgroup directory tree: make it, walk it for processes, remove it
//! depth first.

use super::CgroupError;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(super) fn mkdir_p(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(dir).map_err(|source| CgroupError::Io {
        what: "create cgroup directory".into(),
        path: dir.to_path_buf(),
        source,
    })
}

pub(super) fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let text = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                what: "read".into(),
                path: dir.join("cgroup.procs"),
                source,
            })
        }
    };
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for child in subdirs(dir) {
        collect_pids(&child, out)?;
    }
    Ok(())
}

/// The directory at or below `dir` whose cgroup.procs lists `pid`.
pub(super) fn cgroup_holding(dir: &Path, pid: i32) -> Option<PathBuf> {
    let listed = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().any(|l| l.trim().parse() == Ok(pid)))
        .unwrap_or(false);
    if listed {
        return Some(dir.to_path_buf());
    }
    subdirs(dir).iter().find_map(|d| cgroup_holding(d, pid))
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Depth-first rmdir (cgroupfs directories only hold kernel files, which
/// rmdir takes with them).
pub(super) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for child in subdirs(dir) {
        remove_tree(&child)?;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    what: "remove cgroup directory".into(),
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}
