//! Test helper: runs vessel's VMM directly (`vessel-vmm ARGS` == `vessel vmm ARGS`),
//! for trying the VMM before the `vmm` subcommand is wired into the CLI.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(vessel::vm::vmm::vmm_main(&args));
}
