//! `vessel-vmm` arguments.

use std::path::PathBuf;

use super::layout::MAX_VCPUS;
use super::sandbox::Identity;
use super::virtio::net::NetParams;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmArgs {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub vcpus: u8,
    pub mem_mib: u64,
    pub exec_fifo: Option<PathBuf>,
    pub console_log: Option<PathBuf>,
    /// `--uid U --gid G`: who the VMM becomes once the VM is set up
    /// (both or neither).
    pub identity: Option<Identity>,
    /// `--tty`: stdio is the workload's terminal (a pty slave the runtime
    /// made): raw mode, controlling terminal, window sizes to the guest.
    /// Never guessed from isatty: a `run` without a terminal from an
    /// interactive shell hands the VMM the caller's own tty.
    pub tty: bool,
    /// `--net-fd N --net-mac MAC --net-mtu M`: an inherited tap fd and the
    /// guest interface's MAC and MTU (all three or none).
    pub net: Option<NetParams>,
    /// `--exec-socket PATH`: where `vessel exec` connects (see `exec`).
    pub exec_socket: Option<PathBuf>,
    /// `--virtiofs SOCKET:TAG`: a virtio-fs device whose backend (virtiofsd)
    /// listens on SOCKET; the guest mounts it by TAG.
    pub virtiofs: Option<FsShare>,
}

/// A virtio-fs share: the vhost-user socket of its backend and its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsShare {
    pub socket: PathBuf,
    pub tag: String,
    /// `--virtiofs-fd N`: the runtime's connection to the socket, inherited,
    /// used instead of connecting (so virtiofsd sees the VMM's end close
    /// even if the VMM dies before it would have connected).
    pub fd: Option<i32>,
}

/// The longest tag virtio-fs's configuration space holds (virtio spec 5.11.4).
pub const MAX_FS_TAG: usize = 36;

/// Parses `SOCKET:TAG` (the tag is after the last ':'; it is 1 to 36
/// bytes, without ':' or whitespace).
pub fn parse_fs_share(v: &str) -> Result<FsShare, String> {
    let bad = |why: &str| format!("--virtiofs {v:?}: {why} (expected SOCKET:TAG)");
    let (socket, tag) = v.rsplit_once(':').ok_or_else(|| bad("no ':'"))?;
    if socket.is_empty() {
        return Err(bad("empty socket path"));
    }
    if tag.is_empty() || tag.len() > MAX_FS_TAG {
        return Err(bad(&format!("the tag must be 1 to {MAX_FS_TAG} bytes")));
    }
    if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the tag must not hold whitespace"));
    }
    Ok(FsShare {
        socket: PathBuf::from(socket),
        tag: tag.to_string(),
        fd: None,
    })
}

pub const USAGE: &str = "usage: vessel-vmm --kernel PATH [--initrd PATH] [--cmdline STR] \
[--vcpus N] [--mem-mib M] [--exec-fifo PATH] [--console-log PATH] [--uid U --gid G] [--tty] \
[--exec-socket PATH] [--virtiofs SOCKET:TAG [--virtiofs-fd N]] \
[--net-fd N --net-mac MAC --net-mtu M]";

use vessel_protocol::launch::{DEFAULT_MEM_MIB, DEFAULT_VCPUS, MAX_MEM_MIB, MIN_MEM_MIB};

/// Parses `args` (without the program name). Accepts
/// `--flag value` and `--flag=value`.
pub fn parse(args: &[String]) -> Result<VmmArgs, String> {
    let mut kernel = None;
    let mut initrd = None;
    let mut cmdline = String::new();
    let mut vcpus: u8 = DEFAULT_VCPUS.try_into().unwrap_or(1);
    let mut mem_mib = DEFAULT_MEM_MIB;
    let mut exec_fifo = None;
    let mut console_log = None;
    let (mut uid, mut gid) = (None, None);
    let mut tty = false;
    let mut exec_socket = None;
    let (mut net_fd, mut net_mac, mut net_mtu) = (None, None, None);
    let mut virtiofs: Option<FsShare> = None;
    let mut virtiofs_fd = None;

    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        if flag == "--tty" && inline.is_none() {
            tty = true;
            continue;
        }
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--kernel" => kernel = Some(PathBuf::from(value()?)),
            "--initrd" => initrd = Some(PathBuf::from(value()?)),
            "--cmdline" => cmdline = value()?,
            "--vcpus" => {
                let v = value()?;
                vcpus = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_VCPUS).contains(n))
                    .ok_or_else(|| format!("--vcpus {v}: expected 1..={MAX_VCPUS}"))?;
            }
            "--mem-mib" => {
                let v = value()?;
                mem_mib = v
                    .parse()
                    .ok()
                    .filter(|m| (MIN_MEM_MIB..=MAX_MEM_MIB).contains(m))
                    .ok_or_else(|| {
                        format!("--mem-mib {v}: expected {MIN_MEM_MIB}..={MAX_MEM_MIB}")
                    })?;
            }
            "--exec-fifo" => exec_fifo = Some(PathBuf::from(value()?)),
            "--console-log" => console_log = Some(PathBuf::from(value()?)),
            "--exec-socket" => exec_socket = Some(PathBuf::from(value()?)),
            "--virtiofs" => virtiofs = Some(parse_fs_share(&value()?)?),
            "--virtiofs-fd" => {
                let v = value()?;
                virtiofs_fd = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|fd| *fd >= 3)
                        .ok_or_else(|| format!("--virtiofs-fd {v}: expected a descriptor >= 3"))?,
                );
            }
            "--uid" | "--gid" => {
                let v = value()?;
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("{flag} {v}: expected a numeric id"))?;
                if flag == "--uid" {
                    uid = Some(n);
                } else {
                    gid = Some(n);
                }
            }
            "--net-fd" => {
                let v = value()?;
                net_fd = Some(
                    v.parse::<i32>()
                        .ok()
                        .filter(|fd| *fd > 2)
                        .ok_or_else(|| format!("--net-fd {v}: expected a descriptor above 2"))?,
                );
            }
            "--net-mac" => net_mac = Some(vessel_protocol::net::parse_mac(&value()?)?),
            "--net-mtu" => {
                let v = value()?;
                net_mtu = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|m| *m >= 68)
                        .ok_or_else(|| format!("--net-mtu {v}: expected 68..=65535"))?,
                );
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let kernel = kernel.ok_or_else(|| format!("--kernel is required\n{USAGE}"))?;
    let identity = match (uid, gid) {
        (Some(uid), Some(gid)) => Some(Identity { uid, gid }),
        (None, None) => None,
        _ => return Err(format!("--uid and --gid go together\n{USAGE}")),
    };
    let net = match (net_fd, net_mac, net_mtu) {
        (Some(fd), Some(mac), Some(mtu)) => Some(NetParams { fd, mac, mtu }),
        (None, None, None) => None,
        _ => {
            return Err(format!(
                "--net-fd, --net-mac and --net-mtu go together\n{USAGE}"
            ))
        }
    };
    match (virtiofs.as_mut(), virtiofs_fd) {
        (Some(share), fd) => share.fd = fd,
        (None, Some(_)) => return Err(format!("--virtiofs-fd needs --virtiofs\n{USAGE}")),
        (None, None) => {}
    }
    Ok(VmmArgs {
        net,
        kernel,
        initrd,
        cmdline,
        vcpus,
        mem_mib,
        exec_fifo,
        console_log,
        identity,
        tty,
        exec_socket,
        virtiofs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_the_contract_arguments() {
        let a = parse(&s(&[
            "--kernel",
            "/k",
            "--initrd=/i",
            "--cmdline",
            "console=ttyS0 quiet",
            "--vcpus",
            "2",
            "--mem-mib",
            "512",
            "--exec-fifo",
            "/f",
            "--console-log",
            "/log",
        ]))
        .unwrap();
        assert_eq!(a.kernel, PathBuf::from("/k"));
        assert_eq!(a.initrd, Some(PathBuf::from("/i")));
        assert_eq!(a.cmdline, "console=ttyS0 quiet");
        assert_eq!((a.vcpus, a.mem_mib), (2, 512));
        assert_eq!(a.exec_fifo, Some(PathBuf::from("/f")));
        assert_eq!(a.console_log, Some(PathBuf::from("/log")));
        assert!(!a.tty);
        assert!(parse(&s(&["--tty", "--kernel", "/k"])).unwrap().tty);
        assert!(parse(&s(&["--kernel", "/k", "--tty=1"])).is_err());
        assert_eq!(a.virtiofs, None);
    }

    #[test]
    fn parses_a_virtiofs_share() {
        let a = parse(&s(&[
            "--kernel",
            "/k",
            "--virtiofs",
            "/run/a:b/fs.sock:vessel-root",
        ]))
        .unwrap();
        assert_eq!(
            a.virtiofs,
            Some(FsShare {
                socket: PathBuf::from("/run/a:b/fs.sock"),
                tag: "vessel-root".into(),
                fd: None,
            })
        );
        let long = format!("/s:{}", "t".repeat(MAX_FS_TAG + 1));
        for bad in ["/s", ":tag", "/s:", "/s:a b", long.as_str()] {
            let err = parse(&s(&["--kernel", "/k", "--virtiofs", bad])).unwrap_err();
            assert!(err.contains("--virtiofs"), "{bad}: {err}");
        }
        let max = format!("/s:{}", "t".repeat(MAX_FS_TAG));
        assert!(parse(&s(&["--kernel", "/k", "--virtiofs", &max])).is_ok());
    }

    #[test]
    fn defaults_and_errors() {
        let a = parse(&s(&["--kernel", "/k"])).unwrap();
        assert_eq!((a.vcpus, a.mem_mib, a.initrd), (1, 256, None));
        assert!(parse(&s(&[])).unwrap_err().contains("--kernel is required"));
        assert!(parse(&s(&["--kernel"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(&s(&["--kernel", "/k", "--vcpus", "0"])).is_err());
        assert!(parse(&s(&["--kernel", "/k", "--vcpus", "x"])).is_err());
        assert!(parse(&s(&["--kernel", "/k", "--mem-mib", "1"])).is_err());
        assert!(parse(&s(&["--kernel", "/k", "--uid", "65534"]))
            .unwrap_err()
            .contains("go together"));
        assert!(parse(&s(&["--kernel", "/k", "--uid", "x", "--gid", "1"])).is_err());
        let a = parse(&s(&["--kernel", "/k", "--uid", "65534", "--gid=65533"])).unwrap();
        assert_eq!(
            a.identity,
            Some(Identity {
                uid: 65534,
                gid: 65533
            })
        );
        let a = parse(&s(&[
            "--kernel",
            "/k",
            "--net-fd",
            "3",
            "--net-mac",
            "02:42:0a:c8:00:02",
            "--net-mtu=1500",
        ]))
        .unwrap();
        assert_eq!(
            a.net,
            Some(NetParams {
                fd: 3,
                mac: [2, 0x42, 10, 200, 0, 2],
                mtu: 1500
            })
        );
        assert!(parse(&s(&["--kernel", "/k", "--net-fd", "3"]))
            .unwrap_err()
            .contains("go together"));
        assert!(parse(&s(&["--kernel", "/k", "--net-fd", "1"])).is_err());
        assert!(parse(&s(&["--kernel", "/k", "--net-mac", "zz"])).is_err());
        assert!(parse(&s(&["--kernel", "/k", "--bogus"]))
            .unwrap_err()
            .contains("--bogus"));
    }
}
