//! cgroups for one container: v1, hybrid (v1 controllers plus a cgroup2
//! mount with controllers at /sys/fs/cgroup/unified) and pure v2.
//!
//! CONTRACT used by the rest of vessel (the cgroups owner fills in the bodies):
//! - `Cgroup::resolve` computes paths only (no side effects), so bad input is
//!   refused before anything is created.
//! - `Cgroup` is Serialize/Deserialize: it is stored in state.json so later
//!   commands act on exactly the directories `create` made.

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Msg(String),
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    V1,
    Hybrid,
    V2,
}

/// The cgroup directories of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub layout: Layout,
    /// Every directory that belongs to the container (one per v1 hierarchy,
    /// plus the unified one where there is one).
    pub dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// Resolve `linux.cgroupsPath` (None: a default under "vessel/<id>") into
    /// directories on this host. Rejects relative paths with "..".
    pub fn resolve(_cgroups_path: Option<&str>, _id: &str) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup {
            layout: Layout::V1,
            dirs: vec![],
        })
    }
    /// mkdir the directories (parents too), enabling v2 controllers on the way.
    pub fn create(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    /// Write the resource limits (create and `update`).
    pub fn apply(&self, _res: &LinuxResources) -> Result<(), CgroupError> {
        Ok(())
    }
    /// Move a process into every directory.
    pub fn add_task(&self, _pid: i32) -> Result<(), CgroupError> {
        Ok(())
    }
    /// Pids in the cgroup (for ps, kill --all, delete).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Ok(vec![])
    }
    pub fn freeze(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn thaw(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        Ok(false)
    }
    /// runc's `events --stats` "data" object (cpu, memory, pids, blkio, hugetlb).
    pub fn stats(&self) -> Result<serde_json::Value, CgroupError> {
        Ok(serde_json::json!({}))
    }
    /// The OOM-kill counter (memory.events oom_kill on v2, memory.oom_control on v1).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        Ok(0)
    }
    /// Remove the directories (retrying EBUSY briefly). Missing dirs are fine.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        Ok(())
    }
}
