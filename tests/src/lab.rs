//! [`Lab`]: one node with a client pod and echo-server backend pods, the
//! jotasu data plane attached to every pod and to the node's cgroup. Used by
//! the tests, the demo and the benchmark; removes everything on drop.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;
use jotasu_ebpf::{DEFAULT_BPFFS, Datapath};

use crate::{
    cmd,
    process::Spawned,
    topology::{Node, Pod},
    traffic,
};

/// The client pod's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
/// The port every backend serves (TCP and UDP).
pub const BACKEND_PORT: u16 = 8080;

/// The `i`-th backend pod's address (i from 0): 10.244.0.11, .12, ...
pub fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 0, 11 + i as u8)
}

/// How the client reaches services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientPath {
    /// A plain process: packets are translated by the tc program.
    Tc,
    /// A process in the node's cgroup: sockets are translated at connect.
    Socket,
}

/// A node, its pods, their servers and the data plane.
#[derive(Debug)]
pub struct Lab {
    servers: Vec<Spawned>,
    /// The node's data plane (opened by this process).
    pub datapath: Option<Datapath>,
    /// The node and its pods.
    pub node: Node,
    testbin: PathBuf,
}

impl Lab {
    /// A node with a `client` pod and `backends` echo-server pods named
    /// `pod1`, `pod2`, ... serving on `ports`; the data plane attached to every
    /// pod's veth and the node's cgroup, every pod registered as an endpoint.
    pub fn new(backends: usize, ports: &[u16]) -> anyhow::Result<Self> {
        crate::names::sweep_stale();
        let testbin = testbin_path()?;
        let mut node = Node::new()?;
        node.add_pod("client", CLIENT_IP)?;
        for i in 0..backends {
            node.add_pod(&format!("pod{}", i + 1), backend_ip(i))?;
        }
        let mut lab = Self { servers: Vec::new(), datapath: None, node, testbin };
        let ports_arg = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        for pod in lab.node.pods.iter().filter(|p| p.name != "client") {
            let mut c = pod.ns.command(&lab.testbin);
            c.args(["serve", "--name", &pod.name, "--ports", &ports_arg]);
            lab.servers.push(Spawned::until_ready(c, traffic::READY)?);
        }
        let dp = lab.open_datapath()?;
        lab.datapath = Some(dp);
        Ok(lab)
    }

    /// Opens the node's data plane, attaches it everywhere and registers the
    /// pods (idempotent: a second call adopts what the first pinned).
    pub fn open_datapath(&self) -> anyhow::Result<Datapath> {
        let mut dp = Datapath::open(self.node.name())?;
        let ifs: Vec<&str> = self.node.pods.iter().map(|p| p.host_if.as_str()).collect();
        self.node.ns.run(|| -> anyhow::Result<()> {
            for ifname in &ifs {
                dp.attach_pod_interface(ifname)?;
            }
            Ok(())
        })??;
        dp.attach_cgroup(self.node.cgroup.path())?;
        for pod in &self.node.pods {
            dp.upsert_endpoint(pod.ip, pod.endpoint())?;
        }
        Ok(dp)
    }

    /// The open data plane.
    pub fn dp(&mut self) -> &mut Datapath {
        self.datapath.as_mut().expect("Lab always opens its data plane")
    }

    /// Backend addresses of the first `n` backends on `port`.
    pub fn backends(&self, n: usize, port: u16) -> Vec<SocketAddrV4> {
        (0..n).map(|i| SocketAddrV4::new(backend_ip(i), port)).collect()
    }

    /// The client pod.
    pub fn client(&self) -> &Pod {
        &self.node.pods[0]
    }

    /// The testbin command in the client pod; with [`ClientPath::Socket`] it runs
    /// in the node's cgroup, where the socket programs apply.
    pub fn client_command(&self, path: ClientPath) -> Command {
        let mut c = self.client().ns.command(&self.testbin);
        if path == ClientPath::Socket {
            self.node.cgroup.enter_on_spawn(&mut c);
        }
        c
    }

    /// `jotasu-testbin connect` from the client: one output line per request.
    pub fn connect(
        &self,
        path: ClientPath,
        to: SocketAddr,
        count: usize,
        extra: &[&str],
    ) -> anyhow::Result<Vec<String>> {
        let mut c = self.client_command(path);
        c.args(["connect", "--to", &to.to_string(), "--count", &count.to_string()]).args(extra);
        Ok(cmd::run(&mut c)?.lines().map(str::to_owned).collect())
    }

    /// Kills the backend server of `pod` (by PID).
    pub fn stop_server(&mut self, pod: &str) -> anyhow::Result<()> {
        let i = self
            .node
            .pods
            .iter()
            .filter(|p| p.name != "client")
            .position(|p| p.name == pod)
            .with_context(|| format!("no backend {pod}"))?;
        drop(self.servers.remove(i));
        Ok(())
    }

    /// Where the testbin binary is.
    pub fn testbin(&self) -> &Path {
        &self.testbin
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.servers.clear();
        self.datapath = None;
        if let Err(e) = Datapath::purge(Path::new(DEFAULT_BPFFS), self.node.name()) {
            eprintln!("cleanup: purging data plane of {}: {e}", self.node.name());
        }
        // The node (namespaces, veths, cgroup) drops after this.
    }
}

/// The `jotasu-testbin` binary: `$JOTASU_TESTBIN`, or next to the running
/// executable (or its parent, for test binaries in `target/*/deps`).
pub fn testbin_path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("JOTASU_TESTBIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    [dir.join("jotasu-testbin"), dir.join("../jotasu-testbin")]
        .into_iter()
        .find(|p| p.exists())
        .context("jotasu-testbin not found next to this executable: `cargo build -p jotasu-tests`")
}
