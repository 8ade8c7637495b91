//! pause, resume, update, ps and events on a container's cgroup, with
//! runc's rules about which status each one accepts.

use crate::cgroups::Cgroup;
use crate::container::state::{Sandbox, State, Status};
use crate::{logging, Error, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn cgroup_of(st: &State) -> Result<&Cgroup> {
    st.cgroup.as_ref().ok_or_else(|| {
        Error::Other(format!(
            "container {}: no cgroup recorded (created with --cgroup-manager disabled, or \
                 rootless on a host with no delegated cgroup v2): pause, resume, update, ps and \
                 events need one",
            st.id
        ))
    })
}

/// Freeze every process of a running (or created) container. A VM is
/// paused in its VMM instead (every vCPU out of the guest and parked): the
/// freezer cannot freeze the kernel thread KVM puts in the VMM's cgroup.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (dir, _lock, st) = super::load_locked(root, id)?;
    match (st.live_status(&dir), st.sandbox) {
        (Status::Running, Sandbox::Vm) => Ok(crate::vm::pause(st.pid)?),
        (Status::Created, Sandbox::Vm) => Err(Error::WrongState(format!(
            "container {id} is a VM that has not been started: no vCPU runs yet, so there is \
             nothing to pause (start it first)"
        ))),
        (Status::Running | Status::Created, Sandbox::Container) => Ok(cgroup_of(&st)?.freeze()?),
        _ => Err(Error::WrongState("container not running".into())),
    }
}

/// Thaw a paused container (or resume a paused VM's vCPUs).
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (dir, _lock, st) = super::load_locked(root, id)?;
    if st.live_status(&dir) != Status::Paused {
        return Err(Error::WrongState("container not paused".into()));
    }
    if st.sandbox == Sandbox::Vm && crate::vm::vcpus_paused(st.pid) == Some(true) {
        return Ok(crate::vm::resume(st.pid)?);
    }
    Ok(cgroup_of(&st)?.thaw()?)
}

/// The pids in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_dir, st) = super::load(root, id)?;
    Ok(cgroup_of(&st)?.pids()?)
}

/// For a running VM-mode container, the guest agent's answer to `what`
/// (`vessel_protocol::QUERY_PS` or `QUERY_STATS`); None in container mode
/// and for a VM that is not running (its vCPUs cannot answer while paused),
/// where the host's cgroup is what there is.
fn guest_query(root: &Path, id: &str, what: &[u8]) -> Result<Option<Value>> {
    let (dir, st) = super::load(root, id)?;
    guest_query_of(&dir, &st, what)
}

/// `ps` of a running VM: the workload's processes as its pid namespace in
/// the guest numbers them (`pid`, `ppid`, `uid`, `cmd`); None when the
/// host's cgroup is the answer (see `guest_query`).
pub fn guest_processes(root: &Path, id: &str) -> Result<Option<Value>> {
    guest_query(root, id, vessel_protocol::QUERY_PS)
}

fn guest_query_of(dir: &Path, st: &State, what: &[u8]) -> Result<Option<Value>> {
    if st.sandbox != Sandbox::Vm || st.live_status(dir) != Status::Running {
        return Ok(None);
    }
    crate::vm::exec::query(dir, what, &[]).map(Some)
}

/// runc's `ps` table: the header of `ps <args>` and the lines whose PID
/// column is one of `pids`.
pub fn filter_ps_table(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or("");
    let idx = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| Error::Other("couldn't find PID field in ps output".into()))?;
    let mut out = format!("{header}\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let pid = l
            .split_whitespace()
            .nth(idx)
            .and_then(|f| f.parse::<i32>().ok())
            .ok_or_else(|| Error::Other(format!("unexpected pid field in ps output: {l:?}")))?;
        if pids.contains(&pid) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Apply new limits. `delta` holds only what the caller changes: the
/// cgroup keeps every value it does not name, so writing the delta merges
/// it onto the container's current resources (runc's `update`).
pub fn update(root: &Path, id: &str, delta: &LinuxResources) -> Result<()> {
    let (dir, _lock, st) = super::load_locked(root, id)?;
    if st.live_status(&dir) == Status::Stopped {
        return Err(Error::WrongState("container not running".into()));
    }
    if st.sandbox == Sandbox::Vm {
        // CPU, pids and the rest cap the VMM's cgroup as they cap a
        // container's; memory only where the VM's fixed RAM still fits.
        crate::vm::check_memory_update(id, delta, st.vm.map(|v| v.mem_mib))?;
    }
    let mut delta = delta.clone();
    if super::rootless::active() {
        // As at create: no device program rootless (create::setup_cgroup).
        delta.set_devices(None);
    }
    cgroup_of(&st)?.apply(&delta)?;
    if st.sandbox == Sandbox::Vm {
        update_guest(&dir, &st, &delta)?;
    }
    Ok(())
}

/// The workload's own cgroup in a running VM's guest gets the pids, memory
/// and CPU values too (the agent writes them as it did at boot), so what
/// the workload reads in its cgroup files follows `update`. A paused or
/// created VM cannot answer: its guest keeps the values it had, and a
/// warning says so.
fn update_guest(dir: &Path, st: &State, delta: &LinuxResources) -> Result<()> {
    let mut guest = serde_json::Map::new();
    for (key, v) in [
        ("pids", serde_json::to_value(delta.pids())),
        ("memory", serde_json::to_value(delta.memory())),
        ("cpu", serde_json::to_value(delta.cpu())),
    ] {
        match v {
            Ok(Value::Null) => {}
            Ok(v) => {
                guest.insert(key.into(), v);
            }
            Err(e) => return Err(Error::Other(format!("update: encode {key}: {e}"))),
        }
    }
    if guest.is_empty() {
        return Ok(());
    }
    let status = st.live_status(dir);
    if status != Status::Running {
        logging::warn(&format!(
            "container {}: the VM's cgroup on the host is updated; the workload's cgroup \
             inside the guest keeps its values (a {} VM cannot be reached)",
            st.id,
            status.as_str()
        ));
        return Ok(());
    }
    let arg = Value::Object(guest).to_string();
    let what = vessel_protocol::QUERY_UPDATE;
    crate::vm::exec::query(dir, what, arg.as_bytes())
        .map(|_| ())
        .map_err(|e| {
            Error::Other(format!(
                "container {}: the VM's cgroup on the host is updated, the guest's is not: {e}",
                st.id
            ))
        })
}

/// runc's update flags, as given on the command line.
#[derive(Debug, Default, Clone)]
pub struct UpdateFlags {
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
}

/// The LinuxResources JSON the flags describe (only the fields given).
pub fn resources_from_flags(f: &UpdateFlags) -> Result<Value> {
    let mut r = json!({});
    let mem = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some("-1") => Ok(Some(-1)),
            Some(s) => ram_in_bytes(s)
                .map(Some)
                .map_err(|e| Error::invalid(format!("invalid value for {name}: {e}"))),
        }
    };
    if let Some(v) = mem("memory", &f.memory)? {
        r["memory"]["limit"] = json!(v);
    }
    if let Some(v) = mem("memory-reservation", &f.memory_reservation)? {
        r["memory"]["reservation"] = json!(v);
    }
    if let Some(v) = mem("memory-swap", &f.memory_swap)? {
        r["memory"]["swap"] = json!(v);
    }
    if let Some(v) = f.cpu_share {
        r["cpu"]["shares"] = json!(v);
    }
    if let Some(v) = f.cpu_quota {
        r["cpu"]["quota"] = json!(v);
    }
    if let Some(v) = f.cpu_period {
        r["cpu"]["period"] = json!(v);
    }
    if let Some(v) = f.cpu_rt_runtime {
        r["cpu"]["realtimeRuntime"] = json!(v);
    }
    if let Some(v) = f.cpu_rt_period {
        r["cpu"]["realtimePeriod"] = json!(v);
    }
    if let Some(v) = f.cpuset_cpus.as_deref().filter(|s| !s.is_empty()) {
        r["cpu"]["cpus"] = json!(v);
    }
    if let Some(v) = f.cpuset_mems.as_deref().filter(|s| !s.is_empty()) {
        r["cpu"]["mems"] = json!(v);
    }
    if let Some(v) = f.blkio_weight {
        r["blockIO"]["weight"] = json!(v);
    }
    if let Some(v) = f.pids_limit {
        r["pids"]["limit"] = json!(v);
    }
    Ok(r)
}

/// Docker's units.RAMInBytes: "512", "16m", "1.5g", "64KiB", "2 GB"
/// (binary multiples, case-insensitive).
pub fn ram_in_bytes(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(format!("invalid size: '{s}'"));
    }
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut u = unit.as_str();
    u = u.strip_suffix('b').unwrap_or(u);
    u = u.strip_suffix('i').unwrap_or(u);
    let mult: f64 = match u {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    // "ib"/"i" alone (no prefix) is not a size.
    if u.is_empty() && !unit.is_empty() && unit != "b" {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok((n * mult) as i64)
}

/// A Go duration ("5s", "100ms", "1m30s", "1.5h") as `events --interval` takes.
pub fn parse_go_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::invalid(format!(
            "invalid value {s:?} for flag -interval: parse error"
        ))
    };
    let mut rest = s.trim();
    let neg = rest.starts_with('-');
    rest = rest.trim_start_matches(['+', '-']);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[u_end..];
    }
    if neg {
        // Negative durations parse in Go; events then refuses them as <= 0.
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_secs_f64(total))
}

/// One line of `events` output: the cgroup's figures (for a VM, the
/// VMM's and virtiofsd's), plus under "guest" the guest kernel's own for a
/// running VM.
pub fn stats_event(id: &str, cg: &Cgroup, guest: Option<Value>) -> Result<String> {
    let mut data = cg.stats()?;
    if let (Some(g), Some(obj)) = (guest, data.as_object_mut()) {
        obj.insert("guest".into(), g);
    }
    Ok(format!(
        r#"{{"type":"stats","id":{},"data":{}}}"#,
        json!(id),
        data
    ))
}

/// The guest's figures for a stats event; a VM that cannot answer gets the
/// error logged and no "guest" key.
fn guest_stats(dir: &Path, st: &State) -> Option<Value> {
    guest_query_of(dir, st, vessel_protocol::QUERY_STATS).unwrap_or_else(|e| {
        crate::logging::warn(&e.to_string());
        None
    })
}

/// runc's field order: type, id (no data).
fn oom_event(id: &str) -> String {
    format!(r#"{{"type":"oom","id":{}}}"#, json!(id))
}

/// `events`: one stats event (`--stats`), or a stream of stats every
/// `interval` plus an "oom" event whenever the OOM-kill counter grows,
/// until the container stops. Each event (one JSON line) goes to `emit`.
pub fn events(
    root: &Path,
    id: &str,
    stats_once: bool,
    interval: Duration,
    emit: &mut dyn FnMut(&str),
) -> Result<()> {
    if interval.is_zero() {
        return Err(Error::invalid("duration interval must be greater than 0"));
    }
    let (dir, st) = super::load(root, id)?;
    if st.live_status(&dir) == Status::Stopped {
        return Err(Error::WrongState(format!(
            "container with id {id} is not running"
        )));
    }
    let cg = cgroup_of(&st)?;
    if stats_once {
        emit(&stats_event(id, cg, guest_stats(&dir, &st))?);
        return Ok(());
    }
    let poll = interval.min(Duration::from_millis(100));
    let mut ooms = cg.oom_kills().unwrap_or(0);
    let mut next_stats = Instant::now() + interval;
    loop {
        std::thread::sleep(poll);
        let now_ooms = cg.oom_kills().unwrap_or(ooms);
        if now_ooms > ooms {
            emit(&oom_event(id));
        }
        ooms = ooms.max(now_ooms);
        if !st.init_alive() {
            return Ok(());
        }
        if Instant::now() >= next_stats {
            next_stats += interval;
            match stats_event(id, cg, guest_stats(&dir, &st)) {
                Ok(e) => emit(&e),
                Err(e) => crate::logging::error(&e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker_units() {
        assert_eq!(ram_in_bytes("512"), Ok(512));
        assert_eq!(ram_in_bytes("16m"), Ok(16 << 20));
        assert_eq!(ram_in_bytes("16M"), Ok(16 << 20));
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(ram_in_bytes("2 kb"), Ok(2048));
        assert_eq!(ram_in_bytes("1.5k"), Ok(1536));
        assert!(ram_in_bytes("12x").is_err());
        assert!(ram_in_bytes("m").is_err());
        assert!(ram_in_bytes("").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("abc").is_err());
    }

    #[test]
    fn flags_make_a_partial_resources_object() {
        let f = UpdateFlags {
            memory: Some("16m".into()),
            memory_swap: Some("-1".into()),
            pids_limit: Some(20),
            cpu_quota: Some(5000),
            ..Default::default()
        };
        let r = resources_from_flags(&f).unwrap();
        assert_eq!(r["memory"], json!({"limit": 16 << 20, "swap": -1}));
        assert_eq!(r["pids"]["limit"], 20);
        assert_eq!(r["cpu"], json!({"quota": 5000}));
        assert!(r.get("blockIO").is_none());
        let parsed: LinuxResources = serde_json::from_value(r).unwrap();
        assert_eq!(parsed.pids().unwrap().limit(), 20);
    }

    #[test]
    fn ps_table_keeps_header_and_container_pids() {
        let out = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep\nroot 43 1 other\n";
        let t = filter_ps_table(out, &[42]).unwrap();
        assert_eq!(t, "UID PID PPID CMD\nroot 42 1 sleep\n");
        assert!(filter_ps_table("A B\n1 2\n", &[1]).is_err());
    }
}
