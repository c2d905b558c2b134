//! Nodes (roles, taints, conditions, addresses, capacity, the pods bound
//! there) and HorizontalPodAutoscalers (target, metrics, bounds).

use jotasu_api::{HorizontalPodAutoscaler, Node, Pod};

use super::writer::{NONE, Writer};
use crate::age::{age, timestamp};
use crate::table::{hpa_reference, hpa_target, node_roles};

fn time_or_empty(t: Option<&jotasu_api::Time>) -> String {
    t.map(timestamp).unwrap_or_default()
}

/// A Node and the pods bound to it.
pub fn node(n: &Node, pods: &[Pod], now: i64) -> String {
    let mut w = Writer::default();
    w.name(&n.metadata);
    w.field(0, "Roles", node_roles(n));
    w.labels_annotations(&n.metadata);
    w.created(&n.metadata);
    let taints: Vec<String> = n
        .spec
        .taints
        .iter()
        .map(|t| match &t.value {
            Some(v) => format!("{}={v}:{:?}", t.key, t.effect),
            None => format!("{}:{:?}", t.key, t.effect),
        })
        .collect();
    w.multiline(0, "Taints", &taints);
    w.field(0, "Unschedulable", n.spec.unschedulable);
    let status = n.status.clone().unwrap_or_default();
    if !status.conditions.is_empty() {
        w.line(0, "Conditions:");
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    format!("{:?}", c.status),
                    time_or_empty(c.last_heartbeat_time.as_ref()),
                    time_or_empty(c.last_transition_time.as_ref()),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        w.table(
            1,
            &[
                "Type",
                "Status",
                "LastHeartbeatTime",
                "LastTransitionTime",
                "Reason",
                "Message",
            ],
            &rows,
        );
    }
    if status.addresses.is_empty() {
        w.field(0, "Addresses", NONE);
    } else {
        w.line(0, "Addresses:");
        for a in &status.addresses {
            w.field(1, &a.type_, &a.address);
        }
    }
    for (title, map) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        if !map.is_empty() {
            w.line(0, format!("{title}:"));
            for (k, v) in map {
                w.field(1, k, v);
            }
        }
    }
    w.field(0, "PodCIDR", n.spec.pod_cidr.as_deref().unwrap_or(NONE));
    w.field(
        0,
        "Non-terminated Pods",
        format!("({} in total)", pods.len()),
    );
    if !pods.is_empty() {
        let rows: Vec<Vec<String>> = pods
            .iter()
            .map(|p| {
                vec![
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name().to_owned(),
                    age(p.metadata.creation_timestamp.as_ref(), now),
                ]
            })
            .collect();
        w.table(1, &["Namespace", "Name", "Age"], &rows);
    }
    w.finish()
}

/// A HorizontalPodAutoscaler.
pub fn hpa(h: &HorizontalPodAutoscaler) -> String {
    let mut w = Writer::default();
    w.name(&h.metadata);
    w.labels_annotations(&h.metadata);
    w.created(&h.metadata);
    w.field(0, "Reference", hpa_reference(h));
    w.field(0, "Metrics", "( current / target )");
    let status = h.status.clone().unwrap_or_default();
    for m in &h.spec.metrics {
        let Some(r) = &m.resource else { continue };
        let current = status
            .current_metrics
            .iter()
            .filter_map(|c| c.resource.as_ref())
            .find(|c| c.name == r.name);
        let (what, value) = match r.target.type_ {
            jotasu_api::kinds::hpa::MetricTargetType::Utilization => (
                format!("resource {} on pods  (as a percentage of request)", r.name),
                current
                    .and_then(|c| c.current.average_utilization)
                    .map(|u| format!("{u}%")),
            ),
            jotasu_api::kinds::hpa::MetricTargetType::AverageValue => (
                format!("resource {} on pods", r.name),
                current.and_then(|c| c.current.average_value.as_ref().map(ToString::to_string)),
            ),
            jotasu_api::kinds::hpa::MetricTargetType::Value => (
                format!("resource {}", r.name),
                current.and_then(|c| c.current.value.as_ref().map(ToString::to_string)),
            ),
        };
        let value = value.unwrap_or_else(|| "<unknown>".to_owned());
        w.field(1, &what, format!("{value} / {}", hpa_target(&r.target)));
    }
    w.field(0, "Min replicas", h.spec.min_replicas.unwrap_or(1));
    w.field(0, "Max replicas", h.spec.max_replicas);
    w.field(
        0,
        &format!("{} pods", h.spec.scale_target_ref.kind),
        format!(
            "{} current / {} desired",
            status.current_replicas, status.desired_replicas
        ),
    );
    w.conditions(&status.conditions, true);
    w.finish()
}

/// A LimitRange's page: one row per type and resource, as kubectl's.
pub fn limit_range(l: &jotasu_api::LimitRange) -> String {
    let mut w = Writer::default();
    w.name(&l.metadata);
    let mut rows = Vec::new();
    for item in &l.spec.limits {
        let mut resources: std::collections::BTreeSet<&String> = item.min.keys().collect();
        for m in [
            &item.max,
            &item.default,
            &item.default_request,
            &item.max_limit_request_ratio,
        ] {
            resources.extend(m.keys());
        }
        for r in resources {
            let cell = |m: &std::collections::BTreeMap<String, jotasu_api::Quantity>| {
                m.get(r).map_or_else(|| "-".to_owned(), ToString::to_string)
            };
            rows.push(vec![
                item.type_.clone(),
                r.clone(),
                cell(&item.min),
                cell(&item.max),
                cell(&item.default_request),
                cell(&item.default),
                cell(&item.max_limit_request_ratio),
            ]);
        }
    }
    w.table(
        0,
        &[
            "Type",
            "Resource",
            "Min",
            "Max",
            "Default Request",
            "Default Limit",
            "Max Limit/Request Ratio",
        ],
        &rows,
    );
    w.finish()
}

/// A ResourceQuota's page: each resource's hard limit (and use, when the
/// status says it).
pub fn resource_quota(q: &jotasu_api::ResourceQuota) -> String {
    let mut w = Writer::default();
    w.name(&q.metadata);
    let used = q.status.as_ref().map(|s| &s.used);
    let rows: Vec<Vec<String>> = q
        .spec
        .hard
        .iter()
        .map(|(r, hard)| {
            vec![
                r.clone(),
                used.and_then(|u| u.get(r))
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                hard.to_string(),
            ]
        })
        .collect();
    w.table(0, &["Resource", "Used", "Hard"], &rows);
    w.finish()
}

/// A PriorityClass's page.
pub fn priority_class(c: &jotasu_api::PriorityClass) -> String {
    let mut w = Writer::default();
    w.name(&c.metadata);
    w.labels_annotations(&c.metadata);
    w.field(0, "Value", c.value);
    w.field(0, "GlobalDefault", c.global_default.unwrap_or(false));
    w.field(0, "PreemptionPolicy", c.preemption_policy());
    w.field(0, "Description", c.description.as_deref().unwrap_or(""));
    w.finish()
}

/// A Lease's page.
pub fn lease(l: &jotasu_api::Lease) -> String {
    let mut w = Writer::default();
    w.name(&l.metadata);
    w.labels_annotations(&l.metadata);
    let text = |t: &Option<jotasu_api::kinds::coordination::MicroTime>| {
        t.as_ref()
            .map_or_else(|| "<unset>".to_owned(), ToString::to_string)
    };
    w.field(
        0,
        "Holder Identity",
        l.spec.holder_identity.as_deref().unwrap_or("<unset>"),
    );
    w.field(
        0,
        "Lease Duration Seconds",
        l.spec.lease_duration_seconds.unwrap_or(0),
    );
    w.field(0, "Acquire Time", text(&l.spec.acquire_time));
    w.field(0, "Renew Time", text(&l.spec.renew_time));
    w.field(
        0,
        "Lease Transitions",
        l.spec.lease_transitions.unwrap_or(0),
    );
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_page() {
        let n: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": "2024-05-01T12:00:00Z"},
            "spec": {"podCIDR": "10.244.1.0/24",
                     "taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2", "memory": "24Gi"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.100.11"}]}
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2024-05-01T12:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        }))
        .unwrap();
        let text = node(&n, &[pod], 1_714_564_805);
        for want in [
            "Taints:             dedicated=infra:NoSchedule\n",
            "  InternalIP:  192.168.100.11\n",
            "Capacity:\n  cpu:                2\n  memory:             24Gi\n",
            "PodCIDR:              10.244.1.0/24\n",
            "Non-terminated Pods:  (1 in total)\n",
            "  default             web-1  5s\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn hpa_page() {
        let h: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "php", "namespace": "default"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "php"},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}}]}
        }))
        .unwrap();
        let text = hpa(&h);
        assert!(text.contains("Reference:"), "{text}");
        assert!(text.contains("Deployment/php\n"), "{text}");
        assert!(
            text.contains("resource cpu on pods  (as a percentage of request):  <unknown> / 50%\n"),
            "{text}"
        );
        assert!(text.contains("0 current / 0 desired\n"), "{text}");
    }
}
