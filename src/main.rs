fn main() {
    std::process::exit(vessel::cli::main());
}
