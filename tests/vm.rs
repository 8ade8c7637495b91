//! VM-mode tests.
//!
//! `vm_mode_in_nested_vm` boots a nested VM with real (emulated) KVM through
//! rootfs-tools/nested-vm.sh and runs rootfs-tools/vm-tests.sh inside it
//! (about 1-2 minutes); it runs only with `VESSEL_VM_TESTS=1`.
//! `vm_create_refused_on_kvm_pvm_host` runs on a kvm_pvm host directly.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn skip(why: &str) {
    eprintln!("SKIPPED: {why}");
}

/// A stripped copy of a binary (debug info is most of a debug build, and
/// every byte is copied into the nested VM and the guest's initramfs).
fn stripped(bin: &Path, dir: &Path) -> PathBuf {
    let dest = dir.join(bin.file_name().unwrap());
    let st = Command::new("strip").arg("-o").arg(&dest).arg(bin).status();
    if !matches!(st, Ok(s) if s.success()) {
        std::fs::copy(bin, &dest).expect("copy binary");
    }
    dest
}

#[test]
fn vm_mode_in_nested_vm() {
    if std::env::var("VESSEL_VM_TESTS").as_deref() != Ok("1") {
        return skip("VM tests need VESSEL_VM_TESTS=1 (a nested VM with real KVM)");
    }
    let repo = repo_dir();
    let dir = scratch_dir().join(unique_id("vm-tests"));
    std::fs::create_dir_all(&dir).unwrap();
    let vessel = stripped(&runtime_bin(), &dir);
    let agent = stripped(Path::new(env!("CARGO_BIN_EXE_vessel-agent")), &dir);
    let kernel = match std::env::var_os("VESSEL_VM_KERNEL") {
        Some(k) => PathBuf::from(k),
        None => {
            let k = PathBuf::from("/var/lib/vessel/kernel/vmlinux");
            let st = Command::new(repo.join("rootfs-tools/guest-kernel.sh"))
                .arg(&k)
                .status()
                .expect("run guest-kernel.sh");
            assert!(st.success(), "rootfs-tools/guest-kernel.sh failed");
            k
        }
    };
    let file = |src: &Path, dest: &str| format!("{}:{dest}", src.display());
    let start = Instant::now();
    let out = run_with_timeout(
        {
            let mut c = Command::new(repo.join("rootfs-tools/nested-vm.sh"));
            c.args(["--timeout", "1200", "--mem", "2048", "--cpus", "2"])
                .arg("--file")
                .arg(file(&vessel, "/vessel/vessel"))
                .arg("--file")
                .arg(file(&agent, "/vessel/vessel-agent"))
                .arg("--file")
                .arg(file(&kernel, "/var/lib/vessel/kernel/vmlinux"))
                .arg("--file")
                .arg(file(
                    &repo.join("rootfs-tools/vm-tests.sh"),
                    "/vessel/vm-tests.sh",
                ))
                .args(["--", "sh", "/vessel/vm-tests.sh"]);
            c
        },
        Duration::from_secs(1300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("nested VM run took {:.1} s", start.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        stdout.contains("vm-tests: all checks passed"),
        "VM tests failed (exit {:?})",
        out.status.code()
    );
    assert!(!stdout.contains("FAIL - "));
    assert!(
        out.status.success(),
        "nested-vm.sh exit {:?}",
        out.status.code()
    );
}

/// On a kvm_pvm host, `create` of a VM-mode bundle must fail at once with
/// the kvm_pvm message and leave no state, cgroup or process behind.
/// Depends on the integrator's `create` calling `vm::requested` and
/// `vm::check_host` before any side effect.
#[test]
fn vm_create_refused_on_kvm_pvm_host() {
    if !is_vessel() {
        return skip("vessel-only behaviour (VM mode)");
    }
    if !Path::new("/sys/module/kvm_pvm").exists() {
        return skip("this host has no kvm_pvm; the refusal is checked where kvm_pvm is loaded");
    }
    let rt = Runtime::new();
    if rt.run(&["state", "no-such-container"]).status.success() {
        return skip("vessel's CLI (state/create) is not implemented in this build yet");
    }
    let mut b = Bundle::new(&["true"]);
    b.spec["annotations"] = serde_json::json!({"vessel.sandbox": "vm"});
    b.write();
    let id = unique_id("vmpvm");
    let start = Instant::now();
    let out = rt.run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "create of a VM bundle succeeded on a kvm_pvm host"
    );
    assert!(
        stderr.contains("kvm_pvm"),
        "stderr does not name kvm_pvm: {stderr}"
    );
    assert!(took < Duration::from_secs(5), "refusal took {took:?}");
    assert!(!rt.root.join(&id).exists(), "state dir left behind");
    assert!(
        !rt.run(&["state", &id]).status.success(),
        "state still knows {id}"
    );
    let leftover = Command::new("find")
        .args(["/sys/fs/cgroup", "-maxdepth", "4", "-name", &id])
        .output()
        .expect("find cgroups");
    assert!(
        String::from_utf8_lossy(&leftover.stdout).trim().is_empty(),
        "cgroup left behind"
    );
}
