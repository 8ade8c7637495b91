//! Guest RAM: where it lies (below the 32-bit gap, then above 4 GiB), what
//! backs it (one sealed memfd, mapped MAP_SHARED, so a vhost-user backend
//! such as virtiofsd can map the same pages) and the memory map the guest
//! is told about.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{
    Address, FileOffset, GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryRegion,
};

use super::layout::{EBDA_START, FIRST_ADDR_PAST_32BITS, HIMEM_START, MMIO_GAP_START};
use super::VmmError;

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// One entry of the memory map handed to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRange {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// RAM ranges for `mem_bytes` of guest memory: one range from 0 up to the
/// 32-bit MMIO gap, and the rest above 4 GiB.
pub fn ram_ranges(mem_bytes: u64) -> Vec<(u64, u64)> {
    if mem_bytes <= MMIO_GAP_START {
        vec![(0, mem_bytes)]
    } else {
        vec![
            (0, MMIO_GAP_START),
            (FIRST_ADDR_PAST_32BITS, mem_bytes - MMIO_GAP_START),
        ]
    }
}

/// The memory map: usable RAM below the EBDA, the BIOS area reserved (ACPI
/// tables live there), RAM from 1 MiB to the end of the low range, and any
/// RAM above 4 GiB.
pub fn memory_map(ranges: &[(u64, u64)]) -> Vec<MemRange> {
    let mut map = vec![
        MemRange {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        MemRange {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    for &(start, size) in ranges {
        let end = start + size;
        let start = start.max(HIMEM_START);
        if end > start {
            map.push(MemRange {
                addr: start,
                size: end - start,
                kind: E820_RAM,
            });
        }
    }
    map
}

/// The file behind guest RAM: an anonymous memfd of `bytes`, sealed
/// against shrinking or growing (a truncated backing file would turn guest
/// RAM accesses into SIGBUS).
fn memfd(bytes: u64) -> Result<File, VmmError> {
    let err = |what: &str| {
        VmmError::new(format!(
            "guest RAM memfd: {what}: {}",
            std::io::Error::last_os_error()
        ))
    };
    // SAFETY: a NUL-terminated name and flags; the fd is checked below.
    let fd = unsafe {
        libc::memfd_create(
            c"vessel-guest-ram".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(err("memfd_create"));
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(bytes)
        .map_err(|e| VmmError::new(format!("guest RAM memfd: ftruncate {bytes}: {e}")))?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a file we own, integer arguments.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(err("F_ADD_SEALS"));
    }
    Ok(file)
}

/// Maps guest RAM in the VMM and registers each region with KVM. One code
/// path with or without a vhost-user device: the memfd costs nothing more
/// than anonymous memory, and its pages are charged to the VMM's cgroup.
pub fn create_guest_memory(vm: &VmFd, mem_bytes: u64) -> Result<GuestMemoryMmap, VmmError> {
    let file = Arc::new(memfd(mem_bytes)?);
    let mut offset = 0u64;
    let ranges: Vec<(GuestAddress, usize, Option<FileOffset>)> = ram_ranges(mem_bytes)
        .into_iter()
        .map(|(a, s)| {
            let fo = FileOffset::from_arc(file.clone(), offset);
            offset += s;
            (GuestAddress(a), s as usize, Some(fo))
        })
        .collect();
    let mem = GuestMemoryMmap::from_ranges_with_files(&ranges)
        .map_err(|e| VmmError::new(format!("mapping {mem_bytes} bytes of guest RAM: {e}")))?;
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| VmmError::new(format!("host address of guest RAM region: {e}")))?;
        let entry = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping owned by `mem`, which outlives the
        // VM (both are dropped only when the VMM exits), and slots do not overlap.
        unsafe { vm.set_user_memory_region(entry) }
            .map_err(|e| VmmError::new(format!("KVM_SET_USER_MEMORY_REGION slot {slot}: {e}")))?;
    }
    Ok(mem)
}

/// The last address + 1 of the RAM range that starts at 0 (where the initrd goes).
pub fn low_ram_end(mem: &GuestMemoryMmap) -> u64 {
    mem.iter()
        .find(|r| r.start_addr().raw_value() == 0)
        .map(|r| r.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guest_has_one_range_and_a_hole_for_the_bios_area() {
        let mib = 1 << 20;
        let ranges = ram_ranges(256 * mib);
        assert_eq!(ranges, vec![(0, 256 * mib)]);
        let map = memory_map(&ranges);
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            MemRange {
                addr: 0,
                size: 0x9fc00,
                kind: E820_RAM
            }
        );
        assert_eq!(map[1].kind, E820_RESERVED);
        assert_eq!(map[1].addr + map[1].size, HIMEM_START);
        assert_eq!(
            map[2],
            MemRange {
                addr: HIMEM_START,
                size: 256 * mib - HIMEM_START,
                kind: E820_RAM
            }
        );
        // No RAM entry overlaps another.
        for w in map.windows(2) {
            assert!(w[0].addr + w[0].size <= w[1].addr);
        }
    }

    #[test]
    fn large_guest_skips_the_32bit_gap() {
        let gib = 1u64 << 30;
        let ranges = ram_ranges(4 * gib);
        assert_eq!(
            ranges,
            vec![(0, MMIO_GAP_START), (1 << 32, 4 * gib - MMIO_GAP_START)]
        );
        let map = memory_map(&ranges);
        let ram: u64 = map
            .iter()
            .filter(|r| r.kind == E820_RAM)
            .map(|r| r.size)
            .sum();
        // All RAM but the 384 KiB BIOS area is usable.
        assert_eq!(ram, 4 * gib - (HIMEM_START - EBDA_START));
        assert!(map
            .iter()
            .all(|r| r.addr + r.size <= MMIO_GAP_START || r.addr >= 1 << 32));
    }
}
