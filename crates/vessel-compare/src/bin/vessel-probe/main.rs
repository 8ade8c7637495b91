//! vessel-probe: the workload `vessel compare` runs in a container and in a
//! VM. It measures what a sandbox costs (syscall latency, file I/O in the
//! root filesystem, CPU-bound work) and what it reveals or permits (which
//! kernel answers, what /proc, /sys and /dev show, a few escape attempts).
//!
//! Output: the line `vessel-probe: started` at once (the host times the
//! workload's first output by it), then one JSON object on one line.
//! Depends on libc and std only, so it is a small static binary that runs
//! in any rootfs, as a guest's workload or a container's.
//!
//! With `--stdout-mib N`, N MiB of numbered lines come before that JSON line
//! (see `bulk`). With `--net-target ADDR:PORT`, TCP round trips and a bulk
//! send to `vessel compare`'s server on the host (see `net`).
//!
//! Usage: vessel-probe [--io-mib N] [--syscalls N] [--cpu-iters N]
//!                     [--stdout-mib N] [--host-pid PID] [--io-dir DIR]
//!                     [--net-target ADDR:PORT] [--net-mib N] [--net-rtts N]

mod bulk;
mod escape;
mod json;
mod net;

use escape::escape;
use json::Json;
use std::ffi::CString;
use std::fs;
use std::hint::black_box;
use std::time::Instant;

const START_LINE: &[u8] = b"vessel-probe: started\n";

fn main() {
    // The first output, before any work: one raw write, no buffering.
    write_all(1, START_LINE);
    let opts = match Options::parse(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vessel-probe: {e}");
            std::process::exit(2);
        }
    };
    let report = Json::Obj(vec![
        ("probe".into(), Json::str("vessel-probe")),
        ("cost".into(), cost(&opts)),
        ("isolation".into(), isolation(&opts)),
        ("escape".into(), escape(&opts)),
    ]);
    let mut line = report.to_string();
    line.push('\n');
    write_all(1, line.as_bytes());
}

struct Options {
    io_mib: u64,
    syscalls: u64,
    cpu_iters: u64,
    stdout_mib: u64,
    host_pid: Option<i32>,
    io_dir: String,
    net: net::NetOptions,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Options, String> {
        let mut o = Options {
            io_mib: 32,
            syscalls: 200_000,
            cpu_iters: 20_000_000,
            stdout_mib: 0,
            host_pid: None,
            io_dir: "/".into(),
            net: net::NetOptions {
                target: None,
                mib: 16,
                rtts: 1000,
            },
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
            let num = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{a}: {v:?} is not a number"))
            };
            match a.as_str() {
                "--io-mib" => o.io_mib = num(value()?)?,
                "--syscalls" => o.syscalls = num(value()?)?.max(1),
                "--cpu-iters" => o.cpu_iters = num(value()?)?.max(1),
                "--stdout-mib" => o.stdout_mib = num(value()?)?,
                "--host-pid" => o.host_pid = Some(num(value()?)? as i32),
                "--io-dir" => o.io_dir = value()?,
                "--net-target" => o.net.target = Some(value()?),
                "--net-mib" => o.net.mib = num(value()?)?,
                "--net-rtts" => o.net.rtts = num(value()?)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------- cost ----

fn cost(o: &Options) -> Json {
    Json::Obj(vec![
        ("getpid_ns".into(), Json::Num(getpid_ns(o.syscalls))),
        ("read".into(), read_ns(o.syscalls, &o.io_dir)),
        ("file_io".into(), file_io(o.io_mib, &o.io_dir)),
        ("cpu".into(), cpu_work(o.cpu_iters)),
        ("net".into(), net::net(&o.net)),
        ("stdout".into(), bulk::write_bulk(o.stdout_mib, write_all)),
        ("self_vm_hwm_kib".into(), opt_num(status_field("VmHWM"))),
    ])
}

/// Nanoseconds per getpid(2), issued as a raw syscall (no libc caching).
fn getpid_ns(n: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: getpid takes no arguments and cannot fail.
        black_box(unsafe { libc::syscall(libc::SYS_getpid) });
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Nanoseconds per 1-byte read(2) from /dev/zero (or pread of a small file
/// in the io dir when the sandbox has no /dev/zero).
fn read_ns(n: u64, io_dir: &str) -> Json {
    let mut buf = [0u8; 1];
    let (fd, source, tmp) = match open_fd("/dev/zero", libc::O_RDONLY) {
        Ok(fd) => (fd, "/dev/zero".to_string(), None),
        Err(_) => {
            let path = format!("{}/.vessel-probe-read", io_dir.trim_end_matches('/'));
            if fs::write(&path, b"x").is_err() {
                return Json::Obj(vec![(
                    "error".into(),
                    Json::str("no /dev/zero and no writable io dir"),
                )]);
            }
            match open_fd(&path, libc::O_RDONLY) {
                Ok(fd) => (fd, path.clone(), Some(path)),
                Err(e) => return Json::Obj(vec![("error".into(), Json::str(&e))]),
            }
        }
    };
    let t = Instant::now();
    let mut failed = 0u64;
    for _ in 0..n {
        // SAFETY: fd is open and buf is a valid 1-byte buffer.
        let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), 1, 0) };
        if r != 1 {
            failed += 1;
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    if let Some(p) = tmp {
        let _ = fs::remove_file(p);
    }
    Json::Obj(vec![
        ("ns".into(), Json::Num(ns)),
        ("source".into(), Json::str(&source)),
        ("failed".into(), Json::Int(failed as i64)),
    ])
}

/// Write N MiB to a file in the root filesystem (fsync included), then read
/// it back (from the page cache where the kernel keeps one).
fn file_io(mib: u64, io_dir: &str) -> Json {
    let dir = io_dir.trim_end_matches('/');
    let path = format!("{dir}/.vessel-probe-io");
    let chunk = vec![0x5au8; 1 << 20];
    let fs_type = statfs_name(if dir.is_empty() { "/" } else { dir });
    let fd = match open_fd(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) {
        Ok(fd) => fd,
        Err(e) => {
            return Json::Obj(vec![
                ("error".into(), Json::str(&e)),
                ("fs".into(), Json::str(&fs_type)),
            ])
        }
    };
    let t = Instant::now();
    let mut err = None;
    for _ in 0..mib {
        if !write_all(fd, &chunk) {
            err = Some(format!("write {path}: {}", errno_name(errno())));
            break;
        }
    }
    // SAFETY: fd is open for writing.
    if err.is_none() && unsafe { libc::fsync(fd) } != 0 {
        err = Some(format!("fsync {path}: {}", errno_name(errno())));
    }
    let write_s = t.elapsed().as_secs_f64();
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    if let Some(e) = err {
        let _ = fs::remove_file(&path);
        return Json::Obj(vec![
            ("error".into(), Json::str(&e)),
            ("fs".into(), Json::str(&fs_type)),
        ]);
    }
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut total = 0u64;
    if let Ok(fd) = open_fd(&path, libc::O_RDONLY) {
        loop {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                break;
            }
            total += r as u64;
        }
        // SAFETY: fd was opened above and is closed once.
        unsafe { libc::close(fd) };
    }
    let read_s = t.elapsed().as_secs_f64();
    let _ = fs::remove_file(&path);
    let mib_f = mib as f64;
    Json::Obj(vec![
        ("mib".into(), Json::Int(mib as i64)),
        ("fs".into(), Json::str(&fs_type)),
        ("write_mib_s".into(), Json::Num(mib_f / write_s.max(1e-9))),
        (
            "read_mib_s".into(),
            Json::Num((total as f64 / 1048576.0) / read_s.max(1e-9)),
        ),
    ])
}

/// A fixed amount of integer work (xorshift and multiply), timed.
fn cpu_work(iters: u64) -> Json {
    let t = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut acc: u64 = 0;
    for i in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x.wrapping_mul(i | 1));
    }
    black_box(acc);
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    Json::Obj(vec![
        ("iters".into(), Json::Int(iters as i64)),
        ("ms".into(), Json::Num(ms)),
    ])
}

// ----------------------------------------------------------- isolation ----

fn isolation(o: &Options) -> Json {
    let mut fields = kernel_and_machine();
    fields.extend(visible_host());
    fields.extend(privileges(o));
    Json::Obj(fields)
}

/// The kernel (uname, boot id, command line) and the machine it shows.
fn kernel_and_machine() -> Vec<(String, Json)> {
    let u = uname();
    let (cpu_model, cpu_count) = cpuinfo();
    let mem_total = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| keyed_kib(&t, "MemTotal"));
    vec![
        ("kernel_release".into(), Json::str(&c_field(&u.release))),
        ("kernel_version".into(), Json::str(&c_field(&u.version))),
        ("machine".into(), Json::str(&c_field(&u.machine))),
        ("hostname".into(), Json::str(&c_field(&u.nodename))),
        (
            "boot_id".into(),
            opt_str(read_trim("/proc/sys/kernel/random/boot_id")),
        ),
        ("proc_cmdline".into(), opt_str(read_trim("/proc/cmdline"))),
        ("cpu_model".into(), opt_str(cpu_model)),
        ("cpuinfo_count".into(), Json::Int(cpu_count as i64)),
        (
            "cpus_usable".into(),
            Json::Int(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(0) as i64,
            ),
        ),
        ("mem_total_kib".into(), opt_num(mem_total)),
    ]
}

/// What of the host the process can see: processes, modules, the kernel
/// log, devices, block and network devices, DMI.
fn visible_host() -> Vec<(String, Json)> {
    let me = std::process::id();
    let modules = match fs::read_to_string("/proc/modules") {
        Ok(t) => Json::Int(t.lines().count() as i64),
        Err(e) => Json::str(&io_err_name(&e)),
    };
    let dev_entries = list_dir("/dev");
    vec![
        ("pid".into(), Json::Int(me as i64)),
        (
            "other_processes".into(),
            Json::Int(other_processes(me) as i64),
        ),
        ("pid1_comm".into(), opt_str(read_trim("/proc/1/comm"))),
        ("modules".into(), modules),
        ("dmesg".into(), dmesg()),
        ("dev_count".into(), Json::Int(dev_entries.len() as i64)),
        ("dev".into(), names(&dev_entries)),
        ("sys_block".into(), names(&list_dir("/sys/block"))),
        ("sys_net".into(), names(&list_dir("/sys/class/net"))),
        (
            "dmi_product".into(),
            opt_str(read_trim("/sys/class/dmi/id/product_name")),
        ),
    ]
}

/// What the process may do: capabilities, seccomp, user mapping, and the
/// filesystems it works on.
fn privileges(o: &Options) -> Vec<(String, Json)> {
    vec![
        ("cap_eff".into(), opt_str(status_str("CapEff"))),
        ("seccomp".into(), opt_str(status_str("Seccomp"))),
        (
            "uid_map".into(),
            opt_str(
                read_trim("/proc/self/uid_map")
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")),
            ),
        ),
        ("io_dir".into(), Json::str(&o.io_dir)),
        ("root_fs".into(), Json::str(&statfs_name("/"))),
    ]
}

fn uname() -> libc::utsname {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname to fill.
    unsafe { libc::uname(&mut u) };
    u
}

/// A NUL-terminated utsname field as text.
fn c_field(f: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The CPU model name and the number of processors /proc/cpuinfo lists.
fn cpuinfo() -> (Option<String>, usize) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let cpu_count = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    (cpu_model, cpu_count)
}

/// How many processes other than this one /proc lists.
fn other_processes(me: u32) -> usize {
    let pids: Vec<u32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    pids.iter().filter(|p| **p != me).count()
}

fn names(list: &[String]) -> Json {
    Json::Arr(list.iter().map(|s| Json::str(s)).collect())
}

/// Can the kernel log be read? syslog(2) READ_ALL into a small buffer.
fn dmesg() -> Json {
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is valid for buf.len() bytes; action 3 = SYSLOG_ACTION_READ_ALL.
    let r = unsafe { libc::klogctl(3, buf.as_mut_ptr().cast(), buf.len() as i32) };
    if r >= 0 {
        Json::str("readable")
    } else {
        Json::str(&errno_name(errno()))
    }
}

// ------------------------------------------------------------- helpers ----

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("errno {e}"),
    };
    name.into()
}

fn io_err_name(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(errno_name)
        .unwrap_or_else(|| e.to_string())
}

fn open_fd(path: &str, flags: i32) -> Result<i32, String> {
    let c = CString::new(path).map_err(|_| format!("{path}: NUL in path"))?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        Err(format!("open {path}: {}", errno_name(errno())))
    } else {
        Ok(fd)
    }
}

/// Write everything (retrying short writes); false on an error.
fn write_all(fd: i32, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: data is a valid buffer of data.len() bytes.
        let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        data = &data[r as usize..];
    }
    true
}

fn statfs_name(path: &str) -> String {
    let Ok(c) = CString::new(path) else {
        return "?".into();
    };
    // SAFETY: statfs is plain data; the kernel fills it.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path and s a valid statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return errno_name(errno());
    }
    match s.f_type as u64 {
        0xef53 => "ext4".into(),
        0x794c_7630 => "overlayfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x8584_58f6 => "ramfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683e => "btrfs".into(),
        0x6969 => "nfs".into(),
        0x6573_5546 => "fuse".into(),
        0x0100_4d52 => "virtiofs".into(),
        other => format!("0x{other:x}"),
    }
}

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn keyed_kib(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split(':').next() == Some(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn status_str(key: &str) -> Option<String> {
    let t = fs::read_to_string("/proc/self/status").ok()?;
    t.lines()
        .find(|l| l.split(':').next() == Some(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn status_field(key: &str) -> Option<f64> {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| keyed_kib(&t, key))
}

fn list_dir(path: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn opt_str(s: Option<String>) -> Json {
    s.map(Json::Str).unwrap_or(Json::Null)
}

fn opt_num(n: Option<f64>) -> Json {
    n.map(Json::Num).unwrap_or(Json::Null)
}
