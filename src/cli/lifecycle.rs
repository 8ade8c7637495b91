//! spec, create, start, run, state, list, kill, delete.

use super::{out, CreateArgs};
use libvessel::container::{self, create::CreateOptions};
use libvessel::{Error, Result};
use std::path::Path;

pub fn spec(bundle: &Path, rootless: bool) -> Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::invalid(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let text = if rootless {
        container::rootless::rootless_spec_text(libvessel::spec::ROOTLESS_SPEC)?
    } else {
        libvessel::spec::DEFAULT_SPEC.to_string()
    };
    std::fs::write(&path, text).map_err(Error::io("write", &path))?;
    Ok(0)
}

/// `engine`: vessel was started with `--log-format json`, as containerd and
/// Podman do (no tenant id range unless the config asks).
pub fn options(a: CreateArgs, argv0: &str, cgroups_disabled: bool, engine: bool) -> CreateOptions {
    CreateOptions {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        console_fd: None,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        argv0: argv0.to_string(),
        cgroups_disabled,
        engine,
    }
}

pub fn create(
    root: &Path,
    a: CreateArgs,
    argv0: &str,
    no_cgroup: bool,
    engine: bool,
) -> Result<i32> {
    container::create::create(root, options(a, argv0, no_cgroup, engine))?;
    Ok(0)
}

pub fn start(root: &Path, id: &str) -> Result<i32> {
    container::start::start(root, id)?;
    Ok(0)
}

pub fn run(
    root: &Path,
    a: CreateArgs,
    detach: bool,
    keep: bool,
    argv0: &str,
    no_cgroup: bool,
    engine: bool,
) -> Result<i32> {
    let opts = options(a, argv0, no_cgroup, engine);
    if detach {
        let id = opts.id.clone();
        container::create::create(root, opts)?;
        if let Err(e) = container::start::start(root, &id) {
            let _ = container::delete::delete(root, &id, true);
            return Err(e);
        }
        return Ok(0);
    }
    libvessel::container::run::run_foreground(root, opts, keep)
}

pub fn state(root: &Path, id: &str) -> Result<i32> {
    let (dir, st) = container::load(root, id)?;
    let v = st.oci_json(&dir);
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    ));
    Ok(0)
}

pub fn list(root: &Path, format: &str, quiet: bool) -> Result<i32> {
    let mut rows = Vec::new();
    for id in container::list_ids(root)? {
        match container::load(root, &id) {
            Ok((dir, st)) => rows.push(st.oci_json(&dir)),
            // runc's words: the id is named, not hidden (a create that died
            // before its first save; `delete` removes it).
            Err(e) => eprintln!("load container {id}: {e}"),
        }
    }
    if quiet {
        for r in &rows {
            out(&format!("{}\n", r["id"].as_str().unwrap_or("")));
        }
        return Ok(0);
    }
    if format == "json" {
        // runc prints `null` when there is no container.
        if rows.is_empty() {
            out("null\n");
        } else {
            let items: Vec<String> = rows.iter().map(list_entry_json).collect();
            out(&format!("[{}]\n", items.join(",")));
        }
        return Ok(0);
    }
    let mut table = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for r in &rows {
        table.push([
            r["id"].as_str().unwrap_or("").to_string(),
            r["pid"].to_string(),
            r["status"].as_str().unwrap_or("").to_string(),
            r["bundle"].as_str().unwrap_or("").to_string(),
            r["created"].as_str().unwrap_or("").to_string(),
            r["owner"].as_str().unwrap_or("").to_string(),
        ]);
    }
    out(&tab_table(&table));
    Ok(0)
}

/// One `list --format json` entry with runc's field order (its
/// containerState struct: ociVersion, id, pid, status, bundle, rootfs,
/// created, annotations when not empty, owner); list.bats matches the line
/// with a pattern in that order. Any other field follows, sorted.
pub fn list_entry_json(v: &serde_json::Value) -> String {
    const ORDER: [&str; 9] = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
        "owner",
    ];
    let Some(map) = v.as_object() else {
        return v.to_string();
    };
    let empty = |x: &serde_json::Value| x.is_null() || x.as_object().is_some_and(|o| o.is_empty());
    let mut fields = Vec::new();
    let mut push = |k: &str, x: &serde_json::Value| {
        let key = serde_json::Value::String(k.to_string());
        fields.push(format!("{key}:{x}"));
    };
    for k in ORDER {
        match map.get(k) {
            Some(x) if k == "annotations" && empty(x) => {}
            Some(x) => push(k, x),
            None => {}
        }
    }
    for (k, x) in map.iter().filter(|(k, _)| !ORDER.contains(&k.as_str())) {
        push(k, x);
    }
    format!("{{{}}}", fields.join(","))
}

/// Lay rows out as runc does with Go's `tabwriter.NewWriter(w, 12, 1, 3,
/// ' ', 0)`: every column but the last is as wide as its widest cell plus 3
/// spaces, and at least 12.
pub fn tab_table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count() + 3).max(12);
        }
    }
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(c);
                let pad = width[i] - c.chars().count();
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.push('\n');
    }
    s
}

pub fn kill(root: &Path, id: &str, signal: Option<&str>, all: bool) -> Result<i32> {
    let sig = container::kill::parse_signal(signal.unwrap_or("SIGTERM"))?;
    container::kill::kill(root, id, sig, all)?;
    Ok(0)
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<i32> {
    container::delete::delete(root, id, force)?;
    Ok(0)
}
