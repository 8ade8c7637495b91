//! Loading and validating config.json. Everything here runs before any side
//! effect, so bad input leaves nothing behind.

pub mod support;
pub mod validate;

use crate::{Error, Result};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// The default config.json that `vessel spec` writes.
pub const DEFAULT_SPEC: &str = include_str!("../../../../runtime-spec/config.json");
/// The rootless variant (`vessel spec --rootless`).
pub const ROOTLESS_SPEC: &str = include_str!("../../../../runtime-spec/config-rootless.json");

/// A parsed bundle: the spec, the raw JSON (for fields oci-spec lacks, such
/// as `vm`) and the absolute bundle and rootfs paths.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub raw: serde_json::Value,
    pub rootfs: PathBuf,
    /// Seccomp flags oci-spec cannot parse, taken out of the raw JSON.
    pub seccomp_extra_flags: Vec<String>,
    /// Each config mount's id mapping (create only; empty from `read_bundle`).
    pub mount_idmaps: Vec<Option<crate::isolation::idmap::MountIdmap>>,
}

/// Read `<bundle>/config.json`, parse and validate it (create).
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let mut b = read_bundle(bundle)?;
    validate::validate(&b.spec, &b.raw)?;
    support::enforce(&b.raw)?;
    b.mount_idmaps = crate::isolation::idmap::mount_idmaps(&b.spec, &b.raw)?;
    Ok(b)
}

/// Read and parse `<bundle>/config.json` without validating it again: for
/// commands on a container that `create` already checked (`exec`), so the
/// support-matrix warnings are not logged once more per command.
/// The largest config.json vessel reads (runc's own are a few KiB; a
/// seccomp profile makes them tens of KiB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Read config.json: a regular file of bounded size. The bundle may be a
/// tenant's: a config.json that is a FIFO (or a link to one) must not hang
/// the runtime, nor one linked to /dev/zero grow it without bound.
fn read_config_text(path: &Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |why: String| Error::invalid(format!("read {}: {why}", path.display()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let bytes = crate::untrusted_file::read_regular(f, MAX_CONFIG_BYTES).map_err(bad)?;
    String::from_utf8(bytes).map_err(|e| bad(e.to_string()))
}

pub fn read_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle)
        .map_err(|e| Error::invalid(format!("bundle {}: {e}", bundle.display())))?;
    let path = dir.join("config.json");
    let text = read_config_text(&path)?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("parse {}: {e}", path.display())))?;
    let mut parsable = raw.clone();
    let seccomp_extra_flags = crate::isolation::seccomp::take_extra_flags(&mut parsable);
    stringify_time_offsets(&mut parsable);
    let spec: Spec = serde_json::from_value(parsable)
        .map_err(|e| Error::invalid(format!("parse {}: {e}", path.display())))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("{}: root is missing", path.display())))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    // No symlink anywhere on the rootfs path (runc: "not an absolute path,
    // or a symlink"): a tenant's rootfs linked to another tenant's files
    // must not run on them. The init opens it again with
    // RESOLVE_NO_SYMLINKS, so swapping a link in later fails too.
    let lexical = clean_path(&rootfs);
    let rootfs = std::fs::canonicalize(&lexical)
        .map_err(|e| Error::invalid(format!("rootfs {}: {e}", lexical.display())))?;
    if rootfs != lexical {
        return Err(Error::invalid(format!(
            "rootfs {}: root.path must not be a symlink or lead through one (it resolves to {})",
            lexical.display(),
            rootfs.display()
        )));
    }
    if !rootfs.is_dir() {
        return Err(Error::invalid(format!(
            "rootfs {} is not a directory",
            rootfs.display()
        )));
    }
    Ok(Bundle {
        dir,
        spec,
        raw,
        rootfs,
        seccomp_extra_flags,
        mount_idmaps: Vec::new(),
    })
}

/// Lexical clean of an absolute path (Go's filepath.Clean): drop `.`,
/// resolve `..` against the text, never the filesystem.
fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The runtime spec writes each `linux.timeOffsets` entry as an object
/// `{"secs": N, "nanosecs": N}`, but oci-spec 0.7 types the values as
/// strings: hand it each object as its JSON text (process::plan parses it).
fn stringify_time_offsets(config: &mut serde_json::Value) {
    if let Some(map) = config
        .pointer_mut("/linux/timeOffsets")
        .and_then(|m| m.as_object_mut())
    {
        for v in map.values_mut() {
            if v.is_object() {
                *v = serde_json::Value::String(v.to_string());
            }
        }
    }
}

/// runc's rule for container ids: letters, digits, `_ + - .`, not `.`/`..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container id: {id:?}")))
    }
}
