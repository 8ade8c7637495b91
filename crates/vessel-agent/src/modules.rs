//! The guest kernel's modules, loaded before anything else.
//!
//! The initramfs holds the kernel's modules (virtio-mmio, the console, fs
//! and net drivers, which Debian's cloud kernel has only as modules) in
//! `/.vessel/modules/`, with `load-order` naming them dependencies first
//! (vessel's launcher puts them there from `<kernel>.modules/`). Each is
//! loaded with finit_module(2) and the parameters the kernel command line
//! gives it, as modprobe reads them: `<module>.<param>=<value>` (so
//! `virtio_mmio.device=4K@0xd0000000:5` declares a device). Then module
//! loading is turned off for good (kernel.modules_disabled), with or
//! without modules, before any workload runs.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

const DIR: &str = "/.vessel/modules";
const LOAD_ORDER: &str = "/.vessel/modules/load-order";
const CMDLINE: &str = "/proc/cmdline";
const MODULES_DISABLED: &str = "/proc/sys/kernel/modules_disabled";

/// Why the modules could not be loaded.
#[derive(Debug)]
pub enum Error {
    /// load-order or /proc/cmdline could not be read.
    Read { path: String, err: io::Error },
    /// A listed module could not be opened.
    Open { file: String, err: io::Error },
    /// finit_module refused a module (not EEXIST).
    Load { file: String, errno: i32 },
    /// kernel.modules_disabled could not be set.
    Disable(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, err } => write!(f, "guest modules: read {path}: {err}"),
            Error::Open { file, err } => write!(f, "guest modules: open {file}: {err}"),
            // io::Error's text ends with "(os error N)": the errno.
            Error::Load { file, errno } => write!(
                f,
                "guest modules: load {file}: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            Error::Disable(err) => write!(f, "guest modules: write 1 to {MODULES_DISABLED}: {err}"),
        }
    }
}

/// The module name of a `.ko` file name, `-` written as `_` (the kernel
/// treats them alike in module names).
fn module_name(file: &str) -> String {
    let stem = file.strip_suffix(".ko").unwrap_or(file);
    stem.replace('-', "_")
}

/// The words of a kernel command line: split at blanks outside double
/// quotes (kept, as the kernel's own parser reads them), up to `--`, after
/// which the words are init's.
fn cmdline_words(cmdline: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut start, mut quoted) = (None, false);
    for (i, c) in cmdline.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if let Some(s) = start.take() {
                words.push(&cmdline[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&cmdline[s..]);
    }
    match words.iter().position(|w| *w == "--") {
        Some(end) => words[..end].to_vec(),
        None => words,
    }
}

/// The parameters `cmdline` gives module `module` (a module name, `-` and
/// `_` alike), modprobe's way: each `<module>.<param>[=<value>]` word
/// becomes `<param>[=<value>]`, space-joined in command-line order.
pub fn params_for(cmdline: &str, module: &str) -> String {
    let want = module.replace('-', "_");
    let mut out: Vec<&str> = Vec::new();
    for word in cmdline_words(cmdline) {
        // The module name ends at the first '.', which must come before
        // any '=' (`foo=a.b` is no module parameter).
        let Some(dot) = word.find('.') else { continue };
        if word.find('=').is_some_and(|eq| eq < dot) {
            continue;
        }
        let (name, param) = (&word[..dot], &word[dot + 1..]);
        if param.is_empty() || param.starts_with('=') {
            continue;
        }
        if name.replace('-', "_") == want {
            out.push(param);
        }
    }
    out.join(" ")
}

/// finit_module(2) of `file` with `params`; Ok when loaded or already
/// there (EEXIST: built in, or loaded before).
fn load_one(path: &Path, file: &str, params: &str) -> Result<(), Error> {
    let f = File::open(path).map_err(|err| Error::Open {
        file: file.to_owned(),
        err,
    })?;
    let c_params = std::ffi::CString::new(params).map_err(|_| Error::Load {
        file: file.to_owned(),
        errno: libc::EINVAL,
    })?;
    // SAFETY: finit_module reads the open fd and a NUL-terminated string
    // that outlives the call; flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            f.as_raw_fd(),
            c_params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if r == 0 {
        return Ok(());
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EEXIST) => Ok(()),
        errno => Err(Error::Load {
            file: file.to_owned(),
            errno: errno.unwrap_or(libc::EIO),
        }),
    }
}

/// Load the modules `/.vessel/modules/load-order` lists (nothing when it is
/// absent) with their command-line parameters, then set
/// kernel.modules_disabled. Needs /proc mounted.
pub fn load() -> Result<(), Error> {
    let list = match std::fs::read_to_string(LOAD_ORDER) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(err) => {
            return Err(Error::Read {
                path: LOAD_ORDER.into(),
                err,
            })
        }
    };
    if let Some(list) = list {
        let cmdline = std::fs::read_to_string(CMDLINE).map_err(|err| Error::Read {
            path: CMDLINE.into(),
            err,
        })?;
        for file in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if file.contains('/') {
                return Err(Error::Open {
                    file: file.to_owned(),
                    err: io::Error::other(format!("not a file name in {LOAD_ORDER}")),
                });
            }
            let params = params_for(&cmdline, &module_name(file));
            load_one(&Path::new(DIR).join(file), file, &params)?;
        }
    }
    std::fs::write(MODULES_DISABLED, b"1").map_err(Error::Disable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_from_files() {
        assert_eq!(module_name("virtio_mmio.ko"), "virtio_mmio");
        assert_eq!(module_name("kvm-amd.ko"), "kvm_amd");
    }

    #[test]
    fn params_are_collected_from_the_command_line() {
        let cmdline = "console=ttyS0 quiet rdinit=/init \
                       virtio_mmio.device=4K@0xd0000000:5 virtio-mmio.device=4K@0xd0001000:6 \
                       virtio_net.napi_tx=1 virtio_mmio_extra.x=1 virtio_console.flag \
                       foo=virtio_mmio.device=no virtio_mmio.=bad \
                       fuse.max_user_bgreq=\"12\" vessel.tty_onlcr=0\n";
        assert_eq!(
            params_for(cmdline, "virtio_mmio"),
            "device=4K@0xd0000000:5 device=4K@0xd0001000:6"
        );
        assert_eq!(params_for(cmdline, "virtio-net"), "napi_tx=1");
        assert_eq!(params_for(cmdline, "virtio_console"), "flag");
        assert_eq!(params_for(cmdline, "fuse"), "max_user_bgreq=\"12\"");
        assert_eq!(params_for(cmdline, "virtiofs"), "");
        assert_eq!(params_for("", "virtio_mmio"), "");
    }

    #[test]
    fn quoted_values_stay_whole_and_init_args_are_not_read() {
        let cmdline = "m.a=\"x y\" m.b=1 -- m.c=2";
        assert_eq!(cmdline_words(cmdline), vec!["m.a=\"x y\"", "m.b=1"]);
        assert_eq!(params_for(cmdline, "m"), "a=\"x y\" b=1");
    }

    #[test]
    fn errors_name_the_module_and_errno() {
        let e = Error::Load {
            file: "virtio_mmio.ko".into(),
            errno: libc::ENOEXEC,
        };
        let s = e.to_string();
        assert!(
            s.contains("virtio_mmio.ko") && s.contains("os error 8"),
            "{s}"
        );
    }
}
