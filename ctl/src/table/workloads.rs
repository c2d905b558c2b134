//! Deployments (`NAME READY UP-TO-DATE AVAILABLE AGE`), ReplicaSets
//! (`NAME DESIRED CURRENT READY AGE`), DaemonSets
//! (`NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE`)
//! and StatefulSets (`NAME READY AGE`); wide: `CONTAINERS IMAGES
//! SELECTOR` (StatefulSets: `CONTAINERS IMAGES`); ControllerRevisions
//! (`NAME CONTROLLER REVISION AGE`).

use jotasu_api::kinds::pod::PodTemplateSpec;
use jotasu_api::{
    ControllerRevision, DaemonSet, Deployment, LabelSelector, ReplicaSet, StatefulSet,
};

use super::{NONE, format_labels};

pub(super) const DEPLOYMENT_COLUMNS: &[&str] = &["READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
pub(super) const REPLICASET_COLUMNS: &[&str] = &["DESIRED", "CURRENT", "READY", "AGE"];
pub(super) const DAEMONSET_COLUMNS: &[&str] = &[
    "DESIRED",
    "CURRENT",
    "READY",
    "UP-TO-DATE",
    "AVAILABLE",
    "NODE SELECTOR",
    "AGE",
];
pub(super) const WIDE: &[&str] = &["CONTAINERS", "IMAGES", "SELECTOR"];
pub(super) const STATEFULSET_COLUMNS: &[&str] = &["READY", "AGE"];
pub(super) const STATEFULSET_WIDE: &[&str] = &["CONTAINERS", "IMAGES"];
pub(super) const REVISION_COLUMNS: &[&str] = &["CONTROLLER", "REVISION", "AGE"];
pub(super) const PDB_COLUMNS: &[&str] = &[
    "MIN AVAILABLE",
    "MAX UNAVAILABLE",
    "ALLOWED DISRUPTIONS",
    "AGE",
];

pub(super) fn pdb_row(b: &jotasu_api::PodDisruptionBudget, age: String) -> Vec<String> {
    let or_na = |v: &Option<jotasu_api::IntOrString>| {
        v.as_ref()
            .map_or_else(|| "N/A".to_owned(), ToString::to_string)
    };
    vec![
        or_na(&b.spec.min_available),
        or_na(&b.spec.max_unavailable),
        b.status
            .as_ref()
            .map_or(0, |s| s.disruptions_allowed)
            .to_string(),
        age,
    ]
}

pub(super) fn statefulset_row(d: &StatefulSet, age: String) -> Vec<String> {
    let status = d.status.clone().unwrap_or_default();
    vec![
        format!("{}/{}", status.ready_replicas, d.spec.replicas()),
        age,
    ]
}

pub(super) fn statefulset_wide(d: &StatefulSet) -> Vec<String> {
    let mut cells = template_wide(&d.spec.template, &d.spec.selector);
    cells.truncate(2);
    cells
}

pub(super) fn revision_row(r: &ControllerRevision, age: String) -> Vec<String> {
    let controller = r.metadata.controller_ref().map_or_else(
        || NONE.to_owned(),
        |o| {
            let group = o.api_version.split_once('/').map_or("", |(g, _)| g);
            let kind = o.kind.to_ascii_lowercase();
            if group.is_empty() {
                format!("{kind}/{}", o.name)
            } else {
                format!("{kind}.{group}/{}", o.name)
            }
        },
    );
    vec![controller, r.revision.to_string(), age]
}

pub(super) fn deployment_row(d: &Deployment, age: String) -> Vec<String> {
    let status = d.status.clone().unwrap_or_default();
    vec![
        format!("{}/{}", status.ready_replicas, d.spec.replicas()),
        status.updated_replicas.to_string(),
        status.available_replicas.to_string(),
        age,
    ]
}

pub(super) fn deployment_wide(d: &Deployment) -> Vec<String> {
    template_wide(&d.spec.template, &d.spec.selector)
}

pub(super) fn replicaset_row(r: &ReplicaSet, age: String) -> Vec<String> {
    let status = r.status.clone().unwrap_or_default();
    vec![
        r.spec.replicas().to_string(),
        status.replicas.to_string(),
        status.ready_replicas.to_string(),
        age,
    ]
}

pub(super) fn replicaset_wide(r: &ReplicaSet) -> Vec<String> {
    template_wide(&r.spec.template, &r.spec.selector)
}

pub(super) fn daemonset_row(d: &DaemonSet, age: String) -> Vec<String> {
    let s = d.status.clone().unwrap_or_default();
    vec![
        s.desired_number_scheduled.to_string(),
        s.current_number_scheduled.to_string(),
        s.number_ready.to_string(),
        s.updated_number_scheduled.to_string(),
        s.number_available.to_string(),
        format_labels(&d.spec.template.spec.node_selector),
        age,
    ]
}

pub(super) fn daemonset_wide(d: &DaemonSet) -> Vec<String> {
    template_wide(&d.spec.template, &d.spec.selector)
}

/// Container names, images and the selector, comma-separated.
pub(super) fn template_wide(template: &PodTemplateSpec, selector: &LabelSelector) -> Vec<String> {
    let containers = &template.spec.containers;
    vec![
        containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        containers
            .iter()
            .map(|c| c.image.as_str())
            .collect::<Vec<_>>()
            .join(","),
        selector_text(selector),
    ]
}

/// The selector in kubectl's string form, `<none>` when empty.
pub fn selector_text(selector: &LabelSelector) -> String {
    if selector.is_empty() {
        NONE.to_owned()
    } else {
        selector.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    fn template() -> serde_json::Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [
                {"name": "web", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}
        })
    }

    #[test]
    fn deployment_columns() {
        let d = object(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": CREATED},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
        }));
        let opts = TableOptions {
            wide: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Deployment, &[d], &opts),
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES               SELECTOR\n\
             web    2/3     3            2           5s    web,log      nginx:1.25,busybox   app=web\n"
        );
    }

    #[test]
    fn daemonset_columns_without_status() {
        let d = object(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "creationTimestamp": CREATED},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::DaemonSet, &[d], &opts),
            "NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE\n\
             agent   0         0         0       0            0           disk=ssd        5s\n"
        );
    }
}
