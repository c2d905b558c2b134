//! A PodDisruptionBudget's status from the pods it selects, as Kubernetes'
//! disruption controller counts it: healthy (Ready, not being deleted,
//! not just evicted) pods; the expected count (an integer `minAvailable`
//! counts the pods; a percent or `maxUnavailable` counts from the pods'
//! controllers' replicas); the healthy pods needed; the disruptions
//! allowed now. Evictions not yet seen as deletions are remembered for
//! two minutes so they are not given out twice.

use std::collections::BTreeMap;

use jotasu_api::kinds::disruption::PodDisruptionBudgetStatus;
use jotasu_api::meta::{Condition, ConditionStatus};
use jotasu_api::{IntOrString, Pod, PodDisruptionBudget, Time};

use crate::runtime::status::{is_ready, is_terminating, set_condition};

/// How long an eviction stays counted without its pod's deletion showing.
pub const DELETION_TIMEOUT_SECONDS: i64 = 120;

/// The replicas a pod's controller wants, for percent and maxUnavailable
/// budgets: `None` for a pod whose controller has no scale (counted as
/// one pod).
pub type ScaleOf<'a> = dyn Fn(&Pod) -> Option<(String, i32)> + 'a;

/// The budget's status over its namespace's `pods` at `now`.
pub fn budget_status(
    b: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &ScaleOf<'_>,
    now: i64,
) -> PodDisruptionBudgetStatus {
    let selected: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| crate::apiserver::eviction::selects(b, p))
        .collect();
    let old = b.status.clone().unwrap_or_default();
    // Evictions still pending: the pod exists, is not being deleted, and
    // the eviction is recent.
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .into_iter()
        .filter(|(name, at)| {
            let recent = at
                .unix_seconds()
                .is_some_and(|t| t + DELETION_TIMEOUT_SECONDS > now);
            recent
                && selected
                    .iter()
                    .any(|p| p.metadata.name() == name && !is_terminating(p))
        })
        .collect();
    let healthy = selected
        .iter()
        .filter(|p| is_ready(p) && !is_terminating(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name()))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let (expected, desired) = match (&b.spec.min_available, &b.spec.max_unavailable) {
        (Some(IntOrString::Int(min)), _) => {
            (i32::try_from(selected.len()).unwrap_or(i32::MAX), *min)
        }
        (min, max) => {
            let mut seen = std::collections::BTreeSet::new();
            let mut expected = 0i32;
            for p in &selected {
                match scale_of(p) {
                    Some((owner, replicas)) => {
                        if seen.insert(owner) {
                            expected = expected.saturating_add(replicas);
                        }
                    }
                    None => expected = expected.saturating_add(1),
                }
            }
            let desired = match (min, max) {
                (Some(m), _) => m.scaled_value(expected, true).unwrap_or(expected),
                (None, Some(m)) => expected - m.scaled_value(expected, true).unwrap_or(0),
                (None, None) => expected,
            };
            (expected, desired.max(0))
        }
    };
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let (status, reason) = if allowed > 0 {
        (ConditionStatus::True, "SufficientPods")
    } else {
        (ConditionStatus::False, "InsufficientPods")
    };
    let mut conditions = old.conditions;
    set_condition(
        &mut conditions,
        Condition {
            type_: "DisruptionAllowed".into(),
            status,
            reason: Some(reason.into()),
            ..Condition::default()
        },
        &Time::from_unix_seconds(now),
    );
    PodDisruptionBudgetStatus {
        observed_generation: b.metadata.generation,
        disrupted_pods: disrupted,
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool, owner: &str) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": owner, "uid": owner, "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    fn budget(spec: serde_json::Value) -> PodDisruptionBudget {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        serde_json::from_value(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "b", "namespace": "d", "generation": 2}, "spec": spec
        }))
        .unwrap()
    }

    fn scale(p: &Pod) -> Option<(String, i32)> {
        p.metadata.controller_ref().map(|o| (o.uid.clone(), 4))
    }

    #[test]
    fn min_available_counts_the_pods_and_max_unavailable_the_replicas() {
        let pods = [
            pod("a", true, "rs"),
            pod("b", true, "rs"),
            pod("c", false, "rs"),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let s = budget_status(&budget(json!({"minAvailable": 1})), &refs, &scale, 100);
        assert_eq!(
            (s.expected_pods, s.current_healthy, s.desired_healthy),
            (3, 2, 1)
        );
        assert_eq!(s.disruptions_allowed, 1);
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.conditions[0].reason.as_deref(), Some("SufficientPods"));
        // maxUnavailable 1 of the controller's 4 replicas: 3 needed, 2 healthy.
        let s = budget_status(&budget(json!({"maxUnavailable": 1})), &refs, &scale, 100);
        assert_eq!(
            (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
            (4, 3, 0)
        );
        assert_eq!(s.conditions[0].status, ConditionStatus::False);
        // 50 % of 4, rounded up.
        let s = budget_status(&budget(json!({"minAvailable": "50%"})), &refs, &scale, 100);
        assert_eq!((s.desired_healthy, s.disruptions_allowed), (2, 0));
    }

    #[test]
    fn a_recent_eviction_is_not_given_out_twice() {
        let pods = [pod("a", true, "rs"), pod("b", true, "rs")];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut b = budget(json!({"minAvailable": 1}));
        b.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: [("a".to_owned(), Time::from_unix_seconds(90))].into(),
            ..PodDisruptionBudgetStatus::default()
        });
        let s = budget_status(&b, &refs, &scale, 100);
        assert_eq!((s.current_healthy, s.disruptions_allowed), (1, 0));
        // Two minutes later the eviction is forgotten.
        let s = budget_status(&b, &refs, &scale, 90 + DELETION_TIMEOUT_SECONDS);
        assert!(s.disrupted_pods.is_empty());
        assert_eq!(s.disruptions_allowed, 1);
    }
}
