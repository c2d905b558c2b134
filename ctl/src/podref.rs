//! The pod a `logs` or `exec` argument names: `NAME`, `pod/NAME`, or a
//! workload (`deployment/NAME`, `replicaset/NAME`, `daemonset/NAME`,
//! `job/NAME`), of
//! which kubectl picks one pod: bound before unbound, Running before
//! Unknown before Pending, ready before not, fewer restarts, newer.

use std::cmp::Reverse;

use jotasu_api::client::Client;
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::meta::ConditionStatus;
use jotasu_api::{Kind, LabelSelector, Object, Pod};

use crate::args::{object_ref, parse_kind};
use crate::names::slash_name;
use crate::report::{CtlError, note};

/// The name of the pod `arg` names in `namespace`.
pub async fn resolve(client: &Client, namespace: &str, arg: &str) -> Result<String, CtlError> {
    let Some((kind, name)) = arg.split_once('/') else {
        return Ok(arg.to_owned());
    };
    let kind = parse_kind(kind)?;
    if name.is_empty() {
        return Err(CtlError::Usage(format!(
            "arguments in resource/name form must have a single resource and name: {arg:?}"
        )));
    }
    let selector = match kind {
        Kind::Pod => return Ok(name.to_owned()),
        Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet | Kind::Job => {
            match client.get(&object_ref(kind, namespace, name)).await? {
                Object::Deployment(d) => d.spec.selector,
                Object::ReplicaSet(r) => r.spec.selector,
                Object::DaemonSet(d) => d.spec.selector,
                Object::Job(j) => j.spec.selector.unwrap_or_default(),
                _ => LabelSelector::default(),
            }
        }
        _ => {
            return Err(CtlError::Usage(format!(
                "cannot pick a pod of a {kind}: name a pod, or a deployment, replicaset, daemonset or job"
            )));
        }
    };
    let pods = pods_of(client, namespace, &selector).await?;
    let Some(pod) = pick(&pods) else {
        return Err(CtlError::Usage(format!(
            "no pods found for {}",
            slash_name(kind, name)
        )));
    };
    if pods.len() > 1 {
        note(&format!(
            "Found {} pods, using pod/{}",
            pods.len(),
            pod.metadata.name()
        ));
    }
    Ok(pod.metadata.name().to_owned())
}

async fn pods_of(
    client: &Client,
    namespace: &str,
    selector: &LabelSelector,
) -> Result<Vec<Pod>, CtlError> {
    if selector.is_empty() {
        return Ok(Vec::new());
    }
    let list = client
        .list(Kind::Pod, Some(namespace), &selector.to_string())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect())
}

/// The pod kubectl would pick.
pub fn pick(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().max_by_key(|p| {
        let status = p.status.as_ref();
        let phase = match status.and_then(|s| s.phase) {
            Some(PodPhase::Running) => 3,
            Some(PodPhase::Unknown) => 2,
            Some(PodPhase::Pending) => 1,
            _ => 0,
        };
        let ready = status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
        });
        let restarts: i64 = status.map_or(0, |s| {
            s.container_statuses
                .iter()
                .map(|c| i64::from(c.restart_count))
                .sum()
        });
        let created = p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        (
            p.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()),
            phase,
            ready,
            Reverse(restarts),
            created,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: bool, phase: &str, ready: bool, restarts: i32, created: &str) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
        if node {
            spec["nodeName"] = json!("n1");
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": spec,
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": "c", "image": "i", "restartCount": restarts}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn picks_as_kubectl() {
        let t1 = "2024-05-01T12:00:00Z";
        let t2 = "2024-05-01T13:00:00Z";
        let name = |pods: &[Pod]| pick(pods).map(|p| p.metadata.name().to_owned());
        assert_eq!(name(&[]), None);
        let pods = [
            pod("unbound", false, "Pending", false, 0, t2),
            pod("pending", true, "Pending", false, 0, t2),
            pod("running", true, "Running", false, 0, t1),
        ];
        assert_eq!(name(&pods).as_deref(), Some("running"));
        let pods = [
            pod("not-ready", true, "Running", false, 0, t2),
            pod("ready", true, "Running", true, 0, t1),
        ];
        assert_eq!(name(&pods).as_deref(), Some("ready"));
        let pods = [
            pod("restarted", true, "Running", true, 3, t2),
            pod("steady", true, "Running", true, 0, t1),
        ];
        assert_eq!(name(&pods).as_deref(), Some("steady"));
        let pods = [
            pod("older", true, "Running", true, 0, t1),
            pod("newer", true, "Running", true, 0, t2),
        ];
        assert_eq!(name(&pods).as_deref(), Some("newer"));
    }
}
