//! Unix socket paths longer than `sun_path` holds (108 bytes): a socket in a
//! deep state directory is reached through `/proc/self/fd/<dir fd>/<name>`,
//! which the kernel resolves like the directory itself.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest path used as is (sun_path is 108 bytes with its NUL).
const SUN_PATH_MAX: usize = 107;

/// A path that fits `sun_path` for `path`, and the directory descriptor it
/// goes through when `path` itself is too long (keep it open while the
/// short path is used).
pub fn short(path: &Path) -> io::Result<(PathBuf, Option<OwnedFd>)> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((path.to_path_buf(), None));
    }
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path has no file name",
            ))
        }
    };
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in socket path"))?;
    // SAFETY: open(2) of a NUL-terminated path; the result is checked.
    let fd: RawFd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor open(2) just returned, owned from here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let short = PathBuf::from(format!("/proc/self/fd/{fd}")).join(name);
    if short.as_os_str().len() > SUN_PATH_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket name too long",
        ));
    }
    Ok((short, Some(owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_go_through_the_directory_descriptor() {
        let (p, fd) = short(Path::new("/run/x/exec.sock")).unwrap();
        assert_eq!((p, fd.is_none()), (PathBuf::from("/run/x/exec.sock"), true));
        let deep = std::env::temp_dir().join("d".repeat(120));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("exec.sock");
        let (p, fd) = short(&sock).unwrap();
        assert!(fd.is_some() && p.starts_with("/proc/self/fd/"), "{p:?}");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(sock.exists());
        let (short2, _fd2) = short(&sock).unwrap();
        std::os::unix::net::UnixStream::connect(&short2).unwrap();
        drop(l);
        std::fs::remove_dir_all(&deep).unwrap();
    }
}
