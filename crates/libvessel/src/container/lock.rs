//! One lock per container id: an exclusive flock on the state directory, so
//! two commands on one id never interleave.
//!
//! flock belongs to the open file description, and the container init is
//! cloned (not exec'd) from the process holding the lock: a copy of the fd
//! left in the init would keep the lock alive after vessel dies (a `create`
//! killed while its init waits on the exec FIFO would then hang every later
//! command on that id). So every lock fd is O_CLOEXEC and recorded here, and
//! each cloned child calls [`close_inherited`] first thing.

use crate::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// Lock fds held by this process, for children to close (-1: free slot).
static HELD: [AtomicI32; 4] = [
    AtomicI32::new(-1),
    AtomicI32::new(-1),
    AtomicI32::new(-1),
    AtomicI32::new(-1),
];

/// In a freshly cloned child: close the copies of every lock fd, so only
/// the process that took a lock holds it. Async-signal-safe (atomic loads
/// and close(2)).
pub fn close_inherited() {
    for slot in &HELD {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: closing this process's copy of a lock fd; nothing
            // else in the child uses it.
            unsafe { libc::close(fd) };
        }
    }
}

pub struct Lock {
    file: File,
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        // std opens with O_CLOEXEC.
        let file = File::open(dir).map_err(Error::io("open state dir", dir))?;
        let fd = file.as_raw_fd();
        // Register before locking: a clone can happen on another thread
        // at any time after this.
        for slot in &HELD {
            if slot
                .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
        loop {
            // SAFETY: flock(2) on an fd we own.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 {
                break;
            }
            let e = nix::errno::Errno::last();
            if e != nix::errno::Errno::EINTR {
                let lock = Lock { file };
                drop(lock);
                return Err(Error::sys(format!("flock {}", dir.display()))(e));
            }
        }
        Ok(Lock { file })
    }
}

impl Lock {
    /// Is the locked directory still the one at `dir`? None: nothing is
    /// there any more.
    pub fn is_at(&self, dir: &Path) -> Option<bool> {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::symlink_metadata(dir).ok()?;
        let held = self.file.metadata().ok()?;
        Some(now.dev() == held.dev() && now.ino() == held.ino())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let fd = self.file.as_raw_fd();
        // SAFETY: flock(2) on an fd we own.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        for slot in &HELD {
            let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}
