//! The virtio-mmio register file (virtio 1.x, MMIO version 2): the guest
//! driver negotiates features, sizes and places the queues, then sets
//! DRIVER_OK, which hands them to the device. QueueNotify writes never reach
//! this code: each queue's kick is a KVM ioeventfd registered at set-up.

use std::sync::Arc;

use kvm_ioctls::{IoEventAddress, VmFd};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{slot_addr, slot_irq, Activation, Interrupt, VirtioDevice};
use crate::VmmError;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x4c53_5356; // "VSSL"

// Register offsets (virtio spec 4.2.2).
const REG_MAGIC: u64 = 0x000;
const REG_VERSION: u64 = 0x004;
const REG_DEVICE_ID: u64 = 0x008;
const REG_VENDOR_ID: u64 = 0x00c;
const REG_DEVICE_FEATURES: u64 = 0x010;
const REG_DEVICE_FEATURES_SEL: u64 = 0x014;
const REG_DRIVER_FEATURES: u64 = 0x020;
const REG_DRIVER_FEATURES_SEL: u64 = 0x024;
const REG_QUEUE_SEL: u64 = 0x030;
const REG_QUEUE_NUM_MAX: u64 = 0x034;
const REG_QUEUE_NUM: u64 = 0x038;
const REG_QUEUE_READY: u64 = 0x044;
const REG_QUEUE_NOTIFY: u64 = 0x050;
const REG_INTERRUPT_STATUS: u64 = 0x060;
const REG_INTERRUPT_ACK: u64 = 0x064;
const REG_STATUS: u64 = 0x070;
const REG_QUEUE_DESC_LOW: u64 = 0x080;
const REG_QUEUE_DESC_HIGH: u64 = 0x084;
const REG_QUEUE_AVAIL_LOW: u64 = 0x090;
const REG_QUEUE_AVAIL_HIGH: u64 = 0x094;
const REG_QUEUE_USED_LOW: u64 = 0x0a0;
const REG_QUEUE_USED_HIGH: u64 = 0x0a4;
const REG_SHM_LEN_LOW: u64 = 0x0b0;
const REG_SHM_LEN_HIGH: u64 = 0x0b4;
const REG_SHM_BASE_LOW: u64 = 0x0b8;
const REG_SHM_BASE_HIGH: u64 = 0x0bc;
const REG_CONFIG_GENERATION: u64 = 0x0fc;
const REG_CONFIG: u64 = 0x100;

// Device status bits (virtio spec 2.1).
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
const STATUS_FAILED: u32 = 128;

/// One device's transport: registers, queues and the device behind them.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    slot: u32,
    queues: Vec<Queue>,
    kicks: Vec<EventFd>,
    interrupt: Arc<Interrupt>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
    activated: bool,
}

impl MmioTransport {
    /// The transport for `device` in `slot`: its kick ioeventfds and its
    /// irqfd are registered with KVM here.
    pub fn new(
        vm: &VmFd,
        mem: GuestMemoryMmap,
        slot: u32,
        device: Box<dyn VirtioDevice>,
    ) -> Result<Self, VmmError> {
        let mut queues = Vec::new();
        let mut kicks = Vec::new();
        for (index, &max) in device.queue_max_sizes().iter().enumerate() {
            let queue = Queue::new(max)
                .map_err(|e| VmmError::new(format!("virtio slot {slot}: queue {index}: {e:?}")))?;
            queues.push(queue);
            let kick = EventFd::new(EFD_NONBLOCK)
                .map_err(|e| VmmError::new(format!("virtio slot {slot}: kick eventfd: {e}")))?;
            let notify = IoEventAddress::Mmio(slot_addr(slot) + REG_QUEUE_NOTIFY);
            vm.register_ioevent(&kick, &notify, index as u32)
                .map_err(|e| {
                    VmmError::new(format!(
                        "virtio slot {slot}: KVM_IOEVENTFD for queue {index}: {e}"
                    ))
                })?;
            kicks.push(kick);
        }
        let irq = EventFd::new(EFD_NONBLOCK)
            .map_err(|e| VmmError::new(format!("virtio slot {slot}: irq eventfd: {e}")))?;
        vm.register_irqfd(&irq, slot_irq(slot))
            .map_err(|e| VmmError::new(format!("virtio slot {slot}: KVM_IRQFD: {e}")))?;
        Ok(Self::with_parts(device, mem, slot, queues, kicks, irq))
    }

    fn with_parts(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        slot: u32,
        queues: Vec<Queue>,
        kicks: Vec<EventFd>,
        irq: EventFd,
    ) -> Self {
        MmioTransport {
            device,
            mem,
            slot,
            queues,
            kicks,
            interrupt: Arc::new(Interrupt::new(irq)),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            status: 0,
            activated: false,
        }
    }

    /// The guest-physical range this transport answers.
    pub fn contains(&self, addr: u64) -> bool {
        let base = slot_addr(self.slot);
        (base..base + crate::layout::VIRTIO_MMIO_SIZE).contains(&addr)
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A guest read at `addr` (inside this transport's range).
    pub fn read(&self, addr: u64, data: &mut [u8]) {
        let offset = addr - slot_addr(self.slot);
        if offset >= REG_CONFIG {
            self.device.read_config(offset - REG_CONFIG, data);
            return;
        }
        let value = self.register(offset);
        let bytes = value.to_le_bytes();
        data.fill(0);
        // Registers are 32-bit: narrower reads see the low bytes.
        let n = data.len().min(4);
        data[..n].copy_from_slice(&bytes[..n]);
    }

    fn register(&self, offset: u64) -> u32 {
        let queue = self.queues.get(self.queue_sel as usize);
        match offset {
            REG_MAGIC => MAGIC,
            REG_VERSION => VERSION,
            REG_DEVICE_ID => self.device.device_type(),
            REG_VENDOR_ID => VENDOR_ID,
            REG_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            REG_QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            REG_QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            REG_INTERRUPT_STATUS => self.interrupt.status(),
            REG_STATUS => self.status,
            REG_CONFIG_GENERATION => 0,
            // No shared memory regions: a length of -1 says so (virtio
            // 4.2.2); 0 would announce one at address 0, which virtio-fs
            // then fails to reserve for DAX, and its probe fails.
            REG_SHM_LEN_LOW | REG_SHM_LEN_HIGH | REG_SHM_BASE_LOW | REG_SHM_BASE_HIGH => u32::MAX,
            _ => 0,
        }
    }

    /// A guest write at `addr`. Returns an error only when activating the
    /// device failed (the VMM cannot go on without it).
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        let offset = addr - slot_addr(self.slot);
        if offset >= REG_CONFIG {
            self.device.write_config(offset - REG_CONFIG, data);
            return Ok(());
        }
        let mut raw = [0u8; 4];
        let n = data.len().min(4);
        raw[..n].copy_from_slice(&data[..n]);
        let value = u32::from_le_bytes(raw);
        // Queue layout is frozen once the device runs.
        let live = self.activated;
        match offset {
            REG_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            REG_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            REG_DRIVER_FEATURES if !live => {
                let offered = self.device.features();
                match self.driver_features_sel {
                    0 => {
                        self.driver_features =
                            (self.driver_features & !0xffff_ffff) | u64::from(value)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
                    }
                    _ => {}
                }
                // The driver may accept only what was offered.
                self.driver_features &= offered;
            }
            REG_QUEUE_SEL => self.queue_sel = value,
            REG_QUEUE_NUM if !live => {
                if let Some(q) = self.selected_queue() {
                    q.set_size(value as u16)
                }
            }
            REG_QUEUE_READY if !live => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(value == 1)
                }
            }
            REG_QUEUE_DESC_LOW | REG_QUEUE_DESC_HIGH | REG_QUEUE_AVAIL_LOW
            | REG_QUEUE_AVAIL_HIGH | REG_QUEUE_USED_LOW | REG_QUEUE_USED_HIGH
                if !live =>
            {
                self.set_queue_address(offset, value)
            }
            REG_INTERRUPT_ACK => self.interrupt.acknowledge(value),
            REG_STATUS => return self.set_status(value),
            _ => {}
        }
        Ok(())
    }

    fn set_queue_address(&mut self, offset: u64, value: u32) {
        let Some(q) = self.selected_queue() else {
            return;
        };
        let (low, high) = if offset.is_multiple_of(8) {
            (Some(value), None)
        } else {
            (None, Some(value))
        };
        match offset & !0x7 {
            REG_QUEUE_DESC_LOW => q.set_desc_table_address(low, high),
            REG_QUEUE_AVAIL_LOW => q.set_avail_ring_address(low, high),
            _ => q.set_used_ring_address(low, high),
        }
    }

    fn set_status(&mut self, value: u32) -> Result<(), String> {
        if value == 0 {
            // A reset. Once the device runs it cannot be taken back (its
            // thread owns the queues); the guest only resets at shutdown.
            if !self.activated {
                self.status = 0;
                self.driver_features = 0;
                for q in &mut self.queues {
                    q.reset();
                }
            }
            return Ok(());
        }
        if value & STATUS_FEATURES_OK != 0 && self.driver_features & super::F_VERSION_1 == 0 {
            // A legacy driver: refuse, the device is modern only.
            self.status = value & !STATUS_FEATURES_OK;
            return Ok(());
        }
        self.status = value;
        if value & STATUS_DRIVER_OK != 0 && value & STATUS_FAILED == 0 && !self.activated {
            self.activate()?;
        }
        Ok(())
    }

    fn activate(&mut self) -> Result<(), String> {
        let slot = self.slot;
        for (i, q) in self.queues.iter().enumerate() {
            if q.ready() && !q.is_valid(&self.mem) {
                return Err(format!(
                    "virtio slot {slot}: queue {i} is not valid in guest memory"
                ));
            }
        }
        let event_idx = self.driver_features
            & (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX)
            != 0;
        let mut queues = std::mem::take(&mut self.queues);
        for q in &mut queues {
            q.set_event_idx(event_idx);
        }
        // Moved, not duplicated: this runs on a vCPU thread under the
        // seccomp filter, which has no dup. KVM keeps its own reference to
        // each eventfd, so the registration does not depend on our fd.
        let kicks = std::mem::take(&mut self.kicks);
        self.activated = true;
        self.device.activate(Activation {
            mem: self.mem.clone(),
            driver_features: self.driver_features,
            queues,
            kicks,
            interrupt: self.interrupt.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use vm_memory::GuestAddress;

    struct Probe {
        activated: Arc<Mutex<Option<usize>>>,
    }

    impl VirtioDevice for Probe {
        fn device_type(&self) -> u32 {
            super::super::TYPE_CONSOLE
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 16]
        }
        fn features(&self) -> u64 {
            super::super::F_VERSION_1 | 1
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            super::super::read_config_bytes(&[7, 8], offset, data)
        }
        fn activate(&mut self, a: Activation) -> Result<(), String> {
            *self.activated.lock().unwrap() = Some(a.queues.len());
            Ok(())
        }
    }

    fn rd(t: &MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(slot_addr(0) + off, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(slot_addr(0) + off, &v.to_le_bytes()).unwrap();
    }

    #[test]
    fn driver_negotiates_places_queues_and_activates() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let activated = Arc::new(Mutex::new(None));
        let probe = Probe {
            activated: activated.clone(),
        };
        let kicks = vec![EventFd::new(0).unwrap(), EventFd::new(0).unwrap()];
        let queues = vec![Queue::new(16).unwrap(), Queue::new(16).unwrap()];
        let mut t = MmioTransport::with_parts(
            Box::new(probe),
            mem,
            0,
            queues,
            kicks,
            EventFd::new(0).unwrap(),
        );
        assert_eq!(rd(&t, REG_MAGIC), MAGIC);
        assert_eq!(rd(&t, REG_VERSION), 2);
        assert_eq!(rd(&t, REG_DEVICE_ID), 3);
        assert_eq!(rd(&t, REG_SHM_LEN_LOW), u32::MAX);
        assert_eq!(rd(&t, REG_SHM_LEN_HIGH), u32::MAX);
        wr(&mut t, REG_DEVICE_FEATURES_SEL, 1);
        assert_eq!(rd(&t, REG_DEVICE_FEATURES), 1);
        // The driver asks for a bit that was not offered: it is dropped.
        wr(&mut t, REG_DRIVER_FEATURES_SEL, 0);
        wr(&mut t, REG_DRIVER_FEATURES, 0x3);
        wr(&mut t, REG_DRIVER_FEATURES_SEL, 1);
        wr(&mut t, REG_DRIVER_FEATURES, 1);
        wr(&mut t, REG_STATUS, 1 | 2 | STATUS_FEATURES_OK);
        assert_eq!(rd(&t, REG_STATUS) & STATUS_FEATURES_OK, STATUS_FEATURES_OK);
        for (q, base) in [(0u32, 0x1000u32), (1, 0x4000)] {
            wr(&mut t, REG_QUEUE_SEL, q);
            assert_eq!(rd(&t, REG_QUEUE_NUM_MAX), 16);
            wr(&mut t, REG_QUEUE_NUM, 16);
            wr(&mut t, REG_QUEUE_DESC_LOW, base);
            wr(&mut t, REG_QUEUE_AVAIL_LOW, base + 0x100);
            wr(&mut t, REG_QUEUE_USED_LOW, base + 0x200);
            wr(&mut t, REG_QUEUE_READY, 1);
            assert_eq!(rd(&t, REG_QUEUE_READY), 1);
        }
        let mut cfg = [0u8; 2];
        t.read(slot_addr(0) + REG_CONFIG, &mut cfg);
        assert_eq!(cfg, [7, 8]);
        assert!(activated.lock().unwrap().is_none());
        wr(
            &mut t,
            REG_STATUS,
            1 | 2 | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
        );
        assert_eq!(t.driver_features, super::super::F_VERSION_1 | 1);
        assert_eq!(*activated.lock().unwrap(), Some(2));
        t.interrupt().signal_used().unwrap();
        assert_eq!(rd(&t, REG_INTERRUPT_STATUS), 1);
        wr(&mut t, REG_INTERRUPT_ACK, 1);
        assert_eq!(rd(&t, REG_INTERRUPT_STATUS), 0);
    }

    #[test]
    fn a_legacy_driver_cannot_set_features_ok() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let probe = Probe {
            activated: Arc::new(Mutex::new(None)),
        };
        let mut t = MmioTransport::with_parts(
            Box::new(probe),
            mem,
            0,
            vec![],
            vec![],
            EventFd::new(0).unwrap(),
        );
        wr(&mut t, REG_DRIVER_FEATURES, 1);
        wr(&mut t, REG_STATUS, 1 | 2 | STATUS_FEATURES_OK);
        assert_eq!(rd(&t, REG_STATUS) & STATUS_FEATURES_OK, 0);
    }
}
