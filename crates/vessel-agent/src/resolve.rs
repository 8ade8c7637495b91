//! Mount destinations inside the guest's root, resolved as container mode
//! resolves them: every lookup is openat2(RESOLVE_IN_ROOT) from the root's
//! fd, so a symlink the tenant left in its rootfs (`/data -> /../..`,
//! `-> /proc/...` through a magic link) never leads outside that root, and
//! missing directories (or an empty file, for a file mount) are made on
//! the way, each on a parent resolved the same way.
//!
//! The new mount API attaches to the resolved fd (`move_mount`), so no path
//! is looked up twice.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// linux/openat2.h
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// struct open_how (linux/openat2.h).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(dir, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS).
fn open_in_root(dir: RawFd, path: &str) -> io::Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: a NUL-terminated path and a live open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The components of an absolute mount destination ("." and empty ones
/// dropped; ".." stays and is clamped at the root by RESOLVE_IN_ROOT).
pub fn components(dest: &str) -> Vec<&str> {
    dest.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// `dest` inside `root`, made when missing: directories on the way, and
/// the last component a directory when `dir`, else an empty file.
pub fn dest_in_root(root: &OwnedFd, dest: &str, dir: bool) -> Result<OwnedFd, String> {
    let comps = components(dest);
    if comps.is_empty() {
        return Err(format!("mount destination {dest:?}: the root itself"));
    }
    let mut parent = open_in_root(root.as_raw_fd(), ".")
        .map_err(|e| format!("mount destination {dest}: opening the root: {e}"))?;
    for (i, comp) in comps.iter().enumerate() {
        let prefix = comps[..=i].join("/");
        let last = i + 1 == comps.len();
        match open_in_root(root.as_raw_fd(), &prefix) {
            Ok(fd) => parent = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                make(&parent, comp, dir || !last)
                    .map_err(|e| format!("mount destination {dest}: creating /{prefix}: {e}"))?;
                parent = open_in_root(root.as_raw_fd(), &prefix)
                    .map_err(|e| format!("mount destination {dest}: /{prefix}: {e}"))?;
            }
            Err(e) => return Err(format!("mount destination {dest}: /{prefix}: {e}")),
        }
    }
    Ok(parent)
}

/// mkdirat, or an exclusive, never-following create of an empty file.
fn make(parent: &OwnedFd, name: &str, dir: bool) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid dirfd and a NUL-terminated name.
    let rc = unsafe {
        match dir {
            true => libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755),
            false => {
                let flags = libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_WRONLY
                    | libc::O_NOFOLLOW
                    | libc::O_CLOEXEC;
                let fd = libc::openat(parent.as_raw_fd(), c.as_ptr(), flags, 0o644);
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            }
        }
    };
    match rc {
        rc if rc < 0 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vessel-agent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn open_dir(p: &std::path::Path) -> OwnedFd {
        std::fs::File::open(p).unwrap().into()
    }

    fn path_of(fd: &OwnedFd) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn components_drop_empty_and_dot() {
        assert_eq!(components("/a//b/./c/"), ["a", "b", "c"]);
        assert!(components("/").is_empty());
    }

    #[test]
    fn destinations_are_made_and_stay_inside_the_root() {
        let d = scratch("dest-in-root");
        let (root, outside) = (d.join("root"), d.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let canon = root.canonicalize().unwrap();
        // Hostile symlinks: absolute and climbing, towards the outside.
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("up")).unwrap();
        let r = open_dir(&root);
        let fd = dest_in_root(&r, "/data/x", true).unwrap();
        assert_eq!(path_of(&fd), canon.join("data/x"));
        // Read in the root, both dangle there: refused, nothing made outside.
        assert!(dest_in_root(&r, "/abs/sub", true).is_err());
        assert!(dest_in_root(&r, "/up/f", false).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A symlink that stays inside is followed there.
        std::os::unix::fs::symlink("/data", root.join("in")).unwrap();
        let fd = dest_in_root(&r, "/in/f", false).unwrap();
        assert_eq!(path_of(&fd), canon.join("data/f"));
        assert!(canon.join("data/f").is_file());
        assert!(dest_in_root(&r, "/", true).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
