//! [`LocalCluster`]: a real jotasu cluster on this machine, every part in
//! network namespaces this harness made — an underlay bridge, the control
//! plane in a namespace of its own, and N nodes each running
//! `jotasu-agent` — sharing one private containerd (a namespace per node).
//! Nodes join over TLS on the underlay with a bootstrap token, as real
//! machines do (they get no file of the control plane's); jotactl reaches
//! the control plane through its unix socket. Dropping the
//! cluster stops the agents and removes everything: containers, pod
//! namespaces, bpffs pins, cgroups, links, directories.
//!
//! With several control planes ([`ClusterOptions::control_planes`]) each
//! is a machine of its own ([`ControlPlaneMachine`]: a namespace on the
//! underlay) running one member of a shared etcd cluster (TLS with
//! client certificates, [`crate::etcd::EtcdPki`]) and one
//! `jotasu-controlplane` on it; they share the cluster CA (copied from the
//! first, as kubeadm copies it to each control plane) and elect a leader.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jotasu_api::client::Client;
use jotasu_api::{ConditionStatus, Kind, Object, ObjectRef};

use crate::bins::workspace_bin;
use crate::containerd::ContainerdGuard;
use crate::controlplane::{ControlPlane, Options};
use crate::error::{DevError, Result};
use crate::etcd::{EtcdCluster, MemberSpec};
use crate::netns::{NetNs, veth_to_bridge};
pub use crate::plan::UNDERLAY;
use crate::plan::{NodePlan, Plan};
use crate::process::die_with_spawner;
use jotasu_controlplane::admin::token::JoinTarget;
use jotasu_controlplane::pki::PkiPaths;

/// The port nodes join the control plane on.
pub const JOIN_PORT: u16 = 6443;

/// The etcd member's client port on a control-plane machine.
pub const ETCD_CLIENT_PORT: u16 = 2379;

/// The etcd member's peer port on a control-plane machine.
pub const ETCD_PEER_PORT: u16 = 2380;

/// The etcd member's plain-HTTP `/health` and `/metrics` port (kubeadm's).
pub const ETCD_METRICS_PORT: u16 = 2381;

/// The files of the cluster CA every control plane must share (under
/// `DATA_DIR/pki/`): the CA certificate and its key. Nothing else is
/// shared: each control plane issues its own server certificate (for its
/// own address), admin and client certificates from that CA.
pub const SHARED_PKI: [&str; 2] = ["ca.crt", "ca.key"];

/// How to build a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of control-plane machines (1 to
    /// [`crate::plan::MAX_CONTROL_PLANES`]). One runs on the embedded
    /// store unless [`Self::etcd`]; more share an etcd cluster, one member
    /// on each machine.
    pub control_planes: usize,
    /// Put the control plane on etcd (one member per control-plane
    /// machine) even when there is only one.
    pub etcd: bool,
    /// Extra control-plane flags.
    pub controlplane_args: Vec<String>,
    /// Extra agent flags.
    pub agent_args: Vec<String>,
    /// Agents log to `<node>.log` in the cluster's directory instead of stderr.
    pub quiet: bool,
    /// The prefix of every name (default: a fresh per-run prefix,
    /// [`crate::names::fresh_prefix`]).
    pub prefix: Option<String>,
    /// The cluster's directory: agent state, logs, the control plane's data
    /// dir, the demo image (made if missing, removed on drop). Default: a
    /// fresh `jotasu-cluster-<prefix>-…` in [`crate::controlplane::scratch_root`].
    pub dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 1,
            control_planes: 1,
            etcd: false,
            controlplane_args: vec![
                "--node-grace-period".into(),
                "4".into(),
                "--pod-eviction-timeout".into(),
                "10".into(),
            ],
            agent_args: vec!["--heartbeat-interval".into(), "0.5".into()],
            quiet: false,
            prefix: None,
            dir: None,
        }
    }
}

impl ClusterOptions {
    /// `nodes` nodes whose scheduler spreads replicas (LeastAllocated, as
    /// Kubernetes' default) instead of jotasu's default bin-packing, which
    /// would put every replica of a small Deployment on one node — what a
    /// local multi-node cluster and the tests across nodes want.
    pub fn spreading(nodes: usize) -> Self {
        let mut options = Self {
            nodes,
            ..Self::default()
        };
        options
            .controlplane_args
            .extend(["--scheduler-scoring".into(), "least-allocated".into()]);
        options
    }
}

/// One node: its namespace and its agent.
#[derive(Debug)]
pub struct AgentNode {
    name: String,
    ip: Ipv4Addr,
    uplink: String,
    state_dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    /// `--token`, `--ca-cert-hash`: for the first start only (a restarted
    /// agent uses the certificate it got).
    join_args: Vec<String>,
    log: Option<PathBuf>,
    ns: NetNs,
}

impl AgentNode {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its underlay address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its link to the underlay bridge (inside its namespace).
    pub fn uplink(&self) -> &str {
        &self.uplink
    }

    /// The agent's state directory (its pods, logs and `pki/`).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Its network namespace.
    pub fn netns(&self) -> &NetNs {
        &self.ns
    }

    /// The agent's PID, while it runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<()> {
        self.spawn_with(&[])
    }

    fn spawn_with(&mut self, extra: &[String]) -> Result<()> {
        let bin = workspace_bin("jotasu-agent", "JOTASU_AGENT")?;
        self.spawn_bin(&bin, extra)
    }

    fn spawn_bin(&mut self, bin: &Path, extra: &[String]) -> Result<()> {
        let mut cmd = crate::netns::enter(self.ns.name(), bin);
        cmd.args(&self.args);
        cmd.args(extra);
        cmd.args(std::mem::take(&mut self.join_args));
        if std::env::var_os("JOTASU_LOG").is_none() {
            cmd.env("JOTASU_LOG", "warn,jotasu_agent=info");
        }
        die_with_spawner(&mut cmd);
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(DevError::io("opening", path))?,
            ),
            None => Stdio::inherit(),
        };
        self.child = Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(DevError::spawn(format!("the agent of {}", self.name)))?,
        );
        Ok(())
    }

    /// Stops the agent (SIGTERM, then SIGKILL after 10 s); its pods keep running.
    pub fn stop_agent(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = crate::process::terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// Starts the agent again (after [`Self::stop_agent`]).
    pub fn start_agent(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(DevError::State(format!(
                "the agent of {} is running",
                self.name
            )));
        }
        self.spawn()
    }

    /// Kills the agent with SIGKILL (no shutdown at all, as a crash or the
    /// OOM killer would) and reaps it; its pods and data plane stay.
    pub fn kill_agent(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(DevError::io("killing the agent of", &self.name))?;
            child
                .wait()
                .map_err(DevError::io("reaping the agent of", &self.name))?;
        }
        Ok(())
    }

    /// Starts the agent (after [`Self::stop_agent`] or [`Self::kill_agent`])
    /// from the executable `bin` instead of the workspace's: an upgrade.
    pub fn start_agent_from(&mut self, bin: &Path) -> Result<()> {
        if self.child.is_some() {
            return Err(DevError::State(format!(
                "the agent of {} is running",
                self.name
            )));
        }
        self.spawn_bin(bin, &[])
    }

    /// Restarts the agent with `extra` flags after its usual ones (this
    /// start only: a later [`Self::start_agent`] goes back to the usual).
    pub fn restart_agent_with(&mut self, extra: &[String]) -> Result<()> {
        self.stop_agent();
        self.spawn_with(extra)
    }

    /// Removes what the node's pods and data plane left on the machine.
    fn clean(&mut self) {
        self.stop_agent();
        // Pod network namespaces are named `<node>-<uid>`.
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{}-", self.name)) {
                    let _ = crate::cmd::ip(&["netns", "del", &name]);
                }
            }
        }
        let _ = jotasu_ebpf::Datapath::purge(Path::new(jotasu_ebpf::DEFAULT_BPFFS), &self.name);
        remove_node_cgroups(&self.name);
        // Secret and memory volumes of pods still there are tmpfs mounts.
        crate::mounts::unmount_below(&self.state_dir);
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Removes `jotasu/<node>` in every cgroup hierarchy (deepest first).
pub fn remove_node_cgroups(node: &str) {
    use jotasu_agent::cgroup::{Hierarchies, NodeCgroups};
    if let Ok(h) = Hierarchies::detect() {
        let _ = NodeCgroups::existing(h, &format!("jotasu/{node}")).remove_node();
    }
}

/// One control-plane machine: a namespace on the underlay with its own
/// address, running a control plane (and, on etcd, the etcd member of the
/// same index).
#[derive(Debug)]
pub struct ControlPlaneMachine {
    name: String,
    ip: Ipv4Addr,
    uplink: String,
    control_plane: ControlPlane,
    /// Declared last: the namespace goes after the processes in it.
    ns: NetNs,
}

impl ControlPlaneMachine {
    /// The machine's name (also its network namespace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its underlay address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its link to the underlay bridge (inside its namespace).
    pub fn uplink(&self) -> &str {
        &self.uplink
    }

    /// Its network namespace.
    pub fn netns(&self) -> &NetNs {
        &self.ns
    }

    /// Its control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// Its control plane, to stop, pause or restart.
    pub fn control_plane_mut(&mut self) -> &mut ControlPlane {
        &mut self.control_plane
    }

    /// The control plane's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.control_plane.pid()
    }

    /// Its control plane's data dir.
    pub fn data_dir(&self) -> &Path {
        self.control_plane.data_dir()
    }

    /// Its control plane's local socket (`unix:///…/api.sock`): the
    /// administrator's way in.
    pub fn socket_url(&self) -> String {
        self.control_plane.url()
    }

    /// Where nodes reach its control plane: `https://<ip>:6443`.
    pub fn url(&self) -> String {
        format!(
            "https://{}",
            std::net::SocketAddr::new(self.ip.into(), JOIN_PORT)
        )
    }

    /// The id its control plane campaigns with (the content of
    /// `DATA_DIR/identity`; its Lease holder identity is `<host>_<id>`),
    /// once it has started.
    pub fn identity(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir().join("identity"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }
}

/// Copies the cluster CA ([`SHARED_PKI`]) from the control plane whose data
/// dir is `from` into the data dir `to` of one yet to start (which then
/// issues its own certificates from it). Keys keep their 0600 mode.
pub fn share_cluster_ca(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let (src, dst) = (PkiPaths::new(from).dir, PkiPaths::new(to).dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dst)
        .map_err(DevError::io("creating", &dst))?;
    for file in SHARED_PKI {
        let from = src.join(file);
        std::fs::copy(&from, dst.join(file)).map_err(DevError::io("copying", &from))?;
    }
    Ok(())
}

/// A running cluster.
#[derive(Debug)]
pub struct LocalCluster {
    plan: Plan,
    options: ClusterOptions,
    /// Where and how nodes join.
    join: JoinTarget,
    /// The last join command a node ran (its token included).
    join_command: Option<String>,
    cni_dir: PathBuf,
    /// Index of the next node made (indexes are never reused).
    next_node: usize,
    nodes: Vec<AgentNode>,
    /// The control-plane machines (at least one).
    machines: Vec<ControlPlaneMachine>,
    /// Their etcd cluster (one member per machine), if not embedded.
    etcd: Option<EtcdCluster>,
    containerd: Option<ContainerdGuard>,
    _underlay: NetNs,
    /// The cluster's directory.
    dir: PathBuf,
    /// Set when the directory is a temporary one (removed on drop).
    _scratch: Option<tempfile::TempDir>,
    /// Whether the demo image was imported (a node that joins gets it too).
    image_imported: bool,
}

impl LocalCluster {
    /// Builds and starts a cluster, and waits until every node is Ready.
    /// Call it from a thread that outlives the cluster (its processes die
    /// with their spawner).
    pub async fn start(options: ClusterOptions) -> Result<Self> {
        crate::names::sweep_stale();
        let plan = Plan::new(
            &options
                .prefix
                .clone()
                .unwrap_or_else(crate::names::fresh_prefix),
        );
        let (dir, scratch) = match &options.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(DevError::io("creating", d))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix(&crate::names::scratch_prefix(plan.prefix(), ""))
                    .tempdir_in(crate::controlplane::scratch_root())
                    .map_err(DevError::io(
                        "creating the cluster's scratch directory in",
                        crate::controlplane::scratch_root(),
                    ))?;
                (t.path().to_owned(), Some(t))
            }
        };
        let containerd = ContainerdGuard::start(plan.prefix())?;
        let underlay = NetNs::new(&plan.underlay_netns())?;
        underlay.ip(&["link", "add", "br0", "type", "bridge"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        let count = options.control_planes.max(1);
        let mut hosts: Vec<(NodePlan, NetNs)> = Vec::with_capacity(count);
        for i in 0..count {
            let m = plan.control_plane(i)?;
            let ns = NetNs::new(&m.name)?;
            veth_to_bridge(&underlay, &ns, &m.uplink, m.ip)?;
            hosts.push((m, ns));
        }
        let etcd = if count > 1 || options.etcd {
            let etcd_dir = dir.join("etcd");
            std::fs::create_dir_all(&etcd_dir).map_err(DevError::io("creating", &etcd_dir))?;
            let members = hosts
                .iter()
                .map(|(m, ns)| MemberSpec {
                    client: std::net::SocketAddr::new(m.ip.into(), ETCD_CLIENT_PORT),
                    peer: std::net::SocketAddr::new(m.ip.into(), ETCD_PEER_PORT),
                    metrics: Some(std::net::SocketAddr::new(m.ip.into(), ETCD_METRICS_PORT)),
                    netns: Some(ns.name().to_owned()),
                })
                .collect();
            // TLS with client certificates on both sides, as kubeadm
            // sets etcd up: only the control planes and the members talk.
            Some(EtcdCluster::start_tls(plan.prefix(), &etcd_dir, members)?)
        } else {
            None
        };
        let mut cp_args = options.controlplane_args.clone();
        cp_args.extend(["--service-cidr".into(), "10.96.0.0/16".into()]);
        if let Some(pki) = etcd.as_ref().and_then(EtcdCluster::pki) {
            cp_args.extend(pki.controlplane_args());
        }
        let mut machines: Vec<ControlPlaneMachine> = Vec::with_capacity(count);
        for (i, (m, ns)) in hosts.into_iter().enumerate() {
            let data_dir = match i {
                0 => dir.join("controlplane"),
                i => dir.join(format!("controlplane-{i}")),
            };
            // Every control plane signs with the one cluster CA: the
            // first made it, the others start with a copy.
            if let Some(first) = machines.first() {
                share_cluster_ca(first.data_dir(), &data_dir)?;
            }
            // Nodes reach the control plane as machines would: over TLS on
            // the underlay, joining with a bootstrap token.
            let listen = std::net::SocketAddr::new(m.ip.into(), JOIN_PORT);
            let log = (options.quiet && count > 1).then(|| dir.join(format!("{}.log", m.name)));
            let control_plane = ControlPlane::start(Options {
                args: cp_args.clone(),
                netns: Some(ns.name().to_owned()),
                data_dir: Some(data_dir),
                listen: Some(listen),
                etcd_endpoints: etcd
                    .as_ref()
                    .map(EtcdCluster::client_urls)
                    .unwrap_or_default(),
                log,
                ..Options::default()
            })
            .await?;
            machines.push(ControlPlaneMachine {
                name: m.name,
                ip: m.ip,
                uplink: m.uplink,
                control_plane,
                ns,
            });
        }
        let first = &machines[0];
        let ca = PkiPaths::new(first.data_dir()).ca_cert();
        let ca = std::fs::read_to_string(&ca).map_err(DevError::io("reading", &ca))?;
        let join = JoinTarget {
            server: first.url(),
            ca_cert_hash: jotasu_api::client::identity::ca_cert_hash(&ca).map_err(|e| {
                DevError::State(format!("the control plane's CA cannot be read: {e}"))
            })?,
        };
        let cni = workspace_bin("jotasu-cni", "JOTASU_CNI")?;
        let cni_dir = cni.parent().unwrap_or(Path::new("/")).to_owned();
        let mut me = Self {
            plan,
            options,
            join,
            join_command: None,
            cni_dir,
            next_node: 0,
            nodes: Vec::new(),
            machines,
            etcd,
            containerd: Some(containerd),
            _underlay: underlay,
            dir,
            _scratch: scratch,
            image_imported: false,
        };
        for _ in 0..me.options.nodes {
            me.spawn_node().await?;
        }
        me.wait_ready(Duration::from_secs(60)).await?;
        Ok(me)
    }

    /// A bootstrap token for the next node to join with (valid for ten
    /// minutes: a node that joined keeps its certificate), and its join
    /// arguments.
    async fn join_args(&mut self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let token = jotasu_controlplane::admin::token::create(
            &client,
            Duration::from_secs(600),
            &format!("local cluster {}", self.plan.prefix()),
        )
        .await
        .map_err(|e| DevError::State(format!("creating a bootstrap token: {e}")))?;
        self.join_command = Some(jotasu_controlplane::admin::token::join_command(
            &self.join, &token,
        ));
        Ok(vec![
            "--token".into(),
            token.to_string(),
            "--ca-cert-hash".into(),
            self.join.ca_cert_hash.clone(),
        ])
    }

    /// The `--server` the agents join and then talk to: every control
    /// plane (the bootstrap token lives in the shared store, so any of
    /// them accepts the join; the agent moves to the next when one dies).
    fn agents_server(&self) -> String {
        let urls = self.control_plane_urls();
        if urls.is_empty() {
            self.join.server.clone()
        } else {
            urls.join(",")
        }
    }

    /// Makes host `index` outside the cluster: a namespace on the
    /// underlay bridge with its own address and no other route (a client
    /// of node ports, or a router of external IPs). Dropping the namespace
    /// removes it and its link.
    pub fn external_host(&self, index: usize) -> Result<(NetNs, Ipv4Addr)> {
        let crate::plan::NodePlan { name, uplink, ip } = self.plan.external_host(index)?;
        let ns = NetNs::new(&name)?;
        veth_to_bridge(&self._underlay, &ns, &uplink, ip)?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok((ns, ip))
    }

    /// Makes the next node (namespace, uplink, agent joining with a fresh
    /// token); does not wait for it.
    async fn spawn_node(&mut self) -> Result<usize> {
        let join_args = self.join_args().await?;
        let i = self.next_node;
        let crate::plan::NodePlan { name, uplink, ip } = self.plan.node(i)?;
        self.next_node += 1;
        let ns = NetNs::new(&name)?;
        veth_to_bridge(&self._underlay, &ns, &uplink, ip)?;
        let state_dir = self.dir.join(&name);
        let socket = self.containerd().socket().to_owned();
        let mut args: Vec<String> = vec![
            "--node-name".into(),
            name.clone(),
            "--server".into(),
            self.agents_server(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--containerd-socket".into(),
            socket.display().to_string(),
            "--cni-path".into(),
            self.cni_dir.display().to_string(),
            "--node-ip".into(),
            ip.to_string(),
            "--cpu".into(),
            "4".into(),
            "--memory".into(),
            "8Gi".into(),
        ];
        args.extend(self.options.agent_args.iter().cloned());
        let log = self
            .options
            .quiet
            .then(|| self.dir.join(format!("{name}.log")));
        let mut node = AgentNode {
            name,
            ip,
            uplink,
            state_dir,
            child: None,
            args,
            join_args,
            log,
            ns,
        };
        node.spawn()?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// A node joins the running cluster; waits until it is Ready. Returns
    /// its index in [`Self::nodes`].
    pub async fn add_node(&mut self) -> Result<usize> {
        let i = self.spawn_node().await?;
        self.wait_ready(Duration::from_secs(60)).await?;
        if self.image_imported {
            let node = self.nodes[i].name.clone();
            self.import_image(&["--node", &node])?;
        }
        Ok(i)
    }

    /// Stops node `i` as a machine that dies would: its agent is killed, its
    /// containers are killed, and its underlay link goes down (no heartbeat,
    /// its pods unreachable). The Node object stays.
    pub async fn stop_node(&mut self, i: usize) -> Result<()> {
        let socket = self.containerd().socket().to_owned();
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let cd = jotasu_agent::containerd::Containerd::connect(&socket, &node.name)
            .await
            .map_err(DevError::containerd(format!(
                "connecting for node {}",
                node.name
            )))?;
        let containers = cd.list().await.map_err(DevError::containerd(format!(
            "listing the containers of node {}",
            node.name
        )))?;
        for c in containers {
            // Already exited is fine.
            let _ = cd.kill(&c.id, libc::SIGKILL, true).await;
        }
        node.ns.ip(&["link", "set", &node.uplink, "down"])?;
        Ok(())
    }

    /// Starts node `i` again after [`Self::stop_node`]: link up, agent started.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        node.ns.ip(&["link", "set", &node.uplink, "up"])?;
        node.start_agent()
    }

    /// Node `i` leaves for good: stopped as [`Self::stop_node`] does, its Node
    /// object deleted (as `jotactl delete node` would), and everything it
    /// left on the machine removed. Later indexes shift down by one.
    pub async fn remove_node(&mut self, i: usize) -> Result<()> {
        self.stop_node(i).await?;
        let name = self.nodes[i].name.clone();
        let client = self.client().await?;
        client
            .delete(
                &ObjectRef {
                    kind: Kind::Node,
                    namespace: None,
                    name: name.clone(),
                },
                None,
            )
            .await
            .map_err(DevError::api(format!("deleting Node {name}")))?;
        let mut node = self.nodes.remove(i);
        let socket = self.containerd().socket().to_owned();
        let cd = jotasu_agent::containerd::Containerd::connect(&socket, &name)
            .await
            .map_err(DevError::containerd(format!("connecting for node {name}")))?;
        let containers = cd.list().await.map_err(DevError::containerd(format!(
            "listing the containers of node {name}"
        )))?;
        for c in containers {
            let _ = cd.delete_task(&c.id).await;
            let _ = cd.remove(&c.id).await;
        }
        node.clean();
        Ok(())
    }

    /// The per-run prefix of every name.
    pub fn prefix(&self) -> &str {
        self.plan.prefix()
    }

    /// The names and addresses of the cluster.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The cluster's directory (agent state, logs, control-plane data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The processes the cluster runs, by role (`containerd`,
    /// `controlplane` — `controlplane <machine>` and `etcd <machine>` with
    /// several control planes or etcd — and `agent <node>`), with their PIDs.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut all = Vec::new();
        all.extend(
            self.containerd()
                .pid()
                .map(|p| ("containerd".to_owned(), p)),
        );
        let single = self.machines.len() == 1 && self.etcd.is_none();
        for (i, m) in self.machines.iter().enumerate() {
            let role = if single {
                "controlplane".to_owned()
            } else {
                format!("controlplane {}", m.name)
            };
            all.extend(m.pid().map(|p| (role, p)));
            if let Some(pid) = self.etcd.as_ref().and_then(|e| e.pid(i)) {
                all.push((format!("etcd {}", m.name), pid));
            }
        }
        for n in &self.nodes {
            all.extend(n.agent_pid().map(|p| (format!("agent {}", n.name), p)));
        }
        all
    }

    /// The nodes.
    pub fn nodes(&self) -> &[AgentNode] {
        &self.nodes
    }

    /// One node, mutably (to stop or restart its agent).
    pub fn node_mut(&mut self, i: usize) -> &mut AgentNode {
        &mut self.nodes[i]
    }

    /// The (first) control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.machines[0].control_plane
    }

    /// The (first) control plane, to stop and restart it.
    pub fn control_plane_mut(&mut self) -> &mut ControlPlane {
        &mut self.machines[0].control_plane
    }

    /// The control-plane machines, in order.
    pub fn control_planes(&self) -> &[ControlPlaneMachine] {
        &self.machines
    }

    /// Control-plane machine `i`, mutably.
    pub fn control_plane_machine_mut(&mut self, i: usize) -> &mut ControlPlaneMachine {
        &mut self.machines[i]
    }

    /// Where nodes reach each control plane (`https://<ip>:6443`), in order.
    pub fn control_plane_urls(&self) -> Vec<String> {
        self.machines.iter().map(ControlPlaneMachine::url).collect()
    }

    /// The etcd cluster under the control planes (None: the embedded store).
    pub fn etcd(&self) -> Option<&EtcdCluster> {
        self.etcd.as_ref()
    }

    /// The etcd cluster, to kill, pause or restart members.
    pub fn etcd_mut(&mut self) -> Option<&mut EtcdCluster> {
        self.etcd.as_mut()
    }

    /// Kills control plane `i` with SIGKILL (a crash) and reaps it.
    pub fn kill9_control_plane(&mut self, i: usize) -> Result<()> {
        self.machines[i].control_plane.kill9()
    }

    /// Freezes control plane `i` with SIGSTOP (a hung process).
    pub fn stop_control_plane(&mut self, i: usize) -> Result<()> {
        let m = &mut self.machines[i];
        if m.control_plane.pause() {
            Ok(())
        } else {
            Err(DevError::State(format!(
                "the control plane of {} is not running",
                m.name
            )))
        }
    }

    /// Lets control plane `i` run on with SIGCONT after
    /// [`Self::stop_control_plane`].
    pub fn cont_control_plane(&mut self, i: usize) -> Result<()> {
        let m = &mut self.machines[i];
        if m.control_plane.resume() {
            Ok(())
        } else {
            Err(DevError::State(format!(
                "the control plane of {} is not running",
                m.name
            )))
        }
    }

    /// Restarts control plane `i` on its data (SIGTERM first if it runs)
    /// and waits until it answers.
    pub async fn restart_control_plane(&mut self, i: usize) -> Result<()> {
        let cp = &mut self.machines[i].control_plane;
        if cp.pid().is_some() {
            cp.terminate()?;
        }
        cp.restart().await
    }

    /// Takes control-plane machine `i` down as a machine that dies would:
    /// its control plane and its etcd member are killed (SIGKILL) and its
    /// underlay link goes down. Their data stays for
    /// [`Self::start_control_plane_machine`].
    pub fn stop_control_plane_machine(&mut self, i: usize) -> Result<()> {
        self.machines[i].control_plane.kill9()?;
        if let Some(etcd) = self.etcd.as_mut() {
            etcd.kill(i);
        }
        let m = &self.machines[i];
        m.ns.ip(&["link", "set", &m.uplink, "down"])?;
        Ok(())
    }

    /// Brings control-plane machine `i` back after
    /// [`Self::stop_control_plane_machine`]: link up, its etcd member
    /// restarted on its data (healthy once a quorum runs), its control
    /// plane restarted on its data.
    pub async fn start_control_plane_machine(&mut self, i: usize) -> Result<()> {
        {
            let m = &self.machines[i];
            m.ns.ip(&["link", "set", &m.uplink, "up"])?;
        }
        if let Some(etcd) = self.etcd.as_mut()
            && etcd.pid(i).is_none()
        {
            etcd.restart(i)?;
        }
        let cp = &mut self.machines[i].control_plane;
        if cp.pid().is_none() {
            cp.restart().await?;
        }
        Ok(())
    }

    /// Which control plane leads: the one whose identity ends the holder of
    /// the Lease `kube-system/jotasu-controlplane` (None: nobody holds it,
    /// or the holder is none of these).
    pub async fn leader(&self) -> Result<Option<usize>> {
        use jotasu_controlplane::leader::elector::{NAME, NAMESPACE};
        let client = self.client().await?;
        let lease = ObjectRef {
            kind: Kind::Lease,
            namespace: Some(NAMESPACE.to_owned()),
            name: NAME.to_owned(),
        };
        let holder = match client.get(&lease).await {
            Ok(Object::Lease(l)) => l.spec.holder_identity,
            Ok(_) => None,
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                return Err(DevError::api(format!("reading Lease {NAMESPACE}/{NAME}"))(
                    e,
                ));
            }
        };
        Ok(holder.and_then(|h| {
            self.machines.iter().position(|m| {
                m.identity()
                    .is_some_and(|id| h.ends_with(&format!("_{id}")))
            })
        }))
    }

    /// Where nodes join (`https://<control plane>:6443`) and the CA hash.
    pub fn join_target(&self) -> &JoinTarget {
        &self.join
    }

    /// The join command the last node ran, token included.
    pub fn join_command(&self) -> Option<&str> {
        self.join_command.as_deref()
    }

    /// The server URL jotactl uses (the local socket: the administrator).
    pub fn server(&self) -> String {
        format!("unix://{}", self.control_plane().socket().display())
    }

    /// The private containerd.
    pub fn containerd(&self) -> &ContainerdGuard {
        self.containerd
            .as_ref()
            .expect("containerd runs until drop")
    }

    /// A client of a control plane that answers: the first one, or with
    /// several, the first in order that runs, is not paused and answers a
    /// read within 3 s (so it works while some are down).
    pub async fn client(&self) -> Result<Client> {
        if let [only] = self.machines.as_slice() {
            return only.control_plane.client().await;
        }
        let mut why = Vec::new();
        for m in &self.machines {
            if !m.control_plane.is_serving() {
                why.push(format!("{}: not running", m.name));
                continue;
            }
            match answering(&m.control_plane).await {
                Ok(client) => return Ok(client),
                Err(e) => why.push(format!("{}: {e}", m.name)),
            }
        }
        Err(DevError::NotReady {
            what: "a control plane".into(),
            why: format!("none answers: {}", why.join("; ")),
        })
    }

    /// Waits until every node is registered and Ready.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + within;
        for node in &mut self.nodes {
            let r = ObjectRef {
                kind: Kind::Node,
                namespace: None,
                name: node.name.clone(),
            };
            loop {
                let ready = match client.get(&r).await {
                    Ok(Object::Node(n)) => n.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
                    }),
                    _ => false,
                };
                if ready {
                    break;
                }
                if let Some(status) = node
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    node.child = None;
                    return Err(DevError::NotReady {
                        what: format!("node {}", node.name),
                        why: format!("its agent exited: {status}"),
                    });
                }
                if Instant::now() > deadline {
                    return Err(DevError::Timeout {
                        what: format!("node {} becoming Ready", node.name),
                        within,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Builds the busybox demo image archive in the scratch directory.
    pub fn demo_image(&self) -> Result<crate::image::ImageArchive> {
        let archive = self.dir.join("busybox.tar");
        crate::image::build_busybox_image(&archive, crate::image::DEMO_IMAGE)
    }

    /// Builds the busybox demo image and imports it onto every node through
    /// `jotactl image import` (jotactl is found as [`workspace_bin`] finds
    /// binaries, `$JOTACTL` overriding).
    pub fn import_demo_image(&mut self) -> Result<String> {
        self.import_image(&[])?;
        self.image_imported = true;
        Ok(crate::image::DEMO_IMAGE.to_owned())
    }

    /// Builds busybox image `name` (see [`crate::image::build_busybox_image`])
    /// and imports it onto every node.
    pub fn import_busybox_image(&self, name: &str) -> Result<()> {
        let file = name.replace(['/', ':'], "_");
        let archive =
            crate::image::build_busybox_image(&self.dir.join(format!("{file}.tar")), name)?;
        self.import_archive(&archive, &[])
    }

    /// `jotactl image import <demo image> EXTRA…`.
    fn import_image(&self, extra: &[&str]) -> Result<()> {
        let archive = self.demo_image()?;
        self.import_archive(&archive, extra)
    }

    /// `jotactl image import ARCHIVE EXTRA…`.
    fn import_archive(&self, archive: &crate::image::ImageArchive, extra: &[&str]) -> Result<()> {
        let jotactl = workspace_bin("jotactl", "JOTACTL")?;
        crate::cmd::run(
            Command::new(&jotactl)
                .arg("--server")
                .arg(self.server())
                .args(["image", "import"])
                .arg(&archive.path)
                .args(extra)
                .env_remove("JOTASU_SERVER")
                .env_remove("JOTASU_CONFIG")
                .stdin(Stdio::null()),
        )?;
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.stop_agent();
        }
        // containerd's guard removes every container of every namespace.
        drop(self.containerd.take());
        for n in &mut self.nodes {
            n.clean();
        }
        for m in &mut self.machines {
            let _ = m.control_plane.kill9();
        }
        drop(self.etcd.take());
        if self._scratch.is_none() {
            crate::mounts::unmount_below(&self.dir);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client of `cp` that has answered a read within 3 s.
async fn answering(cp: &ControlPlane) -> Result<Client> {
    let client = cp.client().await?;
    let probe = ObjectRef {
        kind: Kind::Namespace,
        namespace: None,
        name: "default".into(),
    };
    match tokio::time::timeout(Duration::from_secs(3), client.get(&probe)).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(DevError::api(format!("reading through {}", cp.url()))(e)),
        Err(_) => Err(DevError::Timeout {
            what: format!("an answer from {}", cp.url()),
            within: Duration::from_secs(3),
        }),
    }
}
