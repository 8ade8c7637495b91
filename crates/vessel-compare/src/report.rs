//! The table for a person: one row per measure, one column per mode,
//! medians with the spread (min–max) over the runs.

use super::run::COST_METRICS;
use serde_json::Value;

const LABEL_W: usize = 32;
const COL_W: usize = 34;

const COST_LABELS: &[(&str, &str)] = &[
    ("first_output_ms", "create -> first output"),
    ("exit_ms", "create -> exit"),
    ("peak_memory_mib", "peak memory (cgroup)"),
    ("getpid_ns", "getpid() syscall"),
    ("read_ns", "read(1 byte) syscall"),
    ("file_write_mib_s", "file write + fsync"),
    ("file_read_mib_s", "file read back"),
    ("cpu_ms", "CPU-bound loop"),
    ("stdout_mib_s", "bulk stdout, checked"),
    ("net_rtt_us", "TCP round trip to host"),
    ("net_send_mib_s", "TCP send to host"),
];

/// The columns, in order.
const MODES: [&str; 2] = ["container", "vm"];

/// The isolation rows: label, key in the mode's "isolation" object, format.
const ISOLATION_ROWS: &[(&str, &str, Fmt)] = &[
    ("kernel (uname -r)", "kernel_release", Fmt::Text),
    ("kernel build (uname -v)", "kernel_version", Fmt::Text),
    (
        "same kernel as host (boot id)",
        "same_kernel_as_host",
        Fmt::YesNo,
    ),
    ("cpu model", "cpu_model", Fmt::Text),
    ("cpus in /proc/cpuinfo", "cpuinfo_count", Fmt::Text),
    ("MemTotal", "mem_total_kib", Fmt::Kib),
    ("other processes visible", "other_processes", Fmt::Text),
    ("pid 1", "pid1_comm", Fmt::Text),
    ("/proc/modules lines", "modules", Fmt::Text),
    ("dmesg (syslog read)", "dmesg", Fmt::Text),
    ("/dev entries", "dev_count", Fmt::Text),
    ("/sys/block", "sys_block", Fmt::List),
    ("/sys/class/net", "sys_net", Fmt::List),
    ("DMI product name", "dmi_product", Fmt::Text),
    ("effective capabilities", "cap_eff", Fmt::Text),
    ("seccomp mode", "seccomp", Fmt::Text),
    ("root filesystem", "root_fs", Fmt::Text),
];

/// The escape probe rows: label, JSON pointer into the mode's report.
const ESCAPE_ROWS: &[(&str, &str)] = &[
    ("add_key (kernel keyring)", "/escape/add_key"),
    ("perf_event_open", "/escape/perf_event_open"),
    ("raw socket", "/escape/raw_socket"),
    ("ptrace pid 1 (from a child)", "/escape/ptrace_pid1"),
    ("ptrace a host pid", "/escape/host_pid/ptrace"),
    ("kill -0 a host pid", "/escape/host_pid/kill0"),
    ("mount tmpfs", "/escape/mount_tmpfs"),
    ("init_module", "/escape/init_module"),
    ("unshare user namespace", "/escape/unshare_userns"),
    ("open /dev/mem", "/escape/open_dev_mem"),
    ("open /dev/kmsg", "/escape/open_dev_kmsg"),
];

pub fn render_table(report: &Value) -> String {
    let mut s = header(report);
    s.push_str(&row("", &["container".into(), "vm".into()]));
    s.push_str(&row("", &["-".repeat(COL_W - 2), "-".repeat(COL_W - 2)]));
    s.push_str(&mode_failures(report));
    s.push_str("cost\n");
    s.push_str(&cost_rows(report));
    s.push_str(&net_notes(report));
    s.push_str("isolation\n");
    s.push_str(&isolation_rows(report));
    s.push_str("escape probes (ok = the kernel allowed it)\n");
    s.push_str(&escape_rows(report));
    s.push_str(
        "\ninit_module: EPERM = refused; ENOEXEC = the module loader was reached (the probe \
         offers an empty image, nothing loads).\n",
    );
    s
}

fn mode<'a>(report: &'a Value, name: &str) -> &'a Value {
    &report["modes"][name]
}

/// What was measured where: bundle, runs, and the host.
fn header(report: &Value) -> String {
    let mut s = format!(
        "vessel compare: {} ({} run(s) per mode; median, min-max)\n",
        report["bundle"].as_str().unwrap_or("?"),
        report["runs"]
    );
    s.push_str(&format!(
        "host: {} {}, {} CPU(s), boot id {}\n\n",
        text(&report["host"]["kernel_release"]),
        text(&report["host"]["cpu_model"]),
        report["host"]["cpus"],
        text(&report["host"]["boot_id"])
    ));
    s
}

/// One line per mode that did not run: its status and why.
fn mode_failures(report: &Value) -> String {
    let mut s = String::new();
    for name in MODES {
        let st = mode(report, name)["status"].as_str().unwrap_or("?");
        if st != "ok" {
            let why = text(&mode(report, name)["error"]);
            let why = why.strip_prefix("vm: ").unwrap_or(&why);
            s.push_str(&format!("{name}: {st}: {why}\n"));
        }
    }
    s
}

fn cost_rows(report: &Value) -> String {
    let mut s = String::new();
    for (key, unit, _) in COST_METRICS {
        let label = cost_label(report, key);
        let cells: Vec<String> = MODES
            .iter()
            .map(|n| summary_cell(&mode(report, n)["cost"][*key], unit))
            .collect();
        s.push_str(&row(&format!("  {label}"), &cells));
    }
    s
}

/// A cost metric's label, with the I/O size or loop count it was measured with.
fn cost_label(report: &Value, key: &str) -> String {
    let label = COST_LABELS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, l)| *l)
        .unwrap_or(key);
    match key {
        "file_write_mib_s" | "file_read_mib_s" => {
            format!("{label} ({} MiB)", report["params"]["io_mib"])
        }
        "stdout_mib_s" => format!("{label} ({} MiB)", report["params"]["stdout_mib"]),
        "net_send_mib_s" => format!("{label}, {} MiB", report["params"]["net_mib"]),
        "cpu_ms" => format!(
            "{label} ({} M iters)",
            report["params"]["cpu_iters"].as_u64().unwrap_or(0) / 1_000_000
        ),
        _ => label.to_string(),
    }
}

/// Under the cost rows: why a mode that ran has no (or fewer) TCP figures.
fn net_notes(report: &Value) -> String {
    let mut s = String::new();
    for name in MODES {
        let m = mode(report, name);
        if let (Some("ok"), Some(why)) = (m["status"].as_str(), m["net_error"].as_str()) {
            s.push_str(&format!("  (TCP rows, {name}: {why})\n"));
        }
    }
    s
}

fn isolation_rows(report: &Value) -> String {
    let mut s = String::new();
    for (label, key, fmt) in ISOLATION_ROWS {
        let cells: Vec<String> = MODES
            .iter()
            .map(|n| match mode(report, n).get("isolation") {
                Some(i) => fmt.show(&i[*key]),
                None => "-".into(),
            })
            .collect();
        s.push_str(&row(&format!("  {label}"), &cells));
    }
    s
}

fn escape_rows(report: &Value) -> String {
    let mut s = String::new();
    for (label, ptr) in ESCAPE_ROWS {
        let cells: Vec<String> = MODES
            .iter()
            .map(|n| {
                let m = mode(report, n);
                match m.get("escape") {
                    Some(_) => text(m.pointer(ptr).unwrap_or(&Value::Null)),
                    None => "-".into(),
                }
            })
            .collect();
        s.push_str(&row(&format!("  {label}"), &cells));
    }
    s
}

fn row(label: &str, cells: &[String]) -> String {
    let mut line = format!("{label:<LABEL_W$}");
    for c in cells {
        line.push_str(&format!("{:<COL_W$}", clip(c, COL_W - 2)));
    }
    line.truncate(line.trim_end().len());
    line.push('\n');
    line
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

/// How an isolation value is shown.
enum Fmt {
    Text,
    YesNo,
    Kib,
    List,
}

impl Fmt {
    fn show(&self, v: &Value) -> String {
        match self {
            Fmt::Text => text(v),
            Fmt::YesNo => yes_no(v),
            Fmt::Kib => kib(v),
            Fmt::List => list(v),
        }
    }
}

fn summary_cell(v: &Value, unit: &str) -> String {
    let (Some(med), Some(min), Some(max)) =
        (v["median"].as_f64(), v["min"].as_f64(), v["max"].as_f64())
    else {
        return "-".into();
    };
    format!("{} {unit} ({}-{})", num(med), num(min), num(max))
}

/// Three significant digits, no exponent.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn yes_no(v: &Value) -> String {
    match v.as_bool() {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

fn kib(v: &Value) -> String {
    v.as_f64()
        .map(|k| format!("{} MiB", num(k / 1024.0)))
        .unwrap_or_else(|| "-".into())
}

fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if a.is_empty() => "(none)".into(),
        Some(a) => a.iter().map(text).collect::<Vec<_>>().join(" "),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_shows_medians_spread_and_the_vm_reason() {
        let r = json!({
            "bundle": "/b", "runs": 3, "params": {"io_mib": 8, "cpu_iters": 2000000},
            "host": {"kernel_release": "6.1", "cpu_model": "X", "cpus": 2, "boot_id": "h"},
            "modes": {
                "container": {"status": "ok",
                    "cost": {"exit_ms": {"median": 12.5, "min": 11.0, "max": 140.0}},
                    "isolation": {"kernel_release": "6.1", "same_kernel_as_host": true},
                    "escape": {"raw_socket": "EPERM"}},
                "vm": {"status": "unavailable", "error": "VM mode needs hardware-assisted KVM"}
            }
        });
        let t = render_table(&r);
        assert!(t.contains("12.5 ms (11.0-140)"), "{t}");
        assert!(
            t.contains("vm: unavailable: VM mode needs hardware-assisted KVM"),
            "{t}"
        );
        assert!(t.contains("EPERM"), "{t}");
        let same = t
            .lines()
            .find(|l| l.contains("same kernel as host"))
            .unwrap();
        assert!(same.contains("yes"), "{same}");
    }

    #[test]
    fn tcp_rows_and_the_reason_they_are_empty() {
        let r = json!({
            "bundle": "/b", "runs": 1, "params": {"net_mib": 16, "net_rtts": 1000},
            "host": {},
            "modes": {
                "container": {"status": "ok", "net_error": null,
                    "cost": {"net_rtt_us": {"median": 41.5, "min": 40.0, "max": 43.0},
                             "net_send_mib_s": {"median": 900.0, "min": 850.0, "max": 950.0}}},
                "vm": {"status": "ok", "net_error": "network setup failed: ip netns add x: EPERM",
                    "cost": {"net_rtt_us": null, "net_send_mib_s": null}}
            }
        });
        let t = render_table(&r);
        let rtt = t
            .lines()
            .find(|l| l.contains("TCP round trip to host"))
            .unwrap();
        assert!(rtt.contains("41.5 µs (40.0-43.0)"), "{t}");
        let send = t
            .lines()
            .find(|l| l.contains("TCP send to host, 16 MiB"))
            .unwrap();
        assert!(send.contains("900 MiB/s (850-950)"), "{t}");
        assert!(
            t.contains("(TCP rows, vm: network setup failed: ip netns add x: EPERM)"),
            "{t}"
        );
        assert!(!t.contains("TCP rows, container"), "{t}");
    }
}
