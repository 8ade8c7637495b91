//! virtio-console's multiport control queues (virtio spec 5.3.6.2): how the
//! agent channel's one port is announced to the guest as a plain character
//! device named [`AGENT_PORT_NAME`] (`/dev/vport<N>p0`, no tty layer) rather
//! than an hvc console, and told the host side is open.
//!
//! The driver says DEVICE_READY; the device answers DEVICE_ADD for port 0;
//! the driver says PORT_READY; the device answers PORT_NAME and PORT_OPEN.
//! Each message is `{ id: le32, event: le16, value: le16 }`, PORT_NAME
//! followed by the name's bytes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::Interrupt;

/// VIRTIO_CONSOLE_F_MULTIPORT.
pub const F_MULTIPORT: u64 = 1 << 1;
/// What the guest finds in /sys/class/virtio-ports/*/name.
pub const AGENT_PORT_NAME: &str = "vessel.agent";
/// The agent channel is port 0, the only one (config max_nr_ports = 1).
const AGENT_PORT: u32 = 0;

const DEVICE_READY: u16 = 0;
const DEVICE_ADD: u16 = 1;
const PORT_READY: u16 = 3;
const PORT_OPEN: u16 = 6;
const PORT_NAME: u16 = 7;
const MESSAGE_LEN: usize = 8;

fn message(id: u32, event: u16, value: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(MESSAGE_LEN + AGENT_PORT_NAME.len());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&event.to_le_bytes());
    m.extend_from_slice(&value.to_le_bytes());
    m
}

/// The device's answers to one message from the driver.
pub fn answer(msg: &[u8]) -> Vec<Vec<u8>> {
    if msg.len() < MESSAGE_LEN {
        return Vec::new();
    }
    let id = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let event = u16::from_le_bytes([msg[4], msg[5]]);
    let value = u16::from_le_bytes([msg[6], msg[7]]);
    match (event, value) {
        (DEVICE_READY, 1) => vec![message(AGENT_PORT, DEVICE_ADD, 0)],
        (PORT_READY, 1) if id == AGENT_PORT => {
            let mut name = message(AGENT_PORT, PORT_NAME, 1);
            name.extend_from_slice(AGENT_PORT_NAME.as_bytes());
            vec![name, message(AGENT_PORT, PORT_OPEN, 1)]
        }
        // The guest opening or closing its end, a failed port: nothing to do.
        _ => Vec::new(),
    }
}

/// The control receive (device to driver) and transmit queues.
pub struct Control {
    pub mem: GuestMemoryMmap,
    pub rx: Queue,
    pub tx: Queue,
    pub interrupt: Arc<Interrupt>,
    /// Answers waiting for a receive buffer.
    pending: VecDeque<Vec<u8>>,
}

fn queue_err(e: virtio_queue::Error) -> io::Error {
    io::Error::other(format!("console control queue: {e:?}"))
}

impl Control {
    pub fn new(mem: GuestMemoryMmap, rx: Queue, tx: Queue, interrupt: Arc<Interrupt>) -> Self {
        Control {
            mem,
            rx,
            tx,
            interrupt,
            pending: VecDeque::new(),
        }
    }

    /// Reads the driver's messages, queues the answers, and delivers what
    /// fits in the receive buffers the driver posted.
    pub fn service(&mut self) -> io::Result<()> {
        let mut notify = false;
        while let Some(chain) = self.tx.pop_descriptor_chain(&self.mem) {
            let head = chain.head_index();
            let mut msg = Vec::new();
            chain
                .reader(&self.mem)
                .map_err(|e| io::Error::other(format!("console control buffer: {e:?}")))?
                .take(256)
                .read_to_end(&mut msg)?;
            self.pending.extend(answer(&msg));
            self.tx.add_used(&self.mem, head, 0).map_err(queue_err)?;
            notify = true;
        }
        while let Some(reply) = self.pending.front() {
            let Some(chain) = self.rx.pop_descriptor_chain(&self.mem) else {
                break;
            };
            let head = chain.head_index();
            let mut w = chain
                .writer(&self.mem)
                .map_err(|e| io::Error::other(format!("console control buffer: {e:?}")))?;
            let n = reply.len().min(w.available_bytes());
            w.write_all(&reply[..n])?;
            self.rx
                .add_used(&self.mem, head, n as u32)
                .map_err(queue_err)?;
            self.pending.pop_front();
            notify = true;
        }
        if notify {
            self.interrupt.signal_used()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_names_and_opens_port_0() {
        let ready = message(0, DEVICE_READY, 1);
        assert_eq!(answer(&ready), vec![vec![0, 0, 0, 0, 1, 0, 0, 0]]);
        let port_ready = message(0, PORT_READY, 1);
        let got = answer(&port_ready);
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0][..8], &[0, 0, 0, 0, 7, 0, 1, 0]);
        assert_eq!(&got[0][8..], b"vessel.agent");
        assert_eq!(got[1], vec![0, 0, 0, 0, 6, 0, 1, 0]);
        // The guest opening its end, a port that failed, a short message.
        assert!(answer(&message(0, PORT_OPEN, 1)).is_empty());
        assert!(answer(&message(0, PORT_READY, 0)).is_empty());
        assert!(answer(&[1, 2]).is_empty());
    }
}
