//! The guest kernel's modules, which the initramfs carries to the agent.
//!
//! A kernel with virtio as modules (Debian's cloud kernel) comes with
//! `<kernel>.modules/` next to it, installed by `rootfs-tools/guest-kernel.sh`
//! from the same package: the `.ko` files, `load-order` (one file name a
//! line, dependencies first) and `stamp` (the package and the kernel's
//! banner). The initramfs holds the listed files and `load-order` under
//! [`GUEST_DIR`]; the agent loads them before anything else, then turns
//! module loading off. A kernel without that directory (virtio built in)
//! gets nothing.
//!
//! The guest path is under `/.vessel`, which the rootfs walk leaves out, so
//! a bundle's rootfs cannot add modules of its own there.

use super::VmError;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the modules go in the initramfs (no leading '/'); the agent reads
/// `/.vessel/modules/load-order`.
pub const GUEST_DIR: &str = ".vessel/modules";
/// The list of modules to load, dependencies first.
pub const LOAD_ORDER: &str = "load-order";
/// What guest-kernel.sh installed (package, kernel banner): not archived,
/// but part of the cache key.
pub const STAMP: &str = "stamp";

/// A kernel's modules directory, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestModules {
    pub dir: PathBuf,
    /// `load-order` as read: archived as is.
    pub load_order: Vec<u8>,
    /// The file names it lists, in order.
    pub files: Vec<String>,
    /// `stamp`'s bytes (empty when absent).
    pub stamp: Vec<u8>,
}

impl GuestModules {
    /// The path of a listed file.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// `<kernel>.modules`, beside the kernel.
pub fn dir_of(kernel: &Path) -> PathBuf {
    let mut s = kernel.as_os_str().to_owned();
    s.push(".modules");
    PathBuf::from(s)
}

/// A plain `.ko` file name: no path, nothing hidden.
fn valid_name(name: &str) -> bool {
    name.len() > 3
        && name.len() <= 255
        && name.ends_with(".ko")
        && !name.starts_with('.')
        && !name.contains(['/', '\0'])
        && !name.chars().any(char::is_whitespace)
}

/// The file names `load-order` lists (blank lines skipped).
pub fn parse_load_order(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !valid_name(line) {
            return Err(format!("{line:?} is not a plain .ko file name"));
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

/// The modules beside `kernel`, or None when it has no modules directory.
/// A directory without `load-order`, a bad entry in it or a listed file
/// that is missing is an error naming the remedy.
pub fn find(kernel: &Path) -> Result<Option<GuestModules>, VmError> {
    let dir = dir_of(kernel);
    let err = |what: String| {
        VmError::Msg(format!(
            "guest kernel modules {}: {what} (run rootfs-tools/guest-kernel.sh to reinstall \
             the kernel with its modules, or remove the directory for a kernel with virtio \
             built in)",
            dir.display()
        ))
    };
    match fs::metadata(&dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Err(err("not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    }
    let load_order =
        fs::read(dir.join(LOAD_ORDER)).map_err(|e| err(format!("read {LOAD_ORDER}: {e}")))?;
    let text = String::from_utf8(load_order.clone())
        .map_err(|_| err(format!("{LOAD_ORDER} is not UTF-8")))?;
    let files = parse_load_order(&text).map_err(|e| err(format!("{LOAD_ORDER}: {e}")))?;
    for f in &files {
        match fs::metadata(dir.join(f)) {
            Ok(md) if md.is_file() => {}
            Ok(_) => return Err(err(format!("{f} is not a regular file"))),
            Err(e) => return Err(err(format!("{f}: {e}"))),
        }
    }
    let stamp = match fs::read(dir.join(STAMP)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(format!("read {STAMP}: {e}"))),
    };
    Ok(Some(GuestModules {
        dir,
        load_order,
        files,
        stamp,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_names_are_plain_ko_files() {
        assert_eq!(
            parse_load_order("virtio_ring.ko\n\n virtio.ko \n").unwrap(),
            vec!["virtio_ring.ko", "virtio.ko"]
        );
        for bad in ["../x.ko", "a/b.ko", ".ko", ".hidden.ko", "x.o", "a b.ko"] {
            assert!(parse_load_order(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn find_reads_the_directory_beside_the_kernel() {
        let d = std::env::temp_dir().join(format!("vessel-modules-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let kernel = d.join("vmlinux");
        assert_eq!(dir_of(&kernel), d.join("vmlinux.modules"));
        assert_eq!(find(&kernel).unwrap(), None);

        let m = dir_of(&kernel);
        fs::create_dir(&m).unwrap();
        let e = find(&kernel).unwrap_err().to_string();
        assert!(
            e.contains("load-order") && e.contains("guest-kernel.sh"),
            "{e}"
        );
        fs::write(m.join(LOAD_ORDER), "a.ko\nb.ko\n").unwrap();
        fs::write(m.join("a.ko"), b"a").unwrap();
        let e = find(&kernel).unwrap_err().to_string();
        assert!(e.contains("b.ko"), "{e}");
        fs::write(m.join("b.ko"), b"b").unwrap();
        let found = find(&kernel).unwrap().unwrap();
        assert_eq!(found.files, vec!["a.ko", "b.ko"]);
        assert!(found.stamp.is_empty());
        fs::write(m.join(STAMP), b"package=x\n").unwrap();
        assert_eq!(find(&kernel).unwrap().unwrap().stamp, b"package=x\n");
        fs::remove_dir_all(&d).unwrap();
    }
}
