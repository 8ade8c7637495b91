//! Device nodes in the container's /dev: the default set every OCI runtime
//! provides, plus linux.devices.

use crate::isolation::mounts::cstring;
use crate::Result;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::ffi::CString;

#[derive(Debug, Clone)]
pub struct DeviceOp {
    /// Path relative to the rootfs.
    pub dest: CString,
    /// The host node, bind-mounted when mknod is not allowed (user namespace).
    pub host: CString,
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: libc::mode_t,
    pub uid: u32,
    pub gid: u32,
}

/// /dev/null, zero, full, random, urandom, tty (runtime-spec "Default Devices").
use vessel_common::devices::DEFAULT_DEVICES as DEFAULTS;

pub fn plan(spec_devices: &[LinuxDevice]) -> Result<Vec<DeviceOp>> {
    let mut ops = Vec::new();
    for (name, major, minor) in DEFAULTS {
        if spec_devices
            .iter()
            .any(|d| d.path().to_string_lossy() == format!("/dev/{name}"))
        {
            continue;
        }
        ops.push(DeviceOp {
            dest: cstring("device", format!("dev/{name}"))?,
            host: cstring("device", format!("/dev/{name}"))?,
            kind: libc::S_IFCHR,
            major: major.into(),
            minor: minor.into(),
            mode: 0o666,
            uid: 0,
            gid: 0,
        });
    }
    for d in spec_devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(crate::Error::invalid(format!(
                    "device {}: type \"a\" is only valid in cgroup rules",
                    d.path().display()
                )))
            }
        };
        let p = d.path().to_string_lossy();
        ops.push(DeviceOp {
            dest: cstring("device path", p.trim_start_matches('/'))?,
            host: cstring("device path", p.as_bytes())?,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(ops)
}
