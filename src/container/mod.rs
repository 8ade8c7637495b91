//! The container lifecycle on one persisted state per id: create, start,
//! state, kill, delete (each in its own file), shared by both sandbox kinds.

pub mod create;
pub mod delete;
pub mod exec;
pub mod kill;
pub mod lock;
pub mod manage;
pub mod run;
pub mod start;
pub mod state;

use crate::{Error, Result};
use state::State;
use std::path::{Path, PathBuf};

/// The state directory of `id` under the runtime root.
pub fn state_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Load an existing container's state (the id is validated first, so a
/// hostile id cannot name a path outside the root).
pub fn load(root: &Path, id: &str) -> Result<(PathBuf, State)> {
    crate::spec::validate_id(id).map_err(|_| Error::NotFound(id.to_string()))?;
    let dir = state_dir(root, id);
    if !dir.is_dir() {
        return Err(Error::NotFound(id.to_string()));
    }
    let st = State::load(&dir, id)?;
    Ok((dir, st))
}

/// All container ids under the root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(Error::io("read", root)(e)),
    };
    for e in rd.flatten() {
        if e.path().join(state::STATE_FILE).exists() {
            ids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// The user name (or uid) that owns a path, as runc's `list` shows it.
pub fn owner_name(uid: u32) -> String {
    if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
        for l in text.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 2 && f[2] == uid.to_string() {
                return f[0].to_string();
            }
        }
    }
    format!("#{uid}")
}

/// Wait until `pid` (which need not be our child) is gone.
pub fn wait_gone(st: &State, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while st.init_alive() {
        if start.elapsed() > limit {
            return false;
        }
        // Reap it if it happens to be our child (run, or create in-process).
        // SAFETY: non-blocking waitpid on a specific pid.
        unsafe { libc::waitpid(st.pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    true
}
