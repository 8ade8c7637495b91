//! iproute2's `ip` and `tc`, run in the container's network namespace (the
//! calling thread's), and their JSON output (`ip -j`) read into typed
//! links, addresses and routes. Every failure names the command and carries
//! its stderr.

use super::super::VmError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where iproute2 is looked for: fixed system directories, never the
/// caller's PATH.
const DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

fn find(name: &str) -> Result<PathBuf, VmError> {
    DIRS.iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            VmError::Msg(format!(
                "iproute2's {name} is not installed (not found in {}): apt-get install iproute2",
                DIRS.join(", ")
            ))
        })
}

/// Runs `tool args` and returns its stdout; an error names the command.
/// Also `vessel compare`'s, for the network it gives each run.
pub fn run(tool: &str, args: &[&str]) -> Result<String, VmError> {
    let path = find(tool)?;
    let out = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .env_clear()
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            VmError::Msg(format!(
                "running {} {}: {e}",
                path.display(),
                args.join(" ")
            ))
        })?;
    if !out.status.success() {
        return Err(VmError::Msg(format!(
            "{tool} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| VmError::Msg(format!("{tool} {}: output is not UTF-8", args.join(" "))))
}

/// One IPv4 address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    pub local: Ipv4Addr,
    pub prefixlen: u8,
    pub broadcast: Option<Ipv4Addr>,
}

/// One link of `ip -j addr show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub loopback: bool,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub v4: Vec<Addr>,
    /// IPv6 addresses other than link-local ones (not carried into the guest).
    pub v6_global: Vec<String>,
}

#[derive(Deserialize)]
struct RawLink {
    ifname: String,
    #[serde(default)]
    link_type: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Deserialize)]
struct RawAddr {
    family: String,
    local: String,
    prefixlen: u8,
    #[serde(default)]
    broadcast: Option<String>,
    #[serde(default)]
    scope: String,
}

fn parse_err(what: &str, e: impl std::fmt::Display) -> VmError {
    VmError::Msg(format!("reading {what} of the network namespace: {e}"))
}

/// The links of `ip -j addr show`.
pub fn parse_links(json: &str) -> Result<Vec<Link>, VmError> {
    let raw: Vec<RawLink> =
        serde_json::from_str(json).map_err(|e| parse_err("`ip -j addr show`", e))?;
    let mut links = Vec::new();
    for l in raw {
        if !vessel_protocol::net::valid_ifname(&l.ifname) {
            return Err(parse_err("interfaces", format!("bad name {:?}", l.ifname)));
        }
        let loopback = l.link_type == "loopback";
        let mac = match (&l.address, loopback) {
            (Some(a), false) if l.link_type == "ether" => {
                Some(vessel_protocol::net::parse_mac(a).map_err(|e| parse_err(&l.ifname, e))?)
            }
            _ => None,
        };
        let mut v4 = Vec::new();
        let mut v6_global = Vec::new();
        for a in &l.addr_info {
            match a.family.as_str() {
                "inet" => v4.push(Addr {
                    local: a.local.parse().map_err(|e| parse_err(&l.ifname, e))?,
                    prefixlen: a.prefixlen.min(32),
                    broadcast: a.broadcast.as_deref().and_then(|b| b.parse().ok()),
                }),
                "inet6" if a.scope != "link" && a.scope != "host" => {
                    v6_global.push(format!("{}/{}", a.local, a.prefixlen))
                }
                _ => {}
            }
        }
        links.push(Link {
            name: l.ifname,
            loopback,
            mac,
            mtu: l.mtu,
            v4,
            v6_global,
        });
    }
    Ok(links)
}

/// One IPv4 route of the main table on the connected interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Added by the kernel for an address (comes back with it).
    pub kernel: bool,
    pub scope_link: bool,
    pub src: Option<Ipv4Addr>,
    pub metric: Option<u32>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    dev: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    prefsrc: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The unicast routes through `dev` in `ip -j -4 route show table main`.
pub fn parse_routes(json: &str, dev: &str) -> Result<Vec<Route>, VmError> {
    let raw: Vec<RawRoute> =
        serde_json::from_str(json).map_err(|e| parse_err("`ip -j route show`", e))?;
    let mut routes = Vec::new();
    for r in raw {
        if r.dev.as_deref() != Some(dev) || r.kind.as_deref().is_some_and(|k| k != "unicast") {
            continue;
        }
        let (dst, prefix) = match r.dst.as_str() {
            "default" => (Ipv4Addr::UNSPECIFIED, 0),
            d if d.contains('/') => {
                vessel_protocol::net::parse_cidr(d).map_err(|e| parse_err("routes", e))?
            }
            d => (d.parse().map_err(|e| parse_err("routes", e))?, 32),
        };
        let ip = |s: &Option<String>| -> Result<Option<Ipv4Addr>, VmError> {
            s.as_deref()
                .map(|g| g.parse().map_err(|e| parse_err("routes", e)))
                .transpose()
        };
        routes.push(Route {
            dst,
            prefix,
            gateway: ip(&r.gateway)?,
            kernel: r.protocol.as_deref() == Some("kernel"),
            scope_link: r.scope.as_deref() == Some("link"),
            src: ip(&r.prefsrc)?,
            metric: r.metric,
        });
    }
    Ok(routes)
}

/// `ip route add` arguments that put `r` back on `dev`.
pub fn route_add_args(r: &Route, dev: &str) -> Vec<String> {
    let mut a = vec![
        "route".to_string(),
        "add".into(),
        format!("{}/{}", r.dst, r.prefix),
    ];
    if let Some(g) = r.gateway {
        a.extend(["via".into(), g.to_string()]);
    }
    a.extend(["dev".into(), dev.to_string()]);
    if r.scope_link {
        a.extend(["scope".into(), "link".into()]);
    }
    if let Some(s) = r.src {
        a.extend(["src".into(), s.to_string()]);
    }
    if let Some(m) = r.metric {
        a.extend(["metric".into(), m.to_string()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRS: &str = r#"[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,"link_type":"loopback",
  "address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
 {"ifindex":2,"link_index":5,"ifname":"eth0","flags":["BROADCAST","UP"],"mtu":1450,"link_type":"ether",
  "address":"02:42:0a:c8:00:02","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[
   {"family":"inet","local":"10.200.0.2","prefixlen":24,"broadcast":"10.200.0.255","scope":"global","label":"eth0"},
   {"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global"},
   {"family":"inet6","local":"fe80::42:aff:fec8:2","prefixlen":64,"scope":"link"}]}]"#;

    #[test]
    fn links_with_their_addresses() {
        let links = parse_links(ADDRS).unwrap();
        assert_eq!(links.len(), 2);
        assert!(links[0].loopback && links[0].mac.is_none());
        let eth0 = &links[1];
        assert_eq!(
            (eth0.name.as_str(), eth0.mtu, eth0.mac),
            ("eth0", 1450, Some([2, 0x42, 10, 200, 0, 2]))
        );
        assert_eq!(
            eth0.v4,
            vec![Addr {
                local: Ipv4Addr::new(10, 200, 0, 2),
                prefixlen: 24,
                broadcast: Some(Ipv4Addr::new(10, 200, 0, 255)),
            }]
        );
        assert_eq!(eth0.v6_global, vec!["fd00::2/64"]);
        assert!(parse_links(r#"[{"ifname":"a/b","mtu":1}]"#).is_err());
        assert!(parse_links("not json").is_err());
    }

    #[test]
    fn routes_through_the_interface() {
        let json = r#"[
 {"dst":"default","gateway":"10.200.0.1","dev":"eth0","flags":[]},
 {"dst":"10.200.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.200.0.2","flags":[]},
 {"dst":"169.254.1.1","dev":"eth0","scope":"link","metric":5,"flags":[]},
 {"type":"blackhole","dst":"10.9.0.0/16","flags":[]},
 {"dst":"10.8.0.0/16","dev":"eth1","flags":[]}]"#;
        let r = parse_routes(json, "eth0").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].dst, r[0].prefix), (Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(r[0].gateway, Some(Ipv4Addr::new(10, 200, 0, 1)));
        assert!(r[1].kernel && r[1].scope_link && !r[0].kernel);
        assert_eq!((r[2].prefix, r[2].metric), (32, Some(5)));
        assert_eq!(
            route_add_args(&r[0], "eth0").join(" "),
            "route add 0.0.0.0/0 via 10.200.0.1 dev eth0"
        );
        assert_eq!(
            route_add_args(&r[2], "eth0").join(" "),
            "route add 169.254.1.1/32 dev eth0 scope link metric 5"
        );
    }
}
