//! The OCI mount-option table: each option of `mounts[].options` as
//! mount(2) flags to set and clear, a propagation type, filesystem data, or
//! mount_setattr(2) attributes for the recursive (`rro`, `rnosuid`, ...)
//! ones. One table for container mode (on the host) and the agent (in the
//! guest), so an option means the same in both.

/// mount_setattr(2) attribute bits (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The recursive options runc 1.1 knows (`runc features`): (set, clear)
/// of mount_setattr attributes. The atime ones replace the whole atime
/// field, so they clear MOUNT_ATTR__ATIME and set their value.
pub fn recursive_option(o: &str) -> Option<(u64, u64)> {
    Some(match o {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnorelatime" => (0, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (0, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (0, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Fold the recursive options of a mount into (set, clear).
pub fn recursive_attrs(opts: &[String]) -> (u64, u64) {
    let (mut set, mut clr) = (0u64, 0u64);
    for o in opts {
        if let Some((s, c)) = recursive_option(o) {
            // The atime mode is one field (clear MOUNT_ATTR__ATIME, set
            // the value): clearing it first makes the last option win.
            set = (set & !c) | s;
            clr = (clr & !s) | c;
        }
    }
    (set, clr)
}

/// MS_NOSYMFOLLOW (linux/mount.h; not in every libc crate version).
pub const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// Is a config.json mount a bind of a host path? Its type is "bind", or an
/// option says "bind"/"rbind" (how runc and container mode read it; VM mode
/// shares such a source with the guest over virtio-fs).
pub fn is_bind(kind: Option<&str>, opts: &[String]) -> bool {
    kind == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind")
}

/// Parse mount options into (flags, propagation, data, bind, recursive).
pub fn parse_options(opts: &[String]) -> (libc::c_ulong, libc::c_ulong, String, bool) {
    let mut flags: libc::c_ulong = 0;
    let mut prop: libc::c_ulong = 0;
    let mut data: Vec<&str> = Vec::new();
    let mut bind = false;
    for o in opts {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "suid" => (0, libc::MS_NOSUID),
            "nosuid" => (libc::MS_NOSUID, 0),
            "dev" => (0, libc::MS_NODEV),
            "nodev" => (libc::MS_NODEV, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "noexec" => (libc::MS_NOEXEC, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "bind" => {
                bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" => {
                prop = libc::MS_PRIVATE;
                (0, 0)
            }
            "rprivate" => {
                prop = libc::MS_PRIVATE | libc::MS_REC;
                (0, 0)
            }
            "shared" => {
                prop = libc::MS_SHARED;
                (0, 0)
            }
            "rshared" => {
                prop = libc::MS_SHARED | libc::MS_REC;
                (0, 0)
            }
            "slave" => {
                prop = libc::MS_SLAVE;
                (0, 0)
            }
            "rslave" => {
                prop = libc::MS_SLAVE | libc::MS_REC;
                (0, 0)
            }
            "unbindable" => {
                prop = libc::MS_UNBINDABLE;
                (0, 0)
            }
            "runbindable" => {
                prop = libc::MS_UNBINDABLE | libc::MS_REC;
                (0, 0)
            }
            // "defaults" means no flag; runc-specific or handled elsewhere.
            "defaults" | "tmpcopyup" | "idmap" | "ridmap" => (0, 0),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            // Recursive attributes: mount_setattr after the mount.
            o if recursive_option(o).is_some() => (0, 0),
            other => {
                data.push(other);
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data.join(","), bind)
}

/// The mount(2) flags of the mount holding `path` (statvfs), the ones a bind
/// remount must repeat: in a user namespace the kernel refuses to clear a
/// locked nosuid, nodev, noexec, rdonly or atime flag. 0 when statvfs fails.
/// Allocation-free: container mode's init calls it between clone and exec.
pub fn mounted_flags(path: &std::ffi::CStr) -> libc::c_ulong {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is writable.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } < 0 {
        return 0;
    }
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
        if st.f_flag & s != 0 {
            m |= ms;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_flags_match_the_mount_table() {
        assert_eq!(mounted_flags(c"/nonexistent/path"), 0);
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
        // The last /proc entry is the one statvfs sees.
        let Some(opts) = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(1) == Some(&"/proc")).then(|| f.get(3).copied().unwrap_or("").to_string())
            })
            .next_back()
        else {
            return; // no /proc mounted: nothing to compare with
        };
        let got = mounted_flags(c"/proc");
        for (opt, flag) in [
            ("ro", libc::MS_RDONLY),
            ("nosuid", libc::MS_NOSUID),
            ("nodev", libc::MS_NODEV),
            ("noexec", libc::MS_NOEXEC),
        ] {
            let listed = opts.split(',').any(|o| o == opt);
            assert_eq!(got & flag != 0, listed, "{opt} in {opts:?}, flags {got:#x}");
        }
    }

    #[test]
    fn options_to_flags() {
        let o: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755", "size=65536k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (f, p, d, b) = parse_options(&o);
        assert!(b);
        assert_eq!(
            f,
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(p, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(d, "mode=755,size=65536k");
        let (f, _, _, _) = parse_options(&["ro".into(), "rw".into()]);
        assert_eq!(f, 0);
    }

    #[test]
    fn recursive_options_become_mount_setattr_bits() {
        let o: Vec<String> = ["rbind", "rro", "rnosuid", "rnoatime"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (_, _, d, _) = parse_options(&o);
        assert_eq!(d, "", "recursive options must not reach mount(2) as data");
        let (set, clr) = recursive_attrs(&o);
        assert_eq!(
            set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(clr, MOUNT_ATTR__ATIME);
        let (set, clr) = recursive_attrs(&["rro".into(), "rrw".into()]);
        assert_eq!((set, clr), (0, MOUNT_ATTR_RDONLY));
    }
}
