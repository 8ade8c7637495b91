//! Podman and containerd driving `vessel-vm`, in the nested test VM.
//!
//! `engines_drive_vessel_vm_in_nested_vm` boots `rootfs-tools/nested-vm.sh
//! --host-root` (the host's own `/` shared read-only into the test VM, so
//! its podman, conmon, netavark, containerd, ctr, iptables run there) and
//! runs `rootfs-tools/vm-clients-tests.sh`: each engine with `vessel`
//! (container mode, the reference) and `vessel-vm` (VM mode), a port-mapped
//! busybox httpd reached from the test VM, volumes both ways, exec and
//! terminals, pause/resume, update, top, stop of a TERM-trapping workload,
//! a rootfs file across stop/start. About 6-8 minutes under TCG; it runs
//! only with `VESSEL_VM_TESTS=1` and skips, saying why, on a host without
//! the engines or QEMU.

mod common;

use common::*;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// One boot of the test VM; the bound is only for a VM that froze.
const ATTEMPT_SECS: u64 = 660;
const ATTEMPT_LIMIT: u64 = 720;

/// What the host needs: the engines and the tools the script drives (they
/// run in the test VM from the host's own root), and QEMU for the VM.
const HOST_PROGRAMS: [&str; 12] = [
    "qemu-system-x86_64",
    "podman",
    "conmon",
    "/usr/lib/podman/netavark",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "iptables",
    "curl",
    "script",
    "ip",
    "jq",
];

/// The test VM's modules the network checks need before anything could
/// autoload them: a veth pair, the tap, tc's ingress, matchall and mirred.
const NET_MODULES: [&str; 5] = [
    "drivers/net/veth",
    "drivers/net/tun",
    "net/sched/sch_ingress",
    "net/sched/cls_matchall",
    "net/sched/act_mirred",
];

/// The test VM stopped running anything: QEMU TCG's emulated SVM stalled
/// (soft lockups on its console), or a timeout without a heartbeat of the
/// script among its last lines (see tests/vm.rs). Retried once.
fn l1_froze(out: &Output) -> bool {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: Vec<&str> = stdout.lines().rev().take(4).collect();
    let silent_timeout =
        out.status.code() == Some(124) && !last.iter().any(|l| l.contains("# heartbeat"));
    !out.status.success() && (stdout.contains("soft lockup") || silent_timeout)
}

#[test]
fn engines_drive_vessel_vm_in_nested_vm() {
    if std::env::var("VESSEL_VM_TESTS").as_deref() != Ok("1") {
        return skip("VM client tests need VESSEL_VM_TESTS=1 (a nested VM with real KVM)");
    }
    if !is_vessel() {
        return skip("vessel-only behaviour (VM mode)");
    }
    let missing = missing_programs(&HOST_PROGRAMS);
    if !missing.is_empty() {
        return skip(&format!(
            "the host lacks {} (the test VM runs the host's own engines; see .ci/run)",
            missing.join(", ")
        ));
    }
    let repo = repo_dir();
    let dir = scratch_dir().join(unique_id("vm-clients"));
    std::fs::create_dir_all(&dir).expect("create the scratch dir");
    let vessel = stripped(&runtime_bin(), &dir);
    let agent = stripped(&workspace_bin("vessel-agent"), &dir);
    let vmm = stripped(&workspace_bin("vessel-vmm"), &dir);
    let virtiofsd = virtiofsd();
    let kernel = guest_kernel();
    let image = dir.join("image");
    let st = std::process::Command::new(repo.join("tests/e2e/mkimage.sh"))
        .arg(&image)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run tests/e2e/mkimage.sh");
    assert!(st.success(), "tests/e2e/mkimage.sh failed");
    let script = repo.join("rootfs-tools/vm-clients-tests.sh");
    let boot = || {
        let mut files: Vec<(&Path, &str)> = vec![
            (&vessel, "/vessel/vessel"),
            (&agent, "/vessel/vessel-agent"),
            (&vmm, "/vessel/vessel-vmm"),
            (&virtiofsd, "/vessel/virtiofsd"),
            (&image, "/vessel/image"),
            (&script, "/vessel/vm-clients-tests.sh"),
        ];
        files.extend(kernel.files());
        let mut c = nested_vm_host_root(ATTEMPT_SECS, Some(2), 3072, &files);
        for m in NET_MODULES {
            c.args(["--module", m]);
        }
        c.args(["--", "bash /vessel/vm-clients-tests.sh"]);
        run_with_timeout(c, Duration::from_secs(ATTEMPT_LIMIT))
    };
    let start = Instant::now();
    let mut out = boot();
    if l1_froze(&out) {
        // The checks that ran, then the console's end (the stuck CPU's stack).
        let stdout = String::from_utf8_lossy(&out.stdout);
        let results: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("ok - ") || l.starts_with("FAIL - "))
            .collect();
        let tail: Vec<&str> = stdout.lines().rev().take(60).collect();
        eprintln!(
            "RETRY: the outer test VM froze (soft lockups, or silent until its bound; exit {:?}); \
             its checks so far:\n{}\nits console ended:\n{}",
            out.status.code(),
            results.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        skip("the first nested VM run froze under TCG (soft lockups or silence); ran it again");
        out = boot();
    } else if only_guest_crashes(&out) {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let fails: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("FAIL - "))
            .collect();
        eprintln!(
            "RETRY: every failed check was a guest crashing by itself:\n{}",
            fails.join("\n")
        );
        skip("a nested VM run's only failures were guests that crashed on their own (TCG); ran it again");
        out = boot();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("nested VM run took {:.1} s", start.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
    let fails: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL - "))
        .collect();
    assert!(fails.is_empty(), "failed checks:\n{}", fails.join("\n"));
    assert!(
        stdout.contains("vm-clients-tests: all checks passed"),
        "the client checks did not finish (exit {:?})",
        out.status.code()
    );
    assert!(
        out.status.success(),
        "nested-vm.sh exit {:?}",
        out.status.code()
    );
}
