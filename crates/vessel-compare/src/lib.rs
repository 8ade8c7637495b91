//! vessel-compare (`vessel compare`): run one bundle in container mode and in VM mode with
//! vessel-probe as its workload, several times each, and report what each
//! isolation level costs (start-up, memory, syscalls, file I/O, CPU, TCP to
//! the host over a network namespace of its own) and
//! what it reveals or permits (kernel, /proc, /sys, /dev, escape attempts).
//!
//! The user's bundle is never modified: the rootfs is copied into a work
//! directory, the probe is put at `/.vessel-probe`, and each mode gets its
//! own config.json with `process.args` set to the probe and the annotation
//! `vessel.sandbox` set to `container` or `vm`. Each run is a child
//! `vessel run` (vessel's own lifecycle) inside a parent cgroup whose memory
//! peak covers the runtime, the container or the VMM and the guest RAM the
//! VMM touched.
//!
//! A crate and binary of its own, so the runtime binary (and every
//! container's init and VMM) does not carry it; `vessel compare` execs it.
//! It drives vessel through its CLI and reads cgroups through libvessel;
//! `vessel-probe` (src/bin) depends on std and libc only.

mod bulk;
mod interrupt;
mod net;
mod report;
mod run;
mod stats;
mod tcpserver;
mod workdir;

use libvessel::{Error, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

pub use report::render_table;
pub use stats::Summary;

/// Which isolation levels to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Container,
    Vm,
    Both,
}

/// `vessel compare` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// The bundle to compare (its config.json supplies mounts, env, user...).
    #[arg(value_name = "BUNDLE", default_value = ".")]
    pub bundle: PathBuf,
    /// Runs per mode.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Which modes to run.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,
    /// Output: a table for a person, or JSON.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// The vessel-probe binary (default: $VESSEL_PROBE, next to vessel, or
    /// /usr/local/lib/vessel, /usr/lib/vessel, /usr/local/bin, /usr/bin).
    #[arg(long)]
    pub probe: Option<PathBuf>,
    /// MiB written and read back in the root filesystem per run.
    #[arg(long = "io-mib", default_value_t = 32)]
    pub io_mib: u64,
    /// MiB of numbered lines the workload writes to stdout per run, checked
    /// line by line on the host (0: none).
    #[arg(long = "stdout-mib", default_value_t = 16)]
    pub stdout_mib: u64,
    /// MiB sent over TCP from the workload to compare on the host per run,
    /// through the run's own network namespace and veth (0: no send test).
    #[arg(long = "net-mib", default_value_t = 16)]
    pub net_mib: u64,
    /// One-byte TCP round trips to the host timed per run (0: none; with
    /// --net-mib 0, no network is set up at all).
    #[arg(long = "net-rtts", default_value_t = 1000)]
    pub net_rtts: u64,
    /// getpid and read calls timed per run.
    #[arg(long, default_value_t = 200_000)]
    pub syscalls: u64,
    /// Iterations of the CPU-bound loop per run.
    #[arg(long = "cpu-iters", default_value_t = 20_000_000)]
    pub cpu_iters: u64,
    /// Seconds one run may take before it is killed.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Pass --no-pivot to container-mode runs (automatic when / is an
    /// initramfs, where pivot_root(2) cannot work).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// The vessel binary to compare (default: $VESSEL_BIN, which `vessel
    /// compare` sets to itself, or `vessel` next to this program).
    #[arg(long)]
    pub vessel: Option<PathBuf>,
    /// Where the bundle copies and the private state root go
    /// (default: $TMPDIR or /var/tmp).
    #[arg(long = "work-dir")]
    pub work_dir: Option<PathBuf>,
}

impl CompareArgs {
    fn modes(&self) -> Vec<&'static str> {
        match self.mode {
            Mode::Container => vec!["container"],
            Mode::Vm => vec!["vm"],
            Mode::Both => vec!["container", "vm"],
        }
    }
}

/// Run the comparison; print it; return the exit code (0 when every mode
/// asked for worked, or when only VM mode is refused by the host under
/// `--mode both`).
pub fn compare(args: &CompareArgs) -> Result<i32> {
    interrupt::install()?;
    let report = build_report(args)?;
    let text = if args.format == "json" {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Other(format!("serialize the report: {e}")))?
        )
    } else {
        render_table(&report)
    };
    out(&text);
    if let Some(sig) = interrupt::requested() {
        return Ok(128 + sig);
    }
    Ok(exit_code(args.mode, &report))
}

/// Print to stdout, ignoring a closed pipe (`vessel compare | head`).
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// The vessel binary: `--vessel`, then $VESSEL_BIN, then next to this program.
fn find_vessel(explicit: Option<&std::path::Path>) -> Result<PathBuf> {
    libvessel::companion::find(
        "vessel",
        "VESSEL_BIN",
        explicit,
        "pass --vessel PATH or set VESSEL_BIN",
    )
    .map_err(Error::Other)
}

/// Run every requested mode and assemble the report (see docs/compare.md
/// for its fields).
pub fn build_report(args: &CompareArgs) -> Result<Value> {
    let vessel = find_vessel(args.vessel.as_deref())?;
    let probe = workdir::find_probe(args.probe.as_deref())?;
    let work = workdir::WorkDir::prepare(&args.bundle, &probe, args.work_dir.as_deref())?;
    net::sweep_stale();
    let host = host_facts();
    let mut modes = serde_json::Map::new();
    for mode in ["container", "vm"] {
        let v = if let Some(sig) = interrupt::requested() {
            json!({"status": "skipped", "error": format!("interrupted (signal {sig})")})
        } else if args.modes().contains(&mode) {
            run::run_mode(&vessel, &work, mode, args, &host)
        } else {
            json!({"status": "skipped", "error": "not requested (--mode)"})
        };
        modes.insert(mode.to_string(), v);
    }
    Ok(json!({
        "bundle": args.bundle.display().to_string(),
        "runs": args.runs,
        "params": {
            "io_mib": args.io_mib,
            "syscalls": args.syscalls,
            "cpu_iters": args.cpu_iters,
            "stdout_mib": args.stdout_mib,
            "net_mib": args.net_mib,
            "net_rtts": args.net_rtts,
            "probe": probe.display().to_string(),
            "no_pivot": no_pivot(args),
        },
        "host": host,
        "modes": Value::Object(modes),
    }))
}

/// --no-pivot, or a host whose / is the initramfs (rootfs), as in the
/// nested test VM: pivot_root(2) refuses to move rootfs.
pub fn no_pivot(args: &CompareArgs) -> bool {
    args.no_pivot
        || std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| root_is_initramfs(&t))
            .unwrap_or(false)
}

fn root_is_initramfs(mountinfo: &str) -> bool {
    mountinfo.lines().any(|l| {
        let (pre, post) = l.split_once(" - ").unwrap_or((l, ""));
        pre.split_whitespace().nth(4) == Some("/")
            && matches!(post.split_whitespace().next(), Some("rootfs" | "ramfs"))
    })
}

fn exit_code(mode: Mode, report: &Value) -> i32 {
    let status = |m: &str| {
        report["modes"][m]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let ok = match mode {
        Mode::Container => status("container") == "ok",
        Mode::Vm => status("vm") == "ok",
        Mode::Both => {
            status("container") == "ok" && matches!(status("vm").as_str(), "ok" | "unavailable")
        }
    };
    if ok {
        0
    } else {
        1
    }
}

/// What the host itself shows, to set the sandboxes' answers against.
fn host_facts() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| Value::String(s.trim().to_string()))
            .unwrap_or(Value::Null)
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    let processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    let modules = std::fs::read_to_string("/proc/modules")
        .map(|t| json!(t.lines().count()))
        .unwrap_or(Value::Null);
    json!({
        "kernel_release": read("/proc/sys/kernel/osrelease"),
        "kernel_version": read("/proc/sys/kernel/version"),
        "boot_id": read("/proc/sys/kernel/random/boot_id"),
        "cpu_model": model,
        "cpus": cpus,
        "mem_total_kib": mem_kib,
        "processes": processes,
        "modules": modules,
        "kvm_pvm": std::path::Path::new("/sys/module/kvm_pvm").exists(),
        "pid": std::process::id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initramfs_root_is_detected() {
        let ramfs =
            "1 1 0:2 / / rw - rootfs rootfs rw,size=1000k\n22 1 0:20 / /proc rw - proc proc rw\n";
        assert!(root_is_initramfs(ramfs));
        let disk = "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
        assert!(!root_is_initramfs(disk));
    }

    #[test]
    fn vm_refusal_is_tolerated_only_with_both_modes() {
        let r = json!({"modes": {"container": {"status": "ok"}, "vm": {"status": "unavailable"}}});
        assert_eq!(exit_code(Mode::Both, &r), 0);
        assert_eq!(exit_code(Mode::Container, &r), 0);
        assert_eq!(exit_code(Mode::Vm, &r), 1);
        let r = json!({"modes": {"container": {"status": "failed"}, "vm": {"status": "ok"}}});
        assert_eq!(exit_code(Mode::Both, &r), 1);
        assert_eq!(exit_code(Mode::Vm, &r), 0);
    }
}
