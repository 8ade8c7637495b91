//! runc's `events --stats` "data" object (runc's types/events.go): cpu,
//! memory, pids, blkio, hugetlb, read from whichever directory each
//! controller lives in. Times are nanoseconds, sizes bytes, "max" is
//! u64::MAX for memory limits and 0 for the pids limit (runc's choices).

use super::fsio::{self, keyed, read_flat_keyed, read_u64};
use super::{Cgroup, CgroupError, Target};
use serde_json::{json, Map, Value};
use std::path::Path;

pub fn collect(cg: &Cgroup) -> Result<Value, CgroupError> {
    let mut data = Map::new();
    data.insert("cpu".into(), cpu(cg));
    if let Some(m) = cg.target("memory").map(memory) {
        data.insert("memory".into(), m);
    }
    if let Some(t) = cg.target("pids") {
        let (Target::V1(d) | Target::V2(d)) = t;
        let limit = read_u64(&d.join("pids.max")).filter(|v| *v != u64::MAX);
        data.insert(
            "pids".into(),
            json!({
                "current": read_u64(&d.join("pids.current")).unwrap_or(0),
                "limit": limit.unwrap_or(0),
            }),
        );
    }
    let io = if cg.layout == super::Layout::V2 {
        "io"
    } else {
        "blkio"
    };
    if let Some(t) = cg.target(io) {
        data.insert("blkio".into(), blkio(t));
    }
    if let Some(t) = cg.target("hugetlb") {
        data.insert("hugetlb".into(), hugetlb(t));
    }
    Ok(Value::Object(data))
}

fn cpu(cg: &Cgroup) -> Value {
    let mut usage = json!({"total": 0, "kernel": 0, "user": 0});
    let mut throttling = json!({"periods": 0, "throttledPeriods": 0, "throttledTime": 0});
    match cg.target("cpuacct") {
        Some(Target::V1(d)) => {
            usage["total"] = json!(read_u64(&d.join("cpuacct.usage")).unwrap_or(0));
            let percpu: Vec<u64> = fsio::read_opt(&d.join("cpuacct.usage_percpu"))
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if !percpu.is_empty() {
                usage["percpu"] = json!(percpu);
            }
            // cpuacct.stat counts USER_HZ ticks.
            let tick_ns = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .filter(|t| *t > 0)
                .map_or(10_000_000, |hz| 1_000_000_000 / hz as u64);
            let stat = d.join("cpuacct.stat");
            usage["user"] = json!(keyed(&stat, "user").unwrap_or(0) * tick_ns);
            usage["kernel"] = json!(keyed(&stat, "system").unwrap_or(0) * tick_ns);
        }
        Some(Target::V2(d)) => {
            let stat = d.join("cpu.stat");
            usage["total"] = json!(keyed(&stat, "usage_usec").unwrap_or(0) * 1000);
            usage["user"] = json!(keyed(&stat, "user_usec").unwrap_or(0) * 1000);
            usage["kernel"] = json!(keyed(&stat, "system_usec").unwrap_or(0) * 1000);
        }
        None => {}
    }
    match cg.target("cpu") {
        Some(Target::V1(d)) => {
            let stat = d.join("cpu.stat");
            throttling["periods"] = json!(keyed(&stat, "nr_periods").unwrap_or(0));
            throttling["throttledPeriods"] = json!(keyed(&stat, "nr_throttled").unwrap_or(0));
            throttling["throttledTime"] = json!(keyed(&stat, "throttled_time").unwrap_or(0));
        }
        Some(Target::V2(d)) => {
            let stat = d.join("cpu.stat");
            throttling["periods"] = json!(keyed(&stat, "nr_periods").unwrap_or(0));
            throttling["throttledPeriods"] = json!(keyed(&stat, "nr_throttled").unwrap_or(0));
            throttling["throttledTime"] = json!(keyed(&stat, "throttled_usec").unwrap_or(0) * 1000);
        }
        None => {}
    }
    json!({"usage": usage, "throttling": throttling})
}

fn entry(d: &Path, prefix: &str) -> Value {
    let f = |name: &str| read_u64(&d.join(format!("{prefix}.{name}"))).unwrap_or(0);
    json!({
        "limit": f("limit_in_bytes"),
        "usage": f("usage_in_bytes"),
        "max": f("max_usage_in_bytes"),
        "failcnt": f("failcnt"),
    })
}

fn memory(t: Target<'_>) -> Value {
    match t {
        Target::V1(d) => {
            let raw: Map<String, Value> = read_flat_keyed(&d.join("memory.stat"))
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
            json!({
                "cache": raw.get("cache").cloned().unwrap_or(json!(0)),
                "usage": entry(d, "memory"),
                "swap": entry(d, "memory.memsw"),
                "kernel": entry(d, "memory.kmem"),
                "kernelTCP": entry(d, "memory.kmem.tcp"),
                "raw": raw,
            })
        }
        Target::V2(d) => {
            let raw: Map<String, Value> = read_flat_keyed(&d.join("memory.stat"))
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
            let usage = read_u64(&d.join("memory.current")).unwrap_or(0);
            let limit = read_u64(&d.join("memory.max")).unwrap_or(u64::MAX);
            let swap_only = read_u64(&d.join("memory.swap.current")).unwrap_or(0);
            let swap_limit = read_u64(&d.join("memory.swap.max")).unwrap_or(u64::MAX);
            // runc reports v2 swap like v1's memsw: memory plus swap.
            let swap_total_limit = if swap_limit == u64::MAX || limit == u64::MAX {
                u64::MAX
            } else {
                swap_limit.saturating_add(limit)
            };
            json!({
                "cache": raw.get("file").cloned().unwrap_or(json!(0)),
                "usage": {
                    "limit": limit,
                    "usage": usage,
                    "max": read_u64(&d.join("memory.peak")).unwrap_or(0),
                    "failcnt": keyed(&d.join("memory.events"), "max").unwrap_or(0),
                },
                "swap": {
                    "limit": swap_total_limit,
                    "usage": usage.saturating_add(swap_only),
                    "max": 0,
                    "failcnt": keyed(&d.join("memory.swap.events"), "max").unwrap_or(0),
                },
                "kernel": {"limit": 0, "usage": 0, "max": 0, "failcnt": 0},
                "kernelTCP": {"limit": 0, "usage": 0, "max": 0, "failcnt": 0},
                "raw": raw,
            })
        }
    }
}

/// "8:0 Read 4096" lines (v1 blkio.*_recursive files); "Total" lines skipped.
fn blkio_v1_entries(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (dev, op, value) = (it.next()?, it.next()?, it.next()?);
            let (maj, min) = dev.split_once(':')?;
            Some(json!({
                "major": maj.parse::<u64>().ok()?,
                "minor": min.parse::<u64>().ok()?,
                "op": op,
                "value": value.parse::<u64>().ok()?,
            }))
        })
        .collect()
}

fn blkio(t: Target<'_>) -> Value {
    match t {
        Target::V1(d) => {
            // CFQ's files when present, else BFQ's, else the throttle
            // layer's (runc's order of preference).
            let pick = |name: &str| {
                ["blkio.", "blkio.bfq.", "blkio.throttle."]
                    .iter()
                    .find_map(|p| fsio::read_opt(&d.join(format!("{p}{name}"))))
                    .map(|t| blkio_v1_entries(&t))
                    .unwrap_or_default()
            };
            json!({
                "ioServiceBytesRecursive": pick("io_service_bytes_recursive"),
                "ioServicedRecursive": pick("io_serviced_recursive"),
            })
        }
        Target::V2(d) => {
            let (bytes, ios) =
                io_stat_entries(&fsio::read_opt(&d.join("io.stat")).unwrap_or_default());
            json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios})
        }
    }
}

/// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
fn io_stat_entries(text: &str) -> (Vec<Value>, Vec<Value>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(json!({"major": maj, "minor": min, "op": op, "value": v}));
        }
    }
    (bytes, ios)
}

fn hugetlb(t: Target<'_>) -> Value {
    let (Target::V1(d) | Target::V2(d)) = t;
    let v2 = matches!(t, Target::V2(_));
    let mut sizes: Vec<String> = std::fs::read_dir(d)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let rest = name.strip_prefix("hugetlb.")?;
                    let (size, _) = rest.split_once('.')?;
                    Some(size.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes.dedup();
    let mut out = Map::new();
    for size in sizes {
        let file = |n: &str| d.join(format!("hugetlb.{size}.{n}"));
        let v = if v2 {
            json!({
                "usage": read_u64(&file("current")).unwrap_or(0),
                "max": 0,
                "failcnt": keyed(&file("events"), "max").unwrap_or(0),
            })
        } else {
            json!({
                "usage": read_u64(&file("usage_in_bytes")).unwrap_or(0),
                "max": read_u64(&file("max_usage_in_bytes")).unwrap_or(0),
                "failcnt": read_u64(&file("failcnt")).unwrap_or(0),
            })
        };
        out.insert(size, v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines_parse() {
        let e = blkio_v1_entries("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            json!({"major": 8, "minor": 0, "op": "Read", "value": 4096})
        );
        let (b, i) = io_stat_entries("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(b.len(), 2);
        assert_eq!(
            i[1],
            json!({"major": 259, "minor": 0, "op": "Write", "value": 2})
        );
    }
}
