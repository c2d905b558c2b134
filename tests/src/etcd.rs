//! [`EtcdServer`]: a throwaway etcd on 127.0.0.1 for the store's
//! conformance tests — its own ports, data dir and name; killed (by the PID
//! it started) and removed on drop. Never touches any other etcd.
use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Debian's etcd (3.4).
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// A running etcd this harness started.
#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    client_url: String,
    name: String,
    ports: (u16, u16),
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts an etcd, or explains why not: `Ok(None)` (after a loud
    /// message) when `/usr/bin/etcd` is missing, but an error when `CI=true`
    /// — a CI run must not pass by skipping. Call it from the test's own
    /// thread: the server is killed when the thread that started it dies.
    pub fn start_or_skip() -> anyhow::Result<Option<Self>> {
        if !Path::new(ETCD_BIN).exists() {
            let msg = format!(
                "!!! {ETCD_BIN} is missing: the etcd store tests cannot run (apt-get install etcd-server) !!!"
            );
            eprintln!("{msg}");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("{msg}");
            }
            return Ok(None);
        }
        // Free ports are found by binding port 0; another process may grab
        // one before etcd does, so retry a few times.
        let mut last = None;
        for _ in 0..3 {
            match Self::start() {
                Ok(s) => return Ok(Some(s)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// Starts an etcd on two free loopback ports and waits until it is
    /// healthy.
    pub fn start() -> anyhow::Result<Self> {
        let (client, peer) = (free_port()?, free_port()?);
        let dir = tempfile::Builder::new().prefix("jotasu-etcd-").tempdir()?;
        let name = format!(
            "jotasu-test-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("etcd")
        );
        let child = spawn(dir.path(), &name, client, peer)?;
        let mut me = Self {
            child,
            client_url: format!("http://127.0.0.1:{client}"),
            name,
            ports: (client, peer),
            _dir: dir,
        };
        me.wait_healthy(SocketAddr::from((Ipv4Addr::LOCALHOST, client)))?;
        Ok(me)
    }

    /// Stops etcd (by its PID) and starts it again on the same data and
    /// ports, waiting until it is healthy: what a client sees of an etcd
    /// restart.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill()?;
        }
        self.child.wait()?;
        let (client, peer) = self.ports;
        self.child = spawn(self._dir.path(), &self.name, client, peer)?;
        self.wait_healthy(SocketAddr::from((Ipv4Addr::LOCALHOST, client)))
    }

    /// The PID of the etcd process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    fn wait_healthy(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                let log =
                    std::fs::read_to_string(self._dir.path().join("etcd.log")).unwrap_or_default();
                bail!("etcd exited with {status} before becoming healthy:\n{log}");
            }
            if health(addr).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("etcd on {addr} not healthy after 20 s")
    }
}

/// Asks etcd's `/health` endpoint.
fn health(addr: SocketAddr) -> anyhow::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body.contains("\"health\":\"true\""))
}

/// Spawns etcd on `dir`'s data with its name and ports.
fn spawn(dir: &Path, name: &str, client: u16, peer: u16) -> anyhow::Result<Child> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new(ETCD_BIN);
    cmd.arg("--name")
        .arg(name)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("{name}={peer_url}"))
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--log-level")
        .arg("warn")
        .env_remove("ETCDCTL_API")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("etcd.log"))
                .context("opening etcd.log")?,
        ));
    crate::process::die_with_spawner(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {ETCD_BIN}"))?;
    Ok(child)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Only the child we spawned, by its PID.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
