//! End-to-end, rootless: Podman 4.3 run by the unprivileged user
//! `vessel-rootless-test` drives runc and vessel through the same checks.
//! Rootless Podman runs conmon and the runtime as uid 0 of its own user
//! namespace (the user's id plus its /etc/subuid range), with no --root:
//! the runtime must see that it is confined (state under XDG_RUNTIME_DIR,
//! device nodes bound, no host cgroup) as runc does.

mod common;
mod e2e;

use common::test_user::{rootless_user, subid_start, USER};
use e2e::podman::{AsUser, Podman};
use e2e::*;
use std::time::Instant;

/// A container that ends with 0 on SIGTERM and otherwise keeps running.
const TERM_LOOP: &str = r#"trap "exit 0" TERM; while :; do sleep 0.2; done"#;

/// The detached container's checks: exec, exec as another user, top,
/// stop by SIGTERM, rm.
fn detached_checks<'a>(p: &'a Podman<'a>, name: &'a str) -> Vec<(&'a str, CheckFn<'a>)> {
    vec![
        (
            "exec output",
            Box::new(move || {
                expect(
                    p.podman(&["exec", name, "echo", "from-exec"]),
                    0,
                    "from-exec",
                )
            }),
        ),
        (
            "exec exit code (5)",
            Box::new(move || expect(p.podman(&["exec", name, "sh", "-c", "exit 5"]), 5, "")),
        ),
        (
            "exec --user 65534:65534",
            Box::new(move || {
                expect(
                    p.podman(&["exec", "--user", "65534:65534", name, "id", "-u"]),
                    0,
                    "65534",
                )
            }),
        ),
        (
            "top shows the workload",
            Box::new(move || {
                let out = p.podman(&["top", name]).stdout_if_ok("top")?;
                if out.contains("trap") {
                    Ok(format!("{} lines", out.lines().count()))
                } else {
                    Err(format!("top output {out:?}"))
                }
            }),
        ),
        (
            "stop: SIGTERM ends it with 0",
            Box::new(move || {
                p.podman(&["stop", "-t", "10", name]).stdout_if_ok("stop")?;
                let s = p.inspect(name, "{{.State.Status}} {{.State.ExitCode}}")?;
                if s == "exited 0" {
                    Ok(s)
                } else {
                    Err(format!("after stop: {s:?}"))
                }
            }),
        ),
        (
            "rm",
            Box::new(move || p.podman(&["rm", name]).stdout_if_ok("rm")),
        ),
    ]
}

/// Every rootless Podman check for one runtime, in order.
fn rootless_suite(
    base: &std::path::Path,
    image: &Image,
    rt: &RuntimeUnderTest,
    user: &AsUser,
) -> Vec<Check> {
    let mut c = Checks::new();
    let mut setup = None;
    c.check("setup: private store as the user, podman import", || {
        setup = Some(Podman::setup_as(base, rt, image, Some(user.clone()))?);
        Ok(String::new())
    });
    let Some(mut p) = setup else {
        return c.list;
    };
    let img = IMAGE;

    c.check("run --rm id: root in the container", || {
        expect(p.podman(&["run", "--rm", img, "id"]), 0, "uid=0(root)")
    });
    c.check("container root is the user on the host (uid_map)", || {
        // Read from inside: the map names the ids of podman's namespace's
        // parent, the host, where 0 must be the unprivileged user.
        let out = p.podman(&["run", "--rm", img, "cat", "/proc/self/uid_map"]);
        let first = out.stdout.lines().next().unwrap_or("").to_string();
        let f: Vec<&str> = first.split_whitespace().collect();
        if out.ok() && f.len() == 3 && f[0] == "0" && f[1] == user.uid.to_string() {
            Ok(first.trim().to_string())
        } else {
            Err(format!("uid_map {:?}; {}", out.stdout, out.brief()))
        }
    });
    c.check("exit code propagates (sh -c 'exit 3')", || {
        p.check_exit_code()
    });
    c.check("missing command: exit 127 naming it", || {
        p.check_missing_command()
    });
    let name = "e2e-rootless";
    let detached = c.check("run -d", || {
        let out = p.podman(&["run", "-d", "--name", name, img, "sh", "-c", TERM_LOOP]);
        out.stdout_if_ok("run -d")?;
        let status = p.inspect(name, "{{.State.Status}}")?;
        if status == "running" {
            Ok(status)
        } else {
            Err(format!("state {status:?} after run -d"))
        }
    });
    c.check_all_if(detached, "run -d", detached_checks(&p, name));
    c.check("run -it: tty is /dev/pts/0", || p.check_tty());
    c.check("--userns=keep-id: the user's own uid", || {
        let want = format!("uid={}", user.uid);
        expect(
            p.podman(&["run", "--rm", "--userns=keep-id", img, "id"]),
            0,
            &want,
        )
    });
    c.check("--cap-drop ALL: CapEff 0", || p.check_cap_drop_all());
    c.check("/dev/null is a working device", || {
        let out = p.podman(&[
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "echo x > /dev/null && head -c 4 /dev/zero | wc -c",
        ]);
        expect(out, 0, "4")
    });
    c.cleanup("cleanup: nothing running, no state left", || p.cleanup());
    c.list
}

#[test]
fn rootless_podman_drives_runc_and_vessel() {
    common::require_root();
    if skip_without(&["podman", "conmon", "newuidmap", "newgidmap", "setpriv"]) {
        return;
    }
    let (uid, gid) = rootless_user();
    // Rootless podman maps the container's ids 1.. to the user's subids.
    subid_start("/etc/subuid", "--add-subuids");
    subid_start("/etc/subgid", "--add-subgids");
    let user = AsUser {
        name: USER.to_string(),
        uid,
        gid,
    };
    let dir = RunDir::new("podman-rootless");
    let image = build_image(&dir.path).expect("build the busybox image");
    let mut results = Vec::new();
    for rt in runtimes(&dir.path) {
        let t = Instant::now();
        let checks = rootless_suite(&dir.path, &image, &rt, &user);
        results.push(SuiteResult {
            runtime: rt.label.clone(),
            checks,
            secs: t.elapsed().as_secs_f64(),
            argv_log: rt.argv_log.clone(),
        });
    }
    keep_argv_logs("podman-rootless", &mut results);
    let path = dir.path.clone();
    drop(dir);
    assert!(!path.exists(), "run dir {} left behind", path.display());
    report_and_assert("podman-rootless", &results);
}
