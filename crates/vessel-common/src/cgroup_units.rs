//! runc's conversions from cgroup v1 units (what the OCI spec speaks) to
//! cgroup v2 files: the runtime writes them on the host, the guest agent
//! inside a VM, and both must give one spec the same values.

/// runc's cgroup v1 shares to v2 weight mapping: [2, 262144] onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// runc's blkio weight [10, 1000] to io.weight [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = weight.clamp(10, 1000);
    1 + ((weight - 10) * 9999) / 990
}

/// A v2 memory file's value for an OCI byte limit: -1 is "max".
pub fn v2_limit(bytes: i64) -> String {
    if bytes < 0 {
        "max".to_string()
    } else {
        bytes.to_string()
    }
}

/// cpu.max for an OCI quota and period, as runc writes it: a positive
/// quota is itself, -1 "max"; 0 (not given) keeps `current_quota` (the
/// first field of the cpu.max read back, "max" if unknown), so a period
/// alone changes only the period. `None` when neither is given.
pub fn cpu_max(quota: i64, period: u64, current_quota: Option<&str>) -> Option<String> {
    if quota == 0 && period == 0 {
        return None;
    }
    let mut max = match quota {
        q if q > 0 => q.to_string(),
        0 => current_quota.unwrap_or("max").to_string(),
        _ => "max".to_string(),
    };
    if period != 0 {
        max.push_str(&format!(" {period}"));
    }
    Some(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 1 + (1022 * 9999) / 262_142);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + (490 * 9999) / 990);
    }

    #[test]
    fn cpu_max_follows_runc() {
        assert_eq!(cpu_max(0, 0, None), None);
        assert_eq!(
            cpu_max(50_000, 100_000, None).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(-1, 0, None).as_deref(), Some("max"));
        assert_eq!(
            cpu_max(0, 20_000, Some("10000")).as_deref(),
            Some("10000 20000")
        );
        assert_eq!(cpu_max(0, 20_000, None).as_deref(), Some("max 20000"));
        assert_eq!(v2_limit(-1), "max");
        assert_eq!(v2_limit(4096), "4096");
    }
}
