//! [`ContainerdGuard`]: a private containerd for one test run — its root,
//! state and sockets under per-run directories, the CRI plugin off — that
//! removes every task, container and image of every namespace, stops, and
//! unmounts and deletes its directories on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{DevError, Result};

use crate::process::die_with_spawner;

/// A running containerd this harness started.
#[derive(Debug)]
pub struct ContainerdGuard {
    child: Option<Child>,
    run_dir: PathBuf,
    root_dir: PathBuf,
    socket: PathBuf,
}

fn ctr(socket: &Path, args: &[&str]) -> String {
    Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl ContainerdGuard {
    /// Starts containerd for the run `prefix` and waits until it answers.
    pub fn start(prefix: &str) -> Result<Self> {
        let run_dir = PathBuf::from("/run/jotasu-test").join(prefix);
        let root_dir = PathBuf::from("/var/lib/jotasu-test").join(prefix);
        for d in [&run_dir, &root_dir] {
            std::fs::create_dir_all(d).map_err(DevError::io("creating", d))?;
        }
        let socket = run_dir.join("containerd.sock");
        let config = run_dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{root}/opt\"\n",
                root = root_dir.join("root").display(),
                state = run_dir.join("state").display(),
                sock = socket.display(),
            ),
        )
        .map_err(DevError::io("writing", &config))?;
        let log_path = run_dir.join("containerd.log");
        let log = std::fs::File::create(&log_path).map_err(DevError::io("creating", &log_path))?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        die_with_spawner(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| DevError::Spawn {
                program: "containerd".into(),
                source,
                hint: " (apt install containerd runc)",
            })?;
        let mut me = Self {
            child: Some(child),
            run_dir,
            root_dir,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if me.socket.exists() && !ctr(&me.socket, &["version"]).contains("Server:") {
                // not yet answering
            } else if me.socket.exists() {
                return Ok(me);
            }
            if let Some(c) = me.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                me.child = None;
                return Err(DevError::NotReady {
                    what: "containerd".into(),
                    why: format!(
                        "it exited ({status}); see {}",
                        me.run_dir.join("containerd.log").display()
                    ),
                });
            }
            if Instant::now() > deadline {
                return Err(DevError::Timeout {
                    what: format!("containerd answering on {}", me.socket.display()),
                    within: Duration::from_secs(20),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Removes every task, container, image and snapshot in every namespace.
    pub fn clear(&self) {
        for ns in ctr(&self.socket, &["namespaces", "ls", "-q"]).lines() {
            for t in ctr(&self.socket, &["-n", ns, "tasks", "ls", "-q"]).lines() {
                ctr(
                    &self.socket,
                    &["-n", ns, "tasks", "kill", "-a", "-s", "SIGKILL", t],
                );
            }
            for c in ctr(&self.socket, &["-n", ns, "containers", "ls", "-q"]).lines() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline
                    && ctr(&self.socket, &["-n", ns, "tasks", "ls", "-q"])
                        .lines()
                        .any(|l| l == c)
                {
                    ctr(&self.socket, &["-n", ns, "tasks", "rm", "-f", c]);
                    std::thread::sleep(Duration::from_millis(50));
                }
                ctr(&self.socket, &["-n", ns, "containers", "rm", c]);
            }
        }
    }
}

/// Kills the shims our containerd started (their `-address` is its
/// socket) that are still alive, and removes their sockets.
fn kill_shims(socket: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let address = socket.display().to_string();
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
            || !args
                .windows(2)
                .any(|w| w[0] == "-address" && w[1] == address)
        {
            continue;
        }
        let arg = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
        // SAFETY: kill on a shim process our own containerd started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if let (Some(ns), Some(id)) = (arg("-namespace"), arg("-id")) {
            use sha2::Digest as _;
            let hash = sha2::Sha256::digest(format!("{address}/{ns}/{id}").as_bytes());
            let _ = std::fs::remove_file(format!("/run/containerd/s/{hash:x}"));
        }
    }
}

/// Where the runc shim of containerd 1.6 keeps the OCI runtime's state, one directory
/// per namespace, whatever containerd's own state directory: emptied when
/// the namespace's tasks are deleted, never removed by containerd.
const RUNC_ROOT: &str = "/run/containerd/runc";

/// Removes what the runs `owned` accepts (by prefix) left of their
/// containerd: a killed run's containerd died with it (PDEATHSIG), but its
/// shims and containers live on. Kills those shims, deletes the containers
/// by runc's state of their namespaces (`runc delete --force`: processes,
/// cgroups, state), then unmounts and removes `/run/jotasu-test/<prefix>`
/// and `/var/lib/jotasu-test/<prefix>`. [`crate::names::sweep_stale`]
/// passes the runs whose process is gone, `jotactl dev down` one cluster.
pub fn remove_leftovers(owned: &dyn Fn(&str) -> bool) {
    if let Ok(dir) = std::fs::read_dir("/run/jotasu-test") {
        for e in dir.flatten() {
            if owned(&e.file_name().to_string_lossy()) {
                kill_shims(&e.path().join("containerd.sock"));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(RUNC_ROOT) {
        for ns in dir.flatten() {
            if !owned(&ns.file_name().to_string_lossy()) {
                continue;
            }
            for c in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                // The agent runs containers with crun when it can (its state
                // has no state.json) and with runc otherwise.
                let runtime = if c.path().join("state.json").exists() {
                    "runc"
                } else {
                    "crun"
                };
                let _ = Command::new(runtime)
                    .arg("--root")
                    .arg(ns.path())
                    .args(["delete", "--force"])
                    .arg(c.file_name())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = std::fs::remove_dir(ns.path());
        }
    }
    for base in ["/run/jotasu-test", "/var/lib/jotasu-test"] {
        let Ok(dir) = std::fs::read_dir(base) else {
            continue;
        };
        for e in dir.flatten() {
            if owned(&e.file_name().to_string_lossy()) {
                crate::mounts::unmount_below(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

impl Drop for ContainerdGuard {
    fn drop(&mut self) {
        let namespaces: Vec<String> = if self.child.is_some() {
            let ns = ctr(&self.socket, &["namespaces", "ls", "-q"]);
            self.clear();
            ns.lines().map(str::to_owned).collect()
        } else {
            Vec::new()
        };
        if let Some(mut child) = self.child.take() {
            let _ = crate::process::terminate(&mut child, Duration::from_secs(10));
        }
        kill_shims(&self.socket);
        for d in [&self.run_dir, &self.root_dir] {
            crate::mounts::unmount_below(d);
            let _ = std::fs::remove_dir_all(d);
        }
        for ns in namespaces
            .iter()
            .filter(|n| !n.is_empty() && !n.contains('/'))
        {
            // Only when empty, as runc leaves it once its containers are gone.
            let _ = std::fs::remove_dir(Path::new(RUNC_ROOT).join(ns));
        }
    }
}
