//! Answers to the host's questions about the guest (`KIND_EXEC_QUERY`):
//! `ps` lists the workload's processes as its pid namespace numbers them
//! (the agent's own /proc shows every guest process; those in the
//! workload's namespace are picked, and NSpid's last field is the pid the
//! workload sees), `stats` gives the guest kernel's own figures: memory
//! from /proc/meminfo, CPU time from /proc/stat, the workload's process
//! count. Both are JSON. `update` writes new limits into the workload's
//! cgroup in the guest.

use serde_json::{json, Value};
use std::collections::HashMap;

/// The answer to `what` (with its argument `arg`) about the workload whose
/// agent-side pid is `workload`.
pub fn answer(what: &[u8], arg: &[u8], workload: i32) -> Result<Vec<u8>, String> {
    let value = match what {
        vessel_protocol::QUERY_PS => ps(workload)?,
        vessel_protocol::QUERY_STATS => stats(workload)?,
        vessel_protocol::QUERY_UPDATE => update(arg)?,
        other => {
            return Err(format!(
                "unknown query {:?}",
                String::from_utf8_lossy(other)
            ))
        }
    };
    Ok(value.to_string().into_bytes())
}

/// `update`: the changed `linux.resources`, written into the workload's
/// group; answers `{}`.
fn update(json: &[u8]) -> Result<Value, String> {
    let r: super::spec::Resources =
        serde_json::from_slice(json).map_err(|e| format!("update: bad resources JSON: {e}"))?;
    super::cgroup::apply(&r)?;
    Ok(json!({}))
}

/// One process of the workload's pid namespace.
struct Proc {
    /// As the agent sees it.
    agent_pid: i32,
    agent_ppid: i32,
    /// As the workload sees it.
    pid: i32,
    uid: u32,
    cmd: String,
}

fn ns_of(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The processes in `workload`'s pid namespace (it is their PID 1).
fn processes(workload: i32) -> Result<Vec<Proc>, String> {
    let ns = ns_of(workload).ok_or_else(|| "the workload has exited".to_string())?;
    let mut procs = Vec::new();
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("read /proc: {e}"))?;
    for e in dir.flatten() {
        let Some(agent_pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        // A process may end while it is read: skip it.
        if ns_of(agent_pid).as_ref() != Some(&ns) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{agent_pid}/status")) else {
            continue;
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
                .unwrap_or("")
        };
        let pid = field("NSpid:")
            .split_whitespace()
            .last()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let agent_ppid = field("PPid:").parse().unwrap_or(0);
        let uid = field("Uid:")
            .split_whitespace()
            .next()
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{agent_pid}/cmdline")).unwrap_or_default();
        let cmd = if cmdline.is_empty() {
            format!("[{}]", field("Name:"))
        } else {
            String::from_utf8_lossy(&cmdline)
                .trim_end_matches('\0')
                .replace('\0', " ")
        };
        procs.push(Proc {
            agent_pid,
            agent_ppid,
            pid,
            uid,
            cmd,
        });
    }
    procs.sort_by_key(|p| p.pid);
    Ok(procs)
}

fn ps(workload: i32) -> Result<Value, String> {
    let procs = processes(workload)?;
    let ns_pid: HashMap<i32, i32> = procs.iter().map(|p| (p.agent_pid, p.pid)).collect();
    Ok(Value::Array(
        procs
            .iter()
            .map(|p| {
                json!({
                    "pid": p.pid,
                    // The workload's parent is outside its namespace: 0.
                    "ppid": ns_pid.get(&p.agent_ppid).copied().unwrap_or(0),
                    "uid": p.uid,
                    "cmd": p.cmd,
                })
            })
            .collect(),
    ))
}

fn meminfo_bytes(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn stats(workload: i32) -> Result<Value, String> {
    let meminfo =
        std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("read /proc/meminfo: {e}"))?;
    let total = meminfo_bytes(&meminfo, "MemTotal:");
    let available = meminfo_bytes(&meminfo, "MemAvailable:");
    let stat =
        std::fs::read_to_string("/proc/stat").map_err(|e| format!("read /proc/stat: {e}"))?;
    // The first line sums every CPU, in USER_HZ ticks.
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|h| *h > 0)
        .unwrap_or(100);
    let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
    let tick = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let (user, nice, system, irq, softirq) = (tick(0), tick(1), tick(2), tick(5), tick(6));
    let busy = user + nice + system + irq + softirq;
    Ok(json!({
        "memory": {
            "total": total,
            "available": available,
            "used": total.saturating_sub(available),
            "free": meminfo_bytes(&meminfo, "MemFree:"),
            "cached": meminfo_bytes(&meminfo, "Cached:"),
            "shmem": meminfo_bytes(&meminfo, "Shmem:"),
        },
        "cpu": {
            "usage": {
                "total": ns(busy),
                "user": ns(user + nice),
                "kernel": ns(system + irq + softirq),
            },
            "online": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        },
        "pids": {"current": processes(workload)?.len()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values_are_bytes() {
        let text = "MemTotal:        2000 kB\nMemAvailable:     500 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal:"), 2_048_000);
        assert_eq!(meminfo_bytes(text, "MemAvailable:"), 512_000);
        assert_eq!(meminfo_bytes(text, "Cached:"), 0);
    }

    #[test]
    fn ps_of_this_process_lists_it() {
        // Here (a test on the host) "the workload" is this process's pid
        // namespace: the list includes this process.
        let me = std::process::id() as i32;
        let procs = processes(me).unwrap();
        assert!(procs.iter().any(|p| p.agent_pid == me));
        assert!(answer(b"nonsense", b"", me).is_err());
        assert!(answer(vessel_protocol::QUERY_UPDATE, b"not json", me).is_err());
    }
}
