//! PLACEHOLDER in the vmlaunch branch so it builds on its own: the vmm
//! branch owns this directory and replaces this file on merge.

/// The hidden `vessel vmm` subcommand; returns the process exit code.
pub fn vmm_main(_args: &[String]) -> i32 {
    eprintln!("vessel vmm: not built into this branch");
    1
}
