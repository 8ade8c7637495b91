//! The persisted state of one container: `<root>/<id>/state.json`.
//!
//! The status is derived from the live system on every read (is the init
//! alive, with the start time we recorded; does the exec FIFO still exist;
//! is the cgroup frozen, or in VM mode are the VMM's vCPUs parked), so a
//! crash of vessel never leaves a stale status.

use crate::cgroups::Cgroup;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    #[default]
    Container,
    Vm,
}

/// What vessel keeps about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub status: Status,
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/<pid>/stat), so a reused pid
    /// is never mistaken for the container.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Option<Cgroup>,
    #[serde(default)]
    pub sandbox: Sandbox,
    /// Namespace paths of the init, for `exec` (type name -> /proc/<pid>/ns/x).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The hooks later commands run, kept from create so `start` and
    /// `delete` need not re-read (a possibly edited) config.json.
    #[serde(default)]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default)]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// The tenant id range this container holds (`tenant_ids`), which
    /// `delete` gives back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_ids: Option<super::tenant_ids::TenantRange>,
    /// VM mode: the size the VM booted with (`update` checks memory limits
    /// against guest RAM, which is fixed at boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmRecord>,
}

/// What a VM-mode container was booted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub vcpus: u32,
    pub mem_mib: u64,
}

impl State {
    /// The OCI state JSON (plus runc's rootfs, created, owner) with a fresh status.
    pub fn oci_json(&self, dir: &Path) -> serde_json::Value {
        let status = self.live_status(dir);
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }

    /// Is the recorded init still the same live process?
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.pid_start)
    }

    /// The status as the system shows it now.
    pub fn live_status(&self, dir: &Path) -> Status {
        if self.status == Status::Creating {
            return if self.init_alive() || self.pid == 0 {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        // A VM is paused in its VMM (vCPUs parked, `vm::pause`), not by
        // the freezer, which cannot freeze KVM's kernel thread.
        if self.sandbox == Sandbox::Vm && crate::vm::vcpus_paused(self.pid) == Some(true) {
            return Status::Paused;
        }
        if let Some(cg) = &self.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    pub fn load(dir: &Path, id: &str) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        serde_json::from_str(&text)
            .map_err(|e| Error::Other(format!("container {id}: corrupt {}: {e}", path.display())))
    }

    /// Write atomically (temp file + rename) so a reader never sees half a file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(self)
            .map_err(|e| Error::Other(format!("serialize state of {}: {e}", self.id)))?;
        // Private to the owner (0600): hooks, env and annotations are the
        // tenant's. A leftover temp file of a crashed command is replaced,
        // never reused with its old mode.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &tmp)(e)),
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(Error::io("create", &tmp))?;
        f.write_all(&data).map_err(Error::io("write", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))
    }
}

/// Field 22 (starttime) of /proc/<pid>/stat; None when the process is gone
/// or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // After ")" come fields 3.. ; starttime is field 22, the 20th here.
    fields.nth(18)?.parse().ok()
}
