//! The small archive appended to the guest's initramfs for one container:
//! its network settings (`/.vessel/net`). Apart from the cached initramfs
//! because it differs per container. (The bundle's /etc/resolv.conf and
//! /etc/hosts binds reach the guest over virtio-fs like any bind.)

use super::super::cpio::CpioWriter;
use super::super::VmError;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vessel_protocol::net::{GuestNet, NET_CONFIG_PATH};

/// Writes `<state_dir>/guest.cpio` with what this container's guest needs
/// beyond the cached initramfs; None when it needs nothing.
pub fn guest_archive(
    state_dir: &Path,
    guest: Option<&GuestNet>,
) -> Result<Option<PathBuf>, VmError> {
    let mut entries: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(g) = guest {
        entries.push((NET_CONFIG_PATH, g.render().into_bytes()));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    let path = state_dir.join("guest.cpio");
    let err = |e: std::io::Error| VmError::Msg(format!("write {}: {e}", path.display()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    let mut w = CpioWriter::new(BufWriter::new(file));
    for (name, bytes) in &entries {
        let name = name.trim_start_matches('/').as_bytes();
        w.file(
            name,
            0o644,
            0,
            0,
            0,
            bytes.len() as u64,
            &mut bytes.as_slice(),
        )
        .map_err(err)?;
    }
    w.finish().map_err(err)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_holds_the_settings_or_nothing() {
        let dir = std::env::temp_dir().join(format!("vessel-guest-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(guest_archive(&dir, None).unwrap(), None);
        let net = GuestNet {
            name: "eth0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            addrs: vec![("10.0.0.2".parse().unwrap(), 24)],
            routes: vec![],
        };
        let path = guest_archive(&dir, Some(&net)).unwrap().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let name = NET_CONFIG_PATH.trim_start_matches('/').as_bytes();
        assert!(bytes.windows(name.len()).any(|w| w == name));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
