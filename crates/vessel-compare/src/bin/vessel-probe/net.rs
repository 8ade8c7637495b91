//! TCP to the host (`--net-target ADDR:PORT`, served by `vessel compare`,
//! see its `tcpserver.rs`): `--net-rtts` round trips of one byte each
//! (TCP_NODELAY, each timed), then `--net-mib` MiB of a pattern (byte `i` =
//! `i % 251`) timed from the first write to the host's acknowledgement of
//! the full count, so the figure is what arrived, not what was buffered.

use super::json::Json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const PATTERN_PERIOD: usize = 251;
/// A multiple of the period, so every full chunk starts at phase 0.
const CHUNK: usize = PATTERN_PERIOD * 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub struct NetOptions {
    pub target: Option<String>,
    pub mib: u64,
    pub rtts: u64,
}

/// The test's report: the target, round-trip statistics and the send rate,
/// or `error` (with the target) when a step failed.
pub fn net(o: &NetOptions) -> Json {
    let Some(target) = &o.target else {
        return Json::Obj(vec![(
            "error".into(),
            Json::str("no --net-target: vessel compare set up no network for this run"),
        )]);
    };
    let mut fields = vec![("target".into(), Json::str(target))];
    match measure(target, o) {
        Ok(mut f) => fields.append(&mut f),
        Err(e) => fields.push(("error".into(), Json::Str(e))),
    }
    Json::Obj(fields)
}

fn measure(target: &str, o: &NetOptions) -> Result<Vec<(String, Json)>, String> {
    let addr: SocketAddr = target
        .parse()
        .map_err(|_| format!("--net-target {target:?} is not ADDR:PORT"))?;
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let connect_ms = t.elapsed().as_secs_f64() * 1000.0;
    s.set_nodelay(true)
        .and_then(|()| s.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| s.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket options on the connection to {addr}: {e}"))?;
    let mut f = vec![("connect_ms".into(), Json::Num(connect_ms))];
    f.append(&mut round_trips(&mut s, o.rtts)?);
    f.append(&mut send(&mut s, o.mib)?);
    Ok(f)
}

/// `n` one-byte round trips; median, mean, min and max in µs.
fn round_trips(s: &mut TcpStream, n: u64) -> Result<Vec<(String, Json)>, String> {
    let mut us = Vec::with_capacity(n as usize);
    for i in 0..n {
        let b = [(i % 256) as u8];
        let mut r = [0u8; 1];
        let t = Instant::now();
        s.write_all(&b)
            .and_then(|()| s.read_exact(&mut r))
            .map_err(|e| format!("round trip {i} of {n}: {e}"))?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if r != b {
            return Err(format!(
                "round trip {i}: sent {:#04x}, got {:#04x} back",
                b[0], r[0]
            ));
        }
    }
    let mut f = vec![("rtts".into(), Json::Int(n as i64))];
    if us.is_empty() {
        return Ok(f);
    }
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    us.sort_by(f64::total_cmp);
    f.extend([
        ("rtt_median_us".into(), Json::Num(median(&us))),
        ("rtt_mean_us".into(), Json::Num(mean)),
        ("rtt_min_us".into(), Json::Num(us[0])),
        ("rtt_max_us".into(), Json::Num(us[us.len() - 1])),
    ]);
    Ok(f)
}

/// The median of sorted, non-empty `v`.
fn median(v: &[f64]) -> f64 {
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `mib` MiB of the pattern, then the host's 8-byte count; MiB/s.
fn send(s: &mut TcpStream, mib: u64) -> Result<Vec<(String, Json)>, String> {
    let total = mib << 20;
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % PATTERN_PERIOD) as u8).collect();
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = usize::try_from(total - sent).unwrap_or(CHUNK).min(CHUNK);
        s.write_all(&chunk[..n])
            .map_err(|e| format!("send: {e} after {sent} of {total} bytes"))?;
        sent += n as u64;
    }
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack)
        .map_err(|e| format!("wait for the host's acknowledgement of {total} bytes: {e}"))?;
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    let acked = u64::from_be_bytes(ack);
    if acked != total {
        return Err(format!(
            "the host acknowledged {acked} of {total} bytes intact"
        ));
    }
    let mut f = vec![("send_mib".into(), Json::Int(mib as i64))];
    if mib > 0 {
        f.push(("send_mib_s".into(), Json::Num(mib as f64 / secs)));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert_eq!(median(&[5.0]), 5.0);
    }

    #[test]
    fn no_target_and_a_bad_target_are_reported() {
        let o = NetOptions {
            target: None,
            mib: 1,
            rtts: 1,
        };
        assert!(net(&o).to_string().contains("no --net-target"));
        let o = NetOptions {
            target: Some("not-an-address".into()),
            mib: 1,
            rtts: 1,
        };
        let r = net(&o).to_string();
        assert!(
            r.contains("is not ADDR:PORT") && r.contains("\"target\":\"not-an-address\""),
            "{r}"
        );
    }
}
