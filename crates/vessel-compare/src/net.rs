//! One run's network: a new network namespace (`ip netns add`, a file
//! under /run/netns) and a veth pair, the host end `vcmp<pid>` with the
//! first address of a private /30, the other end moved into the namespace
//! as `eth0` with the second, `lo` and `eth0` up and a default route via the
//! host end. Both modes get the same namespace: a container joins it, and
//! in VM mode vessel moves eth0's identity into the guest (tap + tc mirred,
//! see libvessel's `vm/net`), so the probe reaches the host end either way.
//!
//! Everything is removed when the `RunNet` is dropped (deleting the
//! namespace destroys its veth end and with it the host end; the host end
//! is deleted by name as well). `sweep_stale` removes what a compare that
//! was killed outright left behind.

use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where the /30s are carved from: private, and away from the ranges
/// Podman (10.88/16), Docker (172.17/16) and QEMU's user network (10.0.2/24)
/// use by default.
const BASE: Ipv4Addr = Ipv4Addr::new(10, 207, 0, 0);
/// /30s in BASE/16.
const SLOTS: u32 = 1 << 14;
pub const PREFIX: u8 = 30;
/// Names compare gives its namespaces and host-end links (pid follows).
const NETNS_PREFIX: &str = "vessel-compare-";
const LINK_PREFIX: &str = "vcmp";
const NETNS_DIR: &str = "/run/netns";

/// The network of one run; removed on drop.
#[derive(Debug)]
pub struct RunNet {
    pub netns: String,
    pub netns_path: PathBuf,
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    pub guest_addr: Ipv4Addr,
}

impl RunNet {
    /// Make the namespace `vessel-compare-<pid>-<tag>` and the veth pair.
    /// On any failure, what was made so far is removed again.
    pub fn setup(tag: &str) -> Result<RunNet, String> {
        let pid = std::process::id();
        let used = used_networks()?;
        let (host_addr, guest_addr) = choose_subnet(pid, &used).ok_or_else(|| {
            format!("no free /{PREFIX} left in {BASE}/16 on this host (all overlap its addresses or routes)")
        })?;
        let netns = format!("{NETNS_PREFIX}{pid}-{tag}");
        let net = RunNet {
            netns_path: Path::new(NETNS_DIR).join(&netns),
            netns,
            host_if: format!("{LINK_PREFIX}{pid}"),
            host_addr,
            guest_addr,
        };
        // From here on a failure drops `net`, which removes what exists.
        ip(&["netns", "add", &net.netns])?;
        ip(&[
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &net.netns,
        ])?;
        let host_cidr = format!("{host_addr}/{PREFIX}");
        let guest_cidr = format!("{guest_addr}/{PREFIX}");
        ip(&["addr", "add", &host_cidr, "dev", &net.host_if])?;
        ip(&["link", "set", &net.host_if, "up"])?;
        let n = net.netns.as_str();
        ip(&["-n", n, "addr", "add", &guest_cidr, "dev", "eth0"])?;
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", n, "link", "set", "eth0", "up"])?;
        let gw = host_addr.to_string();
        ip(&[
            "-n", n, "route", "add", "default", "via", &gw, "dev", "eth0",
        ])?;
        Ok(net)
    }
}

impl Drop for RunNet {
    fn drop(&mut self) {
        // The namespace first: its eth0 dies with it, and the host end with that.
        if self.netns_path.exists() {
            let _ = ip(&["netns", "del", &self.netns]);
        }
        if Path::new("/sys/class/net").join(&self.host_if).exists() {
            let _ = ip(&["link", "del", &self.host_if]);
        }
    }
}

/// Remove namespaces and host-end links that a compare no longer running
/// (killed before its guards ran) left behind. Best effort.
pub fn sweep_stale() {
    let dead = |pid: u32| !Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(dir) = std::fs::read_dir(NETNS_DIR) {
        for name in dir
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            if stale_pid(&name, NETNS_PREFIX, true).is_some_and(dead) {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for name in dir
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            if stale_pid(&name, LINK_PREFIX, false).is_some_and(dead) {
                let _ = ip(&["link", "del", &name]);
            }
        }
    }
}

/// The compare pid in one of compare's names: `<prefix><pid>-<tag>` for a
/// namespace (`tagged`), `<prefix><pid>` for a link; None for other names.
fn stale_pid(name: &str, prefix: &str, tagged: bool) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits = if tagged {
        rest.split_once('-')?.0
    } else {
        rest
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The IPv4 networks the host already uses: its addresses (with their
/// prefixes) and the destinations of its routes in every table.
fn used_networks() -> Result<Vec<(Ipv4Addr, u8)>, String> {
    let addrs = ip(&["-j", "-4", "addr", "show"])?;
    let routes = ip(&["-j", "-4", "route", "show", "table", "all"])?;
    parse_used(&addrs, &routes)
}

fn parse_used(addrs_json: &str, routes_json: &str) -> Result<Vec<(Ipv4Addr, u8)>, String> {
    let parse = |what: &str, text: &str| {
        serde_json::from_str::<Value>(text).map_err(|e| format!("parse `ip -j -4 {what}`: {e}"))
    };
    let mut used = Vec::new();
    let addrs = parse("addr show", addrs_json)?;
    for link in addrs.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let local = a["local"].as_str().and_then(|s| s.parse().ok());
            let len = a["prefixlen"].as_u64().and_then(|l| u8::try_from(l).ok());
            if let (Some(local), Some(len)) = (local, len) {
                used.push((local, len.min(32)));
            }
        }
    }
    let routes = parse("route show table all", routes_json)?;
    for r in routes.as_array().into_iter().flatten() {
        if let Some(net) = r["dst"].as_str().and_then(parse_cidr) {
            used.push(net);
        }
    }
    Ok(used)
}

/// "10.0.0.0/24" or "10.0.0.1" (a /32); None for "default" and IPv6.
fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (s, 32),
    };
    Some((addr.parse().ok()?, len))
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    if len == 0 {
        // A default route (0.0.0.0/0) is not a network on this host.
        return false;
    }
    let mask = u32::MAX << (32 - u32::from(len));
    (u32::from(a.0) & mask) == (u32::from(b.0) & mask)
}

/// The host and namespace addresses of the first /30 in BASE/16, starting
/// at the slot `pid` picks (so concurrent compares start apart), that
/// overlaps none of `used` (which holds, among the rest, the host ends of
/// other compares running now).
fn choose_subnet(pid: u32, used: &[(Ipv4Addr, u8)]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    (0..SLOTS).find_map(|i| {
        let slot = (pid.wrapping_add(i)) % SLOTS;
        let net = u32::from(BASE) + slot * 4;
        let candidate = (Ipv4Addr::from(net), PREFIX);
        if used.iter().any(|u| overlaps(*u, candidate)) {
            None
        } else {
            Some((Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2)))
        }
    })
}

/// Run `ip args` (libvessel's iproute2 runner: system directories only,
/// a clean environment); its stdout, or an error naming the command and
/// its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    libvessel::vm::net::iproute2("ip", args).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_and_overlap() {
        assert_eq!(parse_cidr("10.1.2.0/24"), Some((a("10.1.2.0"), 24)));
        assert_eq!(parse_cidr("10.1.2.3"), Some((a("10.1.2.3"), 32)));
        assert_eq!(parse_cidr("default"), None);
        assert_eq!(parse_cidr("fd00::/64"), None);
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert!(overlaps((a("10.207.0.0"), 16), (a("10.207.3.4"), 30)));
        assert!(overlaps((a("10.207.3.5"), 32), (a("10.207.3.4"), 30)));
        assert!(!overlaps((a("10.207.3.8"), 30), (a("10.207.3.4"), 30)));
        assert!(!overlaps((a("0.0.0.0"), 0), (a("10.207.3.4"), 30)));
    }

    #[test]
    fn subnet_follows_the_pid_and_skips_used_ones() {
        let (h, g) = choose_subnet(5, &[]).unwrap();
        assert_eq!((h, g), (a("10.207.0.21"), a("10.207.0.22")));
        // Wraps inside the /16.
        let (h, _) = choose_subnet(SLOTS + 1, &[]).unwrap();
        assert_eq!(h, a("10.207.0.5"));
        // Another compare's host end in slot 5, and a /31 route over slot 6.
        let used = [(a("10.207.0.21"), 30), (a("10.207.0.24"), 31)];
        let (h, g) = choose_subnet(5, &used).unwrap();
        assert_eq!((h, g), (a("10.207.0.29"), a("10.207.0.30")));
        // The whole /16 taken: none.
        assert_eq!(choose_subnet(5, &[(a("10.207.0.0"), 16)]), None);
    }

    #[test]
    fn used_networks_from_ip_json() {
        let addrs = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.207.0.6","prefixlen":24}]},
            {"ifindex":3,"ifname":"x","addr_info":[]}]"#;
        let routes = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},
            {"dst":"172.16.0.0/12","dev":"eth0"},{"type":"local","dst":"10.207.0.6","table":"local"}]"#;
        let used = parse_used(addrs, routes).unwrap();
        assert_eq!(
            used,
            vec![
                (a("127.0.0.1"), 8),
                (a("10.207.0.6"), 24),
                (a("172.16.0.0"), 12),
                (a("10.207.0.6"), 32)
            ]
        );
        // 10.207.0.0/24 is taken by eth0: the first free /30 is 10.207.1.0.
        let (h, _) = choose_subnet(0, &used).unwrap();
        assert_eq!(h, a("10.207.1.1"));
        assert!(parse_used("not json", "[]")
            .unwrap_err()
            .contains("addr show"));
    }

    #[test]
    fn stale_names() {
        assert_eq!(
            stale_pid("vessel-compare-412-container-0", NETNS_PREFIX, true),
            Some(412)
        );
        assert_eq!(stale_pid("vcmp412", LINK_PREFIX, false), Some(412));
        assert_eq!(stale_pid("vcmpx", LINK_PREFIX, false), None);
        assert_eq!(stale_pid("vessel-compare-", NETNS_PREFIX, true), None);
        assert_eq!(stale_pid("eth0", LINK_PREFIX, false), None);
    }
}
