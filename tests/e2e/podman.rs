//! A private Podman for one runtime: its own containers.conf and
//! storage.conf (graphroot, runroot, tmp, events, locks under the run dir),
//! the busybox image imported, and a cleanup that leaves nothing mounted.
//! Run as root, or as an unprivileged user (rootless Podman: podman then
//! runs conmon and the runtime as uid 0 of its own user namespace).

use super::*;

/// The unprivileged user a rootless Podman runs as.
#[derive(Clone, Debug)]
pub struct AsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub struct Podman<'a> {
    pub dir: PathBuf,
    pub rt: &'a RuntimeUnderTest,
    /// Rootless: podman runs as this user (through setpriv).
    pub user: Option<AsUser>,
    env: Vec<(String, String)>,
    /// A short real directory in /tmp holding the runroot, made only when
    /// `dir/run` is too long for podman (see `short_runroot`).
    short_root: Option<PathBuf>,
    /// /tmp/conmon-term.* present before this podman ran (see `stale_console_sockets`).
    console_sockets_before: Vec<PathBuf>,
    cleaned: bool,
}

/// conmon makes its console socket as /tmp/conmon-term.XXXXXX (podman does
/// not pass TMPDIR on) and leaves it when the runtime never connects. The
/// ones this run left are new since `before` and refuse connections.
fn conmon_term_sockets() -> Vec<PathBuf> {
    fs::read_dir("/tmp")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("conmon-term."))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn stale_console_sockets(before: &[PathBuf]) -> Vec<PathBuf> {
    conmon_term_sockets()
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| std::os::unix::net::UnixStream::connect(p).is_err())
        .collect()
}

/// podman refuses a --runroot longer than 50 bytes ("the specified runroot is
/// longer than 50 characters"), and conmon's exit command passes --runroot, so
/// a long one makes every attached `podman run` wait out a 20 s conmon
/// timeout for a cleanup that failed. podman resolves symlinks before that
/// check, so a long runroot lives in a real short directory in /tmp instead.
const MAX_RUNROOT: usize = 50;

/// The runroot for the per-runtime `dir`: `dir/run`, or (when that is too
/// long) `/tmp/vessel-e2e-<pid>-<label>/run`, whose parent is also returned
/// so the cleanup removes it.
/// `short` forces the /tmp directory: a rootless podman ignores the
/// configured runroot and uses `$XDG_RUNTIME_DIR/containers`, so its
/// XDG_RUNTIME_DIR lives there too.
fn short_runroot(
    dir: &Path,
    label: &str,
    short: bool,
) -> Result<(PathBuf, Option<PathBuf>), String> {
    let run = dir.join("run");
    if !short && run.as_os_str().len() <= MAX_RUNROOT {
        return Ok((run, None));
    }
    let root = PathBuf::from(format!("/tmp/vessel-e2e-{}-{label}", std::process::id()));
    let run = root.join("run");
    fs::create_dir_all(&run).map_err(|e| format!("mkdir {}: {e}", run.display()))?;
    Ok((run, Some(root)))
}

fn hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_max
}

impl<'a> Podman<'a> {
    /// Write the private config under `base/<label>` and import the image.
    pub fn setup(
        base: &Path,
        rt: &'a RuntimeUnderTest,
        image: &Image,
    ) -> Result<Podman<'a>, String> {
        Self::setup_as(base, rt, image, None)
    }

    /// The same, with podman run as `user` (rootless) when given: the
    /// private dirs are the user's, with its HOME and XDG_RUNTIME_DIR there.
    pub fn setup_as(
        base: &Path,
        rt: &'a RuntimeUnderTest,
        image: &Image,
        user: Option<AsUser>,
    ) -> Result<Podman<'a>, String> {
        let dir = base.join(&rt.label);
        for sub in ["graph", "run", "tmp", "net", "vol", "imgtmp", "home"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("mkdir {}: {e}", dir.join(sub).display()))?;
        }
        let d = dir.to_string_lossy().into_owned();
        let (runroot, short_root) = short_runroot(&dir, &rt.label, user.is_some())?;
        // A rootless podman takes rootless_storage_path, not graphroot.
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/graph\"\n\
             rootless_storage_path = \"{d}/graph\"\nrunroot = \"{}\"\n",
            runroot.display()
        );
        // The runtime may not raise rlimits past the hard ones (no
        // CAP_SYS_RESOURCE here), and podman lowers its own NPROC to 32768.
        let nofile = hard_limit(libc::RLIMIT_NOFILE);
        let nproc = hard_limit(libc::RLIMIT_NPROC).min(32768);
        let conf = format!(
            "[containers]\n\
             netns = \"none\"\n\
             default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             [network]\n\
             network_config_dir = \"{d}/net\"\n\
             [engine]\n\
             runtime = \"{rt}\"\n\
             runtime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"youki\", \"krun\", \"{base}\"]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = \"{d}/events.log\"\n\
             tmp_dir = \"{d}/tmp\"\n\
             volume_path = \"{d}/vol\"\n\
             image_copy_tmp_dir = \"{d}/imgtmp\"\n\
             lock_type = \"file\"\n",
            rt = rt.wrapper_str(),
            base = rt.basename(),
        );
        let write = |name: &str, text: &str| {
            fs::write(dir.join(name), text).map_err(|e| format!("write {name}: {e}"))
        };
        write("storage.conf", &storage)?;
        write("containers.conf", &conf)?;
        let mut env = vec![
            (
                "CONTAINERS_CONF".to_string(),
                format!("{d}/containers.conf"),
            ),
            (
                "CONTAINERS_STORAGE_CONF".to_string(),
                format!("{d}/storage.conf"),
            ),
        ];
        if let (Some(u), Some(short)) = (&user, &short_root) {
            let xdg = short.join("xdg");
            fs::create_dir_all(&xdg).map_err(|e| format!("mkdir {}: {e}", xdg.display()))?;
            give_to_user(&dir, short, rt, u)?;
            // USER too: runc (and vessel) as uid 0 of a user namespace keep
            // state under XDG_RUNTIME_DIR unless USER says "root".
            for (k, v) in [
                ("HOME", format!("{d}/home")),
                ("XDG_RUNTIME_DIR", xdg.to_string_lossy().into_owned()),
                ("USER", u.name.clone()),
                ("LOGNAME", u.name.clone()),
            ] {
                env.push((k.to_string(), v));
            }
        }
        let p = Podman {
            dir,
            rt,
            user,
            env,
            short_root,
            console_sockets_before: conmon_term_sockets(),
            cleaned: false,
        };
        let tar = image.rootfs_tar.to_string_lossy().into_owned();
        p.podman(&["import", "--change", r#"CMD ["/bin/sh"]"#, &tar, IMAGE])
            .stdout_if_ok("podman import")?;
        Ok(p)
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(u) = &self.user {
            v.extend([
                "setpriv".to_string(),
                format!("--reuid={}", u.uid),
                format!("--regid={}", u.gid),
                "--init-groups".to_string(),
            ]);
        }
        v.extend([
            "podman".to_string(),
            "--runtime".to_string(),
            self.rt.wrapper_str(),
        ]);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// `podman --runtime WRAPPER args...` (cwd = the private dir: conmon drops
    /// an `oom` file into its working directory).
    pub fn podman(&self, args: &[&str]) -> Out {
        run(Run {
            argv: self.argv(args),
            env: &self.env,
            cwd: &self.dir,
            timeout_secs: CMD_TIMEOUT,
            keep_stdin_open: false,
        })
    }

    /// The same under script(1), so podman gets a real terminal; stdin stays open.
    pub fn podman_tty(&self, args: &[&str]) -> Out {
        let inner = shell_quote(&self.argv(args));
        run(Run {
            argv: strings(&["script", "-qec", &inner, "/dev/null"]),
            env: &self.env,
            cwd: &self.dir,
            timeout_secs: TTY_TIMEOUT,
            keep_stdin_open: true,
        })
    }

    /// `podman inspect --format F ID`, trimmed.
    pub fn inspect(&self, id: &str, format: &str) -> Result<String, String> {
        self.podman(&["inspect", "--format", format, id])
            .stdout_if_ok("podman inspect")
            .map(|s| s.trim().to_string())
    }

    /// Remove every container, reset the private store, then make sure no
    /// process, cgroup or mount of this podman is left. Err lists leftovers.
    pub fn cleanup(&mut self) -> Result<String, String> {
        self.cleaned = true;
        // Cleanup commands get their full timeouts, budget or not.
        set_deadline(None);
        let mut notes = Vec::new();
        let ids = self.container_ids();
        let rm = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if !rm.ok() {
            notes.push(format!("rm -af: {}", rm.brief()));
        }
        // Whatever the runtime failed to stop: its conmons (their argv names
        // our dir) and the container cgroups podman made.
        let d = self.dir.to_string_lossy().into_owned();
        let short = self
            .short_root
            .as_ref()
            .map(|l| l.to_string_lossy().into_owned());
        let ours = || {
            let mut v = pids_with_arg(&d);
            if let Some(l) = &short {
                v.extend(pids_with_arg(l));
            }
            v
        };
        kill_pids(&ours());
        for id in &ids {
            kill_and_remove_cgroup(&format!("libpod_parent/libpod-{id}"));
        }
        // A rootless podman keeps its user namespace alive in a pause
        // process (catatonit -P) whose pid is in tmp_dir.
        let pause = fs::read_to_string(self.dir.join("tmp/pause.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let reset = self.podman(&["system", "reset", "--force"]);
        if !reset.ok() {
            notes.push(format!("system reset: {}", reset.brief()));
        }
        if let Some(pid) = pause {
            kill_pids(&[pid]);
        }
        if let (Some(_), Some(short)) = (&self.user, &self.short_root) {
            let state = short.join("xdg").join(&self.rt.label);
            let left: Vec<String> = fs::read_dir(&state)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !left.is_empty() {
                notes.push(format!("state left in {}: {left:?}", state.display()));
                return Err(notes.join("; "));
            }
        }
        let mut left = unmount_all_under(&self.dir);
        if let Some(root) = &self.short_root {
            left.extend(unmount_all_under(root));
        }
        let procs = ours();
        for sock in stale_console_sockets(&self.console_sockets_before) {
            notes.push(format!("removed conmon's unused {}", sock.display()));
            let _ = fs::remove_file(sock);
        }
        if let Some(root) = self.short_root.take() {
            let _ = fs::remove_dir_all(root);
        }
        kill_pids(&procs);
        let mut problems = Vec::new();
        if !left.is_empty() {
            problems.push(format!("mounts left: {left:?}"));
        }
        if !procs.is_empty() {
            problems.push(format!("processes left: {procs:?}"));
        }
        if self.dir.join("graph").exists() {
            problems.push("graphroot still there after reset".to_string());
        }
        if problems.is_empty() {
            Ok(notes.join("; "))
        } else {
            problems.extend(notes);
            Err(problems.join("; "))
        }
    }

    /// Container ids from the store's directory (works even when podman fails).
    fn container_ids(&self) -> Vec<String> {
        fs::read_dir(self.dir.join("graph/overlay-containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Checks both Podman suites (as root and rootless) run the same way.
impl Podman<'_> {
    /// A workload's exit status comes back from `podman run`.
    pub fn check_exit_code(&self) -> Result<String, String> {
        expect(
            self.podman(&["run", "--rm", IMAGE, "sh", "-c", "exit 3"]),
            3,
            "",
        )
    }

    /// A missing command is exit 127 naming it: podman maps the runtime's
    /// --log error text ("not found") to 127.
    pub fn check_missing_command(&self) -> Result<String, String> {
        let out = self.podman(&["run", "--rm", IMAGE, "/no-such-cmd"]);
        if out.code == Some(127) && out.stderr.contains("/no-such-cmd") {
            Ok(last_lines(&out.stderr, 1))
        } else {
            Err(out.brief())
        }
    }

    /// `run -it` gives the workload a pty.
    pub fn check_tty(&self) -> Result<String, String> {
        expect(
            self.podman_tty(&["run", "--rm", "-it", IMAGE, "tty"]),
            0,
            "/dev/pts/0",
        )
    }

    /// `--cap-drop ALL` leaves no effective capability.
    pub fn check_cap_drop_all(&self) -> Result<String, String> {
        let out = self.podman(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            IMAGE,
            "grep",
            "CapEff",
            "/proc/self/status",
        ]);
        expect(out, 0, "0000000000000000")
    }
}

/// Hand the private dirs and the runtime's argv log to `u`; the run dir
/// and wrapper stay root's, readable by all.
fn give_to_user(
    dir: &Path,
    short_root: &Path,
    rt: &RuntimeUnderTest,
    u: &AsUser,
) -> Result<(), String> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&rt.argv_log)
        .map_err(|e| format!("create {}: {e}", rt.argv_log.display()))?;
    for p in [dir, &rt.argv_log, short_root] {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(p)
            .status()
            .map_err(|e| format!("run chown: {e}"))?;
        if !st.success() {
            return Err(format!("chown -R {} {}: {st}", u.name, p.display()));
        }
    }
    fs::set_permissions(short_root.join("xdg"), fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod xdg: {e}"))
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        if !self.cleaned {
            let _ = self.cleanup();
        }
    }
}
