//! The guest physical memory layout: every fixed address the VMM uses, in one place.

/// GDT used for the PVH 32-bit entry (NULL, CODE, DATA, TSS).
pub const GDT_START: u64 = 0x500;
/// A single empty IDT entry right after the GDT.
pub const IDT_START: u64 = 0x520;

/// `hvm_start_info` for the PVH entry; its address goes to the guest in RBX.
pub const PVH_INFO_START: u64 = 0x6000;
/// The PVH module list (the initrd) right after `hvm_start_info`.
pub const PVH_MODLIST_START: u64 = 0x6040;
/// The PVH memory map (e820-like entries).
pub const PVH_MEMMAP_START: u64 = 0x7000;
/// Room for the memory map: entries are 24 bytes, a page holds plenty.
pub const PVH_MEMMAP_MAX_ENTRIES: usize = 128;

/// Initial stack pointer for the boot vCPU (the kernel sets its own soon).
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;

/// The kernel command line and its size limit (x86 COMMAND_LINE_SIZE).
pub const CMDLINE_START: u64 = 0x20000;
pub const CMDLINE_MAX_SIZE: usize = 2048;

/// Start of the EBDA / BIOS area: RAM below it, reserved from here to 1 MiB.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables: the RSDP where a BIOS would put it, the other tables after it.
pub const ACPI_RSDP_START: u64 = 0xe0000;
/// End of the legacy BIOS area; the ACPI tables must fit below it.
pub const ACPI_TABLES_END: u64 = 0x10_0000;
/// First address of "high" memory (above the legacy 1 MiB).
pub const HIMEM_START: u64 = 0x10_0000;

/// The 32-bit MMIO gap: no RAM from here to 4 GiB (IOAPIC, LAPIC, TSS live there).
pub const MMIO_GAP_START: u64 = 0xc000_0000;
pub const FIRST_ADDR_PAST_32BITS: u64 = 1 << 32;

/// KVM needs three pages for the TSS of real-mode emulation, inside the gap.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// Default addresses of the in-kernel IOAPIC and the local APICs.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const LAPIC_ADDR: u32 = 0xfee0_0000;

/// Initrd alignment (page).
pub const INITRD_ALIGN: u64 = 0x1000;

/// Legacy I/O ports the VMM emulates.
pub const COM1_PORT: u16 = 0x3f8;
pub const SERIAL_PORT_LEN: u16 = 8;
pub const COM1_IRQ: u32 = 4;
pub const CMOS_INDEX_PORT: u16 = 0x70;
pub const CMOS_DATA_PORT: u16 = 0x71;
pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_COMMAND_PORT: u16 = 0x64;

/// virtio-mmio devices: one 4 KiB register window per slot from here, in the
/// 32-bit MMIO gap, with interrupt lines from IRQ 5 (4 is COM1's).
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
pub const VIRTIO_MMIO_FIRST_IRQ: u32 = 5;

/// Highest vCPU count the ACPI MADT and APIC ids here support.
pub const MAX_VCPUS: u8 = 64;
