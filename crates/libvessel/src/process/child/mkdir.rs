//! mkdir -p inside the rootfs, every step resolved in the root.

use super::fd::open_in_root;
use super::PATH_MAX;
use crate::isolation::caps::errno;
use libc::c_char;
use std::ffi::CStr;
use std::os::fd::RawFd;

/// Copy `s[..len]` into a NUL-terminated stack buffer.
pub(super) fn prefix_buf(s: &[u8], len: usize, out: &mut [u8; PATH_MAX]) -> bool {
    if len >= PATH_MAX {
        return false;
    }
    out[..len].copy_from_slice(&s[..len]);
    out[len] = 0;
    true
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaf {
    Dir,
    File,
}

/// mkdir -p of `rel` inside `root`, each step resolved in the root; the last
/// component is created as a directory or an empty file.
pub(super) fn mkdir_all_in_root(root: RawFd, rel: &CStr, mode: u32, leaf: Leaf) -> Result<(), i32> {
    mkdir_all_depth(root, rel.to_bytes(), mode, leaf, 0)
}

/// A dangling symlink on the way: create its target (resolved inside the
/// root) so the walk can continue through it. Depth-limited against loops.
fn follow_dangling(
    root: RawFd,
    parent: RawFd,
    name: *const c_char,
    prefix: &[u8],
    mode: u32,
    depth: u32,
) -> Result<bool, i32> {
    let mut target = [0u8; PATH_MAX];
    // SAFETY: parent is a valid dirfd, name NUL-terminated, target writable.
    let n = unsafe {
        libc::readlinkat(
            parent,
            name,
            target.as_mut_ptr() as *mut c_char,
            target.len() - 1,
        )
    };
    if n < 0 {
        return Ok(false);
    }
    let n = n as usize;
    if depth > 8 {
        return Err(libc::ELOOP);
    }
    if target[0] == b'/' {
        mkdir_all_depth(root, &target[1..n], mode, Leaf::Dir, depth + 1)?;
    } else {
        let mut joined = [0u8; PATH_MAX];
        if prefix.len() + 1 + n >= PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        joined[..prefix.len()].copy_from_slice(prefix);
        let mut k = prefix.len();
        if k > 0 {
            joined[k] = b'/';
            k += 1;
        }
        joined[k..k + n].copy_from_slice(&target[..n]);
        mkdir_all_depth(root, &joined[..k + n], mode, Leaf::Dir, depth + 1)?;
    }
    Ok(true)
}

fn mkdir_all_depth(
    root: RawFd,
    bytes: &[u8],
    mode: u32,
    leaf: Leaf,
    depth: u32,
) -> Result<(), i32> {
    let bytes = {
        let mut b = bytes;
        while let [rest @ .., b'/'] = b {
            b = rest;
        }
        while let [b'/', rest @ ..] = b {
            b = rest;
        }
        b
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let mut buf = [0u8; PATH_MAX];
    let mut start = 0usize;
    while start <= bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map(|p| start + p)
            .unwrap_or(bytes.len());
        let last = end == bytes.len();
        if end > start {
            if !prefix_buf(bytes, end, &mut buf) {
                return Err(libc::ENAMETOOLONG);
            }
            match open_in_root(root, buf.as_ptr() as *const c_char, libc::O_PATH) {
                Ok(fd) => {
                    // SAFETY: closing an fd we own.
                    unsafe { libc::close(fd) };
                }
                Err(libc::ENOENT) => {
                    let file = last && leaf == Leaf::File;
                    create_component(root, bytes, start, end, file, mode, depth)?;
                }
                Err(e) => return Err(e),
            }
        }
        start = end + 1;
    }
    Ok(())
}

/// The missing component `bytes[start..end]`: open its parent (resolved in
/// root) and create it there, a directory or (`file`) an empty file.
fn create_component(
    root: RawFd,
    bytes: &[u8],
    start: usize,
    end: usize,
    file: bool,
    mode: u32,
    depth: u32,
) -> Result<(), i32> {
    // Open the parent (resolved in root) and create the name in it.
    let parent = if start == 0 {
        // SAFETY: dup of a valid fd.
        let fd = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(errno());
        }
        fd
    } else {
        let mut pbuf = [0u8; PATH_MAX];
        prefix_buf(bytes, start - 1, &mut pbuf);
        open_in_root(root, pbuf.as_ptr() as *const c_char, libc::O_PATH)?
    };
    let mut name = [0u8; 256];
    let n = end - start;
    if n >= name.len() {
        // SAFETY: closing an fd we own.
        unsafe { libc::close(parent) };
        return Err(libc::ENAMETOOLONG);
    }
    name[..n].copy_from_slice(&bytes[start..end]);
    let np = name.as_ptr() as *const c_char;
    // SAFETY: parent is a valid dirfd, np NUL-terminated.
    let r = unsafe {
        if file {
            // O_EXCL: never follow a dangling symlink.
            let fd = libc::openat(
                parent,
                np,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        } else {
            libc::mkdirat(parent, np, mode)
        }
    };
    let e = errno();
    if r < 0 && e == libc::EEXIST && !file {
        let prefix = if start == 0 {
            &bytes[..0]
        } else {
            &bytes[..start - 1]
        };
        if let Err(e) = follow_dangling(root, parent, np, prefix, mode, depth) {
            // SAFETY: closing an fd we own.
            unsafe { libc::close(parent) };
            return Err(e);
        }
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(parent) };
    if r < 0 && e != libc::EEXIST {
        return Err(e);
    }
    Ok(())
}
