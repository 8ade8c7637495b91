//! vessel: an OCI runtime. Container mode runs the workload on the host
//! kernel behind namespaces, cgroups, capabilities and seccomp; VM mode boots
//! the same bundle in a KVM microVM run by vessel's own VMM.

pub mod cgroups;
pub mod cli;
pub mod companion;
pub mod compare;
pub mod container;
pub mod error;
pub mod hooks;
pub mod isolation;
pub mod logging;
pub mod process;
pub mod spec;
pub mod untrusted_file;
pub mod vm;

pub use error::{Error, Result};
