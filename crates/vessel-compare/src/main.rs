//! `vessel-compare`: the compare tool's command line (also reached as
//! `vessel compare`).

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "vessel compare",
    about = "Run a bundle in container mode and in VM mode; report cost and isolation side by side"
)]
struct Cli {
    #[command(flatten)]
    args: vessel_compare::CompareArgs,
}

fn main() {
    let cli = Cli::parse();
    match vessel_compare::compare(&cli.args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vessel compare: {e}");
            std::process::exit(1);
        }
    }
}
