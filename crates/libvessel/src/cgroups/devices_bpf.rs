//! Device access control on cgroup v2: cgroup2 has no devices.allow/deny;
//! the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the
//! cgroup instead. This builds that program from the same rule list the v1
//! devices cgroup gets (deny all, the spec's rules in order, runc's default
//! devices), loads it, attaches it to the container's directory and detaches
//! the program it replaces (a later `update`, or create's second call with
//! linux.devices), as runc and crun do.
//!
//! The program replays v1's semantics: the last rule that matches a request
//! decides. Rules are emitted last-first, each one a block that falls through
//! to the next on a mismatch; a rule matching everything ends the program.

use super::CgroupError;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

// linux/bpf.h
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
// struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}
/// dst = *(u32 *)(src + off)
fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(0xbc, dst, src, 0, 0)
}
fn rsh32(dst: u8, imm: i32) -> Insn {
    insn(0x74, dst, 0, 0, imm)
}
fn and32(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm)
}
fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// if dst != imm: skip `off` instructions
fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
/// if dst != src: skip `off` instructions
fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

/// A spec rule's access as the devices cgroup takes it: the letters r, w
/// and m it names, in that order. Like runc (its `devices.Permissions`
/// set operations), other letters are dropped: `"rwa"` is `"rw"`. An empty
/// or absent access means `"rwm"` (the spec makes it optional; runc 1.1.5
/// refuses it). An access naming none of r, w, m is refused: as a deny it
/// would silently deny nothing.
pub fn access_letters(d: &LinuxDeviceCgroup) -> Result<String, CgroupError> {
    let text = d.access().as_deref().unwrap_or("");
    if text.is_empty() {
        return Ok("rwm".to_string());
    }
    let letters: String = "rwm".chars().filter(|c| text.contains(*c)).collect();
    if letters.is_empty() {
        return Err(CgroupError::Msg(format!(
            "linux.resources.devices: access {text:?} names none of r, w, m"
        )));
    }
    Ok(letters)
}

/// A rule as the program tests it; None is a wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: Option<i32>,
    pub major: Option<i32>,
    pub minor: Option<i32>,
    pub access: i32,
}

impl Rule {
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule, CgroupError> {
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::P => {
                // FIFOs are not device nodes: the kernel never asks about them.
                return Err(CgroupError::Msg(
                    "linux.resources.devices: type \"p\" is not a device type the cgroup controls"
                        .into(),
                ));
            }
        };
        let num = |n: Option<i64>, what: &str| -> Result<Option<i32>, CgroupError> {
            match n.filter(|n| *n >= 0) {
                None => Ok(None),
                Some(n) => i32::try_from(n).map(Some).map_err(|_| {
                    CgroupError::Msg(format!("linux.resources.devices: {what} {n} is too large"))
                }),
            }
        };
        let access = access_letters(d)?.chars().fold(0, |a, c| {
            a | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => ACC_MKNOD,
            }
        });
        Ok(Rule {
            allow: d.allow(),
            typ,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        })
    }

    /// "a *:* rwm" style text (for the defaults table).
    fn parse(allow: bool, text: &str) -> Rule {
        let mut parts = text.split_whitespace();
        let typ = match parts.next() {
            Some("b") => Some(DEV_BLOCK),
            Some("c") => Some(DEV_CHAR),
            _ => None,
        };
        let (maj, min) = parts
            .next()
            .and_then(|n| n.split_once(':'))
            .unwrap_or(("*", "*"));
        let access = parts.next().unwrap_or("rwm").chars().fold(0, |a, c| {
            a | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            }
        });
        Rule {
            allow,
            typ,
            major: maj.parse().ok(),
            minor: min.parse().ok(),
            access,
        }
    }

    fn matches_everything(&self) -> bool {
        self.typ.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

/// What v1's devices cgroup would hold: deny all, `rules`, runc's defaults.
pub fn effective_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    let mut out = vec![Rule::parse(false, "a *:* rwm")];
    for r in rules {
        out.push(Rule::from_spec(r)?);
    }
    out.extend(
        super::v1::DEFAULT_DEVICE_RULES
            .iter()
            .map(|t| Rule::parse(true, t)),
    );
    Ok(out)
}

/// The program: the last matching rule decides; nothing matching is denied.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        load_u32(R2, R1, 0),
        mov32_reg(R3, R2),
        rsh32(R3, 16),       // R3: requested access
        and32(R2, 0xffff),   // R2: device type
        load_u32(R4, R1, 4), // R4: major
        load_u32(R5, R1, 8), // R5: minor
    ];
    for r in rules.iter().rev() {
        // Each test jumps past the rest of the block: (tests left) + 2.
        let mut tests: Vec<Vec<Insn>> = Vec::new();
        if let Some(t) = r.typ {
            tests.push(vec![jne_imm(R2, t, 0)]);
        }
        if r.access != ACC_ALL {
            // Every requested bit must be in the rule's access.
            tests.push(vec![
                mov32_reg(R1, R3),
                and32(R1, r.access),
                jne_reg(R1, R3, 0),
            ]);
        }
        if let Some(m) = r.major {
            tests.push(vec![jne_imm(R4, m, 0)]);
        }
        if let Some(m) = r.minor {
            tests.push(vec![jne_imm(R5, m, 0)]);
        }
        let mut block: Vec<Insn> = tests.into_iter().flatten().collect();
        block.push(mov64_imm(R0, i32::from(r.allow)));
        block.push(exit());
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == 0x55 || ins.code == 0x5d {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        if r.matches_everything() {
            // Nothing after it is reachable (the verifier refuses dead code).
            return p;
        }
    }
    p.push(mov64_imm(R0, 0));
    p.push(exit());
    p
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i32> {
    // SAFETY: attr is a live, initialised bpf_attr prefix of the size passed;
    // any pointers inside it point at buffers the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: a new fd the kernel just returned to us and nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn err(what: &str, dir: &Path, e: std::io::Error) -> CgroupError {
    CgroupError::Msg(format!(
        "device rules for {} (cgroup v2 needs a BPF device program): {what}: {e}",
        dir.display()
    ))
}

fn load(prog: &[Insn], dir: &Path) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 16 * 1024];
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"vessel_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let last: Vec<&str> = text.lines().rev().take(3).collect();
            Err(err(
                &format!(
                    "BPF_PROG_LOAD ({} instructions; verifier: {last:?})",
                    prog.len()
                ),
                dir,
                e,
            ))
        }
    }
}

/// The ids of the device programs attached directly to the cgroup.
fn attached(cg: &OwnedFd, dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| err("BPF_PROG_QUERY", dir, e))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// How many device programs are attached directly to the open cgroup.
#[cfg(test)]
pub fn attached_count(cg: &std::fs::File) -> Result<usize, CgroupError> {
    let fd = cg
        .try_clone()
        .map(OwnedFd::from)
        .map_err(|e| err("dup", Path::new("?"), e))?;
    Ok(attached(&fd, Path::new("?"))?.len())
}

/// Replace the device program on `dir` with one built from `rules` (the
/// spec's resources.devices, as for v1).
pub fn set(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = program(&effective_rules(rules)?);
    let cg = std::fs::File::open(dir)
        .map(OwnedFd::from)
        .map_err(|e| err("open", dir, e))?;
    let old = attached(&cg, dir)?;
    let new = load(&prog, dir)?;
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: new.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("BPF_PROG_ATTACH", dir, e))?;
    // The new program is in force; now the ones it replaces go (all attached
    // programs must allow a request, so a stale one would still deny).
    for id in old {
        let mut get = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => owned(fd),
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(err(&format!("BPF_PROG_GET_FD_BY_ID {id}"), dir, e)),
        };
        let mut detach = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut detach) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err(&format!("BPF_PROG_DETACH {id}"), dir, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the program on one request, as the kernel would (a tiny
    /// interpreter of the few instructions `program` emits).
    fn run(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [(access << 16 | typ) as u32, major as u32, minor as u32];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[dst] = u64::from(ctx[i.off as usize / 4]),
                0xbc => r[dst] = r[src] & 0xffff_ffff,
                0x74 => r[dst] = (r[dst] as u32 >> i.imm) as u64,
                0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                0xb7 => r[dst] = i.imm as i64 as u64,
                0x55 if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                0x5d if r[dst] != r[src] => pc += i.off as usize,
                0x55 | 0x5d => {}
                0x95 => return r[0] as i64,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_allow_the_usual_devices_and_deny_the_rest() {
        let p = program(&effective_rules(&[rule(r#"{"allow":false,"access":"rwm"}"#)]).unwrap());
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1, "/dev/pts/7");
        assert_eq!(
            run(&p, DEV_CHAR, ACC_MKNOD, 10, 200),
            1,
            "mknod of any char dev"
        );
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 11), 0, "/dev/kmsg");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "/dev/sda");
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 1), 0, "/dev/mem");
    }

    #[test]
    fn the_last_matching_rule_wins_and_access_must_be_covered() {
        let rules = [
            rule(r#"{"allow":false,"access":"rwm"}"#),
            rule(r#"{"allow":true,"type":"c","major":10,"minor":200,"access":"r"}"#),
            rule(r#"{"allow":true,"type":"b","major":8,"access":"rw"}"#),
            rule(r#"{"allow":false,"type":"b","major":8,"minor":1}"#),
        ];
        let p = program(&effective_rules(&rules).unwrap());
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 200), 1);
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 10, 200),
            0,
            "w not granted"
        );
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 1, "8:* allowed");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 1), 0, "8:1 denied after");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 8, 0), 0, "type matters");
    }

    #[test]
    fn allow_all_ends_the_program() {
        let rules = [
            rule(r#"{"allow":false,"access":"rwm"}"#),
            rule(r#"{"allow":true,"access":"rwm"}"#),
        ];
        let p = program(&effective_rules(&rules).unwrap());
        assert_eq!(run(&p, DEV_BLOCK, ACC_ALL, 8, 0), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 1);
        // No dead code after the allow-all block, which ends the program.
        assert_eq!(p.last(), Some(&exit()));
        let exits = crate::cgroups::v1::DEFAULT_DEVICE_RULES.len() + 1;
        assert_eq!(p.iter().filter(|i| i.code == 0x95).count(), exits);
    }

    #[test]
    fn unknown_access_letters_are_dropped_as_runc_does() {
        // update.bats "minimal transition rules": a deny with "rwa".
        let rules = [
            rule(r#"{"allow":false,"access":"rwm"}"#),
            rule(r#"{"allow":true,"type":"c","major":1,"minor":11,"access":"rwma"}"#),
            rule(r#"{"allow":false,"type":"c","major":1,"minor":11,"access":"rwa"}"#),
        ];
        let eff = effective_rules(&rules).unwrap();
        assert_eq!(eff[2].access, ACC_ALL);
        assert_eq!(eff[3].access, ACC_READ | ACC_WRITE);
        let p = program(&eff);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 11), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 11), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 11), 1);
        // An empty access is "rwm".
        let all = Rule::from_spec(&rule(r#"{"allow":true,"type":"c","access":""}"#)).unwrap();
        assert_eq!(all.access, ACC_ALL);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(Rule::from_spec(&rule(r#"{"allow":true,"access":"xa"}"#)).is_err());
        assert!(Rule::from_spec(&rule(r#"{"allow":false,"access":"RWM"}"#)).is_err());
        assert!(Rule::from_spec(&rule(r#"{"allow":true,"type":"p"}"#)).is_err());
        assert!(Rule::from_spec(&rule(r#"{"allow":true,"major":4294967296}"#)).is_err());
    }
}
