//! vCPU state at boot: CPUID (normalised from what KVM supports), MSRs,
//! registers for the PVH 32-bit entry, FPU, and the local APIC's LINT pins.

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_xcrs, CpuId, Msrs,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm, VcpuFd};

use super::boot::{pvh_gdt, BootEntry};
use super::layout::{BOOT_STACK_POINTER, GDT_START, IDT_START, PVH_INFO_START};
use super::VmmError;

const LEAF_VENDOR: u32 = 0;
const LEAF_FEATURES: u32 = 1;
const LEAF_CACHE_PARAMS: u32 = 4;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_XSAVE: u32 = 0xd;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_KVM_SIGNATURE: u32 = 0x4000_0000;
const LEAF_KVM_FEATURES: u32 = 0x4000_0001;
const LEAF_EXT_MAX: u32 = 0x8000_0000;
/// The processor brand string, 16 bytes per leaf.
const LEAF_BRAND: [u32; 3] = [0x8000_0002, 0x8000_0003, 0x8000_0004];
const LEAF_AMD_ADDR_SIZES: u32 = 0x8000_0008;
const LEAF_AMD_TOPOLOGY_EXT: u32 = 0x8000_001e;

/// Leaf 1 ECX bit 31: "running under a hypervisor". Without it the guest never
/// looks for kvm-clock and hangs calibrating the TSC against the PIT.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX bit 26: XSAVE/XRSTOR and XCR0.
const ECX_XSAVE: u32 = 1 << 26;
/// XCR0 bit 0: x87 state, which every valid XCR0 has.
const XCR0_X87: u64 = 1;
/// Leaf 1 EDX bit 28: more than one logical processor per package.
const EDX_HTT: u32 = 1 << 28;
/// CLFLUSH line size in 8-byte units (64 bytes).
const CLFLUSH_LINE_SIZE: u32 = 8;
/// "KVMKVMKVM\0\0\0" as EBX, ECX, EDX.
const KVM_SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];
const AMD_VENDOR_EBX: u32 = 0x6874_7541; // "Auth"

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_IA32_MISC_ENABLE_FAST_STRING: u64 = 1;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// MTRRs enabled (bit 11), default type write-back (6).
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// Number of bits needed to hold ids 0..count-1.
fn id_bits(count: u8) -> u32 {
    (count.max(1) as u32).next_power_of_two().trailing_zeros()
}

/// Adjusts KVM's supported CPUID for vCPU `index` of `count`: hypervisor bit,
/// KVM signature leaf, APIC id, and a topology of `count` single-thread cores
/// in one package.
pub fn normalize_cpuid(entries: &mut Vec<kvm_cpuid_entry2>, index: u8, count: u8) {
    let apic_id = index as u32;
    let count32 = count.max(1) as u32;
    let is_amd = entries
        .iter()
        .any(|e| e.function == LEAF_VENDOR && e.ebx == AMD_VENDOR_EBX);
    for e in entries.iter_mut() {
        match e.function {
            LEAF_FEATURES => {
                e.ecx |= ECX_HYPERVISOR;
                e.ebx = (e.ebx & 0xff) | (CLFLUSH_LINE_SIZE << 8) | (apic_id << 24);
                if count32 > 1 {
                    e.ebx |= count32.next_power_of_two() << 16;
                    e.edx |= EDX_HTT;
                } else {
                    e.edx &= !EDX_HTT;
                }
            }
            LEAF_CACHE_PARAMS => {
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { count32 - 1 } else { 0 };
                e.eax = (e.eax & 0x3ff) | (sharing << 14) | ((count32 - 1) << 26);
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
                e.edx = apic_id;
                match e.index {
                    0 => {
                        // SMT level: one thread per core.
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        // Core level: `count` cores per package.
                        e.eax = id_bits(count);
                        e.ebx = count32;
                        e.ecx = (2 << 8) | 1;
                    }
                    i => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = i & 0xff;
                    }
                }
            }
            LEAF_KVM_SIGNATURE => {
                e.eax = e.eax.max(LEAF_KVM_FEATURES);
                [e.ebx, e.ecx, e.edx] = KVM_SIGNATURE;
            }
            LEAF_AMD_ADDR_SIZES if is_amd => {
                e.ecx = (e.ecx & !0xf0ff) | (id_bits(count) << 12) | (count32 - 1);
            }
            LEAF_AMD_TOPOLOGY_EXT if is_amd => {
                e.eax = apic_id;
                e.ebx = apic_id & 0xff; // core id; one thread per core
                e.ecx = 0; // node 0
            }
            _ => {}
        }
    }
    if !entries.iter().any(|e| e.function == LEAF_KVM_SIGNATURE) {
        entries.push(kvm_cpuid_entry2 {
            function: LEAF_KVM_SIGNATURE,
            eax: LEAF_KVM_FEATURES,
            ebx: KVM_SIGNATURE[0],
            ecx: KVM_SIGNATURE[1],
            edx: KVM_SIGNATURE[2],
            ..Default::default()
        });
    }
}

/// The brand string the guest shows in /proc/cpuinfo's "model name": the
/// host's (as Firecracker passes it on AMD), or a plain name when the host
/// has none. Without these leaves Linux invents one from the family ("AMD
/// Hammer").
pub fn host_brand() -> [u32; 12] {
    use std::arch::x86_64::__cpuid;
    let max = __cpuid(LEAF_EXT_MAX).eax;
    let mut brand = [0u32; 12];
    if max >= LEAF_BRAND[2] {
        for (i, leaf) in LEAF_BRAND.iter().enumerate() {
            let r = __cpuid(*leaf);
            brand[i * 4..i * 4 + 4].copy_from_slice(&[r.eax, r.ebx, r.ecx, r.edx]);
        }
    }
    if brand.iter().all(|w| *w == 0) {
        let name = b"vessel virtual CPU";
        let mut bytes = [0u8; 48];
        bytes[..name.len()].copy_from_slice(name);
        for (i, w) in brand.iter_mut().enumerate() {
            *w = u32::from_le_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ]);
        }
    }
    brand
}

/// Put `brand` in the brand-string leaves (adding them where KVM gave none)
/// and make the extended range reach them.
pub fn set_brand(entries: &mut Vec<kvm_cpuid_entry2>, brand: &[u32; 12]) {
    for (i, leaf) in LEAF_BRAND.iter().enumerate() {
        let [eax, ebx, ecx, edx] = [
            brand[i * 4],
            brand[i * 4 + 1],
            brand[i * 4 + 2],
            brand[i * 4 + 3],
        ];
        match entries.iter_mut().find(|e| e.function == *leaf) {
            Some(e) => [e.eax, e.ebx, e.ecx, e.edx] = [eax, ebx, ecx, edx],
            None => entries.push(kvm_cpuid_entry2 {
                function: *leaf,
                eax,
                ebx,
                ecx,
                edx,
                ..Default::default()
            }),
        }
    }
    match entries.iter_mut().find(|e| e.function == LEAF_EXT_MAX) {
        Some(e) => e.eax = e.eax.max(LEAF_BRAND[2]),
        None => entries.push(kvm_cpuid_entry2 {
            function: LEAF_EXT_MAX,
            eax: LEAF_BRAND[2],
            ..Default::default()
        }),
    }
}

/// XCR0 to start the vCPU with: every XSAVE feature the guest's CPUID
/// offers, or None when it has no XSAVE.
///
/// KVM derives CPUID 0xD.0 EBX (the XSAVE area size) from the vCPU's XCR0
/// and updates it when the guest's XSETBV exits to it. A nested hypervisor
/// that does not forward that exit (QEMU TCG's SVM) left EBX at the x87-only
/// size, and the guest kernel, which enables every offered feature, warned
/// "XSAVE consistency problem" and turned XSAVE off. Starting from the
/// full set makes EBX right from the first read; Linux writes the same
/// value, and XCR0 has no effect before the guest sets CR4.OSXSAVE.
fn boot_xcr0(entries: &[kvm_cpuid_entry2]) -> Option<u64> {
    let has_xsave = entries
        .iter()
        .any(|e| e.function == LEAF_FEATURES && e.ecx & ECX_XSAVE != 0);
    let leaf = entries
        .iter()
        .find(|e| e.function == LEAF_XSAVE && e.index == 0)?;
    let mask = (u64::from(leaf.edx) << 32) | u64::from(leaf.eax);
    // x87 state is architecturally always enabled.
    (has_xsave && mask & XCR0_X87 != 0).then_some(mask)
}

/// KVM's supported CPUID as a plain list, read once and normalised per vCPU.
pub fn supported_cpuid(kvm: &Kvm) -> Result<Vec<kvm_cpuid_entry2>, VmmError> {
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| VmmError::new(format!("KVM_GET_SUPPORTED_CPUID: {e}")))?;
    Ok(cpuid.as_slice().to_vec())
}

fn boot_msrs() -> Vec<kvm_msr_entry> {
    let zeroed = [
        MSR_IA32_SYSENTER_CS,
        MSR_IA32_SYSENTER_ESP,
        MSR_IA32_SYSENTER_EIP,
        MSR_STAR,
        MSR_CSTAR,
        MSR_KERNEL_GS_BASE,
        MSR_SYSCALL_MASK,
        MSR_LSTAR,
        MSR_IA32_TSC,
    ];
    let mut v: Vec<kvm_msr_entry> = zeroed
        .iter()
        .map(|&index| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    v.push(kvm_msr_entry {
        index: MSR_IA32_MISC_ENABLE,
        data: MSR_IA32_MISC_ENABLE_FAST_STRING,
        ..Default::default()
    });
    v.push(kvm_msr_entry {
        index: MSR_MTRR_DEF_TYPE,
        data: MTRR_ENABLE_WRITEBACK,
        ..Default::default()
    });
    v
}

/// A `kvm_segment` for GDT entry `index` of the boot GDT.
fn segment_from_gdt(entry: u64, index: u16) -> kvm_segment {
    let limit = ((entry & 0x000f_0000_0000_0000) >> 32 | (entry & 0xffff)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff | ((entry >> 32) & 0xff00_0000)),
        limit: if g == 1 { (limit << 12) | 0xfff } else { limit },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Configures vCPU `index` of `count` for the PVH entry.
pub fn configure_vcpu(
    vcpu: &VcpuFd,
    supported: &[kvm_cpuid_entry2],
    index: u8,
    count: u8,
    entry: BootEntry,
) -> Result<(), VmmError> {
    let ctx =
        |what: &str, e: kvm_ioctls::Error| VmmError::new(format!("vCPU {index}: {what}: {e}"));

    let mut entries = supported.to_vec();
    normalize_cpuid(&mut entries, index, count);
    set_brand(&mut entries, &host_brand());
    let cpuid = CpuId::from_entries(&entries)
        .map_err(|e| VmmError::new(format!("vCPU {index}: building CPUID: {e:?}")))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| ctx("KVM_SET_CPUID2", e))?;
    if let Some(xcr0) = boot_xcr0(&entries) {
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].value = xcr0;
        vcpu.set_xcrs(&xcrs).map_err(|e| ctx("KVM_SET_XCRS", e))?;
    }

    let msrs = boot_msrs();
    let kvm_msrs = Msrs::from_entries(&msrs)
        .map_err(|e| VmmError::new(format!("vCPU {index}: building MSR list: {e:?}")))?;
    let set = vcpu
        .set_msrs(&kvm_msrs)
        .map_err(|e| ctx("KVM_SET_MSRS", e))?;
    if set != msrs.len() {
        return Err(VmmError::new(format!(
            "vCPU {index}: KVM_SET_MSRS set {set} of {} MSRs (failed at MSR {:#x})",
            msrs.len(),
            msrs[set].index
        )));
    }

    let regs = kvm_regs {
        rflags: 0x2,
        rip: entry.pvh_entry,
        rbx: PVH_INFO_START,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(|e| ctx("KVM_SET_REGS", e))?;

    let mut sregs = vcpu.get_sregs().map_err(|e| ctx("KVM_GET_SREGS", e))?;
    let gdt = pvh_gdt();
    let code = segment_from_gdt(gdt[1], 1);
    let data = segment_from_gdt(gdt[2], 2);
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (gdt.len() * 8 - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = segment_from_gdt(gdt[3], 3);
    // 32-bit protected mode, paging off, as the PVH ABI asks.
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs)
        .map_err(|e| ctx("KVM_SET_SREGS", e))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(|e| ctx("KVM_SET_FPU", e))?;

    // LINT0 delivers the PIC's ExtINT, LINT1 is the NMI line.
    let mut lapic = vcpu.get_lapic().map_err(|e| ctx("KVM_GET_LAPIC", e))?;
    set_lvt_mode(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_lvt_mode(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic)
        .map_err(|e| ctx("KVM_SET_LAPIC", e))?;
    Ok(())
}

fn set_lvt_mode(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let mut bytes = [0u8; 4];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = regs[offset + i] as u8;
    }
    let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
    for (i, b) in value.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *b as std::os::raw::c_char;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, index: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    fn fake_intel() -> Vec<kvm_cpuid_entry2> {
        vec![
            leaf(0, 0, 0x1f, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
            leaf(
                1,
                0,
                0x806c1,
                0xff_ff_08_ff,
                0x7ffa_3223,
                0x0f8b_fbff & !EDX_HTT,
            ),
            leaf(4, 0, 0x1c00_4121, 0, 0, 0),
            leaf(4, 3, 0x1c03_c163, 0, 0, 0),
            leaf(0xb, 0, 0xdead, 0xbeef, 0, 7),
            leaf(0xb, 1, 0xdead, 0xbeef, 0, 7),
            leaf(0xb, 2, 0xdead, 0xbeef, 0, 7),
        ]
    }

    fn find(v: &[kvm_cpuid_entry2], f: u32, i: u32) -> kvm_cpuid_entry2 {
        *v.iter().find(|e| e.function == f && e.index == i).unwrap()
    }

    #[test]
    fn boot_xcr0_is_every_offered_feature() {
        let mut v = fake_intel();
        for e in v.iter_mut().filter(|e| e.function == LEAF_FEATURES) {
            e.ecx &= !ECX_XSAVE;
        }
        v.push(leaf(LEAF_XSAVE, 0, 0x207, 0x240, 0xa88, 0));
        assert_eq!(boot_xcr0(&v), None, "leaf 1 offers no XSAVE");
        for e in v.iter_mut().filter(|e| e.function == LEAF_FEATURES) {
            e.ecx |= ECX_XSAVE;
        }
        assert_eq!(boot_xcr0(&v), Some(0x207));
        v.retain(|e| e.function != LEAF_XSAVE);
        assert_eq!(boot_xcr0(&v), None, "no leaf 0xD");
    }

    #[test]
    fn brand_leaves_are_filled_and_reachable() {
        let mut v = fake_intel();
        v.retain(|e| e.function < LEAF_EXT_MAX);
        let brand = host_brand();
        assert!(
            brand.iter().any(|w| *w != 0),
            "a brand string, the host's or ours"
        );
        set_brand(&mut v, &brand);
        assert!(find(&v, LEAF_EXT_MAX, 0).eax >= LEAF_BRAND[2]);
        let mut bytes = Vec::new();
        for leaf in LEAF_BRAND {
            let e = find(&v, leaf, 0);
            for w in [e.eax, e.ebx, e.ecx, e.edx] {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.trim_matches(char::from(0)).trim().is_empty(),
            "{text:?}"
        );
        // A higher extended maximum is kept.
        let mut v = fake_intel();
        v.push(leaf(LEAF_EXT_MAX, 0, 0x8000_0008, 0, 0, 0));
        set_brand(&mut v, &brand);
        assert_eq!(find(&v, LEAF_EXT_MAX, 0).eax, 0x8000_0008);
    }

    #[test]
    fn sets_hypervisor_bit_apic_id_and_kvm_signature() {
        let mut v = fake_intel();
        normalize_cpuid(&mut v, 2, 3);
        let l1 = find(&v, 1, 0);
        assert_ne!(l1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(l1.ebx >> 24, 2, "APIC id");
        assert_eq!((l1.ebx >> 16) & 0xff, 4, "logical processors, rounded up");
        assert_eq!((l1.ebx >> 8) & 0xff, CLFLUSH_LINE_SIZE);
        assert_ne!(l1.edx & EDX_HTT, 0);
        let sig = find(&v, LEAF_KVM_SIGNATURE, 0);
        let mut name = Vec::new();
        for r in [sig.ebx, sig.ecx, sig.edx] {
            name.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&name, b"KVMKVMKVM\0\0\0");
        assert!(sig.eax >= LEAF_KVM_FEATURES);
    }

    #[test]
    fn topology_describes_count_cores() {
        let mut v = fake_intel();
        normalize_cpuid(&mut v, 1, 3);
        let smt = find(&v, 0xb, 0);
        let core = find(&v, 0xb, 1);
        let end = find(&v, 0xb, 2);
        assert_eq!((smt.ebx, smt.ecx >> 8, smt.edx), (1, 1, 1));
        assert_eq!((core.eax, core.ebx, core.ecx >> 8, core.edx), (2, 3, 2, 1));
        assert_eq!((end.ebx, (end.ecx >> 8) & 0xff), (0, 0));
        let l1d = find(&v, 4, 0);
        let l3 = find(&v, 4, 3);
        assert_eq!(l1d.eax >> 26, 2);
        assert_eq!((l1d.eax >> 14) & 0xfff, 0);
        assert_eq!((l3.eax >> 14) & 0xfff, 2);
        assert_eq!(l3.eax & 0x3ff, 0x163, "cache type and level kept");
    }

    #[test]
    fn single_vcpu_clears_htt_and_amd_leaves_follow() {
        let mut v = vec![
            leaf(0, 0, 0xd, AMD_VENDOR_EBX, 0, 0),
            leaf(1, 0, 0, 0, 0, EDX_HTT),
            leaf(LEAF_AMD_ADDR_SIZES, 0, 0x3030, 0, 0xffff, 0),
        ];
        normalize_cpuid(&mut v, 0, 1);
        assert_eq!(find(&v, 1, 0).edx & EDX_HTT, 0);
        assert_eq!(find(&v, LEAF_AMD_ADDR_SIZES, 0).ecx & 0xf0ff, 0);
        let mut v2 = v.clone();
        normalize_cpuid(&mut v2, 0, 4);
        assert_eq!(
            find(&v2, LEAF_AMD_ADDR_SIZES, 0).ecx & 0xf0ff,
            (2 << 12) | 3
        );
        // The signature leaf is added once, not duplicated.
        normalize_cpuid(&mut v2, 0, 4);
        assert_eq!(
            v2.iter()
                .filter(|e| e.function == LEAF_KVM_SIGNATURE)
                .count(),
            1
        );
    }

    #[test]
    fn segments_decode_the_boot_gdt() {
        let gdt = pvh_gdt();
        let cs = segment_from_gdt(gdt[1], 1);
        assert_eq!(
            (cs.base, cs.limit, cs.selector, cs.type_),
            (0, 0xffff_ffff, 8, 0xb)
        );
        assert_eq!((cs.present, cs.s, cs.db, cs.g, cs.l), (1, 1, 1, 1, 0));
        let tr = segment_from_gdt(gdt[3], 3);
        assert_eq!((tr.limit, tr.s, tr.type_, tr.g), (0x67, 0, 0xb, 0));
    }

    #[test]
    fn lvt_mode_keeps_other_bits() {
        let mut regs = [0 as std::os::raw::c_char; 1024];
        regs[APIC_LVT0] = 0x30; // vector bits
        regs[APIC_LVT0 + 1] = 0x01; // old mode bits 8..10 = 1
        regs[APIC_LVT0 + 2] = 0x01; // mask bit 16
        set_lvt_mode(&mut regs, APIC_LVT0, APIC_MODE_EXTINT);
        assert_eq!(regs[APIC_LVT0] as u8, 0x30);
        assert_eq!(regs[APIC_LVT0 + 1] as u8, 0x07);
        assert_eq!(regs[APIC_LVT0 + 2] as u8, 0x01);
    }
}
