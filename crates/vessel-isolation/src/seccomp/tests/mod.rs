//! Unit tests: compile profiles and run the BPF for real in a forked child.
//! The child only makes raw syscalls after fork (the test process has threads).

use super::*;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde_json::json;
use std::time::Instant;

mod listener;

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("profile JSON")
}

fn build(v: serde_json::Value) -> Program {
    compile(&profile(v), &mut |w| eprintln!("warning: {w}")).expect("compile")
}

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Fork; the child sets no_new_privs and RLIMIT_CORE=0, installs `prog`, and
/// exits with what `body` returns (200 if install failed).
fn in_child(prog: &Program, body: impl FnOnce() -> i32) -> WaitStatus {
    // SAFETY: the child runs only raw syscalls and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain syscalls on stack data in the forked child.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            }
            let code = match prog.install() {
                Ok(_) => body(),
                Err(_) => 200,
            };
            // SAFETY: leave the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

fn exited(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child did not exit normally: {other:?}"),
    }
}

fn killed_by_sigsys(status: WaitStatus) -> bool {
    matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _))
}

/// errno of a raw syscall result, 0 on success.
fn err_of(rc: libc::c_long) -> i32 {
    if rc < 0 {
        errno()
    } else {
        0
    }
}

#[test]
fn errno_action_returns_the_given_errno() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }));
    // Without the filter this path gives ENOENT.
    let code = in_child(&prog, || {
        // SAFETY: raw syscall with a static C string.
        err_of(unsafe { libc::syscall(libc::SYS_mkdir, c"/nonexistent-vessel/x".as_ptr(), 0o755) })
    });
    assert_eq!(exited(code), libc::EACCES);
    let plain = in_child(&Program::default(), || 0);
    assert_eq!(exited(plain), 200, "an empty program must not install");
}

#[test]
fn default_errno_and_allow_list() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [{"names": ["getpid", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let code = in_child(&prog, || {
        // SAFETY: raw syscalls without arguments.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        if pid <= 0 {
            return 100;
        }
        // SAFETY: as above.
        err_of(unsafe { libc::syscall(libc::SYS_getppid) })
    });
    assert_eq!(exited(code), libc::EPERM);
}

#[test]
fn kill_and_trap_actions_end_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
    ] {
        let prog = build(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        }));
        let status = in_child(&prog, || {
            // SAFETY: raw syscall without arguments.
            unsafe { libc::syscall(libc::SYS_getppid) };
            0
        });
        assert!(killed_by_sigsys(status), "{action}: {status:?}");
    }
}

#[test]
fn log_allows_and_trace_without_tracer_gives_enosys() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getpgrp"], "action": "SCMP_ACT_TRACE"}
        ]
    }));
    let code = in_child(&prog, || {
        // SAFETY: raw syscalls without arguments.
        let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
        if ppid <= 0 {
            return 100;
        }
        // SAFETY: as above.
        err_of(unsafe { libc::syscall(libc::SYS_getpgrp) })
    });
    assert_eq!(exited(code), libc::ENOSYS);
}

#[test]
fn personality_allowed_for_listed_values_only() {
    // Two rules for one name are OR'ed: query (0xffffffff) or PER_LINUX (0).
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let code = in_child(&prog, || {
        // SAFETY: personality only changes this child's persona.
        unsafe {
            if libc::syscall(libc::SYS_personality, 0xffff_ffffu64) < 0 {
                return 101;
            }
            if libc::syscall(libc::SYS_personality, 0u64) < 0 {
                return 102;
            }
            err_of(libc::syscall(libc::SYS_personality, 8u64)) // PER_LINUX32
        }
    });
    assert_eq!(exited(code), libc::EPERM);
}

/// dup3(1000, newfd, 0) with a rule "arg0 == 1000 AND arg1 <op> 5 -> EACCES";
/// the default allows, so a miss gives EBADF (fd 1000 is not open).
fn dup3_errno(op: &str, value: u64, value_two: u64, newfd: u64) -> i32 {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
            {"index": 0, "value": 1000, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": value, "valueTwo": value_two, "op": op}
        ]}]
    }));
    exited(in_child(&prog, move || {
        // SAFETY: dup3 on an fd that is not open fails with EBADF.
        err_of(unsafe { libc::syscall(libc::SYS_dup3, 1000u64, newfd, 0u64) })
    }))
}

#[test]
fn all_seven_operators_with_two_args() {
    const HIT: i32 = libc::EACCES;
    const MISS: i32 = libc::EBADF;
    let cases: &[(&str, u64, u64, u64, i32)] = &[
        ("SCMP_CMP_NE", 5, 0, 5, MISS),
        ("SCMP_CMP_NE", 5, 0, 6, HIT),
        ("SCMP_CMP_LT", 5, 0, 4, HIT),
        ("SCMP_CMP_LT", 5, 0, 5, MISS),
        ("SCMP_CMP_LE", 5, 0, 5, HIT),
        ("SCMP_CMP_LE", 5, 0, 6, MISS),
        ("SCMP_CMP_EQ", 5, 0, 5, HIT),
        ("SCMP_CMP_EQ", 5, 0, 4, MISS),
        ("SCMP_CMP_GE", 5, 0, 5, HIT),
        ("SCMP_CMP_GE", 5, 0, 4, MISS),
        ("SCMP_CMP_GT", 5, 0, 6, HIT),
        ("SCMP_CMP_GT", 5, 0, 5, MISS),
        // 64-bit compare: a high word makes it large, not 5.
        ("SCMP_CMP_LT", 6, 0, 0x1_0000_0005, MISS),
        ("SCMP_CMP_EQ", 5, 0, 0x1_0000_0005, MISS),
        // MASKED_EQ: value is the mask, valueTwo the expected result.
        ("SCMP_CMP_MASKED_EQ", 0b110, 0b100, 4, HIT),
        ("SCMP_CMP_MASKED_EQ", 0b110, 0b100, 5, HIT),
        ("SCMP_CMP_MASKED_EQ", 0b110, 0b100, 6, MISS),
    ];
    for &(op, value, two, newfd, want) in cases {
        assert_eq!(
            dup3_errno(op, value, two, newfd),
            want,
            "{op} value={value} valueTwo={two} arg1={newfd}"
        );
    }
    // The other argument must match too (AND).
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
            {"index": 0, "value": 1000, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}
        ]}]
    }));
    let code = in_child(&prog, || {
        // SAFETY: dup3 on an fd that is not open fails with EBADF.
        err_of(unsafe { libc::syscall(libc::SYS_dup3, 999u64, 5u64, 0u64) })
    });
    assert_eq!(exited(code), MISS);
}

#[test]
fn same_arg_twice_is_or_like_runc() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
            {"index": 1, "value": 5, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}
        ]}]
    }));
    for (newfd, want) in [(5u64, libc::EACCES), (7, libc::EACCES), (6, libc::EBADF)] {
        let code = in_child(&prog, move || {
            // SAFETY: dup3 on an fd that is not open fails with EBADF.
            err_of(unsafe { libc::syscall(libc::SYS_dup3, 1000u64, newfd, 0u64) })
        });
        assert_eq!(exited(code), want, "newfd {newfd}");
    }
}

#[test]
fn most_restrictive_action_wins_on_overlap() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit", "exit_group", "dup3"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    for (newfd, want) in [(5u64, libc::EACCES), (6, libc::EBADF)] {
        let code = in_child(&prog, move || {
            // SAFETY: dup3 on an fd that is not open fails with EBADF.
            err_of(unsafe { libc::syscall(libc::SYS_dup3, 1000u64, newfd, 0u64) })
        });
        assert_eq!(exited(code), want, "newfd {newfd}");
    }
}

#[test]
fn x32_calls_take_the_default_or_are_killed() {
    let listed = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getpid", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let code = in_child(&listed, || {
        // SAFETY: an x32-numbered getpid; the filter answers before dispatch.
        err_of(unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) })
    });
    assert_eq!(exited(code), 13);
    let unlisted = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let status = in_child(&unlisted, || {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) };
        0
    });
    assert!(killed_by_sigsys(status), "{status:?}");
}

#[test]
fn unknown_names_warn_and_foreign_arches_warn() {
    let mut warnings = Vec::new();
    let prog = compile(
        &profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["no_such_call", "mkdir"], "action": "SCMP_ACT_ERRNO"}]
        })),
        &mut |w| warnings.push(w),
    )
    .expect("unknown names are not an error");
    assert!(
        warnings.iter().any(|w| w.contains("no_such_call")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("SCMP_ARCH_AARCH64")),
        "{warnings:?}"
    );
    assert!(!prog.wants_listener);
}

#[test]
fn invalid_profiles_are_rejected() {
    let bad = [
        json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
            {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
            {"names": ["sendto"], "action": "SCMP_ACT_NOTIFY"}]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
    ];
    for p in bad {
        assert!(compile(&profile(p.clone()), &mut |_| {}).is_err(), "{p}");
    }
}

fn default_profile() -> LinuxSeccomp {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../runtime-spec/seccomp-default.json"
    );
    let text = std::fs::read_to_string(path).expect("read default profile");
    serde_json::from_str(&text).expect("parse default profile")
}

#[test]
fn default_profile_compiles_small_and_behaves() {
    let seccomp = default_profile();
    let mut warnings = Vec::new();
    let start = Instant::now();
    let prog = compile(&seccomp, &mut |w| warnings.push(w)).expect("compile default profile");
    let took = start.elapsed();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(prog.len() < bpf::MAX_INSNS);
    eprintln!(
        "default profile: {} BPF instructions ({} bytes), compiled in {:?}",
        prog.len(),
        prog.len() * 8,
        took
    );
    let code = in_child(&prog, || {
        // SAFETY: raw syscalls whose only effects are on this child.
        unsafe {
            if libc::syscall(libc::SYS_getpid) <= 0 {
                return 101;
            }
            if libc::syscall(libc::SYS_personality, 8u64) < 0 {
                return 102; // PER_LINUX32 is allowed
            }
            if err_of(libc::syscall(libc::SYS_personality, 0x0040_0000u64)) != libc::EPERM {
                return 103; // READ_IMPLIES_EXEC is not
            }
            if err_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS as u64)) != libc::EPERM {
                return 104;
            }
            if err_of(libc::syscall(libc::SYS_clone3, 0u64, 0u64)) != libc::ENOSYS {
                return 105;
            }
            if err_of(libc::syscall(libc::SYS_socket, 40u64, 1u64, 0u64)) != libc::EPERM {
                return 106; // AF_VSOCK
            }
            if err_of(libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWNET as u64,
                0u64,
            )) != libc::EPERM
            {
                return 107;
            }
            0
        }
    });
    assert_eq!(exited(code), 0);
}

#[test]
fn no_placeholder_survives_assembly() {
    let prog = compile(&default_profile(), &mut |_| {}).expect("compile");
    for (i, ins) in prog.filter.iter().enumerate() {
        if ins.code == 0x06 {
            assert_ne!(
                ins.k & 0xffff_0000,
                0x7ff0_0000,
                "TRACE placeholder left at {i}"
            );
        }
    }
}

#[test]
fn syscall_table_is_sorted_and_knows_common_calls() {
    let t = syscalls_x86_64::SYSCALLS_X86_64;
    assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(syscall_nr("read"), Some(libc::SYS_read));
    assert_eq!(syscall_nr("execve"), Some(libc::SYS_execve));
    assert_eq!(syscall_nr("clone3"), Some(libc::SYS_clone3));
    assert_eq!(syscall_nr("mseal"), Some(libc::SYS_mseal));
    assert_eq!(syscall_nr("personality"), Some(libc::SYS_personality));
    assert_eq!(syscall_nr("nope"), None);
}

/// runc's -ENOSYS stub: under a deny-by-default profile a syscall numbered
/// above every named one fails with ENOSYS; one within the range gets the
/// default; permissive defaults have no stub.
#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    let deny = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["getpid", "exit", "exit_group", "statx"], "action": "SCMP_ACT_ALLOW"},
            // Named with the default's action: still counts (as in runc).
            {"names": ["membarrier"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    let code = in_child(&deny, || {
        // SAFETY: raw syscalls the filter answers before the kernel runs them.
        unsafe {
            if err_of(libc::syscall(libc::SYS_clone3, 0u64, 0u64)) != libc::ENOSYS {
                return 101;
            }
            if err_of(libc::syscall(libc::SYS_faccessat2, -1i64, 0u64, 0u64, 0u64)) != libc::ENOSYS
            {
                return 102;
            }
            // Within the named range but not allowed: the default (EPERM).
            if err_of(libc::syscall(libc::SYS_ptrace, 0u64, 0u64)) != libc::EPERM {
                return 103;
            }
            // membarrier (324) is named: 332 (statx) is the highest, 324 < 332.
            if err_of(libc::syscall(libc::SYS_membarrier, 0u64, 0u64)) != libc::EPERM {
                return 104;
            }
            // x32 and i386 ABIs: unified numbers (>= 424) above the profile
            // are ENOSYS, older x32 numbers take the default.
            if err_of(libc::syscall(libc::SYS_clone3 | 0x4000_0000, 0u64, 0u64)) != libc::ENOSYS {
                return 105;
            }
            if err_of(libc::syscall(libc::SYS_ptrace | 0x4000_0000, 0u64, 0u64)) != libc::EPERM {
                return 106;
            }
            // x32's own variants (512 and up) are not "newer": the default.
            if err_of(libc::syscall(0x4000_0000 | 514, 0u64, 0u64)) != libc::EPERM {
                return 107;
            }
            if libc::syscall(libc::SYS_getpid) <= 0 {
                return 108;
            }
            0
        }
    });
    assert_eq!(exited(code), 0);

    let allow = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let code = in_child(&allow, || {
        // SAFETY: getpid has no side effect; close_range on no fds does nothing.
        unsafe {
            // close_range (436) is above mkdir (83) but the default allows it.
            if libc::syscall(libc::SYS_close_range, 1_000_000u64, 1_000_001u64, 0u64) != 0 {
                return 101;
            }
        }
        0
    });
    assert_eq!(exited(code), 0);

    let enosys_default = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["getpid", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert!(
        enosys_default.len() < deny.len(),
        "no stub when the default is ENOSYS already"
    );
}
