//! The PV controller's decisions: binding, provisioning, why a claim
//! waits, reclaiming.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jotasu_api::kinds::storage::{
    IS_DEFAULT_CLASS, LOCAL_PROVISIONER, PROVISIONED_BY, SELECTED_NODE, StorageClass,
};
use jotasu_api::meta::ObjectReference;
use jotasu_api::{Node, PersistentVolume, PersistentVolumeClaim, Time};
use serde_json::json;

use super::matching::{HOSTNAME_LABEL, NODE_STORAGE, VOLUME_DIR_ANNOTATION, pinned_node};
use super::plan::{Action, World, plan};

fn node(name: &str, storage: &str) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {HOSTNAME_LABEL: name},
                "annotations": {VOLUME_DIR_ANNOTATION: format!("/var/lib/jotasu/{name}/volumes")}},
            "status": {"allocatable": {NODE_STORAGE: storage}}}))
        .unwrap(),
    )
}

fn class(name: &str, provisioner: &str, mode: &str) -> Arc<StorageClass> {
    Arc::new(
        serde_json::from_value(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": {IS_DEFAULT_CLASS: "true"}},
            "provisioner": provisioner, "reclaimPolicy": "Delete", "volumeBindingMode": mode}),
        )
        .unwrap(),
    )
}

fn claim(name: &str, size: &str, class: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
            "volumeMode": "Filesystem", "resources": {"requests": {"storage": size}}}}))
    .unwrap()
}

fn static_pv(name: &str, size: &str) -> PersistentVolume {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "volumeMode": "Filesystem", "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": format!("/srv/{name}")}}}))
    .unwrap()
}

struct Case {
    claims: Vec<Arc<PersistentVolumeClaim>>,
    volumes: Vec<Arc<PersistentVolume>>,
    classes: Vec<Arc<StorageClass>>,
    nodes: Vec<Arc<Node>>,
    in_use: BTreeSet<(String, String)>,
    placed: BTreeMap<(String, String), String>,
}

impl Case {
    fn plan(&self) -> Vec<Action> {
        plan(
            World {
                claims: &self.claims,
                volumes: &self.volumes,
                classes: &self.classes,
                nodes: &self.nodes,
                in_use: &self.in_use,
                placed: &self.placed,
            },
            &Time::from_unix_seconds(1000),
        )
    }
}

fn waiting_reason(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ClaimStatus(c) => {
                let cond = c.status.as_ref()?.conditions.first()?;
                Some((cond.reason.clone()?, cond.message.clone()?))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_claim_without_a_class_binds_the_smallest_static_volume() {
    let case = Case {
        claims: vec![Arc::new(claim("data", "1Gi", ""))],
        volumes: vec![
            Arc::new(static_pv("big", "10Gi")),
            Arc::new(static_pv("fits", "2Gi")),
        ],
        classes: vec![],
        nodes: vec![node("n1", "10Gi")],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let actions = case.plan();
    let bind = actions.iter().find_map(|a| match a {
        Action::Bind {
            volume,
            claim,
            created: false,
        } => Some((volume, claim)),
        _ => None,
    });
    let (pv, c) = bind.expect("a binding");
    assert_eq!(pv.metadata.name(), "fits");
    assert_eq!(c.spec.volume_name.as_deref(), Some("fits"));
    let r = pv.spec.claim_ref.as_ref().unwrap();
    assert_eq!(
        (r.name.as_deref(), r.uid.as_deref()),
        (Some("data"), Some("u-data"))
    );
    // The other volume is Available; the bound one is not touched again.
    assert!(actions.iter().any(|a| matches!(a, Action::VolumeStatus(v)
        if v.metadata.name() == "big" && v.phase() == "Available")));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::VolumeStatus(v) if v.metadata.name() == "fits"))
    );
}

#[test]
fn claims_that_cannot_bind_say_why_in_kubernetes_words() {
    let case = Case {
        claims: vec![
            Arc::new(claim("none", "1Gi", "")),
            Arc::new(claim("missing", "1Gi", "gold")),
            Arc::new(claim("external", "1Gi", "ebs")),
            Arc::new(claim("wait", "1Gi", "standard")),
            Arc::new(claim("huge", "1Pi", "now")),
        ],
        volumes: vec![],
        classes: vec![
            class("ebs", "ebs.csi.aws.com", "Immediate"),
            class("standard", LOCAL_PROVISIONER, "WaitForFirstConsumer"),
            class("now", LOCAL_PROVISIONER, "Immediate"),
        ],
        nodes: vec![node("n1", "10Gi")],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let reasons = waiting_reason(&case.plan());
    let find = |reason: &str| {
        reasons
            .iter()
            .find(|(r, _)| r == reason)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("no {reason} in {reasons:?}"))
    };
    assert_eq!(
        find("FailedBinding"),
        "no persistent volumes available for this claim and no storage class is set"
    );
    assert!(
        reasons.iter().any(|(r, m)| r == "ProvisioningFailed"
            && m == "storageclass.storage.k8s.io \"gold\" not found")
    );
    assert!(find("ExternalProvisioning").contains("external provisioner 'ebs.csi.aws.com'"));
    assert_eq!(
        find("WaitForFirstConsumer"),
        "waiting for first consumer to be created before binding"
    );
    assert!(
        reasons.iter().any(|(r, m)| r == "ProvisioningFailed"
            && m.starts_with("no node has room for a 1024Ti local volume")),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), 5);
}

#[test]
fn wait_for_first_consumer_provisions_on_the_selected_node() {
    let mut c = claim("data", "3Gi", "standard");
    c.metadata
        .annotations
        .insert(SELECTED_NODE.into(), "n2".into());
    let case = Case {
        claims: vec![Arc::new(c)],
        volumes: vec![],
        classes: vec![class("standard", LOCAL_PROVISIONER, "WaitForFirstConsumer")],
        nodes: vec![node("n1", "100Gi"), node("n2", "5Gi")],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let actions = case.plan();
    let [
        Action::Bind {
            volume,
            claim,
            created: true,
        },
    ] = actions.as_slice()
    else {
        panic!("one provisioning, got {actions:?}")
    };
    assert_eq!(volume.metadata.name(), "pvc-u-data");
    assert_eq!(pinned_node(volume), Some("n2"));
    assert_eq!(
        volume.spec.local.as_ref().unwrap().path,
        "/var/lib/jotasu/n2/volumes/pvc-u-data"
    );
    assert_eq!(volume.capacity_bytes(), 3 << 30);
    assert_eq!(
        volume.spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(
        volume
            .metadata
            .annotations
            .get(PROVISIONED_BY)
            .map(String::as_str),
        Some(LOCAL_PROVISIONER)
    );
    assert_eq!(claim.spec.volume_name.as_deref(), Some("pvc-u-data"));
    // The selected node too small: the claim says so.
    let mut c = (**claim).clone();
    c.spec.volume_name = None;
    c.spec.resources.as_mut().unwrap().requests.insert(
        "storage".into(),
        jotasu_api::Quantity::parse("6Gi").unwrap(),
    );
    let case = Case {
        claims: vec![Arc::new(c)],
        ..case
    };
    let reasons = waiting_reason(&case.plan());
    assert_eq!(
        reasons,
        [(
            "ProvisioningFailed".to_owned(),
            "node \"n2\" has 5Gi left for local volumes; the claim asks 6Gi".to_owned()
        )]
    );
}

#[test]
fn immediate_classes_go_to_the_roomiest_node_and_capacity_is_counted() {
    let case = Case {
        claims: vec![
            Arc::new(claim("a", "4Gi", "now")),
            Arc::new(claim("b", "4Gi", "now")),
            Arc::new(claim("c", "4Gi", "now")),
        ],
        volumes: vec![],
        classes: vec![class("now", LOCAL_PROVISIONER, "Immediate")],
        nodes: vec![node("n1", "6Gi"), node("n2", "5Gi")],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let actions = case.plan();
    let placed: Vec<Option<&str>> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Bind { volume, .. } => Some(pinned_node(volume)),
            _ => None,
        })
        .collect();
    assert_eq!(
        placed,
        [Some("n1"), Some("n2")],
        "the third does not fit anywhere"
    );
    assert_eq!(waiting_reason(&actions).len(), 1);
}

#[test]
fn released_volumes_are_deleted_or_kept_by_their_policy() {
    let gone = ObjectReference {
        namespace: Some("default".into()),
        name: Some("gone".into()),
        uid: Some("u-gone".into()),
        ..ObjectReference::default()
    };
    let mut provisioned = static_pv("pvc-u-gone", "1Gi");
    provisioned.spec.claim_ref = Some(gone.clone());
    provisioned.spec.persistent_volume_reclaim_policy = Some("Delete".into());
    provisioned
        .metadata
        .annotations
        .insert(PROVISIONED_BY.into(), LOCAL_PROVISIONER.into());
    let mut kept = static_pv("kept", "1Gi");
    kept.spec.claim_ref = Some(gone.clone());
    let mut by_hand = static_pv("by-hand", "1Gi");
    by_hand.spec.claim_ref = Some(gone);
    by_hand.spec.persistent_volume_reclaim_policy = Some("Delete".into());
    let case = Case {
        claims: vec![],
        volumes: vec![Arc::new(provisioned), Arc::new(kept), Arc::new(by_hand)],
        classes: vec![],
        nodes: vec![],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let actions = case.plan();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Delete(v) if v.metadata.name() == "pvc-u-gone"))
    );
    assert!(actions.iter().any(|a| matches!(a, Action::VolumeStatus(v)
        if v.metadata.name() == "kept" && v.phase() == "Released")));
    assert!(actions.iter().any(|a| matches!(a, Action::VolumeStatus(v)
        if v.metadata.name() == "by-hand" && v.phase() == "Failed"
            && v.status.as_ref().unwrap().message.as_deref().unwrap().contains("no deletable volume plugin matched"))));
    assert_eq!(actions.len(), 3);
}

#[test]
fn bound_pairs_get_their_status_and_a_lost_volume_is_reported() {
    let mut c = claim("data", "1Gi", "");
    c.spec.volume_name = Some("pv1".into());
    c.metadata.annotations.insert(
        jotasu_api::kinds::storage::BIND_COMPLETED.into(),
        "yes".into(),
    );
    let mut pv = static_pv("pv1", "2Gi");
    pv.spec.claim_ref = Some(ObjectReference {
        namespace: Some("default".into()),
        name: Some("data".into()),
        uid: Some("u-data".into()),
        ..ObjectReference::default()
    });
    let case = Case {
        claims: vec![Arc::new(c.clone())],
        volumes: vec![Arc::new(pv)],
        classes: vec![],
        nodes: vec![],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let actions = case.plan();
    let status = actions.iter().find_map(|a| match a {
        Action::ClaimStatus(c) => c.status.clone(),
        _ => None,
    });
    let status = status.expect("the claim's status");
    assert_eq!(status.phase.as_deref(), Some("Bound"));
    assert_eq!(status.capacity["storage"].to_string(), "2Gi");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::VolumeStatus(v) if v.phase() == "Bound"))
    );
    // Its volume deleted behind its back: Lost.
    let mut bound = c;
    bound.status = Some(status);
    let case = Case {
        claims: vec![Arc::new(bound)],
        volumes: vec![],
        classes: vec![],
        nodes: vec![],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    let actions = case.plan();
    assert!(matches!(actions.as_slice(), [Action::ClaimStatus(c)] if c.phase() == "Lost"));
}

#[test]
fn a_claim_naming_a_volume_of_another_class_says_so() {
    let mut c = claim("model", "1Gi", "standard");
    c.spec.volume_name = Some("by-hand".into());
    let case = Case {
        claims: vec![Arc::new(c)],
        volumes: vec![Arc::new(static_pv("by-hand", "1Gi"))],
        classes: vec![class("standard", LOCAL_PROVISIONER, "WaitForFirstConsumer")],
        nodes: vec![],
        in_use: BTreeSet::new(),
        placed: BTreeMap::new(),
    };
    assert_eq!(
        waiting_reason(&case.plan()),
        [(
            "FailedBinding".to_owned(),
            "Cannot bind to requested volume \"by-hand\": storageClassName does not match"
                .to_owned()
        )]
    );
}

#[test]
fn a_claim_deleted_while_in_use_goes_once_its_pods_are_gone() {
    let mut c = claim("data", "1Gi", "");
    c.metadata.deletion_timestamp = Some(Time::from_unix_seconds(5));
    let mut case = Case {
        claims: vec![Arc::new(c)],
        volumes: vec![],
        classes: vec![],
        nodes: vec![],
        in_use: [("default".to_owned(), "data".to_owned())].into(),
        placed: BTreeMap::new(),
    };
    assert!(case.plan().is_empty(), "a pod still uses it");
    case.in_use.clear();
    assert!(
        matches!(case.plan().as_slice(), [Action::DeleteClaim(c)] if c.metadata.name() == "data")
    );
}

#[test]
fn a_claim_whose_pod_was_placed_is_provisioned_there_without_the_annotation() {
    let case = Case {
        claims: vec![Arc::new(claim("data", "1Gi", "standard"))],
        volumes: vec![],
        classes: vec![class("standard", LOCAL_PROVISIONER, "WaitForFirstConsumer")],
        nodes: vec![node("n1", "10Gi"), node("n2", "10Gi")],
        in_use: BTreeSet::new(),
        placed: [(("default".to_owned(), "data".to_owned()), "n2".to_owned())].into(),
    };
    let actions = case.plan();
    let [Action::Bind { volume, .. }] = actions.as_slice() else {
        panic!("one provisioning, got {actions:?}")
    };
    assert_eq!(pinned_node(volume), Some("n2"));
}
