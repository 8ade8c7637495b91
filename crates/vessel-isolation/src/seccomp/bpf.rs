//! Stitch one seccompiler filter per action into a single BPF program.
//!
//! Layout:
//! ```text
//!  0  ld  arch
//!  1  jeq AUDIT_ARCH_X86_64      ? native : 2
//!  2  jeq AUDIT_ARCH_I386        ? i386 : kill
//!     i386:   [ld nr; jgt UNIFIED_LAST ? ret ENOSYS] ret <i386 action>
//!     kill:   ret KILL_PROCESS   (an ABI the filter does not know)
//!     native: ld nr
//!             jge X32_SYSCALL_BIT ? x32 : plain
//!     x32:    [jgt X32|UNIFIED_LAST ? (jge X32|512 ? act : ret ENOSYS)]
//!             act: ret <x32 action>
//!     plain:  [jgt LAST ? ret ENOSYS]
//!     group 1 (seccompiler output without its arch check; starts with ld nr)
//!     ... a mismatch RET of group k is rewritten to `ja` the start of group k+1
//!  N  ret <default action>
//! ```
//! The bracketed checks are runc's -ENOSYS stub, present when the plan has
//! `enosys_above` (LAST, the highest x86_64 number the profile names).
//! 32-bit x86 and x32 have no name table here, but syscalls from 424 on are
//! numbered alike on every architecture, so for those ABIs a call numbered
//! above max(LAST, 423) is just as surely newer than the profile
//! (UNIFIED_LAST); x32's own variants (512 and up) are left to its action.

use super::{Action, Cond, Match, Plan, SeccompError};
use oci_spec::runtime::LinuxSeccompOperator as Op;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const BPF_JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JMP_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JMP_JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const BPF_CLASS_MASK: u16 = 0x07;
const BPF_RET_CLASS: u16 = 0x06;

const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// From this number on, syscalls are numbered alike on every architecture.
const UNIFIED_FIRST: u32 = 424;
/// x32's own variants of older calls are numbered from 512.
const X32_OWN_FIRST: u32 = 512;
/// The kernel's BPF_MAXINSNS.
pub const MAX_INSNS: usize = 4096;

/// Placeholder returns given to seccompiler; no real action of a group can be
/// confused with them because every RET of a group is one of the two.
const PH_MATCH: u16 = 0xA5A5;
const PH_MISMATCH: u16 = 0x5A5A;
/// seccompiler's own arch check at the start of every filter (3 insns).
const SECCOMPILER_ARCH_CHECK_LEN: usize = 3;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Build the whole program for a plan.
pub(crate) fn assemble(plan: &Plan) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut out = head(plan);
    for (action, calls) in &plan.groups {
        if calls.is_empty() {
            continue;
        }
        let group = group_program(*action, calls)?;
        append_group(&mut out, group, action.ret())?;
    }
    out.push(stmt(BPF_RET_K, plan.default.ret()));
    if out.len() > MAX_INSNS {
        return Err(SeccompError::Backend(format!(
            "the filter has {} instructions, the kernel takes at most {MAX_INSNS}",
            out.len()
        )));
    }
    Ok(out)
}

/// Everything before the first group: the arch dispatch, the i386 and x32
/// answers and, with `enosys_above`, the -ENOSYS stub.
fn head(plan: &Plan) -> Vec<libc::sock_filter> {
    let enosys = Action::Errno(libc::ENOSYS as u16).ret();
    // A foreign ABI the profile does not list is killed: no stub for it.
    let stub = |act: Action| {
        plan.enosys_above
            .filter(|_| act != Action::KillProcess && act.ret() != enosys)
    };
    let mut i386: Vec<libc::sock_filter> = Vec::new();
    if let Some(last) = stub(plan.i386) {
        i386.extend([
            stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
            jump(BPF_JMP_JGT_K, last.max(UNIFIED_FIRST - 1), 0, 1),
            stmt(BPF_RET_K, enosys),
        ]);
    }
    i386.push(stmt(BPF_RET_K, plan.i386.ret()));
    let mut x32: Vec<libc::sock_filter> = Vec::new();
    if let Some(last) = stub(plan.x32) {
        x32.extend([
            jump(
                BPF_JMP_JGT_K,
                X32_SYSCALL_BIT | last.max(UNIFIED_FIRST - 1),
                0,
                2,
            ),
            jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT | X32_OWN_FIRST, 1, 0),
            stmt(BPF_RET_K, enosys),
        ]);
    }
    x32.push(stmt(BPF_RET_K, plan.x32.ret()));

    // 0 ld arch; 1 jeq x86_64 ? native; 2 jeq i386 ? i386 : kill
    let mut out = vec![
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        // Patched below, once the i386 block's length is known.
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, 0),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_I386, 0, i386.len() as u8),
    ];
    out.extend(i386);
    out.push(stmt(BPF_RET_K, RET_KILL_PROCESS));
    // The native path starts here: jump over i386 + kill.
    out[1].jt = (out.len() - 2) as u8;
    out.push(stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR));
    out.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, x32.len() as u8));
    out.extend(x32);
    if let Some(last) = plan.enosys_above {
        out.extend([jump(BPF_JMP_JGT_K, last, 0, 1), stmt(BPF_RET_K, enosys)]);
    }
    out
}

/// seccompiler's filter for one action group, with placeholder returns.
fn group_program(action: Action, calls: &BTreeMap<i64, Match>) -> Result<BpfProgram, SeccompError> {
    let backend =
        |e: seccompiler::BackendError| SeccompError::Backend(format!("group {action:?}: {e}"));
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, m) in calls {
        let list = match m {
            Match::Always => Vec::new(),
            Match::AnyOf(rules) => rules
                .iter()
                .map(|conds| {
                    let conds = conds.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
                    SeccompRule::new(conds)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?,
        };
        rules.insert(*nr, list);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trace(u32::from(PH_MISMATCH)),
        SeccompAction::Trace(u32::from(PH_MATCH)),
        TargetArch::x86_64,
    )
    .map_err(backend)?;
    BpfProgram::try_from(filter).map_err(backend)
}

fn condition(c: &Cond) -> Result<SeccompCondition, seccompiler::BackendError> {
    let (op, value) = match c.op {
        Op::ScmpCmpNe => (SeccompCmpOp::Ne, c.value),
        Op::ScmpCmpLt => (SeccompCmpOp::Lt, c.value),
        Op::ScmpCmpLe => (SeccompCmpOp::Le, c.value),
        Op::ScmpCmpEq => (SeccompCmpOp::Eq, c.value),
        Op::ScmpCmpGe => (SeccompCmpOp::Ge, c.value),
        Op::ScmpCmpGt => (SeccompCmpOp::Gt, c.value),
        // libseccomp's argument order: value is the mask, valueTwo the datum.
        Op::ScmpCmpMaskedEq => (SeccompCmpOp::MaskedEq(c.value), c.value_two),
    };
    SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op, value)
}

/// Append one group: drop seccompiler's arch check, patch the placeholders.
fn append_group(
    out: &mut Vec<libc::sock_filter>,
    group: BpfProgram,
    real_ret: u32,
) -> Result<(), SeccompError> {
    let ph_match = 0x7ff0_0000 | u32::from(PH_MATCH);
    let ph_mismatch = 0x7ff0_0000 | u32::from(PH_MISMATCH);
    let body = group.get(SECCOMPILER_ARCH_CHECK_LEN..).unwrap_or(&[]);
    let len = body.len();
    for (i, insn) in body.iter().enumerate() {
        let mut ins = libc::sock_filter {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        };
        if ins.code & BPF_CLASS_MASK == BPF_RET_CLASS {
            if ins.k == ph_match {
                ins.k = real_ret;
            } else if ins.k == ph_mismatch {
                // Fall through to the next group: jump past the rest of this one.
                ins = stmt(BPF_JMP_JA, (len - i - 1) as u32);
            } else {
                return Err(SeccompError::Backend(format!(
                    "unexpected return 0x{:08x} in seccompiler output",
                    ins.k
                )));
            }
        }
        out.push(ins);
    }
    Ok(())
}
