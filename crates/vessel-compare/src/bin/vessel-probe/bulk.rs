//! Bulk stdout: N MiB of numbered 64-byte lines written to stdout, timed.
//! The host (`vessel compare`) checks every line arrived, in order and
//! intact; the time is the workload's, and the writes block while the
//! sandbox's stdout path (a pipe, or the VM's agent channel) is full, so
//! it measures that path end to end once N is well above its buffers.

use super::json::Json;
use std::time::Instant;

/// Bytes per line; a MiB holds exactly 16384 lines.
pub const LINE_LEN: usize = 64;

/// Line `n`: "bulk " + 10 digits + padding + newline, 64 bytes.
pub fn line(n: u64, out: &mut [u8; LINE_LEN]) {
    out.fill(b'.');
    out[..5].copy_from_slice(b"bulk ");
    let mut v = n;
    for i in (5..15).rev() {
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out[LINE_LEN - 1] = b'\n';
}

/// Writes `mib` MiB of lines to fd 1; reports the size and the rate.
pub fn write_bulk(mib: u64, write_all: fn(i32, &[u8]) -> bool) -> Json {
    let lines = mib * (1 << 20) / LINE_LEN as u64;
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut l = [0u8; LINE_LEN];
    let t = Instant::now();
    for n in 0..lines {
        line(n, &mut l);
        chunk.extend_from_slice(&l);
        if chunk.len() >= 64 * 1024 || n + 1 == lines {
            if !write_all(1, &chunk) {
                return Json::Obj(vec![("error".into(), Json::str("writing stdout failed"))]);
            }
            chunk.clear();
        }
    }
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    Json::Obj(vec![
        ("mib".into(), Json::Num(mib as f64)),
        ("lines".into(), Json::Num(lines as f64)),
        ("mib_s".into(), Json::Num(mib as f64 / secs)),
    ])
}
