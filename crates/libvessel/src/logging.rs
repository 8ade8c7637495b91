//! runc-style logging: text lines or JSON lines `{"level","msg","time"}` to
//! the `--log` file (containerd and Podman read the last error line), and
//! errors on stderr.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    path: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: Mutex<Config> = Mutex::new(Config {
    path: None,
    format: Format::Text,
    debug: false,
});

/// Set the log up; the `--log` file is created (or opened) right away, as
/// runc does, not only when there is something to write.
pub fn init(path: Option<PathBuf>, format: Format, debug: bool) {
    if let Some(p) = &path {
        // An unusable log file shows on the first error, on stderr.
        let _ = OpenOptions::new().create(true).append(true).open(p);
    }
    if let Ok(mut c) = CONFIG.lock() {
        *c = Config {
            path,
            format,
            debug,
        };
    }
}

pub fn debug_enabled() -> bool {
    CONFIG.lock().map(|c| c.debug).unwrap_or(false)
}

/// RFC 3339 UTC time with nanoseconds, computed without a date crate.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let t = vessel_common::time::civil_time(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn line(format: Format, level: &str, msg: &str) -> String {
    match format {
        Format::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": rfc3339_now()}).to_string()
        }
        Format::Text => format!(
            "time=\"{}\" level={level} msg=\"{}\"",
            rfc3339_now(),
            msg.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        ),
    }
}

fn write(level: &str, msg: &str) {
    let Ok(c) = CONFIG.lock() else { return };
    let Some(path) = &c.path else { return };
    let line = line(c.format, level, msg);
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// A debug line (with --debug only): to the `--log` file, or to stderr in
/// the same format when there is none (runc's logrus behaviour).
pub fn debug(msg: &str) {
    let Ok(c) = CONFIG.lock() else { return };
    if !c.debug {
        return;
    }
    let format = c.format;
    let to_file = c.path.is_some();
    drop(c);
    if to_file {
        write("debug", msg);
    } else {
        eprintln!("{}", line(format, "debug", msg));
    }
}

/// An error: to the log file, and to stderr.
pub fn error(msg: &str) {
    write("error", msg);
    eprintln!("vessel: {msg}");
}

/// An error for the log file only (clap already printed it on stderr).
pub fn error_to_log_only(msg: &str) {
    write("error", msg);
}

/// A warning: to the log file, and to stderr only with --debug.
pub fn warn(msg: &str) {
    write("warning", msg);
    if debug_enabled() {
        eprintln!("vessel: warning: {msg}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(951_782_400, 5),
            "2000-02-29T00:00:00.000000005Z"
        );
    }
}
