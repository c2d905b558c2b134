//! [`EtcdServer`]: a throwaway one-member etcd on 127.0.0.1 for the store's
//! conformance tests and the API tests on etcd — its own ports, data dir
//! and name (a [`jotasu_dev::etcd::EtcdCluster`] of one); killed (by the PID
//! it started) and removed on drop. Never touches any other etcd.

use std::path::Path;

use anyhow::{Context as _, bail};
use jotasu_dev::controlplane::free_port;
pub use jotasu_dev::etcd::ETCD_BIN;
use jotasu_dev::etcd::{EtcdCluster, MemberSpec};

/// A running etcd this harness started.
#[derive(Debug)]
pub struct EtcdServer {
    cluster: EtcdCluster,
    client_url: String,
    _dir: tempfile::TempDir,
}

/// Whether etcd is here: a loud message when it is not, and an error
/// under `CI=true` (a CI run must not pass by skipping).
pub fn etcd_or_skip() -> anyhow::Result<bool> {
    if Path::new(ETCD_BIN).exists() {
        return Ok(true);
    }
    let msg = format!(
        "!!! {ETCD_BIN} is missing: the etcd tests cannot run (apt-get install etcd-server) !!!"
    );
    eprintln!("{msg}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{msg}");
    }
    Ok(false)
}

impl EtcdServer {
    /// Starts an etcd, or explains why not ([`etcd_or_skip`]). Call it from
    /// the test's own thread: the server is killed when the thread that
    /// started it dies.
    pub fn start_or_skip() -> anyhow::Result<Option<Self>> {
        if !etcd_or_skip()? {
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
        let prefix = jotasu_dev::names::fresh_prefix();
        let dir = tempfile::Builder::new()
            .prefix(&jotasu_dev::names::scratch_prefix(&prefix, "etcd-"))
            .tempdir()?;
        let spec = MemberSpec {
            client: free_port()?,
            peer: free_port()?,
            metrics: None,
            netns: None,
        };
        let cluster =
            EtcdCluster::start(&prefix, dir.path(), vec![spec]).context("starting etcd")?;
        let client_url = cluster.client_urls().remove(0);
        Ok(Self {
            cluster,
            client_url,
            _dir: dir,
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// Stops etcd (SIGKILL, by its PID) and starts it again on the same
    /// data and ports, waiting until it is healthy: what a client sees of
    /// an etcd restart.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.cluster.restart(0).context("restarting etcd")
    }

    /// The PID of the etcd process (0 while it is stopped).
    pub fn pid(&self) -> u32 {
        self.cluster.pid(0).unwrap_or(0)
    }
}
