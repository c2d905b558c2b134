//! Rollouts stepped to completion in the simulated cluster, checking
//! Kubernetes' guarantees after every step.

use serde_json::json;

use super::annotations::{REVISION, REVISION_HISTORY};
use super::status::{PROGRESSING, TIMED_OUT, get_condition};
use super::testkit::{World, deployment};

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}})
}

fn set_image(w: &mut World, image: &str) {
    w.update(|d| d.spec.template.spec.containers[0].image = image.into());
}

fn rollout_within_bounds(replicas: i32, extra: serde_json::Value, ready_after: i64) {
    let mut w = World::new(deployment(replicas, "v1", extra));
    w.ready_after = Some(ready_after);
    w.settle(100, false);
    assert_eq!(w.sets.len(), 1);
    set_image(&mut w, "v2");
    let steps = w.settle(400, true);
    assert!(steps > 1, "a rollout takes steps");
    assert_eq!(w.pods_of("v2"), usize::try_from(replicas).unwrap());
    assert_eq!(w.pods_of("v1"), 0);
    assert_eq!(w.set_of("v1").unwrap().spec.replicas, Some(0));
    assert_eq!(w.d.metadata.annotations[REVISION], "2");
    assert_eq!(w.set_of("v2").unwrap().metadata.annotations[REVISION], "2");
    let progressing = get_condition(w.d.status.as_ref().unwrap(), PROGRESSING).unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    // Settled: another reconcile writes nothing.
    let p = w.reconcile_deployment();
    assert_eq!(p, super::plan::Plan::default(), "idle reconcile wrote");
}

#[test]
fn rolling_update_keeps_surge_and_availability_bounds() {
    rollout_within_bounds(4, rolling(json!(1), json!(1)), 1);
    rollout_within_bounds(10, json!({}), 2);
    rollout_within_bounds(5, rolling(json!(0), json!(1)), 1);
    rollout_within_bounds(5, rolling(json!(2), json!(0)), 3);
    rollout_within_bounds(3, rolling(json!("50%"), json!("50%")), 1);
    rollout_within_bounds(1, json!({}), 1);
}

#[test]
fn min_ready_seconds_gate_availability() {
    let mut extra = rolling(json!(1), json!(0));
    extra["minReadySeconds"] = json!(5);
    let mut w = World::new(deployment(3, "v1", extra.clone()));
    w.settle(100, false);
    set_image(&mut w, "v2");
    w.reconcile_deployment();
    w.reconcile_replica_sets();
    w.tick(1);
    // Ready now but not available for 5 s: the old pods stay.
    w.reconcile_deployment();
    let p = w.reconcile_deployment();
    assert!(p.requeue_after.is_some_and(|s| s <= 5), "{p:?}");
    assert_eq!(w.set_of("v1").unwrap().spec.replicas, Some(3));
    let steps = w.settle(200, true);
    assert!(
        steps >= 10,
        "{steps} steps: minReadySeconds must slow the rollout"
    );
}

#[test]
fn rollback_reuses_the_old_replica_set_as_the_next_revision() {
    let mut w = World::new(deployment(3, "v1", json!({})));
    w.settle(100, false);
    set_image(&mut w, "v2");
    w.settle(100, true);
    assert_eq!(w.sets.len(), 2);
    let v1_name = w.set_of("v1").unwrap().metadata.name.clone();
    set_image(&mut w, "v1");
    w.settle(100, true);
    assert_eq!(w.sets.len(), 2, "no third ReplicaSet");
    let v1 = w.set_of("v1").unwrap();
    assert_eq!(v1.metadata.name, v1_name);
    assert_eq!(v1.metadata.annotations[REVISION], "3");
    assert_eq!(v1.metadata.annotations[REVISION_HISTORY], "1");
    assert_eq!(w.d.metadata.annotations[REVISION], "3");
    assert_eq!(w.pods_of("v1"), 3);
    assert_eq!(w.set_of("v2").unwrap().spec.replicas, Some(0));
}

#[test]
fn history_beyond_the_limit_is_deleted_oldest_first() {
    let mut w = World::new(deployment(2, "v1", json!({"revisionHistoryLimit": 2})));
    w.settle(100, false);
    for v in 2..=5 {
        set_image(&mut w, &format!("v{v}"));
        w.settle(100, true);
        // Cleanup runs once the rollout is complete.
        w.step(1, true);
    }
    let mut images: Vec<String> = w
        .sets
        .iter()
        .map(|rs| rs.spec.template.spec.containers[0].image.clone())
        .collect();
    images.sort();
    assert_eq!(images, ["v3", "v4", "v5"]);
    assert!(w.plans.iter().any(|p| !p.delete.is_empty()));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // Kubernetes' documentation example: 10 replicas, maxSurge 3,
    // maxUnavailable 2, an image that never becomes ready.
    let mut w = World::new(deployment(10, "v1", rolling(json!(3), json!(2))));
    w.settle(100, false);
    w.ready_after = None;
    set_image(&mut w, "bad");
    for _ in 0..10 {
        w.step(1, true);
    }
    let sizes = |w: &World| {
        (
            w.set_of("v1").unwrap().spec.replicas,
            w.set_of("bad").unwrap().spec.replicas,
        )
    };
    assert_eq!(sizes(&w), (Some(8), Some(5)));
    w.update(|d| d.spec.replicas = Some(15));
    w.step(1, false);
    assert_eq!(sizes(&w), (Some(11), Some(7)));
    // Scaling down spreads the other way.
    w.update(|d| d.spec.replicas = Some(5));
    w.step(1, false);
    let (old, new) = sizes(&w);
    assert_eq!(old.unwrap() + new.unwrap(), 5 + 3);
    assert!(old > new);
    // Scaling a finished rollout is not a rollout: one ReplicaSet.
    let mut w = World::new(deployment(3, "v1", json!({})));
    w.settle(100, false);
    w.update(|d| d.spec.replicas = Some(10));
    w.settle(100, false);
    w.update(|d| d.spec.replicas = Some(2));
    w.settle(100, false);
    assert_eq!(w.sets.len(), 1);
    assert_eq!(w.pods_of("v1"), 2);
}

#[test]
fn paused_deployments_scale_but_do_not_roll_out() {
    let mut w = World::new(deployment(4, "v1", json!({})));
    w.settle(100, false);
    w.update(|d| d.spec.paused = true);
    set_image(&mut w, "v2");
    for _ in 0..5 {
        w.step(1, false);
    }
    assert_eq!(w.sets.len(), 1, "no rollout while paused");
    let c = get_condition(w.d.status.as_ref().unwrap(), PROGRESSING).unwrap();
    assert_eq!(c.reason.as_deref(), Some("DeploymentPaused"));
    w.update(|d| d.spec.replicas = Some(6));
    for _ in 0..5 {
        w.step(1, false);
    }
    assert_eq!(w.pods_of("v1"), 6, "scaling applies while paused");
    w.update(|d| d.spec.paused = false);
    w.settle(100, true);
    assert_eq!(w.pods_of("v2"), 6);
}

#[test]
fn recreate_stops_every_old_pod_first() {
    let mut w = World::new(deployment(
        3,
        "v1",
        json!({"strategy": {"type": "Recreate"}}),
    ));
    w.settle(100, false);
    set_image(&mut w, "v2");
    let counts = |w: &World| {
        let old = w.set_of("v1").map_or(0, |rs| {
            w.pods
                .iter()
                .filter(|p| crate::runtime::controlled_by(*p, rs))
                .count()
        });
        (old, w.pods_of("v2"))
    };
    let mut saw_gap = false;
    for _ in 0..30 {
        if w.complete() {
            break;
        }
        w.reconcile_deployment();
        w.reconcile_replica_sets();
        let (old, new) = counts(&w);
        assert!(
            old == 0 || new == 0,
            "old ({old}) and new ({new}) pods at once"
        );
        w.tick(1);
        saw_gap |= counts(&w) == (0, 0);
    }
    assert!(w.complete());
    assert!(saw_gap, "Recreate goes through zero pods");
    assert_eq!(w.pods_of("v2"), 3);
}

#[test]
fn no_progress_within_the_deadline_times_out() {
    let mut w = World::new(deployment(2, "v1", json!({"progressDeadlineSeconds": 30})));
    w.settle(100, false);
    w.ready_after = None;
    set_image(&mut w, "bad");
    w.step(1, false);
    w.step(1, false);
    let p = w.reconcile_deployment();
    let after = p.requeue_after.expect("requeued to check the deadline");
    assert!((25..=31).contains(&after), "{after}");
    w.tick(after);
    w.reconcile_deployment();
    let c = get_condition(w.d.status.as_ref().unwrap(), PROGRESSING).unwrap();
    assert_eq!(c.reason.as_deref(), Some(TIMED_OUT));
    assert_eq!(c.status, jotasu_api::ConditionStatus::False);
    assert_eq!(w.reconcile_deployment().requeue_after, None);
    // A new template starts a new rollout (and a new deadline).
    w.ready_after = Some(1);
    set_image(&mut w, "v3");
    w.settle(100, false);
    let c = get_condition(w.d.status.as_ref().unwrap(), PROGRESSING).unwrap();
    assert_eq!(c.reason.as_deref(), Some("NewReplicaSetAvailable"));
}
