//! Guest sizes the runtime requests (`vessel-vmm --mem-mib`, `--vcpus`) and
//! the VMM accepts: one set of bounds for both.

/// Guest RAM when the config sets no memory limit.
pub const DEFAULT_MEM_MIB: u64 = 256;
/// Below this a stock kernel plus the agent's initramfs does not boot.
pub const MIN_MEM_MIB: u64 = 128;
/// Far above what a container needs; keeps a typo from asking KVM for a
/// terabyte. Not a limit of the guest memory layout.
pub const MAX_MEM_MIB: u64 = 1 << 20;
/// vCPUs when the config sets no CPU limit.
pub const DEFAULT_VCPUS: u32 = 1;
