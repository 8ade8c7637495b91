//! Pure parsing and path planning: /proc/self/mountinfo and /proc/self/cgroup
//! text in, the container's cgroup directories out. Nothing here touches the
//! filesystem, so every rule is unit-tested without root.

use super::{CgroupError, Layout, V1Dir};
use std::path::{Component, Path, PathBuf};

/// Where the host mounts cgroup2 on a pure v2 system.
pub const V2_MOUNTPOINT: &str = "/sys/fs/cgroup";
/// Where hybrid hosts (systemd's and this one's) mount cgroup2.
pub const HYBRID_UNIFIED_MOUNTPOINT: &str = "/sys/fs/cgroup/unified";

/// The v1 controllers the kernel knows; anything else in a cgroup mount's
/// super options (rw, clone_children, xattr, ...) is an option, not a controller.
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "io",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One cgroup filesystem mount from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mountpoint: PathBuf,
    /// The cgroup of the hierarchy that is visible at the mountpoint ("/"
    /// unless a sub-tree was bind-mounted or a cgroup namespace is in use).
    pub root: String,
    /// true for cgroup2.
    pub unified: bool,
    /// v1 controllers (plus "name=X" for named hierarchies); empty for cgroup2.
    pub controllers: Vec<String>,
}

/// One line of /proc/self/cgroup: "hierarchy-id:controllers:path".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroup {
    pub controllers: Vec<String>,
    pub path: String,
}

/// Undo mountinfo's octal escapes (\040 for a space, \011, \012, \134).
pub(crate) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts listed in a mountinfo text that are still
/// visible: mountinfo lists mounts in the order they were made, so of
/// several at one path the last wins. (A mount over a parent path hides
/// them too: `Cgroup::resolve` checks each mountpoint's filesystem type.)
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        // "id parent maj:min root mountpoint opts [optional...] - fstype source superopts"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.is_empty() {
            continue;
        }
        let fstype = right[0];
        let super_opts = right.get(2).copied().unwrap_or("");
        let mountpoint = PathBuf::from(unescape(left[4]));
        // Stacked mounts: a later mount at the same path hides the earlier
        // one (nested containers mount a tmpfs, or another cgroup2, over
        // /sys/fs/cgroup/unified). Only the visible one counts.
        mounts.retain(|m: &CgroupMount| m.mountpoint != mountpoint);
        let unified = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if unified {
            Vec::new()
        } else {
            super_opts
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_string)
                .collect()
        };
        mounts.push(CgroupMount {
            mountpoint,
            root: unescape(left[3]),
            unified,
            controllers,
        });
    }
    mounts
}

/// The lines of a /proc/<pid>/cgroup text.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<OwnCgroup>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CgroupError::Msg(format!(
                "malformed line in /proc/self/cgroup: {line:?}"
            )));
        };
        let controllers = if ctrls.is_empty() {
            Vec::new()
        } else {
            ctrls.split(',').map(str::to_string).collect()
        };
        out.push(OwnCgroup {
            controllers,
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// The layout the mounts describe: V2 when /sys/fs/cgroup itself is cgroup2
/// (or cgroup2 is the only kind mounted), Hybrid when v1 hierarchies and a
/// cgroup2 mount coexist, V1 when only v1 is mounted.
pub fn detect_layout(mounts: &[CgroupMount]) -> Result<Layout, CgroupError> {
    let has_v1 = mounts.iter().any(|m| !m.unified);
    let v2_at_root = mounts
        .iter()
        .any(|m| m.unified && m.mountpoint == Path::new(V2_MOUNTPOINT));
    let has_v2 = mounts.iter().any(|m| m.unified);
    match (v2_at_root, has_v1, has_v2) {
        (true, _, _) | (false, false, true) => Ok(Layout::V2),
        (false, true, true) => Ok(Layout::Hybrid),
        (false, true, false) => Ok(Layout::V1),
        (false, false, false) => Err(CgroupError::Msg(
            "no cgroup or cgroup2 filesystem is mounted (checked /proc/self/mountinfo)".into(),
        )),
    }
}

/// The cgroupsPath after validation: absolute (under each hierarchy's root)
/// or relative (under the caller's own cgroup, as runc's cgroupfs driver does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inner {
    Absolute(PathBuf),
    Relative(PathBuf),
}

/// Validate `linux.cgroupsPath` (None or "": "/vessel/<id>").
pub fn inner_path(cgroups_path: Option<&str>, id: &str) -> Result<Inner, CgroupError> {
    let raw = match cgroups_path {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            if id.is_empty() || id.contains('/') || id == "." || id == ".." {
                return Err(CgroupError::Msg(format!(
                    "container id {id:?} cannot name a cgroup directory"
                )));
            }
            format!("/vessel/{id}")
        }
    };
    if raw.contains(':') {
        return Err(CgroupError::Msg(format!(
            "cgroupsPath {raw:?} looks like a systemd \"slice:prefix:name\" path; vessel only has \
             the cgroupfs driver (no systemd on this host): use a path such as \"/vessel/{id}\""
        )));
    }
    let mut clean = PathBuf::new();
    for comp in Path::new(&raw).components() {
        match comp {
            Component::RootDir => clean.push("/"),
            Component::CurDir => {}
            Component::Normal(c) => clean.push(c),
            Component::ParentDir => {
                return Err(CgroupError::Msg(format!(
                    "cgroupsPath {raw:?} contains \"..\", which could leave the cgroup tree"
                )))
            }
            Component::Prefix(_) => {}
        }
    }
    if clean.as_os_str().is_empty() || clean == Path::new("/") {
        return Err(CgroupError::Msg(format!(
            "cgroupsPath {raw:?} names a hierarchy root; a container needs its own cgroup"
        )));
    }
    if raw.starts_with('/') {
        Ok(Inner::Absolute(clean))
    } else {
        Ok(Inner::Relative(clean))
    }
}

/// The state root the CLI uses when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/run/vessel";

/// The cgroupsPath of a container whose spec names none: "/vessel/<id>"
/// under the default root, "/vessel/<tag>-<id>" under any other, where the
/// tag is 8 hex digits of a hash of the (canonical) root. The same id under
/// two roots so gets two cgroups, and `delete -f` in one root cannot kill
/// the other's processes. Engines (containerd, Podman) pass their own path.
pub fn default_cgroups_path(root: &Path, id: &str) -> String {
    if root == Path::new(DEFAULT_ROOT) {
        return format!("/vessel/{id}");
    }
    // FNV-1a: stable across builds and hosts (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("/vessel/{:08x}-{id}", (h >> 32) ^ (h & 0xffff_ffff))
}

/// `own` relative to the mount's root, e.g. own "/a/b" under root "/a" is "b".
fn below_mount_root(own: &str, root: &str) -> Result<PathBuf, CgroupError> {
    let own_p = Path::new(own);
    let rel = own_p.strip_prefix(root).map_err(|_| {
        CgroupError::Msg(format!(
            "own cgroup {own} is outside the mounted part of the hierarchy ({root})"
        ))
    })?;
    Ok(rel.to_path_buf())
}

fn join_inner(base: &Path, inner: &Path) -> PathBuf {
    base.join(inner.strip_prefix("/").unwrap_or(inner))
}

/// The directories for one container, computed from the parsed host data.
pub struct Plan {
    pub layout: Layout,
    pub v1: Vec<V1Dir>,
    pub unified: Option<PathBuf>,
    pub unified_mountpoint: Option<PathBuf>,
}

pub fn plan(mounts: &[CgroupMount], own: &[OwnCgroup], inner: &Inner) -> Result<Plan, CgroupError> {
    let layout = detect_layout(mounts)?;
    let mut v1: Vec<V1Dir> = Vec::new();
    if layout != Layout::V2 {
        for m in mounts
            .iter()
            .filter(|m| !m.unified && !m.controllers.is_empty())
        {
            // The same hierarchy may be mounted twice (bind mounts): keep the first.
            if v1.iter().any(|d| d.controllers == m.controllers) {
                continue;
            }
            let dir = match inner {
                Inner::Absolute(p) => join_inner(&m.mountpoint, p),
                Inner::Relative(p) => {
                    let mine = own
                        .iter()
                        .find(|o| o.controllers.iter().any(|c| m.controllers.contains(c)))
                        .ok_or_else(|| {
                            CgroupError::Msg(format!(
                                "/proc/self/cgroup has no line for the {} hierarchy",
                                m.controllers.join(",")
                            ))
                        })?;
                    let base = join_inner(&m.mountpoint, &below_mount_root(&mine.path, &m.root)?);
                    base.join(p)
                }
            };
            v1.push(V1Dir {
                controllers: m.controllers.clone(),
                dir,
            });
        }
    }
    let v2_mount = match layout {
        Layout::V1 => None,
        Layout::V2 => mounts
            .iter()
            .find(|m| m.unified && m.mountpoint == Path::new(V2_MOUNTPOINT))
            .or_else(|| mounts.iter().find(|m| m.unified)),
        Layout::Hybrid => mounts
            .iter()
            .find(|m| m.unified && m.mountpoint == Path::new(HYBRID_UNIFIED_MOUNTPOINT))
            .or_else(|| mounts.iter().find(|m| m.unified)),
    };
    let unified = match (v2_mount, inner) {
        (None, _) => None,
        (Some(m), Inner::Absolute(p)) => Some(join_inner(&m.mountpoint, p)),
        (Some(m), Inner::Relative(p)) => {
            let mine = own
                .iter()
                .find(|o| o.controllers.is_empty())
                .ok_or_else(|| CgroupError::Msg("/proc/self/cgroup has no \"0::\" line".into()))?;
            let mut own_rel = below_mount_root(&mine.path, &m.root)?;
            // runc's fs2 driver: the caller's own cgroup most likely holds
            // processes, so v2 (no internal processes) uses its parent.
            if layout == Layout::V2 {
                own_rel.pop();
            }
            Some(join_inner(&m.mountpoint, &own_rel).join(p))
        }
    };
    Ok(Plan {
        layout,
        v1,
        unified,
        unified_mountpoint: v2_mount.map(|m| m.mountpoint.clone()),
    })
}

pub use vessel_common::cgroup_units::{blkio_weight_to_io_weight, shares_to_weight};

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
24 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
90 1 0:32 / /mnt/mem\\040copy rw,relatime - cgroup cgroup rw,memory
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
2:cpu,cpuacct:/user
1:net_cls,net_prio:/
5:freezer:/
0::/init.scope
";
    const V2_MOUNTINFO: &str = "\
25 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn mounts(text: &str) -> Vec<CgroupMount> {
        parse_mountinfo(text)
    }

    #[test]
    fn mountinfo_finds_comounted_and_named_hierarchies() {
        let m = mounts(HYBRID_MOUNTINFO);
        assert_eq!(m.len(), 8);
        assert_eq!(m[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[1].controllers, vec!["cpuset"]);
        assert_eq!(m[3].controllers, vec!["net_cls", "net_prio"]);
        assert_eq!(m[5].controllers, vec!["name=systemd"]);
        assert!(m[6].unified && m[6].controllers.is_empty());
        assert_eq!(m[7].mountpoint, PathBuf::from("/mnt/mem copy"));
    }

    #[test]
    fn a_later_mount_at_the_same_path_hides_the_earlier_one() {
        // A nested container: the host's cgroup2 at unified, then another
        // cgroup2 (a sub-tree) and finally a tmpfs stacked on top.
        let over = format!(
            "{HYBRID_MOUNTINFO}\
95 41 0:38 /inner /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        );
        let m = mounts(&over);
        let u: Vec<_> = m.iter().filter(|m| m.unified).collect();
        assert_eq!(u.len(), 1, "{m:?}");
        assert_eq!(u[0].root, "/inner");
        let hidden = format!("{over}96 95 0:50 / /sys/fs/cgroup/unified rw - tmpfs tmpfs rw\n");
        let m = mounts(&hidden);
        assert!(!m.iter().any(|m| m.unified), "{m:?}");
        assert_eq!(detect_layout(&m).unwrap(), Layout::V1);
    }

    #[test]
    fn default_path_is_unique_per_root() {
        assert_eq!(
            default_cgroups_path(Path::new(DEFAULT_ROOT), "c1"),
            "/vessel/c1"
        );
        let a = default_cgroups_path(Path::new("/tmp/root-a"), "c1");
        let b = default_cgroups_path(Path::new("/tmp/root-b"), "c1");
        assert_ne!(a, b);
        assert!(a.starts_with("/vessel/") && a.ends_with("-c1"), "{a}");
        assert_eq!(a.len(), "/vessel/".len() + 8 + "-c1".len(), "{a}");
        assert_eq!(a, default_cgroups_path(Path::new("/tmp/root-a"), "c1"));
    }

    #[test]
    fn layouts() {
        assert_eq!(
            detect_layout(&mounts(HYBRID_MOUNTINFO)).unwrap(),
            Layout::Hybrid
        );
        assert_eq!(detect_layout(&mounts(V2_MOUNTINFO)).unwrap(), Layout::V2);
        let v1_only: String = HYBRID_MOUNTINFO
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(detect_layout(&mounts(&v1_only)).unwrap(), Layout::V1);
        assert!(detect_layout(&[]).is_err());
    }

    #[test]
    fn default_path_is_absolute_under_every_hierarchy() {
        let own = parse_proc_cgroup(HYBRID_SELF).unwrap();
        let inner = inner_path(None, "c1").unwrap();
        assert_eq!(inner, Inner::Absolute("/vessel/c1".into()));
        let p = plan(&mounts(HYBRID_MOUNTINFO), &own, &inner).unwrap();
        assert_eq!(p.layout, Layout::Hybrid);
        let dirs: Vec<_> = p.v1.iter().map(|d| d.dir.clone()).collect();
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/vessel/c1"),
                "/sys/fs/cgroup/cpuset/vessel/c1".into(),
                "/sys/fs/cgroup/memory/vessel/c1".into(),
                "/sys/fs/cgroup/net_cls,net_prio/vessel/c1".into(),
                "/sys/fs/cgroup/freezer/vessel/c1".into(),
                "/sys/fs/cgroup/systemd/vessel/c1".into(),
            ]
        );
        assert_eq!(p.unified, Some("/sys/fs/cgroup/unified/vessel/c1".into()));
    }

    #[test]
    fn relative_path_is_under_own_cgroup() {
        let own = parse_proc_cgroup(HYBRID_SELF).unwrap();
        let inner = inner_path(Some("box/c2"), "c2").unwrap();
        let p = plan(&mounts(HYBRID_MOUNTINFO), &own, &inner).unwrap();
        let mem = p.v1.iter().find(|d| d.controllers == ["memory"]).unwrap();
        assert_eq!(
            mem.dir,
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/box/c2")
        );
        let cpu = p.v1.iter().find(|d| d.controllers[0] == "cpu").unwrap();
        assert_eq!(
            cpu.dir,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/user/box/c2")
        );
        // Hybrid unified follows the v1 (fs) driver: the own cgroup itself.
        assert_eq!(
            p.unified,
            Some("/sys/fs/cgroup/unified/init.scope/box/c2".into())
        );

        // Pure v2 follows runc's fs2 driver: the parent of the own cgroup.
        let own2 = parse_proc_cgroup("0::/user.slice/session-1.scope\n").unwrap();
        let p2 = plan(&mounts(V2_MOUNTINFO), &own2, &inner).unwrap();
        assert!(p2.v1.is_empty());
        assert_eq!(p2.unified, Some("/sys/fs/cgroup/user.slice/box/c2".into()));
    }

    #[test]
    fn mount_root_is_stripped_from_own_cgroup() {
        let mi = "50 1 0:40 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let own = parse_proc_cgroup("4:memory:/outer/me\n").unwrap();
        let inner = inner_path(Some("sub"), "x").unwrap();
        let p = plan(&mounts(mi), &own, &inner).unwrap();
        assert_eq!(p.v1[0].dir, PathBuf::from("/sys/fs/cgroup/memory/me/sub"));
        let own_out = parse_proc_cgroup("4:memory:/elsewhere\n").unwrap();
        assert!(plan(&mounts(mi), &own_out, &inner).is_err());
    }

    #[test]
    fn bad_paths_are_rejected_with_a_reason() {
        let e = inner_path(Some("/a/../../etc"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains(".."), "{e}");
        let e = inner_path(Some("system.slice:vessel:x"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("systemd"), "{e}");
        assert!(inner_path(Some("/"), "x").is_err());
        assert!(inner_path(Some("./."), "x").is_err());
        assert!(inner_path(None, "a/b").is_err());
        assert_eq!(
            inner_path(Some("/a/./b/"), "x").unwrap(),
            Inner::Absolute("/a/b".into())
        );
        assert!(parse_proc_cgroup("garbage\n").is_err());
    }
}
