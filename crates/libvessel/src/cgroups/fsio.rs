//! Reading and writing cgroupfs files with errors that name the file, the
//! value and the errno. A missing file is its own error: it means the host's
//! kernel lacks that knob, which must not pass silently.

use super::CgroupError;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
        what: "read".into(),
        path: path.to_path_buf(),
        source,
    })
}

/// The file's contents, or None when it does not exist (or cannot be read).
pub fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The first number in the file; "max" reads as u64::MAX.
pub fn read_u64(path: &Path) -> Option<u64> {
    let text = read_opt(path)?;
    parse_u64(text.split_whitespace().next()?)
}

pub fn parse_u64(word: &str) -> Option<u64> {
    if word == "max" {
        Some(u64::MAX)
    } else {
        word.parse().ok()
    }
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, ...).
pub fn read_flat_keyed(path: &Path) -> Vec<(String, u64)> {
    read_opt(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let k = it.next()?;
                    let v = parse_u64(it.next()?)?;
                    Some((k.to_string(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn keyed(path: &Path, key: &str) -> Option<u64> {
    read_flat_keyed(path)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Write one value in a single write(2), without creating the file: a
/// missing knob is reported as `CgroupError::Missing`.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    // O_TRUNC as runc does: kernfs ignores it, plain files (tests) need it.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|source| {
            if source.kind() == ErrorKind::NotFound {
                CgroupError::Missing { path: path.clone() }
            } else {
                CgroupError::Io {
                    what: format!("open {file} for writing"),
                    path: path.clone(),
                    source,
                }
            }
        })?;
    f.write_all(value.as_bytes())
        .map_err(|source| CgroupError::Io {
            what: format!("write {value:?} to"),
            path,
            source,
        })
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// `-1` (or any negative) means unlimited: "max" on v2.
pub use vessel_common::cgroup_units::v2_limit;
