//! `vessel compare`: container mode on this host (with the VM column's
//! refusal reason where the host cannot run VM mode), and both modes inside
//! the nested test VM when VESSEL_VM_TESTS=1.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn probe_bin() -> PathBuf {
    workspace_bin("vessel-probe")
}

/// Small workloads: the numbers are not the point here, the plumbing is.
const SMALL: &[&str] = &[
    "--stdout-mib",
    "4",
    "--io-mib",
    "4",
    "--syscalls",
    "20000",
    "--cpu-iters",
    "1000000",
    "--net-mib",
    "4",
    "--net-rtts",
    "200",
];

fn compare(rt: &Runtime, b: &Bundle, mode: &str) -> (Option<i32>, Value, String) {
    let probe = probe_bin();
    let mut args = vec![
        "compare",
        b.dir.to_str().unwrap(),
        "--mode",
        mode,
        "--runs",
        "1",
        "--format",
        "json",
        "--probe",
        probe.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    let work = scratch_dir();
    args.extend_from_slice(&["--work-dir", work.to_str().unwrap()]);
    let cmd = rt.cmd(&args);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("compare output is not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (out.status.code(), v, stderr)
}

fn number(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{ptr} is not a number in {v:#}"))
}

/// The container column: every cost metric has a positive median, the
/// probe saw the host's kernel (same boot id) and no other process, and
/// the escape probes ran.
fn check_container_column(report: &Value) {
    let c = &report["modes"]["container"];
    assert_eq!(c["status"], "ok", "{c:#}");
    for m in [
        "first_output_ms",
        "exit_ms",
        "peak_memory_mib",
        "getpid_ns",
        "read_ns",
        "file_write_mib_s",
        "file_read_mib_s",
        "cpu_ms",
        "stdout_mib_s",
        "net_rtt_us",
        "net_send_mib_s",
    ] {
        let med = number(c, &format!("/cost/{m}/median"));
        assert!(med > 0.0, "{m} median {med}");
    }
    assert!(c["net_error"].is_null(), "{:#}", c["net_error"]);
    check_net_record(c);
    assert!(number(c, "/cost/exit_ms/median") >= number(c, "/cost/first_output_ms/median"));
    let iso = &c["isolation"];
    assert_eq!(
        iso["boot_id"], report["host"]["boot_id"],
        "a container shares the host kernel"
    );
    assert_eq!(iso["same_kernel_as_host"], true);
    assert_eq!(iso["kernel_release"], report["host"]["kernel_release"]);
    assert_eq!(
        iso["other_processes"], 0,
        "pid namespace: the probe is alone"
    );
    assert!(iso["dev_count"].as_u64().unwrap() > 0);
    let esc = &c["escape"];
    for p in [
        "add_key",
        "perf_event_open",
        "raw_socket",
        "mount_tmpfs",
        "init_module",
    ] {
        assert!(esc[p].is_string(), "escape.{p} missing: {esc:#}");
    }
    // The default spec keeps CAP_SYS_ADMIN, CAP_NET_RAW and CAP_SYS_MODULE out.
    assert_ne!(esc["mount_tmpfs"], "ok");
    assert_ne!(esc["raw_socket"], "ok");
    assert_ne!(esc["init_module"], "ok");
    // compare's own pid on the host is not reachable from the container.
    assert_eq!(esc["host_pid"]["visible"], false, "{esc:#}");
}

/// Every run of `mode` had compare's own network: a namespace of its own,
/// the probe's TCP figures confirmed by the server on the host end.
fn check_net_record(mode: &Value) {
    for run in mode["runs"].as_array().unwrap() {
        let net = &run["net"];
        assert!(
            net["netns_path"]
                .as_str()
                .unwrap()
                .starts_with("/run/netns/vessel-compare-"),
            "{net:#}"
        );
        assert_eq!(net["server"]["ok"], true, "{net:#}");
        assert_eq!(net["server"]["bytes"], 4 << 20, "{net:#}");
        let p = &run["probe"]["cost"]["net"];
        assert_eq!(p["rtts"], 200, "{p:#}");
        assert!(
            p["target"].as_str().unwrap().starts_with(
                net["host_addr"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
            ),
            "the probe talked to the host end: {p:#} {net:#}"
        );
    }
}

/// The namespace names and veth host ends this compare process (its pid
/// is in the report) could have made, that still exist.
fn compare_network_left(
    entries_netns: &[String],
    entries_links: &[String],
    report: &Value,
) -> Vec<String> {
    let pid = report["host"]["pid"].as_u64().expect("host.pid");
    let ns_prefix = format!("vessel-compare-{pid}-");
    let link = format!("vcmp{pid}");
    entries_netns
        .iter()
        .filter(|n| n.starts_with(&ns_prefix))
        .chain(entries_links.iter().filter(|l| **l == link))
        .cloned()
        .collect()
}

fn dir_names(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// After compare: none of its namespaces or veths is left on this host.
fn assert_no_network_left(report: &Value) {
    let left = compare_network_left(
        &dir_names("/run/netns"),
        &dir_names("/sys/class/net"),
        report,
    );
    assert!(left.is_empty(), "compare left network behind: {left:?}");
    for mode in ["container", "vm"] {
        for run in report["modes"][mode]["runs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(p) = run["net"]["netns_path"].as_str() {
                assert!(!Path::new(p).exists(), "{p} is left");
            }
        }
    }
}

fn vm_impossible_here() -> Option<&'static str> {
    if Path::new("/sys/module/kvm_pvm").exists() {
        Some("kvm_pvm")
    } else if !Path::new("/dev/kvm").exists() {
        Some("/dev/kvm")
    } else {
        None
    }
}

#[test]
fn container_mode_report() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "echo not the probe"]);
    let before = std::fs::read(b.dir.join("config.json")).unwrap();
    let (code, report, stderr) = compare(&rt, &b, "container");
    assert_eq!(code, Some(0), "stderr: {stderr}");
    check_container_column(&report);
    assert_no_network_left(&report);
    assert_eq!(report["modes"]["vm"]["status"], "skipped");
    assert_eq!(report["runs"], 1);
    // The user's bundle is untouched: same config, no probe in its rootfs.
    assert_eq!(std::fs::read(b.dir.join("config.json")).unwrap(), before);
    assert!(!b.rootfs().join(".vessel-probe").exists());
}

#[test]
fn vm_column_says_why_the_host_refuses() {
    let Some(reason) = vm_impossible_here() else {
        return skip("this host has a usable /dev/kvm: VM mode is not refused here");
    };
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let (code, report, stderr) = compare(&rt, &b, "both");
    assert_eq!(
        code,
        Some(0),
        "a refused VM column does not fail --mode both: {stderr}"
    );
    check_container_column(&report);
    let vm = &report["modes"]["vm"];
    assert_eq!(vm["status"], "unavailable", "{vm:#}");
    let why = vm["error"].as_str().unwrap();
    assert!(why.contains(reason), "the VM column names {reason}: {why}");
    assert!(vm.get("cost").is_none());
    // The refused VM run had its network too; it is gone with the rest.
    assert_no_network_left(&report);

    // --mode vm alone: the same reason, and a failing exit.
    let (code, report, _) = compare(&rt, &b, "vm");
    assert_eq!(code, Some(1));
    assert_eq!(report["modes"]["vm"]["status"], "unavailable");
    assert_eq!(report["modes"]["container"]["status"], "skipped");
}

#[test]
fn table_output_for_a_person() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let probe = probe_bin();
    let mut args = vec![
        "compare",
        b.dir.to_str().unwrap(),
        "--mode",
        "container",
        "--runs",
        "2",
        "--probe",
        probe.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    let out = rt.ok(&args);
    for want in [
        "container",
        "create -> first output",
        "peak memory",
        "same kernel as host",
        "init_module",
        "TCP round trip to host",
        "TCP send to host, 4 MiB",
    ] {
        assert!(out.contains(want), "table lacks {want:?}:\n{out}");
    }
    // Medians with a spread: "N unit (min-max)".
    let line = out.lines().find(|l| l.contains("create -> exit")).unwrap();
    assert!(line.contains(" ms (") && line.contains('-'), "{line}");
    let line = out.lines().find(|l| l.contains("TCP round trip")).unwrap();
    assert!(line.contains(" µs ("), "{line}");
    assert!(
        !out.contains("(TCP rows,"),
        "the network worked here:\n{out}"
    );
}

/// Both modes inside the nested VM (real, emulated KVM): both columns are
/// filled and the guest answers with another kernel (boot id) than the
/// container, which shares the nested VM's own.
#[test]
fn both_modes_in_nested_vm() {
    if std::env::var("VESSEL_VM_TESTS").as_deref() != Ok("1") {
        return skip("VM mode needs VESSEL_VM_TESTS=1 (a nested VM with real KVM, minutes)");
    }
    let dir = scratch_dir().join(unique_id("compare-vm"));
    std::fs::create_dir_all(&dir).unwrap();
    let vessel = stripped(&runtime_bin(), &dir);
    let agent = stripped(&workspace_bin("vessel-agent"), &dir);
    let vmm = stripped(&workspace_bin("vessel-vmm"), &dir);
    let tool = stripped(&workspace_bin("vessel-compare"), &dir);
    let probe = stripped(&probe_bin(), &dir);
    let kernel = guest_kernel();
    let virtiofsd = virtiofsd();
    let b = Bundle::new(&["true"]);
    // compare's network and vessel's takeover of it drive iproute2: the
    // test VM's own ip is busybox's (no netns, no -j) and it has no tc.
    let real = |p: &str| {
        std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{p}: {e}: apt-get install iproute2"))
    };
    let (ip, tc) = (real("/usr/sbin/ip"), real("/usr/sbin/tc"));
    let script = dir.join("compare-in-vm.sh");
    std::fs::write(
        &script,
        format!(
            "export VESSEL_VM_KERNEL={VM_KERNEL} VESSEL_AGENT=/vessel/vessel-agent VESSEL_VIRTIOFSD=/vessel/virtiofsd\n\
             timeout -s KILL 420 /vessel/vessel compare /cmp-bundle --mode both --runs 1 --format json \
             --probe /vessel/vessel-probe {} --timeout 300 > /root/report.json\n\
             rc=$?\n\
             if [ $rc = 137 ] || [ $rc = 124 ]; then echo COMPARE-HUNG; ps -o pid,ppid,stat,args 2>/dev/null || ps; \
             for f in /run/vessel/*/console.log; do [ -f \"$f\" ] && tail -20 \"$f\"; done; fi\n\
             echo BEGIN-REPORT; cat /root/report.json; echo END-REPORT\n\
             echo BEGIN-NETNS; ls /run/netns 2>/dev/null; echo END-NETNS\n\
             echo BEGIN-LINKS; ls /sys/class/net; echo END-LINKS\nexit $rc\n",
            SMALL.join(" ")
        ),
    )
    .unwrap();
    let start = Instant::now();
    let boot = || {
        let mut files: Vec<(&Path, &str)> = vec![
            (&vessel, "/vessel/vessel"),
            (&agent, "/vessel/vessel-agent"),
            (&vmm, "/vessel/vessel-vmm"),
            (&tool, "/vessel/vessel-compare"),
            (&probe, "/vessel/vessel-probe"),
            (&virtiofsd, "/vessel/virtiofsd"),
            (&b.dir, "/cmp-bundle"),
            (&script, "/vessel/compare-in-vm.sh"),
            (&ip, "/usr/sbin/ip"),
            (&tc, "/usr/sbin/tc"),
        ];
        files.extend(kernel.files());
        let mut c = nested_vm(480, None, &files);
        for m in NET_MODULES {
            c.args(["--module", m]);
        }
        c.args(["--", "sh", "/vessel/compare-in-vm.sh"]);
        run_with_timeout(c, Duration::from_secs(540))
    };
    let mut out = boot();
    let first = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() && (first.contains("COMPARE-HUNG") || out.status.code() == Some(124)) {
        // Seen once in a CI-style run under load: the nested VM came up and
        // then nothing for the whole bound, its CPU idle. Keep what it said,
        // and run it once more, saying so.
        eprintln!(
            "RETRY: compare in the nested VM hung (exit {:?}); what it said:\n{first}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        skip("compare in the nested VM hung once (diagnostics on stderr); ran it again");
        out = boot();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("nested VM run took {:.1} s", start.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
    let body = stdout
        .split("BEGIN-REPORT")
        .nth(1)
        .and_then(|s| s.split("END-REPORT").next())
        .unwrap_or_else(|| {
            panic!(
                "no report from the nested VM:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let report: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        out.status.success(),
        "compare in the nested VM: exit {:?}\n{body}",
        out.status.code()
    );
    let (c, vm) = (&report["modes"]["container"], &report["modes"]["vm"]);
    // The medians, for whoever reads the test's output (one run each).
    for (key, m) in c["cost"].as_object().into_iter().flatten() {
        eprintln!(
            "nested compare: {key}: container {} / vm {} {}",
            m["median"], vm["cost"][key]["median"], m["unit"]
        );
    }
    assert_eq!(c["status"], "ok", "{c:#}");
    assert_eq!(vm["status"], "ok", "{vm:#}");
    for mode in [c, vm] {
        assert!(number(mode, "/cost/exit_ms/median") > 0.0);
        assert!(number(mode, "/cost/getpid_ns/median") > 0.0);
        assert!(mode["isolation"]["kernel_release"].is_string());
        // TCP to the host through the run's namespace: in VM mode through
        // virtio-net, the tap and tc redirect vessel put in front of eth0.
        assert!(mode["net_error"].is_null(), "{:#}", mode["net_error"]);
        assert!(number(mode, "/cost/net_rtt_us/median") > 0.0);
        assert!(number(mode, "/cost/net_send_mib_s/median") > 0.0);
        check_net_record(mode);
    }
    let section = |name: &str| -> Vec<String> {
        stdout
            .split(&format!("BEGIN-{name}"))
            .nth(1)
            .and_then(|s| s.split(&format!("END-{name}")).next())
            .unwrap_or_else(|| panic!("no {name} listing from the nested VM:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let left = compare_network_left(&section("NETNS"), &section("LINKS"), &report);
    assert!(
        left.is_empty(),
        "compare left network behind in the nested VM: {left:?}"
    );
    let (cb, vb) = (&c["isolation"]["boot_id"], &vm["isolation"]["boot_id"]);
    assert!(cb.is_string() && vb.is_string());
    assert_ne!(cb, vb, "the guest runs its own kernel");
    assert_eq!(
        cb, &report["host"]["boot_id"],
        "the container shares the (nested) host kernel"
    );
    assert_eq!(vm["isolation"]["same_kernel_as_host"], false);
}
