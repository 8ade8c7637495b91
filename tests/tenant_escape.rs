//! Escape probes from inside user-namespaced containers (issue 11).
//!
//! Two ways vessel gives a container a user namespace: (a) the config's own
//! `user` namespace and `linux.uidMappings`/`gidMappings`; (b) a tenant range
//! (container::tenant_ids: a direct `vessel run` with no user namespace in
//! the config gets 65536 ids of user `vessel`'s subordinate ids and an
//! id-mapped rootfs; this suite points vessel at its own subuid/subgid files
//! and registry, as tests/tenant_ids.rs does). Each probe runs as uid 0 in
//! the container twice: with the capabilities of the default `vessel spec`
//! (and its seccomp profile, masked and read-only paths), and with a hostile
//! config that adds every capability to every set and drops seccomp, masked
//! and read-only paths. The user namespace must hold in both: each probe
//! asserts the exact refusal (errno) and that the host is unchanged (its
//! sysctls, the files the probe aimed at, its mount table).
//!
//! Raw syscalls go through `xh`, a small C program built here with
//! `cc -static` (its source is below) and copied into each rootfs; each of
//! its commands prints `<what> ok <n>` or `<what> <ERRNO>`.
//!
//! Known, and the same in runc 1.1.5: with CAP_SYS_ADMIN (the hostile
//! config) the container may remount its own copy of a read-only bind
//! read-write; host files there stay protected by their owners, so a
//! world-writable file on a read-only volume is writable then.
//!
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc` runs the (a) probes against runc;
//! (b) is vessel's own and is skipped then.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Host ids of setup (a): the config's mapping.
const CONFIG_HOST_ID: u32 = 6_000_000;
/// User `vessel`'s subordinate ids for setup (b) (tests/tenant_ids.rs uses
/// 2_000_000.., its own files; these do not overlap).
const TENANT_BASE: u32 = 7_000_000;
const TENANT_BLOCKS: u32 = 8;
const RANGE: u32 = 65536;

const ALL_CAPS: &[&str] = &[
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

const XH_C: &str = r#"
/* xh: raw-syscall escape attempts for tests/tenant_escape.rs, built with
 * `cc -static` by the test and copied into each container's rootfs.
 * Every subcommand prints one line "<name> ok" or "<name> <ERRNO>" (the
 * errno's symbolic name) and exits 0, so the test asserts the exact error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ename(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EIO) E(ENXIO) E(EBADF) E(EACCES) E(EFAULT)
    E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(EROFS)
    E(ENOSYS) E(ENOEXEC) E(ESTALE) E(ENOKEY) E(EKEYREVOKED) E(EOPNOTSUPP)
    E(ETXTBSY) E(ENOSPC) E(ELOOP) E(EXDEV) E(ENOMEM) E(EAGAIN) E(EDQUOT)
#undef E
  default: return "E?";
  }
}

static int report(const char *what, long r) {
  if (r < 0) printf("%s %s\n", what, ename(errno));
  else printf("%s ok %ld\n", what, r);
  fflush(stdout);
  return 0;
}

static unsigned long mflags(const char *s) {
  unsigned long f = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
    if (!strcmp(t, "bind")) f |= MS_BIND;
    else if (!strcmp(t, "rec")) f |= MS_REC;
    else if (!strcmp(t, "remount")) f |= MS_REMOUNT;
    else if (!strcmp(t, "ro")) f |= MS_RDONLY;
    else if (!strcmp(t, "shared")) f |= MS_SHARED;
    else if (!strcmp(t, "private")) f |= MS_PRIVATE;
    else if (!strcmp(t, "slave")) f |= MS_SLAVE;
    else if (!strcmp(t, "nosuid")) f |= MS_NOSUID;
    else if (!strcmp(t, "nodev")) f |= MS_NODEV;
    else if (!strcmp(t, "noexec")) f |= MS_NOEXEC;
    else if (strcmp(t, "0")) { fprintf(stderr, "xh: flag %s?\n", t); exit(2); }
  }
  return f;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: xh CMD ARGS\n"); return 2; }
  const char *c = argv[1];
  if (!strcmp(c, "mount") && argc == 7) {
    /* xh mount SRC TARGET FSTYPE FLAGS DATA ("-" for none) */
    const char *d = strcmp(argv[6], "-") ? argv[6] : NULL;
    const char *t = strcmp(argv[4], "-") ? argv[4] : NULL;
    return report("mount", mount(argv[2], argv[3], t, mflags(argv[5]), d));
  }
  if (!strcmp(c, "finit_module") && argc == 3) {
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("finit_module", syscall(SYS_finit_module, fd, "", 0));
  }
  if (!strcmp(c, "init_module") && argc == 3) {
    static char buf[1 << 22];
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return report("read", -1);
    return report("init_module", syscall(SYS_init_module, buf, (unsigned long)n, ""));
  }
  if (!strcmp(c, "write") && argc == 4) {
    /* xh write PATH TEXT: open O_WRONLY and write */
    int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("write", write(fd, argv[3], strlen(argv[3])));
  }
  if (!strcmp(c, "read") && argc == 3) {
    char b[4096];
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("read", read(fd, b, sizeof b));
  }
  if (!strcmp(c, "kill0") && argc == 3)
    return report("kill0", kill(atoi(argv[2]), 0));
  if (!strcmp(c, "ptrace") && argc == 3) {
    long r = ptrace(PTRACE_SEIZE, atoi(argv[2]), 0, 0);
    return report("ptrace", r);
  }
  if (!strcmp(c, "mknod") && argc == 5) {
    /* xh mknod PATH MAJOR MINOR: a block device, then read it */
    unlink(argv[2]);
    if (mknod(argv[2], S_IFBLK | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) < 0)
      return report("mknod", -1);
    report("mknod", 0);
    char b[512];
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return report("open", -1);
    return report("read", read(fd, b, sizeof b));
  }
  if (!strcmp(c, "handle") && argc == 3) {
    /* xh handle DIR: Shocker (CVE-2014 docker): a handle for inode 2 (the
     * root of the filesystem under the container's rootfs), opened
     * relative to DIR, as a file and as a directory. */
    struct { struct file_handle h; unsigned char f[128]; } fh;
    int mnt_id, mfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) return report("open", -1);
    fh.h.handle_bytes = 128;
    if (syscall(SYS_name_to_handle_at, AT_FDCWD, argv[2], &fh.h, &mnt_id, 0) < 0)
      return report("name_to_handle_at", -1);
    report("name_to_handle_at", 0);
    /* ext4/xfs FILEID_INO32_GEN: {u32 ino, u32 gen}; inode 2 is the root. */
    fh.h.handle_type = 1;
    fh.h.handle_bytes = 8;
    unsigned int ino2[2] = {2, 0};
    memcpy(fh.h.f_handle, ino2, 8);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY));
    return report("open_by_handle_at_dir",
                  syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY | O_DIRECTORY));
  }
  if (!strcmp(c, "keyread") && argc == 3) {
    /* KEYCTL_READ of a key serial from the host */
    char b[256];
    return report("keyread", syscall(SYS_keyctl, 11, atol(argv[2]), b, sizeof b));
  }
  if (!strcmp(c, "keyjoin") && argc == 3) {
    /* KEYCTL_JOIN_SESSION_KEYRING by name: the serial it joined */
    return report("keyjoin", syscall(SYS_keyctl, 1, argv[2]));
  }
  if (!strcmp(c, "keysession") && argc == 2)
    /* KEYCTL_GET_KEYRING_ID of the session keyring, without creating one */
    return report("keysession", syscall(SYS_keyctl, 0, -3, 0));
  if (!strcmp(c, "hostkey") && argc >= 4) {
    /* On the host: xh hostkey NAME SECRET CMD...: a new named session
     * keyring holding a user key, print both serials, exec CMD. */
    long ring = syscall(SYS_keyctl, 1, argv[2]);
    if (ring < 0) { perror("join"); return 1; }
    long key = syscall(SYS_add_key, "user", "vessel-escape", argv[3], strlen(argv[3]), ring);
    if (key < 0) { perror("add_key"); return 1; }
    char v[32];
    snprintf(v, sizeof v, "%ld", ring);
    setenv("XH_RING", v, 1);
    snprintf(v, sizeof v, "%ld", key);
    setenv("XH_KEY", v, 1);
    if (argc > 4) { execvp(argv[4], argv + 4); perror("exec"); return 127; }
    return 0;
  }
  fprintf(stderr, "xh: bad command %s\n", c);
  return 2;
}
"#;

/// `xh`, built once per test binary.
fn xh() -> PathBuf {
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
fn host_xh(args: &[&str]) -> String {
    let out = Command::new(xh()).args(args).output().expect("run xh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    /// (a) the config's own user namespace and mappings.
    ConfigUserns,
    /// (b) a tenant range from vessel's subordinate ids.
    TenantRange,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caps {
    /// The default `vessel spec`: its capabilities, seccomp, masked paths.
    Default,
    /// Every capability in every set, no seccomp, no masked or read-only paths.
    All,
}

const SETUPS: [Setup; 2] = [Setup::ConfigUserns, Setup::TenantRange];
const CAPS: [Caps; 2] = [Caps::Default, Caps::All];

/// Subordinate id files for user `vessel` and a tenant registry of our own.
struct Tenants {
    dir: PathBuf,
}

impl Tenants {
    fn new() -> Tenants {
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

    fn held(&self) -> Vec<String> {
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
struct Probe {
    setup: Setup,
    caps: Caps,
    rt: Runtime,
    tenants: Tenants,
    b: Bundle,
}

impl Probe {
    /// A bundle running `script` (sh -c) in `setup` with `caps`; `edit`
    /// changes the spec further (the hostile parts of a probe).
    fn new(setup: Setup, caps: Caps, script: &str, edit: impl FnOnce(&mut Value)) -> Probe {
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
    fn cmd(&self, args: &[&str]) -> Command {
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
    fn run_wrapped(&self, wrap: &[&str]) -> Answers {
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

    fn run(&self) -> Answers {
        self.run_wrapped(&[])
    }
}

/// `label: answer` lines of the probe's output.
struct Answers {
    map: BTreeMap<String, String>,
    ctx: String,
}

fn parse(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':').or_else(|| l.split_once('='))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

impl Answers {
    fn get(&self, label: &str) -> &str {
        self.map
            .get(label)
            .unwrap_or_else(|| panic!("no answer for {label}: {}", self.ctx))
    }

    /// The answer for `label` is one of `want` (exact strings).
    fn expect(&self, label: &str, want: &[&str]) {
        let got = self.get(label);
        assert!(
            want.contains(&got),
            "{label}: got {got:?}, want one of {want:?}\n{}",
            self.ctx
        );
    }
}

/// Whether to probe (b): vessel only.
fn setups() -> Vec<Setup> {
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
fn host_mounts(token: &str) -> Vec<String> {
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
fn host_value(p: &str) -> Option<String> {
    fs::read_to_string(p).ok()
}

/// A unique token for this probe's paths and values.
fn token() -> String {
    unique_id("esc").replace('-', "")
}

/// A host directory bound onto itself and made shared (a host mount that
/// propagates), unmounted on drop.
struct SharedHostMount {
    dir: PathBuf,
}

impl SharedHostMount {
    fn new(tok: &str) -> SharedHostMount {
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
fn ro_volume(tok: &str) -> PathBuf {
    let dir = scratch_dir().join(format!("rovol-{tok}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("f"), "host\n").unwrap();
    fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(dir.join("w"), "host\n").unwrap();
    fs::set_permissions(dir.join("w"), fs::Permissions::from_mode(0o666)).unwrap();
    dir
}

#[test]
fn mounts_stay_in_the_container() {
    require_root();
    for setup in setups() {
        for caps in CAPS {
            let tok = token();
            let rovol = ro_volume(&tok);
            let shared = SharedHostMount::new(&tok);
            // The same through an id-mapped bind (vessel's own host-side copy).
            let shared2 = SharedHostMount::new(&format!("idmap-{tok}"));
            // A file in the host's /tmp: visible through a path that reaches
            // the host's root, not through the container's own.
            let marker = PathBuf::from(format!("/tmp/vessel-escape-{tok}"));
            fs::write(&marker, "host").unwrap();
            let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
            let before = (host_mounts(&tok), host_value(thp));
            let script = format!(
                r#"mkdir -p /tmp/p /tmp/pr /tmp/s
echo "proc: $(xh mount proc /tmp/p proc 0 -)"
echo "proc_core: $(xh write /tmp/p/sys/kernel/core_pattern '|/pwn-{tok}')"
echo "tmpfs_root: $(xh mount tmpfs / tmpfs 0 -)"
echo "ro_remount: $(xh mount none /rovol - remount,bind -)"
echo "ro_write: $(xh write /rovol/f pwned)"
echo "ro_write_w: $(xh write /rovol/w pwned)"
echo "pid1root: $(xh mount /proc/1/root /tmp/pr - bind,rec -)"
echo "pid1root_marker: $(test -e /tmp/pr/tmp/vessel-escape-{tok} && echo visible || echo absent)"
echo "pid1root_direct: $(test -e /proc/1/root/tmp/vessel-escape-{tok} && echo visible || echo absent)"
echo "make_shared: $(xh mount none /shr - shared,rec -)"
echo "shared_sub: $(xh mount tmpfs /shr/sub tmpfs 0 -)"
echo "make_shared2: $(xh mount none /shr2 - shared,rec -)"
echo "shared_sub2: $(xh mount tmpfs /shr2/sub tmpfs 0 -)"
echo "sys_remount: $(xh mount none /sys - remount -)"
echo "sys_new: $(xh mount sysfs /tmp/s sysfs 0 -)"
echo "sys_write: $(xh write {thp} never)"
"#
            );
            let p = Probe::new(setup, caps, &script, |s| {
                let m = s["mounts"].as_array_mut().unwrap();
                m.push(json!({"destination": "/rovol", "type": "bind",
                    "source": rovol, "options": ["rbind", "ro"]}));
                m.push(json!({"destination": "/shr", "type": "bind",
                    "source": shared.dir, "options": ["rbind", "rshared"]}));
                let ids = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
                m.push(json!({"destination": "/shr2", "type": "bind",
                    "source": shared2.dir, "options": ["rbind", "rshared"],
                    "uidMappings": ids, "gidMappings": ids}));
            });
            let a = p.run();
            match caps {
                Caps::Default => {
                    // No CAP_SYS_ADMIN in the container's user namespace.
                    for l in [
                        "proc",
                        "tmpfs_root",
                        "ro_remount",
                        "pid1root",
                        "make_shared",
                        "shared_sub",
                        "make_shared2",
                        "shared_sub2",
                        "sys_remount",
                        "sys_new",
                    ] {
                        a.expect(l, &["mount EPERM"]);
                    }
                    a.expect("proc_core", &["open ENOENT"]);
                    // The owner check comes first; the world-writable
                    // file shows the mount stayed read-only.
                    a.expect("ro_write", &["open EACCES"]);
                    a.expect("ro_write_w", &["open EROFS"]);
                    assert_eq!(fs::read_to_string(rovol.join("w")).unwrap(), "host\n");
                    a.expect("sys_write", &["open EROFS"]);
                }
                Caps::All => {
                    // CAP_SYS_ADMIN over its own user namespace: mounts in
                    // its own mount namespace are allowed (as in runc)...
                    for l in [
                        "proc",
                        "tmpfs_root",
                        "pid1root",
                        "make_shared",
                        "shared_sub",
                        "make_shared2",
                        "shared_sub2",
                    ] {
                        a.expect(l, &["mount ok 0"]);
                    }
                    // ...even making its own copy of a read-only bind
                    // writable: the host's owners still hold.
                    // (A world-writable file there is writable then: see
                    // the module doc.)
                    a.expect("ro_remount", &["mount ok 0"]);
                    a.expect("ro_write", &["open EACCES"]);
                    // A fresh proc is still the host kernel's sysctls.
                    a.expect("proc_core", &["open EACCES"]);
                    // sysfs belongs to the netns, but the mount is locked.
                    a.expect("sys_remount", &["mount EPERM"]);
                    a.expect("sys_new", &["mount EPERM"]);
                    a.expect("sys_write", &["open EROFS"]);
                }
            }
            // /proc/1 is the container's own init: its root is the rootfs.
            a.expect("pid1root_marker", &["absent"]);
            a.expect("pid1root_direct", &["absent"]);
            // The host: its mounts, the read-only volume, sysfs, and no
            // propagation out of the shared mount.
            let after = (host_mounts(&tok), host_value(thp));
            assert_eq!(before, after, "the host changed: {}", a.ctx);
            assert_eq!(fs::read_to_string(rovol.join("f")).unwrap(), "host\n");
            assert_eq!(
                mounts_under(&shared.dir),
                vec![shared.dir.to_string_lossy().into_owned()],
                "a container mount propagated to the host: {}",
                a.ctx
            );
            assert_eq!(
                mounts_under(&shared2.dir),
                vec![shared2.dir.to_string_lossy().into_owned()],
                "a container mount propagated to the host through an id-mapped bind: {}",
                a.ctx
            );
            assert_eq!(fs::read_to_string(&marker).unwrap(), "host");
            let _ = fs::remove_file(&marker);
            drop(p);
            drop(shared);
            drop(shared2);
            let _ = fs::remove_dir_all(&rovol);
        }
    }
}

#[test]
fn modules_cannot_be_loaded() {
    require_root();
    // Any bytes do: the capability check comes before the module is read
    // (a garbage module is ENOEXEC for the host's root, EPERM without
    // CAP_SYS_MODULE in the initial user namespace).
    let host = host_xh(&["init_module", xh().to_str().unwrap()]);
    if host == "init_module ENOSYS" {
        skip("this kernel has no module support (init_module is ENOSYS for the host's root)");
        return;
    }
    assert_eq!(host, "init_module ENOEXEC", "the host's own attempt");
    // A real module from the host, bound read-only, when there is one.
    let release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let moddir = PathBuf::from(format!("/lib/modules/{release}"));
    let ko = Command::new("find")
        .arg(&moddir)
        .args(["-name", "*.ko", "-print", "-quit"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    for setup in setups() {
        for caps in CAPS {
            let mut script = String::from(
                "echo \"init: $(xh init_module /bin/xh)\"\necho \"finit: $(xh finit_module /bin/xh)\"\n",
            );
            if let Some(ko) = &ko {
                script.push_str(&format!(
                    "echo \"ko_init: $(xh init_module {ko})\"\necho \"ko_finit: $(xh finit_module {ko})\"\n"
                ));
            }
            let p = Probe::new(setup, caps, &script, |s| {
                if ko.is_some() {
                    s["mounts"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"destination": moddir,
                        "type": "bind", "source": moddir, "options": ["rbind", "ro"]}));
                }
            });
            let a = p.run();
            a.expect("init", &["init_module EPERM"]);
            a.expect("finit", &["finit_module EPERM"]);
            if ko.is_some() {
                a.expect("ko_init", &["init_module EPERM"]);
                a.expect("ko_finit", &["finit_module EPERM"]);
            }
        }
    }
    if ko.is_none() {
        skip("no .ko under /lib/modules of this kernel: probed with a garbage module only");
    }
}

/// What a write to a host sysctl gets: the owner check (global root) comes
/// before the read-only /proc/sys of the default config.
fn sysctl_refusal(_caps: Caps) -> &'static str {
    "open EACCES"
}

#[test]
fn proc_writes_do_not_reach_the_host() {
    require_root();
    let sysctls = [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/modprobe",
        "/proc/sys/vm/drop_caches",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/core/somaxconn",
    ];
    for setup in setups() {
        for caps in CAPS {
            let tok = token();
            let before: Vec<_> = sysctls.iter().map(|p| host_value(p)).collect();
            let fwd = if before[3].as_deref() == Some("1\n") {
                "0"
            } else {
                "1"
            };
            let me = std::process::id();
            let script = format!(
                r#"echo "core: $(xh write /proc/sys/kernel/core_pattern '|/pwn-{tok}')"
echo "modprobe: $(test -e /proc/sys/kernel/modprobe && xh write /proc/sys/kernel/modprobe /pwn-{tok} || echo absent)"
echo "sysrq: $(test -e /proc/sysrq-trigger && xh write /proc/sysrq-trigger h || echo absent)"
echo "kcore: $(test -e /proc/kcore && xh read /proc/kcore || echo absent)"
echo "drop: $(xh write /proc/sys/vm/drop_caches 3)"
echo "fwd: $(xh write /proc/sys/net/ipv4/ip_forward {fwd})"
echo "somax: $(xh write /proc/sys/net/core/somaxconn 17)"
echo "exe: $(xh write /proc/self/exe x)"
echo "init_root: $(echo x > /proc/1/root/escape-{tok} && echo wrote || echo refused)"
echo "kill_host: $(xh kill0 {me})"
echo "ptrace_host: $(xh ptrace {me})"
"#
            );
            // No network namespace: /proc/sys/net is the host's.
            let p = Probe::new(setup, caps, &script, |s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "network");
            });
            let a = p.run();
            for l in ["core", "drop", "fwd", "somax"] {
                a.expect(l, &[sysctl_refusal(caps)]);
            }
            for (l, path) in [
                ("modprobe", "/proc/sys/kernel/modprobe"),
                ("sysrq", "/proc/sysrq-trigger"),
            ] {
                if std::path::Path::new(path).exists() {
                    a.expect(l, &[sysctl_refusal(caps)]);
                } else {
                    a.expect(l, &["absent"]);
                    skip(&format!("{path} does not exist on this host"));
                }
            }
            if std::path::Path::new("/proc/kcore").exists() {
                // Masked (/dev/null over it) by default; root-only 0400 else.
                a.expect(
                    "kcore",
                    &[match caps {
                        Caps::Default => "read ok 0",
                        Caps::All => "open EACCES",
                    }],
                );
            } else {
                a.expect("kcore", &["absent"]);
                skip("/proc/kcore does not exist on this host");
            }
            a.expect("exe", &["open ETXTBSY"]);
            // /proc/1 is the container's init: its root is the rootfs.
            a.expect("init_root", &["wrote"]);
            assert!(p.b.rootfs().join(format!("escape-{tok}")).exists());
            assert!(!PathBuf::from(format!("/escape-{tok}")).exists());
            // Its own pid namespace: the host's processes are not there.
            a.expect("kill_host", &["kill0 ESRCH"]);
            a.expect("ptrace_host", &["ptrace ESRCH"]);
            let after: Vec<_> = sysctls.iter().map(|p| host_value(p)).collect();
            assert_eq!(before, after, "a host sysctl changed: {}", a.ctx);
        }
    }
}

#[test]
fn host_pid_namespace_and_host_proc() {
    require_root();
    // A hostile config: no pid namespace and the host's /proc bound in.
    for setup in setups() {
        for caps in CAPS {
            let me = std::process::id();
            let core = host_value("/proc/sys/kernel/core_pattern");
            let script = format!(
                r#"echo "kill1: $(xh kill0 1)"
echo "ptrace1: $(xh ptrace 1)"
echo "kill_host: $(xh kill0 {me})"
echo "ptrace_host: $(xh ptrace {me})"
echo "root1: $(xh read /proc/1/root/etc/hostname)"
echo "environ1: $(xh read /proc/1/environ)"
echo "mem_host: $(xh read /proc/{me}/mem)"
echo "exe_host: $(xh write /proc/{me}/exe x)"
echo "core: $(xh write /proc/sys/kernel/core_pattern '|/pwn')"
"#
            );
            let p = Probe::new(setup, caps, &script, |s| {
                s["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "pid");
                for m in s["mounts"].as_array_mut().unwrap() {
                    if m["destination"] == "/proc" {
                        *m = json!({"destination": "/proc", "type": "bind",
                            "source": "/proc", "options": ["rbind"]});
                    }
                }
            });
            let a = p.run();
            for l in ["kill1", "kill_host"] {
                a.expect(l, &["kill0 EPERM"]);
            }
            for l in ["ptrace1", "ptrace_host"] {
                a.expect(l, &["ptrace EPERM"]);
            }
            for l in ["root1", "environ1", "mem_host", "exe_host"] {
                a.expect(l, &["open EACCES"]);
            }
            a.expect("core", &[sysctl_refusal(caps)]);
            assert_eq!(host_value("/proc/sys/kernel/core_pattern"), core);
        }
    }
}

/// The host's root disk: its /dev node and major:minor.
fn host_disk() -> (PathBuf, String) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dev = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .to_string();
    let uevent = fs::read_to_string(format!("/sys/dev/block/{dev}/uevent")).unwrap();
    let name = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .unwrap();
    (PathBuf::from(format!("/dev/{name}")), dev)
}

#[test]
fn device_nodes_of_the_host_stay_closed() {
    require_root();
    let (disk, majmin) = host_disk();
    let (maj, min) = majmin.split_once(':').unwrap();
    let kvm = PathBuf::from("/dev/kvm");
    for setup in setups() {
        for caps in CAPS {
            let script = format!(
                r#"echo "mknod_disk: $(xh mknod /tmp/disk {maj} {min} | head -1)"
echo "bound_disk: $(xh read /hostdisk)"
echo "kvm: $(test -e /hostkvm && xh read /hostkvm || echo absent)"
"#
            );
            let p = Probe::new(setup, caps, &script, |s| {
                // A hostile config binds the host's nodes in.
                let m = s["mounts"].as_array_mut().unwrap();
                m.push(json!({"destination": "/hostdisk", "type": "bind",
                    "source": disk, "options": ["bind"]}));
                if kvm.exists() {
                    m.push(json!({"destination": "/hostkvm", "type": "bind",
                        "source": kvm, "options": ["bind"]}));
                }
            });
            let a = p.run();
            a.expect("mknod_disk", &["mknod EPERM"]);
            a.expect("bound_disk", &["open EACCES"]);
            if kvm.exists() {
                a.expect("kvm", &["open EACCES"]);
            } else {
                a.expect("kvm", &["absent"]);
                skip("no /dev/kvm on this host");
            }
        }
    }
}

#[test]
fn keyrings_file_handles_and_nested_namespaces() {
    require_root();
    for setup in setups() {
        for caps in CAPS {
            let tok = token();
            let before = host_mounts(&tok);
            let script = format!(
                r#"read KEY RING < /hostkey
echo "keyread: $(xh keyread $KEY)"
echo "session: $(xh keysession)"
echo "join: $(xh keyjoin vessel-escape-{tok})"
xh handle / | sed 's/ /: /'
mkdir -p /tmp/n-{tok}
echo "nested: $(unshare -U -m -r sh -c 'xh mount tmpfs /tmp/n-{tok} tmpfs 0 -' 2>&1)"
"#
            );
            let p = Probe::new(setup, caps, &script, |_| {});
            let keyfile = p.b.rootfs().join("hostkey");
            let hook = format!(
                "echo \"$XH_KEY $XH_RING\" > {} && exec \"$0\" \"$@\"",
                keyfile.display()
            );
            let xhp = xh();
            let ring_name = format!("vessel-escape-{tok}");
            let a = p.run_wrapped(&[
                xhp.to_str().unwrap(),
                "hostkey",
                &ring_name,
                "secret",
                "sh",
                "-c",
                &hook,
            ]);
            let host_ring = fs::read_to_string(&keyfile)
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string();
            match caps {
                Caps::Default => {
                    // The default seccomp profile refuses keyctl; without
                    // CAP_SYS_ADMIN, no nested user namespace either.
                    a.expect("keyread", &["keyread EPERM"]);
                    a.expect("session", &["keysession EPERM"]);
                    a.expect("join", &["keyjoin EPERM"]);
                    a.expect("open_by_handle_at_dir", &["EPERM"]);
                    a.expect(
                        "nested",
                        &["unshare: unshare(0x10020000): Operation not permitted"],
                    );
                }
                Caps::All => {
                    // Not a possessor of the host's session keyring, and
                    // not its owner: the key stays unreadable; its own
                    // session keyring, and a keyring name of the host's
                    // means another keyring in its user namespace.
                    a.expect("keyread", &["keyread EACCES"]);
                    for l in ["session", "join"] {
                        let got = a.get(l);
                        assert!(got.starts_with(&format!("key{l} ok ")), "{l}: {}", a.ctx);
                        assert_ne!(
                            got.rsplit(' ').next(),
                            Some(host_ring.as_str()),
                            "{l}: {}",
                            a.ctx
                        );
                    }
                    // The subtree check of Linux 6.10+ (ESTALE), EPERM before.
                    a.expect("open_by_handle_at_dir", &["ESTALE", "EPERM"]);
                    a.expect("nested", &["mount ok 0"]);
                }
            }
            a.expect("name_to_handle_at", &["ok 0"]);
            // Shocker: CAP_DAC_READ_SEARCH in the initial user namespace.
            a.expect("open_by_handle_at", &["EPERM"]);
            assert_eq!(
                before,
                host_mounts(&tok),
                "the host's mounts changed: {}",
                a.ctx
            );
        }
    }
}
