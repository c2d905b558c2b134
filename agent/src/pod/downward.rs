//! The downward API as the kubelet resolves it: pod fields
//! (`metadata.name`, `metadata.labels['k']`, `status.podIP`, …) and
//! container resources (`limits.memory` over a divisor, rounded up; a
//! missing limit is the node's allocatable), for env vars and volume files.

use std::collections::BTreeMap;

use jotasu_api::kinds::pod::{ObjectFieldSelector, ResourceFieldSelector};
use jotasu_api::validate::downward::split_subscript;
use jotasu_api::{Container, Pod, Quantity};

use crate::pod::pod_namespace;

/// What the downward API needs beyond the pod object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The pod's IP (empty until its network is up).
    pub pod_ip: String,
    /// The node's IP.
    pub host_ip: String,
    /// The node's allocatable CPU in millicores (a missing CPU limit).
    pub cpu_millis: u64,
    /// The node's allocatable memory in bytes (a missing memory limit).
    pub memory_bytes: u64,
}

/// A downward API reference the agent cannot resolve (validation refuses
/// these; a pod stored before would get this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownwardError {
    /// An unsupported field path.
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    /// An unsupported resource.
    #[error("unsupported container resource: {0}")]
    Resource(String),
    /// `containerName` names no container of the pod.
    #[error("container {0:?} not found in the pod")]
    Container(String),
}

/// `key="value"` lines in key order (the kubelet's `FormatMap`).
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a pod field.
pub fn field_value(
    pod: &Pod,
    sel: &ObjectFieldSelector,
    node: &NodeFacts,
) -> Result<String, DownwardError> {
    let meta = &pod.metadata;
    let path = sel.field_path.as_str();
    if let Some((base, key)) = split_subscript(path) {
        return match base {
            "metadata.labels" => Ok(meta.labels.get(key).cloned().unwrap_or_default()),
            "metadata.annotations" => Ok(meta.annotations.get(key).cloned().unwrap_or_default()),
            _ => Err(DownwardError::FieldPath(path.to_owned())),
        };
    }
    Ok(match path {
        "metadata.name" => meta.name().to_owned(),
        "metadata.namespace" => pod_namespace(pod).to_owned(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => pod.spec.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        "status.podIP" | "status.podIPs" => node.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        _ => return Err(DownwardError::FieldPath(path.to_owned())),
    })
}

fn ceil_div(value: i128, divisor: i128) -> i128 {
    let d = divisor.max(1);
    (value + d - 1).div_euclid(d)
}

/// The value of a container resource: limits (the node's allocatable when
/// unset) or requests, over `divisor` (default 1), rounded up.
pub fn resource_value(
    pod: &Pod,
    container: &Container,
    sel: &ResourceFieldSelector,
    node: &NodeFacts,
) -> Result<String, DownwardError> {
    let target = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) if name != container.name => pod
            .spec
            .containers
            .iter()
            .chain(&pod.spec.init_containers)
            .find(|c| c.name == name)
            .ok_or_else(|| DownwardError::Container(name.to_owned()))?,
        _ => container,
    };
    let (kind, resource) = sel
        .resource
        .split_once('.')
        .ok_or_else(|| DownwardError::Resource(sel.resource.clone()))?;
    let resources = target.resources.clone().unwrap_or_default();
    let map = match kind {
        "limits" => &resources.limits,
        "requests" => &resources.requests,
        _ => return Err(DownwardError::Resource(sel.resource.clone())),
    };
    let nanos = map.get(resource).map(Quantity::nanos);
    let one = Quantity::from_units(1);
    let divisor = sel.divisor.as_ref().unwrap_or(&one).nanos();
    let value = match (resource, nanos) {
        ("cpu", Some(n)) => n,
        ("cpu", None) if kind == "limits" => i128::from(node.cpu_millis) * 1_000_000,
        ("memory", Some(n)) => n,
        ("memory", None) if kind == "limits" => i128::from(node.memory_bytes) * 1_000_000_000,
        ("ephemeral-storage", Some(n)) => n,
        ("cpu" | "memory" | "ephemeral-storage", None) => 0,
        _ => return Err(DownwardError::Resource(sel.resource.clone())),
    };
    Ok(ceil_div(value, divisor).to_string())
}

#[cfg(test)]
mod tests {
    use jotasu_api::kinds::pod::ResourceRequirements;

    use super::*;

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web-1".into());
        p.metadata.namespace = Some("shop".into());
        p.metadata.uid = Some("u-1".into());
        p.metadata.labels.insert("app".into(), "web".into());
        p.metadata
            .labels
            .insert("tier".into(), "front \"end\"".into());
        p.metadata.annotations.insert("note".into(), "hi".into());
        p.spec.node_name = Some("node-1".into());
        let resources = ResourceRequirements {
            requests: [("cpu".to_owned(), Quantity::parse("250m").expect("q"))].into(),
            limits: [("memory".to_owned(), Quantity::parse("64Mi").expect("q"))].into(),
        };
        p.spec.containers = vec![Container {
            name: "app".into(),
            resources: Some(resources),
            ..Container::default()
        }];
        p
    }

    fn facts() -> NodeFacts {
        NodeFacts {
            pod_ip: "10.244.1.5".into(),
            host_ip: "192.168.50.2".into(),
            cpu_millis: 2000,
            memory_bytes: 8 << 30,
        }
    }

    fn field(path: &str) -> Result<String, DownwardError> {
        let sel = ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: path.into(),
        };
        field_value(&pod(), &sel, &facts())
    }

    fn resource(res: &str, divisor: Option<&str>) -> String {
        let p = pod();
        let sel = ResourceFieldSelector {
            container_name: None,
            resource: res.into(),
            divisor: divisor.map(|d| Quantity::parse(d).expect("divisor")),
        };
        resource_value(&p, &p.spec.containers[0], &sel, &facts()).expect("a value")
    }

    #[test]
    fn pod_fields() {
        assert_eq!(field("metadata.name").as_deref(), Ok("web-1"));
        assert_eq!(field("metadata.namespace").as_deref(), Ok("shop"));
        assert_eq!(field("metadata.uid").as_deref(), Ok("u-1"));
        assert_eq!(field("metadata.labels['app']").as_deref(), Ok("web"));
        assert_eq!(field("metadata.labels['none']").as_deref(), Ok(""));
        assert_eq!(field("metadata.annotations['note']").as_deref(), Ok("hi"));
        assert_eq!(
            field("metadata.labels").as_deref(),
            Ok("app=\"web\"\ntier=\"front \\\"end\\\"\"")
        );
        assert_eq!(field("spec.nodeName").as_deref(), Ok("node-1"));
        assert_eq!(field("status.podIP").as_deref(), Ok("10.244.1.5"));
        assert_eq!(field("status.hostIPs").as_deref(), Ok("192.168.50.2"));
        assert!(field("spec.hostname").is_err());
    }

    #[test]
    fn resources_over_divisors_rounded_up() {
        assert_eq!(resource("limits.memory", None), (64u64 << 20).to_string());
        assert_eq!(resource("limits.memory", Some("1Mi")), "64");
        assert_eq!(resource("limits.memory", Some("1G")), "1");
        assert_eq!(resource("requests.cpu", None), "1");
        assert_eq!(resource("requests.cpu", Some("1m")), "250");
        // No CPU limit: the node's allocatable.
        assert_eq!(resource("limits.cpu", None), "2");
        assert_eq!(resource("requests.memory", None), "0");
    }
}
