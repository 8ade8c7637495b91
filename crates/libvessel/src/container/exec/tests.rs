use super::*;
use serde_json::{json, Value};

fn container() -> Value {
    json!({
        "terminal": true,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                         "permitted": ["CAP_KILL"]},
        "noNewPrivileges": true
    })
}

#[test]
fn args_and_flags_override_the_container_process() {
    let opts = ExecOptions {
        args: vec!["id".into(), "-u".into()],
        env: vec!["FOO=bar".into()],
        cwd: Some("/tmp".into()),
        user: Some("1000:2000".into()),
        additional_gids: vec![5],
        caps: vec!["CAP_SYS_ADMIN".into()],
        ..Default::default()
    };
    let p = process_json(&container(), &opts).unwrap();
    assert_eq!(p["args"], json!(["id", "-u"]));
    assert_eq!(p["env"], json!(["PATH=/bin", "TERM=xterm", "FOO=bar"]));
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(p["user"]["uid"], 1000);
    assert_eq!(p["user"]["gid"], 2000);
    assert_eq!(p["user"]["additionalGids"], json!([5]));
    assert_eq!(p["terminal"], false);
    assert_eq!(
        p["capabilities"]["bounding"],
        json!(["CAP_KILL", "CAP_SYS_ADMIN"])
    );
    assert!(p["capabilities"]["ambient"].is_null());
}

#[test]
fn uid_only_keeps_the_container_gid() {
    let mut c = container();
    c["user"]["gid"] = json!(7);
    let opts = ExecOptions {
        args: vec!["id".into()],
        user: Some("1000".into()),
        ..Default::default()
    };
    let p = process_json(&c, &opts).unwrap();
    assert_eq!(p["user"], json!({"uid": 1000, "gid": 7}));
}

#[test]
fn bad_input_is_refused() {
    let base = ExecOptions {
        args: vec!["id".into()],
        ..Default::default()
    };
    let mut o = base.clone();
    o.cwd = Some("rel".into());
    assert!(process_json(&container(), &o).is_err());
    let mut o = base.clone();
    o.user = Some("bob".into());
    assert!(process_json(&container(), &o).is_err());
    let mut o = base.clone();
    o.caps = vec!["CAP_NOPE".into()];
    assert!(process_json(&container(), &o).is_err());
    let o = ExecOptions::default();
    assert!(process_json(&container(), &o).is_err());
}

#[test]
fn terminal_rules_match_runc() {
    assert!(check_terminal(true, true, false).is_err());
    assert!(check_terminal(false, true, true).is_err());
    assert!(check_terminal(true, false, true).is_err());
    assert!(check_terminal(true, true, true).is_ok());
    assert!(check_terminal(true, false, false).is_ok());
    assert!(check_terminal(false, false, false).is_ok());
}

#[test]
fn defaults_come_from_the_container() {
    let mut p = json!({"args": ["x"], "cwd": "/", "env": []});
    fill_defaults(&mut p, &container(), -1).unwrap_err();
    p["env"] = json!(["HOME=/x"]);
    fill_defaults(&mut p, &container(), -1).unwrap();
    assert_eq!(p["capabilities"], container()["capabilities"]);
    assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(p["env"], json!(["HOME=/x"]));
}

#[test]
fn home_from_passwd() {
    let pw = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
    assert_eq!(home_of(pw, 0), "/root");
    assert_eq!(home_of(pw, 65534), "/nonexistent");
    assert_eq!(home_of(pw, 5), "/");
}
