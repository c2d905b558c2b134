//! Deployments, ReplicaSets, DaemonSets and StatefulSets: selector,
//! replica counts, strategy, the pod template and conditions;
//! ControllerRevisions: owner, number and data.

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::kinds::statefulset::StatefulSetUpdateStrategyType;
use jotasu_api::kinds::workloads::{DaemonSetUpdateStrategyType, DeploymentStrategyType};
use jotasu_api::{
    ControllerRevision, DaemonSet, Deployment, IntOrString, Pod, ReplicaSet, StatefulSet,
};

use super::pod::template;
use super::writer::Writer;
use crate::table::{format_labels, selector_text};

fn or_default(v: Option<&IntOrString>, default: &str) -> String {
    v.map_or_else(|| default.to_owned(), ToString::to_string)
}

/// A Deployment.
pub fn deployment(d: &Deployment) -> String {
    let mut w = Writer::default();
    w.name(&d.metadata);
    w.created(&d.metadata);
    w.labels_annotations(&d.metadata);
    w.field(0, "Selector", selector_text(&d.spec.selector));
    let s = d.status.clone().unwrap_or_default();
    w.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            d.spec.replicas(),
            s.updated_replicas,
            s.replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
    );
    let strategy = d.spec.strategy.clone().unwrap_or_default();
    let kind = strategy.type_.unwrap_or_default();
    w.field(0, "StrategyType", format!("{kind:?}"));
    w.field(0, "MinReadySeconds", d.spec.min_ready_seconds.unwrap_or(0));
    if kind == DeploymentStrategyType::RollingUpdate {
        let ru = strategy.rolling_update.unwrap_or_default();
        w.field(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                or_default(ru.max_unavailable.as_ref(), "25%"),
                or_default(ru.max_surge.as_ref(), "25%")
            ),
        );
    }
    template(&mut w, &d.spec.template);
    w.conditions(&s.conditions, true);
    w.finish()
}

/// A ReplicaSet.
pub fn replicaset(r: &ReplicaSet) -> String {
    let mut w = Writer::default();
    w.name(&r.metadata);
    w.field(0, "Selector", selector_text(&r.spec.selector));
    w.labels_annotations(&r.metadata);
    if let Some(owner) = r.metadata.controller_ref() {
        w.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    let s = r.status.clone().unwrap_or_default();
    w.field(
        0,
        "Replicas",
        format!("{} current / {} desired", s.replicas, r.spec.replicas()),
    );
    w.field(
        0,
        "Pods Status",
        format!(
            "{} Ready / {} Available",
            s.ready_replicas, s.available_replicas
        ),
    );
    template(&mut w, &r.spec.template);
    w.conditions(&s.conditions, false);
    w.finish()
}

/// A DaemonSet.
pub fn daemonset(d: &DaemonSet) -> String {
    let mut w = Writer::default();
    w.name(&d.metadata);
    w.field(0, "Selector", selector_text(&d.spec.selector));
    w.field(
        0,
        "Node-Selector",
        format_labels(&d.spec.template.spec.node_selector),
    );
    w.labels_annotations(&d.metadata);
    let s = d.status.clone().unwrap_or_default();
    w.field(
        0,
        "Desired Number of Nodes Scheduled",
        s.desired_number_scheduled,
    );
    w.field(
        0,
        "Current Number of Nodes Scheduled",
        s.current_number_scheduled,
    );
    w.field(
        0,
        "Number of Nodes Scheduled with Up-to-date Pods",
        s.updated_number_scheduled,
    );
    w.field(
        0,
        "Number of Nodes Scheduled with Available Pods",
        s.number_available,
    );
    w.field(0, "Number of Nodes Misscheduled", s.number_misscheduled);
    let strategy = d.spec.update_strategy.clone().unwrap_or_default();
    let kind = strategy.type_.unwrap_or_default();
    w.field(0, "UpdateStrategy", format!("{kind:?}"));
    if kind == DaemonSetUpdateStrategyType::RollingUpdate {
        let ru = strategy.rolling_update.unwrap_or_default();
        w.field(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                or_default(ru.max_unavailable.as_ref(), "1"),
                or_default(ru.max_surge.as_ref(), "0")
            ),
        );
    }
    template(&mut w, &d.spec.template);
    w.conditions(&s.conditions, true);
    w.finish()
}

/// A StatefulSet, with the phases of its `pods`.
pub fn statefulset(d: &StatefulSet, pods: &[Pod]) -> String {
    let mut w = Writer::default();
    w.name(&d.metadata);
    w.created(&d.metadata);
    w.field(0, "Selector", selector_text(&d.spec.selector));
    w.labels_annotations(&d.metadata);
    let s = d.status.clone().unwrap_or_default();
    w.field(
        0,
        "Replicas",
        format!("{} desired | {} total", d.spec.replicas(), s.replicas),
    );
    let kind = d.spec.update_type();
    w.field(0, "Update Strategy", format!("{kind:?}"));
    if kind == StatefulSetUpdateStrategyType::RollingUpdate {
        w.field(1, "Partition", d.spec.partition());
    }
    let phase = |p: PodPhase| {
        pods.iter()
            .filter(|pod| pod.status.as_ref().and_then(|s| s.phase) == Some(p))
            .count()
    };
    w.field(
        0,
        "Pods Status",
        format!(
            "{} Running / {} Waiting / {} Succeeded / {} Failed",
            phase(PodPhase::Running),
            phase(PodPhase::Pending),
            phase(PodPhase::Succeeded),
            phase(PodPhase::Failed)
        ),
    );
    template(&mut w, &d.spec.template);
    if d.spec.volume_claim_templates.is_empty() {
        w.field(0, "Volume Claims", "<none>");
    } else {
        w.line(0, "Volume Claims:");
        for t in &d.spec.volume_claim_templates {
            w.field(1, "Name", t.metadata.name());
            w.field(
                1,
                "StorageClass",
                t.spec.storage_class_name.as_deref().unwrap_or_default(),
            );
            w.labels(1, "Labels", &t.metadata.labels);
            let capacity = t
                .spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.get("storage"))
                .map(ToString::to_string)
                .unwrap_or_default();
            w.field(1, "Capacity", capacity);
            w.field(
                1,
                "Access Modes",
                format!("[{}]", t.spec.access_modes.join(" ")),
            );
        }
    }
    w.conditions(&s.conditions, false);
    w.finish()
}

/// A PodDisruptionBudget.
pub fn disruption_budget(b: &jotasu_api::PodDisruptionBudget) -> String {
    let mut w = Writer::default();
    w.name(&b.metadata);
    if let Some(v) = &b.spec.min_available {
        w.field(0, "Min available", v);
    }
    if let Some(v) = &b.spec.max_unavailable {
        w.field(0, "Max unavailable", v);
    }
    w.field(
        0,
        "Selector",
        b.spec
            .selector
            .as_ref()
            .map_or_else(|| "<unset>".to_owned(), selector_text),
    );
    let s = b.status.clone().unwrap_or_default();
    w.line(0, "Status:");
    w.field(2, "Allowed disruptions", s.disruptions_allowed);
    w.field(2, "Current", s.current_healthy);
    w.field(2, "Desired", s.desired_healthy);
    w.field(2, "Total", s.expected_pods);
    w.conditions(&s.conditions, true);
    w.finish()
}

/// A ControllerRevision.
pub fn controller_revision(r: &ControllerRevision) -> String {
    let mut w = Writer::default();
    w.name(&r.metadata);
    w.labels_annotations(&r.metadata);
    if let Some(owner) = r.metadata.controller_ref() {
        w.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    w.field(0, "Revision", r.revision);
    w.field(
        0,
        "Data",
        serde_json::to_string(&r.data).unwrap_or_default(),
    );
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_page() {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": "2024-05-01T12:00:00Z", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}},
            "status": {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2,
                       "unavailableReplicas": 1, "readyReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True",
                                       "reason": "MinimumReplicasAvailable"}]}
        }))
        .unwrap();
        let text = deployment(&d);
        for want in [
            "Name:                   web\n",
            "CreationTimestamp:      Wed, 01 May 2024 12:00:00 +0000\n",
            "Selector:               app=web\n",
            "Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable\n",
            "StrategyType:           RollingUpdate\n",
            "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n",
            "Pod Template:\n  Labels:  app=web\n  Containers:\n    web:\n",
            "  Available  True    MinimumReplicasAvailable\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
