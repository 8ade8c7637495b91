//! exec, ps, pause, resume, update, events: parse runc's flags, call
//! `container::{exec, manage}`, print what runc prints.

use super::out;
use libvessel::container::exec::ExecOptions;
use libvessel::container::manage::{self, UpdateFlags};
use libvessel::{logging, Error, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (when --process is not given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<String>,
    #[arg(short, long)]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup: "<sub>" or
    /// "<controller>[,<controller>]:<sub>" (repeatable, as runc's).
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// "-1" (unlimited) is a value here, as in runc, for each limit below.
    #[arg(long, allow_negative_numbers = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_negative_numbers = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "l3-cache-schema", hide = true)]
    pub l3_cache_schema: Option<String>,
    #[arg(long = "mem-bw-schema", hide = true)]
    pub mem_bw_schema: Option<String>,
    /// Deprecated in runc and ignored by the kernel: accepted with a warning.
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
}

/// runc exits 255 when exec fails before the process runs, and with the
/// process's own status in the foreground.
pub fn exec(root: &Path, a: ExecArgs) -> Result<i32> {
    let opts = ExecOptions {
        id: a.id,
        process: a.process,
        args: a.command,
        tty: a.tty,
        console_socket: a.console_socket,
        detach: a.detach,
        pid_file: a.pid_file,
        cwd: a.cwd,
        env: a.env,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        apparmor: a.apparmor,
        process_label: a.process_label,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        cgroup: a.cgroup,
    };
    match libvessel::container::exec::exec(root, &opts) {
        Ok(code) => Ok(code),
        Err(e) => {
            logging::error(&format!("exec failed: {e}"));
            Ok(255)
        }
    }
}

pub fn ps(root: &Path, id: &str, format: &str, args: &[String]) -> Result<i32> {
    if let Some(procs) = manage::guest_processes(root, id)? {
        return guest_ps(&procs, format, args);
    }
    let pids = manage::pids(root, id)?;
    if format == "json" {
        out(&format!("{}\n", serde_json::json!(pids)));
        return Ok(0);
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let o = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::Other(format!("run ps {}: {e}", args.join(" "))))?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        return Err(Error::Other(format!(
            "ps {}: {}: {}{}",
            args.join(" "),
            o.status,
            text,
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    out(&manage::filter_ps_table(&text, &pids)?);
    Ok(0)
}

/// `ps` of a running VM: the workload's processes in the guest, numbered
/// as its pid namespace there numbers them (docs/vm.md). `json` gives the
/// pids as runc does; the table is the agent's (PID, PPID, UID, CMD), as
/// no `ps` runs in the guest to take `ps` arguments.
fn guest_ps(procs: &serde_json::Value, format: &str, args: &[String]) -> Result<i32> {
    let list = procs.as_array().cloned().unwrap_or_default();
    let field = |p: &serde_json::Value, k: &str| p.get(k).cloned().unwrap_or_default();
    if format == "json" {
        let pids: Vec<serde_json::Value> = list.iter().map(|p| field(p, "pid")).collect();
        out(&format!("{}\n", serde_json::Value::Array(pids)));
        return Ok(0);
    }
    if !args.is_empty() {
        logging::warn(&format!(
            "ps arguments {:?} are not applied in VM mode: the table comes from the guest's agent",
            args.join(" ")
        ));
    }
    let mut table = format!("{:>7} {:>7} {:>7} CMD\n", "PID", "PPID", "UID");
    for p in &list {
        table.push_str(&format!(
            "{:>7} {:>7} {:>7} {}\n",
            field(p, "pid"),
            field(p, "ppid"),
            field(p, "uid"),
            field(p, "cmd").as_str().unwrap_or("")
        ));
    }
    out(&table);
    Ok(0)
}

pub fn pause(root: &Path, id: &str) -> Result<i32> {
    manage::pause(root, id)?;
    Ok(0)
}

pub fn resume(root: &Path, id: &str) -> Result<i32> {
    manage::resume(root, id)?;
    Ok(0)
}

pub fn update(root: &Path, a: UpdateArgs) -> Result<i32> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        return Err(Error::invalid(
            "Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported",
        ));
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        logging::warn("kernel memory limits are deprecated and ignored");
    }
    let value = match &a.resources {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(Error::io("read resources from", "stdin"))?
            } else {
                std::fs::read_to_string(path).map_err(Error::io("read resources", path))?
            };
            serde_json::from_str(&text)
                .map_err(|e| Error::invalid(format!("decode resources {}: {e}", path.display())))?
        }
        None => manage::resources_from_flags(&UpdateFlags {
            blkio_weight: a.blkio_weight,
            cpu_period: a.cpu_period,
            cpu_quota: a.cpu_quota,
            cpu_share: a.cpu_share,
            cpu_rt_period: a.cpu_rt_period,
            cpu_rt_runtime: a.cpu_rt_runtime,
            cpuset_cpus: a.cpuset_cpus,
            cpuset_mems: a.cpuset_mems,
            memory: a.memory,
            memory_reservation: a.memory_reservation,
            memory_swap: a.memory_swap,
            pids_limit: a.pids_limit,
        })?,
    };
    let res: oci_spec::runtime::LinuxResources = serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("decode resources: {e}")))?;
    manage::update(root, &a.id, &res)?;
    Ok(0)
}

pub fn events(root: &Path, id: &str, stats: bool, interval: &str) -> Result<i32> {
    let d = manage::parse_go_duration(interval)?;
    manage::events(root, id, stats, d, &mut |e| out(&format!("{e}\n")))?;
    Ok(0)
}
