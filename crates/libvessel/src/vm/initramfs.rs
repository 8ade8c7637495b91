//! The guest's initramfs: a newc cpio archive of `/init` (vessel-agent),
//! `/.vessel/config.json`, the guest kernel's modules in `/.vessel/modules/`
//! (see `vm::modules`) and the agent's mount points, kept in a
//! content-addressed cache. The bundle's rootfs is not in it: the guest
//! mounts it over virtio-fs (`vm::virtiofs`), so guest RAM does not grow
//! with the rootfs and the cache holds no rootfs per config.
//!
//! The cache key hashes the agent's and each module's metadata, the config
//! bytes and the modules' `load-order` and `stamp`, like `make` trusts
//! timestamps: a file rewritten in place with the same size and forged
//! times would be missed.

use super::cpio::CpioWriter;
#[cfg(test)]
use super::cpio::{S_IFDIR, S_IFREG};
use super::modules::{self, GuestModules};
use super::VmError;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DEFAULT_CACHE_DIR: &str = "/var/cache/vessel/initramfs";
/// Older cache entries beyond this many are removed after a new one is built.
pub const CACHE_KEEP: usize = 16;
/// Bump when the archive layout changes so old entries are not reused.
const FORMAT_VERSION: &[u8] = b"vessel-initramfs-3";

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> VmError {
    let (what, path) = (what.to_owned(), path.to_path_buf());
    move |e| VmError::Msg(format!("initramfs: {what} {}: {e}", path.display()))
}

/// What goes into one initramfs.
pub struct Inputs<'a> {
    /// The static vessel-agent binary, installed as /init.
    pub agent: &'a Path,
    /// The bundle's config.json bytes, installed as /.vessel/config.json.
    pub config: &'a [u8],
    /// The guest kernel: its `<kernel>.modules/`, when there is one, goes in
    /// as /.vessel/modules/.
    pub kernel: &'a Path,
}

/// FNV-1a, 128 bits: stable across Rust versions and builds (the cache
/// outlives them), no extra crate.
struct Fnv128(u128);

impl Fnv128 {
    fn new() -> Fnv128 {
        Fnv128(0x6c62272e07bb014262b821756295c58d)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u128;
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }
    /// A length-prefixed field, so ("ab","c") and ("a","bc") differ.
    fn field(&mut self, bytes: &[u8]) {
        self.write_u64(bytes.len() as u64);
        self.write(bytes);
    }
}

fn hash_meta(h: &mut Fnv128, rel: &[u8], md: &fs::Metadata) {
    h.field(rel);
    for v in [
        md.mode() as u64,
        md.uid() as u64,
        md.gid() as u64,
        md.size(),
        md.mtime() as u64,
        md.mtime_nsec() as u64,
        md.ctime() as u64,
        md.ctime_nsec() as u64,
        md.ino(),
        md.dev(),
    ] {
        h.write_u64(v);
    }
}

/// The cache key of an initramfs (hex).
fn cache_key(agent: &Path, config: &[u8], mods: Option<&GuestModules>) -> Result<String, VmError> {
    let mut h = Fnv128::new();
    h.field(FORMAT_VERSION);
    let amd = fs::metadata(agent).map_err(io_err("stat agent", agent))?;
    hash_meta(&mut h, agent.as_os_str().as_encoded_bytes(), &amd);
    h.field(config);
    if let Some(m) = mods {
        h.field(m.dir.as_os_str().as_encoded_bytes());
        h.field(&m.load_order);
        h.field(&m.stamp);
        for f in &m.files {
            let p = m.path(f);
            let md = fs::metadata(&p).map_err(io_err("stat module", &p))?;
            hash_meta(&mut h, f.as_bytes(), &md);
        }
    }
    Ok(format!("{:032x}", h.0))
}

fn mtime32(md: &fs::Metadata) -> u32 {
    md.mtime().clamp(0, u32::MAX as i64) as u32
}

/// The kernel's modules and their `load-order` under /.vessel/modules/
/// (the caller has written /.vessel).
fn write_modules<W: Write>(w: &mut CpioWriter<W>, mods: &GuestModules) -> Result<(), VmError> {
    let arch = Path::new("<initramfs>");
    let name = |f: &str| format!("{}/{f}", modules::GUEST_DIR).into_bytes();
    w.dir(modules::GUEST_DIR.as_bytes(), 0o700, 0, 0, 0)
        .map_err(io_err("archive", arch))?;
    let mut order = &mods.load_order[..];
    let size = order.len() as u64;
    w.file(&name(modules::LOAD_ORDER), 0o600, 0, 0, 0, size, &mut order)
        .map_err(io_err("archive", arch))?;
    for f in &mods.files {
        let p = mods.path(f);
        let mut file = File::open(&p).map_err(io_err("open module", &p))?;
        let md = file.metadata().map_err(io_err("stat module", &p))?;
        w.file(&name(f), 0o600, 0, 0, mtime32(&md), md.size(), &mut file)
            .map_err(io_err("archive module", &p))?;
    }
    Ok(())
}

/// Write the whole archive for `inputs` (with the kernel's modules `mods`)
/// to `out`.
fn write_archive<W: Write>(
    out: W,
    inputs: &Inputs,
    mods: Option<&GuestModules>,
) -> Result<W, VmError> {
    let mut w = CpioWriter::new(out);
    let wrap = |what: &str, p: &Path| io_err(what, p);
    let arch = Path::new("<initramfs>");
    // Mount points of the agent: the kernel filesystems, the share on
    // /.vessel/share and the guest's root on /.vessel/root until it is /.
    for (dir, perm) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
    ] {
        w.dir(dir.as_bytes(), perm, 0, 0, 0)
            .map_err(wrap("archive", arch))?;
    }
    // The kernel opens /dev/console for init's stdio before devtmpfs exists.
    w.char_dev(b"dev/console", 0o600, 5, 1)
        .map_err(wrap("archive", arch))?;
    for dir in [&b".vessel"[..], b".vessel/share", b".vessel/root"] {
        w.dir(dir, 0o700, 0, 0, 0).map_err(wrap("archive", arch))?;
    }
    let mut cfg = inputs.config;
    w.file(
        b".vessel/config.json",
        0o600,
        0,
        0,
        0,
        cfg.len() as u64,
        &mut cfg,
    )
    .map_err(wrap("archive", arch))?;
    if let Some(m) = mods {
        write_modules(&mut w, m)?;
    }
    let mut agent = File::open(inputs.agent).map_err(wrap("open agent", inputs.agent))?;
    let amd = agent.metadata().map_err(wrap("stat agent", inputs.agent))?;
    w.file(b"init", 0o755, 0, 0, mtime32(&amd), amd.size(), &mut agent)
        .map_err(wrap("archive agent", inputs.agent))?;
    w.finish().map_err(wrap("finish", arch))
}

/// Build (or reuse) the initramfs for `inputs` in `cache_dir`; returns its path.
pub fn build_cached(inputs: &Inputs, cache_dir: &Path) -> Result<PathBuf, VmError> {
    let mods = modules::find(inputs.kernel)?;
    let key = cache_key(inputs.agent, inputs.config, mods.as_ref())?;
    let path = cache_dir.join(format!("{key}.cpio"));
    if path.is_file() {
        // Mark it recently used so pruning keeps it.
        if let Ok(f) = File::options().append(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        return Ok(path);
    }
    // config.json may carry secrets in process.env: the cache is root's only.
    fs::create_dir_all(cache_dir).map_err(io_err("create cache directory", cache_dir))?;
    let _ = fs::set_permissions(cache_dir, fs::Permissions::from_mode(0o700));
    let tmp = cache_dir.join(format!(".{key}.{}.tmp", std::process::id()));
    let result = (|| {
        let f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let out = BufWriter::with_capacity(1 << 20, f);
        let w = write_archive(out, inputs, mods.as_ref())?;
        let f = w.into_inner().map_err(|e| {
            VmError::Msg(format!("initramfs: write {}: {}", tmp.display(), e.error()))
        })?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename into", &path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    prune(cache_dir, CACHE_KEEP);
    Ok(path)
}

/// Remove all but the `keep` most recently used entries (best effort).
fn prune(cache_dir: &Path, keep: usize) {
    let Ok(rd) = fs::read_dir(cache_dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cpio"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() <= keep {
        return;
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, p) in entries.into_iter().skip(keep) {
        let _ = fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal newc reader: (name, mode, rdev major, data).
    fn read_cpio(bytes: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap();
        loop {
            assert_eq!(&bytes[pos..pos + 6], b"070701", "magic at {pos}");
            let f = |i: usize| hex(&bytes[pos + 6 + i * 8..pos + 14 + i * 8]);
            let (mode, size, rmaj, namesize) = (f(1), f(6) as usize, f(9), f(11) as usize);
            let name_start = pos + 110;
            let name =
                String::from_utf8(bytes[name_start..name_start + namesize - 1].to_vec()).unwrap();
            let data_start = (name_start + namesize).div_ceil(4) * 4;
            let data = bytes[data_start..data_start + size].to_vec();
            pos = (data_start + size).div_ceil(4) * 4;
            if name == "TRAILER!!!" {
                assert_eq!(pos, bytes.len());
                return out;
            }
            out.push((name, mode, rmaj, data));
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("vessel-initramfs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn archive_holds_the_agent_and_config_but_no_rootfs() {
        let d = scratch("archive");
        let agent = d.join("agent");
        fs::write(&agent, b"\x7fELF agent").unwrap();
        let cache = d.join("cache");
        let kernel = d.join("vmlinux");
        let inputs = Inputs {
            agent: &agent,
            config: b"{\"ociVersion\":\"1.0.2\"}",
            kernel: &kernel,
        };

        let path = build_cached(&inputs, &cache).unwrap();
        let entries = read_cpio(&fs::read(&path).unwrap());
        let find = |n: &str| {
            entries
                .iter()
                .find(|e| e.0 == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert_eq!(find("init").3, b"\x7fELF agent");
        assert_eq!(find("init").1, S_IFREG | 0o755);
        assert_eq!(find(".vessel/config.json").3, b"{\"ociVersion\":\"1.0.2\"}");
        assert_eq!(find("dev/console").2, 5);
        for dir in ["dev", "proc", "sys", "tmp", ".vessel/share", ".vessel/root"] {
            assert_eq!(find(dir).1 & 0o170000, S_IFDIR, "{dir}");
        }
        // Nothing else (no modules beside this kernel): the rootfs comes
        // over virtio-fs.
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(entries.len(), 10, "{names:?}");
        let pos = |n: &str| entries.iter().position(|e| e.0 == n).unwrap();
        assert!(pos(".vessel") < pos(".vessel/config.json"));

        // Same inputs: the cached file is reused; another config: a new entry.
        assert_eq!(build_cached(&inputs, &cache).unwrap(), path);
        let other = Inputs {
            config: b"{}",
            ..inputs
        };
        assert_ne!(build_cached(&other, &cache).unwrap(), path);
        assert!(fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp")));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn archive_holds_the_kernels_modules() {
        let d = scratch("modules");
        let agent = d.join("agent");
        fs::write(&agent, b"agent").unwrap();
        let kernel = d.join("vmlinux");
        let mods = modules::dir_of(&kernel);
        fs::create_dir_all(&mods).unwrap();
        fs::write(mods.join("load-order"), b"a.ko\nb.ko\n").unwrap();
        fs::write(mods.join("a.ko"), b"module a").unwrap();
        fs::write(mods.join("b.ko"), b"module b").unwrap();
        fs::write(mods.join("unlisted.ko"), b"not loaded").unwrap();
        fs::write(mods.join("stamp"), b"package=one\n").unwrap();
        let cache = d.join("cache");
        let inputs = Inputs {
            agent: &agent,
            config: b"{}",
            kernel: &kernel,
        };
        let path = build_cached(&inputs, &cache).unwrap();
        let entries = read_cpio(&fs::read(&path).unwrap());
        let names: Vec<&str> = entries
            .iter()
            .filter(|e| e.0.starts_with(".vessel/modules"))
            .map(|e| e.0.as_str())
            .collect();
        assert_eq!(
            names,
            [
                ".vessel/modules",
                ".vessel/modules/load-order",
                ".vessel/modules/a.ko",
                ".vessel/modules/b.ko"
            ]
        );
        let data = |n: &str| &entries.iter().find(|e| e.0 == n).unwrap().3;
        assert_eq!(data(".vessel/modules/load-order"), b"a.ko\nb.ko\n");
        assert_eq!(data(".vessel/modules/b.ko"), b"module b");
        assert_eq!(build_cached(&inputs, &cache).unwrap(), path);

        // Another stamp, or a module replaced (a new file renamed into
        // place, as guest-kernel.sh does): a new key.
        fs::write(mods.join("stamp"), b"package=two\n").unwrap();
        let path2 = build_cached(&inputs, &cache).unwrap();
        assert_ne!(path2, path);
        fs::write(mods.join("a.ko.new"), b"module A").unwrap();
        fs::rename(mods.join("a.ko.new"), mods.join("a.ko")).unwrap();
        let path3 = build_cached(&inputs, &cache).unwrap();
        assert_ne!(path3, path2);
        let entries = read_cpio(&fs::read(&path3).unwrap());
        assert_eq!(
            entries
                .iter()
                .find(|e| e.0 == ".vessel/modules/a.ko")
                .unwrap()
                .3,
            b"module A"
        );
        // A listed module missing: an error naming it.
        fs::remove_file(mods.join("b.ko")).unwrap();
        let e = build_cached(&inputs, &cache).unwrap_err().to_string();
        assert!(e.contains("b.ko"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn prune_keeps_the_newest() {
        let d = scratch("prune");
        for i in 0..5 {
            let p = d.join(format!("{i}.cpio"));
            fs::write(&p, b"x").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            File::options()
                .append(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune(&d, 2);
        let mut left: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["3.cpio", "4.cpio"]);
        fs::remove_dir_all(&d).unwrap();
    }
}
