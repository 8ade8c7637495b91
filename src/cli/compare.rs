//! `vessel compare`: hand over to the vessel-compare program, which lives in
//! its own crate so this binary does not carry it.

use libvessel::{Error, Result};
use std::os::unix::process::CommandExt;

pub fn exec_compare(args: &[String]) -> Result<i32> {
    let tool = libvessel::companion::find(
        "vessel-compare",
        "VESSEL_COMPARE",
        None,
        "build it (cargo build --bin vessel-compare) or set VESSEL_COMPARE",
    )
    .map_err(Error::Other)?;
    let mut cmd = std::process::Command::new(&tool);
    cmd.args(args);
    // The tool compares this vessel, not whichever one it would find.
    if let Some(me) = libvessel::process::sealed_exe::host_exe() {
        cmd.env("VESSEL_BIN", me);
    }
    let err = cmd.exec();
    Err(Error::Other(format!("exec {}: {err}", tool.display())))
}
