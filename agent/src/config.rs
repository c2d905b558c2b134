//! The agent's settings, as `jotasu-agent`'s flags give them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Everything the agent needs to know about its node and where things are.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's name (also its containerd namespace, its bpffs and cgroup directory).
    pub node: String,
    /// The node's underlay address (its InternalIP).
    pub node_ip: Ipv4Addr,
    /// Where the agent keeps pod directories, logs, volumes and the CNI config.
    pub state_dir: PathBuf,
    /// containerd's socket.
    pub containerd_socket: PathBuf,
    /// Where pod network namespaces are bind-mounted.
    pub netns_dir: PathBuf,
    /// Directories searched for CNI plugins (`jotasu-cni` first).
    pub cni_path: Vec<PathBuf>,
    /// The bpffs mount.
    pub bpffs: PathBuf,
    /// The node's cgroup, relative to each hierarchy's root (`jotasu/<node>`).
    pub cgroup_parent: String,
    /// CPU capacity override, in millicores (None: from the machine and cgroups).
    pub cpu_millis: Option<u64>,
    /// Memory capacity override, in bytes (None: from the machine and cgroups).
    pub memory_bytes: Option<u64>,
    /// Maximum pods on the node.
    pub max_pods: u32,
    /// The Node gRPC service (logs, exec, image import) for the control plane.
    pub listen: SocketAddr,
    /// The Prometheus endpoint (`/metrics`, `/healthz`).
    pub metrics_listen: SocketAddr,
    /// How often the node heartbeats.
    pub heartbeat: std::time::Duration,
    /// The MTU of pod interfaces (and of the VXLAN device).
    pub mtu: u32,
    /// The node's VXLAN device.
    pub vxlan_device: String,
    /// The UDP port of the overlay on the underlay.
    pub vxlan_port: u16,
    /// The cluster DNS server of `ClusterFirst` pods (None: they fall back
    /// to the node's resolv.conf, as with `dnsPolicy: Default`).
    pub cluster_dns: Option<Ipv4Addr>,
    /// The node's resolv.conf, the base of `Default` pods and the source of
    /// the search domains after the cluster's (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Port of the node's resolver on the node's address (0: none).
    pub dns_port: u16,
    /// Whether `from_pod` answers A queries for cluster names itself.
    pub dns_fast_path: bool,
    /// Where the node's resolver forwards names outside the cluster
    /// (empty: the nameservers of `resolv_conf`, less the cluster DNS address).
    pub dns_upstreams: Vec<SocketAddr>,
    /// Registries (`host[:port]`) pulled from over plain HTTP, besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// The OCI runtime containers run with (`auto`: crun when it can, else runc).
    pub oci_runtime: crate::oci_runtime::Requested,
    /// Whether containers may be `privileged` (the kubelet's `--allow-privileged`).
    pub allow_privileged: bool,
    /// What the data plane reports as flow events (`jotactl flows`):
    /// on/off, sampling and the per-CPU rate limit.
    pub flow_events: jotasu_ebpf::FlowEventConfig,
    /// Bytes offered to local volumes (default: the size of the filesystem
    /// holding [`Config::volumes_dir`]).
    pub local_volume_capacity: Option<u64>,
}

impl Config {
    /// The directory of one pod (volumes, logs, resolv.conf).
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    /// The CNI network configuration list the agent writes for its node.
    pub fn cni_conflist(&self) -> PathBuf {
        self.state_dir.join("cni").join("10-jotasu.conflist")
    }

    /// Where the local provisioner's volumes of this node live (one
    /// directory per PersistentVolume, `pvc-<claim uid>`).
    pub fn volumes_dir(&self) -> PathBuf {
        self.state_dir.join("volumes")
    }

    /// The CNI result cache and IPAM directory.
    pub fn cni_dir(&self) -> PathBuf {
        self.state_dir.join("cni")
    }
}
