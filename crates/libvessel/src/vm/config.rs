//! VM sizing and kernel choice: how a container's spec maps onto a VM.
//!
//! Memory: `linux.resources.memory.limit` becomes guest RAM (rounded up to
//! MiB, at least MIN_MEM_MIB); no limit gives DEFAULT_MEM_MIB.
//! vCPUs: ceil(cpu quota / period), or the size of the cpuset, whichever is
//! smaller when both are set; neither gives one vCPU.
//! Overrides, strongest first: annotations `vessel.vm.vcpus` /
//! `vessel.vm.memory_mib`, then `vm.hwConfig.vcpus` / `vm.hwConfig.memory`
//! (bytes) in config.json, then the resources.

use super::VmError;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

pub use vessel_protocol::launch::{DEFAULT_MEM_MIB, DEFAULT_VCPUS, MAX_MEM_MIB, MIN_MEM_MIB};
/// The VMM's MP table describes at most this many CPUs.
pub const MAX_VCPUS: u32 = 64;

pub const ANNOTATION_VCPUS: &str = "vessel.vm.vcpus";
pub const ANNOTATION_MEMORY_MIB: &str = "vessel.vm.memory_mib";
pub const ANNOTATION_KERNEL: &str = "vessel.vm.kernel";
pub const ENV_KERNEL: &str = "VESSEL_VM_KERNEL";
pub const DEFAULT_KERNEL: &str = "/var/lib/vessel/kernel/vmlinux";

/// The base kernel command line (the VM-mode contract); the spec's
/// `vm.kernel.parameters` are appended. Every word must be a parameter the
/// kernel knows: the kernel hands unknown ones to init (the agent) as argv.
/// No `nomodule`: the agent loads the kernel's modules from the initramfs
/// (`<kernel>.modules/`, see `initramfs`) first thing, then sets
/// kernel.modules_disabled itself, before any workload runs.
pub const BASE_CMDLINE: &str = "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init reboot=k \
                                tsc=reliable no_timer_check";
/// The boot protocol's command line limit (bytes, without the NUL).
pub const MAX_CMDLINE: usize = 2047;

/// The parts of config.json's `vm` section vessel reads, taken from the raw
/// JSON (oci-spec 0.7 knows no `hwConfig`, and older specs give `parameters`
/// as one string).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VmSection {
    pub present: bool,
    pub kernel_path: Option<PathBuf>,
    pub kernel_parameters: Vec<String>,
    pub initrd: Option<PathBuf>,
    pub vcpus: Option<u32>,
    pub memory_bytes: Option<u64>,
}

impl VmSection {
    /// Read the `vm` section of a config.json document.
    pub fn from_json(doc: &serde_json::Value) -> Result<VmSection, VmError> {
        let Some(vm) = doc.get("vm").filter(|v| !v.is_null()) else {
            return Ok(VmSection::default());
        };
        let bad = |what: &str| VmError::Msg(format!("config.json: vm.{what} is not valid"));
        let mut s = VmSection {
            present: true,
            ..VmSection::default()
        };
        if let Some(kernel) = vm.get("kernel") {
            if let Some(p) = kernel.get("path") {
                let p = p.as_str().ok_or_else(|| bad("kernel.path"))?;
                if !p.is_empty() {
                    s.kernel_path = Some(PathBuf::from(p));
                }
            }
            match kernel.get("parameters") {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(text)) => {
                    s.kernel_parameters = text.split_whitespace().map(str::to_owned).collect()
                }
                Some(serde_json::Value::Array(items)) => {
                    for item in items {
                        let p = item.as_str().ok_or_else(|| bad("kernel.parameters"))?;
                        s.kernel_parameters.push(p.to_owned());
                    }
                }
                Some(_) => return Err(bad("kernel.parameters")),
            }
            if let Some(p) = kernel.get("initrd").filter(|v| !v.is_null()) {
                let p = p.as_str().ok_or_else(|| bad("kernel.initrd"))?;
                if !p.is_empty() {
                    s.initrd = Some(PathBuf::from(p));
                }
            }
        }
        if let Some(hw) = vm.get("hwConfig").filter(|v| !v.is_null()) {
            if let Some(v) = hw.get("vcpus").filter(|v| !v.is_null()) {
                let n = v.as_u64().ok_or_else(|| bad("hwConfig.vcpus"))?;
                s.vcpus = Some(u32::try_from(n).map_err(|_| bad("hwConfig.vcpus"))?);
            }
            if let Some(v) = hw.get("memory").filter(|v| !v.is_null()) {
                s.memory_bytes = Some(v.as_u64().ok_or_else(|| bad("hwConfig.memory"))?);
            }
        }
        Ok(s)
    }

    /// Read the `vm` section from a bundle's config.json.
    pub fn from_bundle(bundle: &Path) -> Result<VmSection, VmError> {
        let path = bundle.join("config.json");
        let text = std::fs::read(&path)
            .map_err(|e| VmError::Msg(format!("read {}: {e}", path.display())))?;
        let doc: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| VmError::Msg(format!("parse {}: {e}", path.display())))?;
        VmSection::from_json(&doc)
    }
}

/// The size of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub vcpus: u32,
    pub mem_mib: u64,
}

fn annotation<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Compute the VM size for a spec (see the module comment for the rules).
pub fn sizing(spec: &Spec, vm: &VmSection) -> Result<Sizing, VmError> {
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());

    let mem_mib = if let Some(text) = annotation(spec, ANNOTATION_MEMORY_MIB) {
        let n: u64 = text.trim().parse().map_err(|_| {
            VmError::Msg(format!(
                "annotation {ANNOTATION_MEMORY_MIB}={text:?} is not a number of MiB"
            ))
        })?;
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&n) {
            return Err(VmError::Msg(format!(
                "annotation {ANNOTATION_MEMORY_MIB}={n} is outside {MIN_MEM_MIB}..={MAX_MEM_MIB} MiB"
            )));
        }
        n
    } else if let Some(bytes) = vm.memory_bytes {
        bytes_to_mib(bytes)
    } else {
        match resources
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
        {
            Some(limit) if limit > 0 => bytes_to_mib(limit as u64),
            _ => DEFAULT_MEM_MIB,
        }
    };

    let vcpus = if let Some(text) = annotation(spec, ANNOTATION_VCPUS) {
        let n: u32 = text.trim().parse().map_err(|_| {
            VmError::Msg(format!(
                "annotation {ANNOTATION_VCPUS}={text:?} is not a number"
            ))
        })?;
        if !(1..=MAX_VCPUS).contains(&n) {
            return Err(VmError::Msg(format!(
                "annotation {ANNOTATION_VCPUS}={n} is outside 1..={MAX_VCPUS}"
            )));
        }
        n
    } else if let Some(n) = vm.vcpus.filter(|n| *n > 0) {
        n.min(MAX_VCPUS)
    } else {
        let cpu = resources.and_then(|r| r.cpu().as_ref());
        let from_quota = cpu.and_then(|c| match (c.quota(), c.period()) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some((q as u64).div_ceil(p)),
            _ => None,
        });
        let cpuset = cpu
            .and_then(|c| c.cpus().as_deref())
            .filter(|s| !s.trim().is_empty());
        let from_cpuset = match cpuset {
            Some(list) => Some(cpuset_count(list)? as u64),
            None => None,
        };
        let n = match (from_quota, from_cpuset) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => DEFAULT_VCPUS as u64,
        };
        n.clamp(1, MAX_VCPUS as u64) as u32
    };

    Ok(Sizing { vcpus, mem_mib })
}

/// Bytes to MiB, rounded up, clamped to [MIN_MEM_MIB, MAX_MEM_MIB].
fn bytes_to_mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20).clamp(MIN_MEM_MIB, MAX_MEM_MIB)
}

/// The number of CPUs in a cpuset list such as "0-3,6,8-9".
pub fn cpuset_count(list: &str) -> Result<u32, VmError> {
    let bad = || {
        VmError::Msg(format!(
            "linux.resources.cpu.cpus {list:?} is not a CPU list"
        ))
    };
    let mut count: u32 = 0;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if hi < lo {
            return Err(bad());
        }
        count = count.saturating_add(hi - lo + 1);
    }
    if count == 0 {
        return Err(bad());
    }
    Ok(count)
}

/// Env: more directories (colon-separated) a bundle may take its guest
/// kernel from, besides the default kernel's and `VESSEL_VM_KERNEL`'s.
pub const ENV_KERNEL_DIRS: &str = "VESSEL_VM_KERNEL_DIRS";

/// The guest kernel: annotation `vessel.vm.kernel`, then config.json's
/// `vm.kernel.path`, then env `VESSEL_VM_KERNEL`, then the default.
///
/// The first two come from the bundle, which a tenant writes: such a path
/// must lie in a directory the operator chose (`allowed_kernel_dirs`), and
/// stay there once its symlinks are resolved. Otherwise a bundle could have
/// vessel load any host ELF file into guest memory, where the workload can
/// read it, and learn from the errors which host files exist. A path
/// outside is refused before anything looks at it.
pub fn kernel_path(spec: &Spec, vm_kernel_path: Option<&Path>) -> Result<PathBuf, VmError> {
    let from_bundle = annotation(spec, ANNOTATION_KERNEL)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| vm_kernel_path.map(Path::to_path_buf));
    match from_bundle {
        Some(p) => bundle_kernel(&p, &allowed_kernel_dirs()),
        None => Ok(operator_kernel()),
    }
}

/// The operator's kernel: env `VESSEL_VM_KERNEL`, else the default.
fn operator_kernel() -> PathBuf {
    match std::env::var_os(ENV_KERNEL).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(DEFAULT_KERNEL),
    }
}

/// Where a bundle may take its kernel from: the default kernel's
/// directory, `VESSEL_VM_KERNEL`'s, and `VESSEL_VM_KERNEL_DIRS`.
fn allowed_kernel_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = [PathBuf::from(DEFAULT_KERNEL), operator_kernel()]
        .iter()
        .filter_map(|k| k.parent().map(Path::to_path_buf))
        .collect();
    if let Some(extra) = std::env::var_os(ENV_KERNEL_DIRS) {
        dirs.extend(std::env::split_paths(&extra).filter(|d| d.is_absolute()));
    }
    dirs.dedup();
    dirs
}

/// A bundle's kernel path, if it is (lexically, then with its symlinks
/// resolved) inside one of `allowed`. A missing file is left to the
/// caller's existence check, which names it.
fn bundle_kernel(path: &Path, allowed: &[PathBuf]) -> Result<PathBuf, VmError> {
    let lexical_ok = path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        && allowed.iter().any(|d| path.starts_with(d));
    let resolved_ok = || match std::fs::canonicalize(path) {
        Ok(real) => allowed.iter().any(|d| {
            std::fs::canonicalize(d)
                .map(|d| real.starts_with(d))
                .unwrap_or(false)
        }),
        Err(_) => true,
    };
    if lexical_ok && resolved_ok() {
        return Ok(path.to_path_buf());
    }
    let names: Vec<String> = allowed.iter().map(|d| d.display().to_string()).collect();
    Err(VmError::Msg(format!(
        "guest kernel {}, named by the bundle (annotation {ANNOTATION_KERNEL} or vm.kernel.path), \
         is outside the directories the operator allows ({}): a bundle may only pick a kernel \
         from those; the operator adds directories with {ENV_KERNEL_DIRS}",
        path.display(),
        names.join(", ")
    )))
}

/// The kernel command line: the base plus the spec's parameters.
/// Kernel parameters a config may not set: they would replace the agent as
/// the guest's init (and with it every rule it applies: capabilities,
/// seccomp, module loading off), move the console the VMM logs, or change
/// how a crashed guest ends; `vessel.` words are vessel's own.
const RESERVED_PARAMETERS: &[&str] = &["rdinit", "init", "console", "panic", "reboot"];

pub fn cmdline(parameters: &[String]) -> Result<String, VmError> {
    for p in parameters {
        let key = p.split('=').next().unwrap_or(p);
        if RESERVED_PARAMETERS.contains(&key) || key.starts_with("vessel.") {
            return Err(VmError::Msg(format!(
                "vm.kernel.parameters: {p:?} sets {key}, which vessel reserves (it would \
                 replace or bypass the guest agent, or the VMM's console)"
            )));
        }
    }
    let mut line = String::from(BASE_CMDLINE);
    for p in parameters {
        line.push(' ');
        line.push_str(p);
    }
    if line.len() > MAX_CMDLINE {
        return Err(VmError::Msg(format!(
            "kernel command line is {} bytes, more than the {MAX_CMDLINE} the boot protocol allows",
            line.len()
        )));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_from(doc: serde_json::Value) -> Spec {
        let mut base = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        for (k, v) in doc.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn size(doc: serde_json::Value) -> Result<Sizing, VmError> {
        let vm = VmSection::from_json(&doc).unwrap();
        sizing(&spec_from(doc), &vm)
    }

    #[test]
    fn defaults_without_resources() {
        assert_eq!(
            size(json!({})).unwrap(),
            Sizing {
                vcpus: 1,
                mem_mib: 256
            }
        );
    }

    #[test]
    fn memory_limit_rounds_up_with_floor() {
        let s = size(json!({"linux": {"resources": {"memory": {"limit": 300 * 1024 * 1024 + 1}}}}));
        assert_eq!(s.unwrap().mem_mib, 301);
        let s = size(json!({"linux": {"resources": {"memory": {"limit": 16 * 1024 * 1024}}}}));
        assert_eq!(s.unwrap().mem_mib, MIN_MEM_MIB);
        let s = size(json!({"linux": {"resources": {"memory": {"limit": -1}}}}));
        assert_eq!(s.unwrap().mem_mib, DEFAULT_MEM_MIB);
    }

    #[test]
    fn cpu_quota_rounds_up_and_cpuset_caps_it() {
        let q = |quota: i64, cpus: Option<&str>| {
            let mut cpu = json!({"quota": quota, "period": 100000});
            if let Some(c) = cpus {
                cpu["cpus"] = json!(c);
            }
            size(json!({"linux": {"resources": {"cpu": cpu}}}))
                .unwrap()
                .vcpus
        };
        assert_eq!(q(150000, None), 2);
        assert_eq!(q(50000, None), 1);
        assert_eq!(q(400000, Some("0-1")), 2);
        assert_eq!(q(-1, Some("0-2,5")), 4);
        assert_eq!(q(100000, Some("0-7")), 1);
    }

    #[test]
    fn annotations_override_everything() {
        let doc = json!({
            "annotations": {"vessel.vm.vcpus": "3", "vessel.vm.memory_mib": "512"},
            "linux": {"resources": {"memory": {"limit": 1 << 30}, "cpu": {"cpus": "0"}}},
            "vm": {"kernel": {"path": "/k"}, "hwConfig": {"vcpus": 8, "memory": 1u64 << 31}}
        });
        assert_eq!(
            size(doc).unwrap(),
            Sizing {
                vcpus: 3,
                mem_mib: 512
            }
        );
    }

    #[test]
    fn hwconfig_beats_resources() {
        let doc = json!({
            "linux": {"resources": {"memory": {"limit": 1 << 30}}},
            "vm": {"kernel": {"path": "/k"}, "hwConfig": {"vcpus": 2, "memory": 200u64 << 20}}
        });
        assert_eq!(
            size(doc).unwrap(),
            Sizing {
                vcpus: 2,
                mem_mib: 200
            }
        );
    }

    #[test]
    fn bad_annotations_are_refused() {
        for (k, v) in [
            ("vessel.vm.vcpus", "0"),
            ("vessel.vm.vcpus", "two"),
            ("vessel.vm.vcpus", "1000"),
            ("vessel.vm.memory_mib", "64"),
            ("vessel.vm.memory_mib", "lots"),
        ] {
            let err = size(json!({"annotations": {k: v}}))
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn cpuset_lists() {
        assert_eq!(cpuset_count("0").unwrap(), 1);
        assert_eq!(cpuset_count("0-3,6,8-9").unwrap(), 7);
        assert!(cpuset_count("3-1").is_err());
        assert!(cpuset_count("x").is_err());
    }

    #[test]
    fn vm_section_parameters_as_string_or_array() {
        let a = VmSection::from_json(
            &json!({"vm": {"kernel": {"path": "/k", "parameters": ["a=1", "b"]}}}),
        );
        let b = VmSection::from_json(
            &json!({"vm": {"kernel": {"path": "/k", "parameters": "a=1  b"}}}),
        );
        assert_eq!(a.unwrap().kernel_parameters, vec!["a=1", "b"]);
        for bad in [
            "rdinit=/bin/sh",
            "init=/x",
            "console=ttyS1",
            "vessel.tty_onlcr=0",
        ] {
            let e = cmdline(&[bad.to_string()]).unwrap_err().to_string();
            assert!(e.contains("reserves") && e.contains(bad), "{e}");
        }
        assert!(cmdline(&["quiet".to_string(), "mitigations=off".to_string()]).is_ok());
        assert_eq!(b.unwrap().kernel_parameters, vec!["a=1", "b"]);
        assert!(!VmSection::from_json(&json!({})).unwrap().present);
        assert!(VmSection::from_json(&json!({"vm": {"kernel": {"path": 3}}})).is_err());
    }

    #[test]
    fn kernel_path_precedence() {
        let with_annotation =
            spec_from(json!({"annotations": {"vessel.vm.kernel": "/var/lib/vessel/kernel/a"}}));
        assert_eq!(
            kernel_path(
                &with_annotation,
                Some(Path::new("/var/lib/vessel/kernel/c"))
            )
            .unwrap(),
            PathBuf::from("/var/lib/vessel/kernel/a")
        );
        let plain = spec_from(json!({}));
        assert_eq!(
            kernel_path(&plain, Some(Path::new("/var/lib/vessel/kernel/c"))).unwrap(),
            PathBuf::from("/var/lib/vessel/kernel/c")
        );
    }

    #[test]
    fn a_bundle_kernel_must_stay_in_the_allowed_dirs() {
        let dir = std::env::temp_dir().join(format!("vessel-kdirs-{}", std::process::id()));
        let allowed = dir.join("kernels");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(allowed.join("vmlinux"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", allowed.join("escape")).unwrap();
        let ok = |p: &Path| bundle_kernel(p, std::slice::from_ref(&allowed));
        assert!(ok(&allowed.join("vmlinux")).is_ok());
        // Missing: the caller's existence check names it.
        assert!(ok(&allowed.join("missing")).is_ok());
        for bad in [
            PathBuf::from("/etc/passwd"),
            allowed.join("../kernels/vmlinux"),
            allowed.join("escape"),
            PathBuf::from("vmlinux"),
        ] {
            let e = ok(&bad).unwrap_err().to_string();
            assert!(
                e.contains("outside the directories") && e.contains(ENV_KERNEL_DIRS),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cmdline_appends_parameters_and_checks_length() {
        let line = cmdline(&["foo=bar".into()]).unwrap();
        assert!(line.starts_with("console=ttyS0 ") && line.ends_with(" foo=bar"));
        assert!(line.contains("rdinit=/init"));
        assert!(cmdline(&["x".repeat(3000)]).is_err());
    }
}
