//! PersistentVolumes, PersistentVolumeClaims (with the pods using them
//! and why a claim waits) and StorageClasses, laid out as kubectl does.

use jotasu_api::kinds::affinity::NodeSelectorTerm;
use jotasu_api::kinds::storage::{BINDING_CONDITION, STORAGE};
use jotasu_api::{PersistentVolume, PersistentVolumeClaim, Pod, StorageClass};

use super::writer::{NONE, Writer};
use crate::table::{access_modes, claim_of};

fn term_text(t: &NodeSelectorTerm) -> String {
    let reqs = t.match_expressions.iter().chain(&t.match_fields);
    let parts: Vec<String> = reqs
        .map(|r| {
            let op = format!("{:?}", r.operator).to_ascii_lowercase();
            if r.values.is_empty() {
                format!("{} {op}", r.key)
            } else {
                format!("{} {op} [{}]", r.key, r.values.join(", "))
            }
        })
        .collect();
    parts.join(", ")
}

/// A PersistentVolume's page.
pub fn persistent_volume(pv: &PersistentVolume) -> String {
    let mut w = Writer::default();
    w.name(&pv.metadata);
    w.labels_annotations(&pv.metadata);
    w.field(0, "StorageClass", pv.class());
    w.field(0, "Status", pv.phase());
    w.field(0, "Claim", claim_of(pv));
    w.field(
        0,
        "Reclaim Policy",
        pv.spec
            .persistent_volume_reclaim_policy
            .as_deref()
            .unwrap_or(""),
    );
    w.field(0, "Access Modes", access_modes(&pv.spec.access_modes));
    w.field(
        0,
        "VolumeMode",
        pv.spec.volume_mode.as_deref().unwrap_or("Filesystem"),
    );
    w.field(
        0,
        "Capacity",
        pv.spec
            .capacity
            .get(STORAGE)
            .map(ToString::to_string)
            .unwrap_or_default(),
    );
    let terms = pv.required_terms();
    if terms.is_empty() {
        w.field(0, "Node Affinity", NONE);
    } else {
        w.line(0, "Node Affinity:");
        w.line(1, "Required Terms:");
        for (i, t) in terms.iter().enumerate() {
            w.field(2, &format!("Term {i}"), term_text(t));
        }
    }
    let status = pv.status.clone().unwrap_or_default();
    w.field(0, "Message", status.message.as_deref().unwrap_or(""));
    w.line(0, "Source:");
    if let Some(l) = &pv.spec.local {
        w.field(
            1,
            "Type",
            "LocalVolume (a persistent volume backed by local storage on a node)",
        );
        w.field(1, "Path", &l.path);
    } else if let Some(h) = &pv.spec.host_path {
        w.field(1, "Type", "HostPath (bare host directory volume)");
        w.field(1, "Path", &h.path);
        w.field(1, "HostPathType", h.type_.as_deref().unwrap_or(""));
    }
    w.field(0, "Events", NONE);
    w.finish()
}

/// A claim's page: the pods using it (`pods`, its namespace's) and, while
/// it waits, why (the PV controller's condition, shown as kubectl shows
/// the event).
pub fn persistent_volume_claim(pvc: &PersistentVolumeClaim, pods: &[Pod]) -> String {
    let mut w = Writer::default();
    w.name(&pvc.metadata);
    w.field(
        0,
        "StorageClass",
        pvc.spec.storage_class_name.as_deref().unwrap_or(""),
    );
    w.field(0, "Status", crate::table::claim_phase(pvc));
    w.field(0, "Volume", pvc.spec.volume_name.as_deref().unwrap_or(""));
    w.labels_annotations(&pvc.metadata);
    let status = pvc.status.clone().unwrap_or_default();
    w.field(
        0,
        "Capacity",
        status
            .capacity
            .get(STORAGE)
            .map(ToString::to_string)
            .unwrap_or_default(),
    );
    w.field(0, "Access Modes", access_modes(&status.access_modes));
    w.field(
        0,
        "VolumeMode",
        pvc.spec.volume_mode.as_deref().unwrap_or("Filesystem"),
    );
    let users: Vec<&str> = pods
        .iter()
        .filter(|p| {
            p.spec.volumes.iter().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == pvc.metadata.name())
            })
        })
        .map(|p| p.metadata.name())
        .collect();
    w.field(
        0,
        "Used By",
        if users.is_empty() {
            NONE.to_owned()
        } else {
            users.join(", ")
        },
    );
    let waiting = status
        .conditions
        .iter()
        .find(|c| c.type_ == BINDING_CONDITION && c.status == "False");
    match waiting {
        None => w.field(0, "Events", NONE),
        Some(c) => {
            w.line(0, "Events:");
            let reason = c.reason.clone().unwrap_or_default();
            let kind = match reason.as_str() {
                "WaitForFirstConsumer" | "WaitForPodScheduled" | "ExternalProvisioning" => "Normal",
                _ => "Warning",
            };
            w.table(
                1,
                &["Type", "Reason", "From", "Message"],
                &[vec![
                    kind.to_owned(),
                    reason,
                    "persistentvolume-controller".to_owned(),
                    c.message.clone().unwrap_or_default(),
                ]],
            );
        }
    }
    w.finish()
}

/// A StorageClass's page.
pub fn storage_class(sc: &StorageClass) -> String {
    let mut w = Writer::default();
    w.name(&sc.metadata);
    w.field(
        0,
        "IsDefaultClass",
        if sc.is_default() { "Yes" } else { "No" },
    );
    w.annotations(0, &sc.metadata.annotations);
    w.field(0, "Provisioner", &sc.provisioner);
    let params: Vec<String> = sc
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    w.field(
        0,
        "Parameters",
        if params.is_empty() {
            NONE.to_owned()
        } else {
            params.join(",")
        },
    );
    w.field(
        0,
        "AllowVolumeExpansion",
        sc.allow_volume_expansion
            .map_or_else(|| "<unset>".to_owned(), |b| format!("{b}")),
    );
    w.field(0, "MountOptions", NONE);
    w.field(
        0,
        "ReclaimPolicy",
        sc.reclaim_policy.as_deref().unwrap_or("Delete"),
    );
    w.field(
        0,
        "VolumeBindingMode",
        sc.volume_binding_mode.as_deref().unwrap_or("Immediate"),
    );
    w.field(0, "Events", NONE);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_waiting_claim_says_why_and_who_uses_it() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gold",
                "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending", "conditions": [{"type": "Bound", "status": "False",
                "reason": "ProvisioningFailed",
                "message": "storageclass.storage.k8s.io \"gold\" not found"}]}}))
        .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
        .unwrap();
        let page = persistent_volume_claim(&pvc, &[pod]);
        assert!(page.contains("Status:        Pending"), "{page}");
        assert!(page.contains("Used By:       web"), "{page}");
        assert!(
            page.contains("Warning  ProvisioningFailed  persistentvolume-controller  storageclass.storage.k8s.io \"gold\" not found"),
            "{page}"
        );
    }

    #[test]
    fn a_local_volume_shows_its_node_and_path() {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": "/var/lib/x"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}}}))
        .unwrap();
        let page = persistent_volume(&pv);
        assert!(
            page.contains("Term 0:  kubernetes.io/hostname in [n1]"),
            "{page}"
        );
        assert!(page.contains("Path:  /var/lib/x"), "{page}");
        assert!(page.contains("Status:          Pending"), "{page}");
    }
}
