//! One mode's runs: each is a child `vessel run` of the probe bundle, timed
//! from spawn (create) to the workload's first output and to its exit, in a
//! parent cgroup whose memory peak covers everything vessel started.

use super::net::{RunNet, PREFIX};
use super::stats::Summary;
use super::tcpserver::Server;
use super::workdir::WorkDir;
use super::{interrupt, CompareArgs};
use libvessel::cgroups::{Cgroup, Target};
use libvessel::{Error, Result};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The cost metrics: JSON key, unit, where a run record holds the value.
pub const COST_METRICS: &[(&str, &str, &str)] = &[
    ("first_output_ms", "ms", "/first_output_ms"),
    ("exit_ms", "ms", "/exit_ms"),
    ("peak_memory_mib", "MiB", "/peak_memory_mib"),
    ("getpid_ns", "ns", "/probe/cost/getpid_ns"),
    ("read_ns", "ns", "/probe/cost/read/ns"),
    (
        "file_write_mib_s",
        "MiB/s",
        "/probe/cost/file_io/write_mib_s",
    ),
    ("file_read_mib_s", "MiB/s", "/probe/cost/file_io/read_mib_s"),
    ("cpu_ms", "ms", "/probe/cost/cpu/ms"),
    ("stdout_mib_s", "MiB/s", "/probe/cost/stdout/mib_s"),
    ("net_rtt_us", "µs", "/probe/cost/net/rtt_median_us"),
    ("net_send_mib_s", "MiB/s", "/probe/cost/net/send_mib_s"),
];

/// Run `mode` args.runs times and summarise it as the report's mode object.
pub fn run_mode(
    vessel: &Path,
    work: &WorkDir,
    mode: &str,
    args: &CompareArgs,
    host: &Value,
) -> Value {
    let mut records: Vec<Value> = Vec::new();
    let mut error: Option<(String, String)> = None;
    for i in 0..args.runs {
        match run_once(vessel, work, mode, i, args, host) {
            Ok(r) => records.push(r),
            Err(RunError { status, message }) => {
                error = Some((status, message));
                break;
            }
        }
    }
    if records.is_empty() {
        let (status, message) = error.unwrap_or(("failed".into(), "no run finished".into()));
        return json!({"status": status, "error": message});
    }
    let mut cost = serde_json::Map::new();
    for (key, unit, pointer) in COST_METRICS {
        let values: Vec<f64> = records
            .iter()
            .filter_map(|r| r.pointer(pointer).and_then(Value::as_f64))
            .collect();
        let v = match Summary::of(&values) {
            Some(s) => {
                json!({"median": s.median, "min": s.min, "max": s.max, "n": s.n, "unit": unit})
            }
            None => Value::Null,
        };
        cost.insert(key.to_string(), v);
    }
    let first = &records[0]["probe"];
    let mut isolation = first["isolation"].clone();
    let boot_ids: Vec<Value> = records
        .iter()
        .map(|r| r["probe"]["isolation"]["boot_id"].clone())
        .collect();
    let same_kernel = first["isolation"]["boot_id"] == host["boot_id"];
    isolation["same_kernel_as_host"] = json!(same_kernel);
    isolation["boot_ids"] = json!(boot_ids);
    let mut out = json!({
        "status": if error.is_some() { "failed" } else { "ok" },
        "cost": Value::Object(cost),
        "net_error": net_error(&records),
        "isolation": isolation,
        "escape": first["escape"].clone(),
        "runs": records,
    });
    if let Some((_, message)) = error {
        out["error"] = json!(message);
    }
    out
}

struct RunError {
    /// "unavailable" (vessel refused at create, before the workload ran) or "failed".
    status: String,
    message: String,
}

fn failed(message: String) -> RunError {
    RunError {
        status: "failed".into(),
        message,
    }
}

fn run_once(
    vessel: &Path,
    work: &WorkDir,
    mode: &str,
    index: u32,
    args: &CompareArgs,
    host: &Value,
) -> std::result::Result<Value, RunError> {
    if let Some(sig) = interrupt::requested() {
        return Err(failed(format!("interrupted (signal {sig})")));
    }
    let tag = format!("vessel-compare-{}-{mode}-{index}", std::process::id());
    let id = tag.clone();
    let cgroup = RunCgroup::create(&tag).map_err(|e| failed(e.to_string()))?;
    // Dropped at the end of this function, after the container is deleted.
    let mut net = RunNetwork::start(args, &format!("{mode}-{index}"));
    let bundle = work
        .bundle_for(
            mode,
            &format!("/{tag}/ctr"),
            &probe_args(args, host, net.target()),
            net.netns_path(),
        )
        .map_err(|e| failed(e.to_string()))?;
    let no_pivot = mode == "container" && super::no_pivot(args);
    let outcome = spawn_timed(
        vessel,
        &work.state_root,
        &bundle,
        &id,
        &cgroup,
        args.timeout,
        no_pivot,
    );
    let net_record = net.finish();
    // Whatever happened, leave no container behind, then read the peak.
    delete_container(vessel, &work.state_root, &id);
    let peak = cgroup.peak_bytes();
    drop(cgroup);
    drop(net);
    let o = outcome.map_err(|e| failed(e.to_string()))?;
    let mut record = run_record(&o, peak, mode, index, args)?;
    check_net(&record["probe"], &net_record)
        .map_err(|e| failed(format!("{mode} run {index}: {e}")))?;
    record["net"] = net_record;
    Ok(record)
}

/// One run's network namespace and veth with compare's TCP server on the
/// host end, or why there is none.
struct RunNetwork {
    net: Option<RunNet>,
    server: Option<Server>,
    error: Option<String>,
}

impl RunNetwork {
    fn start(args: &CompareArgs, tag: &str) -> RunNetwork {
        let none = |e: String| RunNetwork {
            net: None,
            server: None,
            error: Some(e),
        };
        if args.net_mib == 0 && args.net_rtts == 0 {
            return none("not requested (--net-mib 0 --net-rtts 0)".into());
        }
        let net = match RunNet::setup(tag) {
            Ok(n) => n,
            Err(e) => return none(format!("network setup failed: {e}")),
        };
        let limit = Duration::from_secs(args.timeout);
        match Server::start(
            net.host_addr,
            net.guest_addr,
            args.net_rtts,
            args.net_mib << 20,
            limit,
        ) {
            Ok(s) => RunNetwork {
                net: Some(net),
                server: Some(s),
                error: None,
            },
            Err(e) => none(format!("TCP server: {e}")),
        }
    }

    /// The probe's `--net-target`, when the network is up.
    fn target(&self) -> Option<String> {
        self.server.as_ref().map(|s| s.addr().to_string())
    }

    fn netns_path(&self) -> Option<&Path> {
        self.net.as_ref().map(|n| n.netns_path.as_path())
    }

    /// Stop the server (the run is over); the run record's `net`: what was
    /// set up and what the server saw, or why there was no network.
    fn finish(&mut self) -> Value {
        let server = self.server.take().map(Server::finish);
        match (&self.net, &self.error) {
            (Some(n), _) => json!({
                "netns": n.netns,
                "netns_path": n.netns_path.display().to_string(),
                "host_if": n.host_if,
                "host_addr": format!("{}/{PREFIX}", n.host_addr),
                "guest_addr": format!("{}/{PREFIX}", n.guest_addr),
                "server": server,
            }),
            (None, e) => json!({"error": e}),
        }
    }
}

/// A probe that reports network figures the server does not confirm (its
/// count or check of the data failed) fails the run, as damaged stdout does.
fn check_net(probe: &Value, net: &Value) -> std::result::Result<(), String> {
    let figures = &probe["cost"]["net"];
    let claims = figures.get("rtt_median_us").is_some() || figures.get("send_mib_s").is_some();
    if claims && net["server"]["ok"] != true {
        return Err(format!(
            "the probe reports TCP figures but the server on the host end disagrees: {}",
            net["server"]["error"]
                .as_str()
                .unwrap_or("no server result")
        ));
    }
    Ok(())
}

/// Why a mode's network rows are empty or thin: the first run whose network
/// was not set up, or whose probe could not finish the test (with what the
/// server saw); None when every run measured.
fn net_error(records: &[Value]) -> Option<String> {
    records.iter().find_map(|r| {
        if let Some(e) = r["net"]["error"].as_str() {
            return Some(e.to_string());
        }
        let probe = r["probe"]["cost"]["net"]["error"].as_str()?;
        Some(match r["net"]["server"]["error"].as_str() {
            Some(s) => format!("probe: {probe}; {s}"),
            None => format!("probe: {probe}"),
        })
    })
}

/// The probe's command line: the cost parameters, the TCP target on the
/// host end (when compare made a network) and the host pid to aim the
/// escape probes at.
fn probe_args(args: &CompareArgs, host: &Value, net_target: Option<String>) -> Vec<String> {
    let mut probe_args = vec![
        "--io-mib".to_string(),
        args.io_mib.to_string(),
        "--syscalls".into(),
        args.syscalls.to_string(),
        "--cpu-iters".into(),
        args.cpu_iters.to_string(),
        "--stdout-mib".into(),
        args.stdout_mib.to_string(),
    ];
    if let Some(t) = net_target {
        probe_args.extend([
            "--net-target".to_string(),
            t,
            "--net-mib".into(),
            args.net_mib.to_string(),
            "--net-rtts".into(),
            args.net_rtts.to_string(),
        ]);
    }
    if let Some(pid) = host["pid"].as_u64() {
        probe_args.extend(["--host-pid".to_string(), pid.to_string()]);
    }
    probe_args
}

/// `vessel delete -f` the run's container if its state is still there.
fn delete_container(vessel: &Path, state_root: &Path, id: &str) {
    if state_root.join(id).exists() {
        let _ = Command::new(vessel)
            .arg("--root")
            .arg(state_root)
            .args(["delete", "-f", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One run's record (timings, memory peak, the probe's report), or why
/// the run does not count.
fn run_record(
    o: &Outcome,
    peak: Option<u64>,
    mode: &str,
    index: u32,
    args: &CompareArgs,
) -> std::result::Result<Value, RunError> {
    let timeout_s = args.timeout;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr).trim().to_string();
    if o.timed_out {
        return Err(failed(format!(
            "{mode} run {index} timed out after {timeout_s} s; stderr: {stderr}"
        )));
    }
    let Some(probe) = probe_report(&stdout) else {
        return Err(no_probe_report(o, mode, &stdout, &stderr));
    };
    if o.code != Some(0) {
        return Err(failed(format!(
            "vessel run exited with {:?}: {stderr}",
            o.code
        )));
    }
    // Output that arrives damaged makes the run fail, not just slow.
    super::bulk::check(&o.stdout, args.stdout_mib)
        .map_err(|e| failed(format!("{mode} run {index}: {e}")))?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(json!({
        "first_output_ms": o.first_output.map(ms),
        "exit_ms": ms(o.exit),
        "peak_memory_bytes": peak,
        "peak_memory_mib": peak.map(|b| b as f64 / 1048576.0),
        "exit_code": o.code,
        "probe": probe,
    }))
}

/// The probe's JSON report: the last stdout line that starts with `{`,
/// if it parses.
fn probe_report(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
}

/// Why a run printed no probe report: vessel's own message, or the tail of
/// stdout. VM mode with no output at all is "unavailable": vessel refused
/// before the guest ran.
fn no_probe_report(o: &Outcome, mode: &str, stdout: &str, stderr: &str) -> RunError {
    let status = if mode == "vm" && o.first_output.is_none() && o.code != Some(0) {
        "unavailable"
    } else {
        "failed"
    };
    let why = if stderr.is_empty() {
        let tail: String = stdout
            .chars()
            .rev()
            .take(200)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "vessel run exited with {:?} and printed no probe report ({} bytes of stdout, ending {tail:?})",
            o.code,
            stdout.len()
        )
    } else {
        stderr
            .strip_prefix("vessel: ")
            .unwrap_or(stderr)
            .to_string()
    };
    RunError {
        status: status.into(),
        message: why,
    }
}

struct Outcome {
    first_output: Option<Duration>,
    exit: Duration,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timed_out: bool,
}

/// Spawn `vessel run` (moved into the run's cgroup before it execs) and
/// time it: the first byte on stdout, then its exit.
fn spawn_timed(
    vessel: &Path,
    state_root: &Path,
    bundle: &Path,
    id: &str,
    cgroup: &RunCgroup,
    timeout_s: u64,
    no_pivot: bool,
) -> Result<Outcome> {
    let mut cmd = Command::new(vessel);
    cmd.arg("--root").arg(state_root).arg("run");
    if no_pivot {
        cmd.arg("--no-pivot");
    }
    cmd.arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    join_cgroup_before_exec(&mut cmd, cgroup);
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(Error::io("spawn vessel run", vessel))?;
    let so = child
        .stdout
        .take()
        .ok_or_else(|| Error::Other("vessel run: no stdout pipe".into()))?;
    let mut se = child
        .stderr
        .take()
        .ok_or_else(|| Error::Other("vessel run: no stderr pipe".into()))?;
    let rx_out = read_stdout_timed(so, t0);
    let (tx_err, rx_err) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = se.read_to_end(&mut all);
        let _ = tx_err.send(all);
    });
    let (status, timed_out) = wait_or_kill(&mut child, t0, Duration::from_secs(timeout_s))?;
    let exit = t0.elapsed();
    let grace = Duration::from_secs(5);
    let (first_output, stdout) = rx_out.recv_timeout(grace).unwrap_or((None, Vec::new()));
    let stderr = rx_err.recv_timeout(grace).unwrap_or_default();
    Ok(Outcome {
        first_output,
        exit,
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
    })
}

/// Have the child write its pid to the run cgroup's procs files before it
/// execs.
fn join_cgroup_before_exec(cmd: &mut Command, cgroup: &RunCgroup) {
    let fds: Vec<i32> = cgroup.procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure only calls getpid and write on fds opened before
    // the fork, with a stack buffer: async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut buf = [0u8; 20];
            let n = format_pid(libc::getpid(), &mut buf);
            for fd in &fds {
                if libc::write(*fd, buf.as_ptr().cast(), n) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Read all of stdout on a thread; sends (time of the first byte since
/// `t0`, everything read) at EOF.
fn read_stdout_timed(
    mut so: std::process::ChildStdout,
    t0: Instant,
) -> mpsc::Receiver<(Option<Duration>, Vec<u8>)> {
    let (tx_out, rx_out) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = None;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match so.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    first.get_or_insert_with(|| t0.elapsed());
                    all.extend_from_slice(&buf[..n]);
                }
            }
        }
        let _ = tx_out.send((first, all));
    });
    rx_out
}

/// Wait for the child, killing it once `limit` has passed since `t0`;
/// returns its status and whether it timed out.
fn wait_or_kill(
    child: &mut std::process::Child,
    t0: Instant,
    limit: Duration,
) -> Result<(Option<std::process::ExitStatus>, bool)> {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok((Some(st), false)),
            Ok(None) => {}
            Err(e) => return Err(Error::Other(format!("wait for vessel run: {e}"))),
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            return Ok((child.wait().ok(), true));
        }
        if let Some(sig) = interrupt::requested() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Other(format!(
                "interrupted (signal {sig}): the run was killed"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Decimal digits of `pid` into `buf`; returns the length.
fn format_pid(pid: i32, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    let mut v = pid.max(0) as u32;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    n
}

/// `/<tag>` with two leaves: `runtime` (the `vessel run` process) and
/// `ctr` (the container's cgroupsPath, where vessel puts the container's
/// init or the VMM). No process sits in `/<tag>` itself (cgroup v2's rule),
/// and its memory peak covers both leaves.
struct RunCgroup {
    parent: Cgroup,
    procs: Vec<File>,
}

impl RunCgroup {
    fn create(tag: &str) -> Result<RunCgroup> {
        let parent = Cgroup::resolve(Some(&format!("/{tag}")), tag)?;
        let runtime = Cgroup::resolve(Some(&format!("/{tag}/runtime")), tag)?;
        runtime.create()?;
        let mut procs = Vec::new();
        for dir in &runtime.dirs {
            let p = dir.join("cgroup.procs");
            procs.push(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(Error::io("open", &p))?,
            );
        }
        Ok(RunCgroup { parent, procs })
    }

    /// The parent's memory high-water mark (v1 max_usage_in_bytes, v2
    /// memory.peak, Linux 5.19+); None where the host has neither.
    fn peak_bytes(&self) -> Option<u64> {
        let file: PathBuf = match self.parent.target("memory")? {
            Target::V1(dir) => dir.join("memory.max_usage_in_bytes"),
            Target::V2(dir) => dir.join("memory.peak"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.procs.clear();
        let _ = self.parent.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_digits() {
        let mut b = [0u8; 20];
        let n = format_pid(40213, &mut b);
        assert_eq!(&b[..n], b"40213");
        let n = format_pid(7, &mut b);
        assert_eq!(&b[..n], b"7");
    }
}
