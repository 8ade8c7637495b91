//! Whether this host's /dev/kvm can boot a stock Linux guest. The runtime
//! asks at `create` (so VM mode fails before any side effect) and the VMM
//! asks again before it opens KVM; both give the same message.

use std::path::Path;

/// The device and the module whose presence means a kvm_pvm host.
pub const DEV_KVM: &str = "/dev/kvm";
pub const KVM_PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// Why VM mode cannot work on this host, or None when /dev/kvm is usable.
pub fn host_problem() -> Option<String> {
    problem_at(Path::new(DEV_KVM), Path::new(KVM_PVM_MODULE))
}

/// `host_problem` for a given device and kvm_pvm module path (for tests).
pub fn problem_at(dev_kvm: &Path, kvm_pvm: &Path) -> Option<String> {
    if kvm_pvm.exists() {
        return Some(format!(
            "VM mode needs hardware-assisted KVM, but {} is provided by kvm_pvm ({} exists), \
             which cannot boot a stock Linux guest; run VM-mode containers on a host or nested VM \
             with kvm_intel or kvm_amd (rootfs-tools/nested-vm.sh)",
            dev_kvm.display(),
            kvm_pvm.display()
        ));
    }
    if !dev_kvm.exists() {
        return Some(format!(
            "VM mode needs KVM, but {} does not exist: load kvm_intel or kvm_amd (modprobe kvm_amd), \
             enable virtualization in the firmware or nested virtualization in the hypervisor",
            dev_kvm.display()
        ));
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev_kvm)
    {
        Ok(_) => None,
        Err(e) => Some(format!(
            "VM mode needs KVM, but {} cannot be opened read-write: {e} \
             (run as root or as a member of the kvm group)",
            dev_kvm.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_names_its_cause() {
        let d = std::env::temp_dir().join(format!("vessel-kvmcheck-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let pvm = d.join("kvm_pvm");
        let kvm = d.join("kvm");
        let msg = problem_at(&kvm, &pvm).unwrap();
        assert!(
            msg.contains("does not exist") && msg.contains("kvm_amd"),
            "{msg}"
        );
        std::fs::create_dir_all(&pvm).unwrap();
        let msg = problem_at(&kvm, &pvm).unwrap();
        assert!(
            msg.contains("kvm_pvm") && msg.contains("nested-vm.sh"),
            "{msg}"
        );
        assert_eq!(problem_at(Path::new("/dev/null"), &d.join("absent")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
