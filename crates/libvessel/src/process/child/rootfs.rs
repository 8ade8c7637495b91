//! The container's root: its mounts in config order, devices, the console,
//! createContainer hooks, pivot_root (or chroot), then the paths made
//! read-only or masked.

use super::devices::{remount_dev_readonly, setup_dev};
use super::fd::{
    open_in_root, openat2, FdPath, PROC_FD_DIR, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
};
use super::mkdir::{mkdir_all_in_root, Leaf};
use super::mount_calls::{
    make_parent_mount_private, mount, mount_setattr_rec, move_mount_fd, open_tree_fd, ptr_or_null,
    recopy_in_place, statvfs_flags,
};
use super::paths::protect_paths;
use super::report::{check, fail};
use super::terminal::{make_controlling_terminal, mount_console, open_console};
use crate::isolation::caps::errno;
use crate::isolation::mounts::MountOp;
use crate::process::plan::{InitPlan, MntNs, Step};
use crate::process::sync::{self, Kind, Msg};
use libc::c_int;
use std::os::fd::RawFd;

/// The container's root, step by step: the rootfs as a mount, the mounts
/// in config order, /dev, the console, createContainer hooks, the switch of
/// root, then the paths protected inside it.
pub(super) fn setup_rootfs(plan: &InitPlan, sock: RawFd) {
    let private_ns = plan.mntns != MntNs::Inherit;
    if private_ns {
        prepare_root_propagation(plan, sock);
    }
    let rootfd = open_rootfs(plan, sock, private_ns);

    for (i, m) in plan.mounts.iter().enumerate() {
        mount_one(sock, rootfd, m, i as i32);
    }

    setup_dev(plan, sock, rootfd);

    let console_slave = if plan.process.terminal {
        let slave = open_console(plan, sock, rootfd);
        mount_console(sock, rootfd, slave);
        slave
    } else {
        -1
    };
    if plan.dev_readonly {
        remount_dev_readonly(sock, rootfd);
    }

    if plan.parent_hooks {
        run_create_container_hooks(sock, rootfd);
    }

    pivot(plan, sock, rootfd);
    // SAFETY: closing an fd we own.
    unsafe { libc::close(rootfd) };
    if private_ns && plan.root_propagation & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0 {
        let r = mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            plan.root_propagation,
            std::ptr::null(),
        );
        check(sock, r, Step::RootPropagation, 1);
    }

    protect_paths(plan, sock);
    if console_slave >= 0 {
        make_controlling_terminal(console_slave, sock);
    }
}

/// The propagation of "/" in a private mount namespace, before the rootfs
/// is bound.
fn prepare_root_propagation(plan: &InitPlan, sock: RawFd) {
    // unbindable "/" would make the rootfs bind below fail (EINVAL):
    // keep the host's mounts rslave until the rootfs is our root, then
    // apply what was asked (after pivot_root).
    let first = if plan.root_propagation & libc::MS_UNBINDABLE != 0 {
        libc::MS_SLAVE | libc::MS_REC
    } else {
        plan.root_propagation
    };
    let r = mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        first,
        std::ptr::null(),
    );
    check(sock, r, Step::RootPropagation, 0);
    if first & libc::MS_SHARED != 0 {
        // pivot_root refuses a new root that is, or sits on, a shared
        // mount: make the mount holding the rootfs private first, so the
        // bind below is private too (runc's rootfsParentMountPrivate).
        // "/" becomes shared again after pivot_root.
        make_parent_mount_private(plan.rootfs.to_bytes());
    }
}

/// Whether two fds are on the same file (device and inode).
fn same_inode(a: RawFd, b: RawFd) -> bool {
    // SAFETY: zeroed stat buffers are valid out-parameters for fstat.
    let (mut sa, mut sb): (libc::stat, libc::stat) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: fstat on fds we hold, into our buffers.
    let ok = unsafe { libc::fstat(a, &mut sa) == 0 && libc::fstat(b, &mut sb) == 0 };
    ok && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
}

/// An fd on the rootfs; in a private mount namespace, on a recursive bind
/// of it onto itself.
fn open_rootfs(plan: &InitPlan, sock: RawFd, private_ns: bool) -> RawFd {
    if private_ns && plan.rootfs_tree >= 0 {
        // The runtime made an id-mapped copy of the rootfs and cloned us
        // with the rootfs as our cwd (see spawn::RootfsCwd): attach the copy
        // there, once "." is checked to be that very directory.
        // SAFETY: a constant path; the flags are plain integers.
        let here = unsafe {
            libc::open(
                c".".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if here < 0 {
            fail(sock, Step::OpenRootfs, 1, errno());
        }
        if !same_inode(here, plan.rootfs_dir) {
            fail(sock, Step::OpenRootfs, 2, libc::ESTALE);
        }
        check(
            sock,
            move_mount_fd(plan.rootfs_tree, here),
            Step::BindRootfs,
            1,
        );
        // SAFETY: closing an fd we own.
        unsafe { libc::close(here) };
        return plan.rootfs_tree;
    }
    let root = plan.rootfs.as_ptr();
    // The rootfs, opened without following any symlink on the way: a
    // bundle whose rootfs (or a directory above it) was swapped for a link
    // since validation fails here instead of running on someone else's files.
    let dirfd = match openat2(
        libc::AT_FDCWD,
        root,
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::OpenRootfs, 0, e),
    };
    if private_ns {
        // The rootfs must be a mount point for pivot_root: attach a
        // recursive bind of it onto itself, through the fd (no path lookup).
        let tree = open_tree_fd(dirfd, true);
        if tree < 0 {
            fail(sock, Step::BindRootfs, 0, errno());
        }
        check(sock, move_mount_fd(tree, dirfd), Step::BindRootfs, 1);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(dirfd) };
        // The open_tree fd is now the root of the attached mount.
        tree
    } else {
        dirfd
    }
}

/// One mount of the config: its destination made inside the rootfs, the
/// mount attached there, then its options.
fn mount_one(sock: RawFd, rootfd: RawFd, m: &MountOp, idx: i32) {
    let leaf = if m.dest_is_file {
        Leaf::File
    } else {
        Leaf::Dir
    };
    if matches!(m.fstype.to_bytes(), b"proc" | b"sysfs") {
        require_ordinary_dir(sock, rootfd, m, idx);
    }
    if let Err(e) = mkdir_all_in_root(rootfd, &m.dest, m.mode, leaf) {
        fail(sock, Step::MountMkdir, idx, e);
    }
    let fd = match open_in_root(rootfd, m.dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::MountOpen, idx, e),
    };
    let bound_sysfs = attach_mount(sock, rootfd, m, fd, idx);
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
    apply_mount_options(sock, rootfd, m, bound_sysfs, idx);
}

/// proc and sysfs only on an ordinary directory.
fn require_ordinary_dir(sock: RawFd, rootfd: RawFd, m: &MountOp, idx: i32) {
    // runc: "must be mounted on ordinary directory". A symlink there
    // would send the mount elsewhere in the rootfs (e.g. over a
    // masked path's target) and leave the real /proc unmasked.
    if let Ok(fd) = open_in_root(rootfd, m.dest.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW) {
        // SAFETY: zeroed stat is a valid out-parameter; fd is ours.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::fstat(fd, &mut st) };
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
        if r < 0 || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            fail(sock, Step::MountNotDir, idx, libc::ENOTDIR);
        }
    }
}

/// Attach the mount on `fd` (its destination). Returns whether sysfs was
/// replaced by a bind of the host's.
fn attach_mount(sock: RawFd, rootfd: RawFd, m: &MountOp, fd: RawFd, idx: i32) -> bool {
    let target = FdPath::new(fd);
    let mut r = if m.tree_fd >= 0 {
        // A copy of the source the runtime made on the host side. Close
        // it once attached: nothing later (a cwd through
        // /proc/self/fd/N) may reach a mount through it.
        let r = move_mount_fd(m.tree_fd, fd);
        // SAFETY: the child's copy of the plan's fd; never used again.
        unsafe { libc::close(m.tree_fd) };
        if r == 0 {
            recopy_in_place(rootfd, &m.dest)
        } else {
            r
        }
    } else {
        mount(
            ptr_or_null(&m.source),
            target.ptr(),
            ptr_or_null(&m.fstype),
            m.flags,
            ptr_or_null(&m.data),
        )
    };
    let mut bound_sysfs = false;
    if r < 0 && errno() == libc::EPERM && m.fstype.to_bytes() == b"sysfs" {
        // sysfs cannot be mounted from a user namespace that does not own
        // the network namespace: bind the host's, read-only (as runc does).
        r = mount(
            c"/sys".as_ptr(),
            target.ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        );
        bound_sysfs = true;
    }
    check(sock, r, Step::Mount, idx);
    bound_sysfs
}

/// A bind's remount flags, the recursive options and the propagation, on
/// the mount now attached at the destination.
fn apply_mount_options(sock: RawFd, rootfd: RawFd, m: &MountOp, bound_sysfs: bool, idx: i32) {
    let remount = if bound_sysfs {
        m.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC)
    } else {
        m.remount_flags
    };
    if !((m.bind || bound_sysfs) && remount != 0
        || m.propagation != 0
        || m.rec_set | m.rec_clr != 0)
    {
        return;
    }
    // Reopen: the old fd points below the new mount.
    let fd = match open_in_root(rootfd, m.dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::MountOpen, idx, e),
    };
    let target = FdPath::new(fd);
    if (m.bind || bound_sysfs) && remount != 0 {
        let keep = statvfs_flags(target.ptr());
        let r = mount(
            std::ptr::null(),
            target.ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | remount | keep,
            std::ptr::null(),
        );
        check(sock, r, Step::MountRemount, idx);
    }
    if m.rec_set | m.rec_clr != 0 {
        check(
            sock,
            mount_setattr_rec(fd, m.rec_set, m.rec_clr),
            Step::MountRemount,
            idx,
        );
    }
    if m.propagation != 0 {
        let r = mount(
            std::ptr::null(),
            target.ptr(),
            std::ptr::null(),
            m.propagation,
            std::ptr::null(),
        );
        check(sock, r, Step::MountPropagation, idx);
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
}

/// Hand over to the parent for the createContainer hooks and wait for them.
fn run_create_container_hooks(sock: RawFd, rootfd: RawFd) {
    // createContainer hooks run with the init's cwd, the rootfs (runc:
    // chdir(rootfs) before them), never the host's /.
    // SAFETY: fchdir on a directory fd we own.
    check(sock, unsafe { libc::fchdir(rootfd) }, Step::OpenRootfs, 1);
    sync::send(sock, &Msg::new(Kind::RunHooks));
    match sync::recv(sock) {
        Some(m) if m.kind == Kind::HooksDone as u32 => {}
        _ => fail(sock, Step::Sync, 1, libc::EPIPE),
    }
}

/// Make `rootfd` our root: chroot in the runtime's mount namespace, MS_MOVE
/// with no_pivot, pivot_root otherwise.
fn pivot(plan: &InitPlan, sock: RawFd, rootfd: RawFd) {
    if plan.mntns == MntNs::Inherit {
        chroot_in_runtime_ns(sock, rootfd);
    } else if plan.no_pivot {
        move_root(plan, sock, rootfd);
    } else {
        pivot_root(sock, rootfd);
    }
}

fn chroot_in_runtime_ns(sock: RawFd, rootfd: RawFd) {
    // SAFETY: path syscalls on NUL-terminated strings and fds we own.
    unsafe {
        // The runtime's own mount namespace: pivot_root would move the
        // root of every process in it; chroot moves only ours.
        let procfd = libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        check(sock, procfd, Step::PivotRoot, 1);
        PROC_FD_DIR.store(procfd, std::sync::atomic::Ordering::Relaxed);
        check(sock, libc::fchdir(rootfd), Step::PivotRoot, 0);
        check(sock, libc::chroot(c".".as_ptr()), Step::PivotRoot, 2);
        check(sock, libc::chdir(c"/".as_ptr()), Step::PivotRoot, 3);
    }
}

fn move_root(plan: &InitPlan, sock: RawFd, rootfd: RawFd) {
    // SAFETY: path syscalls on NUL-terminated strings and fds we own.
    unsafe {
        // MS_MOVE + chroot leaves the old root below ours, reachable by a
        // chroot escape and counted by the kernel's mount_too_revealing
        // (a "fully visible" proc lets a nested user namespace mount an
        // unmasked proc): detach the host's proc and sysfs first, as
        // runc's msMoveRoot does. Every /proc/self/fd use is done by now.
        for (i, p) in plan.hide_on_no_pivot.iter().enumerate() {
            mount(
                std::ptr::null(),
                p.as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            );
            if libc::umount2(p.as_ptr(), libc::MNT_DETACH) < 0 {
                // Cannot unmount it (EINVAL, EPERM): cover it.
                let r = mount(
                    c"tmpfs".as_ptr(),
                    p.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                );
                check(sock, r, Step::HidePaths, i as i32);
            }
        }
        check(sock, libc::fchdir(rootfd), Step::PivotRoot, 0);
        check(
            sock,
            mount(
                c".".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_MOVE,
                std::ptr::null(),
            ),
            Step::PivotRoot,
            1,
        );
        check(sock, libc::chroot(c".".as_ptr()), Step::PivotRoot, 2);
        check(sock, libc::chdir(c"/".as_ptr()), Step::PivotRoot, 3);
    }
}

fn pivot_root(sock: RawFd, rootfd: RawFd) {
    // SAFETY: path syscalls on NUL-terminated strings and fds we own.
    unsafe {
        let old = libc::open(
            c"/".as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        );
        check(sock, old, Step::PivotRoot, 0);
        check(sock, libc::fchdir(rootfd), Step::PivotRoot, 2);
        let r = libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int;
        check(sock, r, Step::PivotRoot, 3);
        // The old root is now stacked on "."; detach it without propagating
        // the unmount back to the host.
        check(sock, libc::fchdir(old), Step::PivotRoot, 4);
        check(
            sock,
            mount(
                std::ptr::null(),
                c".".as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ),
            Step::PivotRoot,
            5,
        );
        check(
            sock,
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH),
            Step::PivotRoot,
            6,
        );
        check(sock, libc::chdir(c"/".as_ptr()), Step::PivotRoot, 7);
        libc::close(old);
    }
}
