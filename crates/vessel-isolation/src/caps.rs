//! Capability sets as bit masks, and the raw syscalls that apply them in the
//! container init and in the VM guest's workload child (async-signal-safe:
//! no allocation). The masks are built before fork/clone.

use std::str::FromStr;

/// Capability sets into a mask. oci-spec has already refused unknown names
/// while parsing config.json; a name the caps crate lacks is left out.
pub fn mask(names: Option<&std::collections::HashSet<oci_spec::runtime::Capability>>) -> u64 {
    let mut m = 0u64;
    for c in names.into_iter().flatten() {
        // serde gives the OCI name ("CAP_CHOWN"); Display does not.
        let name = serde_json::to_string(c).unwrap_or_default();
        if let Ok(cap) = caps::Capability::from_str(name.trim_matches('"')) {
            m |= 1u64 << cap.index();
        }
    }
    m
}

/// Parse names from the exec `--cap` flag.
pub fn mask_from_names(names: &[String]) -> Result<u64, String> {
    let mut m = 0u64;
    for n in names {
        let full = if n.starts_with("CAP_") {
            n.clone()
        } else {
            format!("CAP_{}", n.to_uppercase())
        };
        let cap =
            caps::Capability::from_str(&full).map_err(|_| format!("unknown capability {n:?}"))?;
        m |= 1u64 << cap.index();
    }
    Ok(m)
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// CAP_SYS_ADMIN's bit in a capability mask.
pub const CAP_SYS_ADMIN_BIT: u64 = 1 << 21;

#[derive(Debug, Clone, Copy, Default)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub last_cap: u32,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

impl CapSets {
    /// `process.capabilities` as masks (every set empty when absent, as in
    /// runc), for a kernel whose highest capability is `last_cap`.
    pub fn from_oci(c: Option<&oci_spec::runtime::LinuxCapabilities>, last_cap: u32) -> CapSets {
        CapSets {
            bounding: c.map(|c| mask(c.bounding().as_ref())).unwrap_or(0),
            effective: c.map(|c| mask(c.effective().as_ref())).unwrap_or(0),
            permitted: c.map(|c| mask(c.permitted().as_ref())).unwrap_or(0),
            inheritable: c.map(|c| mask(c.inheritable().as_ref())).unwrap_or(0),
            ambient: c.map(|c| mask(c.ambient().as_ref())).unwrap_or(0),
            last_cap,
        }
    }

    /// Must CAP_SYS_ADMIN stay in the effective and permitted sets until the
    /// seccomp filter is loaded? Without no_new_privs the kernel accepts a
    /// filter only from a task holding it; a process that drops it keeps it
    /// that long, and `set_sets` with the requested sets drops it right after
    /// the filter.
    pub fn keep_admin_for_filter(&self, has_filter: bool, no_new_privs: bool) -> bool {
        has_filter
            && !no_new_privs
            && (self.effective & CAP_SYS_ADMIN_BIT == 0 || self.permitted & CAP_SYS_ADMIN_BIT == 0)
    }

    /// Drop from the bounding set everything not in `bounding`
    /// (needs CAP_SETPCAP, so it runs before switching user).
    pub fn drop_bounding(&self) -> Result<(), i32> {
        for c in 0..=self.last_cap {
            if self.bounding & (1u64 << c) == 0 {
                // SAFETY: prctl with integer arguments only.
                let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
                if r < 0 {
                    let e = errno();
                    if e != libc::EINVAL {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Set effective, permitted and inheritable, then raise the ambient set.
    pub fn apply(&self) -> Result<(), i32> {
        self.apply_keeping_admin(false)
    }

    /// `apply`, with CAP_SYS_ADMIN added to the effective and permitted
    /// sets when `keep_admin` (see `keep_admin_for_filter`).
    pub fn apply_keeping_admin(&self, keep_admin: bool) -> Result<(), i32> {
        let extra = if keep_admin { CAP_SYS_ADMIN_BIT } else { 0 };
        set_sets(
            self.effective | extra,
            self.permitted | extra,
            self.inheritable,
        )?;
        set_ambient(self.ambient, self.last_cap)
    }
}

/// capset(2) with the three sets (async-signal-safe).
pub fn set_sets(effective: u64, permitted: u64, inheritable: u64) -> Result<(), i32> {
    let mut hdr = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs as capset(2) expects for version 3.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(errno());
    }
    Ok(())
}

/// Clear the ambient set, then raise each requested capability.
pub fn set_ambient(ambient: u64, last_cap: u32) -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    for c in 0..=last_cap {
        if ambient & (1u64 << c) != 0 {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    c as libc::c_ulong,
                    0,
                    0,
                )
            };
            // A capability that is not both permitted and inheritable cannot
            // be ambient; runc ignores that too.
            if r < 0 && errno() != libc::EPERM {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// The calling thread's errno (async-signal-safe).
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns the thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_from_oci_names_and_flag_names() {
        let caps: oci_spec::runtime::LinuxCapabilities =
            serde_json::from_value(serde_json::json!({
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL", "CAP_SYS_ADMIN"]
            }))
            .expect("capabilities JSON");
        let sets = CapSets::from_oci(Some(&caps), 40);
        assert_eq!(sets.bounding, (1 << 5) | (1 << 10) | (1 << 29));
        assert_eq!(sets.effective, 1 << 5);
        assert_eq!(sets.permitted, (1 << 5) | CAP_SYS_ADMIN_BIT);
        assert_eq!((sets.inheritable, sets.ambient), (0, 0));
        assert_eq!(CapSets::from_oci(None, 40).bounding, 0);
        assert_eq!(
            mask_from_names(&["kill".into(), "CAP_NET_BIND_SERVICE".into()]),
            Ok((1 << 5) | (1 << 10))
        );
        assert!(mask_from_names(&["CAP_NOPE".into()]).is_err());
    }

    #[test]
    fn admin_is_kept_only_to_load_a_filter_without_no_new_privs() {
        let mut sets = CapSets::default();
        assert!(sets.keep_admin_for_filter(true, false));
        assert!(!sets.keep_admin_for_filter(true, true));
        assert!(!sets.keep_admin_for_filter(false, false));
        sets.effective = CAP_SYS_ADMIN_BIT;
        sets.permitted = CAP_SYS_ADMIN_BIT;
        assert!(!sets.keep_admin_for_filter(true, false));
    }
}
