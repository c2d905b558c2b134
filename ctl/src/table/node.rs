//! Nodes: `NAME STATUS ROLES AGE VERSION` (wide: `INTERNAL-IP EXTERNAL-IP
//! OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME`), VERSION and the last three
//! from the agent's `status.nodeInfo` (`<none>` / `<unknown>` without it;
//! jotasu's nodeInfo has no OS image, so OS-IMAGE is `<unknown>`).

use jotasu_api::Node;
use jotasu_api::kinds::node::NodeSystemInfo;
use jotasu_api::meta::ConditionStatus;

use super::{NONE, join_or_none};

pub(super) const COLUMNS: &[&str] = &["STATUS", "ROLES", "AGE", "VERSION"];
/// `get priorityclasses` columns after NAME, as kubectl's.
pub(super) const PRIORITY_CLASS_COLUMNS: &[&str] =
    &["VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"];

/// A PriorityClass's row.
pub(super) fn priority_class_row(c: &jotasu_api::PriorityClass, age: String) -> Vec<String> {
    vec![
        c.value.to_string(),
        c.global_default.unwrap_or(false).to_string(),
        age,
        c.preemption_policy().to_owned(),
    ]
}

/// A Lease's columns, as kubectl shows them.
pub(super) const LEASE_COLUMNS: &[&str] = &["HOLDER", "AGE"];

/// A Lease's row.
pub(super) fn lease_row(l: &jotasu_api::Lease, age: String) -> Vec<String> {
    vec![
        l.spec
            .holder_identity
            .clone()
            .unwrap_or_else(|| super::NONE.to_owned()),
        age,
    ]
}
pub(super) const WIDE: &[&str] = &[
    "INTERNAL-IP",
    "EXTERNAL-IP",
    "OS-IMAGE",
    "KERNEL-VERSION",
    "CONTAINER-RUNTIME",
];

/// What kubectl shows for a nodeInfo field the node did not report.
const UNKNOWN: &str = "<unknown>";

const ROLE_PREFIX: &str = "node-role.kubernetes.io/";

/// `Ready`, `NotReady` or `Unknown` (no Ready condition), then
/// `,SchedulingDisabled` when cordoned.
pub fn status(n: &Node) -> String {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let mut text = match ready.map(|c| c.status) {
        Some(ConditionStatus::True) => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_owned();
    if n.spec.unschedulable {
        text.push_str(",SchedulingDisabled");
    }
    text
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
pub fn roles(n: &Node) -> String {
    let mut roles: Vec<String> = n
        .metadata
        .labels
        .iter()
        .filter_map(|(k, v)| match k.strip_prefix(ROLE_PREFIX) {
            Some(role) if !role.is_empty() => Some(role.to_owned()),
            _ if k == "kubernetes.io/role" && !v.is_empty() => Some(v.clone()),
            _ => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    join_or_none(roles, ",")
}

/// The first address of a type, `<none>` if there is none.
pub fn address(n: &Node, type_: &str) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.addresses.iter().find(|a| a.type_ == type_))
        .map_or_else(|| NONE.to_owned(), |a| a.address.clone())
}

/// A nodeInfo field, `missing` if the node did not report it.
fn info(n: &Node, field: impl Fn(&NodeSystemInfo) -> &str, missing: &str) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(field)
        .filter(|v| !v.is_empty())
        .unwrap_or(missing)
        .to_owned()
}

pub(super) fn row(n: &Node, age: String) -> Vec<String> {
    let version = info(n, |i| &i.kubelet_version, NONE);
    vec![status(n), roles(n), age, version]
}

pub(super) fn wide(n: &Node) -> Vec<String> {
    vec![
        address(n, "InternalIP"),
        address(n, "ExternalIP"),
        UNKNOWN.to_owned(),
        info(n, |i| &i.kernel_version, UNKNOWN),
        info(n, |i| &i.container_runtime_version, UNKNOWN),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    #[test]
    fn node_columns() {
        let n = object(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": CREATED,
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.100.11"}]}
        }));
        let opts = TableOptions {
            wide: true,
            namespace_column: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Node, &[n], &opts),
            "NAME     STATUS                     ROLES           AGE   VERSION   INTERNAL-IP      EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME\n\
             node-1   Ready,SchedulingDisabled   control-plane   5s    <none>    192.168.100.11   <none>        <unknown>   <unknown>        <unknown>\n"
        );
        let reported = object(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-2", "creationTimestamp": CREATED},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                       "nodeInfo": {"kernelVersion": "6.18.0", "containerRuntimeVersion": "containerd://1.6.20",
                                    "kubeletVersion": "v0.1.0", "operatingSystem": "linux", "architecture": "amd64"}}
        }));
        assert_eq!(
            render(Kind::Node, &[reported], &opts),
            "NAME     STATUS   ROLES    AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME\n\
             node-2   Ready    <none>   5s    v0.1.0    10.0.0.2      <none>        <unknown>   6.18.0           containerd://1.6.20\n"
        );
    }
}
