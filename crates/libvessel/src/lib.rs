//! libvessel: vessel's container library. It reads and validates an OCI
//! bundle (`spec`), runs the lifecycle under one lock and one state file per
//! container (`container`), builds and starts the container's processes
//! (`process`), applies namespaces, mounts, capabilities, seccomp and
//! devices (`isolation`) and cgroups v1 and v2 (`cgroups`), runs hooks, and
//! for VM mode builds the guest's initramfs and launches `vessel-vmm` (`vm`).
//!
//! No command-line types: the `vessel` CLI crate parses argv and calls in
//! here. May depend on `vessel-common` and `vessel-protocol`, never on the
//! VMM, the agent or the compare tool.

pub mod cgroups;
pub mod companion;
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
