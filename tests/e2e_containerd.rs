//! End-to-end: containerd 1.6 (`ctr`, the io.containerd.runc.v2 shim)
//! drives runc and vessel through the same list of checks (see
//! tests/e2e/mod.rs for the harness).

mod common;
mod e2e;

use e2e::containerd::Containerd;
use e2e::*;
use std::time::{Duration, Instant};

/// Ends with 42 on SIGTERM, otherwise keeps running.
const TERM_LOOP: &str = r#"trap "exit 42" TERM; while :; do sleep 0.2; done"#;

/// Every containerd check for one runtime, in its own namespace.
fn containerd_suite(ctd: &mut Containerd, image: &Image, rt: &RuntimeUnderTest) -> Vec<Check> {
    let mut c = Checks::new();
    let ns = format!("e2e-{}-{}", std::process::id(), rt.label);
    ctd.use_namespace(&ns);
    let ctd: &Containerd = ctd;
    let ns = ns.as_str();
    let runc_root = ctd
        .dir
        .join(format!("runc-root-{}", rt.label))
        .to_string_lossy()
        .into_owned();
    let fifo_dir = ctd
        .dir
        .join(format!("fifo-{}", rt.label))
        .to_string_lossy()
        .into_owned();
    let wrapper = rt.wrapper_str();
    // `ctr run [flags] IMAGE ID ARGS...` with the runtime under test.
    let ctr_run = |flags: &[&str], id: &str, args: &[&str]| -> Vec<String> {
        let mut v = strings(&[
            "run",
            "--runc-binary",
            &wrapper,
            "--runc-root",
            &runc_root,
            "--fifo-dir",
            &fifo_dir,
        ]);
        v.extend(strings(flags));
        v.push(IMAGE.to_string());
        v.push(id.to_string());
        v.extend(strings(args));
        v
    };
    let run_out = |flags: &[&str], id: &str, args: &[&str]| {
        let v = ctr_run(flags, id, args);
        ctd.ctr(ns, &v.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let oci_tar = image.oci_tar.to_string_lossy().into_owned();
    let imported = c.check("setup: ctr images import", || {
        ctd.ctr(ns, &["images", "import", &oci_tar])
            .stdout_if_ok("images import")?;
        Ok(String::new())
    });
    if !imported {
        return c.list;
    }

    c.check("run --rm echo", || {
        expect(
            run_out(&["--rm"], "echo", &["echo", "hello-e2e"]),
            0,
            "hello-e2e",
        )
    });
    c.check("exit status (sh -c 'exit 3')", || {
        expect(run_out(&["--rm"], "exit3", &["sh", "-c", "exit 3"]), 3, "")
    });

    c.check("missing command: run fails naming it", || {
        // The shim reports the last "level":"error" line of the runtime's --log.
        let out = run_out(&["--rm"], "nocmd", &["/no-such-cmd"]);
        let _ = ctd.ctr(ns, &["containers", "delete", "nocmd"]);
        if !out.ok() && out.stderr.contains("/no-such-cmd") {
            Ok(last_lines(&out.stderr, 1))
        } else {
            Err(out.brief())
        }
    });

    let id = "detached";
    let detached = c.check("run -d --memory-limit 64MiB", || {
        run_out(
            &["-d", "--memory-limit", "67108864"],
            id,
            &["sh", "-c", TERM_LOOP],
        )
        .stdout_if_ok("run -d")?;
        ctd.wait_status(ns, id, "RUNNING", Duration::from_secs(10))?;
        Ok(format!("{:?}", ctd.task(ns, id)))
    });
    let pid = || {
        ctd.task(ns, id)
            .map(|t| t.0)
            .filter(|p| *p > 0)
            .ok_or("no task pid")
    };
    let checks: Vec<(&str, CheckFn)> = vec![
        (
            "task exec output (--exec-id)",
            Box::new(|| {
                expect(
                    ctd.ctr(
                        ns,
                        &["task", "exec", "--exec-id", "e1", id, "echo", "from-exec"],
                    ),
                    0,
                    "from-exec",
                )
            }),
        ),
        (
            "task exec exit code (5)",
            Box::new(|| {
                expect(
                    ctd.ctr(
                        ns,
                        &["task", "exec", "--exec-id", "e2", id, "sh", "-c", "exit 5"],
                    ),
                    5,
                    "",
                )
            }),
        ),
        (
            "task ps lists the init pid",
            Box::new(|| {
                let p = pid()?;
                let out = ctd.ctr(ns, &["task", "ps", id]).stdout_if_ok("task ps")?;
                if out
                    .lines()
                    .skip(1)
                    .any(|l| l.split_whitespace().next() == Some(&p.to_string()))
                {
                    Ok(format!("{} processes", out.lines().count() - 1))
                } else {
                    Err(format!("pid {p} not in {out:?}"))
                }
            }),
        ),
        (
            "--memory-limit in the host cgroup",
            Box::new(|| {
                let v = host_cgroup_value(pid()?, "memory", "memory.limit_in_bytes", "memory.max")?;
                if v == "67108864" {
                    Ok(v)
                } else {
                    Err(format!("memory limit {v:?}, want 67108864"))
                }
            }),
        ),
        (
            "pause: PAUSED",
            Box::new(|| {
                ctd.ctr(ns, &["task", "pause", id])
                    .stdout_if_ok("task pause")?;
                ctd.wait_status(ns, id, "PAUSED", Duration::from_secs(5))?;
                Ok(String::new())
            }),
        ),
        (
            "resume: RUNNING, exec works",
            Box::new(|| {
                ctd.ctr(ns, &["task", "resume", id])
                    .stdout_if_ok("task resume")?;
                ctd.wait_status(ns, id, "RUNNING", Duration::from_secs(5))?;
                expect(
                    ctd.ctr(
                        ns,
                        &["task", "exec", "--exec-id", "e3", id, "echo", "thawed"],
                    ),
                    0,
                    "thawed",
                )
            }),
        ),
        (
            "kill (SIGTERM, trap exits 42) + delete",
            Box::new(|| {
                ctd.ctr(ns, &["task", "kill", id])
                    .stdout_if_ok("task kill")?;
                ctd.wait_status(ns, id, "STOPPED", Duration::from_secs(10))?;
                let del = ctd.ctr(ns, &["task", "delete", id]);
                if !del.ok() || !del.stderr.contains("exit code 42") {
                    return Err(format!(
                        "task delete should report exit code 42: {}",
                        del.brief()
                    ));
                }
                ctd.ctr(ns, &["containers", "delete", id])
                    .stdout_if_ok("containers delete")?;
                let left = ctd.ctr(ns, &["containers", "ls", "-q"]).stdout;
                if left.lines().any(|l| l.trim() == id) {
                    return Err(format!("container still listed: {left:?}"));
                }
                Ok("exit code 42".into())
            }),
        ),
    ];
    c.check_all_if(detached, "run -d", checks);

    c.check("kill -s SIGKILL (137) + delete", || {
        let k = "sigkill";
        run_out(&["-d"], k, &["sleep", "1000"]).stdout_if_ok("run -d")?;
        ctd.wait_status(ns, k, "RUNNING", Duration::from_secs(10))?;
        ctd.ctr(ns, &["task", "kill", "-s", "SIGKILL", k])
            .stdout_if_ok("task kill")?;
        ctd.wait_status(ns, k, "STOPPED", Duration::from_secs(10))?;
        let del = ctd.ctr(ns, &["task", "delete", k]);
        let _ = ctd.ctr(ns, &["containers", "delete", k]);
        if del.ok() && del.stderr.contains("exit code 137") {
            Ok("exit code 137".into())
        } else {
            Err(format!(
                "task delete should report exit code 137: {}",
                del.brief()
            ))
        }
    });
    c.check("run -t: tty is /dev/pts/0", || {
        let v = ctr_run(&["-t", "--rm"], "tty", &["tty"]);
        expect(
            ctd.ctr_tty(ns, &v.iter().map(String::as_str).collect::<Vec<_>>()),
            0,
            "/dev/pts/0",
        )
    });
    c.cleanup("cleanup: namespace emptied, nothing mounted", || {
        ctd.cleanup_namespace(ns)
    });
    c.list
}

#[test]
fn containerd_drives_runc_and_vessel() {
    common::require_root();
    if skip_without(&["containerd", "ctr", "containerd-shim-runc-v2"]) {
        return;
    }
    let dir = RunDir::new("containerd");
    let image = build_image(&dir.path).expect("build the busybox image");
    let rts = runtimes(&dir.path);
    let mut results = Vec::new();
    let mut ctd = Containerd::start(&dir.path).expect("start a private containerd");
    for rt in &rts {
        let t = Instant::now();
        let checks = containerd_suite(&mut ctd, &image, rt);
        results.push(SuiteResult {
            runtime: rt.label.clone(),
            checks,
            secs: t.elapsed().as_secs_f64(),
            argv_log: rt.argv_log.clone(),
        });
    }
    ctd.stop();
    let stopped = !ctd.running();
    drop(ctd);
    keep_argv_logs("containerd", &mut results);
    let path = dir.path.clone();
    drop(dir);
    assert!(stopped, "containerd still running after stop");
    assert!(!path.exists(), "run dir {} left behind", path.display());
    report_and_assert("containerd", &results);
}
