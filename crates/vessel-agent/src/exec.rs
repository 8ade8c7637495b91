//! Execs: more processes in the running guest, asked for by `vessel exec`
//! through the VMM (`vessel_protocol`'s exec frames, each with the exec's
//! id). A request is the OCI process object, sent in `P` frames and started
//! by `p`; the process gets the workload's rules (the same `spawn::start`:
//! user, capabilities, no_new_privs, rlimits, the spec's seccomp profile),
//! pipes for stdio, and its output goes back as `o`/`r` frames, then `x` or
//! `k` once it has exited and its pipes are drained. A process that cannot
//! start gets an `r` message and `x` 125, 126 or 127, as the workload would.

use super::console_note;
use super::port::{send_to, Stream};
use super::relay::{drain_tty_to, pump_to, set_nonblocking};
use super::spawn::{Failure, Workload};
use super::spec::Process;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use vessel_protocol as protocol;

/// The request JSON an exec may send.
const MAX_REQUEST: usize = 1 << 20;
/// Stdin an exec has not read yet, kept in the agent.
const MAX_PENDING_STDIN: usize = 4 << 20;

/// Starts a process in the workload's namespaces with its rules; with a
/// terminal when given Some(clear ONLCR).
pub type Spawner<'a> = dyn Fn(&Process, Option<bool>) -> Result<Workload, Failure> + 'a;

struct Running {
    id: u8,
    pid: i32,
    stdin: Option<File>,
    out: Option<File>,
    err: Option<File>,
    pending: Vec<u8>,
    stdin_eof: bool,
    /// The pty master, when the exec has a terminal.
    tty: Option<i32>,
}

/// Requests being received, and the execs running.
#[derive(Default)]
pub struct Execs {
    requests: HashMap<u8, Vec<u8>>,
    running: Vec<Running>,
    /// The workload's pid (as the agent sees it), for queries.
    workload: i32,
}

fn nonblocking(f: File) -> File {
    let _ = set_nonblocking(f.as_raw_fd(), true);
    f
}

impl Execs {
    /// No execs yet; queries are about `workload` (its agent-side pid).
    pub fn for_workload(workload: i32) -> Execs {
        Execs {
            workload,
            ..Execs::default()
        }
    }

    /// A frame from the host for exec `id`.
    pub fn on_frame(&mut self, kind: u8, id: u8, data: &[u8], spawn: &Spawner, ch: &mut File) {
        match kind {
            protocol::KIND_EXEC_REQUEST => {
                let req = self.requests.entry(id).or_default();
                if req.len() + data.len() <= MAX_REQUEST {
                    req.extend_from_slice(data);
                }
            }
            protocol::KIND_EXEC_START => {
                let req = self.requests.remove(&id).unwrap_or_default();
                self.start(id, &req, spawn, ch);
            }
            protocol::KIND_EXEC_QUERY => {
                let arg = self.requests.remove(&id).unwrap_or_default();
                self.query(id, data, &arg, ch);
            }
            protocol::KIND_EXEC_STDIN => {
                if let Some(r) = self.find(id) {
                    if r.stdin.is_some() && r.pending.len() + data.len() <= MAX_PENDING_STDIN {
                        r.pending.extend_from_slice(data);
                    }
                }
            }
            protocol::KIND_EXEC_STDIN_EOF => {
                if let Some(r) = self.find(id) {
                    r.stdin_eof = true;
                }
            }
            protocol::KIND_EXEC_WINSIZE => {
                if let (Some(r), [r0, r1, c0, c1]) = (self.find(id), data) {
                    if let Some(master) = r.tty {
                        let (rows, cols) = (
                            u16::from_le_bytes([*r0, *r1]),
                            u16::from_le_bytes([*c0, *c1]),
                        );
                        if let Err(e) = crate::tty::set_window_size(master, rows, cols) {
                            console_note(&format!("exec {id}: {e}"));
                        }
                    }
                }
            }
            protocol::KIND_EXEC_SIGNAL => {
                if let (Some(r), Some(&sig)) = (self.find(id), data.first()) {
                    // SAFETY: kill(2) of a process this agent started.
                    unsafe { libc::kill(r.pid, i32::from(sig)) };
                }
            }
            other => console_note(&format!("exec {id}: ignoring frame kind {other}")),
        }
    }

    fn find(&mut self, id: u8) -> Option<&mut Running> {
        self.running.iter_mut().find(|r| r.id == id)
    }

    fn start(&mut self, id: u8, req: &[u8], spawn: &Spawner, ch: &mut File) {
        let started = serde_json::from_slice::<Process>(req)
            .map_err(|e| Failure::other(format!("exec: process: {e}")))
            .and_then(|p| spawn(&p, p.terminal.then_some(p.clear_onlcr)));
        match started {
            Ok(w) => self.running.push(Running {
                id,
                pid: w.pid,
                stdin: w.stdin.map(|f| nonblocking(File::from(f))),
                out: Some(nonblocking(File::from(w.stdout))),
                err: w.stderr.map(|f| nonblocking(File::from(f))),
                pending: Vec::new(),
                stdin_eof: false,
                tty: w.tty,
            }),
            Err(f) => {
                let line = format!("vessel-agent: {}\n", f.msg);
                send_to(
                    ch,
                    Stream::Exec(protocol::KIND_EXEC_STDERR, id),
                    line.as_bytes(),
                );
                send_to(
                    ch,
                    Stream::Exec(protocol::KIND_EXEC_EXIT, id),
                    &[f.code as u8],
                );
            }
        }
    }

    /// Answers a query (`query`).
    fn query(&mut self, id: u8, what: &[u8], arg: &[u8], ch: &mut File) {
        let answer = super::query::answer(what, arg, self.workload);
        send_answer(ch, id, answer.map_err(|e| format!("query: {e}")));
    }

    /// What to poll: each exec's output pipes, and its stdin while some is
    /// pending.
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        let raw = |f: &Option<File>| f.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let mut fds = Vec::with_capacity(self.running.len() * 3);
        for r in &self.running {
            let stdin = if r.pending.is_empty() {
                -1
            } else {
                raw(&r.stdin)
            };
            for (fd, events) in [
                (raw(&r.out), libc::POLLIN),
                (raw(&r.err), libc::POLLIN),
                (stdin, libc::POLLOUT),
            ] {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
            }
        }
        fds
    }

    /// Moves output and stdin for the execs whose descriptors are ready
    /// (`ready` as `poll_fds` laid them out).
    pub fn service(&mut self, ready: &[libc::pollfd], ch: &mut File) {
        for (r, fds) in self.running.iter_mut().zip(ready.chunks(3)) {
            if fds[0].revents != 0 {
                pump_to(
                    &mut r.out,
                    Stream::Exec(protocol::KIND_EXEC_STDOUT, r.id),
                    ch,
                );
            }
            if fds[1].revents != 0 {
                pump_to(
                    &mut r.err,
                    Stream::Exec(protocol::KIND_EXEC_STDERR, r.id),
                    ch,
                );
            }
            write_pending(r);
        }
    }

    /// An exec's process has exited with wait status `status`: its last
    /// output, then its status, go to the host. False when `pid` is not an
    /// exec.
    pub fn reaped(&mut self, pid: i32, status: i32, ch: &mut File) -> bool {
        let Some(at) = self.running.iter().position(|r| r.pid == pid) else {
            return false;
        };
        let mut r = self.running.remove(at);
        // What it wrote is in the pipes now (a pty passes it on a moment
        // later); children it left behind may keep them open, so only what
        // is there is read.
        if r.tty.is_some() {
            drain_tty_to(
                &mut r.out,
                Stream::Exec(protocol::KIND_EXEC_STDOUT, r.id),
                ch,
            );
        }
        pump_to(
            &mut r.out,
            Stream::Exec(protocol::KIND_EXEC_STDOUT, r.id),
            ch,
        );
        pump_to(
            &mut r.err,
            Stream::Exec(protocol::KIND_EXEC_STDERR, r.id),
            ch,
        );
        let end = if libc::WIFSIGNALED(status) {
            Stream::Exec(protocol::KIND_EXEC_KILLED, r.id)
        } else {
            Stream::Exec(protocol::KIND_EXEC_EXIT, r.id)
        };
        let value = if libc::WIFSIGNALED(status) {
            libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        };
        send_to(ch, end, &[value as u8]);
        true
    }
}

/// Writes as much pending stdin as the exec's pipe takes now; closes it at
/// the host's EOF once everything is written.
fn write_pending(r: &mut Running) {
    super::relay::write_pending(&mut r.stdin, &mut r.pending);
    if r.stdin_eof && r.pending.is_empty() {
        r.stdin = None;
    }
}

/// Answers query `id` as an exec would end: the JSON on stdout and
/// status 0, or `vessel-agent: <error>` on stderr and status 125.
pub fn send_answer(ch: &mut File, id: u8, answer: Result<Vec<u8>, String>) {
    match answer {
        Ok(json) => {
            send_to(ch, Stream::Exec(protocol::KIND_EXEC_STDOUT, id), &json);
            send_to(ch, Stream::Exec(protocol::KIND_EXEC_EXIT, id), &[0]);
        }
        Err(e) => {
            let line = format!("vessel-agent: {e}\n");
            send_to(
                ch,
                Stream::Exec(protocol::KIND_EXEC_STDERR, id),
                line.as_bytes(),
            );
            send_to(ch, Stream::Exec(protocol::KIND_EXEC_EXIT, id), &[125]);
        }
    }
}
