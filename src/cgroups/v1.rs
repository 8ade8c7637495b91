//! cgroup v1 controllers: one directory per hierarchy, files named
//! `<controller>.<knob>`. Values of -1 mean unlimited and are written as is.

use super::fsio::{self, write};
use super::CgroupError;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A new v1 cpuset cgroup starts with empty cpuset.cpus/mems, and no task
/// can join it until they are filled: copy them down from the nearest
/// ancestor, filling every empty level on the way.
pub fn init_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let parent = match dir.parent() {
        Some(p) => p,
        None => return Ok(()),
    };
    // The hierarchy root always has both files filled; stop there.
    if !parent.join("cpuset.cpus").exists() {
        return Ok(());
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fsio::read(&dir.join(file))?;
        if !mine.trim().is_empty() {
            continue;
        }
        let mut theirs = fsio::read(&parent.join(file))?;
        if theirs.trim().is_empty() {
            init_cpuset(parent)?;
            theirs = fsio::read(&parent.join(file))?;
        }
        write(dir, file, theirs.trim())?;
    }
    Ok(())
}

pub fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    // runc: memory set to unlimited with swap unset means swap unlimited
    // too, but only where swap accounting exists.
    if limit == -1 && swap == 0 && fsio::exists(dir, MEMSW) {
        swap = -1;
    }
    // runc writes memsw whenever swap is set and so fails when the kernel
    // has no swap accounting. vessel follows it for a real limit, but lets
    // -1 through: "unlimited" is already what a host without memsw gives,
    // and runc's fs2 driver ignores "max" on a missing memory.swap.max too.
    if swap == -1 && !fsio::exists(dir, MEMSW) {
        swap = 0;
    }
    if limit != 0 && swap != 0 {
        // The kernel requires limit <= memsw at every step: raise memsw
        // first when growing, lower the limit first when shrinking.
        let cur = fsio::read_u64(&dir.join(LIMIT)).unwrap_or(u64::MAX);
        if swap == -1 || (swap > 0 && cur < swap as u64) {
            write(dir, MEMSW, &swap.to_string())?;
            write(dir, LIMIT, &limit.to_string())?;
        } else {
            write(dir, LIMIT, &limit.to_string())?;
            write(dir, MEMSW, &swap.to_string())?;
        }
    } else {
        if limit != 0 {
            write(dir, LIMIT, &limit.to_string())?;
        }
        if swap != 0 {
            write(dir, MEMSW, &swap.to_string())?;
        }
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    // memory.kmem.limit_in_bytes is deprecated and refused by new kernels:
    // `kernel` is ignored, as runc does.
    if let Some(t) = m.kernel_tcp().filter(|t| *t != 0) {
        write(dir, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::Msg(format!(
                "memory.swappiness {s} is out of range (0-100)"
            )));
        }
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

pub fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write(dir, "cpu.shares", &s.to_string())?;
    }
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    // Setting a shorter period first can be refused (EINVAL) when the old
    // quota over the new period exceeds the parent's; retry after the quota.
    let mut period_pending = false;
    if let Some(p) = period {
        if let Err(e) = write(dir, "cpu.cfs_period_us", &p.to_string()) {
            if quota.is_none() || matches!(e, CgroupError::Missing { .. }) {
                return Err(e);
            }
            period_pending = true;
        }
    }
    if let Some(q) = quota {
        write(dir, "cpu.cfs_quota_us", &q.to_string())?;
        if let (true, Some(p)) = (period_pending, period) {
            write(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    // Realtime is only touched when asked for; kernels without
    // RT_GROUP_SCHED lack the files and that is an error then.
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    Ok(())
}

pub fn set_cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    // Same file names on v1 and v2.
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// pids.max is named the same on v1 and v2; 0 means "not set" (runc).
pub fn set_pids(dir: &Path, limit: i64) -> Result<(), CgroupError> {
    if limit == 0 {
        return Ok(());
    }
    write(dir, "pids.max", &fsio::v2_limit(limit))
}

pub fn set_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // CFQ's blkio.weight is gone from modern kernels; BFQ exposes
    // blkio.bfq.weight instead (runc picks the same way). Neither: the
    // write below reports the missing blkio.weight.
    let (weight, weight_device) =
        if fsio::exists(dir, "blkio.weight") || !fsio::exists(dir, "blkio.bfq.weight") {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write(dir, weight, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        let dev = format!("{}:{}", wd.major(), wd.minor());
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            write(dir, weight_device, &format!("{dev} {w}"))?;
        }
        if let Some(w) = wd.leaf_weight().filter(|w| *w != 0) {
            write(dir, "blkio.leaf_weight_device", &format!("{dev} {w}"))?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

pub fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let size = l.page_size();
        check_page_size(size)?;
        write(
            dir,
            &format!("hugetlb.{size}.limit_in_bytes"),
            &l.limit().to_string(),
        )?;
        // Reservation accounting (Linux 5.7+) is what the spec's limit means
        // when the kernel has it.
        let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
        if fsio::exists(dir, &rsvd) {
            write(dir, &rsvd, &l.limit().to_string())?;
        }
    }
    Ok(())
}

/// A page size becomes part of a file name: keep it to "2MB"-like words.
pub fn check_page_size(size: &str) -> Result<(), CgroupError> {
    let ok =
        !size.is_empty() && size.ends_with('B') && size.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(CgroupError::Msg(format!(
            "hugepage size {size:?} is not of the form <number><unit>B (e.g. 2MB)"
        )))
    }
}

/// runc's default device rules, appended after the spec's own (specconv's
/// AllowedDevices): mknod of anything, and the devices every container has.
pub(crate) const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",   // /dev/null
    "c 1:8 rwm",   // /dev/random
    "c 1:7 rwm",   // /dev/full
    "c 5:0 rwm",   // /dev/tty
    "c 1:5 rwm",   // /dev/zero
    "c 1:9 rwm",   // /dev/urandom
    "c 5:1 rwm",   // /dev/console
    "c 136:* rwm", // /dev/pts/*
    "c 5:2 rwm",   // /dev/ptmx
];

/// "type major:minor access" as devices.allow/deny take it.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = d.typ().unwrap_or(LinuxDeviceType::A).as_str().to_string();
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = d
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// v1 enforces device access here: start from deny-all, replay the spec's
/// rules in order, then runc's defaults. (`linux.devices` entries must be
/// passed in as allow rules by the caller, as runc's specconv does.)
pub fn set_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    write(dir, "devices.deny", "a")?;
    for r in rules {
        let file = if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &device_rule(r))?;
    }
    for r in DEFAULT_DEVICE_RULES {
        write(dir, "devices.allow", r)?;
    }
    Ok(())
}

/// freezer.state: write FROZEN (or THAWED) and wait until the kernel reports
/// it; FREEZING can take a while when a task is in an uninterruptible sleep,
/// so the request is re-issued while waiting.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tries = 0u32;
    loop {
        if tries.is_multiple_of(25) {
            write(dir, "freezer.state", want)?;
        }
        tries += 1;
        let state = fsio::read(&dir.join("freezer.state"))?;
        if state.trim() == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            // Leave no half-frozen cgroup behind.
            if frozen {
                let _ = write(dir, "freezer.state", "THAWED");
            }
            return Err(CgroupError::Msg(format!(
                "{}: still {} after 5 s waiting for {want}",
                dir.join("freezer.state").display(),
                state.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    // FREEZING counts as frozen (runc reports "paused" for it too).
    let state = fsio::read(&dir.join("freezer.state"))?;
    Ok(state.trim() != "THAWED")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn device_rules_format_like_the_kernel_wants() {
        assert_eq!(
            device_rule(&rule(r#"{"allow":false,"access":"rwm"}"#)),
            "a *:* rwm"
        );
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}"#
            )),
            "c 1:3 rw"
        );
        assert_eq!(
            device_rule(&rule(r#"{"allow":true,"type":"b","major":8}"#)),
            "b 8:* rwm"
        );
    }

    /// A directory of plain files standing in for a cgroup: the knobs the
    /// "kernel" has exist, the rest do not.
    fn fake_cgroup(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vessel-cg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, v) in files {
            std::fs::write(dir.join(f), v).unwrap();
        }
        dir
    }

    fn memory(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn swap_without_swap_accounting_follows_runc() {
        let dir = fake_cgroup(
            "noswap",
            &[("memory.limit_in_bytes", "9223372036854771712")],
        );
        // A real swap limit cannot be honoured: error naming the file.
        let e = set_memory(&dir, &memory(r#"{"limit": 1048576, "swap": 2097152}"#)).unwrap_err();
        assert!(e.to_string().contains("memory.memsw.limit_in_bytes"), "{e}");
        // Unlimited swap is what the host does anyway.
        set_memory(&dir, &memory(r#"{"limit": 1048576, "swap": -1}"#)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memory_and_swap_are_written_in_an_order_the_kernel_accepts() {
        let dir = fake_cgroup(
            "order",
            &[
                ("memory.limit_in_bytes", "1000"),
                ("memory.memsw.limit_in_bytes", "1000"),
            ],
        );
        // Growing: memsw first. The fake cannot refuse, so check the values.
        set_memory(&dir, &memory(r#"{"limit": 4000, "swap": 8000}"#)).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.limit_in_bytes"), "4000");
        assert_eq!(read("memory.memsw.limit_in_bytes"), "8000");
        // limit -1 with swap unset: swap unlimited too (memsw exists here).
        set_memory(&dir, &memory(r#"{"limit": -1}"#)).unwrap();
        assert_eq!(read("memory.memsw.limit_in_bytes"), "-1");
        assert!(set_memory(&dir, &memory(r#"{"swappiness": 101}"#)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn blkio_weight_uses_bfq_or_names_the_missing_file() {
        let b: LinuxBlockIo = serde_json::from_str(r#"{"weight": 300}"#).unwrap();
        let none = fake_cgroup("blk-none", &[]);
        let e = set_blkio(&none, &b).unwrap_err();
        assert!(matches!(e, CgroupError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("blkio.weight"), "{e}");
        let bfq = fake_cgroup("blk-bfq", &[("blkio.bfq.weight", "100")]);
        set_blkio(&bfq, &b).unwrap();
        assert_eq!(
            std::fs::read_to_string(bfq.join("blkio.bfq.weight")).unwrap(),
            "300"
        );
        std::fs::remove_dir_all(&none).unwrap();
        std::fs::remove_dir_all(&bfq).unwrap();
    }

    #[test]
    fn page_sizes_are_checked() {
        assert!(check_page_size("2MB").is_ok());
        assert!(check_page_size("1GB").is_ok());
        assert!(check_page_size("../x").is_err());
        assert!(check_page_size("2M").is_err());
    }
}
