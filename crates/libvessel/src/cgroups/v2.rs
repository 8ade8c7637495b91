//! cgroup2 (pure v2, or the unified hierarchy of a hybrid host): one
//! directory, controllers enabled from above through cgroup.subtree_control,
//! "max" for unlimited.
//!
//! Device control: cgroup2 has no devices.allow/deny; it needs an eBPF
//! program (BPF_CGROUP_DEVICE) attached to the directory: see devices_bpf.

use super::detect;
use super::fsio::{self, v2_limit, write};
use super::CgroupError;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// mkdir every level below the mountpoint, and in each level above the leaf
/// enable every controller that level has available, so the leaf gets them.
pub fn create(mountpoint: &Path, leaf: &Path) -> Result<(), CgroupError> {
    let rel = leaf.strip_prefix(mountpoint).map_err(|_| {
        CgroupError::Msg(format!(
            "{} is not below the cgroup2 mount {}",
            leaf.display(),
            mountpoint.display()
        ))
    })?;
    let mut cur = mountpoint.to_path_buf();
    for comp in rel.components() {
        enable_controllers(&cur)?;
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Io {
                    what: "create cgroup directory".into(),
                    path: cur,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// "+ctrl" into cgroup.subtree_control for each controller the directory has
/// and has not enabled yet. Tolerated, as the leaf can still be used for
/// the controllers already enabled (a limit on another one then fails by
/// name, see `Cgroup::need`): EBUSY (the level holds processes: the "no
/// internal processes" rule), and EACCES/EPERM (a level above a delegated
/// subtree, which a rootless caller may not write: systemd enables there
/// only what it delegates, e.g. pids memory cpu for user@UID.service, and
/// cpuset or io stay off). Other errors are real.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = fsio::read(&dir.join("cgroup.controllers"))?;
    let enabled = fsio::read(&dir.join("cgroup.subtree_control"))?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    for c in available
        .split_whitespace()
        .filter(|c| !enabled.contains(c))
    {
        match write(dir, "cgroup.subtree_control", &format!("+{c}")) {
            Ok(()) => {}
            Err(CgroupError::Io { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EBUSY | libc::EACCES | libc::EPERM)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// runc's conversion of the spec's memory+swap total into memory.swap.max.
pub fn swap_max(swap: i64, limit: i64) -> Result<Option<String>, CgroupError> {
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some("max".into())),
        _ => {}
    }
    if limit <= 0 {
        return Err(CgroupError::Msg(
            "cannot set a swap limit without a memory limit".into(),
        ));
    }
    if swap < limit {
        return Err(CgroupError::Msg(format!(
            "memory+swap limit {swap} is smaller than the memory limit {limit}"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

pub fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    // `update --memory-swap` alone: runc converts against the limit the
    // container has (its merged config); here that is memory.max.
    let base = if limit == 0 && swap > 0 {
        fsio::read(&dir.join("memory.max"))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
    } else {
        limit
    };
    if let Some(s) = swap_max(swap, base)? {
        // No swap accounting (no memory.swap.max): "max" and "0" are what
        // the host does anyway, so they pass (runc's fs2 rule).
        match write(dir, "memory.swap.max", &s) {
            Err(CgroupError::Missing { .. }) if s == "max" || s == "0" => {}
            r => r?,
        }
    }
    if limit != 0 {
        write(dir, "memory.max", &v2_limit(limit))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.low", &v2_limit(r))?;
    }
    // kernel, kernelTCP, swappiness and disableOOMKiller have no cgroup2
    // counterpart; runc ignores them there too.
    Ok(())
}

pub fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.realtime_runtime().unwrap_or(0) != 0 || c.realtime_period().unwrap_or(0) != 0 {
        return Err(CgroupError::Msg(
            "realtime CPU limits (cpu.realtimeRuntime/Period) are not supported on cgroup v2"
                .into(),
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write(dir, "cpu.weight", &detect::shares_to_weight(s).to_string())?;
    }
    // A period alone (`update --cpu-period`) keeps the quota, as runc's
    // update does with its merged config.
    let current = fsio::read(&dir.join("cpu.max")).ok();
    let current_quota = current.as_deref().and_then(|t| t.split_whitespace().next());
    let (quota, period) = (c.quota().unwrap_or(0), c.period().unwrap_or(0));
    if let Some(max) = vessel_common::cgroup_units::cpu_max(quota, period, current_quota) {
        write(dir, "cpu.max", &max)?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

pub fn set_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // BFQ takes the blkio-style weight (10..1000) as is; io.weight wants
    // 1..10000 (runc's conversion).
    let bfq = fsio::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            let v = detect::blkio_weight_to_io_weight(u64::from(w));
            write(dir, "io.weight", &v.to_string())?;
        }
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let dev = format!("{}:{}", wd.major(), wd.minor());
            if bfq {
                write(dir, "io.bfq.weight", &format!("{dev} {w}"))?;
            } else {
                let v = detect::blkio_weight_to_io_weight(u64::from(w));
                write(dir, "io.weight", &format!("{dev} {v}"))?;
            }
        }
    }
    // leafWeight has no cgroup2 counterpart.
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

pub fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let size = l.page_size();
        super::v1::check_page_size(size)?;
        write(dir, &format!("hugetlb.{size}.max"), &v2_limit(l.limit()))?;
        let rsvd = format!("hugetlb.{size}.rsvd.max");
        if fsio::exists(dir, &rsvd) {
            write(dir, &rsvd, &v2_limit(l.limit()))?;
        }
    }
    Ok(())
}

/// `linux.resources.unified`: raw "file": "value" pairs for the cgroup2
/// directory. `allowed` limits the controllers (on a hybrid host only those
/// living on the unified mount); None allows all.
pub fn set_unified(
    dir: &Path,
    map: &HashMap<String, String>,
    allowed: Option<&[String]>,
) -> Result<(), CgroupError> {
    // Sorted for a deterministic order of writes and errors.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let bad = key.is_empty() || key.contains('/') || key.starts_with('.');
        let controller = key.split('.').next().unwrap_or("");
        if bad || !key.contains('.') {
            return Err(CgroupError::Msg(format!(
                "linux.resources.unified: {key:?} is not a cgroup file name"
            )));
        }
        if let Some(allowed) = allowed {
            if controller != "cgroup" && !allowed.iter().any(|c| c == controller) {
                return Err(CgroupError::Msg(format!(
                    "invalid configuration: linux.resources.unified: {key:?} needs the \
                     {controller} controller on cgroup v2, but this host runs it on cgroup v1"
                )));
            }
        }
        write(dir, key, &map[key])?;
    }
    Ok(())
}

/// cgroup.freeze, then wait for cgroup.events to say "frozen 1" (or 0).
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let want = if frozen { 1 } else { 0 };
    write(dir, "cgroup.freeze", &want.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fsio::keyed(&dir.join("cgroup.events"), "frozen") == Some(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = write(dir, "cgroup.freeze", "0");
            }
            return Err(CgroupError::Msg(format!(
                "{}: \"frozen {want}\" not reached after 5 s",
                dir.join("cgroup.events").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    // cgroup.freeze is the request, cgroup.events the state; a freeze in
    // progress counts as frozen, like runc.
    let req = fsio::read(&dir.join("cgroup.freeze"))?;
    Ok(req.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_conversion_matches_runc() {
        assert_eq!(swap_max(0, -1).unwrap(), Some("max".into()));
        assert_eq!(swap_max(0, 100).unwrap(), None);
        assert_eq!(swap_max(-1, 100).unwrap(), Some("max".into()));
        assert_eq!(swap_max(300, 100).unwrap(), Some("200".into()));
        assert_eq!(swap_max(100, 100).unwrap(), Some("0".into()));
        assert!(swap_max(50, 100).is_err());
        assert!(swap_max(50, 0).is_err());
    }

    #[test]
    fn unified_keys_are_checked() {
        let dir = Path::new("/nonexistent-vessel-test");
        let m = |k: &str| HashMap::from([(k.to_string(), "1".to_string())]);
        assert!(set_unified(dir, &m("../x.y"), None).is_err());
        assert!(set_unified(dir, &m("noDot"), None).is_err());
        let hybrid = ["hugetlb".to_string()];
        let e = set_unified(dir, &m("memory.max"), Some(&hybrid)).unwrap_err();
        assert!(e.to_string().contains("cgroup v1"), "{e}");
        // Allowed key: reaches the write, which reports the missing file.
        let e = set_unified(dir, &m("hugetlb.2MB.max"), Some(&hybrid)).unwrap_err();
        assert!(matches!(e, CgroupError::Missing { .. }), "{e}");
    }
}
