//! Service and Endpoints (`v1`): a stable virtual IP in front of a set of pods.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::int_or_string::IntOrString;
use crate::kinds::pod::Protocol;
use crate::meta::{ObjectMeta, ObjectReference};
use crate::resource::{ApiVersionTag, KindTag, resource};

/// A virtual IP and ports load-balanced over the pods its selector picks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Service>,
    /// Always `Service`.
    #[serde(default)]
    pub kind: KindTag<Service>,
    /// Name (DNS-1035 label), namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Observed state (unused by jotasu; accepted for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
}
resource!(Service, "v1", "Service", namespaced = true);

/// Desired state of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// The virtual IP: empty to allocate, `None` for a headless Service
    /// (must stay empty for `ExternalName`).
    #[serde(rename = "clusterIP", default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// Kubernetes' list form of `clusterIP` (jotasu is single-stack: at
    /// most one address, the same as `clusterIP`; filled from it).
    #[serde(rename = "clusterIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// The ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Pods with all these labels are the backends (empty: endpoints managed by hand).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// `None` (default) or `ClientIP` (a client sticks to one backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// ClientIP affinity's timeout (default 10800 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// Addresses outside the cluster, routed to its nodes by the network,
    /// where the Service's ports are served too.
    #[serde(rename = "externalIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// How external traffic (node ports, external IPs) reaches the
    /// endpoints: `Cluster` (default; any node's, the client SNATed to the
    /// node) or `Local` (only the receiving node's, the client's address kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// For `ExternalName`: the DNS name the Service's name is an alias
    /// (CNAME) of, a lowercase DNS-1123 subdomain (a trailing dot allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
}

impl ServiceSpec {
    /// The type, with the default applied.
    pub fn type_(&self) -> ServiceType {
        self.type_.unwrap_or_default()
    }

    /// Whether the Service has node ports (`NodePort`, `LoadBalancer`).
    pub fn has_node_ports(&self) -> bool {
        matches!(
            self.type_(),
            ServiceType::NodePort | ServiceType::LoadBalancer
        )
    }

    /// Whether clients outside the cluster reach it (node ports or
    /// external IPs): where `externalTrafficPolicy` applies.
    pub fn externally_accessible(&self) -> bool {
        self.has_node_ports()
            || (self.type_() == ServiceType::ClusterIP && !self.external_ips.is_empty())
    }

    /// The ClientIP affinity timeout in seconds (None: no affinity).
    pub fn affinity_timeout(&self) -> Option<u32> {
        if self.session_affinity != Some(SessionAffinity::ClientIP) {
            return None;
        }
        let given = self
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0);
        Some(given.unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S))
    }

    /// The alias target of an `ExternalName` Service, without a trailing
    /// dot (`None` for other types, or when empty).
    pub fn external_name(&self) -> Option<&str> {
        if self.type_() != ServiceType::ExternalName {
            return None;
        }
        let name = self.external_name.as_deref()?;
        let name = name.strip_suffix('.').unwrap_or(name);
        (!name.is_empty()).then_some(name)
    }
}

/// How a Service is exposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    /// Inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// As `NodePort`, plus an external load balancer's address (pending
    /// unless an address pool is configured).
    LoadBalancer,
    /// No address of its own: its DNS name is an alias (CNAME) of
    /// `spec.externalName`.
    ExternalName,
}

/// Whether connections from one client stick to one backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionAffinity {
    /// Every new connection is balanced.
    #[default]
    None,
    /// Connections from one client IP go to the same backend.
    ClientIP,
}

/// Keeps the node ports `old` was given on the ports of `new` that name
/// none, matched by port name, as Kubernetes does on update (a re-applied
/// manifest without node ports keeps them), unless another port of `new`
/// already claims that node port.
pub fn keep_node_ports(new: &mut ServiceSpec, old: &ServiceSpec) {
    if !(new.has_node_ports() && old.has_node_ports()) {
        return;
    }
    let claimed: Vec<i32> = new.ports.iter().filter_map(|p| p.node_port).collect();
    for p in &mut new.ports {
        if p.node_port.is_some_and(|np| np != 0) {
            continue;
        }
        let before = old
            .ports
            .iter()
            .find(|o| o.name == p.name)
            .and_then(|o| o.node_port)
            .filter(|np| !claimed.contains(np));
        if before.is_some() {
            p.node_port = before;
        }
    }
}

/// ClientIP affinity's default timeout (Kubernetes': 3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10800;
/// ClientIP affinity's longest timeout (Kubernetes': 1 day).
pub const MAX_AFFINITY_TIMEOUT_S: i32 = 86400;

/// Where external traffic may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrafficPolicy {
    /// Every endpoint of the cluster; the client is SNATed to the node.
    #[default]
    Cluster,
    /// The receiving node's endpoints only; the client's address is kept.
    Local,
}

/// Session affinity settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinityConfig {
    /// ClientIP affinity's settings.
    #[serde(rename = "clientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// ClientIP affinity's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientIpConfig {
    /// How long a client keeps its backend after its last new connection
    /// (1–86400 s; default 10800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// A port of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Name (DNS-1123 label); required when there is more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protocol (default TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The port on the virtual IP.
    pub port: i32,
    /// The pod port, by number or container port name (default: same as `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// The node port for `NodePort` and `LoadBalancer` Services
    /// (30000–32767; allocated when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    /// The application protocol (`http`, `kubernetes.io/h2c`, …): a hint
    /// for proxies, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// Observed state of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceStatus {
    /// Load balancer state (never set by jotasu).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
}

/// Load balancer state of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerStatus {
    /// Ingress points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// An ingress point of a load balancer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerIngress {
    /// IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// The backends of a Service, written by the endpoints controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoints {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Endpoints>,
    /// Always `Endpoints`.
    #[serde(default)]
    pub kind: KindTag<Endpoints>,
    /// Same name and namespace as the Service.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Groups of addresses sharing the same ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<EndpointSubset>,
}
resource!(Endpoints, "v1", "Endpoints", namespaced = true);

/// Addresses that all expose the same ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSubset {
    /// Ready backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointAddress>,
    /// Backends that exist but are not ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// The ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// One backend address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointAddress {
    /// The pod IP.
    pub ip: String,
    /// The pod's host name, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node hosting the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
}

/// A port of an endpoint subset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointPort {
    /// The Service port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pod port number.
    pub port: i32,
    /// Protocol (default TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The application protocol, copied from the Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}
