//! The guest's network when the runtime gives it after boot
//! (`vessel_protocol::launch::CMDLINE_NET_LATE`): a spec with `prestart`
//! or `createRuntime` hooks lets those set the container's network
//! namespace up first (a CNI-style hook adds its interface), so the
//! runtime connects the namespace to the VM only then and sends the
//! settings as a `net` query. The agent waits for it before it sets the
//! workload up; what else the host sends meanwhile (the workload's stdin,
//! signals) is kept for the relay, and an exec is refused: the container
//! is not created yet.

use super::console_note;
use super::exec::send_answer;
use super::relay::{read_some, Early};
use std::collections::HashMap;
use std::fs::File;
use vessel_protocol::net::GuestNet;
use vessel_protocol::{self as protocol, Frame};

/// The request bytes one query argument may have.
const MAX_ARG: usize = 64 * 1024;

/// Reads the channel until the runtime's `net` query; returns its settings
/// (None: the namespace has no interface) and what else came.
pub fn receive(channel: &mut File) -> Result<(Option<GuestNet>, Early), String> {
    let mut early = Early::default();
    let mut args: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut answer: Option<Result<Option<GuestNet>, String>> = None;
    while answer.is_none() {
        let mut buf = [0u8; 4096];
        let n = match read_some(channel, &mut buf, -1) {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(e) => return Err(format!("read the agent channel: {e}")),
        };
        let mut decoder = std::mem::take(&mut early.decoder);
        decoder.feed(&buf[..n], |frame| match frame {
            Frame::Exec {
                kind: protocol::KIND_EXEC_REQUEST,
                id,
                data,
            } => {
                let arg = args.entry(id).or_default();
                if arg.len() + data.len() <= MAX_ARG {
                    arg.extend_from_slice(data);
                }
            }
            Frame::Exec {
                kind: protocol::KIND_EXEC_QUERY,
                id,
                data: protocol::QUERY_NET,
            } => {
                let arg = args.remove(&id).unwrap_or_default();
                let got = settings(&arg);
                let reply = got.as_ref().map(|_| b"{}".to_vec()).map_err(String::clone);
                send_answer(channel, id, reply);
                answer = Some(got);
            }
            Frame::Exec {
                kind: protocol::KIND_EXEC_QUERY | protocol::KIND_EXEC_START,
                id,
                ..
            } => {
                args.remove(&id);
                let refusal =
                    "the container is still being created (its network is not set up yet)";
                send_answer(channel, id, Err(refusal.into()));
            }
            other if early.keep(&other) => {}
            other => console_note(&format!("ignoring a frame before the network: {other:?}")),
        });
        early.decoder = decoder;
    }
    let net = answer.unwrap_or(Ok(None))?;
    Ok((net, early))
}

/// The settings in a `net` query's argument: the rendered text, empty for
/// no interface.
fn settings(arg: &[u8]) -> Result<Option<GuestNet>, String> {
    let text = std::str::from_utf8(arg).map_err(|_| "network settings: not UTF-8".to_string())?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    GuestNet::parse(text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_the_rendered_text_or_nothing() {
        assert_eq!(settings(b"").unwrap(), None);
        assert_eq!(settings(b" \n").unwrap(), None);
        let net = settings(b"link eth0 02:42:0a:c8:00:02 1500\naddr 10.200.0.2/24\n")
            .unwrap()
            .unwrap();
        assert_eq!(net.name, "eth0");
        assert!(settings(b"link").is_err());
        assert!(settings(&[0xff]).is_err());
    }
}
