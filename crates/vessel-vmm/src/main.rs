//! vessel-vmm: vessel's own VMM. One process per VM-mode container, started
//! by the runtime's `create` (libvessel's `vm::launch`) as the container's
//! pid: it boots the guest kernel with the agent's initramfs in a KVM
//! microVM and relays stdio, signals and the exit status over the agent
//! channel (a virtio-console device on virtio-mmio).
//!
//! Its own binary, not a subcommand of `vessel`: a VMM process carries only
//! the VMM (no runtime, no compare tool), runs from the file on disk shared
//! by every VM's page cache, and its seccomp filter covers only its own code.
//! It depends on the rust-vmm crates, `vessel-protocol` (the agent channel
//! and launch bounds) and `vessel-common`; never on libvessel.
//!
//! Flow: parse args, refuse hosts where KVM cannot boot a stock kernel,
//! create the VM (TSS, irqchip, PIT), map guest RAM, load the kernel (PVH)
//! and initrd, configure the vCPUs, wait on the exec FIFO, sandbox, run.

mod acpi;
pub mod args;
mod boot;
mod boot_watch;
mod channel;
mod cpu;
mod devices;
mod exec;
pub mod layout;
mod memory;
mod pause;
pub mod sandbox;
mod tty;
mod vcpu;
mod virtio;

use std::convert::Infallible;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use nix::sys::signal::{pthread_sigmask, SigmaskHow};
use seccompiler::BpfProgram;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use args::VmmArgs;
use devices::{ConsoleSink, Devices};
use layout::*;
use virtio::console::{AgentChannel, ConsoleDevice};
use virtio::mmio::MmioTransport;

/// An error of the VMM with its context ("what failed: why").
#[derive(Debug)]
pub struct VmmError(String);

impl VmmError {
    pub fn new(msg: impl Into<String>) -> Self {
        VmmError(msg.into())
    }
}

impl std::fmt::Display for VmmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VmmError {}

/// How often a UART interrupt the guest has not taken is raised again.
const INTERRUPT_KICK_PERIOD: std::time::Duration = std::time::Duration::from_millis(50);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(vmm_main(&args));
}

/// `args` are the arguments after the program name. Returns only on a setup
/// error (1) or bad usage (2); once the guest runs, the process ends from
/// the vCPU thread with the workload's status.
fn vmm_main(args: &[String]) -> i32 {
    let parsed = match args::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vessel-vmm: {e}");
            return 2;
        }
    };
    match run(&parsed) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("vessel-vmm: {e}");
            1
        }
    }
}

fn debug_enabled() -> bool {
    std::env::var_os("VESSEL_VMM_DEBUG").is_some()
}

fn run(args: &VmmArgs) -> Result<Infallible, VmmError> {
    let started = Instant::now();
    let debug = debug_enabled();
    // Pause and resume are real-time signals whose default action ends the
    // process: blocked from the start, one sent before the guest runs waits
    // for the signalfd instead of killing the VMM.
    pthread_sigmask(
        SigmaskHow::SIG_BLOCK,
        Some(&channel::control_sigset()),
        None,
    )
    .map_err(|e| VmmError::new(format!("blocking the pause/resume signals: {e}")))?;
    // One malloc arena: threads then never create their own (an mmap and
    // mprotect dance the seccomp filter would otherwise have to allow).
    // SAFETY: mallopt only changes an allocator tunable.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let boot_timeout = boot_watch::boot_timeout().map_err(VmmError::new)?;
    if let Some(problem) = vessel_common::kvm::host_problem() {
        return Err(VmmError::new(problem));
    }
    // A terminal workload: stdio is the runtime's pty slave (see `tty`).
    let tty = args.tty;
    if tty {
        if !tty::stdin_is_tty() {
            return Err(VmmError::new(
                "--tty: stdin is not a terminal (the runtime gives the VMM a pty slave)",
            ));
        }
        tty::raw_mode().map_err(|e| VmmError::new(format!("terminal: {e}")))?;
        if let Err(e) = tty::make_controlling() {
            // Resizes then do not reach the guest; the rest works.
            eprintln!("vessel-vmm: terminal: {e}; window size changes are not passed on");
        }
    }
    let kvm = Kvm::new().map_err(|e| VmmError::new(format!("opening /dev/kvm: {e}")))?;
    let vm = create_vm(&kvm)?;

    let mem_bytes = args.mem_mib << 20;
    let mem = memory::create_guest_memory(&vm, mem_bytes)?;
    let execs = exec::ExecTable::new();
    // Bound before the sandbox (the VMM then has no view of the state dir).
    let exec_listener = match &args.exec_socket {
        Some(p) => Some(
            exec::listen(p)
                .map_err(|e| VmmError::new(format!("exec socket {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let entry = boot::load_guest(
        &mem,
        &args.kernel,
        args.initrd.as_deref(),
        &args.cmdline,
        &memory::ram_ranges(mem_bytes),
        args.vcpus,
        virtio::plan(args).len() as u32,
    )?;

    let (devices, mut workers, vhost_sockets) = create_devices(&vm, &mem, args, &execs)?;
    if let Some(listener) = exec_listener {
        let (agent, execs) = (devices.agent.clone(), execs.clone());
        workers.push((
            "exec",
            Box::new(move || {
                let err = exec::serve(listener, execs, agent);
                channel::write_all_fd(
                    libc::STDERR_FILENO,
                    format!("vessel-vmm: exec socket: {err}\n").as_bytes(),
                );
            }),
        ));
    }
    let _ = vcpu::DEVICES.set(devices.clone());
    let vcpus = create_vcpus(&kvm, &vm, args, entry)?;
    if debug {
        eprintln!("vessel-vmm: VM set up in {:?}", started.elapsed());
    }

    if let Some(fifo) = &args.exec_fifo {
        wait_for_start(fifo)?;
    }

    // Forwarded signals go through a signalfd: block them before any thread
    // exists so every thread inherits the mask.
    pthread_sigmask(
        SigmaskHow::SIG_BLOCK,
        Some(&channel::forwarded_sigset()),
        None,
    )
    .map_err(|e| VmmError::new(format!("blocking forwarded signals: {e}")))?;
    let sfd = channel::signal_fd().map_err(|e| VmmError::new(format!("signalfd: {e}")))?;
    pause::install_kick_handler()?;

    let report = sandbox::isolate_process(args.identity)?;
    let filter = sandbox::build_filter(&vhost_sockets)?;
    if debug {
        for s in &report.skipped {
            eprintln!("vessel-vmm: sandbox step skipped: {s}");
        }
    }
    let (forward, forwarded) = std::sync::mpsc::channel();
    start_threads(
        vcpus,
        &devices,
        forwarded,
        tty,
        &filter,
        boot_timeout,
        workers,
    )?;
    if debug {
        eprintln!(
            "vessel-vmm: guest started {:?} after launch",
            started.elapsed()
        );
    }
    let err = channel::dispatch_signals(sfd, forward, &devices);
    let _ = writeln!(
        std::io::stderr(),
        "vessel-vmm: signal dispatch stopped: {err}"
    );
    loop {
        std::thread::park();
    }
}

/// The VM with its TSS, in-kernel irqchip and PIT.
fn create_vm(kvm: &Kvm) -> Result<VmFd, VmmError> {
    let vm = kvm
        .create_vm()
        .map_err(|e| VmmError::new(format!("KVM_CREATE_VM: {e}")))?;
    vm.set_tss_address(KVM_TSS_ADDRESS as usize)
        .map_err(|e| VmmError::new(format!("KVM_SET_TSS_ADDR: {e}")))?;
    vm.create_irq_chip()
        .map_err(|e| VmmError::new(format!("KVM_CREATE_IRQCHIP: {e}")))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| VmmError::new(format!("KVM_CREATE_PIT2: {e}")))?;
    Ok(vm)
}

/// A device's own thread, started with the others before the seccomp
/// filter: its name and body.
type Worker = (&'static str, Box<dyn FnOnce() + Send>);

/// The devices, their threads, and the vhost-user sockets.
type DeviceSet = (Arc<Devices>, Vec<Worker>, Vec<std::os::fd::RawFd>);

/// The devices: COM1 (the kernel console, with its irqfd) and the virtio
/// transports, the agent channel in slot 0; with the threads they need and
/// the vhost-user sockets the seccomp filter lets them talk on (backends
/// are connected here, before the sandbox).
fn create_devices(
    vm: &VmFd,
    mem: &vm_memory::GuestMemoryMmap,
    args: &VmmArgs,
    execs: &Arc<exec::ExecTable>,
) -> Result<DeviceSet, VmmError> {
    let irq = |gsi: u32| -> Result<EventFd, VmmError> {
        let evt = EventFd::new(EFD_NONBLOCK)
            .map_err(|e| VmmError::new(format!("eventfd for IRQ {gsi}: {e}")))?;
        vm.register_irqfd(&evt, gsi)
            .map_err(|e| VmmError::new(format!("KVM_IRQFD for IRQ {gsi}: {e}")))?;
        Ok(evt)
    };
    let console_log = match &args.console_log {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| VmmError::new(format!("opening console log {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let agent = AgentChannel::new();
    let mut transports = Vec::new();
    let mut workers: Vec<Worker> = Vec::new();
    let mut vhost_sockets = Vec::new();
    for (slot, kind) in virtio::plan(args).into_iter().enumerate() {
        let device: Box<dyn virtio::VirtioDevice> = match kind {
            virtio::Kind::AgentChannel => Box::new(ConsoleDevice::new(
                agent.clone(),
                channel::FrameSink::to_stdio(execs.clone()),
            )),
            virtio::Kind::Net(p) => {
                let (device, worker) =
                    virtio::net::NetDevice::new(virtio::net::take_tap(p.fd)?, p.mac, p.mtu);
                workers.push(("net", Box::new(move || worker.run())));
                Box::new(device)
            }
            virtio::Kind::Fs(share) => {
                let (fs, socket) = virtio::fs::FsDevice::connect(&share)?;
                vhost_sockets.push(socket);
                let relay = fs.relay();
                workers.push(("fs-call", Box::new(move || relay.run())));
                Box::new(fs)
            }
        };
        transports.push(MmioTransport::new(vm, mem.clone(), slot as u32, device)?);
    }
    let devices = Devices::new(
        irq(COM1_IRQ)?,
        ConsoleSink::new(console_log),
        agent,
        transports,
    );
    Ok((Arc::new(devices), workers, vhost_sockets))
}

/// The vCPUs, configured to start the guest at `entry`.
fn create_vcpus(
    kvm: &Kvm,
    vm: &VmFd,
    args: &VmmArgs,
    entry: boot::BootEntry,
) -> Result<Vec<VcpuFd>, VmmError> {
    let supported = cpu::supported_cpuid(kvm)?;
    let mut vcpus = Vec::with_capacity(args.vcpus as usize);
    for i in 0..args.vcpus {
        let fd = vm
            .create_vcpu(i as u64)
            .map_err(|e| VmmError::new(format!("KVM_CREATE_VCPU {i}: {e}")))?;
        cpu::configure_vcpu(&fd, &supported, i, args.vcpus, entry)?;
        vcpus.push(fd);
    }
    Ok(vcpus)
}

/// The vCPU, stdin, agent-channel, signal-forwarding, interrupt-kick and device threads, with the seccomp filter on
/// all of them before any touches the guest.
fn start_threads(
    vcpus: Vec<VcpuFd>,
    devices: &Arc<Devices>,
    forwarded: std::sync::mpsc::Receiver<u8>,
    tty: bool,
    filter: &BpfProgram,
    boot_timeout: std::time::Duration,
    workers: Vec<Worker>,
) -> Result<(), VmmError> {
    let agent = &devices.agent;
    // Each thread first finishes its own start-up (glibc and std make a few
    // syscalls there) and waits at `ready`; the filter then goes on every
    // thread at once, and `go` lets them touch the guest.
    let threads = vcpus.len() + 6 + workers.len();
    let (ready, go) = (
        Arc::new(Barrier::new(threads)),
        Arc::new(Barrier::new(threads)),
    );
    for (i, fd) in vcpus.into_iter().enumerate() {
        let (ready, go, devices) = (ready.clone(), go.clone(), devices.clone());
        spawn(
            &vessel_protocol::control::vcpu_thread_name(i, false),
            move || {
                ready.wait();
                go.wait();
                vcpu::run_vcpu(fd, i as u8, devices)
            },
        )?;
    }
    {
        let (ready, go, agent) = (ready.clone(), go.clone(), agent.clone());
        spawn("stdin", move || {
            ready.wait();
            go.wait();
            channel::pump_stdin(agent)
        })?;
    }
    {
        let (ready, go, agent) = (ready.clone(), go.clone(), agent.clone());
        spawn("agent-tx", move || {
            ready.wait();
            go.wait();
            agent.run_transmit()
        })?;
    }
    {
        let (ready, go, agent) = (ready.clone(), go.clone(), agent.clone());
        spawn("signals", move || {
            ready.wait();
            go.wait();
            let err = channel::forward_signals(agent, forwarded, tty);
            let _ = writeln!(
                std::io::stderr(),
                "vessel-vmm: signal forwarding stopped: {err}"
            );
        })?;
    }
    {
        let (ready, go, devices) = (ready.clone(), go.clone(), devices.clone());
        spawn("irq-kick", move || {
            ready.wait();
            go.wait();
            loop {
                std::thread::sleep(INTERRUPT_KICK_PERIOD);
                devices.kick_stale_interrupts();
            }
        })?;
    }
    {
        let (ready, go, devices) = (ready.clone(), go.clone(), devices.clone());
        spawn("boot-watch", move || {
            ready.wait();
            go.wait();
            boot_watch::watch(devices, boot_timeout)
        })?;
    }
    for (name, body) in workers {
        let (ready, go) = (ready.clone(), go.clone());
        spawn(name, move || {
            ready.wait();
            go.wait();
            body()
        })?;
    }
    ready.wait();
    sandbox::apply_filter(filter)?;
    go.wait();
    Ok(())
}

fn spawn<F: FnOnce() + Send + 'static>(name: &str, f: F) -> Result<(), VmmError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(drop)
        .map_err(|e| VmmError::new(format!("starting thread {name}: {e}")))
}

/// The exec-FIFO handshake: opening for writing blocks until `vessel start`
/// opens it for reading; one byte "0" says the VMM was still alive.
fn wait_for_start(fifo: &Path) -> Result<(), VmmError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(fifo)
        .map_err(|e| VmmError::new(format!("opening exec FIFO {}: {e}", fifo.display())))?;
    f.write_all(b"0")
        .map_err(|e| VmmError::new(format!("writing exec FIFO {}: {e}", fifo.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmm_main_rejects_bad_usage() {
        assert_eq!(vmm_main(&[]), 2);
        assert_eq!(vmm_main(&["--vcpus".to_string(), "0".to_string()]), 2);
    }
}
