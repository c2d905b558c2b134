//! [`Lab`]: one node with a client pod and echo-server backend pods, the
//! jotasu data plane attached to every pod and to the node's cgroup. Used by
//! the tests, the demo and the benchmark; removes everything on drop.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
};

use jotasu_ebpf::{Datapath, Endpoint, Frontend, PodHook, Protocol, Service};
use serde::{Deserialize, Serialize};

pub use jotasu_dev::bins::workspace_bin;

use crate::{
    cmd,
    pins::NodePins,
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

/// A node, its pods, their servers and the data plane. Fields drop in
/// order: servers, this process's data-plane handle, the pins, then the node
/// (namespaces, veths, cgroup).
#[derive(Debug)]
pub struct Lab {
    servers: Vec<Spawned>,
    /// The node's data plane (opened by this process).
    pub datapath: Option<Datapath>,
    _pins: NodePins,
    /// The node and its pods.
    pub node: Node,
    testbin: PathBuf,
}

impl Lab {
    /// A node with a `client` pod and `backends` echo-server pods named
    /// `pod1`, `pod2`, ... serving on `ports`; the data plane attached to every
    /// pod's veth and the node's cgroup, every pod registered as an endpoint.
    pub fn new(backends: usize, ports: &[u16]) -> anyhow::Result<Self> {
        let mut lab = Self::without_datapath(backends, ports)?;
        let spec = lab.spec(&[]);
        lab.datapath = Some(lab.node.ns.run(|| spec.apply())??);
        Ok(lab)
    }

    /// The same node and pods, with nothing loaded: a test that programs the
    /// data plane from another process starts here.
    pub fn without_datapath(backends: usize, ports: &[u16]) -> anyhow::Result<Self> {
        crate::names::sweep_stale();
        let testbin = testbin_path()?;
        let mut node = Node::new()?;
        node.add_pod("client", CLIENT_IP)?;
        for i in 0..backends {
            node.add_pod(&format!("pod{}", i + 1), backend_ip(i))?;
        }
        let _pins = NodePins::named(node.name());
        let mut lab = Self {
            servers: Vec::new(),
            datapath: None,
            _pins,
            node,
            testbin,
        };
        let ports_arg = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        for pod in lab.node.pods.iter().filter(|p| p.name != "client") {
            let mut c = pod.ns.command(&lab.testbin);
            c.args(["serve", "--name", &pod.name, "--ports", &ports_arg]);
            lab.servers.push(Spawned::until_ready(c, traffic::READY)?);
        }
        Ok(lab)
    }

    /// What the node's data plane should hold: every pod attached and
    /// registered, the node cgroup attached, and `services`.
    pub fn spec(&self, services: &[Service]) -> DatapathSpec {
        DatapathSpec {
            node: self.node.name().to_owned(),
            interfaces: self.node.pods.iter().map(|p| p.host_if.clone()).collect(),
            cgroup: self.node.cgroup.path().to_owned(),
            endpoints: self
                .node
                .pods
                .iter()
                .map(|p| (p.ip, p.endpoint().into()))
                .collect(),
            services: services.iter().map(ServiceSpec::from).collect(),
        }
    }

    /// The open data plane.
    pub fn dp(&mut self) -> &mut Datapath {
        self.datapath
            .as_mut()
            .expect("Lab always opens its data plane")
    }

    /// Backend addresses of the first `n` backends on `port`.
    pub fn backends(&self, n: usize, port: u16) -> Vec<SocketAddrV4> {
        (0..n)
            .map(|i| SocketAddrV4::new(backend_ip(i), port))
            .collect()
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
        c.args([
            "connect",
            "--to",
            &to.to_string(),
            "--count",
            &count.to_string(),
        ])
        .args(extra);
        Ok(cmd::run(&mut c)?.lines().map(str::to_owned).collect())
    }

    /// Where the testbin binary is.
    pub fn testbin(&self) -> &Path {
        &self.testbin
    }
}

/// A whole node's data-plane state, as JSON for `jotasu-testbin datapath-apply`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatapathSpec {
    /// Node name (bpffs directory).
    pub node: String,
    /// Pod host-side interfaces to attach `from_pod` to (in the node netns).
    pub interfaces: Vec<String>,
    /// The node cgroup for the socket programs.
    pub cgroup: PathBuf,
    /// Pods to register for local delivery.
    pub endpoints: Vec<(Ipv4Addr, EndpointSpec)>,
    /// Services to program (reconciled: anything else is removed).
    pub services: Vec<ServiceSpec>,
}

impl DatapathSpec {
    /// Opens the node's data plane and makes it hold this spec. Must run in
    /// the node's network namespace (interface names resolve there).
    pub fn apply(&self) -> anyhow::Result<Datapath> {
        let mut dp = Datapath::open(&self.node)?;
        for ifname in &self.interfaces {
            dp.pods_mut()
                .attach_pod_interface(ifname, PodHook::default())?;
        }
        dp.attach_cgroup(&self.cgroup)?;
        for (ip, ep) in &self.endpoints {
            dp.pods_mut().upsert_endpoint(*ip, (*ep).into())?;
        }
        let services: Vec<Service> = self.services.iter().map(Service::from).collect();
        dp.reconcile(&services)?;
        Ok(dp)
    }
}

/// [`Endpoint`] in JSON.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Host-side ifindex.
    pub ifindex: u32,
    /// Pod MAC.
    pub pod_mac: [u8; 6],
    /// Host-side MAC.
    pub host_mac: [u8; 6],
}

impl From<Endpoint> for EndpointSpec {
    fn from(e: Endpoint) -> Self {
        Self {
            ifindex: e.ifindex,
            pod_mac: e.pod_mac,
            host_mac: e.host_mac,
        }
    }
}

impl From<EndpointSpec> for Endpoint {
    fn from(e: EndpointSpec) -> Self {
        Self {
            ifindex: e.ifindex,
            pod_mac: e.pod_mac,
            host_mac: e.host_mac,
        }
    }
}

/// [`Service`] in JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// VIP.
    pub vip: Ipv4Addr,
    /// Port.
    pub port: u16,
    /// True for UDP.
    pub udp: bool,
    /// Backends in rotation order.
    pub backends: Vec<SocketAddrV4>,
}

impl From<&Service> for ServiceSpec {
    fn from(s: &Service) -> Self {
        Self {
            vip: s.frontend.vip,
            port: s.frontend.port,
            udp: s.frontend.protocol == Protocol::Udp,
            backends: s.backends.clone(),
        }
    }
}

impl From<&ServiceSpec> for Service {
    fn from(s: &ServiceSpec) -> Self {
        let frontend = if s.udp {
            Frontend::udp(s.vip, s.port)
        } else {
            Frontend::tcp(s.vip, s.port)
        };
        Service::new(frontend, s.backends.iter().copied())
    }
}

/// The `jotasu-testbin` binary: `$JOTASU_TESTBIN`, or next to the running
/// executable (or its parent, for test binaries in `target/*/deps`).
pub fn testbin_path() -> anyhow::Result<PathBuf> {
    Ok(workspace_bin("jotasu-testbin", "JOTASU_TESTBIN")?)
}
