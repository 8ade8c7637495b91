//! End-to-end: Podman 4.3 + conmon drive runc and vessel through the same
//! list of checks (see tests/e2e/mod.rs for the harness).

mod common;
mod e2e;

use e2e::podman::Podman;
use e2e::*;
use std::time::Instant;

/// A container that ends with 0 on SIGTERM and otherwise keeps running.
const TERM_LOOP: &str = r#"trap "exit 0" TERM; while :; do sleep 0.2; done"#;
/// One that ends with 42 on SIGUSR1.
const USR1_LOOP: &str = r#"trap "exit 42" USR1; while :; do sleep 0.1; done"#;

/// Every Podman check for one runtime, in order.
fn podman_suite(base: &std::path::Path, image: &Image, rt: &RuntimeUnderTest) -> Vec<Check> {
    let mut c = Checks::new();
    let mut setup = None;
    c.check("setup: private store, podman import", || {
        setup = Some(Podman::setup(base, rt, image)?);
        Ok(String::new())
    });
    let Some(mut p) = setup else {
        return c.list;
    };
    let img = IMAGE;

    c.check("run --rm echo (< 10 s)", || {
        // Slower means podman waited out its 20 s conmon timeout: the exit
        // command failed or the runtime left the container looking alive.
        let t = Instant::now();
        let out = expect(
            p.podman(&["run", "--rm", img, "echo", "hello-e2e"]),
            0,
            "hello-e2e",
        )?;
        match t.elapsed().as_secs_f64() {
            s if s < 10.0 => Ok(out),
            s => Err(format!("took {s:.1}s")),
        }
    });
    c.check("exit code propagates (sh -c 'exit 3')", || {
        p.check_exit_code()
    });

    c.check("missing command: exit 127 naming it", || {
        p.check_missing_command()
    });

    // One long-lived container for exec, ps, top, inspect, pause, limits, stop, rm.
    let name = "e2e-detached";
    let detached = c.check("run -d (--memory 64m --pids-limit 50)", || {
        let out = p.podman(&[
            "run",
            "-d",
            "--name",
            name,
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            img,
            "sh",
            "-c",
            TERM_LOOP,
        ]);
        let id = out.stdout_if_ok("run -d")?;
        let status = p.inspect(name, "{{.State.Status}}")?;
        if status == "running" {
            Ok(id.trim().chars().take(12).collect())
        } else {
            Err(format!("state {status:?} after run -d"))
        }
    });
    let detached_checks: Vec<(&str, CheckFn)> = vec![
        (
            "exec output",
            Box::new(|| {
                expect(
                    p.podman(&["exec", name, "echo", "from-exec"]),
                    0,
                    "from-exec",
                )
            }),
        ),
        (
            "exec exit code (5)",
            Box::new(|| expect(p.podman(&["exec", name, "sh", "-c", "exit 5"]), 5, "")),
        ),
        (
            "ps lists it running",
            Box::new(|| {
                let out = p
                    .podman(&["ps", "--format", "{{.Names}} {{.Status}}"])
                    .stdout_if_ok("ps")?;
                match out.lines().find(|l| l.starts_with(name)) {
                    Some(l) if l.contains("Up") => Ok(l.to_string()),
                    _ => Err(format!("ps output {out:?}")),
                }
            }),
        ),
        (
            "top shows the workload",
            Box::new(|| {
                let out = p.podman(&["top", name]).stdout_if_ok("top")?;
                if out.contains("trap") {
                    Ok(format!("{} lines", out.lines().count()))
                } else {
                    Err(format!("top output {out:?}"))
                }
            }),
        ),
        (
            "inspect: running, live pid",
            Box::new(|| {
                let s = p.inspect(name, "{{.State.Running}} {{.State.Pid}}")?;
                let pid: i32 = s
                    .split(' ')
                    .nth(1)
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                if s.starts_with("true")
                    && pid > 0
                    && std::path::Path::new(&format!("/proc/{pid}")).exists()
                {
                    Ok(s)
                } else {
                    Err(format!("inspect gave {s:?}"))
                }
            }),
        ),
        (
            "--memory 64m in the host cgroup",
            Box::new(|| {
                let pid: i32 = p
                    .inspect(name, "{{.State.Pid}}")?
                    .parse()
                    .map_err(|e| format!("pid: {e}"))?;
                let v = host_cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max")?;
                if v == "67108864" {
                    Ok(v)
                } else {
                    Err(format!("memory limit {v:?}, want 67108864"))
                }
            }),
        ),
        (
            "--pids-limit 50 in the host cgroup",
            Box::new(|| {
                let pid: i32 = p
                    .inspect(name, "{{.State.Pid}}")?
                    .parse()
                    .map_err(|e| format!("pid: {e}"))?;
                let v = host_cgroup_value(pid, "pids", "pids.max", "pids.max")?;
                if v == "50" {
                    Ok(v)
                } else {
                    Err(format!("pids.max {v:?}, want 50"))
                }
            }),
        ),
        (
            "pause: state paused",
            Box::new(|| {
                p.podman(&["pause", name]).stdout_if_ok("pause")?;
                let s = p.inspect(name, "{{.State.Status}}")?;
                if s == "paused" {
                    Ok(s)
                } else {
                    Err(format!("state {s:?} after pause"))
                }
            }),
        ),
        (
            "unpause: running again, exec works",
            Box::new(|| {
                p.podman(&["unpause", name]).stdout_if_ok("unpause")?;
                let s = p.inspect(name, "{{.State.Status}}")?;
                if s != "running" {
                    return Err(format!("state {s:?} after unpause"));
                }
                expect(p.podman(&["exec", name, "echo", "thawed"]), 0, "thawed")
            }),
        ),
        (
            "stop (SIGTERM, trap exits 0)",
            Box::new(|| {
                p.podman(&["stop", "-t", "20", name]).stdout_if_ok("stop")?;
                let s = p.inspect(name, "{{.State.Status}} {{.State.ExitCode}}")?;
                if s == "exited 0" {
                    Ok(s)
                } else {
                    Err(format!("after stop: {s:?}, want \"exited 0\""))
                }
            }),
        ),
        (
            "rm",
            Box::new(|| {
                p.podman(&["rm", name]).stdout_if_ok("rm")?;
                let all = p
                    .podman(&["ps", "-a", "--format", "{{.Names}}"])
                    .stdout_if_ok("ps -a")?;
                if all.lines().any(|l| l == name) {
                    Err(format!("still listed: {all:?}"))
                } else {
                    Ok(String::new())
                }
            }),
        ),
    ];
    c.check_all_if(detached, "run -d", detached_checks);

    c.check("kill --signal USR1 (trap exits 42)", || {
        let n = "e2e-kill";
        p.podman(&["run", "-d", "--name", n, img, "sh", "-c", USR1_LOOP])
            .stdout_if_ok("run -d")?;
        // The trap must be set before the signal (sh is the container's
        // pid 1: without a handler USR1 is ignored): wait for a sleep of
        // the loop, a process of its own; sh's own args contain "sleep" too.
        let ready = wait_until(std::time::Duration::from_secs(10), || {
            let top = p.podman(&["top", n, "args"]);
            top.stdout
                .lines()
                .any(|l| l.trim_start().starts_with("sleep"))
                .then_some(())
        });
        let kill = p.podman(&["kill", "--signal", "USR1", n]);
        let wait = p.podman(&["wait", n]);
        let _ = p.podman(&["rm", "-f", "-t", "0", n]);
        if ready.is_none() {
            return Err("workload never reached its loop".into());
        }
        kill.stdout_if_ok("kill")?;
        expect(wait, 0, "42")
    });
    c.check("run -it: tty is /dev/pts/0", || p.check_tty());
    c.check("--cap-drop ALL: CapEff 0", || p.check_cap_drop_all());
    c.check("--read-only: / not writable, /tmp is", || {
        let script = "touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-ok";
        let out = p.podman(&["run", "--rm", "--read-only", img, "sh", "-c", script]);
        if out.stdout.contains("root-writable") {
            return Err(format!("wrote to read-only /: {}", out.brief()));
        }
        expect(out, 0, "tmp-ok")
    });
    c.check("--network none: only lo", || {
        let out = p.podman(&[
            "run",
            "--rm",
            "--network",
            "none",
            img,
            "cat",
            "/proc/net/dev",
        ]);
        let ifaces: Vec<String> = out
            .stdout
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
            .collect();
        if out.ok() && ifaces == ["lo"] {
            Ok("lo".into())
        } else {
            Err(format!("interfaces {ifaces:?}; {}", out.brief()))
        }
    });
    c.check("--user 65534:65534", || {
        expect(
            p.podman(&["run", "--rm", "--user", "65534:65534", img, "id"]),
            0,
            "uid=65534(nobody) gid=65534(nogroup)",
        )
    });
    c.check("-e and -w", || {
        let out = p.podman(&[
            "run",
            "--rm",
            "-e",
            "E2E_VAR=sea",
            "-w",
            "/tmp",
            img,
            "sh",
            "-c",
            "echo $E2E_VAR:$(pwd)",
        ]);
        expect(out, 0, "sea:/tmp")
    });
    c.cleanup("cleanup: nothing mounted or running", || p.cleanup());
    c.list
}

#[test]
fn podman_drives_runc_and_vessel() {
    common::require_root();
    if skip_without(&["podman", "conmon"]) {
        return;
    }
    let dir = RunDir::new("podman");
    let image = build_image(&dir.path).expect("build the busybox image");
    let mut results = Vec::new();
    for rt in runtimes(&dir.path) {
        let t = Instant::now();
        let checks = podman_suite(&dir.path, &image, &rt);
        results.push(SuiteResult {
            runtime: rt.label.clone(),
            checks,
            secs: t.elapsed().as_secs_f64(),
            argv_log: rt.argv_log.clone(),
        });
    }
    keep_argv_logs("podman", &mut results);
    let path = dir.path.clone();
    drop(dir);
    assert!(!path.exists(), "run dir {} left behind", path.display());
    report_and_assert("podman", &results);
}
