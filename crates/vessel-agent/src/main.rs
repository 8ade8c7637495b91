//! vessel-agent: PID 1 of a VM-mode guest.
//!
//! It mounts the kernel filesystems, makes the bundle's rootfs (shared over
//! virtio-fs, `share`) its root, mounts the spec's mounts and volumes under
//! it, applies hostname and sysctls, brings up the network (`net`), masks
//! and makes read-only the spec's paths, runs `process` with the spec's user, rlimits, cwd,
//! env, capabilities, no_new_privs and seccomp profile (`confine`, on the
//! code container mode uses: vessel-isolation), relays its stdio over the
//! virtio-console port named `vessel.agent` (`port`) as frames of `vessel_protocol`, forwards
//! the host's signals to it, and when it exits, reports its status to the
//! VMM as an 'X' (exit code) or 'K' (signal) frame. A set-up error goes out
//! as an 'R' frame and exit code 127 (not found), 126 (not executable) or
//! 125 (anything else).
//!
//! Its own notes (skipped mounts and the like) go to /dev/console (COM1),
//! which the VMM keeps in the container's console.log.
//!
//! A static binary copied into every guest's initramfs, so it stays small:
//! it depends on `vessel-protocol` (the channel's frames, shared with the
//! VMM), `vessel-common` (the rlimit and mount-option tables container mode
//! also reads), `vessel-isolation` (capabilities and seccomp, shared with
//! container mode's init), oci-spec (the types of those two), nix, libc and
//! serde_json; never on libvessel or the VMM.

mod cgroup;
mod confine;
mod enter;
mod exec;
mod handshake;
mod late_net;
mod modules;
mod net;
mod port;
mod power;
mod query;
mod relay;
mod resolve;
mod setup;
mod share;
mod spawn;
mod spec;
mod tty;

use enter::Enter;
use power::End;
use spawn::Failure;
use std::fs::File;
use vessel_protocol as protocol;

/// A line on the kernel console (COM1).
pub fn console_note(msg: &str) {
    eprintln!("vessel-agent: {msg}");
}

fn main() {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        eprintln!(
            "vessel-agent: must run as PID 1 (the init of a vessel VM guest); refusing to run here"
        );
        std::process::exit(2);
    }
    // SAFETY: ignoring SIGPIPE for the agent itself; the child resets it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

    let mut channel: Option<File> = None;
    let status = match run(&mut channel) {
        Ok(status) => status,
        Err(f) => {
            let line = format!("vessel-agent: {}\n", f.msg);
            console_note(&f.msg);
            if let Some(ch) = channel.as_mut() {
                relay::send(ch, protocol::KIND_STDERR, line.as_bytes());
            }
            power::report_exit(channel.as_mut(), End::Exited(f.code as u8))
        }
    };
    let end = if libc::WIFSIGNALED(status) {
        End::Killed(libc::WTERMSIG(status) as u8)
    } else {
        End::Exited(libc::WEXITSTATUS(status) as u8)
    };
    power::report_exit(channel.as_mut(), end)
}

/// Set up the guest, start the workload and relay until it exits; returns
/// its wait status.
fn run(channel: &mut Option<File>) -> Result<i32, Failure> {
    setup::base_mounts().map_err(Failure::other)?;
    modules::load().map_err(|e| Failure::other(e.to_string()))?;
    *channel = Some(port::open_channel().map_err(Failure::other)?);
    let cfg = spec::load(spec::CONFIG_PATH).map_err(Failure::other)?;
    let process = cfg
        .process
        .as_ref()
        .ok_or_else(|| Failure::other("config.json has no process"))?;
    cgroup::prepare(cfg.linux.as_ref()).map_err(Failure::other)?;
    let mut sigfd = relay::sigchld_fd().map_err(Failure::other)?;
    let ch = channel
        .as_mut()
        .ok_or_else(|| Failure::other("agent channel not open"))?;
    // The guest's network, from the initramfs or, when the runtime
    // connected it after the hooks, from the channel; and the MAC the
    // VMM gave the interface: the container's, or a stand-in the agent
    // replaces.
    let late_net = std::fs::read_to_string("/proc/cmdline")
        .is_ok_and(|c| vessel_protocol::launch::net_late(&c));
    let (guest_net, mut early, device_mac) = if late_net {
        let (net, early) = late_net::receive(ch).map_err(Failure::other)?;
        (net, early, vessel_protocol::launch::LATE_NET_MAC)
    } else {
        let net = net::load().map_err(Failure::other)?;
        let mac = net.as_ref().map(|n| n.mac).unwrap_or_default();
        (net, relay::Early::default(), mac)
    };
    // The container, set up by the workload's child in its own namespaces
    // (`enter`); the agent keeps the initramfs as its root.
    let set_up = || -> Result<(), Failure> {
        // The rootfs over virtio-fs becomes the root before the spec's
        // mounts, which go under it.
        let mut volumes = match share::tag() {
            Some(tag) => Some(share::enter(&tag, &cfg).map_err(Failure::other)?),
            None => None,
        };
        setup::own_kernel_mounts(&cfg).map_err(Failure::other)?;
        setup::spec_mounts(&cfg, volumes.as_mut()).map_err(Failure::other)?;
        setup::hostname(&cfg).map_err(Failure::other)?;
        // Before the read-only paths (a read-only root): it writes /etc files.
        net::setup(guest_net.as_ref(), device_mac).map_err(Failure::other)?;
        setup::sysctls(&cfg).map_err(Failure::other)?;
        setup::protect_paths(&cfg).map_err(Failure::other)
    };
    let tty = process.terminal.then(tty::cmdline_clears_onlcr);
    let mut namespaces = None;
    let mut on_ready = |pid: i32, master: Option<i32>| -> Result<(), Failure> {
        namespaces = Some(enter::Namespaces::of(pid).map_err(Failure::other)?);
        if let Some(master) = master {
            early = relay::initial_window_size(ch, master, std::mem::take(&mut early));
        }
        Ok(())
    };
    let workload = spawn::start(
        process,
        cfg.linux.as_ref(),
        &cfg.seccomp_extra_flags,
        &Enter::Create(&set_up),
        tty,
        &mut on_ready,
    )?;
    let namespaces =
        namespaces.ok_or_else(|| Failure::other("the workload's namespaces are unknown"))?;
    if share::tag().is_some() {
        // The workload's root is the share now, not the initramfs.
        share::free_initramfs();
    }
    let spawn_exec = |p: &spec::Process, tty: Option<bool>| {
        spawn::start(
            p,
            cfg.linux.as_ref(),
            &cfg.seccomp_extra_flags,
            &Enter::Join(&namespaces),
            tty,
            &mut |_, _| Ok(()),
        )
    };
    Ok(relay::run(ch, workload, early, &mut sigfd, &spawn_exec))
}
