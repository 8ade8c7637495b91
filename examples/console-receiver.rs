//! A minimal --console-socket receiver for tests where no engine runs (the
//! nested test VM has busybox only): it plays conmon's part.
//!
//! `console-receiver SOCKET OUT ROWS COLS INPUT`: listens on SOCKET, takes
//! the pty master sent over it (SCM_RIGHTS), writes the name it came with
//! and then everything read from the master to OUT. Once the output holds
//! a line `ready`, it sets the master's window size to ROWS x COLS
//! (TIOCSWINSZ) and writes INPUT and a newline to the master. It returns
//! when the master reads EOF/EIO (the workload's terminal is gone) or
//! after 300 s. Built by `cargo build --example console-receiver` (tests/vm.rs).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("console-receiver: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, out, rows, cols, input] = args.as_slice() else {
        return Err("usage: console-receiver SOCKET OUT ROWS COLS INPUT".into());
    };
    let rows: u16 = rows.parse().map_err(|e| format!("ROWS {rows:?}: {e}"))?;
    let cols: u16 = cols.parse().map_err(|e| format!("COLS {cols:?}: {e}"))?;
    let listener = UnixListener::bind(socket).map_err(|e| format!("bind {socket}: {e}"))?;
    let mut out = File::create(out).map_err(|e| format!("create {out}: {e}"))?;
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("accept on {socket}: {e}"))?;
    let mut name = [0u8; 256];
    let (fd, n) = libvessel::process::sync::recv_fd_named(conn.as_raw_fd(), &mut name)
        .ok_or("no descriptor came over the console socket")?;
    // SAFETY: a descriptor received with SCM_RIGHTS is ours.
    let mut master = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let write_out =
        |out: &mut File, b: &[u8]| out.write_all(b).map_err(|e| format!("write output: {e}"));
    write_out(&mut out, b"name=")?;
    write_out(&mut out, &name[..n])?;
    write_out(&mut out, b"\n")?;

    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = Vec::new();
    let mut sent = false;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                write_out(&mut out, &buf[..n])?;
                seen.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: every slave is closed.
            Err(_) => break,
        }
        let ready = String::from_utf8_lossy(&seen)
            .lines()
            .any(|l| l.trim_end() == "ready");
        if ready && !sent {
            sent = true;
            vessel_common::pty::set_window_size(master.as_raw_fd(), rows, cols)
                .map_err(|e| format!("TIOCSWINSZ: {e}"))?;
            master
                .write_all(format!("{input}\n").as_bytes())
                .map_err(|e| format!("write to the master: {e}"))?;
        }
    }
    Ok(())
}
