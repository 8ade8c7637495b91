//! One lock per container id: an exclusive flock on the state directory, so
//! two commands on one id never interleave.

use crate::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        let file = File::open(dir).map_err(Error::io("open state dir", dir))?;
        // SAFETY: flock(2) on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } < 0 {
            return Err(Error::sys(format!("flock {}", dir.display()))(
                nix::errno::Errno::last(),
            ));
        }
        Ok(Lock { _file: file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlock explicitly: the container init inherits this fd until its
        // execve, and a plain close would leave the lock held through it.
        // SAFETY: flock(2) on an fd we own.
        unsafe { libc::flock(self._file.as_raw_fd(), libc::LOCK_UN) };
    }
}
