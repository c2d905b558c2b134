//! PersistentVolumes, PersistentVolumeClaims and StorageClasses, with
//! kubectl's columns.

use jotasu_api::kinds::storage::STORAGE;
use jotasu_api::{PersistentVolume, PersistentVolumeClaim, StorageClass};

pub(super) const PV_COLUMNS: &[&str] = &[
    "CAPACITY",
    "ACCESS MODES",
    "RECLAIM POLICY",
    "STATUS",
    "CLAIM",
    "STORAGECLASS",
    "VOLUMEATTRIBUTESCLASS",
    "REASON",
    "AGE",
];
pub(super) const PVC_COLUMNS: &[&str] = &[
    "STATUS",
    "VOLUME",
    "CAPACITY",
    "ACCESS MODES",
    "STORAGECLASS",
    "VOLUMEATTRIBUTESCLASS",
    "AGE",
];
pub(super) const SC_COLUMNS: &[&str] = &[
    "PROVISIONER",
    "RECLAIMPOLICY",
    "VOLUMEBINDINGMODE",
    "ALLOWVOLUMEEXPANSION",
    "AGE",
];

/// `-o wide` adds the volume mode, as kubectl does.
pub(super) const VOLUME_MODE: &[&str] = &["VOLUMEMODE"];

/// A volume mode (`Filesystem` when unset).
pub(super) fn mode(m: Option<&str>) -> String {
    m.unwrap_or("Filesystem").to_owned()
}

/// Access modes as kubectl abbreviates them (`RWO,ROX`).
pub fn access_modes(modes: &[String]) -> String {
    modes
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `namespace/name` of the claim a volume is bound to (empty when none).
pub fn claim_of(pv: &PersistentVolume) -> String {
    pv.spec.claim_ref.as_ref().map_or_else(String::new, |c| {
        format!(
            "{}/{}",
            c.namespace.as_deref().unwrap_or(""),
            c.name.as_deref().unwrap_or("")
        )
    })
}

pub(super) fn pv_row(pv: &PersistentVolume, age: String) -> Vec<String> {
    let status = pv.status.as_ref();
    vec![
        pv.spec
            .capacity
            .get(STORAGE)
            .map(ToString::to_string)
            .unwrap_or_default(),
        access_modes(&pv.spec.access_modes),
        pv.spec
            .persistent_volume_reclaim_policy
            .clone()
            .unwrap_or_default(),
        pv.phase().to_owned(),
        claim_of(pv),
        pv.class().to_owned(),
        "<unset>".to_owned(),
        status.and_then(|s| s.reason.clone()).unwrap_or_default(),
        age,
    ]
}

/// A claim's STATUS as kubectl shows it: `Terminating` once deleted (while
/// a pod still uses it), else its phase.
pub fn claim_phase(pvc: &PersistentVolumeClaim) -> &str {
    if pvc.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        pvc.phase()
    }
}

pub(super) fn pvc_row(pvc: &PersistentVolumeClaim, age: String) -> Vec<String> {
    let status = pvc.status.as_ref();
    vec![
        claim_phase(pvc).to_owned(),
        pvc.spec.volume_name.clone().unwrap_or_default(),
        status
            .and_then(|s| s.capacity.get(STORAGE))
            .map(ToString::to_string)
            .unwrap_or_default(),
        status
            .map(|s| access_modes(&s.access_modes))
            .unwrap_or_default(),
        pvc.spec.storage_class_name.clone().unwrap_or_default(),
        "<unset>".to_owned(),
        age,
    ]
}

/// A class's name as kubectl shows it (`standard (default)`).
pub(super) fn sc_name(sc: &StorageClass) -> String {
    if sc.is_default() {
        format!("{} (default)", sc.metadata.name())
    } else {
        sc.metadata.name().to_owned()
    }
}

pub(super) fn sc_row(sc: &StorageClass, age: String) -> Vec<String> {
    vec![
        sc.provisioner.clone(),
        sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
        sc.volume_binding_mode
            .clone()
            .unwrap_or_else(|| "Immediate".into()),
        sc.allow_volume_expansion.unwrap_or(false).to_string(),
        age,
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    fn table(kind: Kind, objects: &[jotasu_api::Object]) -> String {
        let options = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        render(kind, objects, &options)
    }

    #[test]
    fn volumes_claims_and_classes_have_kubectls_columns() {
        let pv = object(json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                "claimRef": {"namespace": "default", "name": "data"},
                "hostPath": {"path": "/srv/a"}},
            "status": {"phase": "Bound"}}));
        let text = table(Kind::PersistentVolume, &[pv]);
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .split("  ")
            .filter(|s| !s.is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(
            header,
            [
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE"
            ]
        );
        let row = lines.next().unwrap();
        for cell in [
            "pv1",
            "1Gi",
            "RWO,ROX",
            "Delete",
            "Bound",
            "default/data",
            "standard",
            "<unset>",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        let pvc = object(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                "resources": {"requests": {"storage": "1Gi"}}}}));
        let wide = render(
            Kind::PersistentVolumeClaim,
            std::slice::from_ref(&pvc),
            &TableOptions {
                now: NOW,
                wide: true,
                ..TableOptions::default()
            },
        );
        assert!(
            wide.lines()
                .next()
                .unwrap()
                .trim_end()
                .ends_with(" VOLUMEMODE"),
            "{wide}"
        );
        assert!(wide.contains("Filesystem"), "{wide}");
        let text = table(Kind::PersistentVolumeClaim, &[pvc]);
        assert!(text.starts_with("NAME   STATUS    VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   VOLUMEATTRIBUTESCLASS   AGE"), "{text}");
        assert!(text.contains("data   Pending"), "{text}");
        let sc = object(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "jotasu.io/local", "volumeBindingMode": "WaitForFirstConsumer"}),
        );
        let text = table(Kind::StorageClass, &[sc]);
        assert!(text.starts_with("NAME                 PROVISIONER       RECLAIMPOLICY   VOLUMEBINDINGMODE      ALLOWVOLUMEEXPANSION   AGE"), "{text}");
        assert!(text.contains("standard (default)   jotasu.io/local   Delete          WaitForFirstConsumer   false"), "{text}");
    }
}
