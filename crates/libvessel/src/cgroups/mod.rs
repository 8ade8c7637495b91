//! cgroups for one container: v1, hybrid (v1 controllers plus a cgroup2
//! mount with controllers at /sys/fs/cgroup/unified) and pure v2.
//!
//! CONTRACT used by the rest of vessel:
//! - `Cgroup::resolve` computes paths only (no side effects), so bad input is
//!   refused before anything is created.
//! - `Cgroup` is Serialize/Deserialize: it is stored in state.json so later
//!   commands act on exactly the directories `create` made.
//!
//! Module shape:
//! - `detect`: pure parsing of /proc/self/mountinfo and /proc/self/cgroup,
//!   layout detection, cgroupsPath validation and path planning (runc's
//!   cgroupfs semantics), shares->weight conversions. Unit-tested without root.
//! - `fsio`: cgroupfs reads/writes whose errors name file, value and errno; a
//!   missing knob is `CgroupError::Missing`, never a silent success.
//! - `v1`: limits through the v1 hierarchies (memory, cpu, cpuset, pids,
//!   blkio, hugetlb, devices allow/deny) and the v1 freezer.
//! - `v2`: limits through a cgroup2 directory (pure v2, or the unified
//!   hierarchy of a hybrid host for the controllers that live there, e.g.
//!   hugetlb here), subtree_control, cgroup.freeze.
//! - `stats`: runc's `events --stats` "data" object from either flavour.
//! - this file: the `Cgroup` type and the lifecycle (create, add_task, pids,
//!   destroy) that is the same for every layout.
//!
//! Why not the cgroups-rs crate: it classifies a hybrid host as plain v1 and
//! so cannot place controllers (hugetlb on this host) that are only available
//! on the unified cgroup2 mount; it also guesses v1 mountpoints by name. The
//! kernel interface is a few files per controller, so plain std::fs is less
//! code than working around it.

mod detect;

/// mountinfo's field unescaping, for the other readers of /proc/self/mountinfo.
pub(crate) use detect::unescape as unescape_mountinfo;
mod devices_bpf;
mod exec;
mod fsio;
mod stats;
mod tree;
use tree::{collect_pids, mkdir_p, remove_tree};
mod v1;
mod v2;

pub use detect::{blkio_weight_to_io_weight, shares_to_weight, DEFAULT_ROOT};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Msg(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host's kernel has no such knob (controller option not built in,
    /// swap accounting off, no CFQ/BFQ for blkio weight, ...).
    #[error("{} does not exist: this host's cgroups do not support that limit", path.display())]
    Missing { path: PathBuf },
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    V1,
    Hybrid,
    V2,
}

/// The container's directory in one v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    /// The hierarchy's controllers as mounted, e.g. ["cpu", "cpuacct"], or
    /// ["name=systemd"] for a named hierarchy (joined, never limited).
    pub controllers: Vec<String>,
    pub dir: PathBuf,
}

/// The cgroup directories of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub layout: Layout,
    /// Every directory that belongs to the container (one per v1 hierarchy,
    /// plus the unified one where there is one).
    pub dirs: Vec<PathBuf>,
    /// The v1 hierarchies (empty on V2).
    #[serde(default)]
    pub v1: Vec<V1Dir>,
    /// The cgroup2 directory (V2, and Hybrid's unified hierarchy).
    #[serde(default)]
    pub unified: Option<PathBuf>,
    /// The cgroup2 mountpoint `unified` lives under (create walks from it).
    #[serde(default)]
    pub unified_mountpoint: Option<PathBuf>,
    /// Controllers available on the cgroup2 mount when resolved (its root
    /// cgroup.controllers): on Hybrid these are handled through `unified`.
    #[serde(default)]
    pub unified_controllers: Vec<String>,
}

/// Where one controller's files are for this container.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl Cgroup {
    /// Resolve `linux.cgroupsPath` (None: "/vessel/<id>") into directories on
    /// this host. Absolute paths are below each hierarchy's root; relative
    /// ones below the caller's own cgroup (runc's cgroupfs driver; on pure v2
    /// the parent of the caller's cgroup, as runc's fs2 driver does). Rejects
    /// ".." and systemd "slice:prefix:name" paths. Reads /proc only.
    pub fn resolve(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup, CgroupError> {
        let inner = detect::inner_path(cgroups_path, id)?;
        let mountinfo = fsio::read(Path::new("/proc/self/mountinfo"))?;
        let own_text = fsio::read(Path::new("/proc/self/cgroup"))?;
        let own = detect::parse_proc_cgroup(&own_text)?;
        let mounts: Vec<detect::CgroupMount> = detect::parse_mountinfo(&mountinfo)
            .into_iter()
            .filter(is_visible)
            .collect();
        let plan = detect::plan(&mounts, &own, &inner)?;
        let unified_controllers = plan
            .unified_mountpoint
            .as_ref()
            .and_then(|m| fsio::read_opt(&m.join("cgroup.controllers")))
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Cgroup::from_plan(plan, unified_controllers))
    }

    /// The cgroupsPath for a container whose spec gives none, unique per
    /// state root (see `detect::default_cgroups_path`). The root is made
    /// canonical (its longest existing ancestor is resolved), so two
    /// spellings of one root give one path.
    pub fn default_path(root: &Path, id: &str) -> String {
        let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let mut existing = abs.as_path();
        let mut rest = Vec::new();
        let canon = loop {
            if let Ok(c) = std::fs::canonicalize(existing) {
                break c;
            }
            match (existing.parent(), existing.file_name()) {
                (Some(p), Some(n)) => {
                    rest.push(n.to_os_string());
                    existing = p;
                }
                _ => break abs.clone(),
            }
        };
        let full = rest.iter().rev().fold(canon, |acc, n| acc.join(n));
        detect::default_cgroups_path(&full, id)
    }

    fn from_plan(plan: detect::Plan, unified_controllers: Vec<String>) -> Cgroup {
        let mut dirs: Vec<PathBuf> = plan.v1.iter().map(|d| d.dir.clone()).collect();
        dirs.extend(plan.unified.iter().cloned());
        Cgroup {
            layout: plan.layout,
            dirs,
            v1: plan.v1,
            unified: plan.unified,
            unified_mountpoint: plan.unified_mountpoint,
            unified_controllers,
        }
    }

    /// The directory handling `controller`: its v1 hierarchy, else the
    /// cgroup2 directory when the controller is available there.
    pub fn target(&self, controller: &str) -> Option<Target<'_>> {
        if self.layout == Layout::V2 {
            return self.unified.as_deref().map(Target::V2);
        }
        if let Some(d) = self
            .v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
        {
            return Some(Target::V1(&d.dir));
        }
        match &self.unified {
            Some(u) if self.unified_controllers.iter().any(|c| c == controller) => {
                Some(Target::V2(u))
            }
            _ => None,
        }
    }

    /// Like `target`, but a limit with nowhere to go is an error: no such
    /// controller on the host, or a cgroup2 directory whose parent does not
    /// enable it (its cgroup.controllers lacks it, so the controller's files
    /// are missing): a delegated subtree (rootless) has only the
    /// controllers delegated to its owner.
    pub(crate) fn need(&self, controller: &str, what: &str) -> Result<Target<'_>, CgroupError> {
        let target = self.target(controller).ok_or_else(|| {
            CgroupError::Msg(format!(
                "cannot set {what}: the {controller} controller is not available on this host"
            ))
        })?;
        if let Target::V2(dir) = target {
            if let Some(have) = fsio::read_opt(&dir.join("cgroup.controllers")) {
                if !have.split_whitespace().any(|c| c == controller) {
                    return Err(CgroupError::Msg(format!(
                        "cannot set {what}: the {controller} controller is not enabled for {} \
                         (it has: {}): the parent cgroup's cgroup.subtree_control does not \
                         give it, as in a delegated cgroup whose owner was not given \
                         {controller}",
                        dir.display(),
                        match have.trim() {
                            "" => "none",
                            h => h,
                        }
                    )));
                }
            }
        }
        Ok(target)
    }

    /// Refuse a cgroup that is already in use: one holding processes (another
    /// container's: the same cgroupsPath, or the same id under another
    /// `--root` with a path that is not unique per root; joining it would
    /// let this container's `delete -f` kill them), or one that is frozen
    /// (the init would block there forever). Call before `create`; an empty,
    /// thawed directory that exists already is fine, as in runc. The error
    /// starts with runc's words ("container's cgroup is not empty", a
    /// warning in runc) for tooling that looks for them.
    pub fn check_unused(&self) -> Result<(), CgroupError> {
        for dir in self.dirs.iter().filter(|d| d.is_dir()) {
            let mut pids = Vec::new();
            collect_pids(dir, &mut pids)?;
            if !pids.is_empty() {
                return Err(CgroupError::Msg(format!(
                    "container's cgroup is not empty: {} holds {} process(es) this \
                     container did not start (pid {}); another container uses this \
                     cgroupsPath",
                    dir.display(),
                    pids.len(),
                    pids[0]
                )));
            }
        }
        self.check_thawed()
    }

    /// Refuse a cgroup that is frozen, by its own freezer or a parent's
    /// (runc: "container's cgroup unexpectedly frozen"); a process moved
    /// there would stop before it could report back.
    pub fn check_thawed(&self) -> Result<(), CgroupError> {
        let (dir, frozen) = match self.freezer() {
            Ok(Target::V1(dir)) if dir.is_dir() => (dir, v1::is_frozen(dir)?),
            Ok(Target::V2(dir)) if dir.is_dir() => (
                dir,
                fsio::keyed(&dir.join("cgroup.events"), "frozen") == Some(1) || v2::is_frozen(dir)?,
            ),
            _ => return Ok(()),
        };
        if frozen {
            return Err(CgroupError::Msg(format!(
                "container's cgroup unexpectedly frozen: {} is frozen (by itself or a \
                 parent): thaw it first, a container's init cannot start there",
                dir.display()
            )));
        }
        Ok(())
    }

    /// mkdir the directories (parents too), enabling v2 controllers on the way.
    pub fn create(&self) -> Result<(), CgroupError> {
        for d in &self.v1 {
            mkdir_p(&d.dir)?;
            if d.controllers.iter().any(|c| c == "cpuset") {
                v1::init_cpuset(&d.dir)?;
            }
        }
        if let (Some(dir), Some(mnt)) = (&self.unified, &self.unified_mountpoint) {
            v2::create(mnt, dir)?;
        }
        Ok(())
    }

    /// Write the resource limits (create and `update`).
    /// Each controller goes to the directory `target` picks, so a hybrid
    /// host uses v1 files for its v1 controllers and cgroup2 files for the
    /// ones on the unified mount. A section that sets nothing needs no
    /// controller; one that sets something the host lacks is an error.
    pub fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = res.memory().as_ref().filter(|m| memory_is_set(m)) {
            match self.need("memory", "memory limits")? {
                Target::V1(d) => v1::set_memory(d, m)?,
                Target::V2(d) => v2::set_memory(d, m)?,
            }
        }
        if let Some(c) = res.cpu() {
            if cpu_is_set(c) {
                match self.need("cpu", "CPU limits")? {
                    Target::V1(d) => v1::set_cpu(d, c)?,
                    Target::V2(d) => v2::set_cpu(d, c)?,
                }
            }
            if c.cpus().as_deref().is_some_and(|s| !s.is_empty())
                || c.mems().as_deref().is_some_and(|s| !s.is_empty())
            {
                match self.need("cpuset", "cpus/mems")? {
                    Target::V1(d) | Target::V2(d) => v1::set_cpuset(d, c)?,
                }
            }
        }
        if let Some(p) = res.pids().filter(|p| p.limit() != 0) {
            match self.need("pids", "pids.limit")? {
                Target::V1(d) | Target::V2(d) => v1::set_pids(d, p.limit())?,
            }
        }
        if let Some(b) = res.block_io().as_ref().filter(|b| blkio_is_set(b)) {
            let ctrl = if self.layout == Layout::V2 {
                "io"
            } else {
                "blkio"
            };
            match self.need(ctrl, "blockIO limits")? {
                Target::V1(d) => v1::set_blkio(d, b)?,
                Target::V2(d) => v2::set_io(d, b)?,
            }
        }
        if let Some(h) = res.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
            match self.need("hugetlb", "hugepageLimits")? {
                Target::V1(d) => v1::set_hugetlb(d, h)?,
                Target::V2(d) => v2::set_hugetlb(d, h)?,
            }
        }
        if let Some(rules) = res.devices() {
            self.apply_devices(rules)?;
        }
        if let Some(map) = res.unified().as_ref().filter(|m| !m.is_empty()) {
            // runc's fs (v1) driver, which also drives hybrid hosts, refuses
            // any unified key: the limits live in the v1 hierarchies, so a
            // cgroup2 key would bind nothing the tenant is charged against.
            let dir = match (&self.unified, self.layout) {
                (Some(dir), Layout::V2) => dir,
                _ => {
                    return Err(CgroupError::Msg(
                        "invalid configuration: cannot use unified on cgroup v1 \
                         (linux.resources.unified needs a pure cgroup v2 host)"
                            .into(),
                    ))
                }
            };
            v2::set_unified(dir, map, None)?;
        }
        Ok(())
    }

    /// The device allowlist: on v1 (and Hybrid) the devices cgroup enforces
    /// it, so it is rewritten as deny-all, `rules` in order, then runc's
    /// default devices. `apply` calls this only when `resources.devices` is
    /// present (so an `update` without devices does not briefly deny all);
    /// create always calls it, with `resources.devices` only (none: deny-all
    /// plus the defaults): `linux.devices` grants nothing, as in runc. On pure v2 the same rules become
    /// a BPF device program on the container's directory (`devices_bpf`),
    /// replacing the one a previous call attached.
    pub fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        if self.layout == Layout::V2 {
            return match &self.unified {
                Some(dir) => devices_bpf::set(dir, rules),
                None => Ok(()),
            };
        }
        match self.target("devices") {
            Some(Target::V1(d)) => v1::set_devices(d, rules),
            _ => Ok(()),
        }
    }

    /// Move a process into every directory.
    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            fsio::write(dir, "cgroup.procs", &pid.to_string()).map_err(|e| {
                CgroupError::Msg(format!("move pid {pid} into {}: {e}", dir.display()))
            })?;
        }
        Ok(())
    }

    /// Pids in the cgroup and its sub-cgroups (for ps, kill --all, delete).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self
            .unified
            .iter()
            .chain(self.v1.iter().map(|d| &d.dir))
            .find(|d| d.join("cgroup.procs").exists());
        let mut pids = Vec::new();
        if let Some(dir) = dir {
            collect_pids(dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            Target::V1(dir) => v1::set_frozen(dir, true),
            Target::V2(dir) => v2::set_frozen(dir, true),
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            Target::V1(dir) => v1::set_frozen(dir, false),
            Target::V2(dir) => v2::set_frozen(dir, false),
        }
    }

    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.freezer()? {
            Target::V1(dir) => v1::is_frozen(dir),
            Target::V2(dir) => v2::is_frozen(dir),
        }
    }

    /// v1 freezer hierarchy when there is one (Hybrid too), else cgroup.freeze.
    fn freezer(&self) -> Result<Target<'_>, CgroupError> {
        if self.layout != Layout::V2 {
            if let Some(d) = self
                .v1
                .iter()
                .find(|d| d.controllers.iter().any(|c| c == "freezer"))
            {
                return Ok(Target::V1(&d.dir));
            }
        }
        match &self.unified {
            Some(u) if u.join("cgroup.freeze").exists() => Ok(Target::V2(u)),
            _ => Err(CgroupError::Msg(
                "no freezer: neither a v1 freezer hierarchy nor cgroup.freeze (cgroup2, Linux 5.2+)"
                    .into(),
            )),
        }
    }

    /// runc's `events --stats` "data" object (cpu, memory, pids, blkio, hugetlb).
    pub fn stats(&self) -> Result<serde_json::Value, CgroupError> {
        stats::collect(self)
    }

    /// The OOM-kill counter (memory.events oom_kill on v2, memory.oom_control on v1).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        match self.target("memory") {
            Some(Target::V2(dir)) => {
                Ok(fsio::keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0))
            }
            Some(Target::V1(dir)) => {
                Ok(fsio::keyed(&dir.join("memory.oom_control"), "oom_kill").unwrap_or(0))
            }
            None => Ok(0),
        }
    }

    /// Remove the directories and any sub-cgroups the container made
    /// (retrying EBUSY for about a second while the kernel finishes tearing
    /// exited tasks down). Missing dirs are fine; shared parents stay.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in &self.dirs {
            if let Err(e) = remove_tree(dir) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Is `m` what the path shows now? A mount over it or over a parent
/// (a tmpfs over /sys/fs/cgroup/unified in nested containers) hides it
/// although mountinfo still lists it; the filesystem type at the path tells.
fn is_visible(m: &detect::CgroupMount) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    let want = if m.unified {
        CGROUP2_SUPER_MAGIC
    } else {
        CGROUP_SUPER_MAGIC
    };
    statfs(&m.mountpoint).is_ok_and(|s| s.filesystem_type() == want)
}

fn memory_is_set(m: &oci_spec::runtime::LinuxMemory) -> bool {
    [m.limit(), m.reservation(), m.swap(), m.kernel_tcp()]
        .iter()
        .any(|v| v.unwrap_or(0) != 0)
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
}

fn cpu_is_set(c: &oci_spec::runtime::LinuxCpu) -> bool {
    c.shares().unwrap_or(0) != 0
        || c.quota().unwrap_or(0) != 0
        || c.period().unwrap_or(0) != 0
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().unwrap_or(0) != 0
        || c.realtime_period().unwrap_or(0) != 0
}

fn blkio_is_set(b: &oci_spec::runtime::LinuxBlockIo) -> bool {
    b.weight().unwrap_or(0) != 0
        || b.leaf_weight().unwrap_or(0) != 0
        || [
            b.weight_device().as_ref().map(Vec::len),
            b.throttle_read_bps_device().as_ref().map(Vec::len),
            b.throttle_write_bps_device().as_ref().map(Vec::len),
            b.throttle_read_iops_device().as_ref().map(Vec::len),
            b.throttle_write_iops_device().as_ref().map(Vec::len),
        ]
        .iter()
        .any(|n| n.unwrap_or(0) > 0)
}

#[cfg(test)]
mod tests;
