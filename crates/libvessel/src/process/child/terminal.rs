//! The console: a pty from the container's devpts, its master sent over
//! the console socket, its slave made the controlling terminal.

use super::fd::{open_in_root, FdPath};
use super::mount_calls::mount;
use super::report::{check, fail};
use crate::isolation::caps::errno;
use crate::process::plan::{InitPlan, Step};
use crate::process::sync;
use libc::c_int;
use std::os::fd::RawFd;

/// A pty from the container's devpts; the master goes to the console socket.
pub(super) fn open_console(plan: &InitPlan, sock: RawFd, rootfd: RawFd) -> RawFd {
    let master = match open_in_root(
        rootfd,
        c"dev/pts/ptmx".as_ptr(),
        libc::O_RDWR | libc::O_NOCTTY,
    ) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Console, 0, e),
    };
    send_pty(master, &plan.process, plan.console_socket, sock)
}

/// /dev/console is the console pty, bound over what is there (the runtime
/// spec's default device; runc's mountConsole): an empty file made when
/// missing. An existing node is bound over, not removed (a /dev bound from
/// the host keeps its node); a symlink the image planted is replaced,
/// never followed.
pub(super) fn mount_console(sock: RawFd, rootfd: RawFd, slave: RawFd) {
    let dev = match open_in_root(rootfd, c"dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Console, 8, e),
    };
    let target = console_target(dev);
    if target < 0 {
        fail(sock, Step::Console, 9, -target);
    }
    let src = FdPath::new(slave);
    let dst = FdPath::new(target);
    check(
        sock,
        mount(
            src.ptr(),
            dst.ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ),
        Step::Console,
        10,
    );
    // SAFETY: closing fds we own.
    unsafe {
        libc::close(target);
        libc::close(dev);
    }
}

/// An O_PATH fd on `dev/console` to bind over, made when missing;
/// -errno on failure.
fn console_target(dev: RawFd) -> RawFd {
    let name = c"console".as_ptr();
    let create = || {
        // SAFETY: openat on a dirfd we own and a constant name; O_EXCL
        // follows no link.
        unsafe {
            libc::openat(
                dev,
                name,
                libc::O_CREAT | libc::O_EXCL | libc::O_RDONLY | libc::O_CLOEXEC,
                0o666,
            )
        }
    };
    let fd = create();
    if fd >= 0 || errno() != libc::EEXIST {
        return if fd >= 0 { fd } else { -errno() };
    }
    // SAFETY: as above; O_PATH|O_NOFOLLOW opens a symlink itself.
    let fd = unsafe { libc::openat(dev, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return -errno();
    }
    // SAFETY: an all-zero stat is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat of our fd into a stack struct.
    let stat_ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    let is_link = stat_ok && st.st_mode & libc::S_IFMT == libc::S_IFLNK;
    if !is_link {
        return fd;
    }
    // SAFETY: closing our fd; unlinking the link (not its target).
    unsafe {
        libc::close(fd);
        libc::unlinkat(dev, name, 0);
    }
    let fd = create();
    if fd >= 0 {
        fd
    } else {
        -errno()
    }
}

/// Unlock the pty behind `master`, set it up as runc does (ONLCR cleared
/// when vessel relays it, process.consoleSize, the slave owned by the
/// process's uid), send the
/// master over the console socket, close both, and return the slave. Shared
/// by the init and `exec`; async-signal-safe.
pub fn send_pty(
    master: RawFd,
    p: &crate::process::plan::ProcessParts,
    console_socket: RawFd,
    sock: RawFd,
) -> RawFd {
    let unlock: c_int = 0;
    // SAFETY: ioctls on the pty master we own; TIOCGPTPEER returns a new fd.
    let slave = unsafe {
        libc::ioctl(master, libc::TIOCSPTLCK, &unlock);
        libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    check(sock, slave, Step::Console, 1);
    // SAFETY: termios and winsize ioctls on our pty with stack structs.
    unsafe {
        // No "\n" -> "\r\n" on output when vessel relays the pty: what the
        // workload writes is what vessel's stdout gets (runc's recvtty).
        let mut t: libc::termios = std::mem::zeroed();
        if p.clear_onlcr && libc::ioctl(master, libc::TCGETS, &mut t) == 0 {
            t.c_oflag &= !libc::ONLCR;
            check(
                sock,
                libc::ioctl(master, libc::TCSETS, &t),
                Step::Console,
                5,
            );
        }
        if let Some((rows, cols)) = p.console_size {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            check(
                sock,
                libc::ioctl(master, libc::TIOCSWINSZ, &ws),
                Step::Console,
                6,
            );
        }
    }
    // The terminal belongs to the process's user (runc's
    // fixStdioPermissions): only the uid changes, the group stays devpts's
    // (tty). EINVAL (unmapped id), EPERM and EROFS are ignored, as in runc.
    if p.user.uid != 0 {
        // SAFETY: fchown of the slave we own; -1 keeps the group.
        let r = unsafe { libc::fchown(slave, p.user.uid, u32::MAX) };
        if r < 0 && !matches!(errno(), libc::EINVAL | libc::EPERM | libc::EROFS) {
            fail(sock, Step::Console, 7, errno());
        }
    }
    // Named like runc's master (console.NewPty opens /dev/ptmx).
    if !sync::send_fd_named(console_socket, master, b"/dev/ptmx") {
        fail(sock, Step::Console, 4, errno());
    }
    // SAFETY: closing fds we own.
    unsafe {
        libc::close(master);
        libc::close(console_socket);
    }
    slave
}

/// A new session with the pty slave as controlling terminal and stdio.
pub fn make_controlling_terminal(slave: RawFd, sock: RawFd) {
    // SAFETY: session and controlling terminal setup on our own fds.
    unsafe {
        libc::setsid();
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
            fail(sock, Step::Console, 2, errno());
        }
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                fail(sock, Step::Console, 3, errno());
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
}
