//! Registration: apply the Node (labels), then write its status (capacity,
//! allocatable, addresses, the agent's endpoint, versions) and read back
//! the pod CIDR the control plane allocated. A node that registers again
//! (agent restart) keeps its CIDR: the control plane never changes it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use jotasu_api::client::{Client, ClientError};
use jotasu_api::kinds::node::{
    DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use jotasu_api::{Kind, Node, Object, ObjectRef, Quantity};
use tracing::{info, warn};

use super::capacity::Capacity;

/// Registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The control plane refused or could not be reached.
    #[error("registering node {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// Why.
        source: ClientError,
    },
    /// The control plane gave no usable pod CIDR.
    #[error(
        "node {node}: pod CIDR {cidr:?} is not an IPv4 network; check the control plane's --cluster-cidr"
    )]
    BadCidr {
        /// The node.
        node: String,
        /// What it gave.
        cidr: String,
    },
}

/// What the agent knows about its node.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// Its underlay address.
    pub ip: Ipv4Addr,
    /// What it offers pods.
    pub capacity: Capacity,
    /// Pods it takes at most.
    pub max_pods: u32,
    /// The agent's Node service port.
    pub port: u16,
    /// `containerd://VERSION`.
    pub runtime_version: String,
    /// Where local volumes go and how much room they have (advertised as
    /// the annotation `jotasu.io/local-volume-dir` and allocatable
    /// `ephemeral-storage`); None: the node offers none.
    pub local_volumes: Option<(String, u64)>,
}

/// The annotation naming the node's local volume directory.
pub const VOLUME_DIR_ANNOTATION: &str = "jotasu.io/local-volume-dir";

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node's labels, as a kubelet sets them.
pub fn node_labels(facts: &NodeFacts) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), facts.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), arch().to_owned()),
    ])
}

/// The status the agent reports, merged over `current` (its conditions
/// belong to the node lifecycle controller and are kept).
pub fn node_status(facts: &NodeFacts, current: Option<&NodeStatus>) -> NodeStatus {
    let mut resources = BTreeMap::from([
        (
            "cpu".to_owned(),
            Quantity::from_millis(i64::try_from(facts.capacity.cpu_millis).unwrap_or(i64::MAX)),
        ),
        (
            "memory".to_owned(),
            Quantity::from_units(i64::try_from(facts.capacity.memory_bytes).unwrap_or(i64::MAX)),
        ),
        (
            "pods".to_owned(),
            Quantity::from_units(i64::from(facts.max_pods)),
        ),
    ]);
    if let Some((_, bytes)) = &facts.local_volumes {
        resources.insert(
            "ephemeral-storage".to_owned(),
            Quantity::from_units(i64::try_from(*bytes).unwrap_or(i64::MAX)),
        );
    }
    NodeStatus {
        capacity: resources.clone(),
        allocatable: resources,
        conditions: current.map(|s| s.conditions.clone()).unwrap_or_default(),
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.name.clone(),
            },
        ],
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(facts.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            kernel_version: kernel_version(),
            container_runtime_version: facts.runtime_version.clone(),
            kubelet_version: format!("jotasu-agent/{}", env!("CARGO_PKG_VERSION")),
            operating_system: "linux".into(),
            architecture: arch().into(),
        }),
    }
}

/// Registers the node (retrying, with capped and jittered backoff, while
/// no control plane answers: the pods and data plane are left as they
/// are meanwhile) and returns its pod CIDR.
pub async fn register(client: &Client, facts: &NodeFacts) -> Result<Ipv4Network, RegisterError> {
    let api = |source| RegisterError::Api {
        node: facts.name.clone(),
        source,
    };
    let r = ObjectRef {
        kind: Kind::Node,
        namespace: None,
        name: facts.name.clone(),
    };
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0u32;
    loop {
        match register_once(client, facts, &r).await {
            Ok(cidr) => {
                let net: Ipv4Network = cidr.parse().map_err(|_| RegisterError::BadCidr {
                    node: facts.name.clone(),
                    cidr: cidr.clone(),
                })?;
                if attempts > 0 {
                    info!(node = %facts.name, attempts, "a control plane answers again: resyncing");
                }
                info!(node = %facts.name, pod_cidr = %net, ip = %facts.ip, "node registered");
                return Ok(net);
            }
            Err(e) if retryable(&e) => {
                attempts += 1;
                let wait = jittered(delay);
                if matches!(e, ClientError::Connect { .. }) {
                    // Loud: nothing can change on this node until it answers.
                    warn!(node = %facts.name, error = %e, retry_in = ?wait, attempts, "NO CONTROL PLANE ANSWERS: the node keeps its pods and its data plane as they are and keeps trying");
                } else {
                    warn!(node = %facts.name, error = %e, retry_in = ?wait, "registration failed; retrying");
                }
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
            Err(e) => return Err(api(e)),
        }
    }
}

/// The longest wait between two registration attempts.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// `delay` give or take a fifth, so nodes that lost the control plane
/// together do not all call it back at the same instant.
pub fn jittered(delay: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(delay.as_nanos());
    // A fraction in [0.8, 1.2).
    let unit = (h.finish() % 1000) as f64 / 1000.0;
    delay.mul_f64(0.8 + 0.4 * unit)
}

fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::Transport(_) => true,
        ClientError::Api(api) => {
            e.is_conflict()
                || matches!(
                    api.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
                )
        }
        _ => false,
    }
}

async fn register_once(
    client: &Client,
    facts: &NodeFacts,
    r: &ObjectRef,
) -> Result<String, ClientError> {
    let existing = match client.get(r).await {
        Ok(Object::Node(n)) => Some(n),
        Ok(_) => None,
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let mut labels = existing
        .as_ref()
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let wanted = node_labels(facts);
    let mut annotations = existing
        .as_ref()
        .map(|n| n.metadata.annotations.clone())
        .unwrap_or_default();
    let dir = facts.local_volumes.as_ref().map(|(d, _)| d.clone());
    let annotated = annotations.get(VOLUME_DIR_ANNOTATION) == dir.as_ref();
    let mut node = match existing {
        Some(n) if annotated && wanted.iter().all(|(k, v)| labels.get(k) == Some(v)) => n,
        _ => {
            labels.extend(wanted);
            match dir {
                Some(d) => annotations.insert(VOLUME_DIR_ANNOTATION.to_owned(), d),
                None => annotations.remove(VOLUME_DIR_ANNOTATION),
            };
            let mut n = Node::default();
            n.metadata.name = Some(facts.name.clone());
            n.metadata.labels = labels;
            n.metadata.annotations = annotations;
            client.apply(&[Object::Node(n)], false).await?;
            match client.get(r).await? {
                Object::Node(n) => n,
                _ => {
                    return Err(ClientError::Decode(format!(
                        "node {} is not a Node",
                        facts.name
                    )));
                }
            }
        }
    };
    node.status = Some(node_status(facts, node.status.as_ref()));
    let updated = client.update_status(&Object::Node(node)).await?;
    match updated {
        Object::Node(n) => Ok(n.spec.pod_cidr.unwrap_or_default()),
        _ => Err(ClientError::Decode(format!(
            "node {} is not a Node",
            facts.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(8) && d < Duration::from_secs(12),
                "{d:?}"
            );
        }
    }
}
