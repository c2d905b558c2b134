//! [`ControlPlane`]: a `jotasu-controlplane` process this harness started,
//! on a unix socket in its own data dir (and optionally TLS on a free
//! 127.0.0.1 port). Killed by its PID and its data dir removed on drop.
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use jotasu_api::client::{Client, ServerUrl, TlsFiles};
use jotasu_controlplane::pki::PkiPaths;

use crate::error::{DevError, Result};
use crate::{bins::workspace_bin, process::die_with_spawner};

/// How to start a control plane.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also serve TLS on a free port of 127.0.0.1.
    pub tls: bool,
    /// Serve TLS on this address (in the control plane's network
    /// namespace), with its IP in the server certificate: where nodes join.
    pub listen: Option<SocketAddr>,
    /// Use these etcd endpoints instead of the embedded store.
    pub etcd_endpoints: Vec<String>,
    /// Extra arguments.
    pub args: Vec<String>,
    /// Run it inside this network namespace (`/run/netns/NAME`).
    pub netns: Option<String>,
    /// Its data dir (made if missing; left in place on drop: its owner
    /// removes it). Default: a fresh one in [`scratch_root`], removed on drop.
    pub data_dir: Option<PathBuf>,
    /// Append its stderr to this file (default: inherit this process's).
    pub log: Option<PathBuf>,
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    child: Option<Child>,
    /// Stopped with SIGSTOP ([`Self::pause`]) and not yet continued.
    paused: bool,
    options: Options,
    data_dir: PathBuf,
    tcp: Option<SocketAddr>,
    _dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts one in a fresh data dir and waits until it answers. Call it
    /// from a thread that outlives the server (it dies with its spawner).
    pub async fn start(options: Options) -> Result<Self> {
        let (data_dir, dir) = match &options.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(DevError::io("creating the data dir", d))?;
                (d.clone(), None)
            }
            None => {
                // Named with a run prefix, so that a SIGKILLed run's data
                // dir is swept like its cluster's (names::sweep_stale).
                let prefix = crate::names::scratch_prefix(&crate::names::fresh_prefix(), "cp-");
                let dir = tempfile::Builder::new()
                    .prefix(&prefix)
                    .tempdir_in(scratch_root())
                    .map_err(DevError::io(
                        "creating the control plane's data dir in",
                        scratch_root(),
                    ))?;
                (dir.path().to_owned(), Some(dir))
            }
        };
        let mut me = Self {
            child: None,
            paused: false,
            options,
            data_dir,
            tcp: None,
            _dir: dir,
        };
        me.restart().await?;
        Ok(me)
    }

    /// Starts it again on the same data dir (after [`Self::kill9`] or
    /// [`Self::terminate`]), on the same TCP port if it had one.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(DevError::State("the control plane is still running".into()));
        }
        let bin = workspace_bin("jotasu-controlplane", "JOTASU_CONTROLPLANE")?;
        let mut cmd = match &self.options.netns {
            // nsenter enters only the network namespace (ip netns exec would
            // also remount /sys) and execs the server: its PID is the server's.
            Some(ns) => crate::netns::enter(ns, bin),
            None => Command::new(bin),
        };
        cmd.arg("--data-dir").arg(&self.data_dir);
        if let Some(addr) = self.options.listen {
            self.tcp = Some(addr);
            cmd.arg("--listen")
                .arg(addr.to_string())
                .arg("--tls-san")
                .arg(addr.ip().to_string());
        } else if self.options.tls {
            let addr = match self.tcp {
                Some(a) => a,
                None => free_port()?,
            };
            self.tcp = Some(addr);
            cmd.arg("--listen").arg(addr.to_string());
        }
        if !self.options.etcd_endpoints.is_empty() {
            cmd.arg("--etcd-endpoints")
                .arg(self.options.etcd_endpoints.join(","));
        }
        cmd.args(&self.options.args);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        die_with_spawner(&mut cmd);
        let stderr = match &self.options.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(DevError::io("opening", path))?,
            ),
            None => Stdio::inherit(),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(DevError::spawn("jotasu-controlplane"))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(DevError::NotReady {
                    what: "jotasu-controlplane".into(),
                    why: format!("it exited: {status}"),
                });
            }
            // The unix socket answers first; the TCP (TLS) listener binds
            // just after it: wait for both.
            // Asked from where the control plane listens: from the root
            // namespace an underlay address would go out its default route.
            let tcp_ready = match (self.tcp, &self.options.netns) {
                (None, _) => true,
                (Some(addr), Some(ns)) => crate::netns::run_in(ns, move || {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                })
                .unwrap_or(false),
                (Some(addr), None) => tokio::net::TcpStream::connect(addr).await.is_ok(),
            };
            match self.client().await {
                Ok(_) if tcp_ready => return Ok(()),
                Ok(_) if Instant::now() > deadline => {
                    return Err(DevError::NotReady {
                        what: "jotasu-controlplane".into(),
                        why: "its TCP listener did not accept within 30 s".into(),
                    });
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) if Instant::now() > deadline => {
                    return Err(DevError::NotReady {
                        what: "jotasu-controlplane".into(),
                        why: format!("no answer within 30 s: {e}"),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The unix socket.
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("api.sock")
    }

    /// `unix:///…/api.sock`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `https://HOST:PORT`, if started with TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tcp.map(|a| format!("https://{a}"))
    }

    /// The admin TLS files the control plane wrote.
    pub fn admin_tls(&self) -> TlsFiles {
        let pki = PkiPaths::new(&self.data_dir);
        TlsFiles {
            certificate_authority: Some(pki.ca_cert()),
            client_certificate: Some(pki.admin_cert()),
            client_key: Some(pki.admin_key()),
        }
    }

    /// A client on the unix socket.
    pub async fn client(&self) -> Result<Client> {
        Client::connect_to(&ServerUrl::Unix(self.socket()), &TlsFiles::default())
            .await
            .map_err(DevError::api(format!("connecting to {}", self.url())))
    }

    /// The PID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it runs and is not paused: whether it can answer.
    pub fn is_serving(&self) -> bool {
        self.child.is_some() && !self.paused
    }

    /// Freezes it with SIGSTOP (a hung process: its sockets accept, nothing
    /// answers, its Lease goes unrenewed); whether it was sent.
    pub fn pause(&mut self) -> bool {
        let sent = self.signal(libc::SIGSTOP);
        self.paused |= sent;
        sent
    }

    /// Lets it run on with SIGCONT after [`Self::pause`]; whether it was sent.
    pub fn resume(&mut self) -> bool {
        let sent = self.signal(libc::SIGCONT);
        if sent {
            self.paused = false;
        }
        sent
    }

    fn signal(&self, signal: libc::c_int) -> bool {
        self.pid()
            .and_then(crate::process::ProcessRecord::of)
            .is_some_and(|p| p.signal(signal))
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) -> Result<()> {
        self.paused = false;
        if let Some(mut c) = self.child.take() {
            let pid = format!("jotasu-controlplane (pid {})", c.id());
            c.kill()
                .and_then(|()| c.wait())
                .map_err(DevError::io("killing", pid))?;
        }
        Ok(())
    }

    /// SIGTERM, and wait for a graceful exit (SIGKILL after 30 s).
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        // A paused process must run to act on SIGTERM.
        if self.paused {
            self.resume();
        }
        let mut c = self
            .child
            .take()
            .ok_or_else(|| DevError::State("the control plane is not running".into()))?;
        let what = format!("jotasu-controlplane (pid {})", c.id());
        match crate::process::terminate(&mut c, Duration::from_secs(30))
            .map_err(DevError::io("stopping", &what))?
        {
            Some(status) => Ok(status),
            None => Err(DevError::Timeout {
                what: format!("{what} exiting on SIGTERM"),
                within: Duration::from_secs(30),
            }),
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Where tests put data dirs: `$JOTASU_SCRATCH`, else the system temp dir.
pub fn scratch_root() -> PathBuf {
    std::env::var_os("JOTASU_SCRATCH").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// A free port on 127.0.0.1 (another process may take it first: rare).
pub fn free_port() -> Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(DevError::io("finding a free port on", "127.0.0.1"))
}
