//! The container inside the guest: the workload gets its own pid, mount,
//! ipc and uts namespaces, as in container mode, so it sees neither the
//! agent (PID 1 of the guest, which keeps the initramfs as its root) nor
//! the guest's other processes; every exec joins those namespaces.
//!
//! Each child first joins the workload's cgroup in the guest (`cgroup.rs`),
//! and the workload's cgroup namespace has that group as its root.
//!
//! The pid namespace is the agent's `unshare(CLONE_NEWPID)`: every child
//! the agent forks afterwards (the workload first, as the namespace's
//! PID 1, then each exec) lands in it. The others are unshared by the
//! workload's child before it sets the container up, and entered by each
//! exec's child with setns.

use super::spawn::Failure;
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::os::fd::AsFd;

/// How a forked child gets into the container before it execs.
pub enum Enter<'a> {
    /// The workload: new mount, ipc and uts namespaces, then the
    /// container's set-up (rootfs, mounts, hostname, network, sysctls,
    /// masked paths), run in the child.
    Create(&'a dyn Fn() -> Result<(), Failure>),
    /// An exec: the workload's namespaces.
    Join(&'a Namespaces),
}

/// The workload's cgroup, mount, ipc and uts namespaces, held open for
/// execs.
pub struct Namespaces {
    /// In the order they are joined: the mount namespace last, as it moves
    /// the root.
    files: Vec<(File, CloneFlags)>,
}

impl Namespaces {
    /// The namespaces of the agent's child `pid` (the workload).
    pub fn of(pid: i32) -> Result<Namespaces, String> {
        let mut files = Vec::new();
        for (name, flag) in [
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ] {
            let path = format!("/proc/{pid}/ns/{name}");
            let f = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
            files.push((f, flag));
        }
        Ok(Namespaces { files })
    }
}

/// The agent's side, once, before the workload's fork: its children go
/// into a new pid namespace.
pub fn new_pid_namespace_for_children() -> Result<(), Failure> {
    unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| Failure::other(format!("unshare the workload's pid namespace: {e}")))
}

/// In the forked child: get into the container.
pub fn enter(how: &Enter) -> Result<(), Failure> {
    // First, while the agent's mounts are still this child's: the
    // workload's cgroup, which the cgroup namespace then has as its root.
    super::cgroup::join().map_err(Failure::other)?;
    match how {
        Enter::Create(set_up) => {
            unshare(
                CloneFlags::CLONE_NEWNS
                    | CloneFlags::CLONE_NEWIPC
                    | CloneFlags::CLONE_NEWUTS
                    | CloneFlags::CLONE_NEWCGROUP,
            )
            .map_err(|e| {
                Failure::other(format!(
                    "unshare the workload's mount, ipc, uts and cgroup namespaces: {e}"
                ))
            })?;
            set_up()
        }
        Enter::Join(ns) => {
            for (f, flag) in &ns.files {
                setns(f.as_fd(), *flag).map_err(|e| {
                    Failure::other(format!("join the workload's namespace ({flag:?}): {e}"))
                })?;
            }
            Ok(())
        }
    }
}
