//! runtime-spec/support-matrix.json and runtime-spec/features.json against
//! each other and against what the runtime does: rejected fields fail
//! `create` cleanly, ignored fields warn in --log, `vessel features` prints the
//! file, and its seccomp actions and operators compile.

mod common;

use common::matrix::*;
use common::*;
use serde_json::{json, Value};
use std::fs;

fn features() -> Value {
    read_json("runtime-spec/features.json")
}

/// Every leaf path of a config, in the matrix's notation.
fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(p.clone());
                paths(child, &p, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

// (1) The matrix and the features document agree, and the matrix covers the
// default config.

#[test]
fn supported_fields_appear_in_features() {
    let f = features();
    let mut checked = 0;
    for e in matrix() {
        let Some(ptr) = e["feature"].as_str() else {
            continue;
        };
        let supported = status(&e) == "supported";
        let place = f
            .pointer(ptr)
            .unwrap_or_else(|| panic!("{}: features.json has nothing at {ptr}", subject(&e)));
        match place {
            Value::Bool(b) => assert_eq!(
                *b,
                supported,
                "{} is {} but features.json{ptr} is {b}",
                subject(&e),
                status(&e)
            ),
            Value::Array(list) => {
                // hooks.<name> and value rows name one member of the list;
                // a plain row (namespaces, mount options) needs a non-empty list.
                let member = e["value"].as_str().map(str::to_owned).or_else(|| {
                    (ptr == "/hooks").then(|| field(&e).rsplit('.').next().unwrap().to_owned())
                });
                match member {
                    Some(m) => assert_eq!(
                        list.contains(&json!(m)),
                        supported,
                        "{} is {} but features.json{ptr} {} {m:?}",
                        subject(&e),
                        status(&e),
                        if supported { "lacks" } else { "lists" }
                    ),
                    None => assert_eq!(!list.is_empty(), supported, "{}", subject(&e)),
                }
            }
            other => panic!("{ptr} is neither a bool nor a list: {other}"),
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} rows point into features.json"
    );
    // Every hook the features document lists has a supported row.
    let rows = matrix();
    for hook in f["hooks"].as_array().unwrap() {
        let name = format!("hooks.{}", hook.as_str().unwrap());
        assert!(
            rows.iter()
                .any(|e| field(e) == name && status(e) == "supported"),
            "features.json lists hook {name} but the matrix does not support it"
        );
    }
}

#[test]
fn matrix_covers_the_default_configs() {
    let rows = matrix();
    let known = |p: &str| rows.iter().any(|e| e["value"].is_null() && field(e) == p);
    let in_map = |p: &str| {
        rows.iter().any(|e| {
            e["map"] == json!(true)
                && p.starts_with(field(e))
                && p[field(e).len()..].starts_with('.')
        })
    };
    for rel in [
        "runtime-spec/config.json",
        "runtime-spec/config-rootless.json",
    ] {
        let config = read_json(rel);
        for key in config.as_object().unwrap().keys() {
            assert!(
                known(key),
                "{rel}: top-level key {key} is not in the matrix"
            );
        }
        let mut all = Vec::new();
        paths(&config, "", &mut all);
        assert!(all.len() > 20, "{rel}: only {} paths", all.len());
        for p in all {
            assert!(known(&p) || in_map(&p), "{rel}: {p} is not in the matrix");
        }
    }
}

#[test]
fn features_document_is_well_formed() {
    let text = fs::read_to_string(repo_dir().join("runtime-spec/features.json")).unwrap();
    // oci-spec's own type for the features document accepts it.
    let parsed: oci_spec::runtime::Features = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed.oci_version_min(), "1.0.0");
    let f = features();
    assert_eq!(
        f["annotations"]["vessel.version"],
        json!(env!("CARGO_PKG_VERSION")),
        "features.json names another vessel version"
    );
    for key in [
        "vessel.sandbox",
        "vessel.vm.vcpus",
        "vessel.vm.memory_mib",
        "vessel.vm.kernel",
    ] {
        assert!(
            f["annotations"][key].is_string(),
            "annotation {key} missing"
        );
    }
    // Every listed mount option is one vessel's mount code understands as a
    // flag, not something it would pass to the filesystem as data.
    for opt in f["mountOptions"].as_array().unwrap() {
        let opt = opt.as_str().unwrap().to_owned();
        let (flags, prop, data, bind) =
            libvessel::isolation::mounts::parse_options(std::slice::from_ref(&opt));
        assert!(data.is_empty(), "mount option {opt} is passed on as data");
        let clears = [
            "rw", "suid", "dev", "exec", "async", "nomand", "atime", "diratime", "symfollow",
        ]
        .contains(&opt.as_str())
            || opt.starts_with("no")
            || opt == "loud"
            // Recursive options: mount_setattr after the mount.
            || libvessel::isolation::mounts::recursive_option(&opt).is_some()
            // Id-mapped mounts: isolation::idmap, before the mount.
            || opt == "idmap"
            || opt == "ridmap";
        assert!(
            flags != 0 || prop != 0 || bind || clears,
            "mount option {opt} has no effect"
        );
    }
    // Every listed capability is one the kernel-facing code can name.
    for cap in f["linux"]["capabilities"].as_array().unwrap() {
        let name = cap.as_str().unwrap();
        assert!(
            name.parse::<caps::Capability>().is_ok(),
            "capability {name} unknown to vessel"
        );
    }
}

// (4) `vessel features` prints the file; its seccomp lists compile.

#[test]
fn features_command_prints_the_file() {
    if !is_vessel() {
        skip("`features` output is vessel's own");
        return;
    }
    let rt = Runtime::new();
    let out = rt.ok(&["features"]);
    let printed: Value = serde_json::from_str(&out).expect("`vessel features` prints JSON");
    let mut expected = features();
    if !libvessel::isolation::idmap::kernel_supports_idmap() {
        // What depends on the kernel: no mount_setattr, no id-mapped mounts.
        expected["linux"]["mountExtensions"]["idmap"]["enabled"] = json!(false);
        if let Some(opts) = expected["mountOptions"].as_array_mut() {
            opts.retain(|o| o != "idmap" && o != "ridmap");
        }
    }
    assert_eq!(printed, expected);
}

#[test]
fn listed_seccomp_actions_and_operators_compile() {
    use oci_spec::runtime::LinuxSeccomp;
    let f = features();
    let seccomp = &f["linux"]["seccomp"];
    let actions = seccomp["actions"].as_array().unwrap();
    let operators = seccomp["operators"].as_array().unwrap();
    assert!(actions.len() >= 8 && operators.len() == 7);
    // One rule per action on its own syscall, then one rule per operator.
    let names = [
        "getpid", "getppid", "getuid", "getgid", "geteuid", "getegid", "gettid", "uname", "umask",
        "sync",
    ];
    let mut syscalls = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        syscalls.push(json!({"names": [names[i % names.len()]], "action": a}));
    }
    for (i, op) in operators.iter().enumerate() {
        syscalls.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 0xffff_u64 + i as u64, "valueTwo": 1, "op": op}]
        }));
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": seccomp["archs"],
        "listenerPath": "/run/vessel-test-listener.sock",
        "syscalls": syscalls
    });
    // Actions equal to the default are dropped by design; compile each action
    // also as the default of an otherwise empty profile (NOTIFY cannot be).
    let parsed: LinuxSeccomp = serde_json::from_value(profile).unwrap();
    let mut warnings = Vec::new();
    let prog = libvessel::isolation::seccomp::compile(&parsed, &mut |w| warnings.push(w))
        .unwrap_or_else(|e| panic!("profile with every listed action/operator: {e}"));
    assert!(prog.wants_listener, "SCMP_ACT_NOTIFY was not compiled");
    assert!(prog.len() > actions.len() + operators.len());
    assert!(warnings.is_empty(), "{warnings:?}");
    for a in actions {
        if a == "SCMP_ACT_NOTIFY" {
            continue;
        }
        let p: LinuxSeccomp = serde_json::from_value(json!({
            "defaultAction": a,
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        libvessel::isolation::seccomp::compile(&p, &mut |_| {})
            .unwrap_or_else(|e| panic!("default action {a}: {e}"));
    }
}

// (2) and (3): the runtime against each rejected and ignored row.

/// Rows of one status that a container-mode test can exercise here.
fn rows(which: &str) -> Vec<Value> {
    matrix()
        .into_iter()
        .filter(|e| status(e) == which)
        .filter(|e| {
            if e["mode"] == json!("vm") {
                skip(&format!(
                    "{} is read by VM mode only, which needs a bootable KVM",
                    subject(e)
                ));
                return false;
            }
            true
        })
        .collect()
}

#[test]
fn rejected_fields_fail_create_and_leave_nothing() {
    if !is_vessel() {
        skip("the support matrix is vessel's own");
        return;
    }
    let rows = rows("rejected");
    assert!(!rows.is_empty());
    let template = Bundle::new(&["true"]);
    for e in rows {
        let rt = Runtime::new();
        let b = Bundle::new(&["true"]);
        let mut spec = template.spec.clone();
        patch(&mut spec, &e["example"]);
        fs::write(
            b.dir.join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let id = unique_id("rejected");
        let (ok, stderr) = create(&rt, &b, &id);
        assert!(!ok, "{}: create succeeded", subject(&e));
        assert!(
            stderr.contains(&subject(&e)),
            "{}: error does not name the field: {stderr}",
            subject(&e)
        );
        let left: Vec<_> = fs::read_dir(&rt.root)
            .map(|d| d.flatten().map(|x| x.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{}: left behind {left:?}", subject(&e));
        assert!(!rt.run(&["state", &id]).status.success());
        assert!(
            logged_error(&rt, &subject(&e)),
            "{}: no error line in --log: {}",
            subject(&e),
            rt.log_text()
        );
    }
}

#[test]
fn ignored_fields_warn_in_the_log() {
    if !is_vessel() {
        skip("the support matrix is vessel's own");
        return;
    }
    let rows = rows("ignored");
    assert!(!rows.is_empty());
    let template = Bundle::new(&["true"]);
    let rt = Runtime::new();
    for e in rows {
        let _ = fs::remove_file(&rt.log);
        let mut spec = template.spec.clone();
        patch(&mut spec, &e["example"]);
        fs::write(
            template.dir.join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let id = unique_id("ignored");
        let (ok, stderr) = create(&rt, &template, &id);
        assert!(ok, "{}: create failed: {stderr}", subject(&e));
        let warned = logged(&rt, "warning", &[&subject(&e), "ignored"]);
        let log = rt.log_text();
        rt.ok(&["delete", "-f", &id]);
        assert!(warned, "{}: no warning in --log: {log}", subject(&e));
    }
}
