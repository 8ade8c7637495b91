//! The support matrix (runtime-spec/support-matrix.json) applied to a raw
//! config.json. oci-spec silently drops fields it does not model (runtime-spec
//! 1.3 additions, idmapped mounts) and vessel does not act on every field it
//! parses, so the raw JSON is walked here: an "ignored" field is accepted with
//! a warning in --log, a "rejected" one fails `create` before any side effect,
//! and a field the matrix does not know is ignored with a warning (the
//! runtime spec forbids failing on unknown properties).

use crate::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;

/// The matrix as shipped in the binary.
pub const SUPPORT_MATRIX: &str = include_str!("../../../../runtime-spec/support-matrix.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Supported,
    Ignored,
    Rejected,
}

/// One row of the matrix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Dotted path; `[]` stands for the elements of an array (`mounts[].options`).
    pub field: String,
    pub status: Status,
    /// Narrows the row to one string element of the array at `field`.
    #[serde(default)]
    pub value: Option<String>,
    /// A free-form object (annotations, sysctl): its keys are not fields.
    #[serde(default)]
    pub map: bool,
    /// "vm" for fields only VM mode reads.
    #[serde(default)]
    pub mode: Option<String>,
    /// Why the field is ignored or rejected (shown to the user).
    #[serde(default)]
    pub why: Option<String>,
    /// JSON pointer into the features document that reflects this field.
    #[serde(default)]
    pub feature: Option<String>,
    /// A config.json patch that sets the field (used by the tests).
    #[serde(default)]
    pub example: Option<Value>,
    #[serde(default)]
    pub note: Option<String>,
    /// What VM mode does with the field (every row says).
    pub vm: VmColumn,
}

/// What VM mode does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    /// Applied in the guest by vessel-agent (or read by VM mode itself).
    Supported,
    /// Applied on the host: to the VMM, its cgroup or network namespace,
    /// or by vessel (poststart/poststop hooks).
    Host,
    /// Given by the VM itself (the guest is a kernel of its own); the note
    /// says what is and is not done.
    Boundary,
    /// Warned in --log, as in container mode.
    Ignored,
    /// Not applied, with a note on the guest console (host bind mounts,
    /// until virtio-fs shares them).
    Skipped,
    /// VM-mode `create` refuses a value that means something, naming the
    /// field (`vm::fields`, or the matrix itself when rejected in both).
    Rejected,
}

/// A row's `vm` column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmColumn {
    pub status: VmStatus,
    #[serde(default)]
    pub note: Option<String>,
    /// A config.json patch the VM-mode test applies (when the row's own
    /// `example` does not fit VM mode or the row has none).
    #[serde(default)]
    pub example: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Matrix {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub description: String,
    pub fields: Vec<Entry>,
}

impl Matrix {
    /// The row for a field itself (not one of its values).
    pub fn field(&self, path: &str) -> Option<&Entry> {
        self.fields
            .iter()
            .find(|e| e.value.is_none() && e.field == path)
    }

    /// The row for one string value of the array at `path`.
    pub fn value(&self, path: &str, value: &str) -> Option<&Entry> {
        self.fields
            .iter()
            .find(|e| e.field == path && e.value.as_deref() == Some(value))
    }
}

/// The matrix, parsed once per process.
pub fn matrix() -> Result<&'static Matrix> {
    static MATRIX: OnceLock<std::result::Result<Matrix, String>> = OnceLock::new();
    MATRIX
        .get_or_init(|| serde_json::from_str(SUPPORT_MATRIX).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Other(format!("runtime-spec/support-matrix.json is broken: {e}")))
}

/// Check a raw config.json against the matrix: the warnings to log, or the
/// error for the first rejected field.
pub fn check(raw: &Value) -> Result<Vec<String>> {
    let mut walk = Walk {
        matrix: matrix()?,
        warnings: Vec::new(),
    };
    walk.children(raw, "")?;
    Ok(walk.warnings)
}

/// `check`, with the warnings written to the log (called by `load_bundle`).
pub fn enforce(raw: &Value) -> Result<()> {
    for w in check(raw)? {
        crate::logging::warn(&w);
    }
    Ok(())
}

struct Walk {
    matrix: &'static Matrix,
    warnings: Vec<String>,
}

impl Walk {
    fn warn(&mut self, msg: String) {
        // A field repeated in many mounts or hooks is reported once.
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// One field at `path` holding `v`.
    fn field(&mut self, v: &Value, path: &str) -> Result<()> {
        if v.is_null() {
            return Ok(()); // null is how serde reads an absent optional field
        }
        let Some(entry) = self.matrix.field(path) else {
            self.warn(format!("config.json: unknown field {path} is ignored"));
            return Ok(());
        };
        match entry.status {
            // An empty object or list asks for nothing.
            Status::Ignored | Status::Rejected if is_empty(v) => Ok(()),
            Status::Rejected => Err(rejection(entry, path)),
            Status::Ignored => {
                self.warn(ignored(entry, path));
                Ok(())
            }
            Status::Supported if entry.map => Ok(()),
            Status::Supported => self.children(v, path),
        }
    }

    /// The members of an object, or the elements of an array, at `path`.
    fn children(&mut self, v: &Value, path: &str) -> Result<()> {
        match v {
            Value::Object(members) => {
                for (key, child) in members {
                    let p = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.field(child, &p)?;
                }
            }
            Value::Array(items) => {
                let elements = format!("{path}[]");
                for item in items {
                    match item {
                        Value::String(s) => {
                            if let Some(entry) = self.matrix.value(path, s) {
                                match entry.status {
                                    Status::Supported => {}
                                    Status::Ignored => self.warn(ignored(entry, path)),
                                    Status::Rejected => return Err(rejection(entry, path)),
                                }
                            }
                        }
                        Value::Object(_) => self.children(item, &elements)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// "linux.intelRdt" or, for a value row, `mounts[].options "idmap"`.
fn subject(entry: &Entry, path: &str) -> String {
    match &entry.value {
        Some(v) => format!("{path} {v:?}"),
        None => path.to_owned(),
    }
}

fn rejection(entry: &Entry, path: &str) -> Error {
    Error::invalid(format!(
        "config.json: {} is not supported by vessel: {}",
        subject(entry, path),
        entry.why.as_deref().unwrap_or("not implemented")
    ))
}

fn ignored(entry: &Entry, path: &str) -> String {
    format!(
        "config.json: {} is ignored: {}",
        subject(entry, path),
        entry.why.as_deref().unwrap_or("not implemented")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matrix_parses_and_rows_are_unique() {
        let m = matrix().unwrap();
        let mut seen = std::collections::HashSet::new();
        for e in &m.fields {
            assert!(
                seen.insert((e.field.clone(), e.value.clone())),
                "duplicate row {} {:?}",
                e.field,
                e.value
            );
            if e.status != Status::Supported {
                assert!(e.why.is_some(), "{} needs a why", e.field);
                assert!(e.example.is_some(), "{} needs an example", e.field);
            }
            // VM mode warns what both modes warn, and refuses what the
            // matrix rejects; what it refuses on top is explained.
            match (e.status, e.vm.status) {
                (Status::Ignored, VmStatus::Ignored) | (Status::Rejected, VmStatus::Rejected) => {}
                (Status::Supported | Status::Ignored, VmStatus::Rejected)
                | (Status::Supported, VmStatus::Boundary) => {
                    assert!(
                        e.vm.note.is_some(),
                        "{}: the vm column needs a note",
                        e.field
                    )
                }
                (Status::Ignored | Status::Rejected, vm)
                | (Status::Supported, vm @ VmStatus::Ignored) => {
                    panic!("{} is {:?} but {vm:?} in VM mode", e.field, e.status)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn default_config_has_no_warnings() {
        let raw: Value = serde_json::from_str(crate::spec::DEFAULT_SPEC).unwrap();
        assert_eq!(check(&raw).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejected_field_names_itself() {
        let raw = json!({"ociVersion": "1.2.0", "linux": {"intelRdt": {"closID": "x"}}});
        let e = check(&raw).unwrap_err().to_string();
        assert!(e.contains("linux.intelRdt"), "{e}");
    }

    #[test]
    fn value_row_in_second_mount_is_found() {
        // idmap/ridmap are supported now (isolation::idmap); tmpcopyup is
        // still a value row (ignored with a warning).
        let raw = json!({"mounts": [
            {"destination": "/a", "options": ["ro", "ridmap"]},
            {"destination": "/b", "options": ["nosuid", "tmpcopyup"]}
        ]});
        let w = check(&raw).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("mounts[].options \"tmpcopyup\""), "{w:?}");
    }

    #[test]
    fn ignored_and_unknown_fields_warn_once() {
        let raw = json!({
            "process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 1}},
            "mounts": [
                {"destination": "/a", "options": ["tmpcopyup"], "x-new": 1},
                {"destination": "/b", "options": ["tmpcopyup"]}
            ],
            "linux": {"sysctl": {"net.ipv4.ip_forward": "1"}, "intelRdt": null, "netDevices": {}}
        });
        let w = check(&raw).unwrap();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w
            .iter()
            .any(|s| s.contains("process.ioPriority is ignored")));
        assert!(w
            .iter()
            .any(|s| s.contains("mounts[].options \"tmpcopyup\"")));
        assert!(w.iter().any(|s| s.contains("unknown field mounts[].x-new")));
    }
}
