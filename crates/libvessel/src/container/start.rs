//! `start`: release the init (or VMM) waiting on the exec FIFO, then run the
//! poststart hooks.

use crate::container::state::{Status, EXEC_FIFO};
use crate::{hooks, Error, Result};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let (dir, _lock, st) = super::load_locked(root, id)?;
    match st.live_status(&dir) {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::WrongState(format!(
                "cannot start a container that has stopped: {id}"
            )))
        }
        s => {
            return Err(Error::WrongState(format!(
                "cannot start an already running container: {id} is {}",
                s.as_str()
            )))
        }
    }
    let fifo = dir.join(EXEC_FIFO);
    // Non-blocking open, then wait for the init's byte while it is alive, so
    // a dead init can never hang `start`.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(Error::io("open exec fifo", &fifo))?;
    let mut buf = [0u8; 1];
    // Phase 1: the init's byte. Phase 2: EOF, when its write end closes at
    // execve of the workload (or at its exit).
    let mut got_byte = false;
    loop {
        match f.read(&mut buf) {
            Ok(1) if !got_byte => got_byte = true,
            Ok(0) if got_byte => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::io("read exec fifo", &fifo)(e)),
        }
        if !st.init_alive() {
            // The init may have written its byte, exec'd and exited (a fast
            // workload) between the read above and this check: the byte is
            // still in the pipe. Only an init that died without writing it
            // never started.
            if !got_byte {
                got_byte = matches!(f.read(&mut buf), Ok(1));
            }
            if got_byte {
                break;
            }
            return Err(Error::WrongState(format!(
                "container {id}: its init exited before start"
            )));
        }
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&f),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 20) };
        // Before the init opened its end, a FIFO may report POLLHUP at
        // once: back off a little instead of spinning. After the byte,
        // POLLHUP is the EOF we wait for: read it at once.
        if !got_byte && pfd.revents & libc::POLLHUP != 0 && pfd.revents & libc::POLLIN == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::fs::remove_file(&fifo).map_err(Error::io("remove exec fifo", &fifo))?;
    crate::logging::debug(&format!("container {id}: started (pid {})", st.pid));
    if !st.poststart.is_empty() {
        // The workload was started (it may already have exited): poststart
        // hooks see it as running, with its pid, as runc reports it.
        let mut v = st.oci_json(&dir);
        v["status"] = serde_json::json!("running");
        v["pid"] = serde_json::json!(st.pid);
        hooks::run("poststart", &st.poststart, &v.to_string(), None)?;
    }
    Ok(())
}
