//! Capability sets as bit masks, and the raw syscalls that apply them in the
//! container init (async-signal-safe: no allocation).

use crate::{Error, Result};
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
pub fn mask_from_names(names: &[String]) -> Result<u64> {
    let mut m = 0u64;
    for n in names {
        let full = if n.starts_with("CAP_") {
            n.clone()
        } else {
            format!("CAP_{}", n.to_uppercase())
        };
        let cap = caps::Capability::from_str(&full)
            .map_err(|_| Error::invalid(format!("unknown capability {n:?}")))?;
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
    /// Drop from the bounding set everything not in `bounding`
    /// (needs CAP_SETPCAP, so it runs before switching user).
    pub fn drop_bounding(&self) -> std::result::Result<(), i32> {
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
    pub fn apply(&self) -> std::result::Result<(), i32> {
        set_sets(self.effective, self.permitted, self.inheritable)?;
        set_ambient(self.ambient, self.last_cap)
    }
}

/// capset(2) with the three sets (async-signal-safe).
pub fn set_sets(effective: u64, permitted: u64, inheritable: u64) -> std::result::Result<(), i32> {
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
pub fn set_ambient(ambient: u64, last_cap: u32) -> std::result::Result<(), i32> {
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
