//! vessel-agent: PID 1 of a VM-mode guest. See `src/agent/mod.rs`.
//!
//! Built from the agent's own modules (not the vessel library) so the static
//! binary stays small: it is copied into every guest's initramfs.

#[path = "../agent/mod.rs"]
mod agent;

fn main() {
    agent::main()
}
