//! The storage kinds (PersistentVolume, PersistentVolumeClaim,
//! StorageClass): Kubernetes' defaults, and what each must refuse, in
//! Kubernetes' words (or jotasu's, naming what it does not support).

use jotasu_api::kinds::storage::{PersistentVolumeClaim, StorageClass};
use jotasu_api::validate::storage::{pv_update, pvc_update, storage_class_update};
use jotasu_api::{Object, ParseOptions, load_manifest};

fn errors(text: &str) -> String {
    match load_manifest("x.yaml", text, ParseOptions::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

fn object(text: &str) -> Object {
    let loaded = load_manifest("x.yaml", text, ParseOptions::default()).expect("valid");
    loaded
        .objects
        .into_iter()
        .next()
        .expect("one object")
        .object
}

const LOCAL_PV: &str = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  local: {path: /mnt/disks/a}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {key: kubernetes.io/hostname, operator: In, values: [n1]}\n";

#[test]
fn a_local_volume_a_claim_and_a_class_get_kubernetes_defaults() {
    let Object::PersistentVolume(pv) = object(LOCAL_PV) else {
        panic!("not a PV")
    };
    assert_eq!(pv.spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(
        pv.spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(pv.capacity_bytes(), 1 << 30);
    let Object::PersistentVolumeClaim(pvc) = object(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 500Mi}}\n",
    ) else {
        panic!("not a PVC")
    };
    assert_eq!(pvc.spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(pvc.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(pvc.requested_bytes(), 500 << 20);
    assert_eq!(
        pvc.spec.storage_class_name, None,
        "admission gives the default"
    );
    let Object::PersistentVolumeClaim(beta) = object(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: c\n  annotations: {volume.beta.kubernetes.io/storage-class: ''}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
    ) else {
        panic!("not a PVC")
    };
    assert_eq!(
        beta.spec.storage_class_name.as_deref(),
        Some(""),
        "the beta annotation names the class"
    );
    let Object::StorageClass(sc) = object(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: example.com/fast\n",
    ) else {
        panic!("not a StorageClass")
    };
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
}

#[test]
fn volumes_need_modes_a_size_and_one_allowed_directory() {
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  hostPath: {path: /srv/x}\n",
    );
    assert!(
        e.contains("spec.accessModes: Required value: must specify at least 1 access mode"),
        "{e}"
    );
    assert!(e.contains("spec.capacity: Required value"), "{e}");
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n",
    );
    assert!(
        e.contains("spec: Required value: must specify a volume type"),
        "{e}"
    );
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv1}\nspec:\n  capacity: {storage: 1Gi, cpu: '1'}\n  accessModes: [ReadWriteSometimes]\n  local: {path: srv/x}\n  persistentVolumeReclaimPolicy: Keep\n  volumeMode: Block\n",
    );
    for want in [
        "spec.capacity: Unsupported value",
        "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
        "spec.local.path: Invalid value: \"srv/x\": must be an absolute path",
        "spec.nodeAffinity: Required value: Local volume requires node affinity",
        "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\"",
        "spec.volumeMode: Forbidden: jotasu does not support Block volumes",
    ] {
        assert!(e.contains(want), "wanted {want:?} in\n{e}");
    }
    for bad in ["/", "/srv/../etc"] {
        let e = errors(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: pv1}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: '{bad}'}}\n"
        ));
        assert!(
            e.contains("spec.hostPath.path: Invalid value"),
            "{bad}: {e}"
        );
    }
    assert_eq!(errors(LOCAL_PV), "");
}

#[test]
fn network_and_cloud_sources_are_refused_by_name() {
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: nfs}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteMany]\n  nfs: {server: 10.0.0.1, path: /}\n",
    );
    assert!(e.contains("spec.nfs: Forbidden: jotasu does not support this field: jotasu does not support nfs volumes"), "{e}");
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: c}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  csi: {driver: x, volumeHandle: y}\n",
    );
    assert!(e.contains("jotasu does not support csi volumes"), "{e}");
}

#[test]
fn claims_need_modes_and_a_storage_request() {
    let e = errors("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {}\n");
    assert!(
        e.contains("spec.accessModes: Required value: at least 1 access mode is required"),
        "{e}"
    );
    assert!(e.contains("spec.resources[storage]: Required value"), "{e}");
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: '0'}}\n",
    );
    assert!(
        e.contains("spec.resources[storage]: Invalid value: \"0\": must be greater than zero"),
        "{e}"
    );
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  dataSource: {kind: PersistentVolumeClaim, name: other}\n",
    );
    assert!(
        e.contains("spec.dataSource: Forbidden: jotasu does not support this field"),
        "{e}"
    );
    let e = errors(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n  accessModes: [ReadWriteOncePod]\n  resources: {requests: {storage: 1Gi}}\n",
    );
    assert!(
        e.contains("spec.accessModes: Forbidden: jotasu does not enforce ReadWriteOncePod"),
        "{e}"
    );
    // A pod may now name a claim; an empty name is refused.
    let pod = |claim: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: '{claim}'}}\n"
        )
    };
    assert_eq!(errors(&pod("data-1")), "");
    assert!(
        errors(&pod(""))
            .contains("spec.volumes[0].persistentVolumeClaim.claimName: Required value")
    );
}

#[test]
fn classes_need_a_provisioner_and_known_policies() {
    let e = errors(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: s}\nreclaimPolicy: Recycle\nvolumeBindingMode: Later\n",
    );
    for want in [
        "provisioner: Required value",
        "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
        "volumeBindingMode: Unsupported value: \"Later\"",
    ] {
        assert!(e.contains(want), "wanted {want:?} in\n{e}");
    }
    let e = errors(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: s}\nprovisioner: a.io/b\nmountOptions: [ro]\n",
    );
    assert!(
        e.contains("mountOptions: Forbidden: jotasu does not support this field"),
        "{e}"
    );
    let e = errors(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: s}\nprovisioner: jotasu.io/local\nparameters: {type: ssd}\n",
    );
    assert!(
        e.contains("the jotasu.io/local provisioner takes no parameters"),
        "{e}"
    );
}

#[test]
fn a_bound_claim_keeps_its_spec_and_a_class_its_provisioner() {
    let Object::PersistentVolumeClaim(old) = object(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: standard\n  volumeName: pv1\n  resources: {requests: {storage: 1Gi}}\n",
    ) else {
        panic!()
    };
    let mut changed: PersistentVolumeClaim = old.clone();
    changed.spec.access_modes = vec!["ReadWriteMany".into()];
    let e = pvc_update(&changed, &old);
    assert!(
        e.iter().any(|e| e
            .to_string()
            .contains("spec is immutable after creation except resources.requests")),
        "{e:?}"
    );
    assert!(pvc_update(&old, &old).is_empty());
    // Leaving out what binding wrote is no change.
    let mut unbound = old.clone();
    unbound.spec.volume_name = None;
    let mut bound = unbound.clone();
    bound.spec.volume_name = Some("pv1".into());
    assert!(
        pvc_update(&bound, &unbound).is_empty(),
        "binding fills volumeName"
    );
    let Object::PersistentVolume(pv) = object(LOCAL_PV) else {
        panic!()
    };
    let mut moved = pv.clone();
    moved.spec.local.as_mut().unwrap().path = "/mnt/disks/b".into();
    assert!(!pv_update(&moved, &pv).is_empty());
    let sc = StorageClass {
        provisioner: "a.io/x".into(),
        ..StorageClass::default()
    };
    let mut other = sc.clone();
    other.provisioner = "b.io/y".into();
    let e = storage_class_update(&other, &sc);
    assert!(
        e.iter().any(|e| e
            .to_string()
            .contains("updates to provisioner are forbidden.")),
        "{e:?}"
    );
}

#[test]
fn other_local_clusters_classes_are_provisioned_locally() {
    let class = |provisioner: &str| -> jotasu_api::StorageClass {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "fast"}, "provisioner": provisioner,
            "parameters": {"type": "pd-ssd"}
        }))
        .expect("a class")
    };
    for local in [
        "jotasu.io/local",
        "k8s.io/minikube-hostpath",
        "rancher.io/local-path",
    ] {
        assert!(class(local).provisioned_locally(), "{local}");
    }
    assert!(!class("ebs.csi.aws.com").provisioned_locally());
}
