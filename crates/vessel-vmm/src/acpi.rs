//! Minimal ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) so the guest finds its
//! IOAPIC and every vCPU. Debian's cloud kernel has no MP-table parser
//! (CONFIG_X86_MPPARSE is off), so ACPI is the only way past one vCPU.
//!
//! The FADT declares a hardware-reduced ACPI platform: no PM timer, no SCI,
//! no legacy PIC and no i8042 to probe. Interrupts go through the IOAPIC.
//! Without a legacy PIC the kernel maps no ISA IRQ by itself, so the DSDT
//! describes the UART (PNP0501, IRQ 4), the RTC (PNP0B00) and each
//! virtio-mmio device (LNRO0005, its register window and interrupt line): the
//! kernel's ACPI layer then routes their IRQs through the IOAPIC, and the
//! virtio_mmio driver binds to the LNRO0005 devices when it loads.

use super::layout::{
    CMOS_INDEX_PORT, COM1_IRQ, COM1_PORT, IOAPIC_ADDR, LAPIC_ADDR, SERIAL_PORT_LEN,
    VIRTIO_MMIO_SIZE,
};

const OEM_ID: &[u8; 6] = b"VESSEL";
const OEM_TABLE_ID: &[u8; 8] = b"VESSELVM";
const CREATOR_ID: &[u8; 4] = b"VSSL";
const HEADER_LEN: usize = 36;
const RSDP_LEN: usize = 36;
const FADT_LEN: usize = 276;
/// FADT flags bit 20: HW_REDUCED_ACPI.
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// IAPC_BOOT_ARCH bit 2: VGA not present (bit 1, "8042 present", stays clear).
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
const MADT_LOCAL_APIC: u8 = 0;
const MADT_IOAPIC: u8 = 1;
const MADT_LOCAL_APIC_NMI: u8 = 4;
const MADT_ENABLED: u32 = 1;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A system description table: the 36-byte header then `body`, checksummed.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

// AML opcodes and resource descriptors used by the DSDT.
const AML_NAME_OP: u8 = 0x08;
const AML_STRING_PREFIX: u8 = 0x0d;
const AML_BYTE_PREFIX: u8 = 0x0a;
const AML_DWORD_PREFIX: u8 = 0x0c;
const AML_SCOPE_OP: u8 = 0x10;
const AML_BUFFER_OP: u8 = 0x11;
const AML_EXT_OP_PREFIX: u8 = 0x5b;
const AML_DEVICE_OP: u8 = 0x82;
const AML_ROOT_CHAR: u8 = b'\\';
const RES_IO_DECODE16: u8 = 0x47;
const RES_IRQ_NO_FLAGS: u8 = 0x22;
const RES_END_TAG: u8 = 0x79;
const RES_MEMORY32_FIXED: u8 = 0x86;
const RES_EXTENDED_IRQ: u8 = 0x89;
/// Extended IRQ flags: consumer, edge-triggered, active-high, exclusive.
const EXT_IRQ_CONSUMER_EDGE: u8 = 0x03;
/// The _HID Linux's virtio_mmio driver matches in ACPI.
const VIRTIO_MMIO_HID: &str = "LNRO0005";

/// A compressed EISA id such as "PNP0501", as ACPI `EisaId()` encodes it.
pub fn eisa_id(id: &str) -> u32 {
    let b = id.as_bytes();
    let letter = |c: u8| ((c - 0x40) & 0x1f) as u16;
    let vendor = (letter(b[0]) << 10) | (letter(b[1]) << 5) | letter(b[2]);
    let product = u16::from_str_radix(&id[3..7], 16).unwrap_or(0);
    let bytes = [
        (vendor >> 8) as u8,
        vendor as u8,
        (product >> 8) as u8,
        product as u8,
    ];
    u32::from_le_bytes(bytes)
}

/// AML PkgLength for `content_len` bytes of content (the length counts itself).
fn pkg_length(content_len: usize) -> Vec<u8> {
    if content_len + 1 < 0x40 {
        vec![(content_len + 1) as u8]
    } else {
        let total = content_len + 2;
        vec![0x40 | (total & 0xf) as u8, (total >> 4) as u8]
    }
}

fn aml_name_dword(name: &[u8; 4], value: u32) -> Vec<u8> {
    let mut v = vec![AML_NAME_OP];
    v.extend_from_slice(name);
    v.push(AML_DWORD_PREFIX);
    v.extend_from_slice(&value.to_le_bytes());
    v
}

fn aml_name_byte(name: &[u8; 4], value: u8) -> Vec<u8> {
    let mut v = vec![AML_NAME_OP];
    v.extend_from_slice(name);
    v.extend_from_slice(&[AML_BYTE_PREFIX, value]);
    v
}

fn aml_name_buffer(name: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut content = vec![AML_BYTE_PREFIX, data.len() as u8];
    content.extend_from_slice(data);
    let mut v = vec![AML_NAME_OP];
    v.extend_from_slice(name);
    v.push(AML_BUFFER_OP);
    v.extend(pkg_length(content.len()));
    v.extend(content);
    v
}

/// `_CRS` bytes: one 16-bit decoded I/O range and optionally one edge IRQ.
fn resources(port: u16, len: u8, irq: Option<u32>) -> Vec<u8> {
    let [lo, hi] = port.to_le_bytes();
    let mut r = vec![RES_IO_DECODE16, 1, lo, hi, lo, hi, 0, len];
    if let Some(irq) = irq {
        let mask = (1u16 << irq).to_le_bytes();
        r.extend_from_slice(&[RES_IRQ_NO_FLAGS, mask[0], mask[1]]);
    }
    r.extend_from_slice(&[RES_END_TAG, 0]);
    r
}

/// `_CRS` bytes of a virtio-mmio device: its register window and its
/// interrupt line (a GSI, routed through the IOAPIC).
fn virtio_resources(addr: u64, gsi: u32) -> Vec<u8> {
    let mut r = vec![RES_MEMORY32_FIXED, 9, 0, 1]; // read-write
    r.extend_from_slice(&(addr as u32).to_le_bytes());
    r.extend_from_slice(&(VIRTIO_MMIO_SIZE as u32).to_le_bytes());
    r.extend_from_slice(&[RES_EXTENDED_IRQ, 6, 0, EXT_IRQ_CONSUMER_EDGE, 1]);
    r.extend_from_slice(&gsi.to_le_bytes());
    r.extend_from_slice(&[RES_END_TAG, 0]);
    r
}

fn aml_name_string(name: &[u8; 4], value: &str) -> Vec<u8> {
    let mut v = vec![AML_NAME_OP];
    v.extend_from_slice(name);
    v.push(AML_STRING_PREFIX);
    v.extend_from_slice(value.as_bytes());
    v.push(0);
    v
}

/// A device's `_HID`: an EISA id ("PNP0501") or an ACPI id string ("LNRO0005").
enum Hid<'a> {
    Eisa(&'a str),
    Str(&'a str),
}

fn aml_device(name: &[u8; 4], hid: Hid<'_>, uid: u8, crs: &[u8]) -> Vec<u8> {
    let mut content = name.to_vec();
    content.extend(match hid {
        Hid::Eisa(id) => aml_name_dword(b"_HID", eisa_id(id)),
        Hid::Str(id) => aml_name_string(b"_HID", id),
    });
    content.extend(aml_name_byte(b"_UID", uid));
    content.extend(aml_name_buffer(b"_CRS", crs));
    let mut v = vec![AML_EXT_OP_PREFIX, AML_DEVICE_OP];
    v.extend(pkg_length(content.len()));
    v.extend(content);
    v
}

/// The DSDT body: `Scope (\\_SB) { COM1, RTC, VR00.. }`, one `VRnn` per
/// virtio-mmio slot in `virtio_slots`.
fn dsdt_body(virtio_slots: u32) -> Vec<u8> {
    let mut devices = Vec::new();
    devices.extend(aml_device(
        b"COM1",
        Hid::Eisa("PNP0501"),
        0,
        &resources(COM1_PORT, SERIAL_PORT_LEN as u8, Some(COM1_IRQ)),
    ));
    // The RTC without an IRQ: the clock works, alarms do not.
    devices.extend(aml_device(
        b"RTC_",
        Hid::Eisa("PNP0B00"),
        0,
        &resources(CMOS_INDEX_PORT, 2, None),
    ));
    for slot in 0..virtio_slots.min(100) {
        let digits = format!("{slot:02}");
        let d = digits.as_bytes();
        devices.extend(aml_device(
            &[b'V', b'R', d[0], d[1]],
            Hid::Str(VIRTIO_MMIO_HID),
            slot as u8,
            &virtio_resources(
                crate::virtio::slot_addr(slot),
                crate::virtio::slot_irq(slot),
            ),
        ));
    }
    let mut content = vec![AML_ROOT_CHAR];
    content.extend_from_slice(b"_SB_");
    content.extend(devices);
    let mut v = vec![AML_SCOPE_OP];
    v.extend(pkg_length(content.len()));
    v.extend(content);
    v
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut body = vec![0u8; FADT_LEN - HEADER_LEN];
    let at = |off: usize| off - HEADER_LEN;
    body[at(109)..at(111)].copy_from_slice(&IAPC_VGA_NOT_PRESENT.to_le_bytes());
    body[at(112)..at(116)].copy_from_slice(&FADT_HW_REDUCED_ACPI.to_le_bytes());
    body[at(131)] = 5; // FADT minor version (ACPI 6.5)
    body[at(140)..at(148)].copy_from_slice(&dsdt_addr.to_le_bytes()); // X_DSDT
    body[at(268)..at(276)].copy_from_slice(b"VESSELVM"); // hypervisor vendor identity
    sdt(b"FACP", 6, &body)
}

fn madt(vcpus: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // flags: no dual 8259 to care about
    for id in 0..vcpus {
        body.extend_from_slice(&[MADT_LOCAL_APIC, 8, id, id]);
        body.extend_from_slice(&MADT_ENABLED.to_le_bytes());
    }
    // The IOAPIC id follows the LAPIC ids so none collide.
    body.extend_from_slice(&[MADT_IOAPIC, 12, vcpus, 0]);
    body.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // GSI base
                                                 // LINT1 of every processor (uid 0xff) is the NMI line.
    body.extend_from_slice(&[MADT_LOCAL_APIC_NMI, 6, 0xff, 0, 0, 1]);
    sdt(b"APIC", 5, &body)
}

fn rsdp(xsdt_addr: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(RSDP_LEN);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0); // checksum of the first 20 bytes
    r.extend_from_slice(OEM_ID);
    r.push(2); // revision: ACPI 2.0+, XSDT used
    r.extend_from_slice(&0u32.to_le_bytes()); // no RSDT
    r.extend_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    r.extend_from_slice(&xsdt_addr.to_le_bytes());
    r.push(0); // extended checksum
    r.extend_from_slice(&[0; 3]);
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

fn align8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

/// All tables as one blob to be written at guest address `base` (RSDP first).
pub fn build_tables(base: u64, vcpus: u8, virtio_slots: u32) -> Vec<u8> {
    // Layout: RSDP | XSDT (2 entries) | FADT | DSDT | MADT, each 8-byte aligned.
    let xsdt_off = (RSDP_LEN as u64).next_multiple_of(8);
    let xsdt_len = (HEADER_LEN + 16) as u64;
    let fadt_off = xsdt_off + xsdt_len.next_multiple_of(8);
    let dsdt_off = fadt_off + (FADT_LEN as u64).next_multiple_of(8);
    let dsdt = sdt(b"DSDT", 2, &dsdt_body(virtio_slots));
    let madt_off = dsdt_off + (dsdt.len() as u64).next_multiple_of(8);

    let mut xsdt_body = Vec::new();
    xsdt_body.extend_from_slice(&(base + fadt_off).to_le_bytes());
    xsdt_body.extend_from_slice(&(base + madt_off).to_le_bytes());

    let mut blob = rsdp(base + xsdt_off);
    for (off, table) in [
        (xsdt_off, sdt(b"XSDT", 1, &xsdt_body)),
        (fadt_off, fadt(base + dsdt_off)),
        (dsdt_off, dsdt),
        (madt_off, madt(vcpus)),
    ] {
        align8(&mut blob);
        debug_assert_eq!(blob.len() as u64, off);
        blob.extend_from_slice(&table);
    }
    blob
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }
    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }
    /// The table at guest address `addr` inside a blob based at `base`.
    fn table(blob: &[u8], base: u64, addr: u64) -> &[u8] {
        let off = (addr - base) as usize;
        &blob[off..off + u32_at(blob, off + 4) as usize]
    }

    #[test]
    fn tables_link_up_and_checksum_to_zero() {
        let base = 0xe0000;
        let blob = build_tables(base, 3, 2);
        assert_eq!(&blob[..8], b"RSD PTR ");
        assert_eq!(sum(&blob[..20]), 0);
        assert_eq!(sum(&blob[..36]), 0);
        let xsdt = table(&blob, base, u64_at(&blob, 24));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(sum(xsdt), 0);
        let fadt = table(&blob, base, u64_at(xsdt, 36));
        let madt = table(&blob, base, u64_at(xsdt, 44));
        assert_eq!((&fadt[..4], fadt.len()), (&b"FACP"[..], FADT_LEN));
        assert_eq!(sum(fadt), 0);
        assert_eq!(
            u32_at(fadt, 112) & FADT_HW_REDUCED_ACPI,
            FADT_HW_REDUCED_ACPI
        );
        let dsdt = table(&blob, base, u64_at(fadt, 140));
        assert_eq!(&dsdt[..4], b"DSDT");
        assert_eq!(sum(dsdt), 0);
        assert_eq!(&madt[..4], b"APIC");
        assert_eq!(sum(madt), 0);
        assert_eq!(u32_at(madt, 36), LAPIC_ADDR);
        // Walk the MADT entries: 3 enabled LAPICs with ids 0..3, one IOAPIC.
        let (mut off, mut lapics, mut ioapics) = (44, vec![], 0);
        while off < madt.len() {
            match madt[off] {
                MADT_LOCAL_APIC => lapics.push(madt[off + 3]),
                MADT_IOAPIC => {
                    ioapics += 1;
                    assert_eq!(u32_at(madt, off + 4), IOAPIC_ADDR);
                }
                _ => {}
            }
            off += madt[off + 1] as usize;
        }
        assert_eq!(off, madt.len());
        assert_eq!((lapics, ioapics), (vec![0, 1, 2], 1));
        assert!(base + (blob.len() as u64) < super::super::layout::ACPI_TABLES_END);
    }

    #[test]
    fn eisa_ids_match_acpi_encoding() {
        assert_eq!(eisa_id("PNP0501"), 0x0105_d041);
        assert_eq!(eisa_id("PNP0B00"), 0x000b_d041);
    }

    #[test]
    fn dsdt_scope_length_covers_the_body() {
        let body = dsdt_body(1);
        assert_eq!(body[0], AML_SCOPE_OP);
        // Two-byte PkgLength: low nibble in byte 1, the rest in byte 2.
        assert_eq!(body[1] & 0xc0, 0x40);
        let len = (body[1] & 0x0f) as usize | (body[2] as usize) << 4;
        assert_eq!(len, body.len() - 1);
        assert_eq!(&body[3..8], b"\\_SB_");
        // COM1's _CRS carries IRQ 4 (mask 0x0010).
        let crs = resources(COM1_PORT, 8, Some(COM1_IRQ));
        assert_eq!(
            &crs[..],
            &[0x47, 1, 0xf8, 3, 0xf8, 3, 0, 8, 0x22, 0x10, 0, 0x79, 0]
        );
        assert!(body.windows(crs.len()).any(|w| w == crs.as_slice()));
        // The virtio-mmio device: LNRO0005, its 4 KiB window at 0xd0000000, GSI 5.
        let hid = aml_name_string(b"_HID", "LNRO0005");
        assert!(body.windows(hid.len()).any(|w| w == hid.as_slice()));
        let vcrs = virtio_resources(0xd000_0000, 5);
        assert_eq!(
            &vcrs[..],
            &[0x86, 9, 0, 1, 0, 0, 0, 0xd0, 0, 0x10, 0, 0, 0x89, 6, 0, 3, 1, 5, 0, 0, 0, 0x79, 0]
        );
        assert!(body.windows(vcrs.len()).any(|w| w == vcrs.as_slice()));
    }
}
