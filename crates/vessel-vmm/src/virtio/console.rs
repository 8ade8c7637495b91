//! The agent channel: a virtio-console device with one port, announced
//! through the multiport control queues (`console_control`) as a plain
//! character device named `vessel.agent` (the guest's `/dev/vport<N>p0`),
//! carrying `vessel-protocol` frames both ways.
//!
//! Guest to host: a thread waits on the transmit queue's kick, copies each
//! buffer into the [`FrameSink`] (stdout, stderr, the exit status) and
//! returns it; the same thread answers the control queue. Host to guest:
//! [`AgentChannel::send`] fills the buffers the driver posted on the
//! receive queue, waiting on that queue's kick when none are left.
//!
//! Why a named port and not the hvc console port: the guest's hvc layer
//! writes a page at a time and spins until the host has taken each page
//! (it may not sleep under the tty's locks), one round trip per 4 KiB; a
//! port opened O_NONBLOCK queues up to 32 KiB a write without waiting, so
//! many buffers are in flight, and it has no tty layer to put in raw mode.

use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::console_control::{Control, F_MULTIPORT};
use super::{Activation, Interrupt, VirtioDevice, F_VERSION_1, TYPE_CONSOLE};
use crate::channel::FrameSink;

const QUEUE_SIZE: u16 = 256;
const CONTROL_QUEUE_SIZE: u16 = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking thread ends the VMM (panic = abort); keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The receive side once the driver has set it up.
struct Receive {
    mem: GuestMemoryMmap,
    queue: Queue,
    kick: EventFd,
    interrupt: Arc<Interrupt>,
}

/// What the host's writers and the transmit thread share: the queues (once
/// the driver has set them up) and whether the agent has spoken yet.
pub struct AgentChannel {
    rx: Mutex<Option<Receive>>,
    /// Handed to the transmit thread (started with the VMM's other threads,
    /// before the seccomp filter, which allows no thread creation).
    tx: Mutex<Option<Transmit>>,
    tx_set: Condvar,
    /// The guest sent its first frame: its end of the port is raw, so bytes
    /// sent now are not cooked by the guest's tty layer.
    guest_ready: Mutex<bool>,
    changed: Condvar,
    /// Held for a whole send so frames from different threads never interleave.
    frame_lock: Mutex<()>,
}

impl AgentChannel {
    pub fn new() -> Arc<Self> {
        Arc::new(AgentChannel {
            rx: Mutex::new(None),
            tx: Mutex::new(None),
            tx_set: Condvar::new(),
            guest_ready: Mutex::new(false),
            changed: Condvar::new(),
            frame_lock: Mutex::new(()),
        })
    }

    /// The guest's agent is up: it has sent its first frame.
    pub fn guest_ready(&self) -> bool {
        *lock(&self.guest_ready)
    }

    fn mark_ready(&self) {
        let mut ready = lock(&self.guest_ready);
        if !*ready {
            *ready = true;
            self.changed.notify_all();
        }
    }

    /// The transmit thread: waits for the driver to set the device up, then
    /// passes the guest's buffers to the sink until the VMM ends.
    pub fn run_transmit(self: Arc<Self>) {
        let transmit = {
            let mut tx = lock(&self.tx);
            loop {
                if let Some(t) = tx.take() {
                    break t;
                }
                tx = self.tx_set.wait(tx).unwrap_or_else(|p| p.into_inner());
            }
        };
        transmit.run();
    }

    /// Sends `bytes` (whole frames) to the guest, blocking until the agent
    /// is up and while the guest has posted no receive buffers.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let _frame = lock(&self.frame_lock);
        {
            let mut ready = lock(&self.guest_ready);
            while !*ready {
                ready = self.changed.wait(ready).unwrap_or_else(|p| p.into_inner());
            }
        }
        let mut rx = lock(&self.rx);
        let rx = rx.as_mut().ok_or_else(|| {
            io::Error::other("the agent spoke before its receive queue was set up")
        })?;
        let mut rest = bytes;
        while !rest.is_empty() {
            match rx.fill_one(rest)? {
                Some(n) => rest = &rest[n..],
                None => {
                    // Blocks until the guest posts buffers (the kick is
                    // nonblocking: wait for it to be readable).
                    wait_readable(&rx.kick)?;
                    let _ = rx.kick.read();
                }
            }
        }
        Ok(())
    }
}

impl Receive {
    /// Copies the start of `data` into the next receive buffer; `None` when
    /// the guest has posted none (notifications are then re-enabled).
    fn fill_one(&mut self, data: &[u8]) -> io::Result<Option<usize>> {
        let chain = match self.queue.pop_descriptor_chain(&self.mem) {
            Some(c) => c,
            None => {
                // Ask for a kick, then look once more: a buffer posted in
                // between would otherwise wait for the next one.
                self.queue
                    .enable_notification(&self.mem)
                    .map_err(|e| io::Error::other(format!("receive queue: {e:?}")))?;
                match self.queue.pop_descriptor_chain(&self.mem) {
                    Some(c) => c,
                    None => return Ok(None),
                }
            }
        };
        let head = chain.head_index();
        let mut writer = chain
            .writer(&self.mem)
            .map_err(|e| io::Error::other(format!("receive buffer: {e:?}")))?;
        let n = data.len().min(writer.available_bytes());
        writer.write_all(&data[..n])?;
        self.queue
            .add_used(&self.mem, head, n as u32)
            .map_err(|e| io::Error::other(format!("receive queue: {e:?}")))?;
        if self
            .queue
            .needs_notification(&self.mem)
            .map_err(|e| io::Error::other(format!("receive queue: {e:?}")))?
        {
            self.interrupt.signal_used()?;
        }
        Ok(Some(n))
    }
}

/// Blocks until `evt`'s counter is non-zero.
fn wait_readable(evt: &EventFd) -> io::Result<()> {
    wait_any(&[evt])
}

/// Blocks until one of `evts` has a non-zero counter.
fn wait_any(evts: &[&EventFd]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut pfds: Vec<libc::pollfd> = evts
        .iter()
        .map(|e| libc::pollfd {
            fd: e.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: a valid array of pollfds of the given length, no timeout.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The device half the transport drives.
pub struct ConsoleDevice {
    channel: Arc<AgentChannel>,
    sink: Option<FrameSink>,
}

impl ConsoleDevice {
    pub fn new(channel: Arc<AgentChannel>, sink: FrameSink) -> Self {
        ConsoleDevice {
            channel,
            sink: Some(sink),
        }
    }
}

impl VirtioDevice for ConsoleDevice {
    fn device_type(&self) -> u32 {
        TYPE_CONSOLE
    }

    fn queue_max_sizes(&self) -> &[u16] {
        // Port 0 receive and transmit, then control receive and transmit.
        &[
            QUEUE_SIZE,
            QUEUE_SIZE,
            CONTROL_QUEUE_SIZE,
            CONTROL_QUEUE_SIZE,
        ]
    }

    fn features(&self) -> u64 {
        // Multiport for the named port; no size or emergency write.
        F_VERSION_1 | F_MULTIPORT
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // cols, rows (unused without F_SIZE), max_nr_ports = 1, emerg_wr.
        let config = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        super::read_config_bytes(&config, offset, data)
    }

    fn activate(&mut self, a: Activation) -> Result<(), String> {
        let mut queues = a.queues.into_iter();
        let mut kicks = a.kicks.into_iter();
        let (Some(rxq), Some(txq), Some(crxq), Some(ctxq)) =
            (queues.next(), queues.next(), queues.next(), queues.next())
        else {
            return Err(
                "virtio-console: the driver set up fewer than 4 queues (no multiport?)".into(),
            );
        };
        let (Some(rx_kick), Some(tx_kick), Some(crx_kick), Some(ctx_kick)) =
            (kicks.next(), kicks.next(), kicks.next(), kicks.next())
        else {
            return Err("virtio-console: fewer than 4 queue kicks".into());
        };
        let sink = self.sink.take().ok_or("virtio-console: activated twice")?;
        *lock(&self.channel.rx) = Some(Receive {
            mem: a.mem.clone(),
            queue: rxq,
            kick: rx_kick,
            interrupt: a.interrupt.clone(),
        });
        *lock(&self.channel.tx) = Some(Transmit {
            control: Control::new(a.mem.clone(), crxq, ctxq, a.interrupt.clone()),
            control_kicks: [crx_kick, ctx_kick],
            mem: a.mem,
            queue: txq,
            kick: tx_kick,
            interrupt: a.interrupt,
            sink,
            channel: self.channel.clone(),
        });
        self.channel.tx_set.notify_all();
        Ok(())
    }
}

/// The guest-to-host side and the control queues, run by one thread.
struct Transmit {
    control: Control,
    /// Control receive (buffers posted) and transmit (messages sent) kicks.
    control_kicks: [EventFd; 2],
    mem: GuestMemoryMmap,
    queue: Queue,
    kick: EventFd,
    interrupt: Arc<Interrupt>,
    sink: FrameSink,
    channel: Arc<AgentChannel>,
}

impl Transmit {
    fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = self.control.service().and_then(|_| self.drain(&mut buf)) {
                crate::channel::write_all_fd(
                    libc::STDERR_FILENO,
                    format!("vessel-vmm: agent channel: {e}\n").as_bytes(),
                );
                return;
            }
            let kicks = [&self.kick, &self.control_kicks[0], &self.control_kicks[1]];
            if wait_any(&kicks).is_err() {
                return;
            }
            for k in kicks {
                let _ = k.read();
            }
        }
    }

    /// Hands every buffer the guest has queued to the sink.
    fn drain(&mut self, buf: &mut [u8]) -> io::Result<()> {
        loop {
            self.queue
                .disable_notification(&self.mem)
                .map_err(|e| io::Error::other(format!("transmit queue: {e:?}")))?;
            let mut used_any = false;
            while let Some(chain) = self.queue.pop_descriptor_chain(&self.mem) {
                let head = chain.head_index();
                let mut reader = chain
                    .reader(&self.mem)
                    .map_err(|e| io::Error::other(format!("transmit buffer: {e:?}")))?;
                loop {
                    let n = reader.read(buf)?;
                    if n == 0 {
                        break;
                    }
                    self.sink.write_all(&buf[..n])?;
                }
                self.queue
                    .add_used(&self.mem, head, 0)
                    .map_err(|e| io::Error::other(format!("transmit queue: {e:?}")))?;
                used_any = true;
            }
            if self.sink.frames_seen() > 0 {
                self.channel.mark_ready();
            }
            if used_any
                && self
                    .queue
                    .needs_notification(&self.mem)
                    .map_err(|e| io::Error::other(format!("transmit queue: {e:?}")))?
            {
                self.interrupt.signal_used()?;
            }
            // Done when nothing arrived after notifications came back on.
            if !self
                .queue
                .enable_notification(&self.mem)
                .map_err(|e| io::Error::other(format!("transmit queue: {e:?}")))?
            {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    const BUF: u64 = 0x10_0000;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    fn one_buffer_queue(mem: &GuestMemoryMmap, len: u32, flags: u16) -> Queue {
        let vq = MockSplitQueue::new(mem, 16);
        let desc = RawDescriptor::from(SplitDescriptor::new(BUF, len, flags, 0));
        vq.add_desc_chains(&[desc], 0).unwrap();
        vq.create_queue().unwrap()
    }

    #[test]
    fn guest_frames_reach_the_sink_and_mark_the_agent_ready() {
        let mem = memory();
        let mut bytes = Vec::new();
        vessel_protocol::encode(vessel_protocol::KIND_HELLO, &[2], &mut bytes);
        vessel_protocol::encode(vessel_protocol::KIND_STDOUT, b"hi", &mut bytes);
        mem.write_slice(&bytes, GuestAddress(BUF)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let sink = FrameSink::with_handler(Box::new(move |f| {
            record.lock().unwrap().push(format!("{f:?}"))
        }));
        let channel = AgentChannel::new();
        let irq = EventFd::new(0).unwrap();
        let irq2 = Arc::new(Interrupt::new(EventFd::new(0).unwrap()));
        let mut tx = Transmit {
            control: Control::new(
                mem.clone(),
                Queue::new(8).unwrap(),
                Queue::new(8).unwrap(),
                irq2,
            ),
            control_kicks: [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()],
            mem: mem.clone(),
            queue: one_buffer_queue(&mem, bytes.len() as u32, 0),
            kick: EventFd::new(0).unwrap(),
            interrupt: Arc::new(Interrupt::new(irq.try_clone().unwrap())),
            sink,
            channel: channel.clone(),
        };
        assert!(!channel.guest_ready());
        tx.drain(&mut [0u8; 3]).unwrap();
        assert_eq!(*seen.lock().unwrap(), ["Hello(2)", "Stdout([104, 105])"]);
        assert!(channel.guest_ready());
        // The buffer went back to the guest, and the guest was told.
        assert_eq!(tx.queue.next_used(), 1);
        assert_eq!(tx.interrupt.status.load(Ordering::SeqCst), 1);
        assert_eq!(irq.read().unwrap(), 1);
    }

    #[test]
    fn host_bytes_fill_the_guests_receive_buffers() {
        let mem = memory();
        let irq = EventFd::new(0).unwrap();
        let mut rx = Receive {
            mem: mem.clone(),
            queue: one_buffer_queue(&mem, 4, VRING_DESC_F_WRITE as u16),
            kick: EventFd::new(0).unwrap(),
            interrupt: Arc::new(Interrupt::new(irq)),
        };
        // The 4-byte buffer takes the first 4 bytes; then none is left.
        assert_eq!(rx.fill_one(b"I\x03abc").unwrap(), Some(4));
        let mut got = [0u8; 4];
        mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
        assert_eq!(&got, b"I\x03ab");
        assert_eq!(rx.fill_one(b"c").unwrap(), None);
        assert_eq!(rx.queue.next_used(), 1);
    }
}
