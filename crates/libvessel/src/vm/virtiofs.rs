//! The guest's filesystems over virtio-fs: at `create`, one virtiofsd per
//! VM shares a staging directory in the container's state dir that holds
//! the bundle's rootfs (`<share>/rootfs`, the guest's root) and each bind
//! mount's host source (`<share>/volumes/<n>` for `mounts[n]`), live both
//! ways: writes land in the bundle as in container mode.
//!
//! The staging binds exist only in virtiofsd's own mount namespace: its
//! child unshares one (every mount made a slave of the host's, so nothing
//! propagates back) and binds the rootfs and the volumes onto the staging
//! mount points before it execs virtiofsd. The host's namespace never holds
//! them, so nothing can leak: they go with virtiofsd, and removing the state
//! dir only ever meets empty mount points. virtiofsd then sandboxes itself
//! (`--sandbox namespace`: its own mount, pid and net namespaces, the share
//! as its root), so a tenant's symlink (`/etc/shadow`, `../..`) resolves in
//! the guest, inside the share, never on the host.
//!
//! virtiofsd listens on a socket vessel made (`--fd`), joins the
//! container's cgroup with the VMM, and exits when the VMM disconnects
//! (the VM ended, or the VMM was killed); `delete` and a failed `create`
//! kill the cgroup, which holds it.

use super::VmError;
use oci_spec::runtime::Spec;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vessel_protocol::launch::{SHARE_ROOTFS, SHARE_VOLUMES};

pub const VIRTIOFSD_NAME: &str = "virtiofsd";
/// Env override for virtiofsd's path.
pub const ENV_VIRTIOFSD: &str = "VESSEL_VIRTIOFSD";
/// Where `rootfs-tools/virtiofsd.sh` installs it, and Debian's package.
pub const VIRTIOFSD_PATHS: &[&str] = &["/var/lib/vessel/bin/virtiofsd", "/usr/libexec/virtiofsd"];
/// In the state dir: the staging directory and virtiofsd's socket and log.
pub const STAGING_DIR: &str = "share";
pub const SOCKET_NAME: &str = "virtiofs.sock";
pub const LOG_NAME: &str = "virtiofsd.log";

/// virtiofsd: env VESSEL_VIRTIOFSD, next to vessel, the install
/// directories, then /var/lib/vessel/bin and /usr/libexec.
pub fn find_virtiofsd() -> Result<PathBuf, VmError> {
    crate::companion::find_with(
        VIRTIOFSD_NAME,
        ENV_VIRTIOFSD,
        None,
        VIRTIOFSD_PATHS,
        &format!(
            "VM mode shares the rootfs with the guest through it: run rootfs-tools/virtiofsd.sh \
             to install it, or set {ENV_VIRTIOFSD}"
        ),
    )
    .map_err(VmError::Msg)
}

/// One bind mount of config.json, shared as `volumes/<index>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its index in `mounts`.
    pub index: usize,
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
    /// A directory (else a regular file, e.g. /etc/hosts).
    pub dir: bool,
}

/// What the share holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePlan {
    pub rootfs: PathBuf,
    pub volumes: Vec<Volume>,
}

/// The share for a spec, checked without side effects: every bind mount's
/// source must be a directory or a regular file (a host socket, device or
/// FIFO cannot work from the guest: refused, naming the mount).
pub fn plan_share(spec: &Spec, rootfs: &Path) -> Result<SharePlan, VmError> {
    let mut volumes = Vec::new();
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = m.options().clone().unwrap_or_default();
        if !vessel_common::mount_options::is_bind(m.typ().as_deref(), &opts) {
            continue;
        }
        let dest = m.destination().display().to_string();
        let refuse = |why: String| {
            VmError::Msg(format!(
                "mounts[{index}] (bind on {dest}): {why}; VM mode shares bind mounts with the \
                 guest over virtio-fs"
            ))
        };
        let source = m
            .source()
            .clone()
            .ok_or_else(|| refuse("no source".into()))?;
        let md = std::fs::metadata(&source)
            .map_err(|e| refuse(format!("source {}: {e}", source.display())))?;
        let ft = md.file_type();
        if !(ft.is_dir() || ft.is_file()) {
            let what = match () {
                _ if ft.is_socket() => "a socket",
                _ if ft.is_fifo() => "a FIFO",
                _ if ft.is_block_device() || ft.is_char_device() => "a device node",
                _ => "not a directory or regular file",
            };
            return Err(refuse(format!(
                "source {} is {what}, which the guest cannot use through a shared filesystem",
                source.display()
            )));
        }
        let (flags, _, _, _) = vessel_common::mount_options::parse_options(&opts);
        let (rec_set, _) = vessel_common::mount_options::recursive_attrs(&opts);
        volumes.push(Volume {
            index,
            source,
            destination: dest,
            readonly: flags & libc::MS_RDONLY != 0 || rec_set & libc::MOUNT_ATTR_RDONLY != 0,
            dir: ft.is_dir(),
        });
    }
    Ok(SharePlan {
        rootfs: rootfs.to_path_buf(),
        volumes,
    })
}

/// virtiofsd's own sandbox: `namespace` (its mount, pid and net namespaces,
/// pivot_root into the share), except on a host whose root is an initramfs,
/// which pivot_root cannot move (a VM booted from one, as the nested test
/// VM): `chroot` there, as container mode falls back to MS_MOVE + chroot.
fn sandbox_kind() -> &'static str {
    match crate::container::create::files::host_root_is_initramfs() {
        true => "chroot",
        false => "namespace",
    }
}

/// One mount virtiofsd's child makes before exec.
struct StagedMount {
    source: CString,
    target: CString,
    readonly: bool,
}

fn cstr(p: &Path) -> Result<CString, VmError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| VmError::Msg(format!("path {} holds a NUL byte", p.display())))
}

/// Makes the staging mount points (empty directories, or empty files for
/// file volumes) and lists the binds onto them.
fn stage(plan: &SharePlan, staging: &Path) -> Result<Vec<StagedMount>, VmError> {
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| VmError::Msg(format!("virtiofs staging {}: {e}", p.display()))
    };
    let mut dirs = std::fs::DirBuilder::new();
    dirs.mode(0o700);
    let volumes = staging.join(SHARE_VOLUMES);
    for d in [staging, &staging.join(SHARE_ROOTFS), &volumes] {
        dirs.create(d).map_err(err(d))?;
    }
    let mut mounts = vec![StagedMount {
        source: cstr(&plan.rootfs)?,
        target: cstr(&staging.join(SHARE_ROOTFS))?,
        readonly: false,
    }];
    for v in &plan.volumes {
        let target = volumes.join(v.index.to_string());
        match v.dir {
            true => dirs.create(&target).map_err(err(&target))?,
            false => drop(std::fs::File::create(&target).map_err(err(&target))?),
        }
        mounts.push(StagedMount {
            source: cstr(&v.source)?,
            target: cstr(&target)?,
            readonly: v.readonly,
        });
    }
    Ok(mounts)
}

/// The running virtiofsd of one VM.
pub struct Virtiofsd {
    pub pid: i32,
    /// The socket the VMM connects to.
    pub socket: PathBuf,
}

/// Starts virtiofsd for `plan` in `state_dir`, in the cgroup whose
/// `cgroup.procs` files are `procs`. Killed again unless the caller keeps
/// it (see [`Virtiofsd::disarm`]).
pub fn start(plan: &SharePlan, state_dir: &Path, procs: &[CString]) -> Result<Virtiofsd, VmError> {
    let binary = find_virtiofsd()?;
    let staging = state_dir.join(STAGING_DIR);
    let mounts = stage(plan, &staging)?;
    let socket = state_dir.join(SOCKET_NAME);
    let listener = vessel_common::socket_path::short(&socket)
        .and_then(|(short, _dir)| UnixListener::bind(short))
        .map_err(|e| VmError::Msg(format!("virtiofs: listening on {}: {e}", socket.display())))?;
    let log = std::fs::File::create(state_dir.join(LOG_NAME))
        .map_err(|e| VmError::Msg(format!("virtiofs: creating its log: {e}")))?;
    let log_err = log
        .try_clone()
        .map_err(|e| VmError::Msg(format!("virtiofs: dup its log: {e}")))?;
    let listen_fd = OwnedFd::from(listener);
    let mut cmd = Command::new(&binary);
    cmd.arg("--fd=3")
        .arg("--shared-dir")
        .arg(&staging)
        .args(["--sandbox", sandbox_kind(), "--cache", "auto"])
        .arg("--announce-submounts")
        // No device nodes: a guest's mknod would make a real one on the
        // host, in the bundle's rootfs.
        .arg("--modcaps=-mknod")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let raw = listen_fd.as_raw_fd();
    let procs = procs.to_vec();
    // SAFETY: between fork and exec the closure makes raw syscalls only
    // (setsid, open/write/close, unshare, mount, dup2, fcntl) on data
    // prepared above: async-signal-safe.
    unsafe { cmd.pre_exec(move || child_setup(&procs, &mounts, raw)) };
    let child = cmd
        .spawn()
        .map_err(|e| VmError::Msg(format!("virtiofs: starting {}: {e}", binary.display())))?;
    Ok(Virtiofsd {
        pid: child.id() as i32,
        socket,
    })
}

/// The descriptor the VMM gets its virtiofsd connection on (the tap is 3).
pub const VMM_FS_FD: RawFd = 4;
/// The runtime's copy of that connection is moved at or above this, so
/// the pre-exec dup2s to 3 and 4 never overwrite a source.
const HIGH_FD: RawFd = 64;

/// What the VMM gets for its virtio-fs device: `--virtiofs SOCKET:TAG`,
/// and a connection to virtiofsd it inherits (`--virtiofs-fd`) instead of
/// connecting itself. virtiofsd ends when its one client goes; this way
/// that client exists from `create` on. A VMM killed before it set its
/// devices up (a created container's) used to leave virtiofsd waiting for
/// a connection until `delete`.
pub struct VmmShare {
    pub arg: String,
    pub conn: OwnedFd,
}

impl VmmShare {
    /// Connects to `fsd`'s socket (bound before virtiofsd started, so this
    /// connects at once).
    pub fn connect(fsd: &Virtiofsd) -> Result<VmmShare, VmError> {
        let socket = &fsd.socket;
        let err = |e: std::io::Error| {
            VmError::Msg(format!(
                "virtiofs: connecting to virtiofsd at {}: {e}",
                socket.display()
            ))
        };
        let (short, _dir) = vessel_common::socket_path::short(socket).map_err(err)?;
        let stream = std::os::unix::net::UnixStream::connect(short).map_err(err)?;
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one.
        let high = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
        if high < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(VmmShare {
            arg: format!("{}:{}", socket.display(), vessel_protocol::launch::FS_TAG),
            // SAFETY: `high` is a new descriptor nothing else owns.
            conn: unsafe { OwnedFd::from_raw_fd(high) },
        })
    }
}

/// In virtiofsd's child: its own session, the container's cgroup, a mount
/// namespace of its own holding the staging binds, the listener as fd 3.
fn child_setup(procs: &[CString], mounts: &[StagedMount], listen: i32) -> std::io::Result<()> {
    let check = |rc: libc::c_int| match rc {
        rc if rc < 0 => Err(std::io::Error::last_os_error()),
        _ => Ok(()),
    };
    // SAFETY: raw syscalls on NUL-terminated strings owned by the caller.
    unsafe {
        check(libc::setsid())?;
        for p in procs {
            let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd)?;
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            check(n as libc::c_int)?;
        }
        check(libc::unshare(libc::CLONE_NEWNS))?;
        let root = c"/";
        let none = std::ptr::null::<libc::c_char>();
        let slave = libc::MS_REC | libc::MS_SLAVE;
        check(libc::mount(
            none,
            root.as_ptr(),
            none,
            slave,
            std::ptr::null(),
        ))?;
        for m in mounts {
            let bind = libc::MS_BIND | libc::MS_REC;
            check(libc::mount(
                m.source.as_ptr(),
                m.target.as_ptr(),
                none,
                bind,
                std::ptr::null(),
            ))?;
            if m.readonly {
                let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                check(libc::mount(
                    none,
                    m.target.as_ptr(),
                    none,
                    ro,
                    std::ptr::null(),
                ))?;
            }
        }
        if listen == 3 {
            check(libc::fcntl(3, libc::F_SETFD, 0))?;
        } else {
            check(libc::dup2(listen, 3))?;
        }
    }
    Ok(())
}

impl Virtiofsd {
    /// Stops virtiofsd (a failed `create` before the VMM took it over).
    pub fn kill(&self) {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(
            json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts}),
        )
        .unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vessel-vfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn binds_become_volumes_numbered_by_their_mount_index() {
        let d = scratch("plan");
        let (data, file) = (d.join("data"), d.join("hosts"));
        std::fs::create_dir(&data).unwrap();
        std::fs::write(&file, "x").unwrap();
        let s = spec(json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]},
            {"destination": "/etc/hosts", "source": file, "options": ["bind", "ro"]},
            {"destination": "/ro", "type": "none", "source": data, "options": ["rbind", "rro"]}
        ]));
        let p = plan_share(&s, Path::new("/b/rootfs")).unwrap();
        assert_eq!(p.rootfs, PathBuf::from("/b/rootfs"));
        let got: Vec<_> = p
            .volumes
            .iter()
            .map(|v| (v.index, v.destination.as_str(), v.readonly, v.dir))
            .collect();
        assert_eq!(
            got,
            [
                (1, "/data", false, true),
                (2, "/etc/hosts", true, false),
                (3, "/ro", true, true)
            ]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_or_special_source_is_refused_by_name() {
        let s = spec(json!([{"destination": "/data", "type": "bind", "source": "/nonexistent/x"}]));
        let err = plan_share(&s, Path::new("/r")).unwrap_err().to_string();
        assert!(
            err.contains("mounts[0]") && err.contains("/data") && err.contains("/nonexistent/x"),
            "{err}"
        );
        let s = spec(json!([{"destination": "/null", "type": "bind", "source": "/dev/null"}]));
        let err = plan_share(&s, Path::new("/r")).unwrap_err().to_string();
        assert!(
            err.contains("device node") && err.contains("/null"),
            "{err}"
        );
    }

    #[test]
    fn staging_makes_mount_points_for_the_rootfs_and_each_volume() {
        let d = scratch("stage");
        let plan = SharePlan {
            rootfs: d.join("rootfs"),
            volumes: vec![
                Volume {
                    index: 2,
                    source: d.clone(),
                    destination: "/d".into(),
                    readonly: true,
                    dir: true,
                },
                Volume {
                    index: 5,
                    source: d.clone(),
                    destination: "/f".into(),
                    readonly: false,
                    dir: false,
                },
            ],
        };
        let staging = d.join("share");
        let m = stage(&plan, &staging).unwrap();
        assert!(staging.join("rootfs").is_dir());
        assert!(staging.join("volumes/2").is_dir());
        assert!(staging.join("volumes/5").is_file());
        let targets: Vec<_> = m
            .iter()
            .map(|m| (m.target.to_str().unwrap().to_string(), m.readonly))
            .collect();
        assert_eq!(targets[0].0, staging.join("rootfs").display().to_string());
        assert_eq!(
            targets[1],
            (staging.join("volumes/2").display().to_string(), true)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_virtiofsd_names_the_install_script() {
        if find_virtiofsd().is_ok() {
            return; // installed here; the message is the same code path
        }
        let err = find_virtiofsd().unwrap_err().to_string();
        assert!(err.contains("rootfs-tools/virtiofsd.sh"), "{err}");
    }
}
