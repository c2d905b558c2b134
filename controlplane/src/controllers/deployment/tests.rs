//! Unit tests of single reconciles: the new ReplicaSet, annotations,
//! conditions, cleanup rules.

use serde_json::json;

use super::annotations::{CHANGE_CAUSE, DESIRED_REPLICAS, MAX_REPLICAS, REVISION};
use super::hash::POD_TEMPLATE_HASH;
use super::status::{AVAILABLE, PROGRESSING, get_condition};
use super::testkit::{World, deployment};

#[test]
fn creates_a_hashed_replica_set_with_annotations() {
    let mut d = deployment(3, "v1", json!({}));
    d.metadata
        .annotations
        .insert(CHANGE_CAUSE.into(), "first".into());
    let mut w = World::new(d);
    let p = w.reconcile_deployment();
    assert_eq!(p.create.len(), 1);
    let rs = &p.create[0];
    let hash = &rs.spec.template.metadata.labels[POD_TEMPLATE_HASH];
    assert_eq!(rs.metadata.name(), format!("web-{hash}"));
    assert_eq!(rs.spec.selector.match_labels[POD_TEMPLATE_HASH], *hash);
    assert_eq!(rs.metadata.labels[POD_TEMPLATE_HASH], *hash);
    assert_eq!(rs.spec.replicas, Some(3));
    assert_eq!(rs.metadata.owner_references[0].kind, "Deployment");
    assert_eq!(rs.metadata.owner_references[0].controller, Some(true));
    let a = &rs.metadata.annotations;
    assert_eq!(a[REVISION], "1");
    assert_eq!(a[CHANGE_CAUSE], "first");
    assert_eq!(a[DESIRED_REPLICAS], "3");
    assert_eq!(a[MAX_REPLICAS], "4");
    assert_eq!(p.annotations.as_ref().unwrap()[REVISION], "1");
    let st = p.status.as_ref().unwrap();
    assert_eq!(st.observed_generation, Some(1));
    let progressing = get_condition(st, PROGRESSING).unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("Created new replica set \"web-{hash}\"").as_str())
    );
    let available = get_condition(st, AVAILABLE).unwrap();
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasUnavailable")
    );
    // The same template hashes the same (idempotent names).
    let again = World::new(deployment(3, "v1", json!({}))).reconcile_deployment();
    assert_eq!(again.create[0].metadata.name, rs.metadata.name);
}

#[test]
fn a_taken_name_gets_another_hash() {
    let d = deployment(1, "v1", json!({}));
    let name = World::new(d.clone()).reconcile_deployment().create[0]
        .metadata
        .name
        .clone()
        .unwrap();
    // Another object already has the name: the hash takes a collision count.
    let p = super::plan::plan(&super::plan::Input {
        deployment: &d,
        replica_sets: Vec::new(),
        taken_names: [name.clone()].into(),
        now: 0,
    });
    let other = p.create[0].metadata.name();
    assert_ne!(other, name);
    assert!(other.starts_with("web-"), "{other}");
}

#[test]
fn status_counts_and_conditions_after_a_rollout() {
    let mut w = World::new(deployment(3, "v1", json!({})));
    w.settle(100, false);
    let st = w.d.status.clone().unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas,
            st.unavailable_replicas
        ),
        (3, 3, 3, 3, 0)
    );
    let available = get_condition(&st, AVAILABLE).unwrap();
    assert_eq!(available.status, jotasu_api::ConditionStatus::True);
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );
    let p = get_condition(&st, PROGRESSING).unwrap();
    let name = w.sets[0].metadata.name().to_owned();
    assert_eq!(
        p.message.as_deref(),
        Some(format!("ReplicaSet \"{name}\" has successfully progressed.").as_str())
    );
    // A spec change not yet observed is not complete.
    w.update(|d| d.spec.template.spec.containers[0].image = "v2".into());
    assert!(!w.complete());
}

#[test]
fn old_replica_sets_with_pods_are_kept_beyond_the_limit() {
    let mut w = World::new(deployment(2, "v1", json!({"revisionHistoryLimit": 0})));
    w.settle(100, false);
    w.ready_after = None;
    w.update(|d| d.spec.template.spec.containers[0].image = "v2".into());
    for _ in 0..5 {
        w.step(1, false);
    }
    // The rollout is stuck: the old ReplicaSet still has pods and stays.
    assert_eq!(w.sets.len(), 2);
    assert!(w.plans.iter().all(|p| p.delete.is_empty()));
    w.ready_after = Some(1);
    w.settle(100, false);
    w.step(1, false);
    assert_eq!(
        w.sets.len(),
        1,
        "limit 0: the old ReplicaSet goes once empty"
    );
}

#[test]
fn replica_failures_surface_on_the_deployment() {
    let mut w = World::new(deployment(2, "v1", json!({})));
    w.step(1, false);
    let status = w.sets[0].status.get_or_insert_with(Default::default);
    status.conditions.push(jotasu_api::Condition {
        type_: "ReplicaFailure".into(),
        status: jotasu_api::ConditionStatus::True,
        reason: Some("FailedCreate".into()),
        message: Some("quota exceeded".into()),
        ..Default::default()
    });
    w.reconcile_deployment();
    let st = w.d.status.clone().unwrap();
    let c = get_condition(&st, "ReplicaFailure").unwrap();
    assert_eq!(c.message.as_deref(), Some("quota exceeded"));
    w.sets[0].status.as_mut().unwrap().conditions.clear();
    w.reconcile_deployment();
    assert!(get_condition(w.d.status.as_ref().unwrap(), "ReplicaFailure").is_none());
}

#[test]
fn pod_counts() {
    let mut w = World::new(deployment(2, "v1", json!({"minReadySeconds": 10})));
    w.step(1, false);
    w.reconcile_replica_sets();
    w.tick(0);
    let rs = w.sets[0].clone();
    let c = super::count_pods(&rs, &w.pods, w.now);
    assert_eq!((c.replicas, c.ready, c.available, c.running), (2, 2, 0, 2));
    assert_eq!(c.next_available_at, Some(w.now + 10));
    w.pods[0].metadata.deletion_timestamp = Some(jotasu_api::Time::from_unix_seconds(1));
    let c = super::count_pods(&rs, &w.pods, w.now + 10);
    assert_eq!((c.replicas, c.available, c.running), (1, 1, 2));
}
