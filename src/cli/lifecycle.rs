//! spec, create, start, run, state, list, kill, delete.

use super::{out, CreateArgs};
use crate::container::{self, create::CreateOptions};
use crate::{Error, Result};
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
        crate::spec::ROOTLESS_SPEC
    } else {
        crate::spec::DEFAULT_SPEC
    };
    std::fs::write(&path, text).map_err(Error::io("write", &path))?;
    Ok(0)
}

pub fn options(a: CreateArgs, argv0: &str, cgroups_disabled: bool) -> CreateOptions {
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
    }
}

pub fn create(root: &Path, a: CreateArgs, argv0: &str, no_cgroup: bool) -> Result<i32> {
    container::create::create(root, options(a, argv0, no_cgroup))?;
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
) -> Result<i32> {
    let opts = options(a, argv0, no_cgroup);
    if detach {
        let id = opts.id.clone();
        container::create::create(root, opts)?;
        if let Err(e) = container::start::start(root, &id) {
            let _ = container::delete::delete(root, &id, true);
            return Err(e);
        }
        return Ok(0);
    }
    crate::container::run::run_foreground(root, opts, keep)
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
        if let Ok((dir, st)) = container::load(root, &id) {
            rows.push(st.oci_json(&dir));
        }
    }
    if quiet {
        for r in &rows {
            out(&format!("{}\n", r["id"].as_str().unwrap_or("")));
        }
        return Ok(0);
    }
    if format == "json" {
        out(&format!("{}\n", serde_json::Value::Array(rows)));
        return Ok(0);
    }
    let mut s = String::from("ID          PID         STATUS      BUNDLE      CREATED     OWNER\n");
    for r in &rows {
        s.push_str(&format!(
            "{:<12}{:<12}{:<12}{:<12}{:<12}{}\n",
            r["id"].as_str().unwrap_or(""),
            r["pid"],
            r["status"].as_str().unwrap_or(""),
            r["bundle"].as_str().unwrap_or(""),
            r["created"].as_str().unwrap_or(""),
            r["owner"].as_str().unwrap_or("")
        ));
    }
    out(&s);
    Ok(0)
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
