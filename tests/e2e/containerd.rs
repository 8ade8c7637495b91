//! A private containerd for one test run: its own config with root, state,
//! sockets and the opt dir under the run dir, the cri plugin off. Each
//! runtime gets its own namespace; Drop empties them and stops the daemon.

use super::*;

pub struct Containerd {
    pub dir: PathBuf,
    /// The grpc socket (maybe through a short /tmp symlink, see `start`).
    pub sock: String,
    sock_link: Option<PathBuf>,
    child: Option<Child>,
    namespaces: Vec<String>,
}

/// sun_path holds 108 bytes; leave room for ".ttrpc".
const MAX_SOCK_DIR: usize = 80;

impl Containerd {
    /// Write the config under `base/containerd`, start the daemon, wait for it.
    pub fn start(base: &Path) -> Result<Containerd, String> {
        let dir = base.join("containerd");
        fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        // Sockets live in the run dir; a long path is reached by a /tmp symlink.
        let (sock_dir, sock_link) = if dir.as_os_str().len() <= MAX_SOCK_DIR {
            (dir.clone(), None)
        } else {
            let link = PathBuf::from(format!("/tmp/vessel-e2e-ctd-{}", std::process::id()));
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(&dir, &link)
                .map_err(|e| format!("symlink {}: {e}", link.display()))?;
            (link.clone(), Some(link))
        };
        let d = dir.display();
        let s = sock_dir.display();
        let config = format!(
            "version = 2\n\
             root = \"{d}/root\"\n\
             state = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\"]\n\
             [grpc]\n  address = \"{s}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{s}/containerd.sock.ttrpc\"\n\
             [debug]\n  address = \"{s}/debug.sock\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
        );
        let cfg = dir.join("config.toml");
        fs::write(&cfg, config).map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let log = fs::File::create(dir.join("containerd.log"))
            .map_err(|e| format!("containerd.log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("containerd.log: {e}"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn containerd: {e}"))?;
        let mut c = Containerd {
            dir,
            sock: format!("{s}/containerd.sock"),
            sock_link,
            child: Some(child),
            namespaces: Vec::new(),
        };
        let up = wait_until(Duration::from_secs(20), || {
            let out = c.ctr_plain("default", &["version"], 10);
            out.ok().then_some(())
        });
        if up.is_none() {
            let log = fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default();
            c.stop();
            return Err(format!(
                "containerd did not come up: {}",
                last_lines(&log, 3)
            ));
        }
        Ok(c)
    }

    fn ctr_plain(&self, ns: &str, args: &[&str], timeout_secs: u64) -> Out {
        run(Run {
            argv: self.argv(ns, args),
            env: &[],
            cwd: &self.dir,
            timeout_secs,
            keep_stdin_open: false,
        })
    }

    fn argv(&self, ns: &str, args: &[&str]) -> Vec<String> {
        let mut v = strings(&["ctr", "-a", &self.sock, "-n", ns]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Remember a namespace so cleanup empties it.
    pub fn use_namespace(&mut self, ns: &str) {
        if !self.namespaces.iter().any(|n| n == ns) {
            self.namespaces.push(ns.to_string());
        }
    }

    /// `ctr -a SOCK -n NS args...`
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Out {
        self.ctr_plain(ns, args, CMD_TIMEOUT)
    }

    /// The same under script(1) for `run -t`; stdin stays open.
    pub fn ctr_tty(&self, ns: &str, args: &[&str]) -> Out {
        let inner = shell_quote(&self.argv(ns, args));
        run(Run {
            argv: strings(&["script", "-qec", &inner, "/dev/null"]),
            env: &[],
            cwd: &self.dir,
            timeout_secs: TTY_TIMEOUT,
            keep_stdin_open: true,
        })
    }

    /// (pid, status) of a task from `ctr task ls`.
    pub fn task(&self, ns: &str, id: &str) -> Option<(i32, String)> {
        let out = self.ctr(ns, &["task", "ls"]);
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    /// Wait for a task to reach `status`.
    pub fn wait_status(
        &self,
        ns: &str,
        id: &str,
        status: &str,
        limit: Duration,
    ) -> Result<(), String> {
        let mut last = None;
        wait_until(limit, || {
            last = self.task(ns, id).map(|t| t.1);
            (last.as_deref() == Some(status)).then_some(())
        })
        .ok_or_else(|| format!("task {id} is {last:?}, want {status} within {limit:?}"))
    }

    /// Empty a namespace: tasks, containers, images; then kill whatever is
    /// left in its cgroups and remove them. Err lists what was left.
    pub fn cleanup_namespace(&self, ns: &str) -> Result<String, String> {
        let mut notes = Vec::new();
        let tasks = self.ctr(ns, &["task", "ls", "-q"]);
        for id in tasks
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let out = self.ctr(ns, &["task", "delete", "--force", id]);
            if !out.ok() {
                notes.push(format!("task delete -f {id}: {}", out.brief()));
            }
        }
        let containers = self.ctr(ns, &["containers", "ls", "-q"]);
        for id in containers
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let out = self.ctr(ns, &["containers", "delete", id]);
            if !out.ok() {
                notes.push(format!("containers delete {id}: {}", out.brief()));
            }
        }
        let _ = self.ctr(ns, &["images", "rm", "--sync", IMAGE]);
        let _ = self.ctr(ns, &["namespaces", "rm", ns]);
        // Shims of this namespace: their argv names it and our socket.
        let shims: Vec<i32> = pids_with_arg(&self.sock)
            .into_iter()
            .filter(|p| {
                let c = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&c).split('\0').any(|a| a == ns)
            })
            .collect();
        let mut problems = Vec::new();
        let left_tasks = self.ctr(ns, &["task", "ls", "-q"]).stdout;
        if !left_tasks.trim().is_empty() {
            problems.push(format!("tasks left: {:?}", left_tasks.trim()));
        }
        if !shims.is_empty() {
            problems.push(format!("shims left: {shims:?}"));
            kill_pids(&shims);
        }
        let cg_left = cgroup_mounts().iter().any(|(_, m)| m.join(ns).exists());
        kill_and_remove_cgroup(ns);
        if cg_left {
            notes.push(format!("removed the leftover cgroup dirs /{ns}"));
        }
        let mounts = mounts_under(&self.dir);
        if !mounts.is_empty() {
            problems.push(format!("mounts left: {mounts:?}"));
        }
        if problems.is_empty() {
            Ok(notes.join("; "))
        } else {
            problems.extend(notes);
            Err(problems.join("; "))
        }
    }

    /// Empty every namespace, stop the daemon, kill leftover shims, unmount.
    /// Idempotent: a second call (Drop after an explicit stop) does nothing
    /// but the process, cgroup and mount sweep.
    pub fn stop(&mut self) {
        // Cleanup commands get their full timeouts, budget or not.
        set_deadline(None);
        // ctr against a dead socket waits 10 s per call: only while it runs.
        if self.running() {
            for ns in self.namespaces.clone() {
                let _ = self.cleanup_namespace(&ns);
            }
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the containerd this run started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let done = wait_until(Duration::from_secs(10), || child.try_wait().ok().flatten());
            if done.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        kill_pids(&pids_with_arg(&self.sock));
        for ns in &self.namespaces {
            kill_and_remove_cgroup(ns);
        }
        unmount_all_under(&self.dir);
        if let Some(link) = self.sock_link.take() {
            let _ = fs::remove_file(link);
        }
    }

    /// Is the daemon this run started still running?
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}
