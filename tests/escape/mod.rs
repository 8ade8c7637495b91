//! The harness of tests/tenant_escape.rs: the `xh` probe program (built
//! from xh.c with `cc -static`), the two user-namespace setups, a probe run
//! as one container, and the host-side checks.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Host ids of setup (a): the config's mapping.
pub const CONFIG_HOST_ID: u32 = 6_000_000;
/// User `vessel`'s subordinate ids for setup (b) (tests/tenant_ids.rs uses
/// 2_000_000.., its own files; these do not overlap).
pub const TENANT_BASE: u32 = 7_000_000;
pub const TENANT_BLOCKS: u32 = 8;
pub const RANGE: u32 = 65536;

pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The C source of `xh`.
pub const XH_C: &str = include_str!("xh.c");

/// `xh`, built once per test binary.
pub fn xh() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = scratch_dir().join(unique_id("xh"));
        fs::create_dir_all(&dir).unwrap();
        let src = dir.join("xh.c");
        fs::write(&src, XH_C).unwrap();
        let bin = dir.join("xh");
        let out = Command::new("cc")
            .args(["-static", "-O", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run cc (the escape probes need a C compiler: apt-get install gcc libc6-dev)");
        assert!(
            out.status.success(),
            "cc -static xh.c failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kept = scratch_dir().join(format!("xh-{}", std::process::id()));
        fs::rename(&bin, &kept).unwrap();
        let _ = fs::remove_dir_all(&dir);
        kept
    })
    .clone()
}

/// Run `xh` on the host (as root): what the kernel says without a sandbox.
pub fn host_xh(args: &[&str]) -> String {
    let out = Command::new(xh()).args(args).output().expect("run xh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setup {
    /// (a) the config's own user namespace and mappings.
    ConfigUserns,
    /// (b) a tenant range from vessel's subordinate ids.
    TenantRange,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Caps {
    /// The default `vessel spec`: its capabilities, seccomp, masked paths.
    Default,
    /// Every capability in every set, no seccomp, no masked or read-only paths.
    All,
}

pub const SETUPS: [Setup; 2] = [Setup::ConfigUserns, Setup::TenantRange];
pub const CAPS: [Caps; 2] = [Caps::Default, Caps::All];

/// Subordinate id files for user `vessel` and a tenant registry of our own.
pub struct Tenants {
    pub dir: PathBuf,
}

impl Tenants {
    pub fn new() -> Tenants {
        let dir = scratch_dir().join(unique_id("escape-tenants"));
        fs::create_dir_all(&dir).unwrap();
        let line = format!(
            "someone:100000:65536\nvessel:{TENANT_BASE}:{}\n",
            TENANT_BLOCKS * RANGE
        );
        fs::write(dir.join("subuid"), &line).unwrap();
        fs::write(dir.join("subgid"), &line).unwrap();
        Tenants { dir }
    }

    pub fn held(&self) -> Vec<String> {
        fs::read_dir(self.dir.join("registry"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One probe container: the bundle, and what the run printed.
pub struct Probe {
    pub setup: Setup,
    pub caps: Caps,
    pub rt: Runtime,
    pub tenants: Tenants,
    pub b: Bundle,
}

impl Probe {
    /// A bundle running `script` (sh -c) in `setup` with `caps`; `edit`
    /// changes the spec further (the hostile parts of a probe).
    pub fn new(setup: Setup, caps: Caps, script: &str, edit: impl FnOnce(&mut Value)) -> Probe {
        let full = format!("echo \"map=$(cat /proc/self/uid_map)\"\n{script}\n");
        let mut b = Bundle::new(&["sh", "-c", &full]);
        let dest = b.rootfs().join("bin/xh");
        fs::copy(xh(), &dest).unwrap();
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
        let s = &mut b.spec;
        if caps == Caps::All {
            for set in [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ] {
                s["process"]["capabilities"][set] = json!(ALL_CAPS);
            }
            s["process"]["noNewPrivileges"] = json!(false);
            let linux = s["linux"].as_object_mut().unwrap();
            linux.remove("seccomp");
            linux.insert("maskedPaths".into(), json!([]));
            linux.insert("readonlyPaths".into(), json!([]));
        }
        if setup == Setup::ConfigUserns {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": CONFIG_HOST_ID, "size": RANGE}]);
            s["linux"]["uidMappings"] = map.clone();
            s["linux"]["gidMappings"] = map;
        }
        edit(s);
        b.write();
        if setup == Setup::ConfigUserns {
            // As a runc user would: the rootfs owned by the container's root.
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{CONFIG_HOST_ID}:{CONFIG_HOST_ID}"))
                .arg(b.rootfs())
                .status()
                .unwrap();
            assert!(st.success());
        }
        Probe {
            setup,
            caps,
            rt: Runtime::new(),
            tenants: Tenants::new(),
            b,
        }
    }

    /// The runtime as a person runs it (text logs: no engine), with our
    /// subordinate id files.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime_bin());
        c.arg("--root")
            .arg(&self.rt.root)
            .arg("--log")
            .arg(&self.rt.log);
        c.args(args);
        c.env("VESSEL_SUBUID_FILE", self.tenants.dir.join("subuid"))
            .env("VESSEL_SUBGID_FILE", self.tenants.dir.join("subgid"))
            .env("VESSEL_TENANT_REGISTRY", self.tenants.dir.join("registry"))
            .env_remove("VESSEL_TENANT_USERNS")
            .stdin(Stdio::null());
        c
    }

    /// `run` the bundle in the foreground (through `wrap`, a host-side
    /// command prefix, if any); the probe's answers by label. Asserts the
    /// run worked, that it was in the user namespace asked for, and that
    /// nothing was left behind.
    pub fn run_wrapped(&self, wrap: &[&str]) -> Answers {
        let id = unique_id("escape");
        let mut c = if wrap.is_empty() {
            self.cmd(&["run", "--bundle", self.b.dir.to_str().unwrap(), &id])
        } else {
            let inner = self.cmd(&["run", "--bundle", self.b.dir.to_str().unwrap(), &id]);
            let mut c = Command::new(wrap[0]);
            c.args(&wrap[1..])
                .arg(inner.get_program())
                .args(inner.get_args());
            for (k, v) in inner.get_envs() {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            c.stdin(Stdio::null());
            c
        };
        c.env("VESSEL_ESCAPE_PROBE", "1");
        let out = run_with_timeout(c, Duration::from_secs(60));
        let _ = run_with_timeout(self.cmd(&["delete", "-f", &id]), Duration::from_secs(30));
        let (code, stdout, stderr) = triple(&out);
        let ctx = format!(
            "{:?}/{:?}: exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.setup, self.caps
        );
        assert_eq!(code, 0, "the probe container failed: {ctx}");
        let a = Answers {
            map: parse(&stdout),
            ctx,
        };
        let map: Vec<u64> = a
            .get("map")
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(map.len(), 3, "{}", a.ctx);
        assert_eq!((map[0], map[2]), (0, u64::from(RANGE)), "{}", a.ctx);
        match self.setup {
            Setup::ConfigUserns => assert_eq!(map[1], u64::from(CONFIG_HOST_ID), "{}", a.ctx),
            Setup::TenantRange => assert!(
                map[1] >= u64::from(TENANT_BASE)
                    && map[1] < u64::from(TENANT_BASE + TENANT_BLOCKS * RANGE),
                "not in a tenant range: {}",
                a.ctx
            ),
        }
        assert_nothing_left(&self.rt, &id, &self.b);
        assert!(
            self.tenants.held().is_empty(),
            "tenant range not given back: {:?}",
            self.tenants.held()
        );
        a
    }

    pub fn run(&self) -> Answers {
        self.run_wrapped(&[])
    }
}

/// `label: answer` lines of the probe's output.
pub struct Answers {
    pub map: BTreeMap<String, String>,
    pub ctx: String,
}

pub fn parse(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':').or_else(|| l.split_once('='))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

impl Answers {
    pub fn get(&self, label: &str) -> &str {
        self.map
            .get(label)
            .unwrap_or_else(|| panic!("no answer for {label}: {}", self.ctx))
    }

    /// The answer for `label` is one of `want` (exact strings).
    pub fn expect(&self, label: &str, want: &[&str]) {
        let got = self.get(label);
        assert!(
            want.contains(&got),
            "{label}: got {got:?}, want one of {want:?}\n{}",
            self.ctx
        );
    }
}

/// Whether to probe (b): vessel only.
pub fn setups() -> Vec<Setup> {
    if is_vessel() {
        SETUPS.to_vec()
    } else {
        skip("tenant ranges are vessel's own: only the config-userns setup runs against another runtime");
        vec![Setup::ConfigUserns]
    }
}

/// What of the host a probe may not change: mount lines of the host's
/// system mounts (options and propagation), and any mount point naming
/// `token`.
pub fn host_mounts(token: &str) -> Vec<String> {
    let system = |mp: &str| {
        matches!(
            mp,
            "/" | "/proc" | "/sys" | "/dev" | "/dev/pts" | "/dev/shm" | "/tmp" | "/run"
        ) || mp.starts_with("/sys/fs/cgroup")
    };
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            let mp = l.split(' ').nth(4).unwrap_or("");
            system(mp) || l.contains(token)
        })
        .map(str::to_owned)
        .collect()
}

/// Read a host file (sysctl) as it is now; None when it does not exist.
pub fn host_value(p: &str) -> Option<String> {
    fs::read_to_string(p).ok()
}

/// A unique token for this probe's paths and values.
pub fn token() -> String {
    unique_id("esc").replace('-', "")
}

/// A host directory bound onto itself and made shared (a host mount that
/// propagates), unmounted on drop.
pub struct SharedHostMount {
    pub dir: PathBuf,
}

impl SharedHostMount {
    pub fn new(tok: &str) -> SharedHostMount {
        let dir = scratch_dir().join(format!("shared-{tok}"));
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o777)).unwrap();
        for args in [
            vec!["--bind", dir.to_str().unwrap(), dir.to_str().unwrap()],
            vec!["--make-shared", dir.to_str().unwrap()],
        ] {
            let st = Command::new("mount").args(&args).status().unwrap();
            assert!(st.success(), "mount {args:?}");
        }
        SharedHostMount { dir }
    }
}

impl Drop for SharedHostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.dir).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A root-owned host directory with a root-owned 0644 file `f` and a
/// world-writable `w`, bound read-only into the container at /rovol.
pub fn ro_volume(tok: &str) -> PathBuf {
    let dir = scratch_dir().join(format!("rovol-{tok}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("f"), "host\n").unwrap();
    fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(dir.join("w"), "host\n").unwrap();
    fs::set_permissions(dir.join("w"), fs::Permissions::from_mode(0o666)).unwrap();
    dir
}
