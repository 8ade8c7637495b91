//! The guest's initramfs: a newc cpio archive of the bundle's rootfs plus
//! `/init` (vessel-agent), `/.vessel/config.json` and the guest kernel's
//! modules in `/.vessel/modules/` (see `vm::modules`), kept in a
//! content-addressed cache so a second start of the same bundle costs one
//! walk of the rootfs metadata.
//!
//! The cache key hashes the rootfs tree's metadata (path, type, mode, owner,
//! size, mtime, ctime, inode), the agent's and each module's metadata, the
//! config bytes and the modules' `load-order` and `stamp`, like `make`
//! trusts timestamps: a file rewritten in place with the same size and
//! forged times would be missed.

use super::cpio::CpioWriter;
#[cfg(test)]
use super::cpio::{S_IFDIR, S_IFLNK, S_IFREG};
use super::modules::{self, GuestModules};
use super::VmError;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DEFAULT_CACHE_DIR: &str = "/var/cache/vessel/initramfs";
/// Older cache entries beyond this many are removed after a new one is built.
pub const CACHE_KEEP: usize = 16;
/// Bump when the archive layout changes so old entries are not reused.
const FORMAT_VERSION: &[u8] = b"vessel-initramfs-2";

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> VmError {
    let (what, path) = (what.to_owned(), path.to_path_buf());
    move |e| VmError::Msg(format!("initramfs: {what} {}: {e}", path.display()))
}

/// What goes into one initramfs.
pub struct Inputs<'a> {
    pub rootfs: &'a Path,
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

/// One rootfs entry to archive, in walk order (parents before children).
struct Entry {
    /// Path relative to the rootfs, no leading '/'.
    rel: PathBuf,
    abs: PathBuf,
    md: fs::Metadata,
}

/// Walk the rootfs depth-first, parents first, names sorted (a stable key
/// and a reproducible archive). Entries vessel writes itself are left out.
fn walk(rootfs: &Path) -> Result<Vec<Entry>, VmError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = rootfs.join(&rel_dir);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err("read directory", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("read directory", &dir))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let rel = rel_dir.join(&name);
            if rel == Path::new("init") || rel == Path::new(".vessel") {
                continue;
            }
            let abs = rootfs.join(&rel);
            let md = fs::symlink_metadata(&abs).map_err(io_err("stat", &abs))?;
            if md.is_dir() {
                subdirs.push(rel.clone());
            }
            out.push(Entry { rel, abs, md });
        }
        // Reverse so the stack pops them in sorted order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// The cache key of an initramfs (hex).
fn cache_key(
    entries: &[Entry],
    agent: &Path,
    config: &[u8],
    mods: Option<&GuestModules>,
) -> Result<String, VmError> {
    let mut h = Fnv128::new();
    h.field(FORMAT_VERSION);
    for e in entries {
        hash_meta(&mut h, e.rel.as_os_str().as_encoded_bytes(), &e.md);
    }
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

/// Write the whole archive for `inputs` (walked as `entries`, with the
/// kernel's modules `mods`) to `out`.
fn write_archive<W: Write>(
    out: W,
    inputs: &Inputs,
    entries: &[Entry],
    mods: Option<&GuestModules>,
) -> Result<W, VmError> {
    let mut w = CpioWriter::new(out);
    let wrap = |what: &str, p: &Path| io_err(what, p);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for e in entries {
        let name = e.rel.as_os_str().as_encoded_bytes();
        let (md, uid, gid, mtime) = (&e.md, e.md.uid(), e.md.gid(), mtime32(&e.md));
        let ft = md.file_type();
        let perm = md.mode() & 0o7777;
        if ft.is_dir() {
            w.dir(name, perm, uid, gid, mtime)
                .map_err(wrap("archive", &e.abs))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&e.abs).map_err(wrap("readlink", &e.abs))?;
            w.symlink(name, target.as_os_str().as_encoded_bytes(), uid, gid, mtime)
                .map_err(wrap("archive", &e.abs))?;
        } else if ft.is_file() {
            let mut f = File::open(&e.abs).map_err(wrap("open", &e.abs))?;
            w.file(name, perm, uid, gid, mtime, md.size(), &mut f)
                .map_err(wrap("archive", &e.abs))?;
        } else if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket() {
            // The guest's devtmpfs provides devices; fifos and sockets are runtime objects.
            continue;
        }
        seen.insert(name.to_vec());
    }
    let arch = Path::new("<initramfs>");
    // Mount points the agent needs, when the rootfs lacks them.
    for (dir, perm) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
    ] {
        if !seen.contains(dir.as_bytes()) {
            w.dir(dir.as_bytes(), perm, 0, 0, 0)
                .map_err(wrap("archive", arch))?;
        }
    }
    // The kernel opens /dev/console for init's stdio before devtmpfs exists.
    if !seen.contains(&b"dev/console"[..]) {
        w.char_dev(b"dev/console", 0o600, 5, 1)
            .map_err(wrap("archive", arch))?;
    }
    w.dir(b".vessel", 0o700, 0, 0, 0)
        .map_err(wrap("archive", arch))?;
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
    let entries = walk(inputs.rootfs)?;
    let mods = modules::find(inputs.kernel)?;
    let key = cache_key(&entries, inputs.agent, inputs.config, mods.as_ref())?;
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
        let w = write_archive(out, inputs, &entries, mods.as_ref())?;
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
    use std::os::unix::fs::symlink;

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
    fn archive_holds_rootfs_agent_and_config() {
        let d = scratch("archive");
        let root = d.join("rootfs");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::hard_link(root.join("bin/hello"), root.join("bin/hello2")).unwrap();
        symlink("hello", root.join("bin/link")).unwrap();
        fs::write(root.join("init"), b"the bundle's own init is replaced").unwrap();
        nix::unistd::mkfifo(
            &root.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let agent = d.join("agent");
        fs::write(&agent, b"\x7fELF agent").unwrap();
        let cache = d.join("cache");
        let kernel = d.join("vmlinux");
        let inputs = Inputs {
            rootfs: &root,
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
        assert_eq!(find("bin/hello").3, b"#!/bin/sh\necho hi\n");
        assert_eq!(find("bin/hello2").3, b"#!/bin/sh\necho hi\n");
        assert_eq!(find("bin/link").1 & 0o170000, S_IFLNK);
        assert_eq!(find("bin/link").3, b"hello");
        assert_eq!(find("bin").1 & 0o170000, S_IFDIR);
        assert_eq!(find("init").3, b"\x7fELF agent");
        assert_eq!(find("init").1, S_IFREG | 0o755);
        assert_eq!(find(".vessel/config.json").3, b"{\"ociVersion\":\"1.0.2\"}");
        assert_eq!(find("dev/console").2, 5);
        assert!(entries.iter().all(|e| e.0 != "fifo"));
        assert_eq!(entries.iter().filter(|e| e.0 == "init").count(), 1);
        // Parents come before their children.
        let pos = |n: &str| entries.iter().position(|e| e.0 == n).unwrap();
        assert!(pos("bin") < pos("bin/hello"));
        assert!(pos(".vessel") < pos(".vessel/config.json"));
        // No modules directory beside the kernel: no modules in the archive.
        assert!(entries.iter().all(|e| !e.0.starts_with(".vessel/modules")));

        // Same inputs: the cached file is reused; another config: a new entry.
        assert_eq!(build_cached(&inputs, &cache).unwrap(), path);
        let other = Inputs {
            config: b"{}",
            ..inputs
        };
        let path2 = build_cached(&other, &cache).unwrap();
        assert_ne!(path2, path);
        // A changed rootfs file changes the key.
        fs::write(root.join("bin/new"), b"x").unwrap();
        assert_ne!(build_cached(&other, &cache).unwrap(), path2);
        assert!(fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp")));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn archive_holds_the_kernels_modules() {
        let d = scratch("modules");
        let root = d.join("rootfs");
        // A rootfs cannot bring modules of its own.
        fs::create_dir_all(root.join(".vessel/modules")).unwrap();
        fs::write(root.join(".vessel/modules/load-order"), b"evil.ko\n").unwrap();
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
            rootfs: &root,
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
