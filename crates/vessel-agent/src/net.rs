//! The guest's network, before the workload starts: `lo` up, then the
//! interface the runtime took over from the container's network namespace
//! (`vessel_protocol::net`, at `/.vessel/net`): found by the MAC the VMM's
//! virtio-net device carries, renamed to the container's name, given its
//! MTU, IPv4 addresses (the first as the primary, the others as `NAME:N`
//! aliases) and routes, and brought up. Plain IPv4 ioctls (SIOCSIF*,
//! SIOCADDRT) on a datagram socket: no netlink code in the agent.
//!
//! /etc/resolv.conf and /etc/hosts come as the spec's bind mounts, which
//! virtio-fs shares live.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use vessel_protocol::net::{self as proto, GuestNet, GuestRoute};

/// How long the interface may take to appear once virtio_net is loaded.
const APPEAR_TIMEOUT: Duration = Duration::from_secs(5);

/// `struct ifreq`: the name, then a 24-byte union (sockaddr, flags, mtu,
/// new name).
type IfReq = [u8; 40];

fn ifreq(name: &str) -> IfReq {
    let mut r = [0u8; 40];
    let n = name.len().min(proto::MAX_IFNAME);
    r[..n].copy_from_slice(&name.as_bytes()[..n]);
    r
}

/// A `sockaddr_in` (16 bytes) for `addr`.
fn sockaddr_in(addr: Ipv4Addr) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    s[4..8].copy_from_slice(&addr.octets());
    s
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The kernel's `struct rtentry` (linux/route.h).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: [u8; 16],
    rt_gateway: [u8; 16],
    rt_genmask: [u8; 16],
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

struct Sock(OwnedFd);

impl Sock {
    fn new() -> Result<Sock, String> {
        // SAFETY: socket(2) with constant arguments; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor nothing else owns.
        Ok(Sock(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// An interface ioctl on `req`; `what` names it in the error.
    fn ioctl(&self, request: libc::c_ulong, req: &mut IfReq, what: &str) -> Result<(), String> {
        // SAFETY: every request used here reads or writes a struct ifreq,
        // which `req` is (40 bytes, the kernel's size on x86_64).
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request as _, req.as_mut_ptr()) } < 0 {
            return Err(format!("{what}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn up(&self, name: &str) -> Result<(), String> {
        let mut r = ifreq(name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut r, &format!("{name}: SIOCGIFFLAGS"))?;
        let flags = i16::from_ne_bytes([r[16], r[17]]) | libc::IFF_UP as i16;
        r[16..18].copy_from_slice(&flags.to_ne_bytes());
        self.ioctl(
            libc::SIOCSIFFLAGS,
            &mut r,
            &format!("{name}: SIOCSIFFLAGS up"),
        )
    }

    fn set_addr(&self, label: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), String> {
        let mut r = ifreq(label);
        r[16..32].copy_from_slice(&sockaddr_in(addr));
        self.ioctl(
            libc::SIOCSIFADDR,
            &mut r,
            &format!("{label}: SIOCSIFADDR {addr}"),
        )?;
        let mut r = ifreq(label);
        r[16..32].copy_from_slice(&sockaddr_in(netmask(prefix)));
        self.ioctl(
            libc::SIOCSIFNETMASK,
            &mut r,
            &format!("{label}: SIOCSIFNETMASK /{prefix}"),
        )
    }

    fn add_route(&self, dev: &str, r: &GuestRoute) -> Result<(), String> {
        let mut name = ifreq(dev);
        let mut flags = libc::RTF_UP;
        if r.gateway.is_some() {
            flags |= libc::RTF_GATEWAY;
        }
        if r.prefix == 32 {
            flags |= libc::RTF_HOST;
        }
        let mut rt = RtEntry {
            rt_pad1: 0,
            rt_dst: sockaddr_in(r.dst),
            rt_gateway: sockaddr_in(r.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            rt_genmask: sockaddr_in(netmask(r.prefix)),
            rt_flags: flags,
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: std::ptr::null_mut(),
            rt_metric: 0,
            rt_dev: name.as_mut_ptr().cast(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        // SAFETY: SIOCADDRT reads a struct rtentry, which `rt` is; rt_dev
        // points to a NUL-terminated name alive for the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), libc::SIOCADDRT as _, &mut rt) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("route {}/{}: SIOCADDRT: {e}", r.dst, r.prefix));
            }
        }
        Ok(())
    }
}

/// The name of the interface whose MAC is `mac`, waiting for it to appear.
fn find_by_mac(mac: &[u8; 6]) -> Result<String, String> {
    let want = proto::format_mac(mac);
    let start = Instant::now();
    loop {
        if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
            for entry in dir.flatten() {
                let addr =
                    std::fs::read_to_string(entry.path().join("address")).unwrap_or_default();
                if addr.trim().eq_ignore_ascii_case(&want) {
                    return entry
                        .file_name()
                        .into_string()
                        .map_err(|_| "interface name is not UTF-8".to_string());
                }
            }
        }
        if start.elapsed() > APPEAR_TIMEOUT {
            return Err(format!(
                "no interface with MAC {want} after {APPEAR_TIMEOUT:?} (is virtio_net loaded?)"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Applies `net` to the interface whose MAC is `device_mac` (see the
/// module comment).
fn configure(sock: &Sock, net: &GuestNet, device_mac: [u8; 6]) -> Result<(), String> {
    let found = find_by_mac(&device_mac)?;
    if device_mac != net.mac {
        // Still down: a MAC changes only then.
        let mut r = ifreq(&found);
        r[16..18].copy_from_slice(&libc::ARPHRD_ETHER.to_ne_bytes());
        r[18..24].copy_from_slice(&net.mac);
        sock.ioctl(
            libc::SIOCSIFHWADDR,
            &mut r,
            &format!("{found}: SIOCSIFHWADDR {}", proto::format_mac(&net.mac)),
        )?;
    }
    if found != net.name {
        let mut r = ifreq(&found);
        let n = net.name.len().min(proto::MAX_IFNAME);
        r[16..16 + n].copy_from_slice(&net.name.as_bytes()[..n]);
        sock.ioctl(
            libc::SIOCSIFNAME,
            &mut r,
            &format!("renaming {found} to {}", net.name),
        )?;
    }
    let name = net.name.as_str();
    let mut r = ifreq(name);
    r[16..20].copy_from_slice(&(net.mtu as libc::c_int).to_ne_bytes());
    sock.ioctl(
        libc::SIOCSIFMTU,
        &mut r,
        &format!("{name}: SIOCSIFMTU {}", net.mtu),
    )?;
    for (i, (addr, prefix)) in net.addrs.iter().enumerate() {
        let label = match i {
            0 => name.to_string(),
            n => format!("{name}:{n}"),
        };
        sock.set_addr(&label, *addr, *prefix)?;
    }
    sock.up(name)?;
    for r in &net.routes {
        sock.add_route(name, r)?;
    }
    Ok(())
}

/// The network settings the runtime put in the initramfs, if any: read
/// before the root moves to the shared rootfs, which hides the initramfs.
pub fn load() -> Result<Option<GuestNet>, String> {
    match File::open(proto::NET_CONFIG_PATH) {
        Ok(f) => {
            let text = std::io::read_to_string(f)
                .map_err(|e| format!("read {}: {e}", proto::NET_CONFIG_PATH))?;
            Ok(Some(GuestNet::parse(&text)?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("open {}: {e}", proto::NET_CONFIG_PATH)),
    }
}

/// `lo` up, and the container's interface when there is one, found by
/// the MAC the VMM gave it (`device_mac`). (/etc files such as resolv.conf
/// come as the spec's bind mounts, shared live.)
pub fn setup(net: Option<&GuestNet>, device_mac: [u8; 6]) -> Result<(), String> {
    let sock = Sock::new()?;
    sock.up("lo")?;
    if let Some(net) = net {
        configure(&sock, net, device_mac).map_err(|e| format!("network: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_addresses_in_kernel_layout() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        let s = sockaddr_in(Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!(s[..8], [2, 0, 0, 0, 10, 200, 0, 2]);
        let r = ifreq("eth0");
        assert_eq!(&r[..5], b"eth0\0");
        // rtentry is 120 bytes on x86_64, rt_dev at offset 80.
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
    }
}
