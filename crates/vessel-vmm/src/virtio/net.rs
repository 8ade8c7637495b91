//! virtio-net on a tap: the guest's network interface, backed by a tap
//! device the runtime made in the container's network namespace and handed
//! to the VMM as an inherited fd (so the VMM never needs CAP_NET_ADMIN).
//!
//! The tap was opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a vnet
//! header size of 12 (TUNSETVNETHDRSZ), no offloads: each read gives one
//! frame behind the 12-byte `virtio_net_hdr_v1` a VIRTIO_F_VERSION_1 driver
//! uses, and each write takes one, so frames cross as they are, header
//! included. No checksum or segmentation offload is offered either way, so
//! the headers stay zero (only `num_buffers`, which the tap leaves alone,
//! is set to 1 on receive).
//!
//! One thread, pre-spawned before the seccomp filter, waits for the driver
//! to set the queues up, then polls the tap and both queue kicks. It needs
//! no syscall the VMM did not already allow: read, write, poll and futex.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::{Activation, Interrupt, VirtioDevice, F_VERSION_1};

/// Device type 1 (virtio spec 5.1).
pub const TYPE_NET: u32 = 1;
/// The device has a MAC address in its configuration (the container's).
pub const F_MTU: u64 = 1 << 3;
pub const F_MAC: u64 = 1 << 5;
/// `virtio_net_hdr_v1`: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset, num_buffers.
pub const HDR_LEN: usize = 12;
const NUM_BUFFERS_OFFSET: usize = 10;
const QUEUE_SIZE: u16 = 256;
/// The largest frame plus header either way (a 64 KiB IP packet with its
/// Ethernet and VLAN headers); without offloads frames are MTU-sized.
const MAX_FRAME: usize = HDR_LEN + 65535 + 18;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the runtime asked for (`--net-fd`, `--net-mac`, `--net-mtu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetParams {
    pub fd: i32,
    pub mac: [u8; 6],
    pub mtu: u16,
}

/// Takes ownership of the tap the runtime passed as `fd`: it must be open
/// and a character device (/dev/net/tun's), and is made non-blocking and
/// close-on-exec.
pub fn take_tap(fd: i32) -> Result<OwnedFd, crate::VmmError> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    use std::os::fd::FromRawFd;
    let err = |what: &str, e: nix::errno::Errno| {
        crate::VmmError::new(format!("--net-fd {fd}: {what}: {e}"))
    };
    fcntl(fd, FcntlArg::F_GETFD).map_err(|e| err("not an open descriptor", e))?;
    let st = nix::sys::stat::fstat(fd).map_err(|e| err("fstat", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Err(crate::VmmError::new(format!(
            "--net-fd {fd}: not a tap (not a character device)"
        )));
    }
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| err("F_SETFD", e))?;
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| err("F_GETFL", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| err("F_SETFL", e))?;
    // SAFETY: the runtime gave this open descriptor to the VMM; nothing
    // else in the VMM owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The configuration space (`virtio_net_config`): mac, status (unused
/// without VIRTIO_NET_F_STATUS: the link is up), max_virtqueue_pairs (1),
/// mtu.
pub fn config_bytes(mac: [u8; 6], mtu: u16) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[..6].copy_from_slice(&mac);
    c[8..10].copy_from_slice(&1u16.to_le_bytes());
    c[10..12].copy_from_slice(&mtu.to_le_bytes());
    c
}

/// The queues once the driver has set them up.
struct Queues {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    rx_kick: EventFd,
    tx_kick: EventFd,
    interrupt: Arc<Interrupt>,
}

/// The device's thread and what it waits for.
pub struct NetWorker {
    tap: OwnedFd,
    queues: Mutex<Option<Queues>>,
    set: Condvar,
}

/// The device half the transport drives.
pub struct NetDevice {
    config: [u8; 12],
    worker: Arc<NetWorker>,
}

impl NetDevice {
    /// The device on `tap` and its worker, whose `run` must be started
    /// (before the seccomp filter) on a thread of its own.
    pub fn new(tap: OwnedFd, mac: [u8; 6], mtu: u16) -> (NetDevice, Arc<NetWorker>) {
        let worker = Arc::new(NetWorker {
            tap,
            queues: Mutex::new(None),
            set: Condvar::new(),
        });
        let device = NetDevice {
            config: config_bytes(mac, mtu),
            worker: worker.clone(),
        };
        (device, worker)
    }
}

impl VirtioDevice for NetDevice {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        F_VERSION_1 | F_MAC | F_MTU
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data)
    }

    fn activate(&mut self, a: Activation) -> Result<(), String> {
        let mut queues = a.queues.into_iter();
        let mut kicks = a.kicks.into_iter();
        let (Some(rx), Some(tx), Some(rx_kick), Some(tx_kick)) =
            (queues.next(), queues.next(), kicks.next(), kicks.next())
        else {
            return Err("virtio-net: the driver set up fewer than 2 queues".into());
        };
        let mut slot = lock(&self.worker.queues);
        if slot.is_some() {
            return Err("virtio-net: activated twice".into());
        }
        *slot = Some(Queues {
            mem: a.mem,
            rx,
            tx,
            rx_kick,
            tx_kick,
            interrupt: a.interrupt,
        });
        self.worker.set.notify_all();
        Ok(())
    }
}

impl NetWorker {
    /// The device thread: waits for the driver, then moves frames both
    /// ways until an error (reported on stderr; the guest then loses its
    /// network, the VMM goes on).
    pub fn run(self: Arc<Self>) {
        let mut q = {
            let mut slot = lock(&self.queues);
            loop {
                if let Some(q) = slot.take() {
                    break q;
                }
                slot = self.set.wait(slot).unwrap_or_else(|p| p.into_inner());
            }
        };
        if let Err(e) = self.serve(&mut q) {
            crate::channel::write_all_fd(
                libc::STDERR_FILENO,
                format!("vessel-vmm: virtio-net stopped: {e}\n").as_bytes(),
            );
        }
    }

    fn serve(&self, q: &mut Queues) -> io::Result<()> {
        let mut frame = vec![0u8; MAX_FRAME];
        let mut out = vec![0u8; MAX_FRAME];
        // A frame read from the tap that waits for a receive buffer.
        let mut pending: Option<usize> = None;
        loop {
            let sent = q.transmit(&self.tap, &mut out)?;
            let received = self.receive(q, &mut frame, &mut pending)?;
            let tx_note = sent && q.tx.needs_notification(&q.mem).map_err(queue_err)?;
            let rx_note = received && q.rx.needs_notification(&q.mem).map_err(queue_err)?;
            if tx_note || rx_note {
                q.interrupt.signal_used()?;
            }
            self.wait(q, pending.is_some())?;
        }
    }

    /// Frames from the tap into the guest's receive buffers, until the tap
    /// is empty or the guest has no buffer left; true if any went in.
    fn receive(
        &self,
        q: &mut Queues,
        frame: &mut [u8],
        pending: &mut Option<usize>,
    ) -> io::Result<bool> {
        let mut any = false;
        loop {
            let len = match *pending {
                Some(n) => n,
                None => match nix::unistd::read(self.tap.as_raw_fd(), frame) {
                    Ok(n) if n < HDR_LEN => continue,
                    Ok(n) => n,
                    Err(nix::errno::Errno::EAGAIN) => return Ok(any),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io::Error::other(format!("reading the tap: {e}"))),
                },
            };
            frame[NUM_BUFFERS_OFFSET..HDR_LEN].copy_from_slice(&1u16.to_le_bytes());
            match q.deliver(&frame[..len])? {
                Delivery::Done => any = true,
                Delivery::Dropped => {}
                Delivery::NoBuffer => {
                    *pending = Some(len);
                    return Ok(any);
                }
            }
            *pending = None;
        }
    }

    /// Sleeps until the tap has a frame (unless one already waits for a
    /// buffer) or the guest kicks either queue.
    fn wait(&self, q: &Queues, have_pending: bool) -> io::Result<()> {
        let tap_events = match have_pending {
            true => 0,
            false => libc::POLLIN,
        };
        let pfd = |fd: i32, events: i16| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let mut fds = [
            pfd(self.tap.as_raw_fd(), tap_events),
            pfd(q.rx_kick.as_raw_fd(), libc::POLLIN),
            pfd(q.tx_kick.as_raw_fd(), libc::POLLIN),
        ];
        // SAFETY: three valid pollfds owned by this frame, no timeout.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io::Error::other(format!("poll: {e}")));
            }
        }
        let _ = q.rx_kick.read();
        let _ = q.tx_kick.read();
        Ok(())
    }
}

enum Delivery {
    Done,
    /// Larger than the guest's buffer (an MTU the driver did not take):
    /// dropped, as a NIC drops an oversized frame.
    Dropped,
    NoBuffer,
}

fn queue_err(e: virtio_queue::Error) -> io::Error {
    io::Error::other(format!("virtio-net queue: {e:?}"))
}

impl Queues {
    /// One frame (header included) into the next receive buffer.
    fn deliver(&mut self, frame: &[u8]) -> io::Result<Delivery> {
        let chain = match self.rx.pop_descriptor_chain(&self.mem) {
            Some(c) => c,
            None => {
                // Ask for a kick, then look once more (a buffer posted in
                // between would otherwise wait for the next frame).
                self.rx.enable_notification(&self.mem).map_err(queue_err)?;
                match self.rx.pop_descriptor_chain(&self.mem) {
                    Some(c) => c,
                    None => return Ok(Delivery::NoBuffer),
                }
            }
        };
        let head = chain.head_index();
        let mut writer = chain
            .writer(&self.mem)
            .map_err(|e| io::Error::other(format!("virtio-net receive buffer: {e:?}")))?;
        if writer.available_bytes() < frame.len() {
            let back = self.rx.next_avail().wrapping_sub(1);
            self.rx.set_next_avail(back);
            return Ok(Delivery::Dropped);
        }
        writer.write_all(frame)?;
        self.rx
            .add_used(&self.mem, head, frame.len() as u32)
            .map_err(queue_err)?;
        Ok(Delivery::Done)
    }

    /// Every frame the guest queued for sending, written to the tap; true
    /// if any buffer went back to the guest.
    fn transmit(&mut self, tap: &OwnedFd, out: &mut [u8]) -> io::Result<bool> {
        let mut any = false;
        while let Some(chain) = self.tx.pop_descriptor_chain(&self.mem) {
            let head = chain.head_index();
            let mut reader = chain
                .reader(&self.mem)
                .map_err(|e| io::Error::other(format!("virtio-net transmit buffer: {e:?}")))?;
            let len = reader.available_bytes();
            // A chain larger than any frame, or without a header, is dropped.
            if (HDR_LEN..=out.len()).contains(&len) {
                reader.read_exact(&mut out[..len])?;
                match nix::unistd::write(tap, &out[..len]) {
                    // A full tap queue or a link that is down drops the
                    // frame, as a NIC would.
                    Ok(_)
                    | Err(nix::errno::Errno::EAGAIN)
                    | Err(nix::errno::Errno::ENOBUFS)
                    | Err(nix::errno::Errno::EIO)
                    | Err(nix::errno::Errno::EINVAL) => {}
                    Err(e) => return Err(io::Error::other(format!("writing the tap: {e}"))),
                }
            }
            self.tx.add_used(&self.mem, head, 0).map_err(queue_err)?;
            any = true;
        }
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    const BUF: u64 = 0x10_0000;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    /// A queue with one buffer of `len` bytes at BUF; the mock's rings sit
    /// at `ring`.
    fn one_buffer(mem: &GuestMemoryMmap, ring: u64, len: u32, flags: u16) -> Queue {
        let vq = MockSplitQueue::create(mem, GuestAddress(ring), 16);
        let desc = RawDescriptor::from(SplitDescriptor::new(BUF, len, flags, 0));
        vq.add_desc_chains(&[desc], 0).unwrap();
        vq.create_queue().unwrap()
    }

    fn queues(mem: &GuestMemoryMmap, rx_len: u32, tx: &[u8]) -> Queues {
        let (rx, tx_q) = if tx.is_empty() {
            (
                one_buffer(mem, 0, rx_len, VRING_DESC_F_WRITE as u16),
                Queue::new(16).unwrap(),
            )
        } else {
            mem.write_slice(tx, GuestAddress(BUF)).unwrap();
            (
                Queue::new(16).unwrap(),
                one_buffer(mem, 0, tx.len() as u32, 0),
            )
        };
        Queues {
            mem: mem.clone(),
            rx,
            tx: tx_q,
            rx_kick: EventFd::new(0).unwrap(),
            tx_kick: EventFd::new(0).unwrap(),
            interrupt: Arc::new(Interrupt::new(EventFd::new(0).unwrap())),
        }
    }

    #[test]
    fn config_space_holds_mac_one_pair_and_mtu() {
        let c = config_bytes([2, 0x42, 10, 200, 0, 2], 1500);
        assert_eq!(c, [2, 0x42, 10, 200, 0, 2, 0, 0, 1, 0, 0xdc, 0x05]);
        let (dev, _) = NetDevice::new(
            UnixDatagram::pair().unwrap().0.into(),
            [2, 0x42, 10, 200, 0, 2],
            1500,
        );
        assert_eq!(dev.features(), F_VERSION_1 | F_MAC | F_MTU);
        let mut mtu = [0u8; 2];
        dev.read_config(10, &mut mtu);
        assert_eq!(u16::from_le_bytes(mtu), 1500);
    }

    #[test]
    fn a_tap_frame_reaches_the_guest_with_num_buffers_set() {
        let mem = memory();
        let (ours, tap) = UnixDatagram::pair().unwrap();
        tap.set_nonblocking(true).unwrap();
        let (_, worker) = NetDevice::new(tap.into(), [0; 6], 1500);
        let mut frame = vec![0u8; HDR_LEN];
        frame.extend_from_slice(b"ethernet frame");
        ours.send(&frame).unwrap();
        let mut q = queues(&mem, 64, &[]);
        let (mut buf, mut pending) = (vec![0u8; MAX_FRAME], None);
        assert!(worker.receive(&mut q, &mut buf, &mut pending).unwrap());
        assert_eq!(pending, None);
        let mut got = vec![0u8; frame.len()];
        mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
        assert_eq!(&got[..10], &[0u8; 10]);
        assert_eq!(&got[10..12], &[1, 0]);
        assert_eq!(&got[12..], b"ethernet frame");
        assert_eq!(q.rx.next_used(), 1);
        // No buffer left: the next frame waits.
        ours.send(&frame).unwrap();
        assert!(!worker.receive(&mut q, &mut buf, &mut pending).unwrap());
        assert_eq!(pending, Some(frame.len()));
    }

    #[test]
    fn an_oversized_frame_is_dropped_and_the_buffer_kept() {
        let mem = memory();
        let mut q = queues(&mem, 16, &[]);
        assert!(matches!(q.deliver(&[0u8; 40]).unwrap(), Delivery::Dropped));
        assert!(matches!(q.deliver(&[0u8; 16]).unwrap(), Delivery::Done));
    }

    #[test]
    fn a_guest_frame_reaches_the_tap_whole() {
        let mem = memory();
        let (ours, tap) = UnixDatagram::pair().unwrap();
        let tap: OwnedFd = tap.into();
        let mut frame = vec![0u8; HDR_LEN];
        frame.extend_from_slice(b"to the host");
        let mut q = queues(&mem, 0, &frame);
        assert!(q.transmit(&tap, &mut vec![0u8; MAX_FRAME]).unwrap());
        let mut got = [0u8; 64];
        let n = ours.recv(&mut got).unwrap();
        assert_eq!(&got[..n], &frame[..]);
        assert_eq!(q.tx.next_used(), 1);
    }
}
