//! `features`: the OCI features document, runtime-spec/features.json with
//! what depends on the running kernel filled in.

use super::out;
use libvessel::{Error, Result};
use serde_json::Value;

pub const FEATURES: &str = include_str!("../../runtime-spec/features.json");

pub fn features() -> Result<i32> {
    let mut doc: Value = serde_json::from_str(FEATURES)
        .map_err(|e| Error::Other(format!("the built-in features.json: {e}")))?;
    set_idmap(
        &mut doc,
        libvessel::isolation::idmap::kernel_supports_idmap(),
    );
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::Other(format!("print features: {e}")))?;
    out(&text);
    out("\n");
    Ok(0)
}

/// Id-mapped mounts need mount_setattr(2); without it the options go too.
fn set_idmap(doc: &mut Value, enabled: bool) {
    if let Some(flag) = doc.pointer_mut("/linux/mountExtensions/idmap/enabled") {
        *flag = Value::Bool(enabled);
    }
    if !enabled {
        if let Some(Value::Array(opts)) = doc.get_mut("mountOptions") {
            opts.retain(|o| o != "idmap" && o != "ridmap");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_mount_setattr_reports_no_idmap() {
        let mut doc: Value = serde_json::from_str(FEATURES).unwrap();
        set_idmap(&mut doc, false);
        assert_eq!(
            doc.pointer("/linux/mountExtensions/idmap/enabled"),
            Some(&Value::Bool(false))
        );
        let opts = doc["mountOptions"].as_array().unwrap();
        assert!(!opts.iter().any(|o| o == "idmap" || o == "ridmap"));
        let mut doc: Value = serde_json::from_str(FEATURES).unwrap();
        set_idmap(&mut doc, true);
        assert_eq!(
            doc.pointer("/linux/mountExtensions/idmap/enabled"),
            Some(&Value::Bool(true))
        );
    }
}
