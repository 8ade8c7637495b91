//! virtio-fs (device type 26) as a vhost-user frontend: the queues are
//! served by a vhost-user backend (virtiofsd, which the runtime starts for
//! the container) that maps guest RAM itself; this side answers the guest's
//! configuration reads and hands the backend the rings once the driver has
//! set them up.
//!
//! Set-up order: [`FsDevice::connect`] runs before the sandbox (the socket
//! cannot be opened afterwards) and negotiates the vhost-user protocol; at
//! DRIVER_OK [`VirtioDevice::activate`] sends SET_FEATURES, SET_MEM_TABLE and
//! each ring's NUM/ADDR/BASE/CALL/KICK/ENABLE. The kicks are the transport's
//! KVM ioeventfds, so a guest notify reaches the backend without this
//! process. The backend's used-buffer signal cannot be an irqfd: the MMIO
//! driver reads InterruptStatus first and ignores an interrupt whose bit 0
//! is clear, so [`CallRelay::run`] (a thread started before the seccomp
//! filter) waits on the call eventfds and raises [`Interrupt::signal_used`].
//!
//! `vhost` 0.16 is built on vmm-sys-util 0.15 while kvm-ioctls (and the
//! rest of the VMM) use 0.12, so their `EventFd`s are different types over
//! the same kind of fd. The fds are lent, not dup'ed: a 0.15 `EventFd` is
//! made over the raw fd inside a `ManuallyDrop` for the one call that sends
//! it (SCM_RIGHTS copies it into the backend), so nothing is closed twice
//! and no dup syscall is needed after the filter is on.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util_vhost::eventfd::EventFd as VhostEventFd;

use super::{Activation, Interrupt, VirtioDevice, F_VERSION_1};
use crate::args::{FsShare, MAX_FS_TAG};
use crate::VmmError;

/// Device type 26 (virtio spec 5.11).
pub const TYPE_FS: u32 = 26;
/// Queue 0 is the high-priority queue, queue 1 the one request queue.
const QUEUES: usize = 2;
const QUEUE_SIZE: u16 = 1024;
/// vhost-user's feature bit for the protocol-feature handshake.
const F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// Ring features passed through to the guest when the backend has them.
const RING_FEATURES: u64 = (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC)
    | (1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The configuration space: the tag, NUL-padded to 36 bytes, then
/// num_request_queues (u32, little-endian).
pub fn config_space(tag: &str) -> [u8; MAX_FS_TAG + 4] {
    let mut cfg = [0u8; MAX_FS_TAG + 4];
    let n = tag.len().min(MAX_FS_TAG);
    cfg[..n].copy_from_slice(&tag.as_bytes()[..n]);
    cfg[MAX_FS_TAG..].copy_from_slice(&1u32.to_le_bytes());
    cfg
}

/// The features offered to the guest: virtio 1.x plus the ring features
/// the backend supports (what the backend does with the rings is its own).
pub fn guest_features(backend: u64) -> u64 {
    F_VERSION_1 | (backend & RING_FEATURES)
}

/// A 0.15 `EventFd` lent over `fd` for one call; never closes it.
fn lend(fd: RawFd) -> ManuallyDrop<VhostEventFd> {
    // SAFETY: the caller keeps `fd` open for as long as the loan is used,
    // and ManuallyDrop never runs the loan's Drop, so `fd` is not closed.
    ManuallyDrop::new(unsafe { VhostEventFd::from_raw_fd(fd) })
}

/// The device half the transport drives.
pub struct FsDevice {
    frontend: Frontend,
    config: [u8; MAX_FS_TAG + 4],
    backend_features: u64,
    protocol: bool,
    relay: Arc<CallRelay>,
    activated: bool,
}

/// The runtime's connection to virtiofsd, inherited as descriptor `fd`:
/// checked to be a socket, then owned (close-on-exec) by the VMM.
fn take_socket(fd: RawFd) -> Result<UnixStream, String> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd, FcntlArg::F_GETFD).map_err(|e| format!("{fd} is not an open descriptor: {e}"))?;
    let st = nix::sys::stat::fstat(fd).map_err(|e| format!("fstat {fd}: {e}"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(format!("{fd} is not a socket"));
    }
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| format!("F_SETFD {fd}: {e}"))?;
    // SAFETY: the runtime gave this open socket to the VMM; nothing else in
    // the VMM owns it.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

impl FsDevice {
    /// Connects to the backend's socket and runs the handshake that needs
    /// no guest: SET_OWNER, GET_FEATURES, the protocol features. Returns the
    /// device and the socket's fd (the seccomp filter allows sendmsg and
    /// recvmsg on it alone).
    pub fn connect(share: &FsShare) -> Result<(Self, RawFd), VmmError> {
        let ctx = |what: &str, e: &dyn std::fmt::Display| {
            VmmError::new(format!(
                "virtio-fs: {what} (vhost-user socket {}): {e}",
                share.socket.display()
            ))
        };
        let sock = match share.fd {
            Some(fd) => take_socket(fd).map_err(|e| ctx("--virtiofs-fd", &e))?,
            None => {
                let (short, _dir) = vessel_common::socket_path::short(&share.socket)
                    .map_err(|e| ctx("connecting", &e))?;
                UnixStream::connect(&short).map_err(|e| ctx("connecting", &e))?
            }
        };
        let fd = sock.as_raw_fd();
        let mut frontend = Frontend::from_stream(sock, QUEUES as u64);
        frontend.set_owner().map_err(|e| ctx("SET_OWNER", &e))?;
        let backend_features = frontend
            .get_features()
            .map_err(|e| ctx("GET_FEATURES", &e))?;
        if backend_features & F_VERSION_1 == 0 {
            return Err(ctx("the backend", &"does not offer VIRTIO_F_VERSION_1"));
        }
        let protocol = backend_features & F_PROTOCOL_FEATURES != 0;
        if protocol {
            let offered = frontend
                .get_protocol_features()
                .map_err(|e| ctx("GET_PROTOCOL_FEATURES", &e))?;
            // Replies to every request (errors surface at once) and more
            // than one queue; nothing else (no backend requests, no config
            // space from the backend: the tag is the VMM's own).
            let wanted = VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK;
            frontend
                .set_protocol_features(offered & wanted)
                .map_err(|e| ctx("SET_PROTOCOL_FEATURES", &e))?;
        }
        let calls = (0..QUEUES)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ctx("call eventfd", &e))?;
        let device = FsDevice {
            frontend,
            config: config_space(&share.tag),
            backend_features,
            protocol,
            relay: Arc::new(CallRelay {
                calls,
                interrupt: Mutex::new(None),
                set: Condvar::new(),
            }),
            activated: false,
        };
        Ok((device, fd))
    }

    /// The relay the VMM's `fs-calls` thread runs.
    pub fn relay(&self) -> Arc<CallRelay> {
        self.relay.clone()
    }

    fn start_backend(&mut self, a: &Activation) -> Result<(), String> {
        let err = |what: String| move |e: vhost::Error| format!("virtio-fs: {what}: {e}");
        let features = (a.driver_features & self.backend_features)
            | (self.backend_features & F_PROTOCOL_FEATURES);
        self.frontend
            .set_features(features)
            .map_err(err("SET_FEATURES".into()))?;
        let regions = a
            .mem
            .iter()
            .map(VhostUserMemoryRegionInfo::from_guest_region)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("guest RAM is not file-backed".into()))?;
        self.frontend
            .set_mem_table(&regions)
            .map_err(err("SET_MEM_TABLE".into()))?;
        for (i, (q, kick)) in a.queues.iter().zip(&a.kicks).enumerate() {
            if !q.ready() {
                continue;
            }
            let ring = ring_config(&a.mem, q).map_err(|e| format!("virtio-fs: queue {i}: {e}"))?;
            let f = &mut self.frontend;
            f.set_vring_num(i, q.size())
                .map_err(err(format!("SET_VRING_NUM {i}")))?;
            f.set_vring_addr(i, &ring)
                .map_err(err(format!("SET_VRING_ADDR {i}")))?;
            f.set_vring_base(i, 0)
                .map_err(err(format!("SET_VRING_BASE {i}")))?;
            f.set_vring_call(i, &lend(self.relay.calls[i].as_raw_fd()))
                .map_err(err(format!("SET_VRING_CALL {i}")))?;
            f.set_vring_kick(i, &lend(kick.as_raw_fd()))
                .map_err(err(format!("SET_VRING_KICK {i}")))?;
            if self.protocol {
                f.set_vring_enable(i, true)
                    .map_err(err(format!("SET_VRING_ENABLE {i}")))?;
            }
        }
        Ok(())
    }
}

/// A ring's addresses as the backend wants them: in this process's address
/// space (vhost-user translates them through the memory table).
fn ring_config(mem: &GuestMemoryMmap, q: &Queue) -> Result<VringConfigData, String> {
    let host = |gpa: u64, what: &str| {
        mem.get_host_address(GuestAddress(gpa))
            .map(|p| p as u64)
            .map_err(|e| format!("{what} at {gpa:#x}: {e}"))
    };
    Ok(VringConfigData {
        queue_max_size: q.max_size(),
        queue_size: q.size(),
        flags: 0,
        desc_table_addr: host(q.desc_table(), "descriptor table")?,
        used_ring_addr: host(q.used_ring(), "used ring")?,
        avail_ring_addr: host(q.avail_ring(), "available ring")?,
        log_addr: None,
    })
}

impl VirtioDevice for FsDevice {
    fn device_type(&self) -> u32 {
        TYPE_FS
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; QUEUES]
    }

    fn features(&self) -> u64 {
        guest_features(self.backend_features)
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data)
    }

    fn activate(&mut self, a: Activation) -> Result<(), String> {
        if self.activated {
            return Err("virtio-fs: activated twice".into());
        }
        self.activated = true;
        if a.queues.len() != QUEUES || a.kicks.len() != QUEUES {
            return Err(format!(
                "virtio-fs: the driver set up {} queues, expected {QUEUES}",
                a.queues.len()
            ));
        }
        self.start_backend(&a)?;
        *lock(&self.relay.interrupt) = Some(a.interrupt);
        self.relay.set.notify_all();
        Ok(())
    }
}

/// Turns the backend's used-buffer signals (its call eventfds) into the
/// device's interrupt.
pub struct CallRelay {
    calls: Vec<EventFd>,
    interrupt: Mutex<Option<Arc<Interrupt>>>,
    set: Condvar,
}

impl CallRelay {
    /// The relay thread: waits for activation, then forever for a call.
    pub fn run(self: Arc<Self>) {
        let interrupt = {
            let mut slot = lock(&self.interrupt);
            loop {
                if let Some(i) = slot.clone() {
                    break i;
                }
                slot = self.set.wait(slot).unwrap_or_else(|p| p.into_inner());
            }
        };
        loop {
            if let Err(e) = self.relay_once(&interrupt) {
                crate::channel::write_all_fd(
                    libc::STDERR_FILENO,
                    format!("vessel-vmm: virtio-fs interrupts: {e}\n").as_bytes(),
                );
                return;
            }
        }
    }

    /// Waits until a call eventfd fires, clears it and raises the interrupt.
    fn relay_once(&self, interrupt: &Interrupt) -> io::Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .calls
            .iter()
            .map(|c| libc::pollfd {
                fd: c.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfds; no timeout.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(e),
            };
        }
        let mut fired = false;
        for (pfd, call) in fds.iter().zip(&self.calls) {
            if pfd.revents & libc::POLLIN != 0 {
                // Nonblocking: a spurious wake-up reads EAGAIN.
                fired |= call.read().is_ok();
            }
        }
        if fired {
            interrupt.signal_used()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_space_is_the_tag_then_one_request_queue() {
        let cfg = config_space("vessel-root");
        assert_eq!(cfg.len(), 40);
        assert_eq!(&cfg[..11], b"vessel-root");
        assert!(cfg[11..36].iter().all(|&b| b == 0));
        assert_eq!(&cfg[36..], &[1, 0, 0, 0]);
        let full = "t".repeat(MAX_FS_TAG);
        assert_eq!(&config_space(&full)[..36], full.as_bytes());
    }

    #[test]
    fn guest_features_keep_version_1_and_ring_features_only() {
        let backend = F_VERSION_1 | RING_FEATURES | F_PROTOCOL_FEATURES | (1 << 26);
        assert_eq!(guest_features(backend), F_VERSION_1 | RING_FEATURES);
        assert_eq!(guest_features(0), F_VERSION_1);
    }

    #[test]
    fn relay_turns_a_call_into_the_used_ring_interrupt() {
        let relay = CallRelay {
            calls: vec![
                EventFd::new(EFD_NONBLOCK).unwrap(),
                EventFd::new(EFD_NONBLOCK).unwrap(),
            ],
            interrupt: Mutex::new(None),
            set: Condvar::new(),
        };
        let irq = EventFd::new(EFD_NONBLOCK).unwrap();
        let interrupt = Interrupt::new(irq.try_clone().unwrap());
        relay.calls[1].write(1).unwrap();
        relay.relay_once(&interrupt).unwrap();
        assert_eq!(interrupt.status(), super::super::INT_USED_RING);
        assert_eq!(irq.read().unwrap(), 1);
        // The call was consumed.
        assert!(relay.calls[1].read().is_err());
    }

    #[test]
    fn a_lent_eventfd_is_not_closed() {
        let evt = EventFd::new(0).unwrap();
        let loan = lend(evt.as_raw_fd());
        assert_eq!(loan.as_raw_fd(), evt.as_raw_fd());
        let _ = loan;
        evt.write(1).unwrap();
        assert_eq!(evt.read().unwrap(), 1);
    }
}
