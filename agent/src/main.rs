//! `jotasu-agent`: the node daemon. See the crate documentation and
//! docs/agent.md.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use jotasu_agent::config::Config;
use jotasu_agent::credentials::Bootstrap;
use jotasu_api::client::TlsFiles;

/// jotasu's node agent: runs this node's pods on containerd and keeps its
/// eBPF data plane in step with the cluster's Services.
#[derive(Debug, Parser)]
#[command(name = "jotasu-agent", version)]
struct Args {
    /// This node's name (its containerd namespace, bpffs and cgroup directory).
    #[arg(long)]
    node_name: String,
    /// The control plane: https://HOST:PORT (a node joins with --token and
    /// --ca-cert-hash, then holds its own certificate), or
    /// unix:///path/api.sock (the local socket of a development cluster).
    /// Several control planes of one cluster: URL,URL,... or the flag
    /// repeated; the first that answers is used, the next when it stops
    /// answering, and those the cluster publishes are added. A node that
    /// holds its certificate starts even when none answers, and keeps
    /// trying with its pods and data plane left as they are.
    #[arg(
        long,
        env = "JOTASU_SERVER",
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        required = true
    )]
    server: Vec<String>,
    /// A bootstrap token (<id>.<secret>, from `jotasu-controlplane token
    /// create`) to join with when the node has no valid certificate in
    /// STATE_DIR/pki yet. Needs --ca-cert-hash.
    #[arg(
        long,
        env = "JOTASU_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The cluster CA's hash (sha256:<hex> of its public key, as `token
    /// create` prints it): the control plane is trusted only if its CA
    /// matches. Required with --token.
    #[arg(long, value_name = "sha256:HEX")]
    ca_cert_hash: Option<String>,
    /// CA certificate for an https server, with --client-certificate and
    /// --client-key: node credentials managed outside the agent (not
    /// renewed; instead of --token).
    #[arg(long)]
    certificate_authority: Option<PathBuf>,
    /// The node's certificate (system:node:NAME) for an https server.
    #[arg(long)]
    client_certificate: Option<PathBuf>,
    /// The node's key for an https server.
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// Where pod directories, logs, volumes and the CNI configuration live
    /// (default /var/lib/jotasu/agent/NODE).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The node's underlay address (default: the first global IPv4 address
    /// of the agent's network namespace).
    #[arg(long)]
    node_ip: Option<Ipv4Addr>,
    /// containerd's socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    /// Where pod network namespaces are bind-mounted.
    #[arg(long, default_value = "/run/netns")]
    netns_dir: PathBuf,
    /// Directories searched for CNI plugins (default: the agent's own
    /// directory, /opt/cni/bin, /usr/lib/cni).
    #[arg(long, value_delimiter = ',')]
    cni_path: Vec<PathBuf>,
    /// The bpffs mount.
    #[arg(long, default_value = jotasu_ebpf::DEFAULT_BPFFS)]
    bpffs: PathBuf,
    /// CPU offered to pods, e.g. 2 or 1500m (default: the machine's, within the agent's cgroup).
    #[arg(long)]
    cpu: Option<String>,
    /// Memory offered to pods, e.g. 4Gi (default: the machine's, within the agent's cgroup).
    #[arg(long)]
    memory: Option<String>,
    /// Room offered to local PersistentVolumes (jotasu.io/local), e.g. 20Gi,
    /// advertised as allocatable ephemeral-storage (default: the size of the
    /// filesystem holding STATE_DIR/volumes).
    #[arg(long)]
    local_volume_capacity: Option<String>,
    /// Pods the node takes at most.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Port of the Node service (logs, exec, image import) on the node's address.
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// Report new service flows and drops from the data plane through its
    /// ring buffer (jotactl flows); `false`: the programs write nothing.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    flow_events: bool,
    /// Report 1 in N new service flows (per CPU; 1: every one). Drops are
    /// always reported.
    #[arg(long, default_value_t = 1, value_name = "N")]
    flow_event_sample: u32,
    /// At most N flow events per CPU and second (0: no limit); the rest
    /// are counted as rate_limited.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    flow_event_rate: u32,
    /// Address of the Prometheus endpoint (/metrics, /healthz).
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_listen: SocketAddr,
    /// Seconds between heartbeats (keep well inside the control plane's --node-grace-period).
    #[arg(long, default_value_t = 2.0)]
    heartbeat_interval: f64,
    /// MTU of pod interfaces and of the overlay's VXLAN device: the
    /// underlay's MTU minus 50 bytes of VXLAN encapsulation.
    #[arg(long, default_value_t = 1450)]
    mtu: u32,
    /// Name of the node's VXLAN device (external mode), made at start-up.
    #[arg(long, default_value = "jotasu_vxlan")]
    vxlan_device: String,
    /// UDP port of the overlay between nodes (every node must use the same).
    #[arg(long, default_value_t = 8472)]
    vxlan_port: u16,
    /// The cluster DNS server of ClusterFirst pods' resolv.conf; empty for
    /// none (such pods then get the node's resolv.conf).
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: String,
    /// Port of the node's resolver on the node's address: the cluster DNS
    /// address reaches it for this node's pods (0: no resolver).
    #[arg(long, default_value_t = 53)]
    dns_port: u16,
    /// Answer A queries for cluster names in the kernel (the tc program on
    /// each pod's veth), as the resolver would; `false`: the resolver
    /// answers every query.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    dns_fast_path: bool,
    /// An upstream resolver (IP address, port 53 unless given, e.g.
    /// 192.0.2.53 or [2001:db8::53]:5353) the node's resolver forwards
    /// names outside the cluster to; repeatable, tried in order. Default:
    /// the nameservers of --resolv-conf, less the cluster DNS address.
    #[arg(long = "dns-upstream", value_name = "ADDR[:PORT]", value_parser = jotasu_agent::dns::upstream::parse)]
    dns_upstreams: Vec<SocketAddr>,
    /// The node's resolv.conf: what Default pods get, and the search
    /// domains ClusterFirst pods get after the cluster's.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// A registry (host[:port]) to pull from over plain HTTP; repeatable.
    /// Registries on loopback addresses always are.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// OCI runtime containerd's runc shim runs containers with: auto (crun
    /// when installed and it accepts the host's cgroups, else runc), or a
    /// binary name or path (runc, crun).
    #[arg(long, default_value = "auto")]
    oci_runtime: jotasu_agent::oci_runtime::Requested,
    /// Remove this node's pinned data plane (every map, program and link
    /// under BPFFS/jotasu/NODE) before setting it up afresh. Every flow
    /// through the node breaks: the way out of a refused map layout change
    /// (see docs/datapath.md, "Upgrades"), on a drained node, used once.
    #[arg(long)]
    reset_datapath: bool,
    /// Let containers run with `securityContext.privileged: true` (every
    /// capability and device, no masked paths); refused without it, as
    /// the kubelet's flag of the same name.
    #[arg(long)]
    allow_privileged: bool,
}

fn first_global_ipv4() -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let ip = ifa.address?.as_sockaddr_in()?.ip();
        (!ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified()).then_some(ip)
    })
}

fn state_dir(args: &Args) -> PathBuf {
    args.state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/jotasu/agent").join(&args.node_name))
}

fn config(args: &Args) -> anyhow::Result<Config> {
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => first_global_ipv4()
            .context("no global IPv4 address in this network namespace; give --node-ip")?,
    };
    let quantity = |s: &Option<String>, what: &str| -> anyhow::Result<Option<u64>> {
        s.as_deref()
            .map(|s| {
                let q =
                    jotasu_api::Quantity::parse(s).with_context(|| format!("--{what} {s:?}"))?;
                let v = if what == "cpu" { q.millis() } else { q.units() };
                u64::try_from(v).with_context(|| format!("--{what} {s:?} must not be negative"))
            })
            .transpose()
    };
    let cluster_dns = (!args.cluster_dns.is_empty())
        .then(|| args.cluster_dns.parse::<Ipv4Addr>())
        .transpose()
        .with_context(|| format!("--cluster-dns {:?}", args.cluster_dns))?;
    let resolver = (args.dns_port != 0).then(|| SocketAddr::new(node_ip.into(), args.dns_port));
    jotasu_agent::dns::upstream::check_no_loop(
        &args.dns_upstreams,
        cluster_dns.map(Into::into),
        resolver,
    )?;
    let mut cni_path = args.cni_path.clone();
    if cni_path.is_empty() {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
        {
            cni_path.push(dir);
        }
        cni_path.extend([PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
    }
    Ok(Config {
        node: args.node_name.clone(),
        node_ip,
        state_dir: state_dir(args),
        containerd_socket: args.containerd_socket.clone(),
        netns_dir: args.netns_dir.clone(),
        cni_path,
        bpffs: args.bpffs.clone(),
        cgroup_parent: format!("jotasu/{}", args.node_name),
        cpu_millis: quantity(&args.cpu, "cpu")?,
        memory_bytes: quantity(&args.memory, "memory")?,
        max_pods: args.max_pods,
        listen: SocketAddr::new(node_ip.into(), args.port),
        metrics_listen: args.metrics_listen,
        heartbeat: Duration::from_secs_f64(args.heartbeat_interval.max(0.1)),
        mtu: args.mtu,
        vxlan_device: args.vxlan_device.clone(),
        vxlan_port: args.vxlan_port,
        cluster_dns,
        resolv_conf: args.resolv_conf.clone(),
        dns_port: args.dns_port,
        dns_fast_path: args.dns_fast_path,
        dns_upstreams: args.dns_upstreams.clone(),
        cluster_domain: args.cluster_domain.clone(),
        insecure_registries: args.insecure_registries.clone(),
        oci_runtime: args.oci_runtime.clone(),
        allow_privileged: args.allow_privileged,
        flow_events: jotasu_ebpf::FlowEventConfig {
            new_flows: args.flow_events,
            drops: args.flow_events,
            new_flow_sample: args.flow_event_sample.max(1),
            drop_sample: 1,
            max_per_cpu_s: args.flow_event_rate,
        },
        local_volume_capacity: quantity(&args.local_volume_capacity, "local-volume-capacity")?,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JOTASU_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = config(&args)?;
    if args.reset_datapath {
        let removed = jotasu_ebpf::Datapath::purge(&args.bpffs, &args.node_name)
            .context("--reset-datapath: removing the node's data plane")?;
        tracing::warn!(node = %args.node_name, removed, "--reset-datapath: the node's pinned data plane was removed; flows through the node were dropped");
    }
    let bootstrap = Bootstrap {
        node: args.node_name.clone(),
        server: args.server.join(","),
        state_dir: state_dir(&args),
        token: args.token.clone(),
        ca_cert_hash: args.ca_cert_hash.clone(),
        files: TlsFiles {
            certificate_authority: args.certificate_authority.clone(),
            client_certificate: args.client_certificate.clone(),
            client_key: args.client_key.clone(),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(jotasu_agent::run::run(config, bootstrap))
}
