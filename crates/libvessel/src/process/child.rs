//! The container init, from clone to execve. Everything here is
//! async-signal-safe: raw syscalls on the data in `InitPlan`, stack buffers
//! for paths, no allocation and no locks. Failures go to the parent as a
//! (step, index, errno) record and the child exits.

use crate::isolation::caps::{self, errno};
use crate::process::plan::{InitPlan, MntNs, Step};
use crate::process::sync::{self, Kind, Msg};
use libc::{c_char, c_int, c_ulong};
use std::ffi::CStr;
use std::os::fd::RawFd;

const PATH_MAX: usize = 4096;

/// Report a failure to the parent and exit.
pub fn fail(sock: RawFd, step: Step, index: i32, err: i32) -> ! {
    let msg = Msg {
        kind: Kind::Error as u32,
        step: step as u32,
        index,
        errno: err,
    };
    sync::send(sock, &msg);
    // SAFETY: _exit never returns and runs no atexit handlers.
    unsafe { libc::_exit(1) }
}

fn check(sock: RawFd, r: c_int, step: Step, index: i32) {
    if r < 0 {
        fail(sock, step, index, errno());
    }
}

/// "/proc/self/fd/<fd>" into a stack buffer.
struct FdPath {
    buf: [u8; 32],
}

impl FdPath {
    fn new(fd: RawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd as u32;
        let mut i = 0;
        loop {
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            i += 1;
            if n == 0 {
                break;
            }
        }
        for k in 0..i {
            buf[prefix.len() + k] = digits[i - 1 - k];
        }
        FdPath { buf }
    }
    fn ptr(&self) -> *const c_char {
        self.buf.as_ptr() as *const c_char
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// openat2(root, rel, RESOLVE_IN_ROOT): symlinks resolve as if `root` were /.
pub(crate) fn open_in_root(root: RawFd, rel: *const c_char, flags: c_int) -> Result<RawFd, i32> {
    openat2(root, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// openat2(2) with the given RESOLVE_* flags (O_CLOEXEC always added).
fn openat2(dir: RawFd, rel: *const c_char, flags: c_int, resolve: u64) -> Result<RawFd, i32> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: rel is NUL-terminated, how is a valid open_how of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            rel,
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as RawFd)
    }
}

/// Copy `s[..len]` into a NUL-terminated stack buffer.
fn prefix_buf(s: &[u8], len: usize, out: &mut [u8; PATH_MAX]) -> bool {
    if len >= PATH_MAX {
        return false;
    }
    out[..len].copy_from_slice(&s[..len]);
    out[len] = 0;
    true
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Dir,
    File,
}

/// mkdir -p of `rel` inside `root`, each step resolved in the root; the last
/// component is created as a directory or an empty file.
fn mkdir_all_in_root(root: RawFd, rel: &CStr, mode: u32, leaf: Leaf) -> Result<(), i32> {
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
                        if last && leaf == Leaf::File {
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
                    if r < 0 && e == libc::EEXIST && !(last && leaf == Leaf::File) {
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
                }
                Err(e) => return Err(e),
            }
        }
        start = end + 1;
    }
    Ok(())
}

fn statvfs_flags(path: *const c_char) -> c_ulong {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is writable.
    if unsafe { libc::statvfs(path, &mut st) } < 0 {
        return 0;
    }
    let f = st.f_flag;
    let mut m = 0;
    for (s, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & s != 0 {
            m |= ms;
        }
    }
    m
}

fn mount(
    src: *const c_char,
    dst: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: *const c_char,
) -> c_int {
    // SAFETY: all strings are NUL-terminated or null.
    unsafe { libc::mount(src, dst, fstype, flags, data as *const libc::c_void) }
}

fn ptr_or_null(s: &CStr) -> *const c_char {
    if s.to_bytes().is_empty() {
        std::ptr::null()
    } else {
        s.as_ptr()
    }
}

/// The intermediate process of a two-stage start: join namespaces, make the
/// ones that only affect children, then fork the real init as our sibling.
pub fn intermediate_main(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> ! {
    for (i, j) in plan.ns.join.iter().enumerate() {
        // SAFETY: path is NUL-terminated.
        let fd = unsafe { libc::open(j.path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        check(sock, fd, Step::Setns, i as i32);
        // SAFETY: fd is a namespace fd we just opened.
        check(
            sock,
            unsafe { libc::setns(fd, j.flag) },
            Step::Setns,
            i as i32,
        );
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }
    let flags = plan.ns.create & !libc::CLONE_NEWCGROUP;
    if flags != 0 {
        // SAFETY: unshare with namespace flags.
        check(sock, unsafe { libc::unshare(flags) }, Step::Unshare, 0);
    }
    if plan.new_userns {
        sync::send(sock, &Msg::new(Kind::NeedMaps));
        match sync::recv(sock) {
            Some(m) if m.kind == Kind::MapsDone as u32 => {}
            _ => fail(sock, Step::Sync, 0, libc::EPIPE),
        }
    }
    if let Some(off) = &plan.time_offsets {
        // SAFETY: constant path; write of a NUL-terminated buffer's bytes.
        let fd = unsafe {
            libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            )
        };
        check(sock, fd, Step::TimeOffsets, 0);
        let b = off.to_bytes();
        // SAFETY: b is a valid slice.
        let n = unsafe { libc::write(fd, b.as_ptr() as *const libc::c_void, b.len()) };
        check(sock, n as c_int, Step::TimeOffsets, 0);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }
    fork_sibling(sock);
    init_main(plan, sock, hook_state)
}

/// For a process that has joined or made namespaces that apply to children
/// only (pid, time): fork the process that lives in them. With CLONE_PARENT
/// it is vessel's child, not ours, so vessel waits for it. Returns only in
/// the new process; the caller reports the new pid to vessel and exits.
pub fn fork_sibling(sock: RawFd) {
    // SAFETY: fork-like clone; the child continues on a copy of our stack.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        fail(sock, Step::Clone, 0, errno());
    }
    if pid == 0 {
        return;
    }
    let mut m = Msg::new(Kind::InitPid);
    m.index = pid as i32;
    sync::send(sock, &m);
    // SAFETY: _exit ends this stage without running destructors.
    unsafe { libc::_exit(0) }
}

/// The container init (namespaces made by the clone, or already by the
/// intermediate process).
pub fn init_main(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> ! {
    reset_signal_dispositions();
    // `run` blocks signals before the clone so none is lost; the workload
    // must start with an empty mask.
    // SAFETY: sigset operations on a stack value.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    // CVE-2019-5736: until execve, nothing in the container may open our
    // /proc/<pid>/exe (the host's vessel binary) or ptrace us.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    match sync::recv(sock) {
        Some(m) if m.kind == Kind::Go as u32 => {}
        _ => fail(sock, Step::Sync, 0, libc::EPIPE),
    }
    if plan.new_userns {
        // Become root of the new user namespace where root is mapped.
        // SAFETY: plain id syscalls.
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }
    if plan.new_cgroupns {
        // After the parent put us in our cgroup, so it becomes the ns root.
        // SAFETY: unshare with a namespace flag.
        check(
            sock,
            unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
            Step::Unshare,
            1,
        );
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: h is a valid buffer of the given length.
        let r = unsafe { libc::sethostname(h.as_ptr(), h.to_bytes().len()) };
        check(sock, r, Step::Sethostname, 0);
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: d is a valid buffer of the given length.
        let r = unsafe { libc::setdomainname(d.as_ptr(), d.to_bytes().len()) };
        check(sock, r, Step::Setdomainname, 0);
    }
    setup_rootfs(plan, sock);
    finish_and_exec(plan, sock, hook_state)
}

fn setup_rootfs(plan: &InitPlan, sock: RawFd) {
    let root = plan.rootfs.as_ptr();
    let private_ns = plan.mntns != MntNs::Inherit;
    if private_ns {
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
    let rootfd = if private_ns {
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
    };

    for (i, m) in plan.mounts.iter().enumerate() {
        let idx = i as i32;
        let leaf = if m.dest_is_file {
            Leaf::File
        } else {
            Leaf::Dir
        };
        if matches!(m.fstype.to_bytes(), b"proc" | b"sysfs") {
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
        if let Err(e) = mkdir_all_in_root(rootfd, &m.dest, m.mode, leaf) {
            fail(sock, Step::MountMkdir, idx, e);
        }
        let fd = match open_in_root(rootfd, m.dest.as_ptr(), libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) => fail(sock, Step::MountOpen, idx, e),
        };
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
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
        let remount = if bound_sysfs {
            m.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC)
        } else {
            m.remount_flags
        };
        if (m.bind || bound_sysfs) && remount != 0
            || m.propagation != 0
            || m.rec_set | m.rec_clr != 0
        {
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
    }

    for (i, d) in plan.devices.iter().enumerate() {
        make_device(plan, sock, rootfd, d, i as i32);
    }
    if plan.make_dev_links {
        dev_symlinks(sock, rootfd);
    }
    if plan.dev_readonly {
        let fd = match open_in_root(rootfd, c"dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) => fail(sock, Step::DevReadonly, 0, e),
        };
        let t = FdPath::new(fd);
        let keep = statvfs_flags(t.ptr());
        let r = mount(
            std::ptr::null(),
            t.ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
            std::ptr::null(),
        );
        check(sock, r, Step::DevReadonly, 1);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }

    let console_slave = if plan.process.terminal {
        open_console(plan, sock, rootfd)
    } else {
        -1
    };

    if plan.parent_hooks {
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

    // sysctls first: /proc/sys is usually among the read-only paths.
    if !plan.sysctls.is_empty() {
        write_sysctls(plan, sock);
    }
    for (i, p) in plan.masked.iter().enumerate() {
        mask_path(sock, p, i as i32);
    }
    for (i, p) in plan.readonly.iter().enumerate() {
        readonly_path(sock, p, i as i32);
    }
    if plan.readonly_root {
        let keep = statvfs_flags(c"/".as_ptr());
        let r = mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
            std::ptr::null(),
        );
        check(sock, r, Step::ReadonlyRoot, 0);
    }
    if console_slave >= 0 {
        make_controlling_terminal(console_slave, sock);
    }
}

/// Write the sysctls through the container's own /proc/sys (opened after
/// pivot_root, and checked to be procfs), each key resolved beneath it
/// with no symlink and no mount crossing.
fn write_sysctls(plan: &InitPlan, sock: RawFd) {
    const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
    let dir = match openat2(
        libc::AT_FDCWD,
        c"/proc/sys".as_ptr(),
        libc::O_PATH | libc::O_DIRECTORY,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Sysctl, -1, e),
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; dir is ours.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(dir, &mut st) } < 0 || st.f_type != PROC_SUPER_MAGIC {
        fail(sock, Step::Sysctl, -1, libc::EXDEV);
    }
    for (i, (rel, value)) in plan.sysctls.iter().enumerate() {
        let fd = match openat2(
            dir,
            rel.as_ptr(),
            libc::O_WRONLY,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        ) {
            Ok(fd) => fd,
            Err(e) => fail(sock, Step::Sysctl, i as i32, e),
        };
        let v = value.to_bytes();
        // SAFETY: v is a valid slice.
        let n = unsafe { libc::write(fd, v.as_ptr() as *const libc::c_void, v.len()) };
        check(sock, n as c_int, Step::Sysctl, i as i32);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(dir) };
}

/// Replace the tree attached at `dest` (a host-side copy, made before the
/// rootfs) by a copy of itself made now: mountinfo lists mounts in the
/// order they were made, and the container must see its mounts in config
/// order after "/". Returns 0 or -1 with errno set.
fn recopy_in_place(rootfd: RawFd, dest: &CStr) -> c_int {
    let top = match open_in_root(rootfd, dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => return set_errno(e),
    };
    let copy = open_tree_fd(top, true);
    let e = errno();
    let r = if copy < 0 {
        set_errno(e)
    } else {
        let t = FdPath::new(top);
        // SAFETY: umount2 on a NUL-terminated /proc/self/fd path.
        unsafe { libc::umount2(t.ptr(), libc::MNT_DETACH) }
    };
    let e = errno();
    // SAFETY: closing an fd we own.
    unsafe { libc::close(top) };
    if r < 0 {
        if copy >= 0 {
            // SAFETY: closing an fd we own.
            unsafe { libc::close(copy) };
        }
        return set_errno(e);
    }
    let below = match open_in_root(rootfd, dest.as_ptr(), libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => {
            // SAFETY: closing an fd we own.
            unsafe { libc::close(copy) };
            return set_errno(e);
        }
    };
    let r = move_mount_fd(copy, below);
    let e = errno();
    // SAFETY: closing fds we own.
    unsafe {
        libc::close(copy);
        libc::close(below);
    }
    if r < 0 {
        set_errno(e)
    } else {
        0
    }
}

/// Set errno to `e` and return -1.
fn set_errno(e: i32) -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
    -1
}

/// open_tree(fd, "", OPEN_TREE_CLONE [| AT_RECURSIVE]): a detached copy.
fn open_tree_fd(fd: RawFd, recursive: bool) -> RawFd {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: an empty NUL-terminated path and integer flags.
    unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) as RawFd }
}

/// move_mount(from, "", to, ""): attach the detached tree `from` on `to`.
fn move_mount_fd(from: RawFd, to: RawFd) -> c_int {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: fds the caller owns, empty NUL-terminated paths.
    unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ) as c_int
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE): the recursive
/// mount options (`rro`, `rnosuid`, ...) on the mount at `fd` and below.
fn mount_setattr_rec(fd: RawFd, set: u64, clr: u64) -> c_int {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr is a valid mount_attr of the given size; empty path.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) as c_int
    }
}

fn make_device(
    plan: &InitPlan,
    sock: RawFd,
    rootfd: RawFd,
    d: &crate::isolation::devices::DeviceOp,
    idx: i32,
) {
    let bytes = d.dest.to_bytes();
    let slash = bytes.iter().rposition(|&b| b == b'/');
    let mut pbuf = [0u8; PATH_MAX];
    let parent_fd = match slash {
        Some(s) => {
            prefix_buf(bytes, s, &mut pbuf);
            // SAFETY: pbuf is NUL-terminated by prefix_buf.
            let pc = unsafe { CStr::from_ptr(pbuf.as_ptr() as *const c_char) };
            if let Err(e) = mkdir_all_in_root(rootfd, pc, 0o755, Leaf::Dir) {
                fail(sock, Step::Device, idx, e);
            }
            match open_in_root(
                rootfd,
                pbuf.as_ptr() as *const c_char,
                libc::O_PATH | libc::O_DIRECTORY,
            ) {
                Ok(fd) => fd,
                Err(e) => fail(sock, Step::Device, idx, e),
            }
        }
        None => {
            // SAFETY: dup of a valid fd.
            unsafe { libc::fcntl(rootfd, libc::F_DUPFD_CLOEXEC, 0) }
        }
    };
    let name = match slash {
        Some(s) => &bytes[s + 1..],
        None => bytes,
    };
    let mut nbuf = [0u8; 256];
    if name.len() >= nbuf.len() {
        fail(sock, Step::Device, idx, libc::ENAMETOOLONG);
    }
    nbuf[..name.len()].copy_from_slice(name);
    let np = nbuf.as_ptr() as *const c_char;
    // Replace whatever the image has at that name (runc does the same).
    // SAFETY: valid dirfd and NUL-terminated name.
    unsafe { libc::unlinkat(parent_fd, np, 0) };
    if plan.new_userns {
        // mknod is not allowed in a user namespace: bind the host node.
        // SAFETY: valid dirfd and name.
        let fd = unsafe {
            libc::openat(
                parent_fd,
                np,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        check(sock, fd, Step::Device, idx);
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
        let fd = match open_in_root(rootfd, d.dest.as_ptr(), libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) => fail(sock, Step::Device, idx, e),
        };
        let t = FdPath::new(fd);
        check(
            sock,
            mount(
                d.host.as_ptr(),
                t.ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ),
            Step::Device,
            idx,
        );
        // SAFETY: closing an fd we own.
        unsafe { libc::close(fd) };
    } else {
        let dev = libc::makedev(d.major as u32, d.minor as u32);
        // SAFETY: valid dirfd and name. umask must not strip the mode.
        unsafe {
            let old = libc::umask(0);
            let r = libc::mknodat(parent_fd, np, d.kind | d.mode, dev);
            libc::umask(old);
            check(sock, r, Step::Device, idx);
            check(
                sock,
                libc::fchownat(parent_fd, np, d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW),
                Step::Device,
                idx,
            );
        }
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(parent_fd) };
}

fn dev_symlinks(sock: RawFd, rootfd: RawFd) {
    let dev = match open_in_root(rootfd, c"dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(_) => return,
    };
    let links: [(&CStr, &CStr); 5] = [
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
        (c"pts/ptmx", c"ptmx"),
    ];
    for (i, (target, name)) in links.iter().enumerate() {
        if i == 4 {
            // /dev/ptmx must point at the container's devpts instance.
            // SAFETY: valid dirfd and name.
            unsafe { libc::unlinkat(dev, name.as_ptr(), 0) };
        }
        // SAFETY: valid strings and dirfd.
        let r = unsafe { libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) };
        if r < 0 && errno() != libc::EEXIST {
            fail(sock, Step::Symlink, i as i32, errno());
        }
    }
    // SAFETY: access(2) on a constant path; symlinkat as above.
    unsafe {
        if libc::access(c"/proc/kcore".as_ptr(), libc::F_OK) == 0 {
            libc::symlinkat(c"/proc/kcore".as_ptr(), dev, c"core".as_ptr());
        }
        libc::close(dev);
    }
}

/// A pty from the container's devpts; the master goes to the console socket.
fn open_console(plan: &InitPlan, sock: RawFd, rootfd: RawFd) -> RawFd {
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

/// The process's rlimits (the init and `exec` both set them).
pub fn set_rlimits(p: &crate::process::plan::ProcessParts, sock: RawFd) {
    for (i, (res, lim)) in p.rlimits.iter().enumerate() {
        // SAFETY: lim is a valid rlimit.
        check(
            sock,
            unsafe { libc::setrlimit(*res, lim) },
            Step::Rlimit,
            i as i32,
        );
    }
}

/// MS_PRIVATE on the innermost mount point above `rootfs` (an absolute,
/// canonical path): mount(2) answers EINVAL for a path that is not a mount
/// point, so walk up until one accepts. Stack buffers only.
fn make_parent_mount_private(rootfs: &[u8]) {
    let mut buf = [0u8; PATH_MAX];
    let mut len = rootfs.len();
    loop {
        len = match rootfs[..len].iter().rposition(|&b| b == b'/') {
            Some(0) | None => 1,
            Some(p) => p,
        };
        if !prefix_buf(rootfs, len, &mut buf) {
            return;
        }
        let r = mount(
            std::ptr::null(),
            buf.as_ptr() as *const c_char,
            std::ptr::null(),
            libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if r == 0 || len == 1 {
            return;
        }
    }
}

fn pivot(plan: &InitPlan, sock: RawFd, rootfd: RawFd) {
    // SAFETY: path syscalls on NUL-terminated strings and fds we own.
    unsafe {
        if plan.mntns == MntNs::Inherit {
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
            return;
        }
        if plan.no_pivot {
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
            return;
        }
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

fn mask_path(sock: RawFd, p: &CStr, idx: i32) {
    // SAFETY: zeroed stat is a valid out-parameter; p is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(p.as_ptr(), &mut st) } < 0 {
        let e = errno();
        if e == libc::ENOENT {
            return;
        }
        fail(sock, Step::MaskPath, idx, e);
    }
    let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            c"tmpfs".as_ptr(),
            p.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY,
            std::ptr::null(),
        )
    } else {
        mount(
            c"/dev/null".as_ptr(),
            p.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    check(sock, r, Step::MaskPath, idx);
}

fn readonly_path(sock: RawFd, p: &CStr, idx: i32) {
    let r = mount(
        p.as_ptr(),
        p.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REC,
        std::ptr::null(),
    );
    if r < 0 {
        let e = errno();
        if e == libc::ENOENT {
            return;
        }
        fail(sock, Step::ReadonlyPath, idx, e);
    }
    let keep = statvfs_flags(p.as_ptr());
    let r = mount(
        std::ptr::null(),
        p.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | keep,
        std::ptr::null(),
    );
    check(sock, r, Step::ReadonlyPath, idx);
}

/// User, capabilities, limits, then wait for `start`, then execve.
fn finish_and_exec(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> ! {
    let p = &plan.process;
    set_rlimits(p, sock);
    if plan.new_keyring {
        // A fresh session keyring, so the container cannot read the host's.
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL).
        let r = unsafe { libc::syscall(libc::SYS_keyctl, 1, 0usize) };
        // Some kernels/LSMs refuse keyrings (ENOSYS, EACCES): runc ignores those too.
        if r < 0 && !matches!(errno(), libc::ENOSYS | libc::EACCES | libc::EPERM) {
            fail(sock, Step::Keyring, 0, errno());
        }
    }
    if let Some(per) = plan.personality {
        // SAFETY: personality with an integer.
        check(
            sock,
            unsafe { libc::personality(per) },
            Step::Personality,
            0,
        );
    }
    // Both closures need the buffer, one after the other.
    let state = std::cell::RefCell::new((hook_state, 0usize));
    exec_tail(
        p,
        sock,
        plan.preserve_fds,
        |sock| {
            let mut st = state.borrow_mut();
            st.1 = wait_for_start(plan, sock, st.0);
            // After `start` nobody reads the socket any more.
            plan.exec_fifo_fd < 0
        },
        // startContainer hooks run under the container's filter, as in runc.
        || {
            let st = state.borrow();
            run_start_hooks(plan, &st.0[..st.1])
        },
    )
}

/// The tail of `exec`: the same final sequence as the init's, without the
/// wait for `start` (`before_exec` runs where the init waits) and without
/// startContainer hooks. The parent reads `sock` until execve, so every
/// failure is reported there.
pub fn exec_process(
    p: &crate::process::plan::ProcessParts,
    sock: RawFd,
    preserve_fds: i32,
    before_exec: impl FnOnce(RawFd),
) -> ! {
    exec_tail(
        p,
        sock,
        preserve_fds,
        |sock| {
            before_exec(sock);
            true
        },
        || {},
    )
}

/// CAP_SYS_ADMIN's bit in a capability mask.
const CAP_SYS_ADMIN_BIT: u64 = 1 << 21;

/// The final sequence before execve, shared by the init and `exec`.
///
/// Everything vessel itself needs is done BEFORE the seccomp filter, so a
/// profile never has to allow vessel's internals: find the executable, enter
/// the cwd (as root first, as runc does, so a cwd only the runtime can reach
/// still works; EACCES/EPERM is retried as the user), mark every fd but
/// stdio and the preserved ones close-on-exec, drop privileges, no_new_privs,
/// check the cwd, LSM exec labels. Then:
/// - the profile uses SCMP_ACT_NOTIFY: load the filter and hand the listener
///   fd to the parent, which forwards it to the agent at once, so that every
///   later call (the wait for `start`, startContainer hooks, execve) can be
///   answered; `wait` runs under the filter;
/// - otherwise `wait` (the wait for `start`) runs first and the filter is
///   loaded right before the startContainer hooks and execve.
///
/// Without no_new_privs the kernel accepts a filter only from a task with
/// CAP_SYS_ADMIN: when the process does not keep it, it stays in the
/// effective and permitted sets until the filter is loaded and is dropped by
/// one capset(2) right after. So after the filter vessel itself makes at most
/// capset and execve (plus what startContainer hooks need, which run under
/// the container's filter as in runc).
///
/// `wait` returns whether the parent still reads `sock` afterwards.
fn exec_tail(
    p: &crate::process::plan::ProcessParts,
    sock: RawFd,
    preserve_fds: i32,
    wait: impl FnOnce(RawFd) -> bool,
    under_filter: impl FnOnce(),
) -> ! {
    // Find the executable now, so `create` reports a missing one.
    let mut exe: *const c_char = std::ptr::null();
    for c in &p.exec_candidates {
        // SAFETY: zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: c is NUL-terminated.
        if unsafe { libc::stat(c.as_ptr(), &mut st) } == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
            && st.st_mode & 0o111 != 0
        {
            exe = c.as_ptr();
            break;
        }
    }
    if exe.is_null() {
        fail(sock, Step::ExecNotFound, 0, libc::ENOENT);
    }
    // The cwd, while we are still root (runc's finalizeNamespace order).
    // SAFETY: cwd is NUL-terminated.
    let chdir_as_user = if unsafe { libc::chdir(p.cwd.as_ptr()) } < 0 {
        let e = errno();
        if e != libc::EACCES && e != libc::EPERM {
            fail(sock, Step::Chdir, 0, e);
        }
        // A cwd the container's user can reach but we cannot (a user
        // namespace's root on a directory of an unmapped owner).
        true
    } else {
        false
    };
    // CVE-2024-21626: nothing of vessel's may survive execve: every fd but
    // stdio and the preserved ones becomes close-on-exec.
    let first = 3 + preserve_fds.max(0) as u32;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only flags fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(sock, r as c_int, Step::Fds, 0);
    for fd in 3..first as i32 {
        // SAFETY: clearing FD_CLOEXEC on an fd the caller asked to preserve.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    // SAFETY: prctl with integer arguments.
    check(
        sock,
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) },
        Step::Capabilities,
        0,
    );
    if let Err(e) = p.caps.drop_bounding() {
        fail(sock, Step::Capabilities, 1, e);
    }
    let u = &p.user;
    // SAFETY: id syscalls with plain values and a valid groups slice.
    unsafe {
        if libc::setgroups(u.groups.len(), u.groups.as_ptr()) < 0 {
            // EPERM when setgroups is denied in a user namespace with no groups asked.
            if !(u.groups.is_empty() && errno() == libc::EPERM) {
                fail(sock, Step::Setgroups, 0, errno());
            }
        }
        check(sock, libc::setresgid(u.gid, u.gid, u.gid), Step::Setgid, 0);
        check(sock, libc::setresuid(u.uid, u.uid, u.uid), Step::Setuid, 0);
        if let Some(m) = u.umask {
            libc::umask(m as libc::mode_t);
        }
    }
    let c = &p.caps;
    // Keep CAP_SYS_ADMIN until the filter is loaded when only it lets the
    // kernel accept the filter (no no_new_privs) and the process drops it.
    let keep_admin = p.seccomp.is_some()
        && !p.no_new_privs
        && (c.effective & CAP_SYS_ADMIN_BIT == 0 || c.permitted & CAP_SYS_ADMIN_BIT == 0);
    let extra = if keep_admin { CAP_SYS_ADMIN_BIT } else { 0 };
    if let Err(e) = caps::set_sets(c.effective | extra, c.permitted | extra, c.inheritable) {
        fail(sock, Step::Capabilities, 2, e);
    }
    if let Err(e) = caps::set_ambient(c.ambient, c.last_cap) {
        fail(sock, Step::Capabilities, 2, e);
    }
    if p.no_new_privs {
        // SAFETY: prctl with integer arguments.
        check(
            sock,
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            Step::NoNewPrivs,
            0,
        );
    }
    if chdir_as_user {
        // SAFETY: cwd is NUL-terminated.
        check(sock, unsafe { libc::chdir(p.cwd.as_ptr()) }, Step::Chdir, 0);
    }
    // CVE-2024-21626: a cwd reached through a leaked host fd shows up as
    // "(unreachable)/..." in getcwd; refuse to run there.
    let mut cwd = [0u8; PATH_MAX];
    // SAFETY: cwd has PATH_MAX bytes.
    let got = unsafe { libc::getcwd(cwd.as_mut_ptr() as *mut c_char, cwd.len()) };
    if got.is_null() || cwd[0] != b'/' {
        fail(sock, Step::Chdir, 1, libc::ENOENT);
    }
    if let Some(profile) = &p.apparmor {
        write_attr(
            sock,
            c"/proc/self/attr/apparmor/exec",
            c"/proc/self/attr/exec",
            profile,
        );
    }
    if let Some(label) = &p.selinux_label {
        write_attr(
            sock,
            c"/proc/self/attr/exec",
            c"/proc/self/attr/exec",
            label,
        );
    }
    if p.seccomp.as_ref().is_some_and(|s| s.wants_listener) {
        install_seccomp(p, sock);
        drop_kept_admin(p, keep_admin, sock, true);
        wait(sock);
    } else {
        let listening = wait(sock);
        if let Some(prog) = &p.seccomp {
            if let Err(e) = prog.install() {
                if listening {
                    fail(sock, Step::Seccomp, 0, e as i32);
                }
                write_err(b"vessel: load seccomp filter: ", c"".as_ptr(), e as i32);
                // SAFETY: _exit ends the process.
                unsafe { libc::_exit(1) }
            }
            drop_kept_admin(p, keep_admin, sock, listening);
        }
    }
    under_filter();
    // SAFETY: exe, argv and envp are NUL-terminated and NULL-terminated arrays.
    unsafe { libc::execve(exe, p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
    let e = errno();
    write_err(b"vessel: exec failed: ", exe, e);
    // SAFETY: _exit ends the process.
    unsafe { libc::_exit(if e == libc::ENOENT { 127 } else { 126 }) }
}

/// After the filter: the capability sets the process asked for, without the
/// CAP_SYS_ADMIN kept only to load the filter (one capset, lowering only).
fn drop_kept_admin(
    p: &crate::process::plan::ProcessParts,
    keep_admin: bool,
    sock: RawFd,
    listening: bool,
) {
    if !keep_admin {
        return;
    }
    let c = &p.caps;
    if let Err(e) = caps::set_sets(c.effective, c.permitted, c.inheritable) {
        if listening {
            fail(sock, Step::Capabilities, 3, e);
        }
        write_err(b"vessel: drop capabilities: ", c"".as_ptr(), e);
        // SAFETY: _exit ends the process.
        unsafe { libc::_exit(1) }
    }
}

fn write_attr(sock: RawFd, path: &CStr, fallback: &CStr, value: &CStr) {
    // SAFETY: NUL-terminated paths; value is a valid buffer.
    unsafe {
        let mut fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            fd = libc::open(fallback.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        }
        check(sock, fd, Step::Capabilities, 10);
        let b = value.to_bytes();
        let n = libc::write(fd, b.as_ptr() as *const libc::c_void, b.len());
        check(sock, n as c_int, Step::Capabilities, 11);
        libc::close(fd);
    }
}

fn install_seccomp(p: &crate::process::plan::ProcessParts, sock: RawFd) {
    let Some(prog) = &p.seccomp else { return };
    match prog.install() {
        Ok(fd) if fd >= 0 => {
            sync::send(sock, &Msg::new(Kind::SeccompFd));
            if !sync::send_fd(sock, fd) {
                fail(sock, Step::Seccomp, 1, errno());
            }
            // SAFETY: closing our copy of the listener.
            unsafe { libc::close(fd) };
        }
        Ok(_) => {}
        Err(e) => fail(sock, Step::Seccomp, 0, e as i32),
    }
}

/// `v` in decimal, written into `buf` without allocating.
fn decimal(mut v: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = 0;
    loop {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        i += 1;
        if v == 0 {
            break;
        }
    }
    buf[..i].reverse();
    &buf[..i]
}

/// Write "<prefix><path>: errno N\n" to stderr without allocating.
fn write_err(prefix: &[u8], path: *const c_char, e: i32) {
    let mut buf = [0u8; 512];
    let mut n = 0;
    let mut push = |b: &[u8], n: &mut usize| {
        let k = b.len().min(buf.len() - *n);
        buf[*n..*n + k].copy_from_slice(&b[..k]);
        *n += k;
    };
    push(prefix, &mut n);
    if !path.is_null() {
        // SAFETY: path is NUL-terminated.
        push(unsafe { CStr::from_ptr(path) }.to_bytes(), &mut n);
    }
    push(b": errno ", &mut n);
    let mut digits = [0u8; 12];
    push(decimal(e.unsigned_abs(), &mut digits), &mut n);
    push(b"\n", &mut n);
    // SAFETY: buf[..n] is initialised.
    unsafe { libc::write(2, buf.as_ptr() as *const libc::c_void, n) };
}

/// Our /proc/self/fd, opened before chroot when the container shares the
/// runtime's mount namespace (no proc is mounted in its root then), or -1.
static PROC_FD_DIR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Reopen one of our fds through /proc/self/fd (the container's proc, or
/// the one kept in PROC_FD_DIR).
fn reopen_fd(fd: RawFd, flags: c_int) -> RawFd {
    let path = FdPath::new(fd);
    let dir = PROC_FD_DIR.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: NUL-terminated paths; dir is a directory fd we own.
    unsafe {
        if dir >= 0 {
            libc::openat(dir, path.ptr().add(b"/proc/self/fd/".len()), flags)
        } else {
            libc::open(path.ptr(), flags)
        }
    }
}

/// Tell the parent we are ready, then block on the exec FIFO until `start`.
/// Returns the length of the hook state received into `hook_state`.
fn wait_for_start(plan: &InitPlan, sock: RawFd, hook_state: &mut [u8]) -> usize {
    if plan.exec_fifo_fd < 0 {
        sync::send(sock, &Msg::new(Kind::Ready));
        return 0;
    }
    exit_on_fatal_signals();
    // The FIFO lives in the host's state dir; the parent opened it O_PATH
    // before the clone. Reopen it through our /proc, now the container's.
    let path = FdPath::new(plan.exec_fifo_fd);
    // SAFETY: path is NUL-terminated.
    let probe = reopen_fd(plan.exec_fifo_fd, libc::O_PATH | libc::O_CLOEXEC);
    if probe < 0 {
        fail(sock, Step::Sync, 2, errno());
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(probe) };
    sync::send(sock, &Msg::new(Kind::Ready));
    let mut n = 0;
    if plan.hook_state_capacity > 0 {
        n = sync::recv_bytes(sock, hook_state).unwrap_or(0);
    }
    // Blocks until `vessel start` opens the FIFO for reading.
    // SAFETY: path is NUL-terminated; one-byte write from a constant.
    unsafe {
        let fd = reopen_fd(plan.exec_fifo_fd, libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            write_err(b"vessel: open exec fifo: ", path.ptr(), errno());
            libc::_exit(1);
        }
        libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
        // The write end stays open (close-on-exec): `start` waits for EOF,
        // which comes at execve, so poststart runs after the startContainer
        // hooks and once the workload is executing (runtime spec).
        libc::close(plan.exec_fifo_fd);
    }
    n
}

/// Every signal disposition back to its default. An ignored signal survives
/// execve: Rust's runtime ignores SIGPIPE, and vessel's caller may have
/// ignored others (a shell's background job ignores SIGINT and SIGQUIT);
/// none of that may reach a container's process.
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMIN() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: signal(2) with SIG_DFL; async-signal-safe.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// While the init waits for `start`, a signal that would end a process
/// ends it (a `created` container stops on SIGTERM, as runc's does). A pid
/// namespace's init gets no signal from outside its namespace that it has
/// no handler for (except SIGKILL/SIGSTOP), so the default action is not
/// enough: install a handler that exits 128+N. execve resets handled
/// signals to SIG_DFL, so the workload starts with default dispositions.
fn exit_on_fatal_signals() {
    extern "C" fn on_fatal(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) }
    }
    const FATAL: [libc::c_int; 18] = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGUSR1,
        libc::SIGSEGV,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGSYS,
    ];
    // SAFETY: sigaction with a zeroed struct, an empty mask and a handler
    // that only calls _exit; the realtime range has terminate as default.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fatal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in FATAL
            .into_iter()
            .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
            .chain([libc::SIGPROF, libc::SIGIO, libc::SIGPWR, libc::SIGSTKFLT])
        {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// startContainer hooks: run inside the container after `start`, before the
/// workload; the state JSON goes to each hook's stdin.
fn run_start_hooks(plan: &InitPlan, state: &[u8]) {
    for h in &plan.start_hooks {
        let mut pipe = [0; 2];
        // SAFETY: fork-like clone, pipe, dup2, execve, waitpid: all
        // async-signal-safe; the child only execs or _exits.
        unsafe {
            if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
                hook_failed(h.path.as_ptr(), errno());
            }
            let pid = libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            );
            if pid == 0 {
                libc::dup2(pipe[0], 0);
                libc::execve(h.path.as_ptr(), h.argv_ptrs.as_ptr(), h.envp_ptrs.as_ptr());
                libc::_exit(127);
            }
            libc::close(pipe[0]);
            libc::write(pipe[1], state.as_ptr() as *const libc::c_void, state.len());
            libc::close(pipe[1]);
            if pid < 0 {
                hook_failed(h.path.as_ptr(), errno());
            }
            let mut status = 0;
            let mut waited_ms: i64 = 0;
            loop {
                let r = libc::waitpid(pid as i32, &mut status, libc::WNOHANG);
                if r == pid as i32 {
                    break;
                }
                if r < 0 && errno() != libc::EINTR {
                    hook_failed(h.path.as_ptr(), errno());
                }
                if h.timeout_secs > 0 && waited_ms > h.timeout_secs * 1000 {
                    libc::kill(pid as i32, libc::SIGKILL);
                    libc::waitpid(pid as i32, &mut status, 0);
                    hook_failed(h.path.as_ptr(), libc::ETIMEDOUT);
                }
                let ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 5_000_000,
                };
                libc::nanosleep(&ts, std::ptr::null_mut());
                waited_ms += 5;
            }
            if libc::WIFSIGNALED(status) {
                hook_killed(h.path.as_ptr(), libc::WTERMSIG(status));
            }
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                hook_exited(h.path.as_ptr(), libc::WEXITSTATUS(status));
            }
        }
    }
}

fn hook_failed(path: *const c_char, e: i32) -> ! {
    write_err(b"vessel: error running startContainer hook ", path, e);
    // SAFETY: _exit ends the process.
    unsafe { libc::_exit(1) }
}

/// "<prefix><path>: <what><number><suffix>\n" on stderr, then exit 1.
fn hook_report(path: *const c_char, what: &[u8], n: i32, suffix: &[u8]) -> ! {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let mut push = |b: &[u8]| {
        let k = b.len().min(buf.len() - len);
        buf[len..len + k].copy_from_slice(&b[..k]);
        len += k;
    };
    push(b"vessel: error running startContainer hook ");
    if !path.is_null() {
        // SAFETY: path is NUL-terminated.
        push(unsafe { CStr::from_ptr(path) }.to_bytes());
    }
    push(b": ");
    push(what);
    let mut digits = [0u8; 12];
    push(decimal(n.unsigned_abs(), &mut digits));
    push(suffix);
    push(b"\n");
    // SAFETY: buf[..len] is initialised; _exit ends the process.
    unsafe {
        libc::write(2, buf.as_ptr() as *const libc::c_void, len);
        libc::_exit(1)
    }
}

fn hook_exited(path: *const c_char, code: i32) -> ! {
    hook_report(path, b"exit status ", code, b"")
}

/// A hook killed by a signal; SIGSYS is what a seccomp filter's kill sends.
fn hook_killed(path: *const c_char, sig: i32) -> ! {
    let name: &[u8] = match sig {
        libc::SIGSYS => b" (bad system call)",
        libc::SIGKILL => b" (killed)",
        libc::SIGSEGV => b" (segmentation fault)",
        libc::SIGABRT => b" (aborted)",
        libc::SIGTERM => b" (terminated)",
        _ => b"",
    };
    hook_report(path, b"killed by signal ", sig, name)
}
