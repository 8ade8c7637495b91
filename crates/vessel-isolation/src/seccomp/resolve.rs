//! From an OCI profile to a `Plan`: each rule's action and conditions
//! resolved, syscall names turned into x86_64 numbers, rules grouped by
//! action, and the actions for the other x86 ABIs and for syscalls newer
//! than the profile.

use super::{syscall_nr, Action, SeccompError, NOTIFY_FORBIDDEN};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompOperator};
use std::collections::BTreeMap;

/// One argument comparison, 64-bit, as libseccomp does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    pub op: LinuxSeccompOperator,
    pub value: u64,
    pub value_two: u64,
}

/// How calls of one syscall number match within one action group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match {
    /// Every call (a rule without args).
    Always,
    /// Any of these rules (each a list of AND'ed conditions).
    AnyOf(Vec<Vec<Cond>>),
}

/// Rules grouped by action, then by syscall number.
pub(crate) type Groups = BTreeMap<Action, BTreeMap<i64, Match>>;

/// The resolved profile, ready for `bpf::assemble`.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub default: Action,
    pub i386: Action,
    pub x32: Action,
    pub groups: Groups,
    /// The highest x86_64 number the profile names, when calls above it
    /// must fail with ENOSYS (see `plan`).
    pub enosys_above: Option<u32>,
}

/// Resolve names, actions and conditions; group the rules by action.
pub(crate) fn plan(
    seccomp: &LinuxSeccomp,
    warn: &mut dyn FnMut(String),
) -> Result<Plan, SeccompError> {
    let default = default_action(seccomp)?;
    let (groups, last_named) = group_rules(seccomp, default, warn)?;
    let (i386, x32) = foreign_arch_actions(seccomp, default, &groups, warn);
    Ok(Plan {
        default,
        i386,
        x32,
        groups,
        enosys_above: enosys_above(default, last_named),
    })
}

fn default_action(seccomp: &LinuxSeccomp) -> Result<Action, SeccompError> {
    let default = Action::from_oci(seccomp.default_action(), seccomp.default_errno_ret())
        .map_err(|why| SeccompError::Msg(format!("defaultErrnoRet: {why}")))?;
    if default == Action::Notify {
        // The child would block on its own calls before anyone listens.
        return Err(SeccompError::Msg(
            "SCMP_ACT_NOTIFY cannot be the default action".into(),
        ));
    }
    Ok(default)
}

/// Every rule whose action is not the default, grouped by action and
/// syscall number; with the highest syscall number the profile names
/// (whatever its action, as runc counts).
fn group_rules(
    seccomp: &LinuxSeccomp,
    default: Action,
    warn: &mut dyn FnMut(String),
) -> Result<(Groups, Option<i64>), SeccompError> {
    let mut groups: Groups = BTreeMap::new();
    let mut last_named: Option<i64> = None;
    for call in seccomp.syscalls().iter().flatten() {
        let action = Action::from_oci(call.action(), call.errno_ret()).map_err(|why| {
            SeccompError::Rule {
                name: call.names().join(","),
                why,
            }
        })?;
        let rules =
            rules_of(call.args().as_deref().unwrap_or(&[])).map_err(|why| SeccompError::Rule {
                name: call.names().join(","),
                why,
            })?;
        for name in call.names() {
            check_notify_allowed(action, name)?;
            let Some(nr) = syscall_nr(name) else {
                if action != default {
                    warn(format!("seccomp: unknown syscall {name:?} ignored"));
                }
                continue;
            };
            // runc counts every named syscall, whatever its action.
            last_named = last_named.max(Some(nr));
            if action != default {
                add_rule(&mut groups, action, nr, &rules);
            }
        }
    }
    Ok((groups, last_named))
}

/// SCMP_ACT_NOTIFY is refused for the syscalls vessel itself uses to hand
/// the listener over.
fn check_notify_allowed(action: Action, name: &str) -> Result<(), SeccompError> {
    if action == Action::Notify && NOTIFY_FORBIDDEN.contains(&name) {
        return Err(SeccompError::Rule {
            name: name.to_owned(),
            why: format!(
                "SCMP_ACT_NOTIFY cannot be used for the {name} syscall: vessel hands \
                 the listener fd over with it, before any agent holds the listener"
            ),
        });
    }
    Ok(())
}

/// Merge one entry's rules for `nr` into its action group: a rule without
/// args matches every call, otherwise the conditions add up (any of them).
fn add_rule(groups: &mut Groups, action: Action, nr: i64, rules: &Option<Vec<Vec<Cond>>>) {
    let slot = groups.entry(action).or_default().entry(nr);
    match (slot, rules) {
        (std::collections::btree_map::Entry::Vacant(v), r) => {
            v.insert(match r {
                None => Match::Always,
                Some(r) => Match::AnyOf(r.clone()),
            });
        }
        (std::collections::btree_map::Entry::Occupied(mut o), r) => match (o.get_mut(), r) {
            (Match::Always, _) => {}
            (m @ Match::AnyOf(_), None) => *m = Match::Always,
            (Match::AnyOf(have), Some(more)) => have.extend(more.iter().cloned()),
        },
    }
}

/// The actions for i386 and x32 calls: killed when their architecture is
/// not listed; otherwise the default when it denies (or nothing else is
/// allowed), else ENOSYS. Warns about listed architectures other than
/// x86_64's.
fn foreign_arch_actions(
    seccomp: &LinuxSeccomp,
    default: Action,
    groups: &Groups,
    warn: &mut dyn FnMut(String),
) -> (Action, Action) {
    let archs: Vec<Arch> = seccomp.architectures().clone().unwrap_or_default();
    let listed = |a: Arch| archs.contains(&a);
    for a in &archs {
        if !matches!(
            a,
            Arch::ScmpArchX86_64 | Arch::ScmpArchNative | Arch::ScmpArchX86 | Arch::ScmpArchX32
        ) {
            warn(format!("seccomp: architecture {a} ignored (x86_64 host)"));
        }
    }
    let foreign = |is_listed: bool| {
        if !is_listed {
            Action::KillProcess
        } else if default.denies() || groups.is_empty() {
            default
        } else {
            Action::Errno(libc::ENOSYS as u16)
        }
    };
    (
        foreign(listed(Arch::ScmpArchX86)),
        foreign(listed(Arch::ScmpArchX32)),
    )
}

/// runc's -ENOSYS stub (libcontainer/seccomp/patchbpf): under a profile
/// that denies by default, a syscall newer than every syscall the profile
/// names fails with ENOSYS, so libc falls back to the older call (clone3
/// to clone, faccessat2 to faccessat) instead of taking the default
/// action. Permissive defaults need no stub, nor does a default that
/// already returns ENOSYS.
fn enosys_above(default: Action, last_named: Option<i64>) -> Option<u32> {
    let enosys = Action::Errno(libc::ENOSYS as u16);
    match default {
        Action::Allow | Action::Log => None,
        d if d == enosys => None,
        _ => last_named.and_then(|n| u32::try_from(n).ok()),
    }
}

/// The rules of one OCI syscall entry: None for "no args" (always matches).
fn rules_of(args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<Option<Vec<Vec<Cond>>>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut conds = Vec::with_capacity(args.len());
    for a in args {
        let index = u8::try_from(a.index())
            .ok()
            .filter(|i| *i <= 5)
            .ok_or_else(|| format!("argument index {} out of range 0..=5", a.index()))?;
        conds.push(Cond {
            index,
            op: a.op(),
            value: a.value(),
            value_two: a.value_two().unwrap_or(0),
        });
    }
    let mut seen = [0u8; 6];
    for c in &conds {
        seen[usize::from(c.index)] += 1;
    }
    if seen.iter().any(|n| *n > 1) {
        // runc: the same argument twice means each condition is its own rule.
        Ok(Some(conds.into_iter().map(|c| vec![c]).collect()))
    } else {
        Ok(Some(vec![conds]))
    }
}
