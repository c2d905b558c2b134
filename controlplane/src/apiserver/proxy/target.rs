//! Where a proxied call goes, as pure functions of the objects: the pod's
//! node and container, the node agent's address, the nodes an image is
//! imported onto.

use std::net::{IpAddr, SocketAddr};

use jotasu_api::meta::ConditionStatus;
use jotasu_api::{Kind, Node, ObjectRef, Pod};

use super::error::ProxyError;
use crate::apiserver::error::ApiServerError;

/// What the container is for: logs want the only one unless named, exec
/// takes the first (as kubectl defaults it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `Logs`.
    Logs,
    /// `Exec`.
    Exec,
}

/// The node `pod` is bound to.
pub fn pod_node(pod: &Pod) -> Result<&str, ProxyError> {
    pod.spec
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ProxyError::Unscheduled {
            pod: pod.metadata.name().to_owned(),
        })
}

/// The container of `pod` a call is about: `requested` if given (it must
/// be one of the pod's, init containers included), else the default for
/// `purpose` (among the app containers).
pub fn container(pod: &Pod, requested: &str, purpose: Purpose) -> Result<String, ProxyError> {
    let containers = &pod.spec.containers;
    let pod_name = || pod.metadata.name().to_owned();
    if !requested.is_empty() {
        return containers
            .iter()
            .chain(&pod.spec.init_containers)
            .find(|c| c.name == requested)
            .map(|c| c.name.clone())
            .ok_or_else(|| ProxyError::NoSuchContainer {
                container: requested.to_owned(),
                pod: pod_name(),
            });
    }
    match (containers.as_slice(), purpose) {
        ([only], _) => Ok(only.name.clone()),
        ([first, ..], Purpose::Exec) => Ok(first.name.clone()),
        ([], _) => Err(ProxyError::BadRequest(format!(
            "pod {} has no containers",
            pod_name()
        ))),
        (all, Purpose::Logs) => Err(ProxyError::ChooseContainer {
            pod: pod_name(),
            choices: all
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

/// Where `node`'s agent listens: its InternalIP and
/// `status.daemonEndpoints.kubeletEndpoint.Port`.
pub fn agent_address(node: &Node) -> Result<SocketAddr, ProxyError> {
    let missing = |missing| ProxyError::NoEndpoint {
        node: node.metadata.name().to_owned(),
        missing,
    };
    let status = node.status.as_ref();
    let ip: IpAddr = status
        .and_then(|s| s.addresses.iter().find(|a| a.type_ == "InternalIP"))
        .and_then(|a| a.address.parse().ok())
        .ok_or_else(|| missing("InternalIP address"))?;
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .and_then(|e| u16::try_from(e.port).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| missing("daemonEndpoints.kubeletEndpoint.Port"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

/// The nodes an image goes to: those `requested` (each must exist; in the
/// order given, without repeats), else every Ready node (sorted by name).
pub fn import_targets<'a>(
    requested: &[String],
    nodes: &'a [Node],
) -> Result<Vec<&'a Node>, ProxyError> {
    if requested.is_empty() {
        let mut ready: Vec<&Node> = nodes.iter().filter(|n| is_ready(n)).collect();
        ready.sort_by(|a, b| a.metadata.name().cmp(b.metadata.name()));
        return if ready.is_empty() {
            Err(ProxyError::NoReadyNode)
        } else {
            Ok(ready)
        };
    }
    let mut targets: Vec<&Node> = Vec::with_capacity(requested.len());
    for name in requested {
        if targets.iter().any(|t| t.metadata.name() == name) {
            continue;
        }
        let node = nodes
            .iter()
            .find(|n| n.metadata.name() == name)
            .ok_or_else(|| {
                ApiServerError::NotFound(ObjectRef {
                    kind: Kind::Node,
                    namespace: None,
                    name: name.clone(),
                })
            })?;
        targets.push(node);
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: Option<&str>, containers: &[&str]) -> Pod {
        let containers: Vec<_> = containers
            .iter()
            .map(|c| json!({"name": c, "image": "i"}))
            .collect();
        let mut spec = json!({"containers": containers});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).expect("pod")
    }

    fn node(name: &str, ip: Option<&str>, port: Option<i32>, ready: &str) -> Node {
        let mut status = json!({"conditions": [{"type": "Ready", "status": ready}]});
        if let Some(ip) = ip {
            status["addresses"] = json!([{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]);
        }
        if let Some(port) = port {
            status["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "status": status})).expect("node")
    }

    #[test]
    fn the_pods_node() {
        assert_eq!(pod_node(&pod(Some("n1"), &["a"])).expect("bound"), "n1");
        assert_eq!(
            pod_node(&pod(None, &["a"]))
                .expect_err("unbound")
                .to_string(),
            "pod web does not have a host assigned"
        );
    }

    #[test]
    fn containers_as_kubectl_picks_them() {
        let one = pod(Some("n1"), &["a"]);
        let two = pod(Some("n1"), &["a", "b"]);
        assert_eq!(container(&one, "", Purpose::Logs).expect("only"), "a");
        assert_eq!(container(&two, "b", Purpose::Logs).expect("named"), "b");
        assert_eq!(container(&two, "", Purpose::Exec).expect("first"), "a");
        assert_eq!(
            container(&two, "", Purpose::Logs)
                .expect_err("ambiguous")
                .to_string(),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        assert_eq!(
            container(&two, "c", Purpose::Exec)
                .expect_err("unknown")
                .to_string(),
            "container c is not valid for pod web"
        );
    }

    #[test]
    fn the_agents_address() {
        let n = node("n1", Some("10.0.0.5"), Some(10250), "True");
        assert_eq!(
            agent_address(&n).expect("address"),
            "10.0.0.5:10250".parse::<SocketAddr>().expect("addr")
        );
        let e = agent_address(&node("n1", Some("10.0.0.5"), None, "True")).expect_err("no port");
        assert_eq!(
            e.to_string(),
            "node n1 has no agent endpoint (no daemonEndpoints.kubeletEndpoint.Port in its status): is its agent running?"
        );
        assert!(agent_address(&node("n1", None, Some(1), "True")).is_err());
        assert!(agent_address(&node("n1", Some("not-an-ip"), Some(1), "True")).is_err());
        assert!(agent_address(&node("n1", Some("10.0.0.5"), Some(70000), "True")).is_err());
    }

    #[test]
    fn import_goes_to_named_or_ready_nodes() {
        let nodes = [
            node("n2", Some("10.0.0.2"), Some(1), "True"),
            node("n1", Some("10.0.0.1"), Some(1), "True"),
            node("n3", Some("10.0.0.3"), Some(1), "False"),
        ];
        let names = |t: Vec<&Node>| {
            t.iter()
                .map(|n| n.metadata.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(import_targets(&[], &nodes).expect("ready")),
            ["n1", "n2"]
        );
        let asked = ["n3".to_owned(), "n1".to_owned(), "n3".to_owned()];
        assert_eq!(
            names(import_targets(&asked, &nodes).expect("named")),
            ["n3", "n1"]
        );
        let e = import_targets(&["nx".to_owned()], &nodes).expect_err("unknown");
        assert_eq!(e.to_string(), "nodes \"nx\" not found");
        let e = import_targets(&[], &nodes[2..]).expect_err("none ready");
        assert!(matches!(e, ProxyError::NoReadyNode));
    }
}
