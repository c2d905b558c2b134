//! [`EtcdCluster`]: an etcd cluster this harness started — one member per
//! address, each optionally in a network namespace of its own (a
//! control-plane machine of a local cluster) or all on 127.0.0.1 (tests).
//! Members are killed by the PIDs this harness got and their data dirs
//! removed on drop; a member can be stopped, paused and restarted on its
//! data to play an outage. Plain HTTP ([`EtcdCluster::start`]) or TLS
//! with client certificates on the client and peer ports
//! ([`EtcdCluster::start_tls`], from a CA made for it: [`EtcdPki`]).
//! Never touches any other etcd.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{DevError, Result};
pub use crate::etcd_pki::EtcdPki;
use crate::process::{ProcessRecord, die_with_spawner};

/// Debian's etcd (3.4).
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// Where one member listens and runs.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// Its client address (clients connect to `http://ADDR`, with TLS
    /// `https://ADDR`).
    pub client: SocketAddr,
    /// Its peer address.
    pub peer: SocketAddr,
    /// Where it serves `/health` and `/metrics` over plain HTTP
    /// (`--listen-metrics-urls`, kubeadm's 2381): how its health is asked
    /// with TLS on. None: asked on the client address (plain HTTP only).
    pub metrics: Option<SocketAddr>,
    /// The network namespace it runs in (`/run/netns/NAME`), if any.
    pub netns: Option<String>,
}

#[derive(Debug)]
struct Member {
    name: String,
    spec: MemberSpec,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    initial: String,
    /// The token every member starts with: members with different tokens
    /// make different clusters (and refuse each other).
    token: String,
    /// Its CA and certificates, with TLS.
    pki: Option<EtcdPki>,
}

impl EtcdCluster {
    /// Starts one member per spec in `dir` (data dirs and logs), named
    /// `<prefix>etcd-<i>`, and waits until every member is healthy.
    pub fn start(prefix: &str, dir: &Path, specs: Vec<MemberSpec>) -> Result<Self> {
        Self::start_with(prefix, dir, specs, None)
    }

    /// As [`Self::start`], with TLS everywhere: a CA made in `dir/pki`
    /// ([`EtcdPki`]) signs each member's certificate (for its client
    /// address); members require client certificates of that CA from
    /// clients and peers. Every spec needs its `metrics` address (health
    /// is asked there).
    pub fn start_tls(prefix: &str, dir: &Path, specs: Vec<MemberSpec>) -> Result<Self> {
        if let Some(i) = specs.iter().position(|s| s.metrics.is_none()) {
            return Err(DevError::Invalid(format!(
                "etcd member {i}: TLS needs a plain-HTTP metrics address to ask its health"
            )));
        }
        let ips: Vec<_> = specs.iter().map(|s| s.client.ip()).collect();
        let pki = EtcdPki::create(&dir.join("pki"), &ips)?;
        Self::start_with(prefix, dir, specs, Some(pki))
    }

    fn start_with(
        prefix: &str,
        dir: &Path,
        specs: Vec<MemberSpec>,
        pki: Option<EtcdPki>,
    ) -> Result<Self> {
        if !Path::new(ETCD_BIN).exists() {
            return Err(DevError::NotReady {
                what: ETCD_BIN.into(),
                why: "it is missing: apt-get install etcd-server".into(),
            });
        }
        let members: Vec<Member> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Member {
                name: format!("{prefix}etcd-{i}"),
                data: dir.join(format!("etcd-{i}")),
                log: dir.join(format!("etcd-{i}.log")),
                spec,
                child: None,
            })
            .collect();
        let scheme = if pki.is_some() { "https" } else { "http" };
        let initial = members
            .iter()
            .map(|m| format!("{}={scheme}://{}", m.name, m.spec.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut me = Self {
            members,
            initial,
            token: format!("{prefix}etcd"),
            pki,
        };
        for i in 0..me.members.len() {
            me.spawn(i, "new")?;
        }
        for i in 0..me.members.len() {
            me.wait_healthy(i)?;
        }
        Ok(me)
    }

    fn spawn(&mut self, i: usize, state: &str) -> Result<()> {
        let initial = self.initial.clone();
        let token = self.token.clone();
        let m = &mut self.members[i];
        let mut cmd = match &m.spec.netns {
            Some(ns) => crate::netns::enter(ns, ETCD_BIN),
            None => Command::new(ETCD_BIN),
        };
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}", m.spec.client);
        let peer = format!("{scheme}://{}", m.spec.peer);
        if let Some(metrics) = m.spec.metrics {
            cmd.args(["--listen-metrics-urls", &format!("http://{metrics}")]);
        }
        if let Some(pki) = &self.pki {
            let (cert, key) = pki.member(i);
            let ca = pki.ca_cert();
            for side in ["", "peer-"] {
                cmd.arg(format!("--{side}cert-file"))
                    .arg(&cert)
                    .arg(format!("--{side}key-file"))
                    .arg(&key)
                    .arg(format!("--{side}trusted-ca-file"))
                    .arg(&ca)
                    .arg(format!("--{side}client-cert-auth"));
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &token])
            // Elections on a busy 2-core machine: etcd's defaults
            // (100 ms / 1 s) flap under load.
            .args(["--heartbeat-interval", "250", "--election-timeout", "2500"])
            .args(["--log-level", "warn"])
            .env_remove("ETCDCTL_API");
        let log = std::fs::File::create(&m.log).map_err(DevError::io("creating", &m.log))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        die_with_spawner(&mut cmd);
        m.child = Some(cmd.spawn().map_err(DevError::spawn(ETCD_BIN))?);
        Ok(())
    }

    fn wait_healthy(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = &mut self.members[i];
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                return Err(DevError::NotReady {
                    what: m.name.clone(),
                    why: format!("it exited with {status}: {log}"),
                });
            }
            let asked = m.spec.metrics.unwrap_or(m.spec.client);
            let healthy = match &m.spec.netns {
                Some(ns) => {
                    let addr = asked;
                    crate::netns::run_in(ns, move || health(addr)).unwrap_or(false)
                }
                None => health(asked),
            };
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(DevError::NotReady {
                    what: m.name.clone(),
                    why: format!(
                        "not healthy on {} after 30 s (a member is healthy only while most members run: a quorum); its log ends: {}",
                        m.spec.client,
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every member's client URL (`http://ADDR`, with TLS `https://ADDR`).
    pub fn client_urls(&self) -> Vec<String> {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://{}", m.spec.client))
            .collect()
    }

    /// Its CA and certificates, if it runs with TLS.
    pub fn pki(&self) -> Option<&EtcdPki> {
        self.pki.as_ref()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s PID, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members.get(i)?.child.as_ref().map(Child::id)
    }

    /// Kills member `i` (SIGKILL, by its PID) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members.get_mut(i).and_then(|m| m.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to member `i`; whether it was sent.
    pub fn signal(&self, i: usize, signal: libc::c_int) -> bool {
        self.pid(i)
            .and_then(ProcessRecord::of)
            .is_some_and(|p| p.signal(signal))
    }

    /// Sends `signal` to every member that runs (SIGSTOP all of them: an
    /// etcd outage; SIGCONT: its end); how many got it.
    pub fn signal_all(&self, signal: libc::c_int) -> usize {
        (0..self.members.len())
            .filter(|&i| self.signal(i, signal))
            .count()
    }

    /// Member `i`'s name (`<prefix>etcd-<i>`).
    pub fn member_name(&self, i: usize) -> Option<&str> {
        self.members.get(i).map(|m| m.name.as_str())
    }

    /// Member `i`'s log (its stderr).
    pub fn log(&self, i: usize) -> Option<&Path> {
        self.members.get(i).map(|m| m.log.as_path())
    }

    /// Starts member `i` again on its data (after [`Self::kill`]; a running
    /// member is killed first) and waits until it is healthy — which needs
    /// a quorum: with most members down it stays unhealthy, and the error
    /// says so while the member keeps running.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i, "existing")?;
        self.wait_healthy(i)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            // A paused member must run to die of SIGKILL promptly.
            self.signal(i, libc::SIGCONT);
            self.kill(i);
            let _ = std::fs::remove_dir_all(&self.members[i].data);
        }
    }
}

/// Asks a member's `/health` endpoint.
fn health(addr: SocketAddr) -> bool {
    let ask = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body.contains("\"health\":\"true\""))
    };
    ask().unwrap_or(false)
}
