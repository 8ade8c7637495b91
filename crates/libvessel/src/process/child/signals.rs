//! Signal dispositions in the init and the exec'd process.

/// Every signal disposition back to its default. An ignored signal survives
/// execve: Rust's runtime ignores SIGPIPE, and vessel's caller may have
/// ignored others (a shell's background job ignores SIGINT and SIGQUIT);
/// none of that may reach a container's process.
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMIN() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: signal(2) with SIG_DFL; async-signal-safe.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// While the init waits for `start`, a signal that would end a process
/// ends it (a `created` container stops on SIGTERM, as runc's does). A pid
/// namespace's init gets no signal from outside its namespace that it has
/// no handler for (except SIGKILL/SIGSTOP), so the default action is not
/// enough: install a handler that exits 128+N. execve resets handled
/// signals to SIG_DFL, so the workload starts with default dispositions.
pub(super) fn exit_on_fatal_signals() {
    extern "C" fn on_fatal(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) }
    }
    const FATAL: [libc::c_int; 18] = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGUSR1,
        libc::SIGSEGV,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGSYS,
    ];
    // SAFETY: sigaction with a zeroed struct, an empty mask and a handler
    // that only calls _exit; the realtime range has terminate as default.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fatal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in FATAL
            .into_iter()
            .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
            .chain([libc::SIGPROF, libc::SIGIO, libc::SIGPWR, libc::SIGSTKFLT])
        {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
