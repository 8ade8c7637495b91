//! The host side of the probe's network test (`vessel-probe --net-target`),
//! a thread listening on the run's host-end address:
//!
//! 1. accept one connection from the namespace's address (others are
//!    closed and waited past);
//! 2. echo `rtts` single bytes, one at a time (the probe times each round
//!    trip);
//! 3. read `bytes` bytes, checking each against the pattern the probe sends
//!    (byte `i` of the stream = `i % 251`, see `bin/vessel-probe/net.rs`),
//!    then answer with the count received intact as a big-endian u64: the
//!    probe stops its clock when that acknowledgement arrives.
//!
//! The thread gives up once `finish` is called (the run is over) or its
//! deadline passes, so a run that never connects cannot hold it.

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The send phase's pattern period (a prime, so no power-of-two chunking
/// lines up with it).
pub const PATTERN_PERIOD: usize = 251;
const CHUNK: usize = 64 * 1024;
/// How often a blocked read looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Value>,
}

impl Server {
    /// Listen on `bind`:0 for `peer`; serve `rtts` echoes then `bytes`
    /// bytes, for at most `limit`.
    pub fn start(
        bind: Ipv4Addr,
        peer: Ipv4Addr,
        rtts: u64,
        bytes: u64,
        limit: Duration,
    ) -> Result<Server, String> {
        let listener = TcpListener::bind((bind, 0))
            .map_err(|e| format!("listen on {bind} (the host end of the veth): {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the port of the listener on {bind}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener on {addr}: set non-blocking: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let deadline = Instant::now() + limit;
        let handle = std::thread::Builder::new()
            .name("compare-tcp".into())
            .spawn(move || {
                let t = Flag {
                    stop: flag,
                    deadline,
                };
                match serve(&listener, peer, rtts, bytes, &t) {
                    Ok(()) => json!({"ok": true, "rtts": rtts, "bytes": bytes}),
                    Err(e) => json!({"ok": false, "error": format!("server on {addr}: {e}")}),
                }
            })
            .map_err(|e| format!("start the TCP server thread: {e}"))?;
        Ok(Server { addr, stop, handle })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop waiting and return what the server saw:
    /// `{"ok": true, "rtts", "bytes"}` or `{"ok": false, "error"}`.
    pub fn finish(self) -> Value {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .join()
            .unwrap_or_else(|_| json!({"ok": false, "error": "the TCP server thread panicked"}))
    }
}

/// When to give up.
struct Flag {
    stop: Arc<AtomicBool>,
    deadline: Instant,
}

impl Flag {
    fn over(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() > self.deadline
    }
}

fn serve(
    listener: &TcpListener,
    peer: Ipv4Addr,
    rtts: u64,
    bytes: u64,
    t: &Flag,
) -> Result<(), String> {
    let mut s = accept_from(listener, peer, t)?;
    s.set_nonblocking(false)
        .and_then(|()| s.set_nodelay(true))
        .and_then(|()| s.set_read_timeout(Some(POLL)))
        .and_then(|()| s.set_write_timeout(Some(Duration::from_secs(30))))
        .map_err(|e| format!("set up the connection from {peer}: {e}"))?;
    let mut one = [0u8; 1];
    for i in 0..rtts {
        if read_some(&mut s, &mut one, t)? == 0 {
            return Err(format!(
                "the probe closed the connection after {i} of {rtts} round trips"
            ));
        }
        s.write_all(&one)
            .map_err(|e| format!("echo round trip {i}: {e}"))?;
    }
    let pattern = pattern(CHUNK + PATTERN_PERIOD);
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < bytes {
        let want = usize::try_from(bytes - got).unwrap_or(CHUNK).min(CHUNK);
        let n = read_some(&mut s, &mut buf[..want], t)?;
        if n == 0 {
            return Err(format!(
                "the probe closed the connection after {got} of {bytes} bytes"
            ));
        }
        let phase = (got % PATTERN_PERIOD as u64) as usize;
        if buf[..n] != pattern[phase..phase + n] {
            let bad = (0..n).find(|&i| buf[i] != pattern[phase + i]).unwrap_or(0);
            let at = got + bad as u64;
            // Tell the probe how far the data was intact, then fail.
            let _ = s.write_all(&at.to_be_bytes());
            return Err(format!(
                "byte {at} of {bytes} arrived damaged ({:#04x}, {:#04x} sent)",
                buf[bad],
                pattern[phase + bad]
            ));
        }
        got += n as u64;
    }
    s.write_all(&got.to_be_bytes())
        .map_err(|e| format!("send the acknowledgement of {got} bytes: {e}"))
}

/// The first connection from `peer` (others are closed).
fn accept_from(listener: &TcpListener, peer: Ipv4Addr, t: &Flag) -> Result<TcpStream, String> {
    loop {
        match listener.accept() {
            Ok((s, from)) if from.ip() == IpAddr::V4(peer) => return Ok(s),
            Ok((_, from)) => {
                eprintln!("vessel compare: closed a connection from {from}, not the probe's {peer}")
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if t.over() {
                    return Err(format!("no connection from the probe at {peer}"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}

/// One read, retried across the poll timeout until data, EOF (0) or `t`.
fn read_some(s: &mut TcpStream, buf: &mut [u8], t: &Flag) -> Result<usize, String> {
    loop {
        match s.read(buf) {
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if t.over() {
                    return Err("the probe stopped sending (run over or deadline passed)".into());
                }
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// `len` bytes of the pattern from stream offset 0.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % PATTERN_PERIOD) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_local(rtts: u64, bytes: u64) -> (Server, TcpStream) {
        let lo = Ipv4Addr::LOCALHOST;
        let srv = Server::start(lo, lo, rtts, bytes, Duration::from_secs(20)).unwrap();
        let c = TcpStream::connect(srv.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (srv, c)
    }

    #[test]
    fn echoes_counts_and_acknowledges_the_pattern() {
        let (srv, mut c) = serve_local(3, 100_000);
        for b in [7u8, 8, 9] {
            c.write_all(&[b]).unwrap();
            let mut r = [0u8];
            c.read_exact(&mut r).unwrap();
            assert_eq!(r[0], b);
        }
        c.write_all(&pattern(100_000)).unwrap();
        let mut ack = [0u8; 8];
        c.read_exact(&mut ack).unwrap();
        assert_eq!(u64::from_be_bytes(ack), 100_000);
        assert_eq!(srv.finish()["ok"], true);
    }

    #[test]
    fn damage_and_short_streams_are_errors() {
        let (srv, mut c) = serve_local(0, 1000);
        let mut data = pattern(1000);
        data[600] ^= 1;
        c.write_all(&data).unwrap();
        let mut ack = [0u8; 8];
        c.read_exact(&mut ack).unwrap();
        assert_eq!(u64::from_be_bytes(ack), 600);
        let r = srv.finish();
        assert_eq!(r["ok"], false);
        assert!(
            r["error"].as_str().unwrap().contains("byte 600 of 1000"),
            "{r}"
        );

        let (srv, mut c) = serve_local(0, 1000);
        c.write_all(&pattern(10)).unwrap();
        drop(c);
        let r = srv.finish();
        assert!(
            r["error"].as_str().unwrap().contains("after 10 of 1000"),
            "{r}"
        );
    }

    #[test]
    fn finish_ends_a_server_nobody_connected_to() {
        let lo = Ipv4Addr::LOCALHOST;
        let srv = Server::start(lo, lo, 1, 1, Duration::from_secs(600)).unwrap();
        let t = Instant::now();
        let r = srv.finish();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            r["error"].as_str().unwrap().contains("no connection"),
            "{r}"
        );
    }
}
