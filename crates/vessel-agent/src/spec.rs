//! The parts of config.json the agent acts on (`process`, `hostname`,
//! `mounts`, `linux.sysctl`, `linux.seccomp`, `linux.maskedPaths`,
//! `linux.readonlyPaths`, `root.readonly`), read with
//! serde into small structs rather than the full oci-spec `Spec`.
//!
//! `process.capabilities` and `linux.seccomp` are the exception: they are
//! oci-spec's own types, the input of vessel-isolation's `CapSets::from_oci`
//! and `seccomp::compile_with_flags`, so the guest parses them exactly as
//! container mode does (an unknown capability or action fails the same way)
//! and hands them to the same code. Seccomp flags oci-spec cannot parse are
//! taken out first, as libvessel does (`seccomp::take_extra_flags`).

use serde::Deserialize;
use std::collections::BTreeMap;

pub const CONFIG_PATH: &str = "/.vessel/config.json";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub process: Option<Process>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    pub linux: Option<Linux>,
    pub root: Option<Root>,
    /// `linux.seccomp.flags` oci-spec cannot parse, for `compile_with_flags`.
    #[serde(skip)]
    pub seccomp_extra_flags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default)]
    pub terminal: bool,
    /// An exec's request only: its terminal does not turn `\n` into
    /// `\r\n` (the host relays it to a terminal of its own, as container
    /// mode's foreground `exec -t` clears ONLCR).
    #[serde(default, rename = "vesselClearOnlcr")]
    pub clear_onlcr: bool,
    pub capabilities: Option<oci_spec::runtime::LinuxCapabilities>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    pub umask: Option<u32>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Linux {
    #[serde(default)]
    pub sysctl: BTreeMap<String, String>,
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    #[serde(default, rename = "maskedPaths")]
    pub masked_paths: Vec<String>,
    #[serde(default, rename = "readonlyPaths")]
    pub readonly_paths: Vec<String>,
    pub resources: Option<Resources>,
}

/// The part of `linux.resources` the guest applies to the workload's own
/// cgroup (`cgroup.rs`), at boot and at `update`; all of it also bounds
/// the whole VM on the host.
#[derive(Debug, Default, Deserialize)]
pub struct Resources {
    pub pids: Option<Pids>,
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Pids {
    #[serde(default)]
    pub limit: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Root {
    #[serde(default)]
    pub readonly: bool,
}

pub fn load(path: &str) -> Result<Config, String> {
    let text = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
    parse(&text).map_err(|e| format!("parse {path}: {e}"))
}

fn parse(text: &[u8]) -> Result<Config, serde_json::Error> {
    let mut raw: serde_json::Value = serde_json::from_slice(text)?;
    let extra = vessel_isolation::seccomp::take_extra_flags(&mut raw);
    let mut cfg: Config = serde_json::from_value(raw)?;
    cfg.seccomp_extra_flags = extra;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_and_seccomp_parse_as_oci_types() {
        let cfg = parse(
            br#"{"process": {"args": ["sh"], "noNewPrivileges": true,
                 "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}},
                 "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                   "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}}}"#,
        )
        .expect("config parses");
        let p = cfg.process.expect("process");
        assert!(p.no_new_privileges);
        let caps = vessel_isolation::caps::CapSets::from_oci(p.capabilities.as_ref(), 40);
        assert_eq!(
            (caps.bounding, caps.effective, caps.permitted),
            (1 << 5, 1 << 5, 0)
        );
        let sc = cfg.linux.and_then(|l| l.seccomp).expect("seccomp");
        assert_eq!(sc.syscalls().as_ref().map(Vec::len), Some(1));
        assert_eq!(
            cfg.seccomp_extra_flags,
            ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        );
        assert!(parse(br#"{"process": {"capabilities": {"bounding": ["CAP_NOPE"]}}}"#).is_err());
    }
}
