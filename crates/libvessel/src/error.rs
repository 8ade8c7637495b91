//! The one error type of vessel. Every variant says what failed and on which
//! id, path or syscall, so a message printed to stderr or `--log` is usable
//! without a debugger.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json, process.json or command-line input that vessel refuses.
    #[error("{0}")]
    InvalidInput(String),
    /// The id names no container (runc's wording, which engines match on).
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id exists: {0}")]
    AlreadyExists(String),
    /// The container is in a status the operation cannot act on.
    #[error("{0}")]
    WrongState(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] crate::isolation::seccomp::SeccompError),
    #[error("vm: {0}")]
    Vm(#[from] crate::vm::VmError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// `map_err(Error::io("open", path))`
    pub fn io(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { what, path, source }
    }

    /// `map_err(Error::sys(format!("setns {path}")))`
    pub fn sys(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
        let what = what.into();
        move |source| Error::Sys { what, source }
    }

    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidInput(msg.into())
    }
}
