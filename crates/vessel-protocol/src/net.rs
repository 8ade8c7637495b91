//! The guest's network settings, as the runtime writes them into the
//! initramfs (`/.vessel/net`) and the agent reads them: the interface the
//! guest takes over from the container's network namespace (found in the
//! guest by its MAC, which the VMM's virtio-net device carries), its IPv4
//! addresses and routes. One line per item, words split by spaces:
//!
//! ```text
//! link eth0 02:42:0a:c8:00:02 1500
//! addr 10.200.0.2/24
//! route 0.0.0.0/0 via 10.200.0.1
//! route 10.9.0.0/16
//! ```
//!
//! A route without `via` is on the link (scope link).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Where the agent finds the settings in the guest.
pub const NET_CONFIG_PATH: &str = "/.vessel/net";
/// The longest interface name Linux takes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// One interface of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// IPv4 address and prefix length, the first is the primary.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// In the order to add them: on-link routes before routes via a gateway.
    pub routes: Vec<GuestRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRoute {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// An interface name Linux accepts: 1 to 15 bytes, no '/', ':' or space,
/// not "." or "..".
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("MAC address {text:?}: expected 6 bytes"));
    }
    for (slot, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(format!(
                "MAC address {text:?}: expected two hex digits a byte"
            ));
        }
        *slot =
            u8::from_str_radix(part, 16).map_err(|_| format!("MAC address {text:?}: not hex"))?;
    }
    Ok(mac)
}

/// "A.B.C.D/P" with P in 0..=32.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected ADDRESS/PREFIX"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{text:?}: not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("{text:?}: prefix length not in 0..=32"))?;
    Ok((addr, prefix))
}

impl GuestNet {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "link {} {} {}",
            self.name,
            format_mac(&self.mac),
            self.mtu
        );
        for (a, p) in &self.addrs {
            let _ = writeln!(out, "addr {a}/{p}");
        }
        for r in &self.routes {
            let _ = write!(out, "route {}/{}", r.dst, r.prefix);
            if let Some(g) = r.gateway {
                let _ = write!(out, " via {g}");
            }
            out.push('\n');
        }
        out
    }

    /// Reads what `render` wrote; anything else is an error naming the line.
    pub fn parse(text: &str) -> Result<GuestNet, String> {
        let mut net: Option<GuestNet> = None;
        for (n, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("{NET_CONFIG_PATH} line {}: {why}", n + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            match (words.first().copied(), &mut net) {
                (None, _) => continue,
                (Some("link"), None) => {
                    let [_, name, mac, mtu] = words[..] else {
                        return Err(bad("expected: link NAME MAC MTU"));
                    };
                    if !valid_ifname(name) {
                        return Err(bad("not an interface name"));
                    }
                    net = Some(GuestNet {
                        name: name.to_string(),
                        mac: parse_mac(mac).map_err(|e| bad(&e))?,
                        mtu: mtu
                            .parse()
                            .ok()
                            .filter(|m| (68..=65535).contains(m))
                            .ok_or_else(|| bad("MTU not in 68..=65535"))?,
                        addrs: Vec::new(),
                        routes: Vec::new(),
                    });
                }
                (Some("addr"), Some(net)) if words.len() == 2 => {
                    net.addrs.push(parse_cidr(words[1]).map_err(|e| bad(&e))?)
                }
                (Some("route"), Some(net)) => {
                    let (cidr, gateway) = match words[..] {
                        [_, cidr] => (cidr, None),
                        [_, cidr, "via", gw] => (cidr, Some(gw)),
                        _ => return Err(bad("expected: route DST/PREFIX [via GATEWAY]")),
                    };
                    let (dst, prefix) = parse_cidr(cidr).map_err(|e| bad(&e))?;
                    let gateway = match gateway {
                        Some(g) => Some(
                            g.parse::<Ipv4Addr>()
                                .map_err(|_| bad("gateway: not an IPv4 address"))?,
                        ),
                        None => None,
                    };
                    net.routes.push(GuestRoute {
                        dst,
                        prefix,
                        gateway,
                    });
                }
                _ => return Err(bad("unexpected line")),
            }
        }
        net.ok_or_else(|| format!("{NET_CONFIG_PATH}: no link line"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GuestNet {
        GuestNet {
            name: "eth0".into(),
            mac: [0x02, 0x42, 0x0a, 0xc8, 0, 2],
            mtu: 1500,
            addrs: vec![(Ipv4Addr::new(10, 200, 0, 2), 24)],
            routes: vec![
                GuestRoute {
                    dst: Ipv4Addr::new(10, 9, 0, 0),
                    prefix: 16,
                    gateway: None,
                },
                GuestRoute {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway: Some(Ipv4Addr::new(10, 200, 0, 1)),
                },
            ],
        }
    }

    #[test]
    fn settings_survive_render_and_parse() {
        let text = sample().render();
        assert_eq!(
            text,
            "link eth0 02:42:0a:c8:00:02 1500\naddr 10.200.0.2/24\n\
             route 10.9.0.0/16\nroute 0.0.0.0/0 via 10.200.0.1\n"
        );
        assert_eq!(GuestNet::parse(&text).unwrap(), sample());
    }

    #[test]
    fn bad_lines_are_refused_by_number() {
        for (text, why) in [
            ("", "no link line"),
            ("addr 1.2.3.4/8\n", "line 1"),
            (
                "link eth0 02:42:0a:c8:00:02 1500\naddr 1.2.3.4/33\n",
                "line 2",
            ),
            ("link eth0 02:42:0a:c8:00:02 10\n", "MTU"),
            ("link a/b 02:42:0a:c8:00:02 1500\n", "interface name"),
            ("link eth0 02:42:0a:c8:00 1500\n", "6 bytes"),
            (
                "link eth0 02:42:0a:c8:00:02 1500\nroute 0.0.0.0/0 via x\n",
                "gateway",
            ),
            (
                "link eth0 02:42:0a:c8:00:02 1500\nlink eth1 02:42:0a:c8:00:03 1500\n",
                "line 2",
            ),
        ] {
            let err = GuestNet::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(valid_ifname("eth0") && valid_ifname("tap0_vessel"));
        for bad in ["", ".", "..", "a/b", "a:1", "a b", "sixteen-chars-xx"] {
            assert!(!valid_ifname(bad), "{bad}");
        }
    }
}
