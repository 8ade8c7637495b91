//! Helpers for tests that boot the nested test VM
//! (`rootfs-tools/nested-vm.sh`) or the guest: its command, the workspace's
//! other binaries, stripped copies to put in, and the guest kernel with its
//! modules.

use super::repo_dir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A binary of another crate of the workspace (vessel-agent, vessel-vmm,
/// vessel-compare, vessel-probe), which cargo builds next to `vessel` but
/// does not build for this package's tests: the first call runs `cargo
/// build --workspace --bins` (a no-op when they are up to date) so a test
/// never runs a stale agent or VMM.
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| cargo_build(&["--workspace", "--bins"]));
    if let Err(e) = built {
        panic!("{name} is not built and building it failed ({e}): run `cargo build --workspace --bins`");
    }
    let bin = profile_dir().join(name);
    assert!(
        bin.is_file(),
        "{} is missing after cargo build --workspace --bins",
        bin.display()
    );
    bin
}

/// The target directory of the profile the tests were built with (where
/// cargo put `vessel`).
pub fn profile_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vessel"))
        .parent()
        .expect("vessel has a directory")
        .to_path_buf()
}

/// `cargo build --quiet ARGS` in the repo, `--release` when the tests are a
/// release build, so what it builds lands in `profile_dir()`.
pub fn cargo_build(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(args)
        .arg("--quiet")
        .current_dir(repo_dir());
    if profile_dir().file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("cargo build {}: {other:?}", args.join(" "))),
    }
}

/// `rootfs-tools/nested-vm.sh` for a 2 GiB test VM (with `cpus` CPUs, else
/// its default) bounded at `timeout_secs`, with each (host path, path in
/// the VM) copied in. The caller adds any other option, `--` and the command.
pub fn nested_vm(timeout_secs: u64, cpus: Option<u32>, files: &[(&Path, &str)]) -> Command {
    let mut c = Command::new(repo_dir().join("rootfs-tools/nested-vm.sh"));
    c.args(["--timeout", &timeout_secs.to_string(), "--mem", "2048"]);
    if let Some(n) = cpus {
        c.args(["--cpus", &n.to_string()]);
    }
    for (src, dest) in files {
        c.arg("--file").arg(format!("{}:{dest}", src.display()));
    }
    c
}

/// The outer test VM's modules VM-mode networking needs (vm-net-tests.sh,
/// compare's network rows): a veth pair, the tap, and tc's ingress qdisc,
/// matchall filter and mirred action.
pub const NET_MODULES: [&str; 5] = [
    "drivers/net/veth",
    "drivers/net/tun",
    "net/sched/sch_ingress",
    "net/sched/cls_matchall",
    "net/sched/act_mirred",
];

/// A stripped copy of `bin` at `dest` (debug info is most of a debug build,
/// and every byte goes into a nested VM's RAM disk); a plain copy when
/// `strip` is missing.
pub fn strip_copy(bin: &Path, dest: &Path) {
    let st = Command::new("strip").arg("-o").arg(dest).arg(bin).status();
    if !matches!(st, Ok(s) if s.success()) {
        fs::copy(bin, dest).unwrap_or_else(|e| panic!("copy {}: {e}", bin.display()));
    }
}

/// `strip_copy` into `dir`, under the binary's own name.
pub fn stripped(bin: &Path, dir: &Path) -> PathBuf {
    let dest = dir.join(bin.file_name().expect("a binary has a file name"));
    strip_copy(bin, &dest);
    dest
}

/// Where the nested test VM keeps the guest kernel (vessel's default) and
/// its modules.
pub const VM_KERNEL: &str = "/var/lib/vessel/kernel/vmlinux";
pub const VM_KERNEL_MODULES: &str = "/var/lib/vessel/kernel/vmlinux.modules";

/// The guest kernel for VM tests and its modules directory, when it has one.
pub struct GuestKernel {
    pub kernel: PathBuf,
    pub modules: Option<PathBuf>,
}

impl GuestKernel {
    /// The kernel and its modules as `nested_vm` files, at vessel's default
    /// paths in the VM (the launcher looks for `<kernel>.modules/`).
    pub fn files(&self) -> Vec<(&Path, &'static str)> {
        let mut v = vec![(self.kernel.as_path(), VM_KERNEL)];
        if let Some(m) = &self.modules {
            v.push((m.as_path(), VM_KERNEL_MODULES));
        }
        v
    }
}

/// virtiofsd, which VM mode runs for every VM: found as vessel finds it,
/// installed by rootfs-tools/virtiofsd.sh (a cargo build, about a minute)
/// when missing.
pub fn virtiofsd() -> PathBuf {
    if let Ok(p) = libvessel::vm::virtiofs::find_virtiofsd() {
        return p;
    }
    let st = Command::new(repo_dir().join("rootfs-tools/virtiofsd.sh"))
        .status()
        .expect("run virtiofsd.sh");
    assert!(st.success(), "rootfs-tools/virtiofsd.sh failed");
    libvessel::vm::virtiofs::find_virtiofsd().unwrap_or_else(|e| panic!("{e}"))
}

/// The guest kernel for VM tests: $VESSEL_VM_KERNEL or vessel's default
/// path. rootfs-tools/guest-kernel.sh installs one that is missing, and
/// checks vessel's default kernel has its modules from the same package
/// (it reinstalls both otherwise; a quick no-op when they do). A kernel
/// named by $VESSEL_VM_KERNEL may have virtio built in and no modules.
pub fn guest_kernel() -> GuestKernel {
    let custom = std::env::var_os("VESSEL_VM_KERNEL").map(PathBuf::from);
    let is_default = custom.is_none();
    let kernel = custom.unwrap_or_else(|| PathBuf::from(VM_KERNEL));
    if !kernel.is_file() || is_default {
        let st = Command::new(repo_dir().join("rootfs-tools/guest-kernel.sh"))
            .arg(&kernel)
            .status()
            .expect("run guest-kernel.sh");
        assert!(st.success(), "rootfs-tools/guest-kernel.sh failed");
    }
    let mut modules = kernel.clone().into_os_string();
    modules.push(".modules");
    let modules = PathBuf::from(modules);
    GuestKernel {
        modules: modules.is_dir().then_some(modules),
        kernel,
    }
}

/// `nested_vm` with `--host-root`: the command runs in this host's own `/`
/// (shared read-only over virtio-fs, under an overlay in the VM's RAM), so
/// the host's installed podman, containerd and iptables run in the VM too;
/// `mem_mib` replaces the 2 GiB default. virtiofsd for the share is the one
/// VM mode uses (`virtiofsd()`).
pub fn nested_vm_host_root(
    timeout_secs: u64,
    cpus: Option<u32>,
    mem_mib: u32,
    files: &[(&Path, &str)],
) -> Command {
    let mut c = nested_vm(timeout_secs, cpus, files);
    c.args(["--mem", &mem_mib.to_string(), "--host-root"]);
    c.env("VESSEL_VIRTIOFSD", virtiofsd());
    c
}

/// The programs of `names` found neither on `$PATH` nor in the sbin dirs.
pub fn missing_programs(names: &[&str]) -> Vec<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names
        .iter()
        .filter(|n| {
            let p = Path::new(n);
            if p.is_absolute() {
                !p.exists()
            } else {
                !dirs.iter().any(|d| d.join(n).is_file())
            }
        })
        .map(|n| n.to_string())
        .collect()
}

/// True when a nested run failed and each failed check names a guest that
/// ended by itself without a status (a triple fault or reset of the
/// emulated guest, about once in five runs under QEMU TCG's emulated SVM),
/// not a check of vessel's: the callers boot the run once more.
pub fn only_guest_crashes(out: &std::process::Output) -> bool {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fails: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL - "))
        .collect();
    !fails.is_empty()
        && fails.iter().all(|l| {
            l.contains("triple fault")
                || l.contains("the guest reset itself")
                || l.contains("the guest crashed")
        })
}
