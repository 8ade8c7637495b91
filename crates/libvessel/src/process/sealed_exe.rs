//! Run `create`, `run` and `exec` from a sealed in-memory copy of the vessel
//! binary (the defence against CVE-2019-5736, as runc 1.1 and crun do it).
//!
//! Every process vessel puts into a container is a clone of the vessel
//! process itself, so its `/proc/<pid>/exe` is whatever file vessel runs
//! from. A tenant's `#!/proc/self/exe` script (or a container process that
//! opens that link) would otherwise reach the host's binary: the kernel
//! executes it again inside the container, it becomes dumpable, and a
//! process that kept an `O_PATH` handle on it reopens it for writing once
//! the exec ends. Non-dumpable until execve only covers the window before
//! execve. Here the commands that place a process in a container re-execute
//! themselves first from a memfd holding a copy of the binary, sealed
//! against writes, truncation and growth: whatever a container reaches
//! through `/proc/*/exe` is that copy, which nothing can change, and never
//! the file on the host's disk.
//!
//! The copy is made once per command (an env marker carries the original
//! path through the re-exec and stops a loop); its cost is one copy of the
//! binary into memory and one more execve (see the commit that added this
//! module for the measured latency).

use crate::{Error, Result};
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Set in the environment of the re-executed process: the path of the
/// binary on disk (companions such as vessel-agent are found next to it).
pub const ENV_MARKER: &str = "_VESSEL_SEALED_EXE";

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
/// memfd_create's MFD_EXEC (Linux 6.3): asked for where `vm.memfd_noexec`
/// exists, so the copy stays executable whatever the default.
const MFD_EXEC: libc::c_uint = 0x10;

static HOST_EXE: OnceLock<PathBuf> = OnceLock::new();

/// The vessel binary on disk: the path from before the re-exec, or
/// `/proc/self/exe` when this process never re-executed.
pub fn host_exe() -> Option<PathBuf> {
    if let Some(p) = HOST_EXE.get() {
        return Some(p.clone());
    }
    std::fs::read_link("/proc/self/exe").ok()
}

/// True when `f` (our own executable) is a memfd carrying every seal.
fn is_sealed(f: &File) -> bool {
    // SAFETY: fcntl on a valid fd with an integer command.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Make sure this process runs from a sealed copy of itself: returns when it
/// already does; otherwise re-executes itself from one (same argv, same
/// environment plus the marker) and only returns on error. Call before any
/// side effect: the command runs again from the start.
pub fn ensure() -> Result<()> {
    let marker = std::env::var_os(ENV_MARKER);
    if let Some(m) = &marker {
        // Nothing below us (hooks, the workload, a nested vessel) inherits it.
        std::env::remove_var(ENV_MARKER);
        let _ = HOST_EXE.set(PathBuf::from(m));
    }
    let exe = File::open("/proc/self/exe").map_err(Error::io("open", "/proc/self/exe"))?;
    if is_sealed(&exe) {
        return Ok(());
    }
    if marker.is_some() {
        return Err(Error::Other(
            "re-executed from a sealed copy of vessel, but /proc/self/exe is not sealed".into(),
        ));
    }
    let orig =
        std::fs::read_link("/proc/self/exe").map_err(Error::io("readlink", "/proc/self/exe"))?;
    let copy = sealed_copy(exe)?;
    reexec(&copy, &orig)
}

/// A memfd holding the bytes of `exe`, sealed.
fn sealed_copy(mut exe: File) -> Result<OwnedFd> {
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a constant name and flags.
    let mut fd = unsafe { libc::memfd_create(c"vessel".as_ptr(), base | MFD_EXEC) };
    if fd < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINVAL {
        // Before Linux 6.3: no MFD_EXEC, and a memfd is always executable.
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(c"vessel".as_ptr(), base) };
    }
    if fd < 0 {
        return Err(Error::sys("memfd_create for a sealed copy of vessel")(
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: a fresh fd we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = exe
        .metadata()
        .map_err(Error::io("stat", "/proc/self/exe"))?
        .len();
    let mut copied: u64 = 0;
    loop {
        // In-kernel copy; read/write below when sendfile cannot.
        // SAFETY: two valid fds, a null offset (use the file position).
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 30,
            )
        };
        if n < 0 {
            let e = nix::errno::Errno::last();
            if e == nix::errno::Errno::EINTR {
                continue;
            }
            if copied == 0 && matches!(e, nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) {
                copied = copy_by_read(&mut exe, &memfd)?;
                break;
            }
            return Err(Error::sys("copy vessel into a memfd")(e));
        }
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    if copied != size {
        return Err(Error::Other(format!(
            "copy vessel into a memfd: {copied} of {size} bytes"
        )));
    }
    // F_SEAL_WRITE fails with EBUSY while a page of the copy still has an
    // extra reference the kernel drops soon (a per-CPU LRU batch on another
    // CPU, seen under load): retry for up to about a second.
    let mut tries = 0;
    loop {
        // SAFETY: fcntl on our memfd with integer arguments.
        if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } == 0 {
            return Ok(memfd);
        }
        let e = nix::errno::Errno::last();
        if e != nix::errno::Errno::EBUSY || tries >= 100 {
            return Err(Error::sys("seal the memfd copy of vessel")(e));
        }
        tries += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn copy_by_read(exe: &mut File, memfd: &OwnedFd) -> Result<u64> {
    use std::io::Write;
    let mut out = File::from(memfd.try_clone().map_err(Error::io("dup", "memfd"))?);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = exe
            .read(&mut buf)
            .map_err(Error::io("read", "/proc/self/exe"))?;
        if n == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..n])
            .map_err(Error::io("write", "memfd"))?;
        total += n as u64;
    }
}

/// execveat(memfd, "", argv, envp + marker, AT_EMPTY_PATH); returns only on error.
fn reexec(memfd: &OwnedFd, orig: &std::path::Path) -> Result<()> {
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| Error::invalid("an argument or variable holds a NUL byte"))
    };
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<_>>()?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV_MARKER)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv.as_bytes())
        })
        .collect::<Result<_>>()?;
    let mut marker = OsString::from(ENV_MARKER);
    marker.push("=");
    marker.push(orig.as_os_str());
    envp.push(cstr(marker.as_bytes())?);
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: a valid fd, an empty NUL-terminated path with AT_EMPTY_PATH,
    // and NULL-terminated arrays of NUL-terminated strings.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(Error::sys("re-execute vessel from its sealed copy")(
        nix::errno::Errno::last(),
    ))
}
