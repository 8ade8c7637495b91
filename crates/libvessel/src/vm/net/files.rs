//! The small archive appended to the guest's initramfs for one container:
//! its network settings (`/.vessel/net`) and the content of the
//! `/etc/resolv.conf` and `/etc/hosts` the bundle bind-mounts (Podman's),
//! which the agent writes into the guest's /etc (host binds cannot reach a
//! guest). Apart from the cached initramfs because it differs per container.

use super::super::cpio::CpioWriter;
use super::super::VmError;
use oci_spec::runtime::Spec;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vessel_protocol::net::{GuestNet, HOSTS_PATH, NET_CONFIG_PATH, RESOLV_CONF_PATH};

/// Larger files are not copied (a resolv.conf or hosts is a few lines).
const MAX_COPY: u64 = 64 * 1024;

/// The guest files copied from bind mounts: (destination, path in the archive).
const COPIED: [(&str, &str); 2] = [
    ("/etc/resolv.conf", RESOLV_CONF_PATH),
    ("/etc/hosts", HOSTS_PATH),
];

/// The bind mount source for `dest`, if the spec binds one whose file name
/// is the destination's (Podman's `.../userdata/resolv.conf`): only such
/// a file is read, so a tenant's config cannot copy an arbitrary host file
/// (say /etc/shadow) into its guest under these names.
fn bind_source<'a>(spec: &'a Spec, dest: &str) -> Option<&'a Path> {
    spec.mounts().iter().flatten().find_map(|m| {
        let is_bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        let source = m.source().as_deref()?;
        let same_name = source.file_name() == Path::new(dest).file_name();
        (is_bind && m.destination() == Path::new(dest) && same_name).then_some(source)
    })
}

/// A bind source's content: a regular file, no symlink at its end, small.
fn read_source(source: &Path) -> Result<Vec<u8>, String> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(source)
        .map_err(|e| e.to_string())?;
    crate::untrusted_file::read_regular(f, MAX_COPY)
}

/// Writes `<state_dir>/guest.cpio` with what this container's guest needs
/// beyond the cached initramfs; None when it needs nothing.
pub fn guest_archive(
    state_dir: &Path,
    guest: Option<&GuestNet>,
    spec: &Spec,
) -> Result<Option<PathBuf>, VmError> {
    let mut entries: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(g) = guest {
        entries.push((NET_CONFIG_PATH, g.render().into_bytes()));
    }
    for (dest, name) in COPIED {
        let Some(source) = bind_source(spec, dest) else {
            continue;
        };
        match read_source(source) {
            Ok(bytes) => entries.push((name, bytes)),
            Err(e) => crate::logging::warn(&format!(
                "VM mode: {dest} not copied into the guest from {}: {e}",
                source.display()
            )),
        }
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
    use serde_json::json;

    fn spec(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(
            json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts}),
        )
        .unwrap()
    }

    #[test]
    fn only_a_bind_of_a_file_with_the_same_name_is_copied() {
        let s = spec(json!([
            {"destination": "/etc/resolv.conf", "type": "bind", "source": "/run/x/userdata/resolv.conf"},
            {"destination": "/etc/hosts", "type": "bind", "source": "/etc/shadow", "options": ["rbind"]}
        ]));
        assert_eq!(
            bind_source(&s, "/etc/resolv.conf"),
            Some(Path::new("/run/x/userdata/resolv.conf"))
        );
        assert_eq!(bind_source(&s, "/etc/hosts"), None);
        let s = spec(
            json!([{"destination": "/etc/hosts", "type": "none", "source": "/h/hosts", "options": ["rbind", "ro"]}]),
        );
        assert_eq!(bind_source(&s, "/etc/hosts"), Some(Path::new("/h/hosts")));
    }

    #[test]
    fn archive_holds_settings_and_copied_files() {
        let dir = std::env::temp_dir().join(format!("vessel-guest-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, "10.200.0.2 web\n").unwrap();
        let s = spec(json!([{"destination": "/etc/hosts", "type": "bind", "source": hosts}]));
        let net =
            GuestNet::parse("link eth0 02:00:00:00:00:01 1500\naddr 10.200.0.2/24\n").unwrap();
        let path = guest_archive(&dir, Some(&net), &s).unwrap().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(".vessel/net") && text.contains("addr 10.200.0.2/24"));
        assert!(text.contains(".vessel/hosts") && text.contains("10.200.0.2 web"));
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(guest_archive(&dir, None, &spec(json!([]))).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
