//! vessel-isolation: the process isolation both places that start a
//! workload need, container mode's init (libvessel) and the VM guest's
//! agent (vessel-agent), so a spec's capabilities and seccomp profile mean
//! the same thing in both modes.
//!
//! - `caps`: capability sets as masks (from oci-spec names or `--cap`
//!   names) and the raw, async-signal-safe calls that drop the bounding set,
//!   set the effective/permitted/inheritable sets and raise the ambient set;
//! - `seccomp`: an OCI `linux.seccomp` profile compiled to one classic BPF
//!   program (on seccompiler), its async-signal-safe install, filter flags,
//!   and the SCMP_ACT_NOTIFY listener hand-over.
//!
//! Compiling and building masks allocate and run before fork/clone; what
//! runs in the child (`CapSets::drop_bounding`, `CapSets::apply`,
//! `set_sets`, `set_ambient`, `Program::install`) makes raw syscalls only.
//!
//! May depend on libc, nix, oci-spec, caps, seccompiler, serde_json and
//! thiserror; never on libvessel (the agent, copied into every guest, uses
//! this crate and must not pull in the runtime).

pub mod caps;
pub mod seccomp;
