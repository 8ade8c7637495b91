//! The runc-compatible command line. Each subcommand is a thin call into the
//! library; errors print as `vessel: <what>: <why>` and, with `--log`, as a
//! JSON line that containerd and Podman read.

mod compare;
mod info;
mod lifecycle;
pub mod manage;

use clap::{Parser, Subcommand};
use libvessel::logging;
use std::path::PathBuf;

/// What `vessel -v` prints after "vessel ".
pub const VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    // No build script records a git commit.
    "\ncommit: unknown",
    "\nspec: 1.2.0"
);

#[derive(Parser, Debug)]
#[command(
    name = "vessel",
    // runc's layout ("runc version X", "commit: ...", "spec: ..."), which
    // runc's tests and tools parse; clap prints "vessel " before it.
    version = VERSION,
    disable_version_flag = true,
    about = "An OCI runtime: containers on the host kernel, or the same bundle in a KVM microVM"
)]
pub struct Cli {
    /// Print the version.
    #[arg(short = 'v', long = "version", short_alias = 'V', action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Root directory for container state (default /run/vessel; for a user
    /// other than root $XDG_RUNTIME_DIR/vessel, else /tmp/vessel-<uid>).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (errors, warnings; JSON lines with --log-format json).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (refused: no systemd driver).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: auto, true or false (accepted for runc compatibility).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", value_parser = ["auto", "true", "false"])]
    pub rootless: Option<String>,
    /// crun's flag, passed by Podman with --cgroups=disabled; accepted.
    #[arg(long = "cgroup-manager", global = true, value_parser = ["cgroupfs", "systemd", "disabled"])]
    pub cgroup_manager: Option<String>,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Create a container (its process waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal (default SIGTERM) to a container.
    Kill {
        id: String,
        signal: Option<String>,
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Print the OCI features document.
    Features,
    /// Run a process in a running container.
    Exec(manage::ExecArgs),
    /// List the processes of a container.
    Ps {
        id: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Arguments passed to ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update(manage::UpdateArgs),
    /// Print container events and statistics.
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Checkpoint is not supported (Podman probes it with --help).
    Checkpoint {
        id: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// Run a bundle in container mode and in VM mode; report cost and
    /// isolation side by side (the vessel-compare program; `vessel compare
    /// --help` lists its flags).
    #[command(disable_help_flag = true)]
    Compare {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    pub id: String,
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Accepted for runc compatibility (no SELinux relabel here).
    #[arg(long = "pidfd-socket", hide = true)]
    pub pidfd_socket: Option<PathBuf>,
}

/// Parse argv, run, return the exit code.
pub fn main() -> i32 {
    let argv0 = std::env::args().next().unwrap_or_default();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            if code != 0 {
                // Bad flags still reach --log when one was given.
                log_parse_error(&e.to_string());
            }
            return code;
        }
    };
    let format = if cli.log_format == "json" {
        logging::Format::Json
    } else {
        logging::Format::Text
    };
    logging::init(cli.log.clone(), format, cli.debug);
    let root = match cli.root.clone() {
        Some(r) => r,
        None => match libvessel::container::rootless::default_root() {
            Ok(r) => r,
            Err(e) => {
                logging::error(&e.to_string());
                return 1;
            }
        },
    };
    logging::debug(&format!(
        "vessel {} (root {}): {:?}",
        env!("CARGO_PKG_VERSION"),
        root.display(),
        std::env::args().skip(1).collect::<Vec<_>>()
    ));
    if cli.systemd_cgroup || cli.cgroup_manager.as_deref() == Some("systemd") {
        logging::error("systemd cgroup driver is not supported: no systemd here; use cgroupfs");
        return 1;
    }
    // CVE-2019-5736: what enters a container never runs the host's binary.
    if matches!(
        cli.cmd,
        Command::Create(_) | Command::Run { .. } | Command::Exec(_)
    ) {
        if let Err(e) = libvessel::process::sealed_exe::ensure() {
            logging::error(&e.to_string());
            return 1;
        }
    }
    match run(cli, root, &argv0) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&e.to_string());
            1
        }
    }
}

/// Find --log/--log-format in raw argv so parse errors are logged too.
fn log_parse_error(msg: &str) {
    let args: Vec<String> = std::env::args().collect();
    let mut log = None;
    let mut json = false;
    for (i, a) in args.iter().enumerate() {
        if a == "--log" {
            log = args.get(i + 1).cloned();
        } else if let Some(v) = a.strip_prefix("--log=") {
            log = Some(v.to_string());
        } else if a == "--log-format=json"
            || (a == "--log-format" && args.get(i + 1).map(|s| s.as_str()) == Some("json"))
        {
            json = true;
        }
    }
    if let Some(l) = log {
        let format = if json {
            logging::Format::Json
        } else {
            logging::Format::Text
        };
        logging::init(Some(PathBuf::from(l)), format, false);
        let first = msg.lines().next().unwrap_or(msg);
        logging::error_to_log_only(first);
    }
}

fn run(cli: Cli, root: PathBuf, argv0: &str) -> libvessel::Result<i32> {
    let no_cgroup = cli.cgroup_manager.as_deref() == Some("disabled");
    // containerd and Podman always pass --log-format json; a person rarely does.
    let engine = cli.log_format == "json";
    match cli.cmd {
        Command::Spec { bundle } => {
            lifecycle::spec(&bundle, cli.rootless.as_deref() == Some("true"))
        }
        Command::Create(a) => lifecycle::create(&root, a, argv0, no_cgroup, engine),
        Command::Start { id } => lifecycle::start(&root, &id),
        Command::Run {
            create,
            detach,
            keep,
        } => lifecycle::run(&root, create, detach, keep, argv0, no_cgroup, engine),
        Command::State { id } => lifecycle::state(&root, &id),
        Command::List { format, quiet } => lifecycle::list(&root, &format, quiet),
        Command::Kill { id, signal, all } => lifecycle::kill(&root, &id, signal.as_deref(), all),
        Command::Delete { id, force } => lifecycle::delete(&root, &id, force),
        Command::Features => info::features(),
        Command::Exec(a) => manage::exec(&root, a),
        Command::Ps {
            id,
            format,
            ps_args,
        } => manage::ps(&root, &id, &format, &ps_args),
        Command::Pause { id } => manage::pause(&root, &id),
        Command::Resume { id } => manage::resume(&root, &id),
        Command::Update(a) => manage::update(&root, a),
        Command::Events {
            id,
            stats,
            interval,
        } => manage::events(&root, &id, stats, &interval),
        Command::Checkpoint { .. } => Err(libvessel::Error::invalid(
            "checkpoint is not supported by vessel",
        )),
        Command::Compare { args } => compare::exec_compare(&args),
    }
}

/// Print to stdout, ignoring a closed pipe (`vessel list | head`).
pub fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}
