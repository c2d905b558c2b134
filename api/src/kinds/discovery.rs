//! EndpointSlice (`discovery.k8s.io/v1`): a Service's endpoints in slices
//! of at most 100, so one endpoint's change rewrites one slice, not the
//! whole list (KEP-0752).

use serde::{Deserialize, Serialize};

use crate::kinds::pod::Protocol;
use crate::meta::{ObjectMeta, ObjectReference};
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// jotasu's controller, under Kubernetes' name (consumers look for it).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The mirroring controller, which copies hand-made Endpoints (of a
/// Service without a selector) into slices, under Kubernetes' name.
pub const MIRRORED_BY: &str = "endpointslicemirroring-controller.k8s.io";
/// On an Endpoints: `"true"` keeps it from being mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Endpoints per slice (Kubernetes' `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A set of endpoints of one Service sharing one list of ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSlice {
    /// Always `discovery.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<EndpointSlice>,
    /// Always `EndpointSlice`.
    #[serde(default)]
    pub kind: KindTag<EndpointSlice>,
    /// Name, namespace, the Service's name label.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4` (jotasu is single-stack; `IPv6` and `FQDN` are refused).
    #[serde(default)]
    pub address_type: String,
    /// The endpoints (at most 1,000).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The ports every endpoint serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointSlicePort>,
}
resource!(
    EndpointSlice,
    "discovery.k8s.io/v1",
    "EndpointSlice",
    namespaced = true
);

/// One backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Its addresses (one for IPv4: the pod IP).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Ready, serving, terminating.
    #[serde(default)]
    pub conditions: EndpointConditions,
    /// Its DNS hostname, for per-pod records of headless Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
    /// Its node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Its node's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Topology-aware routing hints (kept as given; jotasu routes to every endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<EndpointHints>,
    /// Deprecated topology labels (kept as given).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub deprecated_topology: std::collections::BTreeMap<String, String>,
}

/// An endpoint's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointConditions {
    /// It should get new connections (absent: treat as ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// It can serve, whether or not terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// Its pod is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

impl EndpointConditions {
    /// Ready, as consumers read it (an absent condition is ready).
    pub fn is_ready(&self) -> bool {
        self.ready.unwrap_or(true)
    }
}

/// Where an endpoint should be consumed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointHints {
    /// Zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub for_zones: Vec<NamedHint>,
    /// Nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub for_nodes: Vec<NamedHint>,
}

/// A zone or node named by a hint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedHint {
    /// The name.
    pub name: String,
}

/// A port of a slice.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSlicePort {
    /// The Service port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The port number on the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The application protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}
