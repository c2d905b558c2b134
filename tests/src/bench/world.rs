//! The benchmark's node without jotasu ([`PlainNode`]: the kube-proxy
//! baseline's world) and what both worlds share: tuning the client pod and
//! the load client running in it ([`TurnClient`]).
use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use super::client::{self, LoadResult};
use crate::{
    cgroup::Cgroup,
    cmd,
    lab::{CLIENT_IP, backend_ip, testbin_path},
    netns::NetNs,
    process::Spawned,
    topology::{Node, Pod},
    traffic,
};

/// A node shaped like [`crate::lab::Lab`] — a `client` pod and echo-server
/// pods `pod1..` at the same addresses — with no eBPF at all: packets are
/// forwarded by the node's own stack, and its nat table is the caller's.
/// Removes everything on drop (servers first, then the node).
#[derive(Debug)]
pub struct PlainNode {
    servers: Vec<Spawned>,
    /// The node and its pods (the client is the first pod).
    pub node: Node,
}

impl PlainNode {
    /// The node with `backends` server pods serving TCP on `ports`.
    pub fn new(backends: usize, ports: &[u16]) -> anyhow::Result<Self> {
        let testbin = testbin_path()?;
        let mut me = Self {
            servers: Vec::new(),
            node: Node::new()?,
        };
        me.node.add_pod("client", CLIENT_IP)?;
        for i in 0..backends {
            me.node.add_pod(&format!("pod{}", i + 1), backend_ip(i))?;
        }
        let ports = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        for pod in &me.node.pods[1..] {
            let mut c = pod.ns.command(&testbin);
            c.args(["serve", "--name", &pod.name, "--ports", &ports]);
            me.servers.push(Spawned::until_ready(c, traffic::READY)?);
        }
        Ok(me)
    }

    /// The client pod.
    pub fn client(&self) -> &Pod {
        &self.node.pods[0]
    }

    /// Runs `iptables-restore` in the node's namespace with `input` on stdin
    /// (replacing the tables `input` names).
    pub fn iptables_restore(&self, input: &str) -> anyhow::Result<()> {
        let mut c = self.node.ns.command("iptables-restore");
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
        let mut stdin = child.stdin.take().context("stdin is piped")?;
        let written = stdin.write_all(input.as_bytes());
        drop(stdin);
        let status = child.wait()?;
        written.context("feeding iptables-restore")?;
        anyhow::ensure!(status.success(), "iptables-restore failed ({status})");
        Ok(())
    }

    /// Runs `iptables ARGS...` in the node's namespace.
    pub fn iptables(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(cmd::run(self.node.ns.command("iptables").args(args))?)
    }
}

/// Lets a client pod open connections as fast as it can for seconds on end:
/// the whole ephemeral port range, TIME_WAIT ports reused after a second
/// (per destination, so the benchmark gives every case its own destinations),
/// and a lost SYN failing in seconds rather than minutes.
pub fn tune_client(ns: &NetNs) -> anyhow::Result<()> {
    ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    ns.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
    Ok(ns.sysctl("net.ipv4.tcp_syn_retries", "2")?)
}

/// One case's load client: a `<exe> client` process (this benchmark's own
/// binary) in a client pod, measuring a turn whenever asked. Killed on drop.
#[derive(Debug)]
pub struct TurnClient {
    proc: Spawned,
}

impl TurnClient {
    /// Starts the client in namespace `ns`, in `cgroup` if given, loading
    /// `targets` with `threads` connection loops per turn.
    pub fn spawn(
        exe: &Path,
        ns: &NetNs,
        cgroup: Option<&Cgroup>,
        targets: &[SocketAddr],
        threads: usize,
    ) -> anyhow::Result<Self> {
        let to = targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut c: Command = ns.command(exe);
        c.args(["client", "--to", &to, "--threads", &threads.to_string()])
            .stdin(Stdio::piped());
        if let Some(cg) = cgroup {
            cg.enter_on_spawn(&mut c);
        }
        Ok(Self {
            proc: Spawned::until_ready(c, client::READY)?,
        })
    }

    /// Measures one turn: `warmup` unmeasured, then `duration`.
    pub fn turn(&mut self, warmup: Duration, duration: Duration) -> anyhow::Result<LoadResult> {
        let child = self.proc.child();
        let stdin = child
            .stdin
            .as_mut()
            .context("the client's stdin is piped")?;
        stdin.write_all(client::turn_request(warmup, duration).as_bytes())?;
        stdin.flush()?;
        let stdout = child
            .stdout
            .as_mut()
            .context("the client's stdout is piped")?;
        // One line per request and nothing in between: no read-ahead is lost.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        anyhow::ensure!(
            !line.is_empty(),
            "the load client exited (its stderr is above)"
        );
        serde_json::from_str(&line).with_context(|| format!("the load client answered {line:?}"))
    }
}
