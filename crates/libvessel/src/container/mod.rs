//! The container lifecycle on one persisted state per id: create, start,
//! state, kill, delete (each in its own file), shared by both sandbox kinds.

pub mod create;
pub mod delete;
pub mod exec;
pub mod kill;
pub mod lock;
pub mod manage;
pub mod rootless;
pub mod run;
pub mod start;
pub mod state;
pub mod tenant_ids;

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

/// What `lock` found once it held the id's lock.
pub enum Locked {
    /// A container with its state, read under the lock.
    Found(PathBuf, lock::Lock, Box<State>),
    /// The state dir is there but has no state.json: a `create` died before
    /// its first save (or is just starting; it holds the lock until then).
    Partial(PathBuf, lock::Lock),
}

/// Take the id's lock, then read its state. Reading first would act on a
/// state another command (a racing create, delete, start) is changing.
/// A dir removed while we waited for the lock is `NotFound`.
pub fn lock(root: &Path, id: &str) -> Result<Locked> {
    crate::spec::validate_id(id).map_err(|_| Error::NotFound(id.to_string()))?;
    let dir = state_dir(root, id);
    if !dir.is_dir() {
        return Err(Error::NotFound(id.to_string()));
    }
    let lk = loop {
        let lk = match lock::Lock::acquire(&dir) {
            Ok(l) => l,
            Err(_) if !dir.is_dir() => return Err(Error::NotFound(id.to_string())),
            Err(e) => return Err(e),
        };
        // The dir we locked may have been deleted (and the id created
        // again) while we waited: the lock counts only on the live one.
        match lk.is_at(&dir) {
            Some(true) => break lk,
            Some(false) => continue,
            None => return Err(Error::NotFound(id.to_string())),
        }
    };
    match State::load(&dir, id) {
        Ok(st) => Ok(Locked::Found(dir, lk, Box::new(st))),
        Err(Error::NotFound(_)) if dir.is_dir() => Ok(Locked::Partial(dir, lk)),
        Err(e) => Err(e),
    }
}

/// `lock` for commands that need a container with a state.
pub fn load_locked(root: &Path, id: &str) -> Result<(PathBuf, lock::Lock, State)> {
    match lock(root, id)? {
        Locked::Found(dir, lk, st) => Ok((dir, lk, *st)),
        Locked::Partial(..) => Err(Error::NotFound(id.to_string())),
    }
}

/// All container ids under the root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(Error::io("read", root)(e)),
    };
    // Every container directory, with or without a state.json (a create
    // that died before its first save): `list` reports those, as runc does.
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().is_ok_and(|t| t.is_dir()) && crate::spec::validate_id(&name).is_ok() {
            ids.push(name);
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
