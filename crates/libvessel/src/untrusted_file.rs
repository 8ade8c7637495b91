//! Reading a file a tenant may control (config.json in its bundle,
//! /etc/passwd in its image) on the host: a regular file only (a FIFO or a
//! device cannot hang or feed the runtime) and at most a given size (a file
//! that grows or lies about its size after fstat is cut off too). The
//! caller opens it, non-blocking and without following links out of where
//! it belongs.

use std::fs::File;
use std::io::Read;

/// The contents of `f`, or why it was refused.
pub fn read_regular(f: File, max: u64) -> Result<Vec<u8>, String> {
    let md = f.metadata().map_err(|e| format!("stat: {e}"))?;
    if !md.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if md.len() > max {
        return Err(format!(
            "{} bytes, more than the {max} vessel reads",
            md.len()
        ));
    }
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    if buf.len() as u64 > max {
        return Err(format!("more than the {max} bytes vessel reads"));
    }
    Ok(buf)
}
