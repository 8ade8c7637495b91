//! The agent channel's guest end: the virtio-console port the VMM names
//! `vessel.agent`, a plain character device (`/dev/vport<N>p<M>`, no tty
//! layer). It is kept non-blocking: a blocking write makes the guest driver
//! spin until the host has taken that buffer, where a non-blocking one
//! queues it (up to 32 KiB a write) and returns, so many buffers are in
//! flight; [`send`] waits in poll(2) only when the queue is full.

use super::console_note;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vessel_protocol as protocol;

/// The port's name, as the VMM announces it.
pub const PORT_NAME: &str = "vessel.agent";
/// Where the guest kernel lists virtio-console ports and their names.
const PORTS_DIR: &str = "/sys/class/virtio-ports";
/// How long to wait for the port after the driver loaded (the host names
/// it through the control queue, then devtmpfs creates the node).
const PORT_WAIT: Duration = Duration::from_secs(5);

/// The device node of the port named `name` under `ports_dir`, if listed.
fn find_port(ports_dir: &str, name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(ports_dir).ok()?;
    entries.flatten().find_map(|e| {
        let listed = std::fs::read_to_string(e.path().join("name")).ok()?;
        (listed.trim_end() == name).then(|| PathBuf::from("/dev").join(e.file_name()))
    })
}

/// Opens the port (waiting for it to appear) and says hello.
pub fn open_channel() -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let started = Instant::now();
    let mut f = loop {
        let opened = find_port(PORTS_DIR, PORT_NAME).map(|dev| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&dev)
                .map_err(|e| format!("open {}: {e}", dev.display()))
        });
        match opened {
            Some(Ok(f)) => break f,
            Some(Err(e)) if started.elapsed() >= PORT_WAIT => return Err(e),
            None if started.elapsed() >= PORT_WAIT => {
                return Err(format!(
                    "no virtio-console port named {PORT_NAME} in {PORTS_DIR} after {PORT_WAIT:?} \
                     (is virtio_console loaded, or built into the guest kernel?)"
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    // Ready: the hello frame with this build's protocol version. The VMM
    // holds stdin and signal frames until the guest's first frame arrives
    // (the guest driver drops what comes while the port is closed).
    send(&mut f, protocol::KIND_HELLO, &[protocol::PROTOCOL_VERSION]);
    Ok(f)
}

/// Sends data as frames of `kind`, waiting for room when the queue is full.
pub fn send(channel: &mut File, kind: u8, data: &[u8]) {
    send_to(channel, Stream::Workload(kind), data)
}

/// Whose stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The workload's: a frame kind.
    Workload(u8),
    /// An exec's: an exec frame kind and the exec's id.
    Exec(u8, u8),
}

/// Sends data on `stream`, waiting for room when the queue is full.
pub fn send_to(channel: &mut File, stream: Stream, data: &[u8]) {
    let mut buf = Vec::with_capacity(data.len() + data.len() / protocol::MAX_EXEC_DATA * 3 + 3);
    match stream {
        Stream::Workload(kind) => protocol::encode(kind, data, &mut buf),
        Stream::Exec(kind, id) => protocol::encode_exec(kind, id, data, &mut buf),
    }
    if let Err(e) = write_all_waiting(channel, &buf) {
        console_note(&format!("write to the agent channel: {e}"));
    }
}

fn write_all_waiting(channel: &mut File, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match channel.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut p = libc::pollfd {
                    fd: channel.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: poll on one valid pollfd.
                unsafe { libc::poll(&mut p, 1, 1000) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_found_by_its_name() {
        let dir = std::env::temp_dir().join(format!("vessel-ports-{}", std::process::id()));
        for (port, name) in [("vport0p1", "other\n"), ("vport1p0", "vessel.agent\n")] {
            std::fs::create_dir_all(dir.join(port)).unwrap();
            std::fs::write(dir.join(port).join("name"), name).unwrap();
        }
        let d = dir.to_str().unwrap();
        assert_eq!(
            find_port(d, PORT_NAME),
            Some(PathBuf::from("/dev/vport1p0"))
        );
        assert_eq!(find_port(d, "missing"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
