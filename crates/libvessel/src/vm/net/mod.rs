//! VM mode's network: the VMM runs in the container's network namespace
//! and the guest takes over the identity of that namespace's interface.
//!
//! - `linux.namespaces` must list a network namespace (a VM cannot share
//!   the host's network stack). With a path (Podman, containerd/CNI), that
//!   namespace is connected (`connect`); without one, the VMM gets a new,
//!   empty namespace and the guest has only `lo`, as a container would.
//! - `connect`, in a thread that entered the namespace: reads its one
//!   non-loopback interface (usually the veth `eth0`: IPv4 addresses, MTU,
//!   MAC, routes), creates the tap `tap0_vessel` the VMM's virtio-net uses,
//!   joins the two with tc: an ingress qdisc on each and a matchall filter
//!   whose action is `mirred egress redirect` to the other (as Kata does),
//!   then removes the IPv4 addresses from the interface so the namespace's
//!   kernel answers nothing; the guest, given the same MAC, addresses and
//!   routes (`vessel_protocol::net`), answers instead. What was taken is
//!   kept in the state dir (`vm-net.json`).
//! - `restore` (delete, or a create that failed) puts the addresses and
//!   routes back and removes the filters, if the namespace still exists
//!   (Podman removes it itself after the container stopped).

mod files;
mod ip;
mod tap;

pub use files::guest_archive;
/// iproute2's `ip`/`tc`, from fixed system directories only.
pub use ip::run as iproute2;

use super::VmError;
use crate::logging;
use ip::{Addr, Route};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use vessel_protocol::net::{GuestNet, GuestRoute};

/// The tap in the container's namespace (one VM per namespace).
pub const TAP_NAME: &str = "tap0_vessel";
/// The descriptor number the VMM finds its tap at (`--net-fd`).
pub const VMM_TAP_FD: RawFd = 3;
/// What `connect` took from the namespace, in the state dir.
const RECORD: &str = "vm-net.json";
/// NS_GET_NSTYPE = _IO(0xb7, 0x3)
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The network namespace the VMM runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// A new one, empty but for `lo`.
    New,
    /// The one at this path (made by the engine or CNI).
    Path(PathBuf),
}

/// The VM's network namespace from the spec; refused when the spec has
/// none (the host's network) or names the host's own.
pub fn namespace(spec: &Spec) -> Result<NetNs, VmError> {
    let ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|list| list.iter().find(|n| n.typ() == LinuxNamespaceType::Network));
    let Some(ns) = ns else {
        return Err(VmError::Msg(
            "linux.namespaces has no network namespace: VM mode cannot share the host's \
             network (add {\"type\": \"network\"}, with a path to join one)"
                .into(),
        ));
    };
    match ns.path() {
        None => Ok(NetNs::New),
        Some(p) => {
            open_netns(p)?;
            Ok(NetNs::Path(p.clone()))
        }
    }
}

/// Opens a network namespace path, refusing anything else and the host's.
fn open_netns(path: &Path) -> Result<OwnedFd, VmError> {
    let what = format!("linux.namespaces: network path {}", path.display());
    // Non-blocking: a config naming a FIFO must not hang `create` in open.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| VmError::Msg(format!("{what}: {e}")))?;
    // SAFETY: NS_GET_NSTYPE takes no argument; f is an open descriptor.
    let kind = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(VmError::Msg(format!("{what}: not a network namespace")));
    }
    let md = f
        .metadata()
        .map_err(|e| VmError::Msg(format!("{what}: {e}")))?;
    for host in ["/proc/self/ns/net", "/proc/1/ns/net"] {
        if let Ok(h) = std::fs::metadata(host) {
            if (h.dev(), h.ino()) == (md.dev(), md.ino()) {
                return Err(VmError::Msg(format!(
                    "{what} is the host's network namespace: VM mode would take over its \
                     interface; give the container a namespace of its own"
                )));
            }
        }
    }
    Ok(f.into())
}

/// How long `create` waits for another vessel setting up the same
/// namespace.
const NETNS_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// An exclusive flock on the namespace's own nsfs file (one inode per
/// namespace, whatever path names it; nothing to clean up): two creates
/// naming one namespace would both pass the in-use check before either
/// VMM is in it, then fight over its interface, one's undo tearing down
/// the other's tap.
fn lock_netns(ns: &OwnedFd, path: &Path) -> Result<(), VmError> {
    let deadline = std::time::Instant::now() + NETNS_LOCK_WAIT;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(ns.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(VmError::Msg(format!(
                "lock network namespace {}: {e}",
                path.display()
            )));
        }
        if std::time::Instant::now() >= deadline {
            return Err(VmError::Msg(format!(
                "network namespace {}: another vessel has been setting it up for a VM for {} s",
                path.display(),
                NETNS_LOCK_WAIT.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// VM mode takes the namespace's interface over (its address moves to the
/// guest), so the namespace must be the VM's alone: a path naming one that
/// a process already lives in (another container's, a pod's pause
/// process, a host service's) is refused, or a tenant could take a
/// neighbour's network by naming its namespace in config.json.
fn refuse_if_in_use(ns: &OwnedFd, path: &Path) -> Result<(), VmError> {
    let md = std::fs::File::from(
        ns.try_clone()
            .map_err(|e| VmError::Msg(format!("network namespace {}: {e}", path.display())))?,
    )
    .metadata()
    .map_err(|e| VmError::Msg(format!("network namespace {}: {e}", path.display())))?;
    let users = processes_in_netns(md.dev(), md.ino());
    if users.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = users.iter().take(5).map(|p| p.to_string()).collect();
    Err(VmError::Msg(format!(
        "linux.namespaces: network path {} is in use (pid {}): VM mode moves the namespace's \
         interface into the guest and needs a namespace no process is in",
        path.display(),
        shown.join(", ")
    )))
}

/// The pids whose network namespace is (dev, ino).
fn processes_in_netns(dev: u64, ino: u64) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| (m.dev(), m.ino()) == (dev, ino))
                .unwrap_or(false)
        })
        .collect()
}

/// What `prepare` made, for the VMM's launch.
pub struct Prepared {
    /// The namespace to join; None: a new one.
    pub join: Option<OwnedFd>,
    /// The tap and the guest's settings, when there is an interface.
    pub link: Option<(OwnedFd, GuestNet)>,
    /// With late connection (`prepare`'s `late`): the tap, made in the
    /// namespace before anything is connected to it; `connect_late` joins
    /// it to the namespace's interface after the hooks.
    pub late_tap: Option<OwnedFd>,
    /// The namespace's path, when the spec named one.
    pub path: Option<PathBuf>,
}

impl Prepared {
    /// `--net-fd`, `--net-mac`, `--net-mtu` for the VMM.
    pub fn vmm_args(&self) -> Vec<String> {
        let (mac, mtu) = match (&self.link, &self.late_tap) {
            (Some((_, g)), _) => (g.mac, g.mtu.to_string()),
            (None, Some(_)) => (
                vessel_protocol::launch::LATE_NET_MAC,
                vessel_protocol::launch::LATE_NET_MTU.to_string(),
            ),
            (None, None) => return Vec::new(),
        };
        vec![
            "--net-fd".into(),
            VMM_TAP_FD.to_string(),
            "--net-mac".into(),
            vessel_protocol::net::format_mac(&mac),
            "--net-mtu".into(),
            mtu,
        ]
    }

    /// The raw descriptors `pre_exec` uses: (namespace, tap).
    pub fn raw_fds(&self) -> (Option<RawFd>, Option<RawFd>) {
        let tap = self
            .link
            .as_ref()
            .map(|(t, _)| t)
            .or(self.late_tap.as_ref());
        (
            self.join.as_ref().map(|f| f.as_raw_fd()),
            tap.map(|t| t.as_raw_fd()),
        )
    }

    /// With late connection, after the hooks: joins the namespace's
    /// interface (which a hook may have made) to the tap, as `prepare`
    /// does otherwise, and returns the guest's settings (None: the
    /// namespace has no interface). What it takes is recorded for
    /// `restore` only in a namespace the spec named: a new one ends with
    /// the VMM, and naming it by the VMM's pid could, once that pid is
    /// reused, point `restore` at a stranger's namespace.
    pub fn connect_late(&self, state_dir: &Path) -> Result<Option<GuestNet>, VmError> {
        let (Some(ns), Some(_)) = (&self.join, &self.late_tap) else {
            return Ok(None);
        };
        let what = match &self.path {
            Some(p) => p.clone(),
            None => PathBuf::from("the VM's new network namespace"),
        };
        let record = self.path.is_some().then_some(state_dir);
        let taken = in_netns(ns, || take_over(&what, record, true))?;
        Ok(taken.map(|(_, g)| g))
    }
}

/// In the VMM's child between fork and exec (async-signal-safe: raw
/// syscalls only): enter the namespace (or a new one) and put the tap at
/// [`VMM_TAP_FD`], inheritable.
pub fn pre_exec(join: Option<RawFd>, tap: Option<RawFd>) -> std::io::Result<()> {
    // SAFETY: setns/unshare/dup2/fcntl on descriptors the parent keeps open
    // until the spawn returns; no allocation.
    unsafe {
        let rc = match join {
            Some(fd) => libc::setns(fd, libc::CLONE_NEWNET),
            None => libc::unshare(libc::CLONE_NEWNET),
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if let Some(t) = tap {
            let rc = if t == VMM_TAP_FD {
                libc::fcntl(t, libc::F_SETFD, 0)
            } else {
                libc::dup2(t, VMM_TAP_FD)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// What `restore` puts back.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    netns: PathBuf,
    iface: String,
    addrs: Vec<Addr>,
    /// Routes through the interface other than the kernel's own.
    routes: Vec<Route>,
}

/// Runs `f` on a thread that entered the namespace `ns` (a thread's
/// namespace is its own; processes it spawns inherit it).
fn in_netns<T: Send>(
    ns: &OwnedFd,
    f: impl FnOnce() -> Result<T, VmError> + Send,
) -> Result<T, VmError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| VmError::Msg(format!("entering the network namespace: {e}")))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(VmError::Msg("the network set-up thread panicked".into())))
    })
}

/// Prepares the VM's network for `spec` (see the module comment). With
/// `late` (a spec whose hooks set the namespace up), the tap is made in
/// the namespace now, a new namespace is made here rather than by the
/// VMM (so the tap can go in first; the hooks find it through the VMM's
/// pid), and nothing is connected until `Prepared::connect_late`.
pub fn prepare(spec: &Spec, state_dir: &Path, late: bool) -> Result<Prepared, VmError> {
    let (ns, path) = match namespace(spec)? {
        NetNs::New if !late => {
            return Ok(Prepared {
                join: None,
                link: None,
                late_tap: None,
                path: None,
            })
        }
        NetNs::New => (new_netns()?, None),
        NetNs::Path(p) => {
            let ns = open_netns(&p)?;
            // Held until this `create` exits (the descriptor is
            // close-on-exec, so the VMM does not inherit it): by then the
            // VMM is in the namespace, and the in-use check refuses the
            // next one.
            lock_netns(&ns, &p)?;
            refuse_if_in_use(&ns, &p)?;
            (ns, Some(p))
        }
    };
    if late {
        let what = path
            .clone()
            .unwrap_or_else(|| "a new network namespace".into());
        let tap = in_netns(&ns, || {
            refuse_tap_exists()
                .and_then(|()| tap::create(TAP_NAME))
                .map_err(|e| VmError::Msg(format!("VM network in {}: {e}", what.display())))
        })?;
        return Ok(Prepared {
            join: Some(ns),
            link: None,
            late_tap: Some(tap),
            path,
        });
    }
    let what = path.clone().unwrap_or_default();
    let taken = in_netns(&ns, || take_over(&what, Some(state_dir), false))?;
    Ok(Prepared {
        join: Some(ns),
        link: taken.and_then(|(tap, g)| Some((tap?, g))),
        late_tap: None,
        path,
    })
}

/// A new network namespace (only `lo`), held by the returned descriptor.
fn new_netns() -> Result<OwnedFd, VmError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| VmError::Msg(format!("a new network namespace for the VM: {e}")))?;
            std::fs::File::open("/proc/thread-self/ns/net")
                .map(OwnedFd::from)
                .map_err(|e| VmError::Msg(format!("open the VM's new network namespace: {e}")))
        })
        .join()
        .unwrap_or_else(|_| Err(VmError::Msg("the network set-up thread panicked".into())))
    })
}

/// Refuses a namespace that has vessel's tap already (another VM's).
fn refuse_tap_exists() -> Result<(), VmError> {
    let links = ip::parse_links(&ip::run("ip", &["-j", "addr", "show"])?)?;
    if links.iter().any(|l| l.name == TAP_NAME) {
        return Err(VmError::Msg(format!(
            "{TAP_NAME} exists: the namespace is already connected to a VM"
        )));
    }
    Ok(())
}

/// In the namespace: the interface, the tap (made here unless `late`,
/// when `prepare` made it before the hooks), the tc redirect, the address
/// removal; undone on any failure. What was taken is recorded in the
/// state dir `record_in`, if given, for `restore`.
fn take_over(
    path: &Path,
    record_in: Option<&Path>,
    late: bool,
) -> Result<Option<(Option<OwnedFd>, GuestNet)>, VmError> {
    let ctx = |e: VmError| VmError::Msg(format!("VM network in {}: {e}", path.display()));
    if !late {
        refuse_tap_exists().map_err(ctx)?;
    }
    let links = ip::parse_links(&ip::run("ip", &["-j", "addr", "show"]).map_err(ctx)?)?;
    let others: Vec<&ip::Link> = links
        .iter()
        .filter(|l| !l.loopback && l.name != TAP_NAME)
        .collect();
    let iface = match others[..] {
        [] => return Ok(None),
        [one] => one,
        _ => {
            let names: Vec<&str> = others.iter().map(|l| l.name.as_str()).collect();
            return Err(ctx(VmError::Msg(format!(
                "it has {} interfaces ({}); VM mode connects exactly one",
                names.len(),
                names.join(", ")
            ))));
        }
    };
    let mac = iface.mac.ok_or_else(|| {
        ctx(VmError::Msg(format!(
            "{} is not an Ethernet interface",
            iface.name
        )))
    })?;
    let most = match late {
        true => vessel_protocol::launch::LATE_NET_MTU,
        false => u16::MAX,
    };
    let mtu = u16::try_from(iface.mtu)
        .ok()
        .filter(|m| *m >= 68 && *m <= most)
        .ok_or_else(|| {
            ctx(VmError::Msg(format!(
                "{}: MTU {} not supported",
                iface.name, iface.mtu
            )))
        })?;
    if !iface.v6_global.is_empty() {
        logging::warn(&format!(
            "VM mode: IPv6 addresses of {} ({}) are not given to the guest (IPv4 only)",
            iface.name,
            iface.v6_global.join(", ")
        ));
    }
    let routes = ip::parse_routes(
        &ip::run("ip", &["-j", "-4", "route", "show", "table", "main"]).map_err(ctx)?,
        &iface.name,
    )?;
    let record = Record {
        netns: path.to_path_buf(),
        iface: iface.name.clone(),
        addrs: iface.v4.clone(),
        routes: routes.into_iter().filter(|r| !r.kernel).collect(),
    };
    let tap = match late {
        true => None,
        false => Some(tap::create(TAP_NAME).map_err(ctx)?),
    };
    if let Some(dir) = record_in {
        save_record(dir, &record)?;
    }
    if let Err(e) = redirect(&record.iface, mtu, &record.addrs) {
        undo(&record);
        if let Some(dir) = record_in {
            let _ = std::fs::remove_file(dir.join(RECORD));
        }
        return Err(ctx(e));
    }
    let mut guest_routes: Vec<GuestRoute> = record
        .routes
        .iter()
        .map(|r| GuestRoute {
            dst: r.dst,
            prefix: r.prefix,
            gateway: r.gateway,
        })
        .collect();
    // On-link routes first: a gateway must be reachable when its route goes in.
    guest_routes.sort_by_key(|r| r.gateway.is_some());
    let guest = GuestNet {
        name: record.iface.clone(),
        mac,
        mtu: u32::from(mtu),
        addrs: record
            .addrs
            .iter()
            .map(|a| (a.local, a.prefixlen))
            .collect(),
        routes: guest_routes,
    };
    Ok(Some((tap, guest)))
}

/// The tap up with the interface's MTU, the two joined by tc both ways,
/// then the interface's IPv4 addresses removed.
fn redirect(iface: &str, mtu: u16, addrs: &[Addr]) -> Result<(), VmError> {
    let mtu = mtu.to_string();
    ip::run("ip", &["link", "set", TAP_NAME, "mtu", &mtu, "up"])?;
    for (from, to) in [(iface, TAP_NAME), (TAP_NAME, iface)] {
        ip::run("tc", &["qdisc", "add", "dev", from, "ingress"])?;
        ip::run(
            "tc",
            &[
                "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "prio", "1",
                "matchall", "action", "mirred", "egress", "redirect", "dev", to,
            ],
        )?;
    }
    for a in addrs {
        let cidr = format!("{}/{}", a.local, a.prefixlen);
        ip::run("ip", &["addr", "del", &cidr, "dev", iface])?;
    }
    Ok(())
}

/// Puts back what `record` took; each step is tried, failures are warned
/// about (what is already as it should be is not an error).
fn undo(record: &Record) {
    let iface = record.iface.as_str();
    let quiet = |tool: &str, args: &[&str]| {
        if let Err(e) = ip::run(tool, args) {
            logging::debug(&format!("VM network undo: {e}"));
        }
    };
    quiet("tc", &["qdisc", "del", "dev", iface, "ingress"]);
    // Gone with the VMM's descriptor, unless the VMM never started.
    quiet("ip", &["link", "del", TAP_NAME]);
    let warn = |tool: &str, args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match ip::run(tool, &args) {
            Err(VmError::Msg(m)) if m.contains("File exists") => {}
            Err(e) => logging::warn(&format!("VM network: putting back {iface}: {e}")),
            Ok(_) => {}
        }
    };
    for a in &record.addrs {
        let mut args = vec![
            "addr".to_string(),
            "add".into(),
            format!("{}/{}", a.local, a.prefixlen),
        ];
        if let Some(b) = a.broadcast {
            args.extend(["broadcast".into(), b.to_string()]);
        }
        args.extend(["dev".into(), iface.to_string()]);
        warn("ip", &args);
    }
    let mut routes: Vec<&Route> = record.routes.iter().collect();
    routes.sort_by_key(|r| r.gateway.is_some());
    for r in routes {
        warn("ip", &ip::route_add_args(r, iface));
    }
}

fn save_record(state_dir: &Path, record: &Record) -> Result<(), VmError> {
    let path = state_dir.join(RECORD);
    let text = serde_json::to_vec(record)
        .map_err(|e| VmError::Msg(format!("encoding {}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| VmError::Msg(format!("write {}: {e}", path.display())))
}

/// Calls [`restore`] when dropped, unless disarmed: a launch that fails
/// after `prepare` leaves the namespace as it found it.
pub struct Undo<'a>(Option<&'a Path>);

impl<'a> Undo<'a> {
    pub fn new(state_dir: &'a Path) -> Self {
        Undo(Some(state_dir))
    }

    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            restore(dir);
        }
    }
}

/// Gives the namespace back what a VM took from it (delete, or a failed
/// create); never fails: problems are warned about. Nothing to do when
/// nothing was taken or the namespace is gone.
pub fn restore(state_dir: &Path) {
    let path = state_dir.join(RECORD);
    let record: Record = match std::fs::read(&path) {
        Ok(text) => match serde_json::from_slice(&text) {
            Ok(r) => r,
            Err(e) => {
                logging::warn(&format!("VM network: {}: {e}", path.display()));
                return;
            }
        },
        Err(_) => return,
    };
    match open_netns(&record.netns) {
        Ok(ns) => {
            let result = in_netns(&ns, || {
                undo(&record);
                Ok(())
            });
            if let Err(e) = result {
                logging::warn(&format!("VM network: {e}"));
            }
        }
        Err(e) => logging::debug(&format!("VM network: nothing to put back: {e}")),
    }
    let _ = std::fs::remove_file(&path);
}
