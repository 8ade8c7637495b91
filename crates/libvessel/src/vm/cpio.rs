//! A newc ("070701") cpio writer, for the guest's initramfs.

use std::io::{self, Read, Write};

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;

/// Writes a newc cpio stream.
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
