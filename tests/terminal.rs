//! process.terminal: the pty master handed over --console-socket, and a
//! foreground `run` relaying its own pty. Run as root.
//! `VESSEL_TEST_RUNTIME=/usr/sbin/runc cargo test --test terminal` checks
//! the tests themselves against runc.

mod common;

use common::*;
use serde_json::json;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn console_socket_receives_pty_master() {
    require_root();
    let rt = Runtime::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo stdin-is-tty; read line; echo got:$line; exit 4",
    ]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    let (sock_path, receiver) = console_socket();
    let id = unique_id("tty");
    let out = rt.create(&b, &id, &["--console-socket", sock_path.to_str().unwrap()]);
    let (code, _, err) = triple(&out);
    assert_eq!(code, 0, "create: {err}");
    let mut m = receiver.join().unwrap();
    rt.ok(&["start", &id]);
    let mut acc = String::new();
    assert!(
        read_until(&mut m, &mut acc, "stdin-is-tty", T),
        "output so far: {acc:?}"
    );
    assert!(
        acc.lines().any(|l| l.trim() == "/dev/pts/0"),
        "tty output: {acc:?}"
    );
    m.write_all(b"hello\n").unwrap();
    assert!(
        read_until(&mut m, &mut acc, "got:hello", T),
        "output so far: {acc:?}"
    );
    assert!(rt.wait_status(&id, "stopped", T));
    rt.ok(&["delete", &id]);
    let _ = std::fs::remove_file(&sock_path);
}

#[test]
fn console_socket_pty_has_window_and_ctty() {
    require_root();
    let rt = Runtime::new();
    // The shell is the session leader with the pty as controlling terminal:
    // /dev/tty opens, and the foreground process group is its own.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo ctty > /dev/tty && echo ctty-ok; stat -c %t:%T /dev/pts/0; ls /dev/pts",
    ]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    let (sock_path, receiver) = console_socket();
    let id = unique_id("ctty");
    let out = rt.create(&b, &id, &["--console-socket", sock_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut m = receiver.join().unwrap();
    rt.ok(&["start", &id]);
    let mut acc = String::new();
    assert!(read_until(&mut m, &mut acc, "ctty-ok", T), "{acc:?}");
    // devpts of the container: major 136, and its own instance (only pts 0
    // and ptmx).
    assert!(read_until(&mut m, &mut acc, "ptmx", T), "{acc:?}");
    assert!(
        acc.contains("88:0"),
        "pts/0 is not a devpts node (136 = 0x88): {acc:?}"
    );
    assert!(rt.wait_status(&id, "stopped", T));
    rt.ok(&["delete", &id]);
    let _ = std::fs::remove_file(&sock_path);
}

#[test]
fn foreground_run_relays_its_own_pty() {
    require_root();
    if which("script").is_none() {
        skip("script(1) not installed");
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "tty; echo relay-ok; exit 5"]);
    b.spec["process"]["terminal"] = json!(true);
    b.write();
    let id = unique_id("fgtty");
    let inner = format!(
        "{} --root {} --log {} --log-format json run --bundle {} {}",
        runtime_bin().display(),
        rt.root.display(),
        rt.log.display(),
        b.dir.display(),
        id
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"]);
    cmd.stdin(std::process::Stdio::null());
    let out = run_with_timeout(cmd, T);
    let (code, stdout, stderr) = triple(&out);
    assert!(
        stdout.contains("relay-ok"),
        "stdout: {stdout:?} stderr: {stderr}"
    );
    // script(1) with a /dev/null stdin injects a NUL the pty echoes as "^@"
    // (runc shows the same), so the line may not start with the path.
    assert!(
        stdout.lines().any(|l| l.trim().ends_with("/dev/pts/0")),
        "stdout: {stdout:?}"
    );
    assert_eq!(code, 5, "stdout: {stdout:?} stderr: {stderr}");
    assert!(rt.status(&id).is_none(), "run left the container behind");
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// /dev/console is the console pty (the runtime spec's default device;
/// runc binds it too), with and without a user namespace.
#[test]
fn dev_console_is_the_pty() {
    require_root();
    for userns in [false, true] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "stat -c console=%t:%T /dev/console; stat -c tty=%t:%T $(tty); echo done",
        ]);
        b.spec["process"]["terminal"] = json!(true);
        if userns {
            b.spec["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 6_100_000, "size": 65536}]);
            b.spec["linux"]["uidMappings"] = map.clone();
            b.spec["linux"]["gidMappings"] = map;
        }
        b.write();
        let (sock_path, receiver) = console_socket();
        let id = unique_id("devconsole");
        let out = rt.create(&b, &id, &["--console-socket", sock_path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "userns={userns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = receiver.join().unwrap();
        rt.ok(&["start", &id]);
        let mut acc = String::new();
        assert!(
            read_until(&mut m, &mut acc, "done", T),
            "userns={userns}: {acc:?}"
        );
        let value = |key: &str| {
            acc.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(str::to_string))
        };
        let console = value("console=");
        assert!(
            console.is_some() && console == value("tty="),
            "userns={userns}: /dev/console is not the pty: {acc:?}"
        );
        assert!(
            console.as_deref().is_some_and(|c| c.starts_with("88:")),
            "userns={userns}: not a devpts node: {acc:?}"
        );
        assert!(rt.wait_status(&id, "stopped", T));
        rt.ok(&["delete", &id]);
        let _ = std::fs::remove_file(&sock_path);
    }
}
