//! vessel: the runtime's command line. runc's commands, flags, exit codes
//! and `--log` JSON over libvessel, which does the work. clap lives here and
//! only here. `vessel compare` hands over to the `vessel-compare` binary, so
//! `create`, `run` and every container's init do not carry it. Depends on
//! libvessel and clap only.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
