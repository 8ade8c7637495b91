//! Loading the guest: the ELF vmlinux (PVH entry), the initrd, the command
//! line, the PVH `hvm_start_info` with its memory map, the ACPI tables and the
//! boot GDT, all written into guest RAM.

use std::fs::File;
use std::path::Path;

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{load_cmdline, Cmdline, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::*;
use super::memory::{low_ram_end, memory_map, MemRange};
use super::{acpi, VmmError};

/// `hvm_start_info.magic` ("xEn3" with the high bit set), as the PVH ABI defines it.
const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// Where the boot vCPU starts.
#[derive(Debug, Clone, Copy)]
pub struct BootEntry {
    /// The kernel's 32-bit PVH entry point.
    pub pvh_entry: u64,
}

/// The boot GDT for the PVH 32-bit entry: NULL, flat CODE, flat DATA, TSS.
pub fn pvh_gdt() -> [u64; 4] {
    [
        0,
        gdt_entry(0xc09b, 0, 0xfffff),
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0x008b, 0, 0x67),
    ]
}

/// Packs a segment descriptor from its flags (access byte and the G/DB/L nibble).
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (flags as u64, base as u64, limit as u64);
    ((base & 0xff00_0000) << 32)
        | ((flags & 0x0000_f0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// Loads everything the guest needs to boot and returns its entry point.
pub fn load_guest(
    mem: &GuestMemoryMmap,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    ram_ranges: &[(u64, u64)],
    vcpus: u8,
    virtio_slots: u32,
) -> Result<BootEntry, VmmError> {
    let mut kernel_file = File::open(kernel)
        .map_err(|e| VmmError::new(format!("opening kernel {}: {e}", kernel.display())))?;
    let loaded =
        Elf::load(mem, None, &mut kernel_file, Some(GuestAddress(HIMEM_START))).map_err(|e| {
            VmmError::new(format!(
                "loading kernel {} (an uncompressed ELF vmlinux is needed): {e}",
                kernel.display()
            ))
        })?;
    let pvh_entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => addr.0,
        other => {
            return Err(VmmError::new(format!(
                "kernel {}: {other}; vessel boots through the PVH entry (CONFIG_PVH=y)",
                kernel.display()
            )))
        }
    };

    let initrd_region = match initrd {
        Some(path) => Some(load_initrd(mem, path, loaded.kernel_end)?),
        None => None,
    };

    let mut cl = Cmdline::new(CMDLINE_MAX_SIZE)
        .map_err(|e| VmmError::new(format!("kernel command line: {e}")))?;
    if !cmdline.is_empty() {
        cl.insert_str(cmdline).map_err(|e| {
            VmmError::new(format!(
                "kernel command line {cmdline:?} (max {CMDLINE_MAX_SIZE} bytes): {e}"
            ))
        })?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cl)
        .map_err(|e| VmmError::new(format!("writing the kernel command line: {e}")))?;

    let tables = acpi::build_tables(ACPI_RSDP_START, vcpus, virtio_slots);
    if ACPI_RSDP_START + tables.len() as u64 > ACPI_TABLES_END {
        return Err(VmmError::new(format!(
            "ACPI tables for {vcpus} vCPUs do not fit"
        )));
    }
    mem.write_slice(&tables, GuestAddress(ACPI_RSDP_START))
        .map_err(|e| VmmError::new(format!("writing ACPI tables: {e}")))?;

    write_start_info(mem, &memory_map(ram_ranges), initrd_region)?;
    write_gdt_idt(mem)?;
    Ok(BootEntry { pvh_entry })
}

/// Places the initrd at the top of low RAM (page aligned), above the kernel.
fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel_end: u64,
) -> Result<(u64, u64), VmmError> {
    let mut f = File::open(path)
        .map_err(|e| VmmError::new(format!("opening initrd {}: {e}", path.display())))?;
    let size = f
        .metadata()
        .map_err(|e| VmmError::new(format!("stat initrd {}: {e}", path.display())))?
        .len();
    let top = low_ram_end(mem);
    let addr = top.checked_sub(size).map(|a| a & !(INITRD_ALIGN - 1));
    let addr = match addr {
        Some(a) if a >= kernel_end && size > 0 => a,
        _ => {
            return Err(VmmError::new(format!(
                "initrd {} ({size} bytes) does not fit in guest RAM between the kernel end \
                 {kernel_end:#x} and {top:#x}: give the VM more memory",
                path.display()
            )))
        }
    };
    mem.read_exact_volatile_from(GuestAddress(addr), &mut f, size as usize)
        .map_err(|e| {
            VmmError::new(format!(
                "reading initrd {} into guest RAM at {addr:#x}: {e}",
                path.display()
            ))
        })?;
    Ok((addr, size))
}

/// `hvm_start_info` + memory map + module list, written by linux-loader's
/// PVH configurator.
fn write_start_info(
    mem: &GuestMemoryMmap,
    map: &[MemRange],
    initrd: Option<(u64, u64)>,
) -> Result<(), VmmError> {
    if map.len() > PVH_MEMMAP_MAX_ENTRIES {
        return Err(VmmError::new(format!(
            "{} memory map entries is too many",
            map.len()
        )));
    }
    let entries: Vec<hvm_memmap_table_entry> = map
        .iter()
        .map(|r| hvm_memmap_table_entry {
            addr: r.addr,
            size: r.size,
            type_: r.kind,
            reserved: 0,
        })
        .collect();
    let mut info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: ACPI_RSDP_START,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: entries.len() as u32,
        ..Default::default()
    };
    let module = initrd.map(|(paddr, size)| hvm_modlist_entry {
        paddr,
        size,
        ..Default::default()
    });
    if module.is_some() {
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_START;
    }
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO_START));
    params.set_sections(&entries, GuestAddress(PVH_MEMMAP_START));
    if let Some(m) = module {
        params.set_modules(&[m], GuestAddress(PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams(&params, mem)
        .map_err(|e| VmmError::new(format!("writing PVH boot parameters: {e}")))
}

fn write_gdt_idt(mem: &GuestMemoryMmap) -> Result<(), VmmError> {
    for (i, entry) in pvh_gdt().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_START + (i * 8) as u64))
            .map_err(|e| VmmError::new(format!("writing the boot GDT: {e}")))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))
        .map_err(|e| VmmError::new(format!("writing the boot IDT: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_match_the_descriptor_format() {
        // A flat 4 GiB 32-bit code segment is the classic 0x00cf9b000000ffff.
        assert_eq!(gdt_entry(0xc09b, 0, 0xfffff), 0x00cf_9b00_0000_ffff);
        assert_eq!(gdt_entry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(gdt_entry(0x008b, 0x1234_5678, 0x67), 0x1200_8b34_5678_0067);
    }

    #[test]
    fn start_info_is_written_where_the_layout_says() {
        use vm_memory::GuestMemory;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        let map = memory_map(&[(0, 16 << 20)]);
        write_start_info(&mem, &map, Some((0x80_0000, 0x1000))).unwrap();
        let info: hvm_start_info = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(info.magic, XEN_HVM_START_MAGIC_VALUE);
        assert_eq!(info.memmap_entries as usize, map.len());
        assert_eq!(info.nr_modules, 1);
        let m: hvm_modlist_entry = mem.read_obj(GuestAddress(info.modlist_paddr)).unwrap();
        assert_eq!((m.paddr, m.size), (0x80_0000, 0x1000));
        let e: hvm_memmap_table_entry = mem
            .read_obj(GuestAddress(PVH_MEMMAP_START + 24 * 2))
            .unwrap();
        assert_eq!((e.addr, e.type_), (HIMEM_START, 1));
        assert!(mem.last_addr().0 > 0);
    }
}
