//! The guest's initramfs: a newc cpio archive of `/init` (vessel-agent),
//! `/.vessel/config.json` and the mount points the agent needs, kept in a
//! content-addressed cache. The bundle's rootfs is not in it: the guest
//! mounts it over virtio-fs (`virtiofs`), so guest RAM does not grow with
//! the rootfs and the archive stays a few MiB.
//!
//! The cache key hashes the agent's metadata (path, mode, size, times,
//! inode, like `make` trusts timestamps) and the config bytes.

use super::VmError;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DEFAULT_CACHE_DIR: &str = "/var/cache/vessel/initramfs";
/// Older cache entries beyond this many are removed after a new one is built.
pub const CACHE_KEEP: usize = 16;
/// Bump when the archive layout changes so old entries are not reused.
const FORMAT_VERSION: &[u8] = b"vessel-initramfs-2";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

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
fn cache_key(agent: &Path, config: &[u8]) -> Result<String, VmError> {
    let mut h = Fnv128::new();
    h.field(FORMAT_VERSION);
    let amd = fs::metadata(agent).map_err(io_err("stat agent", agent))?;
    hash_meta(&mut h, agent.as_os_str().as_encoded_bytes(), &amd);
    h.field(config);
    Ok(format!("{:032x}", h.0))
}

/// Writes a newc ("070701") cpio stream.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> CpioWriter<W> {
        CpioWriter {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        // Every entry has its own inode and nlink 1: hard links become copies.
        let nlink = if mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        let fields = [
            ino, mode, uid, gid, nlink, mtime, size, 0, 0, rdev.0, rdev.1,
        ];
        let mut h = String::with_capacity(110);
        h.push_str("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        h.push_str(&format!("{:08x}{:08x}", name.len() + 1, 0));
        self.put(h.as_bytes())?;
        self.put(name)?;
        self.put(&[0])?;
        self.pad()
    }

    pub fn dir(
        &mut self,
        name: &[u8],
        perm: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
    ) -> io::Result<()> {
        self.header(name, S_IFDIR | (perm & 0o7777), uid, gid, mtime, 0, (0, 0))
    }

    pub fn symlink(
        &mut self,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
        mtime: u32,
    ) -> io::Result<()> {
        let size =
            u32::try_from(target.len()).map_err(|_| io::Error::other("symlink target too long"))?;
        self.header(name, S_IFLNK | 0o777, uid, gid, mtime, size, (0, 0))?;
        self.put(target)?;
        self.pad()
    }

    pub fn char_dev(&mut self, name: &[u8], perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(name, S_IFCHR | (perm & 0o7777), 0, 0, 0, 0, (major, minor))
    }

    /// A regular file of exactly `size` bytes read from `data`.
    #[allow(clippy::too_many_arguments)]
    pub fn file(
        &mut self,
        name: &[u8],
        perm: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let size32 = u32::try_from(size)
            .map_err(|_| io::Error::other("file larger than 4 GiB (cpio newc limit)"))?;
        self.header(
            name,
            S_IFREG | (perm & 0o7777),
            uid,
            gid,
            mtime,
            size32,
            (0, 0),
        )?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "file shrank while archiving ({copied} of {size} bytes)"
            )));
        }
        self.written += copied;
        self.pad()
    }

    /// The trailer entry; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(b"TRAILER!!!", 0, 0, 0, 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn mtime32(md: &fs::Metadata) -> u32 {
    md.mtime().clamp(0, u32::MAX as i64) as u32
}

/// Write the whole archive for `inputs` to `out`.
fn write_archive<W: Write>(out: W, inputs: &Inputs) -> Result<W, VmError> {
    let mut w = CpioWriter::new(out);
    let wrap = |what: &str, p: &Path| io_err(what, p);
    let arch = Path::new("<initramfs>");
    // Mount points of the agent (the share on /.vessel/share, the guest's
    // root on /.vessel/root, until it becomes /).
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
    let mut agent = File::open(inputs.agent).map_err(wrap("open agent", inputs.agent))?;
    let amd = agent.metadata().map_err(wrap("stat agent", inputs.agent))?;
    w.file(b"init", 0o755, 0, 0, mtime32(&amd), amd.size(), &mut agent)
        .map_err(wrap("archive agent", inputs.agent))?;
    w.finish().map_err(wrap("finish", arch))
}

/// Build (or reuse) the initramfs for `inputs` in `cache_dir`; returns its path.
pub fn build_cached(inputs: &Inputs, cache_dir: &Path) -> Result<PathBuf, VmError> {
    let key = cache_key(inputs.agent, inputs.config)?;
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
        let w = write_archive(BufWriter::with_capacity(1 << 20, f), inputs)?;
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
        let inputs = Inputs {
            agent: &agent,
            config: b"{\"ociVersion\":\"1.0.2\"}",
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
        // Nothing else: the rootfs comes over virtio-fs.
        assert_eq!(
            entries.len(),
            10,
            "{:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
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
