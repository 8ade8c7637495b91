//! Guest sizes the runtime requests (`vessel-vmm --mem-mib`, `--vcpus`) and
//! the VMM accepts: one set of bounds for both.

/// Guest RAM when the config sets no memory limit.
pub const DEFAULT_MEM_MIB: u64 = 256;
/// Below this a stock kernel plus the agent's initramfs does not boot.
pub const MIN_MEM_MIB: u64 = 128;
/// Far above what a container needs; keeps a typo from asking KVM for a
/// terabyte. Not a limit of the guest memory layout.
pub const MAX_MEM_MIB: u64 = 1 << 20;
/// What the VMM process needs on top of guest RAM, charged to the
/// container's cgroup: its binary, heap and stacks, KVM's per-VM and
/// per-vCPU kernel memory, console buffers (a fixed part), and the host and
/// nested page tables mapping guest RAM (8 bytes per 4 KiB page each, about
/// 0.4 % of guest RAM; counted twice over here). Measured in the nested test
/// VM with 256 MiB of guest RAM, 100 MiB of it touched: 177 MiB charged,
/// of which kernel 1.2, page tables 0.4, nested page tables 0.4, slab 0.2
/// MiB (docs/vm.md); the rest is the guest's RAM and the VMM's heap.
/// virtiofsd, in the same cgroup, fits in the fixed part: measured there at
/// 5.8 MiB resident, 0.4 MiB of it anonymous (the rest its binary and
/// libraries). A cgroup memory limit below guest RAM plus this gets the
/// VMM OOM-killed once the guest touches its RAM.
pub const VMM_OVERHEAD_BASE_MIB: u64 = 32;

/// The VMM's overhead for `mem_mib` of guest RAM (see
/// [`VMM_OVERHEAD_BASE_MIB`]): the fixed part plus 1/128 of guest RAM.
pub fn vmm_overhead_mib(mem_mib: u64) -> u64 {
    VMM_OVERHEAD_BASE_MIB + mem_mib.div_ceil(128)
}

/// vCPUs when the config sets no CPU limit.
pub const DEFAULT_VCPUS: u32 = 1;

/// Kernel command-line token by which the runtime asks the agent to clear
/// ONLCR on the workload's pty: vessel relays the terminal itself
/// (foreground `run`), as container mode clears ONLCR on its pty then.
pub const CMDLINE_TTY_NO_ONLCR: &str = "vessel.tty_onlcr=0";

/// Kernel command-line key naming the virtio-fs tag of the share that holds
/// the guest's root (`vessel.fs=<tag>`; the dot keeps the kernel from
/// passing it to init as an argument). Without it the agent stays in its
/// initramfs root.
pub const CMDLINE_FS_KEY: &str = "vessel.fs";
/// The tag vessel gives the share (at most 36 bytes, virtio-fs's limit).
pub const FS_TAG: &str = "vessel-root";
/// In the share: the bundle's rootfs, the guest's root.
pub const SHARE_ROOTFS: &str = "rootfs";
/// In the share: `volumes/<n>` is the source of `mounts[n]` of config.json,
/// for each bind mount (n is its index in `mounts`).
pub const SHARE_VOLUMES: &str = "volumes";

/// Kernel command-line token by which the runtime tells the agent that the
/// guest's network comes over the channel (`QUERY_NET`) once the runtime
/// has connected it, after the hooks that set the namespace up
/// (`prestart`, `createRuntime`), instead of in the initramfs.
pub const CMDLINE_NET_LATE: &str = "vessel.net=late";
/// The MAC the VMM's virtio-net device carries until the agent gives the
/// interface the one of the container's (a locally administered address).
pub const LATE_NET_MAC: [u8; 6] = [0x02, 0x76, 0x65, 0x73, 0x73, 0x6c];
/// The virtio-net MTU in that case: the most a late interface may have
/// (a larger one would make the guest's driver post 64 KiB buffers).
pub const LATE_NET_MTU: u16 = 1500;

/// Whether a kernel command line carries [`CMDLINE_NET_LATE`].
pub fn net_late(cmdline: &str) -> bool {
    cmdline
        .split_ascii_whitespace()
        .any(|w| w == CMDLINE_NET_LATE)
}

/// The share's tag from a kernel command line (`vessel.fs=<tag>`, the last
/// one wins as for kernel parameters); None when absent or empty.
pub fn fs_tag(cmdline: &str) -> Option<&str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix(CMDLINE_FS_KEY)?.strip_prefix('='))
        .next_back()
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_tag_comes_from_the_command_line() {
        assert_eq!(
            fs_tag("console=ttyS0 vessel.fs=vessel-root quiet"),
            Some("vessel-root")
        );
        assert_eq!(fs_tag("vessel.fs=a vessel.fs=b"), Some("b"));
        for none in [
            "",
            "quiet",
            "vessel.fs=",
            "vessel.fsx=a",
            "xvessel.fs=a",
            "vessel.fs",
        ] {
            assert_eq!(fs_tag(none), None, "{none}");
        }
    }
}
