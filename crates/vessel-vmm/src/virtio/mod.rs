//! virtio devices on the virtio-mmio transport (virtio 1.x, "modern" MMIO
//! version 2). `mmio` is the register file the guest driver talks to; each
//! device implements [`VirtioDevice`] and gets its queues, their kick
//! eventfds (KVM ioeventfds on QueueNotify: a guest notify is an eventfd
//! signal, not an exit to this process) and an [`Interrupt`] (a KVM irqfd)
//! when the driver sets DRIVER_OK.
//!
//! The guest learns of each device from the ACPI DSDT (`acpi.rs`: a
//! LNRO0005 device with its register window and interrupt), which the
//! virtio_mmio driver matches when the agent loads it. The command-line way
//! (`virtio_mmio.device=`) would need legacy ISA IRQ routing this machine
//! model does not have (no PIC).

pub mod console;
mod console_control;
pub mod fs;
pub mod mmio;
pub mod net;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::layout::{VIRTIO_MMIO_BASE, VIRTIO_MMIO_FIRST_IRQ, VIRTIO_MMIO_SIZE};

/// The virtio devices of a VM, in slot order (see [`plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The agent channel (virtio-console), always slot 0.
    AgentChannel,
    /// The container's network interface (virtio-net on a tap), when the
    /// runtime passed one (`--net-fd`).
    Net(net::NetParams),
    /// A virtio-fs share served by a vhost-user backend (`--virtiofs`).
    Fs(crate::args::FsShare),
}

/// The devices `args` ask for, in slot order: slot N is the Nth entry. The
/// ACPI tables declare exactly these, so the guest probes no empty slot.
pub fn plan(args: &crate::args::VmmArgs) -> Vec<Kind> {
    let mut kinds = vec![Kind::AgentChannel];
    kinds.extend(args.net.map(Kind::Net));
    if let Some(share) = &args.virtiofs {
        kinds.push(Kind::Fs(share.clone()));
    }
    kinds
}

/// VIRTIO_F_VERSION_1: the device speaks virtio 1.x (little-endian, modern layout).
pub const F_VERSION_1: u64 = 1 << 32;

/// Device types (virtio spec 5).
pub const TYPE_CONSOLE: u32 = 3;

/// The guest-physical address of the device in `slot`.
pub fn slot_addr(slot: u32) -> u64 {
    VIRTIO_MMIO_BASE + u64::from(slot) * VIRTIO_MMIO_SIZE
}

/// The interrupt line (GSI) of the device in `slot`.
pub fn slot_irq(slot: u32) -> u32 {
    VIRTIO_MMIO_FIRST_IRQ + slot
}

/// InterruptStatus bit: a queue has new used buffers (virtio-mmio 4.2.2).
pub const INT_USED_RING: u32 = 1;

/// A device's interrupt: the status bits the guest reads and acknowledges
/// through the transport, and the irqfd that raises the line.
pub struct Interrupt {
    status: AtomicU32,
    irq: EventFd,
}

impl Interrupt {
    pub fn new(irq: EventFd) -> Self {
        Interrupt {
            status: AtomicU32::new(0),
            irq,
        }
    }

    /// Tells the guest that a queue has new used buffers.
    pub fn signal_used(&self) -> io::Result<()> {
        self.status.fetch_or(INT_USED_RING, Ordering::SeqCst);
        self.irq.write(1)
    }

    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    pub fn acknowledge(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Raises the line again while the guest has not acknowledged: the
    /// line is an edge through the IOAPIC, and an edge that arrives while
    /// the guest has the pin masked is lost (a real level line would stay
    /// up). A spare edge is harmless: the driver reads the status first.
    pub fn kick_if_pending(&self) {
        if self.status() != 0 {
            let _ = self.irq.write(1);
        }
    }
}

/// What a device gets when the driver has set it up (DRIVER_OK).
pub struct Activation {
    pub mem: GuestMemoryMmap,
    /// The features the driver accepted (a subset of the device's).
    pub driver_features: u64,
    /// The queues as the driver configured them, in queue-index order.
    pub queues: Vec<Queue>,
    /// Each queue's kick: signalled when the guest writes its index to
    /// QueueNotify.
    pub kicks: Vec<EventFd>,
    pub interrupt: std::sync::Arc<Interrupt>,
}

/// One virtio device behind an MMIO transport.
pub trait VirtioDevice: Send {
    /// The virtio device type (e.g. [`TYPE_CONSOLE`]).
    fn device_type(&self) -> u32;
    /// The maximum size of each queue; the length is the queue count.
    fn queue_max_sizes(&self) -> &[u16];
    /// The feature bits the device offers ([`F_VERSION_1`] at least).
    fn features(&self) -> u64;
    /// Reads the device-specific configuration space at `offset`.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver writes the configuration space; most devices ignore it.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Starts the device's work (usually a thread) on the driver's queues.
    fn activate(&mut self, activation: Activation) -> Result<(), String>;
}

/// Copies `data.len()` bytes of `config` from `offset` (zeros past its end).
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let start = offset as usize;
    if start < config.len() {
        let n = data.len().min(config.len() - start);
        data[..n].copy_from_slice(&config[start..start + n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_puts_the_fs_share_after_the_agent_channel() {
        let mut args = crate::args::parse(&["--kernel".into(), "/k".into()]).unwrap();
        assert_eq!(plan(&args), vec![Kind::AgentChannel]);
        let share = crate::args::parse_fs_share("/s:tag").unwrap();
        args.virtiofs = Some(share.clone());
        assert_eq!(plan(&args), vec![Kind::AgentChannel, Kind::Fs(share)]);
    }

    #[test]
    fn slots_do_not_overlap() {
        assert_eq!(slot_addr(0), 0xd000_0000);
        assert_eq!(slot_addr(2), 0xd000_2000);
        assert_eq!((slot_irq(0), slot_irq(2)), (5, 7));
    }

    #[test]
    fn config_reads_past_the_end_are_zero() {
        let cfg = [1u8, 2, 3];
        let mut out = [9u8; 4];
        read_config_bytes(&cfg, 1, &mut out);
        assert_eq!(out, [2, 3, 0, 0]);
        read_config_bytes(&cfg, 8, &mut out);
        assert_eq!(out, [0; 4]);
    }
}
