//! runtime-spec/support-matrix.json for the tests that check it against the
//! runtime (`support_matrix`, `support_matrix_vm`): its rows, how messages
//! name them, its example patches, and a `create` that cannot hang.

use super::{repo_dir, Bundle, Runtime};
use serde_json::Value;
use std::fs::{self, File};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub fn read_json(rel: &str) -> Value {
    let text = fs::read_to_string(repo_dir().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn matrix() -> Vec<Value> {
    read_json("runtime-spec/support-matrix.json")["fields"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn status(e: &Value) -> &str {
    e["status"].as_str().unwrap()
}

pub fn field(e: &Value) -> &str {
    e["field"].as_str().unwrap()
}

/// How the runtime's messages name a row: the path, plus the value for a
/// value row.
pub fn subject(e: &Value) -> String {
    match e["value"].as_str() {
        Some(v) => format!("{} {v:?}", field(e)),
        None => field(e).to_owned(),
    }
}

/// Apply a matrix example: objects merge, arrays append, scalars replace.
pub fn patch(target: &mut Value, p: &Value) {
    match (target, p) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(t), Value::Array(p)) => t.extend(p.iter().cloned()),
        (t, p) => *t = p.clone(),
    }
}

/// `create` with stdio in files (the waiting init keeps pipes open, so a
/// piped `create` would not return). Returns (success, stderr).
pub fn create(rt: &Runtime, b: &Bundle, id: &str) -> (bool, String) {
    let err_path = rt.root.with_extension(format!("{id}.stderr"));
    let mut child = rt
        .cmd(&["create", "--bundle", b.dir.to_str().unwrap(), id])
        .stdout(Stdio::null())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("create {id} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&err_path);
    (status.success(), stderr)
}

/// Is there a `level` line in --log whose message contains each of `what`?
pub fn logged(rt: &Runtime, level: &str, what: &[&str]) -> bool {
    rt.log_text().lines().any(|l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["level"] == level
                && v["msg"]
                    .as_str()
                    .is_some_and(|m| what.iter().all(|w| m.contains(w)))
        })
    })
}

/// Did `create` leave an `error` line naming `what` in --log?
pub fn logged_error(rt: &Runtime, what: &str) -> bool {
    logged(rt, "error", &[what])
}
