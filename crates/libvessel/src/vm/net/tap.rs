//! The tap the VMM's virtio-net device reads and writes: made by the
//! runtime in the container's network namespace (the calling thread's) and
//! handed to the VMM as an inherited fd. It is not persistent: it goes
//! away with the VMM's descriptor, and the tc filter on it with it.

use super::super::VmError;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// _IOW('T', 202, int)
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// _IOW('T', 208, unsigned int)
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// _IOW('T', 216, int)
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// The virtio 1.x net header (`virtio_net_hdr_v1`), as the guest's driver
/// writes and reads it.
pub const VNET_HDR_LEN: libc::c_int = 12;

/// `struct ifreq` with the name and the flags (the rest of its union is
/// unused here): IFNAMSIZ bytes, then a short, padded to 40 bytes.
fn ifreq(name: &str, flags: libc::c_short) -> [u8; 40] {
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req[16..18].copy_from_slice(&flags.to_ne_bytes());
    req
}

/// Creates the tap `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 12-byte
/// vnet header, no offloads), non-blocking and close-on-exec.
pub fn create(name: &str) -> Result<OwnedFd, VmError> {
    if !vessel_protocol::net::valid_ifname(name) {
        return Err(VmError::Msg(format!("tap name {name:?} is not valid")));
    }
    let err = |what: &str| {
        VmError::Msg(format!(
            "tap {name}: {what}: {}",
            std::io::Error::last_os_error()
        ))
    };
    let path = CString::new("/dev/net/tun").map_err(|_| err("path"))?;
    // SAFETY: a NUL-terminated path; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(err("opening /dev/net/tun (is the tun module loaded?)"));
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    let tap = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = ifreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    // SAFETY: TUNSETIFF reads and writes an ifreq; `req` is one, 40 bytes.
    if unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF, req.as_mut_ptr()) } < 0 {
        return Err(err("TUNSETIFF"));
    }
    let hdr: libc::c_int = VNET_HDR_LEN;
    // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer.
    if unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETVNETHDRSZ, &hdr) } < 0 {
        return Err(err("TUNSETVNETHDRSZ"));
    }
    // SAFETY: TUNSETOFFLOAD takes the offload bits as the argument itself.
    if unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETOFFLOAD, 0 as libc::c_ulong) } < 0 {
        return Err(err("TUNSETOFFLOAD"));
    }
    Ok(tap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_holds_name_then_flags() {
        let r = ifreq("tap0_vessel", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
        assert_eq!(&r[..11], b"tap0_vessel");
        assert_eq!(r[11..16], [0; 5]);
        assert_eq!(i16::from_ne_bytes([r[16], r[17]]), 0x5002);
        assert!(create("bad/name").is_err());
    }
}
