//! `features`: the OCI features document, from runtime-spec/features.json.

use super::out;
use libvessel::Result;

pub const FEATURES: &str = include_str!("../../runtime-spec/features.json");

pub fn features() -> Result<i32> {
    out(FEATURES);
    if !FEATURES.ends_with('\n') {
        out("\n");
    }
    Ok(0)
}
