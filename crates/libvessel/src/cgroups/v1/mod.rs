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
    // The period and runtime depend on each other: a period the current
    // runtime does not fit is refused (EINVAL), so when both are set, retry
    // the period after the runtime (runc's order).
    let rt_runtime = c.realtime_runtime().filter(|r| *r != 0);
    let mut rt_period_pending = None;
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        match write(dir, "cpu.rt_period_us", &p.to_string()) {
            Err(CgroupError::Io { source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && rt_runtime.is_some() =>
            {
                rt_period_pending = Some(p)
            }
            r => r?,
        }
    }
    if let Some(r) = rt_runtime {
        write(dir, "cpu.rt_runtime_us", &r.to_string())?;
        if let Some(p) = rt_period_pending {
            write(dir, "cpu.rt_period_us", &p.to_string())?;
        }
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
/// Two deliberate differences from runc 1.1: no /dev/net/tun (10:200),
/// which runc 1.2 dropped too (a tenant gets it only through
/// resources.devices), and no host console (5:1): a terminal's
/// /dev/console is a pty (136:*).
pub(crate) const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",   // /dev/null
    "c 1:8 rwm",   // /dev/random
    "c 1:7 rwm",   // /dev/full
    "c 5:0 rwm",   // /dev/tty
    "c 1:5 rwm",   // /dev/zero
    "c 1:9 rwm",   // /dev/urandom
    "c 136:* rwm", // /dev/pts/*
    "c 5:2 rwm",   // /dev/ptmx
];

/// "type major:minor access" as devices.allow/deny take it (access
/// normalised by `devices_bpf::access_letters`).
pub fn device_rule(d: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let typ = d.typ().unwrap_or(LinuxDeviceType::A).as_str().to_string();
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = super::devices_bpf::access_letters(d)?;
    Ok(format!(
        "{typ} {}:{} {access}",
        num(d.major()),
        num(d.minor())
    ))
}

/// v1 enforces device access here: the target is deny-all, the spec's
/// rules in order, then runc's defaults. `linux.devices` entries add no
/// rule (runc's specconv adds none either).
///
/// The change is the smallest the kernel allows, as runc's devices
/// emulator does: from an allowlist to an allowlist (every `update` of a
/// running container, and a fresh cgroup under an allowlist parent) only
/// the entries that differ are added or removed, so a running workload
/// never sees a moment of deny-all (its /dev/null writes would fail).
/// Only a switch between allow-all and allowlist needs the reset ("a").
pub fn set_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let mut target = DevState::deny_all();
    for r in rules {
        target.apply(r.allow(), &device_rule(r)?);
    }
    for r in DEFAULT_DEVICE_RULES {
        target.apply(true, r);
    }
    let current = fsio::read(&dir.join("devices.list"))?;
    for (file, rule) in transition(&DevState::from_list(&current), &target) {
        write(dir, file, &rule)?;
    }
    Ok(())
}

/// (type, major, minor) of a device rule, e.g. ('c', "1", "*").
type DevKey = (char, String, String);

/// What a v1 devices cgroup holds: allow-all or deny-all, plus exceptions
/// (allowed devices in deny-all mode, denied ones in allow-all mode), each
/// with its access letters. The kernel merges access per exact key and
/// removes only exact keys, which is what `apply` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevState {
    pub default_allow: bool,
    pub exceptions: std::collections::BTreeMap<DevKey, std::collections::BTreeSet<char>>,
}

impl DevState {
    pub fn deny_all() -> DevState {
        DevState {
            default_allow: false,
            exceptions: Default::default(),
        }
    }

    /// "t maj:min acc" into its key and access letters.
    fn parse(rule: &str) -> Option<(DevKey, std::collections::BTreeSet<char>)> {
        let mut it = rule.split_whitespace();
        let typ = it.next()?.chars().next()?;
        let (maj, min) = it.next().unwrap_or("*:*").split_once(':')?;
        let acc = it.next().unwrap_or("rwm").chars().collect();
        Some(((typ, maj.to_string(), min.to_string()), acc))
    }

    /// One write to devices.allow (`allow`) or devices.deny, as the kernel
    /// applies it.
    pub fn apply(&mut self, allow: bool, rule: &str) {
        let Some((key, acc)) = Self::parse(rule) else {
            return;
        };
        if key.0 == 'a' {
            self.default_allow = allow;
            self.exceptions.clear();
            return;
        }
        // An allow in deny-all mode (a deny in allow-all mode) adds an
        // exception; the opposite removes access from the exact key.
        if allow != self.default_allow {
            self.exceptions.entry(key).or_default().extend(acc);
        } else if let Some(have) = self.exceptions.get_mut(&key) {
            have.retain(|c| !acc.contains(c));
            if have.is_empty() {
                self.exceptions.remove(&key);
            }
        }
    }

    /// devices.list: "a *:* rwm" alone for allow-all (whose deny
    /// exceptions the kernel does not show), else the allowed entries.
    pub fn from_list(text: &str) -> DevState {
        let mut st = DevState::deny_all();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            if l.starts_with('a') {
                return DevState {
                    default_allow: true,
                    exceptions: Default::default(),
                };
            }
            st.apply(true, l);
        }
        st
    }
}

fn fmt_rule(key: &DevKey, acc: &std::collections::BTreeSet<char>) -> String {
    // The kernel's own order of access letters.
    let acc: String = "rwm".chars().filter(|c| acc.contains(c)).collect();
    format!("{} {}:{} {acc}", key.0, key.1, key.2)
}

/// The writes that turn `cur` into `want`: (file, rule) pairs.
pub fn transition(cur: &DevState, want: &DevState) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if cur.default_allow || want.default_allow {
        // A mode switch, or allow-all whose hidden exceptions are unknown:
        // reset, then the exceptions.
        let (reset, exc) = if want.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        out.push((reset, "a".to_string()));
        for (k, acc) in &want.exceptions {
            out.push((exc, fmt_rule(k, acc)));
        }
        return out;
    }
    for (k, acc) in &want.exceptions {
        let have = cur.exceptions.get(k);
        let missing: std::collections::BTreeSet<char> = acc
            .iter()
            .filter(|c| !have.is_some_and(|h| h.contains(c)))
            .copied()
            .collect();
        if !missing.is_empty() {
            out.push(("devices.allow", fmt_rule(k, &missing)));
        }
    }
    for (k, acc) in &cur.exceptions {
        let want_acc = want.exceptions.get(k);
        let extra: std::collections::BTreeSet<char> = acc
            .iter()
            .filter(|c| !want_acc.is_some_and(|w| w.contains(c)))
            .copied()
            .collect();
        if !extra.is_empty() {
            out.push(("devices.deny", fmt_rule(k, &extra)));
        }
    }
    out
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
mod tests;
